//! Indexes. A new table's are built plainly right after it; an existing table's are built
//! concurrently (the table may be in use, so writes go on meanwhile), except on partitioned
//! tables, which PostgreSQL does not index concurrently.
//!
//! An index is compared by its parts (method, keys, INCLUDE columns, predicate), expressions
//! as the server prints them against the configured spelling (`expressions_match`). An index
//! of the configured name whose parts differ is dropped and built again, both concurrently.

use pgconverge_model::catalog::{ConstraintKind, IndexCatalog, TableCatalog};
use pgconverge_model::types::expressions_match;
use pgconverge_sql::quote_ident;

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
                .any(|want| want.name == ix.name || same_index(want, ix))
        })
        .filter_map(|ix| {
            let spec = IndexSpec {
                name: ix.name.clone(),
                ..IndexSpec::default()
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

/// Whether the live index is the desired one: same method, keys, INCLUDE and predicate.
pub(crate) fn same_index(want: &IndexSpec, ix: &IndexCatalog) -> bool {
    let predicate_matches = match (&want.predicate, &ix.predicate) {
        (None, None) => true,
        (Some(wanted), Some(live)) => expressions_match(wanted, live),
        _ => false,
    };
    want.method == ix.method()
        && keys_match(want, ix)
        && want.include == ix.include
        && predicate_matches
}

/// Column keys match by name; expression keys as expressions (a live column key also as its
/// quoted name, which is how an expression names it).
fn keys_match(want: &IndexSpec, ix: &IndexCatalog) -> bool {
    if want.expressions.is_empty() {
        return !ix.expression_keys && want.columns == ix.columns;
    }
    want.expressions.len() == ix.columns.len()
        && want
            .expressions
            .iter()
            .zip(&ix.columns)
            .all(|(wanted, live)| {
                expressions_match(wanted, live)
                    || (!ix.expression_keys && expressions_match(wanted, &quote_ident(live)))
            })
}

/// An index of the same parts, or a key on the same columns for a plain btree index,
/// already serves.
fn served(live: &TableCatalog, index: &IndexSpec) -> bool {
    let plain = index.expressions.is_empty()
        && index.method == "btree"
        && index.include.is_empty()
        && index.predicate.is_none();
    live.indexes.iter().any(|ix| same_index(index, ix))
        || (plain
            && live.constraints.iter().any(|c| {
                matches!(c.kind, ConstraintKind::PrimaryKey | ConstraintKind::Unique)
                    && c.columns == index.columns
            }))
}

/// What differs between the live index and the desired one, for the plan's reason.
fn differences(want: &IndexSpec, ix: &IndexCatalog) -> String {
    let mut parts = Vec::new();
    if want.method != ix.method() {
        parts.push(format!("method {} → {}", ix.method(), want.method));
    }
    if !keys_match(want, ix) {
        let wanted = if want.expressions.is_empty() {
            &want.columns
        } else {
            &want.expressions
        };
        parts.push(format!(
            "keys ({}) → ({})",
            ix.columns.join(", "),
            wanted.join(", ")
        ));
    }
    if want.include != ix.include {
        parts.push(format!(
            "INCLUDE ({}) → ({})",
            ix.include.join(", "),
            want.include.join(", ")
        ));
    }
    let none = || "none".to_string();
    let predicate = |p: &Option<String>| p.clone().unwrap_or_else(none);
    if predicate(&want.predicate) != predicate(&ix.predicate) {
        parts.push(format!(
            "WHERE {} → {}",
            predicate(&ix.predicate),
            predicate(&want.predicate)
        ));
    }
    format!("changed: {}", parts.join(", "))
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
    let changed = live.indexes.iter().find(|ix| ix.name == index.name);
    let concurrently = !live.partitioned;
    let mut statements = Vec::new();
    if left_invalid || changed.is_some() {
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
    let action = if left_invalid || changed.is_some() {
        Action::Replace
    } else {
        Action::Create
    };
    let mut c = input.change(address(table, index), action, statements);
    c.transactional = !concurrently;
    if left_invalid {
        c.reason = Some("left invalid by an interrupted build".into());
    } else if let Some(old) = changed {
        c.reason = Some(differences(index, old));
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

    /// `CREATE INDEX … [USING method] (keys) [INCLUDE (…)] [WHERE …]`; expression keys are
    /// written in parentheses, as an expression key must be.
    pub fn create_index_sql(table: &DesiredTable, index: &IndexSpec, concurrently: bool) -> String {
        let keys = if index.expressions.is_empty() {
            quote_ident_list(&index.columns)
        } else {
            let keys: Vec<String> = index.expressions.iter().map(|e| format!("({e})")).collect();
            keys.join(", ")
        };
        let using = if index.method == "btree" || index.method.is_empty() {
            String::new()
        } else {
            format!(" USING {}", quote_ident(&index.method))
        };
        let mut sql = format!(
            "CREATE INDEX{} {} ON {}{using} ({keys})",
            how(concurrently),
            quote_ident(&index.name),
            table_sql_name(&table.name),
        );
        if !index.include.is_empty() {
            sql.push_str(&format!(" INCLUDE ({})", quote_ident_list(&index.include)));
        }
        if let Some(predicate) = &index.predicate {
            sql.push_str(&format!(" WHERE {predicate}"));
        }
        sql
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
