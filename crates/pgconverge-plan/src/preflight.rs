//! Preflight checks: what a change needs of the rows already on its node (no duplicates under
//! a new UNIQUE, no NULL under a new NOT NULL, values that read as a new type), checked on
//! every node before any node is changed, so a plan that would fail half-way stops whole.
//!
//! The checks are values built by the diff beside the change that needs them; this module
//! gives each its query and its sentence. Running them is the engine's job.

use pgconverge_model::catalog::QualifiedName;
use pgconverge_model::types::normalize_type;
use pgconverge_sql::{quote_ident, quote_literal, quote_qualified};
use serde::{Deserialize, Serialize};

/// A condition the rows of one table must meet for a change to succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataCheck {
    /// A new UNIQUE constraint: no two rows share the same non-NULL values.
    NoDuplicates {
        table: QualifiedName,
        /// The primary key's columns, to name sample rows.
        key: Vec<String>,
        columns: Vec<String>,
    },
    /// A new NOT NULL: no row holds NULL in the column.
    NoNulls {
        table: QualifiedName,
        key: Vec<String>,
        column: String,
    },
    /// A column added NOT NULL without a default: the table holds no row.
    NoRows {
        table: QualifiedName,
        key: Vec<String>,
        column: String,
    },
    /// A new CHECK constraint: no row makes its expression false.
    ChecksHold {
        table: QualifiedName,
        key: Vec<String>,
        /// The constraint's name.
        name: String,
        /// Its expression as configured.
        expression: String,
    },
    /// A new check of a domain: no value of a column of the domain makes it false.
    DomainChecksHold {
        table: QualifiedName,
        key: Vec<String>,
        column: String,
        /// The domain's base type, which the value is read as.
        base_type: String,
        /// The check's name.
        name: String,
        /// Its expression, in which the value is `VALUE`.
        expression: String,
    },
    /// A type change that is not a known widening: every value reads as the new type.
    ValuesFit {
        table: QualifiedName,
        key: Vec<String>,
        column: String,
        to: String,
    },
    /// A new partition next to a DEFAULT partition (`table`): the DEFAULT partition holds
    /// no row of the new partition's range (`predicate`, from its bounds), which PostgreSQL
    /// would refuse to create the partition over.
    NoRowsInPartitionRange {
        table: QualifiedName,
        key: Vec<String>,
        partition: String,
        predicate: String,
    },
}

/// What a failed check found on one node: how many rows (or groups of duplicates) break
/// it, and one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataViolation {
    pub node: String,
    pub check: DataCheck,
    pub count: i64,
    pub sample: String,
}

impl DataCheck {
    pub fn table(&self) -> &QualifiedName {
        match self {
            DataCheck::NoDuplicates { table, .. }
            | DataCheck::NoNulls { table, .. }
            | DataCheck::NoRows { table, .. }
            | DataCheck::ChecksHold { table, .. }
            | DataCheck::DomainChecksHold { table, .. }
            | DataCheck::ValuesFit { table, .. }
            | DataCheck::NoRowsInPartitionRange { table, .. } => table,
        }
    }

    /// A query returning no row when the check holds, else one row: a sample (text) and
    /// how many rows or duplicate groups break it (int8). Reads only; one scan of the table.
    pub fn sql(&self) -> String {
        let table = quote_qualified(&self.table().schema, &self.table().name);
        match self {
            DataCheck::NoDuplicates { key, columns, .. } => {
                let cols = column_list(columns);
                let not_null = columns
                    .iter()
                    .map(|c| format!("{} IS NOT NULL", quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                format!(
                    "SELECT pg_catalog.format('%s held by keys %s', ROW({cols})::text, \
                     pg_catalog.array_to_string((pg_catalog.array_agg(ROW({keys})::text))[1:3], ', ')), \
                     pg_catalog.count(*) OVER ()::int8 \
                     FROM {table} WHERE {not_null} GROUP BY {cols} HAVING pg_catalog.count(*) > 1 LIMIT 1",
                    keys = column_list(key),
                )
            }
            DataCheck::NoNulls { key, column, .. } => format!(
                "SELECT ROW({})::text, pg_catalog.count(*) OVER ()::int8 FROM {table} \
                 WHERE {} IS NULL LIMIT 1",
                column_list(key),
                quote_ident(column)
            ),
            // NULL passes a CHECK, as it does here: only rows where it is false are found.
            DataCheck::ChecksHold {
                key, expression, ..
            } => format!(
                "SELECT ROW({})::text, pg_catalog.count(*) OVER ()::int8 FROM {table} \
                 WHERE NOT ({expression}) LIMIT 1",
                column_list(key)
            ),
            // Only the key's text and the value are in scope, so `VALUE` can name nothing else.
            DataCheck::DomainChecksHold {
                key,
                column,
                base_type,
                expression,
                ..
            } => format!(
                "SELECT s.key_text, pg_catalog.count(*) OVER ()::int8 FROM \
                 (SELECT ROW({})::text AS key_text, {}::{base_type} AS value FROM {table}) AS s \
                 WHERE NOT ({expression}) LIMIT 1",
                column_list(key),
                quote_ident(column)
            ),
            DataCheck::NoRows { key, .. } => format!(
                "SELECT ROW({})::text, pg_catalog.count(*) OVER ()::int8 FROM {table} LIMIT 1",
                column_list(key)
            ),
            DataCheck::ValuesFit {
                key, column, to, ..
            } => format!(
                "SELECT ROW({})::text, pg_catalog.count(*) OVER ()::int8 FROM {table} \
                 WHERE {col} IS NOT NULL AND NOT pg_catalog.pg_input_is_valid({col}::text, {ty}) LIMIT 1",
                column_list(key),
                col = quote_ident(column),
                ty = quote_literal(to)
            ),
            DataCheck::NoRowsInPartitionRange { key, predicate, .. } => format!(
                "SELECT ROW({})::text, pg_catalog.count(*) OVER ()::int8 FROM {table} \
                 WHERE {predicate} LIMIT 1",
                column_list(key)
            ),
        }
    }

    /// The rule as a person reads it, without the finding.
    pub fn rule(&self) -> String {
        match self {
            DataCheck::NoDuplicates { columns, .. } => {
                format!(
                    "new UNIQUE ({}) needs no duplicate values",
                    columns.join(", ")
                )
            }
            DataCheck::NoNulls { column, .. } => {
                format!("NOT NULL on {column} needs no NULL in it")
            }
            DataCheck::NoRows { column, .. } => {
                format!("column {column} added NOT NULL without a default needs an empty table")
            }
            DataCheck::ChecksHold {
                name, expression, ..
            } => format!("new CHECK {name} ({expression}) needs every row to pass it"),
            DataCheck::DomainChecksHold {
                column,
                name,
                expression,
                ..
            } => format!(
                "new domain check {name} ({expression}) needs every value of {column} to pass it"
            ),
            DataCheck::ValuesFit { column, to, .. } => {
                format!("type change of {column} to {to} needs every value to read as {to}")
            }
            DataCheck::NoRowsInPartitionRange { partition, .. } => format!(
                "new partition {partition} needs no row of its range in this DEFAULT partition; move them out first"
            ),
        }
    }
}

impl DataViolation {
    /// `n2, public.users: new UNIQUE (email) needs no duplicate values; 2 duplicate groups,
    /// e.g. (a@x) held by keys (1), (7)`.
    pub fn message(&self) -> String {
        let (what, sample_is) = match self.check {
            DataCheck::NoDuplicates { .. } => ("duplicate value groups", "e.g."),
            DataCheck::NoRows { .. } => ("rows", "e.g. key"),
            _ => ("rows break it", "e.g. key"),
        };
        format!(
            "node {}, table {}: {}; {} {what}, {sample_is} {}",
            self.node,
            self.check.table(),
            self.check.rule(),
            self.count,
            self.sample
        )
    }
}

/// `"a", "b"`.
fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether every value of type `from` reads as type `to` (both as `format_type` prints
/// them), so a type change needs no look at the rows.
pub fn is_safe_widening(from: &str, to: &str) -> bool {
    let (from, to) = (normalize_type(from), normalize_type(to));
    if from == to || to == "text" || to == "character varying" {
        return true;
    }
    const INTEGERS: [&str; 3] = ["smallint", "integer", "bigint"];
    let rank = |t: &str| INTEGERS.iter().position(|i| *i == t);
    if let (Some(f), Some(t)) = (rank(&from), rank(&to)) {
        return f <= t;
    }
    if rank(&from).is_some() && to == "numeric" {
        return true;
    }
    matches!(
        (from.as_str(), to.as_str()),
        ("real", "double precision") | ("timestamp without time zone", "timestamp with time zone")
    ) || varchar_widens(&from, &to)
}

/// `character varying(n)` to `character varying(m)` with m ≥ n.
fn varchar_widens(from: &str, to: &str) -> bool {
    let length = |t: &str| {
        t.strip_prefix("character varying(")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|n| n.parse::<u32>().ok())
    };
    matches!((length(from), length(to)), (Some(f), Some(t)) if f <= t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> QualifiedName {
        QualifiedName {
            schema: "public".into(),
            name: "users".into(),
        }
    }

    #[test]
    fn widenings_need_no_look_at_rows_and_narrowings_do() {
        for (from, to, safe) in [
            ("integer", "bigint", true),
            ("smallint", "integer", true),
            ("bigint", "integer", false),
            ("integer", "numeric", true),
            ("numeric", "integer", false),
            ("character varying(10)", "character varying(20)", true),
            ("character varying(20)", "character varying(10)", false),
            ("character varying(20)", "text", true),
            ("text", "character varying(5)", false),
            ("real", "double precision", true),
            ("text", "uuid", false),
        ] {
            assert_eq!(is_safe_widening(from, to), safe, "{from} → {to}");
        }
    }

    #[test]
    fn queries_quote_every_name_and_literal() {
        let check = DataCheck::ValuesFit {
            table: users(),
            key: vec!["id".into()],
            column: "we\"ird".into(),
            to: "character varying(3)".into(),
        };
        assert_eq!(
            check.sql(),
            "SELECT ROW(id)::text, pg_catalog.count(*) OVER ()::int8 FROM public.users \
             WHERE \"we\"\"ird\" IS NOT NULL AND NOT pg_catalog.pg_input_is_valid(\"we\"\"ird\"::text, \
             'character varying(3)') LIMIT 1"
        );
    }

    #[test]
    fn a_violation_names_node_table_rule_count_and_sample() {
        let violation = DataViolation {
            node: "n2".into(),
            check: DataCheck::NoDuplicates {
                table: users(),
                key: vec!["id".into()],
                columns: vec!["email".into()],
            },
            count: 2,
            sample: "(a@x) held by keys (1), (7)".into(),
        };
        assert_eq!(
            violation.message(),
            "node n2, table public.users: new UNIQUE (email) needs no duplicate values; \
             2 duplicate value groups, e.g. (a@x) held by keys (1), (7)"
        );
    }
}
