//! What the generated SQL needs to know about one replicated table, and the SQL expressions
//! built from it: canonical keys, unique values, row comparisons.
//!
//! Keys and unique values are stored in the internal tables as canonical `jsonb`, so that two
//! sessions with different `TimeZone`, `bytea_output` or numeric spellings agree on whether
//! two values are the same key.

use pgconverge_model::catalog::QualifiedName;
use pgconverge_model::config::IdentityKind;
use pgconverge_model::TableConfig;

use super::naming::{self, LOCK_STRIPES, ORIGIN_COLUMN, VERSION_COLUMN};
use pgconverge_sql::{quote_ident, quote_literal, quote_qualified};

/// A column with the type its config gives it (empty when the config does not list it).
#[derive(Debug, Clone)]
pub struct TypedColumn {
    pub name: String,
    pub data_type: String,
}

/// A UNIQUE constraint whose values can collide between different rows.
#[derive(Debug, Clone)]
pub struct UniqueKey {
    pub columns: Vec<TypedColumn>,
    /// Column list as stored in `_pgconverge.claims.unique_columns`, e.g. `tenant, email`.
    pub label: String,
}

#[derive(Debug, Clone)]
pub struct TableShape {
    pub name: QualifiedName,
    /// `schema.table`, quoted.
    pub qualified: String,
    /// The quoted name as a string literal: the table's key in the change log and ledgers.
    pub key_literal: String,
    pub primary_key: Vec<TypedColumn>,
    /// Every configured column with its type, in table order.
    pub typed_columns: Vec<TypedColumn>,
    pub uniques: Vec<UniqueKey>,
    /// Configured columns plus the reserved ones, in table order.
    pub columns: Vec<String>,
    /// Configured columns outside the primary key that have a default, with its expression:
    /// what a change written before the column existed on its node holds there.
    pub defaults: Vec<(String, String)>,
    /// Columns renamed by the config, `(previous name, name)`: a change written under the
    /// previous name fills the column of the new one.
    pub renamed: Vec<(String, String)>,
    /// Names a change may carry that no configured column has any more: dropped columns and
    /// the previous names of renamed ones.
    pub retired: Vec<String>,
    /// `GENERATED ALWAYS` identity columns: incoming rows are inserted `OVERRIDING SYSTEM
    /// VALUE` so they keep the values their node handed out, and updates leave them alone
    /// (PostgreSQL lets an update set them only to a new default).
    pub always_identity: Vec<String>,
    /// Generated columns: PostgreSQL computes them on every node, so the apply path never
    /// writes them. A change still carries their values (the log writes the whole row), which
    /// keeps UNIQUE claims over them computable from the change alone.
    pub generated: Vec<String>,
    pub legacy_updated_at: Option<String>,
    pub legacy_origin_node: Option<String>,
    pub stripe_class: i32,
    pub stamp_function: QualifiedName,
    pub log_function: QualifiedName,
    pub apply_function: QualifiedName,
}

impl TableShape {
    pub fn new(table: &TableConfig) -> TableShape {
        let name = QualifiedName::new(table.schema.clone(), table.name.clone());
        let qualified = quote_qualified(&table.schema, &table.name);
        let typed = |column: &String| TypedColumn {
            name: column.clone(),
            data_type: table
                .column(column)
                .map(|c| c.data_type.clone())
                .unwrap_or_default(),
        };
        let primary_key: Vec<TypedColumn> = table.primary_key.iter().map(typed).collect();

        let mut uniques: Vec<UniqueKey> = Vec::new();
        let mut seen: Vec<Vec<&String>> = Vec::new();
        for columns in &table.unique {
            // A constraint covering the whole primary key can never be shared by two rows.
            let covers_key = !table.primary_key.is_empty()
                && table.primary_key.iter().all(|k| columns.contains(k));
            let mut set: Vec<&String> = columns.iter().collect();
            set.sort();
            set.dedup();
            if columns.is_empty() || covers_key || seen.contains(&set) {
                continue;
            }
            seen.push(set);
            uniques.push(UniqueKey {
                columns: columns.iter().map(typed).collect(),
                label: columns.join(", "),
            });
        }

        let mut columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        for reserved in [VERSION_COLUMN, ORIGIN_COLUMN] {
            if !columns.iter().any(|c| c == reserved) {
                columns.push(reserved.to_string());
            }
        }

        let defaults = table
            .columns
            .iter()
            .filter(|c| !table.primary_key.contains(&c.name))
            .filter_map(|c| Some((c.name.clone(), c.default.clone()?)))
            .collect();

        let renamed: Vec<(String, String)> = table
            .columns
            .iter()
            .filter_map(|c| Some((c.renamed_from.clone()?, c.name.clone())))
            .collect();
        let retired = table
            .dropped_columns
            .iter()
            .cloned()
            .chain(renamed.iter().map(|(old, _)| old.clone()))
            .collect();

        TableShape {
            defaults,
            renamed,
            retired,
            stripe_class: naming::stripe_class(&name),
            stamp_function: naming::per_table_function("stamp", &name),
            log_function: naming::per_table_function("log", &name),
            apply_function: naming::per_table_function("apply", &name),
            key_literal: quote_literal(&qualified),
            qualified,
            primary_key,
            typed_columns: table
                .columns
                .iter()
                .map(|c| TypedColumn {
                    name: c.name.clone(),
                    data_type: c.data_type.clone(),
                })
                .collect(),
            uniques,
            columns,
            always_identity: table
                .columns
                .iter()
                .filter(|c| c.identity == Some(IdentityKind::Always))
                .map(|c| c.name.clone())
                .collect(),
            generated: table
                .columns
                .iter()
                .filter(|c| c.generated.is_some())
                .map(|c| c.name.clone())
                .collect(),
            legacy_updated_at: table.legacy_columns.updated_at.clone(),
            legacy_origin_node: table.legacy_columns.origin_node.clone(),
            name,
        }
    }

    /// Canonical key of record `rec`: `{"col": value, …}` as jsonb.
    pub fn key_json(&self, rec: &str) -> String {
        build_object(
            "pg_catalog.jsonb_build_object",
            rec,
            &self.primary_key,
            true,
        )
    }

    /// The key columns of `rec` as a json object with their ordinary spelling, which
    /// `json_populate_record` reads back exactly (time zones included).
    pub fn key_row_json(&self, rec: &str) -> String {
        build_object(
            "pg_catalog.json_build_object",
            rec,
            &self.primary_key,
            false,
        )
    }

    /// Canonical value of unique constraint `u` in record `rec`: a jsonb array.
    pub fn unique_json(&self, u: &UniqueKey, rec: &str) -> String {
        let parts: Vec<String> = u
            .columns
            .iter()
            .map(|c| canonical_json(&field(rec, &c.name), &c.data_type))
            .collect();
        format!("pg_catalog.jsonb_build_array({})", parts.join(", "))
    }

    /// `rec.a` or `(rec.a, rec.b)`: the key of `rec` as a row for comparisons.
    pub fn key_tuple(&self, rec: &str) -> String {
        tuple(rec, &self.primary_key)
    }

    pub fn unique_tuple(&self, u: &UniqueKey, rec: &str) -> String {
        tuple(rec, &u.columns)
    }

    /// True when every column of `u` is non-null in `rec` (NULLs never collide).
    pub fn unique_present(&self, u: &UniqueKey, rec: &str) -> String {
        u.columns
            .iter()
            .map(|c| format!("{} IS NOT NULL", field(rec, &c.name)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// Integer expression: the lock stripe of `json` (a canonical key or value) under `tag`.
    pub fn stripe(&self, tag: &str, json: &str) -> String {
        format!(
            "(pg_catalog.hashtext({} || {json}::text) & {})",
            quote_literal(tag),
            LOCK_STRIPES - 1
        )
    }

    /// Stripe tag of the primary key.
    pub fn key_tag(&self) -> &'static str {
        "key:"
    }

    /// Stripe tag of unique constraint `u`.
    pub fn unique_tag(&self, u: &UniqueKey) -> String {
        format!("unique {}:", u.label)
    }

    /// Columns the apply path writes on UPDATE: everything but the key, which is equal.
    pub fn non_key_columns(&self) -> Vec<&String> {
        self.columns
            .iter()
            .filter(|c| !self.primary_key.iter().any(|k| &k.name == *c))
            .collect()
    }

    /// The columns an update of a stored row writes: not the key, not an always-identity,
    /// not a generated column.
    pub fn updatable_columns(&self) -> Vec<&String> {
        self.non_key_columns()
            .into_iter()
            .filter(|c| !self.always_identity.contains(c) && !self.generated.contains(c))
            .collect()
    }

    /// `INSERT INTO <table> [OVERRIDING SYSTEM VALUE] VALUES (<rec>.*) ON CONFLICT DO
    /// NOTHING`: stores an incoming row with every value it carries. A table with generated
    /// columns names the others instead: PostgreSQL refuses any value for a generated column.
    pub fn insert_row_sql(&self, rec: &str) -> String {
        let overriding = if self.always_identity.is_empty() {
            ""
        } else {
            " OVERRIDING SYSTEM VALUE"
        };
        if self.generated.is_empty() {
            return format!(
                "INSERT INTO {}{overriding} VALUES ({rec}.*) ON CONFLICT DO NOTHING;",
                self.qualified
            );
        }
        let stored: Vec<&String> = self
            .columns
            .iter()
            .filter(|c| !self.generated.contains(c))
            .collect();
        let targets: Vec<String> = stored.iter().map(|c| quote_ident(c)).collect();
        let values: Vec<String> = stored.iter().map(|c| field(rec, c)).collect();
        format!(
            "INSERT INTO {} ({}){overriding} VALUES ({}) ON CONFLICT DO NOTHING;",
            self.qualified,
            targets.join(", "),
            values.join(", ")
        )
    }
}

/// `rec.col`, the column quoted.
pub fn field(rec: &str, column: &str) -> String {
    format!("{rec}.{}", quote_ident(column))
}

fn tuple(rec: &str, columns: &[TypedColumn]) -> String {
    let fields: Vec<String> = columns.iter().map(|c| field(rec, &c.name)).collect();
    if fields.len() == 1 {
        fields.join("")
    } else {
        format!("({})", fields.join(", "))
    }
}

fn build_object(function: &str, rec: &str, columns: &[TypedColumn], canonical: bool) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| {
            let value = field(rec, &c.name);
            let value = if canonical {
                canonical_json(&value, &c.data_type)
            } else {
                value
            };
            format!("{}, {value}", quote_literal(&c.name))
        })
        .collect();
    format!("{function}({})", parts.join(", "))
}

/// Ordering of two `(version, origin)` stamps: `a > b`. Origins compare bytewise, whatever
/// the database collation, so every node orders them alike.
pub fn stamp_greater(a_version: &str, a_origin: &str, b_version: &str, b_origin: &str) -> String {
    format!(
        "({a_version} > {b_version} OR ({a_version} = {b_version} AND {a_origin} COLLATE \"C\" > {b_origin} COLLATE \"C\"))"
    )
}

/// How a value of this type is made canonical in jsonb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Canonical {
    /// `to_jsonb` already gives one spelling per value.
    AsIs,
    /// Rendered in UTC: `to_jsonb(timestamptz)` follows the session's TimeZone.
    TimestampTz,
    /// Hex: `to_jsonb(bytea)` follows `bytea_output`.
    Bytea,
    /// Trailing zeros removed: `1.0` and `1.00` are the same numeric key.
    Numeric,
    /// Seconds: the text form follows `IntervalStyle`.
    Interval,
}

fn canonical_kind(data_type: &str) -> Canonical {
    let t = data_type
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    if t.ends_with("[]") {
        return Canonical::AsIs;
    }
    if t == "timestamptz"
        || t.starts_with("timestamptz(")
        || (t.starts_with("timestamp") && t.ends_with("with time zone"))
    {
        Canonical::TimestampTz
    } else if t == "bytea" {
        Canonical::Bytea
    } else if t.starts_with("numeric") || t.starts_with("decimal") {
        Canonical::Numeric
    } else if t.starts_with("interval") {
        Canonical::Interval
    } else {
        Canonical::AsIs
    }
}

/// jsonb expression giving one spelling per distinct value of `expr` (of type `data_type`).
pub fn canonical_json(expr: &str, data_type: &str) -> String {
    match canonical_kind(data_type) {
        Canonical::AsIs => format!("pg_catalog.to_jsonb({expr})"),
        Canonical::TimestampTz => format!("pg_catalog.to_jsonb({expr} AT TIME ZONE 'UTC')"),
        Canonical::Bytea => format!("pg_catalog.to_jsonb(pg_catalog.encode({expr}, 'hex'))"),
        Canonical::Numeric => format!("pg_catalog.to_jsonb(pg_catalog.trim_scale({expr}))"),
        Canonical::Interval => format!("pg_catalog.to_jsonb(EXTRACT(EPOCH FROM {expr}))"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_that_print_differently_per_session_are_canonicalised() {
        assert_eq!(canonical_kind("timestamptz"), Canonical::TimestampTz);
        assert_eq!(
            canonical_kind("timestamp(3)  with time zone"),
            Canonical::TimestampTz
        );
        assert_eq!(canonical_kind("timestamp"), Canonical::AsIs);
        assert_eq!(canonical_kind("timestamptz[]"), Canonical::AsIs);
        assert_eq!(canonical_kind("BYTEA"), Canonical::Bytea);
        assert_eq!(canonical_kind("numeric(12,2)"), Canonical::Numeric);
        assert_eq!(canonical_kind("interval"), Canonical::Interval);
        assert_eq!(canonical_kind("text"), Canonical::AsIs);
    }
}
