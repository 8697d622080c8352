//! Indexes. A new table's are built plainly right after it; an existing table's are built
//! concurrently (the table may be in use, so writes go on meanwhile), except on partitioned
//! tables, which PostgreSQL does not index concurrently.

use pgconverge_model::catalog::{ConstraintKind, TableCatalog};

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::desired::{DesiredTable, IndexSpec};
use crate::diff::NodeDiffInput;
use crate::hazard::{Hazard, HazardKind};
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let mut out = Vec::new();
    for table in &input.desired.tables {
        match input.observed.tables.get(&table.name) {
            None => out.extend(table.indexes.iter().map(|index| {
                input.change(
                    address(table, index),
                    Action::Create,
                    vec![Statement::sql(ddl::create_index_sql(table, index, false))],
                )
            })),
            Some(live) => {
                out.extend(
                    table
                        .indexes
                        .iter()
                        .filter_map(|index| existing_table_index(input, table, index, live)),
                );
                out.extend(unwanted_indexes(input, table, live));
            }
        }
    }
    out
}

fn address(table: &DesiredTable, index: &IndexSpec) -> ObjectAddress {
    ObjectAddress::Index {
        table: table.name.clone(),
        name: index.name.clone(),
    }
}

/// Indexes pgconverge created that the config no longer has, dropped concurrently (writes go
/// on) except on partitioned tables.
fn unwanted_indexes(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    live: &TableCatalog,
) -> Vec<Change> {
    live.indexes
        .iter()
        .filter(|ix| {
            !table
                .indexes
                .iter()
                .any(|want| want.name == ix.name || want.columns == ix.columns)
        })
        .filter_map(|ix| {
            let spec = IndexSpec {
                name: ix.name.clone(),
                columns: ix.columns.clone(),
            };
            let at = address(table, &spec);
            if !input.managed.contains(&at) {
                return None;
            }
            let concurrently = !live.partitioned;
            let mut change = input.change(
                at,
                Action::Delete,
                vec![Statement::sql(ddl::drop_index_sql(
                    table,
                    &spec,
                    concurrently,
                ))],
            );
            change.transactional = !concurrently;
            change.reason = Some("no longer in the config".into());
            Some(change)
        })
        .collect()
}

/// An index or key on the same columns already serves.
fn served(live: &TableCatalog, index: &IndexSpec) -> bool {
    live.indexes.iter().any(|ix| ix.columns == index.columns)
        || live.constraints.iter().any(|c| {
            matches!(c.kind, ConstraintKind::PrimaryKey | ConstraintKind::Unique)
                && c.columns == index.columns
        })
}

/// Builds a missing index, or rebuilds one an interrupted build left invalid under the name.
fn existing_table_index(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    index: &IndexSpec,
    live: &TableCatalog,
) -> Option<Change> {
    let left_invalid = live.invalid_indexes.contains(&index.name);
    if served(live, index) && !left_invalid {
        return None;
    }
    let concurrently = !live.partitioned;
    let mut statements = Vec::new();
    if left_invalid {
        statements.push(Statement::sql(ddl::drop_index_sql(
            table,
            index,
            concurrently,
        )));
    }
    statements.push(Statement::sql(ddl::create_index_sql(
        table,
        index,
        concurrently,
    )));
    if concurrently {
        // A concurrent build waits for every transaction older than it, anywhere in the
        // database: the session's lock_timeout would cancel it behind any long query and
        // leave an invalid index. It may wait as long as it needs; the timeout comes back
        // for the steps after it.
        statements.insert(0, Statement::sql(ddl::lift_lock_timeout_sql()));
        statements.push(Statement::sql(ddl::restore_lock_timeout_sql()));
    }
    let action = if left_invalid {
        Action::Replace
    } else {
        Action::Create
    };
    let mut c = input.change(address(table, index), action, statements);
    c.transactional = !concurrently;
    if left_invalid {
        c.reason = Some("left invalid by an interrupted build".into());
    }
    c.hazards.push(if concurrently {
        Hazard::new(
            HazardKind::WaitsForTransactions,
            "builds concurrently: writes continue, but the build waits for transactions \
             already running",
        )
    } else {
        Hazard::new(
            HazardKind::BlocksWrites,
            "builds the index under a lock that blocks writes to the partitioned table",
        )
    });
    Some(c)
}

pub(super) mod ddl {
    use pgconverge_model::naming::SESSION_LOCK_TIMEOUT;

    use crate::desired::{DesiredTable, IndexSpec};
    use crate::diff::table_sql_name;
    use pgconverge_sql::{quote_ident, quote_ident_list, quote_literal, quote_qualified};

    fn how(concurrently: bool) -> &'static str {
        if concurrently {
            " CONCURRENTLY"
        } else {
            ""
        }
    }

    pub fn create_index_sql(table: &DesiredTable, index: &IndexSpec, concurrently: bool) -> String {
        format!(
            "CREATE INDEX{} {} ON {} ({})",
            how(concurrently),
            quote_ident(&index.name),
            table_sql_name(&table.name),
            quote_ident_list(&index.columns)
        )
    }

    /// Drops the index of that name in the table's schema, if any.
    pub fn drop_index_sql(table: &DesiredTable, index: &IndexSpec, concurrently: bool) -> String {
        format!(
            "DROP INDEX{} IF EXISTS {}",
            how(concurrently),
            quote_qualified(&table.name.schema, &index.name)
        )
    }

    /// No lock timeout for the statements that follow in the session.
    pub fn lift_lock_timeout_sql() -> &'static str {
        "SET lock_timeout = 0"
    }

    /// The session's usual lock timeout back.
    pub fn restore_lock_timeout_sql() -> String {
        format!("SET lock_timeout = {}", quote_literal(SESSION_LOCK_TIMEOUT))
    }
}
