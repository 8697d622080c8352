//! Which changes run behind the gate, and the tables the gate holds.
//!
//! A change that alters what rows of an existing table carry (a new column, a new type, a new
//! NOT NULL, a new UNIQUE, a partition added or dropped) must not be live on one node while
//! another node still writes or receives rows under the old rule: rows written with a new
//! column would reach a node without it, values under a new UNIQUE could collide with changes
//! in flight, a row of a new partition's range would land in another node's DEFAULT partition
//! (or nowhere), and a row using a new enum label, or written without a new CHECK or domain
//! check, would fail to apply on a node without it or with it. So these changes, and
//! the regenerated functions of their tables, are gated: the engine opens one transaction per
//! node, locks the tables there in EXCLUSIVE mode (local writers and apply workers wait;
//! readers go on), runs every gated change on every node, and commits on every node only once
//! all of them succeeded; any failure before that rolls back every node. Changes already in
//! flight are applied after the commit by the new apply functions, which give a column the
//! change does not name its default (what its own node filled it with) and refuse a change
//! naming a column the node does not have yet, to retry it once the node has it.
//! See docs/evolution.md.

use std::collections::BTreeSet;

use pgconverge_model::catalog::{NodeCatalog, QualifiedName};

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::conflict::naming::{
    internal, per_table_function, APPLY_TRIGGER_KIND, CHANGES_TABLE, LOG_TRIGGER,
    UNKNOWN_CHANGE_FUNCTION,
};

/// The per-table functions the conflict machinery generates.
const TABLE_FUNCTION_KINDS: [&str; 3] = ["stamp", "log", "apply"];

/// Tables one node's gated changes drop.
fn dropped_tables<'a>(changes: impl IntoIterator<Item = &'a Change>) -> BTreeSet<QualifiedName> {
    changes
        .into_iter()
        .filter(|c| c.gated && c.action == Action::Delete)
        .filter_map(|c| match &c.address {
            ObjectAddress::Table { table } => Some(table.clone()),
            _ => None,
        })
        .collect()
}

/// Tables one node's gated changes create.
fn created_tables<'a>(changes: impl IntoIterator<Item = &'a Change>) -> BTreeSet<QualifiedName> {
    changes
        .into_iter()
        .filter(|c| c.gated && c.action == Action::Create)
        .filter_map(|c| match &c.address {
            ObjectAddress::Table { table } => Some(table.clone()),
            _ => None,
        })
        .collect()
}

/// What the gate locks on one node: each existing table its gated changes alter, and the
/// change log. Holding the log, no apply worker is inside a transaction while the tables
/// change (its generated function would otherwise run plans made for the old columns), no
/// change for a new table reaches the node before its apply trigger commits, and local
/// writers to any replicated table wait (their log trigger writes the log). Readers go on.
pub fn gate_locks<'a>(changes: impl IntoIterator<Item = &'a Change> + Clone) -> Vec<QualifiedName> {
    let created = created_tables(changes.clone());
    let types_altered = altered_types(changes.clone());
    let mut locks: Vec<QualifiedName> = changes
        .into_iter()
        .filter(|c| c.gated)
        .filter_map(|c| match (&c.address, c.action) {
            (ObjectAddress::Column { table, .. } | ObjectAddress::Constraint { table, .. }, _)
            | (ObjectAddress::Partition { table, .. }, Action::Create | Action::Delete)
            | (ObjectAddress::Table { table }, Action::Delete) => Some(table.clone()),
            _ => None,
        })
        .filter(|t| !created.contains(t))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !locks.is_empty() || !created.is_empty() || types_altered {
        locks.push(internal(CHANGES_TABLE));
    }
    locks
}

/// Whether one node's gated changes alter a type (a new enum label, a new domain check):
/// holding the change log, no row using the new rule reaches a node before it has it.
fn altered_types<'a>(changes: impl IntoIterator<Item = &'a Change>) -> bool {
    changes
        .into_iter()
        .any(|c| c.gated && matches!(c.address, ObjectAddress::Type { .. }))
}

/// Settles which of one node's changes are gated. On a node already in the mesh (it has the
/// change log): changes to tables it replicates (their log trigger exists), and new tables
/// with everything created for them, so that a new table never exists without its triggers.
/// Then the per-table functions of every gated table, so the new functions go live with the
/// new columns and rules. On a node not replicating yet, nothing is gated.
pub fn settle_gate(node_changes: &mut [Change], observed: &NodeCatalog) {
    let in_mesh = observed.tables.contains_key(&internal(CHANGES_TABLE));
    for change in node_changes.iter_mut() {
        change.gated = in_mesh
            && match (&change.address, change.action) {
                (ObjectAddress::Table { .. }, Action::Create) => true,
                (ObjectAddress::Table { .. }, Action::Delete)
                | (ObjectAddress::Type { .. }, Action::Update) => change.gated,
                (
                    ObjectAddress::Column { table, .. }
                    | ObjectAddress::Constraint { table, .. }
                    | ObjectAddress::Partition { table, .. },
                    _,
                ) => {
                    change.gated
                        && observed
                            .tables
                            .get(table)
                            .is_some_and(|t| t.triggers.iter().any(|tr| tr.name == LOG_TRIGGER))
                }
                _ => false,
            };
    }
    let created = created_tables(node_changes.iter());
    let dropped = dropped_tables(node_changes.iter());
    let altered: BTreeSet<QualifiedName> = gate_locks(node_changes.iter())
        .into_iter()
        .filter(|t| *t != internal(CHANGES_TABLE) && !dropped.contains(t))
        .collect();
    let functions: BTreeSet<QualifiedName> = created
        .iter()
        .chain(&altered)
        .flat_map(|table| {
            TABLE_FUNCTION_KINDS
                .iter()
                .map(move |kind| per_table_function(kind, table))
        })
        .collect();
    let apply_triggers: BTreeSet<String> = created
        .iter()
        .map(|t| per_table_function(APPLY_TRIGGER_KIND, t).name)
        .collect();
    let changes_table = internal(CHANGES_TABLE);
    settle_dropped(node_changes, &dropped);
    for change in node_changes {
        let belongs = match &change.address {
            ObjectAddress::Function { function } => functions.contains(function),
            ObjectAddress::Trigger { table, name } if *table == changes_table => {
                apply_triggers.contains(name)
            }
            address => address.table().is_some_and(|t| created.contains(t)),
        };
        change.gated |= belongs && change.transactional && change.action != Action::Delete;
    }
}

/// A dropped table's triggers and per-table functions are dropped in its gate, before it, and
/// the unknown-change function that lets go of its changes in flight is regenerated there.
fn settle_dropped(node_changes: &mut [Change], dropped: &BTreeSet<QualifiedName>) {
    if dropped.is_empty() {
        return;
    }
    let functions: BTreeSet<QualifiedName> = dropped
        .iter()
        .flat_map(|table| {
            TABLE_FUNCTION_KINDS
                .iter()
                .map(move |kind| per_table_function(kind, table))
        })
        .collect();
    let apply_triggers: BTreeSet<String> = dropped
        .iter()
        .map(|t| per_table_function(APPLY_TRIGGER_KIND, t).name)
        .collect();
    let changes_table = internal(CHANGES_TABLE);
    let unknown_change = internal(UNKNOWN_CHANGE_FUNCTION);
    for change in node_changes {
        let belongs = match (&change.address, change.action) {
            (ObjectAddress::Function { function }, Action::Delete) => functions.contains(function),
            (ObjectAddress::Function { function }, _) => *function == unknown_change,
            (ObjectAddress::Trigger { table, name }, Action::Delete) => {
                dropped.contains(table)
                    || (*table == changes_table && apply_triggers.contains(name))
            }
            _ => false,
        };
        change.gated |= belongs && change.transactional;
    }
}

#[cfg(test)]
mod tests {
    use pgconverge_model::catalog::TableCatalog;

    use super::*;

    fn in_mesh() -> NodeCatalog {
        let mut catalog = NodeCatalog::default();
        catalog
            .tables
            .insert(internal(CHANGES_TABLE), TableCatalog::default());
        catalog
    }

    fn type_change(action: Action) -> Change {
        let mut change = Change::new(
            "n1",
            ObjectAddress::Type {
                name: QualifiedName::new("public", "mood"),
            },
            action,
            Vec::new(),
        );
        change.gated = action == Action::Update;
        change
    }

    #[test]
    fn an_altered_type_is_gated_in_a_mesh_and_holds_the_change_log() {
        let mut changes = vec![type_change(Action::Update), type_change(Action::Create)];
        settle_gate(&mut changes, &in_mesh());
        assert!(changes[0].gated);
        assert!(!changes[1].gated, "a new type is used by nothing yet");
        assert_eq!(gate_locks(changes.iter()), [internal(CHANGES_TABLE)]);

        let mut changes = vec![type_change(Action::Update)];
        settle_gate(&mut changes, &NodeCatalog::default());
        assert!(
            !changes[0].gated,
            "nothing is gated on a node not replicating yet"
        );
    }
}
