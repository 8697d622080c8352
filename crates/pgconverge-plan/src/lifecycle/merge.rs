//! A joining node that holds rows and sets `merge_rows`: what its bootstrap runs around the
//! copy so its rows are merged into the mesh's instead of refused. The rules, and the SQL of
//! each table, are in `conflict::merge`; this module orders them: every table set aside
//! before the copy, the losers recorded, then the winners and kept rows written as local
//! writes with parents before children (foreign keys are checked in origin mode).

use std::collections::BTreeSet;

use pgconverge_model::catalog::QualifiedName;
use pgconverge_model::ClusterConfig;
use serde::{Deserialize, Serialize};

use crate::conflict::merge::{clear_registers_sql, table_merge_sql};
use crate::desired::{tables_with_domain_base_types, DesiredNode, DesiredTable};

/// What a merging joiner runs in its copy transaction besides the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowMergeSpec {
    /// Before the copy (replica mode): each table locked, its rows set aside, emptied; the
    /// joiner's registers cleared.
    pub before_copy_sql: Vec<String>,
    /// After the copy, in order; each statement's affected-row count is what `counts` says.
    pub after_copy: Vec<MergeStatement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeStatement {
    pub table: Option<QualifiedName>,
    pub counts: MergeCount,
    pub sql: String,
}

/// What the rows a merge statement affects are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeCount {
    /// Nothing to count (a setting).
    Nothing,
    /// The joiner's rows that lost to the mesh's version and went to the ledger.
    Lost,
    /// The joiner's writes newer than the mesh's version of their key (or the same write,
    /// which the donor holds and some peers may not), written again.
    Won,
    /// The joiner's rows the mesh had no live version of (and those newer than its tombstone).
    Kept,
}

/// The merge of every table `node` replicates, or `None` when it has none.
pub(super) fn row_merge(config: &ClusterConfig, node: &DesiredNode) -> Option<RowMergeSpec> {
    // Keys are spelled as the conflict machinery spells them (a domain by its base type), so
    // the tombstones the merge looks up are found.
    let tables = tables_with_domain_base_types(config);
    let merges: Vec<(QualifiedName, _)> = parents_first(&node.tables)
        .into_iter()
        .filter_map(|t| {
            tables
                .iter()
                .find(|c| c.schema == t.name.schema && c.name == t.name.name)
        })
        .enumerate()
        .map(|(i, t)| {
            (
                QualifiedName::new(t.schema.clone(), t.name.clone()),
                table_merge_sql(t, i),
            )
        })
        .collect();
    if merges.is_empty() {
        return None;
    }
    let mut before_copy_sql: Vec<String> =
        merges.iter().flat_map(|(_, m)| m.stage.clone()).collect();
    before_copy_sql.extend(clear_registers_sql());
    let statement = |table: &QualifiedName, counts, sql: &String| MergeStatement {
        table: Some(table.clone()),
        counts,
        sql: sql.clone(),
    };
    let mut after_copy: Vec<MergeStatement> = merges
        .iter()
        .map(|(t, m)| statement(t, MergeCount::Lost, &m.record_losers))
        .collect();
    // From here the joiner's own triggers stamp and log what is written, as for any local
    // write, so every node receives it.
    after_copy.push(setting("SET LOCAL session_replication_role = origin"));
    for (t, m) in &merges {
        after_copy.push(statement(t, MergeCount::Won, &m.update_winners));
        after_copy.push(statement(t, MergeCount::Kept, &m.insert_kept));
    }
    // Children before parents: a delete of a parent whose children stay would fail.
    for (t, m) in merges.iter().rev() {
        after_copy.push(statement(t, MergeCount::Won, &m.delete_winners));
    }
    after_copy.push(setting("SET LOCAL session_replication_role = replica"));
    Some(RowMergeSpec {
        before_copy_sql,
        after_copy,
    })
}

fn setting(sql: &str) -> MergeStatement {
    MergeStatement {
        table: None,
        counts: MergeCount::Nothing,
        sql: sql.to_string(),
    }
}

/// `tables` with every table after the tables its foreign keys reference; a cycle keeps
/// config order for the tables in it.
fn parents_first(tables: &[DesiredTable]) -> Vec<&DesiredTable> {
    let names: BTreeSet<&QualifiedName> = tables.iter().map(|t| &t.name).collect();
    fn parents<'t>(
        t: &'t DesiredTable,
        names: &BTreeSet<&QualifiedName>,
    ) -> BTreeSet<&'t QualifiedName> {
        t.foreign_keys
            .iter()
            .map(|fk| &fk.ref_table)
            .filter(|p| names.contains(p) && **p != t.name)
            .collect()
    }
    let mut placed: BTreeSet<&QualifiedName> = BTreeSet::new();
    let mut ordered: Vec<&DesiredTable> = Vec::new();
    let mut rest: Vec<&DesiredTable> = tables.iter().collect();
    while !rest.is_empty() {
        let (mut ready, waiting): (Vec<&DesiredTable>, Vec<&DesiredTable>) = rest
            .into_iter()
            .partition(|t| parents(t, &names).is_subset(&placed));
        rest = waiting;
        if ready.is_empty() {
            // A cycle: the first table left goes next, as configured.
            ready.push(rest.remove(0));
        }
        placed.extend(ready.iter().map(|t| &t.name));
        ordered.extend(ready);
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::ForeignKeySpec;

    fn table(name: &str, parents: &[&str]) -> DesiredTable {
        DesiredTable {
            name: QualifiedName::new("public", name),
            foreign_keys: parents
                .iter()
                .map(|p| ForeignKeySpec {
                    name: format!("{name}_{p}_fkey"),
                    columns: vec!["x".into()],
                    ref_table: QualifiedName::new("public", *p),
                    ref_columns: vec!["id".into()],
                    ..ForeignKeySpec::default()
                })
                .collect(),
            ..DesiredTable::default()
        }
    }

    fn names(tables: Vec<&DesiredTable>) -> Vec<&str> {
        tables.iter().map(|t| t.name.name.as_str()).collect()
    }

    #[test]
    fn parents_come_before_children_and_config_order_is_kept_otherwise() {
        let tables = [
            table("lines", &["orders", "items"]),
            table("orders", &["customers"]),
            table("customers", &[]),
            table("items", &[]),
        ];
        assert_eq!(
            names(parents_first(&tables)),
            ["customers", "items", "orders", "lines"]
        );
    }

    #[test]
    fn a_cycle_falls_back_to_config_order_and_self_references_are_ignored() {
        let tables = [
            table("a", &["b"]),
            table("b", &["a"]),
            table("tree", &["tree"]),
        ];
        assert_eq!(names(parents_first(&tables)), ["tree", "a", "b"]);
    }
}
