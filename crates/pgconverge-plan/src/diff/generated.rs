//! Generated columns of existing tables: what brings a live column to the configured
//! expression, and what cannot be done in place (a blocker naming the way around).
//!
//! An expression changes in place with `ALTER COLUMN … SET EXPRESSION` (PostgreSQL 17 and
//! newer; it rewrites the table). PostgreSQL 16 has no such command: dropping and adding the
//! column instead would silently drop the indexes and constraints on it, so the plan stops
//! with a blocker saying how to do it under a new name. An ordinary column cannot become a
//! generated one in place on any version (the same way round); a generated column becomes an
//! ordinary one, keeping its values, with `DROP EXPRESSION`.

use pgconverge_model::catalog::{ColumnCatalog, NodeCatalog};
use pgconverge_model::types::expressions_match;

use crate::desired::{DesiredColumn, DesiredNode, DesiredTable};
use crate::hazard::{Hazard, HazardKind};
use crate::prereq::Blocker;

/// First server version with `ALTER COLUMN … SET EXPRESSION`.
pub const SET_EXPRESSION_VERSION_NUM: u32 = 170000;

/// What the column's generation needs, if it differs from the live one.
pub(super) enum GeneratedChange {
    /// `SET EXPRESSION AS (…)`: the statement, its reason and hazard.
    SetExpression(String, String, Hazard),
    /// `DROP EXPRESSION`: the column keeps its values and becomes ordinary.
    DropExpression(String, String),
}

/// How the live column's generation becomes the desired one; `None` when it is already, or
/// when only a blocker can say what to do (see [`blockers`]).
pub(super) fn generated_change(
    table: &DesiredTable,
    column: &DesiredColumn,
    live: &ColumnCatalog,
    server_version_num: u32,
) -> Option<GeneratedChange> {
    match (&column.generated, &live.generated) {
        (Some(wanted), Some(current)) if !expressions_match(wanted, current) => {
            (server_version_num >= SET_EXPRESSION_VERSION_NUM).then(|| {
                GeneratedChange::SetExpression(
                    ddl::set_expression_sql(table, column, wanted),
                    format!("generated {current} → {wanted}"),
                    Hazard::new(
                        HazardKind::TableRewrite,
                        "a new generated expression rewrites the table under an exclusive lock",
                    ),
                )
            })
        }
        (None, Some(current)) => Some(GeneratedChange::DropExpression(
            ddl::drop_expression_sql(table, column),
            format!("generated {current} → an ordinary column keeping its values"),
        )),
        _ => None,
    }
}

/// Generated columns this node cannot bring to the config in place.
pub fn blockers(node: &DesiredNode, observed: &NodeCatalog) -> Vec<Blocker> {
    let mut out = Vec::new();
    for table in &node.tables {
        let Some(live_table) = observed.tables.get(&table.name) else {
            continue;
        };
        for column in &table.columns {
            let Some(wanted) = &column.generated else {
                continue;
            };
            let Some(live) = live_table.column(&column.name) else {
                continue;
            };
            let blocker = |current: &str, required: &str, fix: &str| Blocker {
                node: node.name.clone(),
                setting: format!("generated column {}.{}", table.name, column.name),
                current: current.to_string(),
                required: required.to_string(),
                fix: fix.to_string(),
            };
            match &live.generated {
                None => out.push(blocker(
                    "an ordinary column",
                    &format!("GENERATED ALWAYS AS ({wanted}) STORED"),
                    "PostgreSQL cannot make an existing column generated: configure the generated column under a new name and list this one in dropped_columns",
                )),
                Some(current)
                    if !expressions_match(wanted, current)
                        && observed.server_version_num < SET_EXPRESSION_VERSION_NUM =>
                {
                    out.push(blocker(
                        &format!("GENERATED ALWAYS AS ({current}) on PostgreSQL {}", observed.server_version),
                        &format!("GENERATED ALWAYS AS ({wanted}), which needs ALTER COLUMN … SET EXPRESSION (PostgreSQL 17)"),
                        "upgrade the node to PostgreSQL 17 or newer, or configure the new expression under a new column name and list this one in dropped_columns",
                    ))
                }
                Some(_) => {}
            }
        }
    }
    out
}

pub(super) mod ddl {
    use crate::desired::{DesiredColumn, DesiredTable};
    use crate::diff::table_sql_name;
    use pgconverge_sql::quote_ident;

    /// ` GENERATED ALWAYS AS (expr) STORED`, as in a column definition.
    pub fn generated_clause(expression: &str) -> String {
        format!(" GENERATED ALWAYS AS ({expression}) STORED")
    }

    pub fn set_expression_sql(
        table: &DesiredTable,
        column: &DesiredColumn,
        expression: &str,
    ) -> String {
        format!(
            "ALTER TABLE {} ALTER COLUMN {} SET EXPRESSION AS ({expression})",
            table_sql_name(&table.name),
            quote_ident(&column.name)
        )
    }

    pub fn drop_expression_sql(table: &DesiredTable, column: &DesiredColumn) -> String {
        format!(
            "ALTER TABLE {} ALTER COLUMN {} DROP EXPRESSION",
            table_sql_name(&table.name),
            quote_ident(&column.name)
        )
    }
}
