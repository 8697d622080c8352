//! Diff of one node's desired state against its live catalog: a list of typed changes.
//!
//! Objects are matched by what they are (a unique constraint by its columns, an index by its
//! columns), not only by name, so equivalent hand-made objects are accepted. Nothing is dropped
//! unless pgconverge created it (the state's `managed` set).
//!
//! One file per object kind. Its `diff` is the comparison: it matches desired against live
//! and decides the action, the reason and the hazards. Its `ddl` submodule holds the pure
//! builders that turn desired or live values into SQL and know nothing of the comparison
//! (kinds whose SQL comes ready-made, as internal tables, have none). A new object kind is
//! a new file and one line in `KINDS`.

mod checks;
mod columns;
mod constraints;
mod functions;
pub mod generated;
mod indexes;
mod internal_tables;
pub mod key_sequences;
pub(crate) mod partitions;
pub(crate) mod publication;
mod replica_identity;
mod schemas;
pub(crate) mod slots;
pub mod sql_files;
pub(crate) mod subscriptions;
mod tables;
mod triggers;
pub(crate) mod types;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod types_tests;

use std::collections::{BTreeMap, BTreeSet};

use pgconverge_model::catalog::{NodeCatalog, QualifiedName, TableCatalog};

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::desired::{DesiredNode, DesiredTable};
use crate::statement::Statement;
use pgconverge_sql::quote_qualified;

/// Everything the diff of one node looks at.
pub struct NodeDiffInput<'a> {
    pub desired: &'a DesiredNode,
    pub observed: &'a NodeCatalog,
    /// Catalogs of every node by name (a subscription needs its publisher's slots).
    pub cluster: &'a BTreeMap<String, NodeCatalog>,
    /// Addresses pgconverge created on this node (from the state file).
    pub managed: &'a BTreeSet<ObjectAddress>,
    /// Slot names that some desired subscription in the cluster will use on this node.
    pub desired_slots_here: &'a BTreeSet<String>,
    /// Every node's key slot (`key_sequences::assign_key_slots`).
    pub key_slots: &'a key_sequences::KeySlots,
}

/// The diff of one object kind on one node.
type KindDiff = fn(&NodeDiffInput<'_>) -> Vec<Change>;

/// Every object kind, in the order their changes are listed; `dag` orders them for running.
const KINDS: &[KindDiff] = &[
    schemas::diff,
    internal_tables::diff,
    types::diff,
    tables::diff,
    columns::diff,
    constraints::diff,
    checks::diff,
    indexes::diff,
    partitions::diff,
    key_sequences::diff,
    replica_identity::diff,
    functions::diff,
    triggers::diff,
    publication::diff,
    subscriptions::diff,
    slots::diff_missing,
    slots::diff_orphans,
    sql_files::diff,
];

pub fn diff_node(input: &NodeDiffInput<'_>) -> Vec<Change> {
    KINDS
        .iter()
        .flat_map(|diff_kind| diff_kind(input))
        .collect()
}

impl NodeDiffInput<'_> {
    /// A change on this node with nothing but its address, action and statements filled in.
    fn change(&self, address: ObjectAddress, action: Action, statements: Vec<Statement>) -> Change {
        Change::new(&self.desired.name, address, action, statements)
    }

    /// Desired tables that already exist, with their live catalog.
    fn existing_tables(&self) -> impl Iterator<Item = (&DesiredTable, &TableCatalog)> + '_ {
        self.desired
            .tables
            .iter()
            .filter_map(|t| self.observed.tables.get(&t.name).map(|live| (t, live)))
    }

    /// Desired tables that do not exist yet.
    fn new_tables(&self) -> impl Iterator<Item = &DesiredTable> + '_ {
        self.desired
            .tables
            .iter()
            .filter(|t| !self.observed.tables.contains_key(&t.name))
    }

    /// Whether pgconverge created the object at `address` on this node.
    fn manages(&self, address: &ObjectAddress) -> bool {
        self.managed.contains(address)
    }
}

/// A table's name as SQL: `"schema"."name"`.
fn table_sql_name(name: &QualifiedName) -> String {
    quote_qualified(&name.schema, &name.name)
}
