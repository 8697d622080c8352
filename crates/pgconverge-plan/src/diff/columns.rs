//! Columns of existing tables: added when missing, renamed when the config names their
//! previous name (`renamed_from`), dropped only when the config lists them in
//! `dropped_columns`; type, default and nullability brought to the desired ones.

use pgconverge_model::catalog::{ColumnCatalog, TableCatalog};
use pgconverge_model::types::normalize_type;
use pgconverge_model::units::thousands;

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use pgconverge_model::config::IdentityKind;

use crate::desired::{DesiredColumn, DesiredTable, KeyGenerator};
use crate::diff::generated::{generated_change, GeneratedChange};
use crate::diff::NodeDiffInput;
use crate::hazard::{Hazard, HazardKind};
use crate::preflight::{is_safe_widening, DataCheck};
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let mut out = Vec::new();
    for (table, live) in input.existing_tables() {
        for column in &table.columns {
            let renamed = column
                .renamed_from
                .as_deref()
                .and_then(|old| live.column(old));
            let change = match (live.column(&column.name), renamed) {
                (None, Some(old)) => Some(renamed_column(input, table, column, old)),
                (None, None) => Some(added_column(input, table, column, live)),
                (Some(live_col), _) => altered_column(input, table, column, live_col),
            };
            out.extend(change);
        }
        for dropped in &table.dropped_columns {
            if live.column(dropped).is_some() {
                out.push(dropped_column(input, table, dropped));
            }
        }
    }
    out
}

fn address(table: &DesiredTable, column: &DesiredColumn) -> ObjectAddress {
    ObjectAddress::Column {
        table: table.name.clone(),
        column: column.name.clone(),
    }
}

fn added_column(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    column: &DesiredColumn,
    live: &TableCatalog,
) -> Change {
    let mut c = input.change(
        address(table, column),
        Action::Create,
        vec![Statement::sql(ddl::add_column_sql(table, column))],
    );
    if column.reserved {
        c.reason = reserved_column_reason(live);
    }
    // Rows written with the column must not reach a node without it (see `gate`).
    c.gated = true;
    if column.generated.is_some() {
        c.hazards.push(Hazard::new(
            HazardKind::TableRewrite,
            "adding a generated column computes it for every row, rewriting the table under an exclusive lock",
        ));
    } else if column.not_null && column.default.is_none() {
        c.hazards.push(Hazard::new(
            HazardKind::FailsOnExistingRows,
            "NOT NULL without a default fails if the table has rows",
        ));
        c.data_checks.push(DataCheck::NoRows {
            table: table.name.clone(),
            key: table.primary_key.columns.clone(),
            column: column.name.clone(),
        });
    }
    c
}

/// What adding a reserved column means for the rows a table already holds: they take its
/// constant default (version 0 from no node, the oldest stamp there is), which PostgreSQL
/// stores in the catalog, so no row is rewritten or backfilled and the lock is brief.
fn reserved_column_reason(live: &TableCatalog) -> Option<String> {
    let rows = if live.estimated_rows > 0 {
        format!("~{} existing rows", thousands(live.estimated_rows))
    } else if live.has_rows == Some(true) {
        "existing rows".to_string()
    } else {
        return None;
    };
    Some(format!(
        "{rows} take its constant default, the oldest stamp: nothing rewritten or backfilled"
    ))
}

/// The live column under its previous name, renamed and brought to the desired definition
/// in one step. Gated: changes written under the old name must not meet the new one on some
/// nodes only (the apply functions map the old name to the new, see `gate`).
fn renamed_column(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    column: &DesiredColumn,
    old: &ColumnCatalog,
) -> Change {
    let rename = Statement::sql(ddl::rename_column_sql(table, &old.name, &column.name));
    let mut c = match altered_column(input, table, column, old) {
        Some(mut altered) => {
            altered.statements.insert(0, rename);
            let also = altered.reason.take().unwrap_or_default();
            altered.reason = Some(format!("renamed from {}, {also}", old.name));
            altered
        }
        None => {
            let mut c = input.change(address(table, column), Action::Update, vec![rename]);
            c.reason = Some(format!("renamed from {}", old.name));
            c
        }
    };
    c.gated = true;
    c
}

/// A column the config lists in `dropped_columns`. Gated: changes written with it must not
/// reach a node without it before that node's apply function knows to leave it out.
fn dropped_column(input: &NodeDiffInput<'_>, table: &DesiredTable, name: &str) -> Change {
    let mut c = input.change(
        ObjectAddress::Column {
            table: table.name.clone(),
            column: name.to_string(),
        },
        Action::Delete,
        vec![Statement::sql(ddl::drop_column_sql(table, name))],
    );
    c.reason = Some("listed in dropped_columns".into());
    c.hazards.push(Hazard::new(
        HazardKind::Destructive,
        "drops the column and every value in it on this node",
    ));
    c.gated = true;
    c
}

/// The update bringing a live column to the desired one, if they differ.
fn altered_column(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    column: &DesiredColumn,
    live_col: &ColumnCatalog,
) -> Option<Change> {
    let mut statements = Vec::new();
    let mut reasons = Vec::new();
    let mut hazards = Vec::new();
    let mut data_checks = Vec::new();
    // A new type or NOT NULL must not meet changes written under the old rule (see `gate`).
    let mut gated = false;
    if normalize_type(&live_col.data_type) != column.data_type {
        gated = true;
        if !is_safe_widening(&live_col.data_type, &column.data_type) {
            data_checks.push(DataCheck::ValuesFit {
                table: table.name.clone(),
                key: table.primary_key.columns.clone(),
                column: column.name.clone(),
                to: column.data_type.clone(),
            });
        }
        statements.push(Statement::sql(ddl::alter_type_sql(
            table,
            column,
            live_col.generated.is_none(),
        )));
        reasons.push(format!(
            "type {} → {}",
            live_col.data_type, column.data_type
        ));
        hazards.push(Hazard::new(
            HazardKind::TableRewrite,
            "changing a column type rewrites the table under an exclusive lock",
        ));
    }
    match generated_change(table, column, live_col, input.observed.server_version_num) {
        Some(GeneratedChange::SetExpression(sql, reason, hazard)) => {
            statements.push(Statement::sql(sql));
            reasons.push(reason);
            hazards.push(hazard);
        }
        Some(GeneratedChange::DropExpression(sql, reason)) => {
            statements.push(Statement::sql(sql));
            reasons.push(reason);
        }
        None => {}
    }
    let desired_identity = match &column.generator {
        Some(KeyGenerator::Identity(kind)) => Some(*kind),
        _ => None,
    };
    let identity_matches =
        desired_identity.map(IdentityKind::catalog_code) == live_col.identity.as_deref();
    if !identity_matches {
        // An identity column has no default: the live one goes first.
        if desired_identity.is_some() && live_col.identity.is_none() && live_col.default.is_some() {
            statements.push(Statement::sql(ddl::drop_default_sql(table, column)));
        }
        statements.push(Statement::sql(ddl::identity_sql(
            table,
            column,
            live_col.identity.is_some(),
        )));
        reasons.push(format!(
            "identity {} → {}",
            identity_label(live_col.identity.as_deref()),
            identity_label(desired_identity.map(IdentityKind::catalog_code))
        ));
    } else if !column.default_matches(live_col.default.as_deref()) {
        statements.extend(
            ddl::set_default_sql(table, column)
                .into_iter()
                .map(Statement::sql),
        );
        reasons.push(format!(
            "default {} → {}",
            live_col.default.as_deref().unwrap_or("none"),
            column.default.as_deref().unwrap_or(match column.generator {
                Some(KeyGenerator::Serial { .. }) => "a sequence of its own",
                _ => "none",
            })
        ));
    }
    if live_col.not_null != column.not_null {
        statements.push(Statement::sql(ddl::set_not_null_sql(table, column)));
        reasons.push(
            if column.not_null {
                "NULL → NOT NULL"
            } else {
                "NOT NULL → NULL"
            }
            .into(),
        );
        if column.not_null {
            gated = true;
            hazards.push(Hazard::new(
                HazardKind::FailsOnExistingRows,
                "SET NOT NULL fails if any row holds NULL",
            ));
            data_checks.push(DataCheck::NoNulls {
                table: table.name.clone(),
                key: table.primary_key.columns.clone(),
                column: column.name.clone(),
            });
        }
    }
    if statements.is_empty() {
        return None;
    }
    let mut c = input.change(address(table, column), Action::Update, statements);
    c.reason = Some(reasons.join(", "));
    c.hazards = hazards;
    c.gated = gated;
    c.data_checks = data_checks;
    Some(c)
}

/// `always`, `by default` or `none`, for a column's `attidentity`.
fn identity_label(code: Option<&str>) -> &'static str {
    match code {
        Some("a") => "always",
        Some("d") => "by default",
        _ => "none",
    }
}

pub(super) mod ddl {
    use crate::desired::{object_name, DesiredColumn, DesiredTable, KeyGenerator};
    use crate::diff::generated::ddl::generated_clause;
    use crate::diff::table_sql_name;
    use pgconverge_sql::{quote_ident, quote_literal, quote_qualified};

    /// `"name" type [NOT NULL] [DEFAULT expr | GENERATED … AS IDENTITY]`, as in CREATE TABLE
    /// and ADD COLUMN. A serial column is written with its serial type, which makes its
    /// sequence.
    pub fn column_definition_sql(column: &DesiredColumn) -> String {
        let data_type = match &column.generator {
            Some(KeyGenerator::Serial { serial_type }) => serial_type,
            _ => &column.data_type,
        };
        let mut sql = format!("{} {data_type}", quote_ident(&column.name));
        if column.not_null {
            sql.push_str(" NOT NULL");
        }
        if let Some(expression) = &column.generated {
            sql.push_str(&generated_clause(expression));
            return sql;
        }
        match (&column.generator, &column.default) {
            (Some(KeyGenerator::Identity(kind)), _) => {
                sql.push_str(&format!(" GENERATED {} AS IDENTITY", kind.sql()));
            }
            (Some(KeyGenerator::Serial { .. }), _) | (_, None) => {}
            (_, Some(default)) => sql.push_str(&format!(" DEFAULT {default}")),
        }
        sql
    }

    pub fn rename_column_sql(table: &DesiredTable, old: &str, new: &str) -> String {
        format!(
            "ALTER TABLE {} RENAME COLUMN {} TO {}",
            table_sql_name(&table.name),
            quote_ident(old),
            quote_ident(new)
        )
    }

    pub fn drop_column_sql(table: &DesiredTable, name: &str) -> String {
        format!(
            "ALTER TABLE {} DROP COLUMN {}",
            table_sql_name(&table.name),
            quote_ident(name)
        )
    }

    /// Makes the column an identity column of the desired kind, or no longer one.
    pub fn identity_sql(table: &DesiredTable, column: &DesiredColumn, is_identity: bool) -> String {
        let action = match (&column.generator, is_identity) {
            (Some(KeyGenerator::Identity(kind)), false) => {
                format!("ADD GENERATED {} AS IDENTITY", kind.sql())
            }
            (Some(KeyGenerator::Identity(kind)), true) => format!("SET GENERATED {}", kind.sql()),
            _ => "DROP IDENTITY IF EXISTS".to_string(),
        };
        format!(
            "ALTER TABLE {} ALTER COLUMN {} {action}",
            table_sql_name(&table.name),
            quote_ident(&column.name)
        )
    }

    pub fn drop_default_sql(table: &DesiredTable, column: &DesiredColumn) -> String {
        format!(
            "ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT",
            table_sql_name(&table.name),
            quote_ident(&column.name)
        )
    }

    pub fn add_column_sql(table: &DesiredTable, column: &DesiredColumn) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {}",
            table_sql_name(&table.name),
            column_definition_sql(column)
        )
    }

    /// A new type; with `using`, the values converted by a cast (a generated column takes
    /// no USING: its values are computed again).
    pub fn alter_type_sql(table: &DesiredTable, column: &DesiredColumn, using: bool) -> String {
        let col = quote_ident(&column.name);
        let ty = &column.data_type;
        let using = if using {
            format!(" USING {col}::{ty}")
        } else {
            String::new()
        };
        format!(
            "ALTER TABLE {} ALTER COLUMN {col} TYPE {ty}{using}",
            table_sql_name(&table.name),
        )
    }

    /// SET DEFAULT the desired default, or DROP DEFAULT when there is none. A serial column
    /// that lost its default gets a sequence of its own again, owned by the column.
    pub fn set_default_sql(table: &DesiredTable, column: &DesiredColumn) -> Vec<String> {
        let name = table_sql_name(&table.name);
        let col = quote_ident(&column.name);
        if let Some(KeyGenerator::Serial { .. }) = &column.generator {
            let sequence = quote_qualified(
                &table.name.schema,
                &object_name(&[&table.name.name, &column.name], "seq"),
            );
            return vec![
                format!(
                    "CREATE SEQUENCE IF NOT EXISTS {sequence} AS {} OWNED BY {name}.{col}",
                    column.data_type
                ),
                format!(
                    "ALTER TABLE {name} ALTER COLUMN {col} SET DEFAULT pg_catalog.nextval({}::regclass)",
                    quote_literal(&sequence)
                ),
            ];
        }
        vec![match &column.default {
            Some(expr) => format!("ALTER TABLE {name} ALTER COLUMN {col} SET DEFAULT {expr}"),
            None => format!("ALTER TABLE {name} ALTER COLUMN {col} DROP DEFAULT"),
        }]
    }

    /// SET or DROP NOT NULL as the desired column says.
    pub fn set_not_null_sql(table: &DesiredTable, column: &DesiredColumn) -> String {
        format!(
            "ALTER TABLE {} ALTER COLUMN {} {} NOT NULL",
            table_sql_name(&table.name),
            quote_ident(&column.name),
            if column.not_null { "SET" } else { "DROP" }
        )
    }
}
