//! Node lifecycle in the plan: configured nodes join the mesh (bootstrapped from a donor when
//! the mesh already holds data), nodes the state knows but the config no longer names leave
//! it (drained, then unsubscribed everywhere). Pure: the decisions come from the catalogs and
//! the state's managed set; the engine runs the steps.
//!
//! - `membership`: the membership table and the rule for who is already a member.
//! - `bootstrap`: a joining node's copy from its donor (what is copied, what is waited for).
//! - `outside`: the donor's objects outside the model (routines, views, user triggers,
//!   policies, grants) that a bootstrap creates on the joiner.
//! - `removal`: a leaving node's drain and the cleanup of its own objects.

mod bootstrap;
mod membership;
mod merge;
mod outside;
mod removal;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use pgconverge_model::catalog::{NodeCatalog, QualifiedName};
use pgconverge_model::{ClusterConfig, ObjectAddress};
use serde::{Deserialize, Serialize};

use crate::change::Change;
use crate::desired::DesiredNode;
use crate::prereq::Blocker;

pub use bootstrap::{BootstrapSpec, CatchUpWait, TableCopySpec};
pub use membership::{is_member, membership_table};
pub use merge::{MergeCount, MergeStatement, RowMergeSpec};
pub use outside::{describe_carried, CarriedObject};
pub use removal::{DepartingNode, Departure, DrainSpec, DrainWait};

/// Work a step does that involves other nodes than its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LifecycleStep {
    /// Copy the mesh's rows into a joining node, then record it as a member.
    Bootstrap(BootstrapSpec),
    /// Wait until every remaining node has applied what a leaving node wrote.
    Drain(DrainSpec),
}

/// What the lifecycle decisions look at.
pub struct LifecycleInput<'a> {
    pub config: &'a ClusterConfig,
    pub desired: &'a [DesiredNode],
    /// Live catalog of every configured node.
    pub observed: &'a BTreeMap<String, NodeCatalog>,
    /// Nodes leaving the mesh, by name.
    pub departing: &'a BTreeMap<String, DepartingNode>,
    /// Objects pgconverge created, per node (from the state file).
    pub managed: &'a BTreeMap<String, BTreeSet<ObjectAddress>>,
    /// Donor named on the command line for every joining node.
    pub donor: Option<&'a str>,
}

/// The configured tables that hold rows on `node`, as read (only on nodes not yet members).
pub(super) fn tables_holding_rows(input: &LifecycleInput<'_>, node: &str) -> Vec<String> {
    let Some(catalog) = input.observed.get(node) else {
        return Vec::new();
    };
    input
        .config
        .tables
        .iter()
        .map(|t| QualifiedName::new(t.schema.clone(), t.name.clone()))
        .filter(|t| catalog.tables.get(t).and_then(|c| c.has_rows) == Some(true))
        .map(|t| t.to_string())
        .collect()
}

/// The node a new mesh starts from, when no node is a member yet: the one configured node
/// whose replicated tables hold rows and that does not set `merge_rows` (the nodes that set
/// it merge their rows into its), or the first holding rows when all of them set it. Two
/// holders that do not merge are refused: which rows are right is not pgconverge's to guess.
fn seed_node<'a>(input: &LifecycleInput<'a>) -> Result<Option<&'a str>, Blocker> {
    let holding: Vec<(&'a str, bool, Vec<String>)> = input
        .config
        .nodes
        .iter()
        .filter_map(|node| {
            let tables = tables_holding_rows(input, &node.name);
            (!tables.is_empty()).then_some((node.name.as_str(), node.merge_rows, tables))
        })
        .collect();
    let kept: Vec<&(&'a str, bool, Vec<String>)> =
        holding.iter().filter(|(_, merges, _)| !merges).collect();
    match (kept.as_slice(), holding.first()) {
        ([], None) => Ok(None),
        ([], Some((seed, _, _))) | ([(seed, _, _)], _) => Ok(Some(seed)),
        ([first, second, ..], _) => Err(Blocker {
            node: second.0.to_string(),
            setting: "rows before joining".into(),
            current: format!(
                "{} holds rows in {} and {} holds rows in {}",
                first.0,
                first.2.join(", "),
                second.0,
                second.2.join(", ")
            ),
            required: "rows on at most one node when a mesh is formed, unless the others merge theirs".into(),
            fix: format!(
                "keep the rows on the one node the mesh should start from and empty those tables on the others (or point them at empty databases), or set \"merge_rows\": true on the nodes whose rows should be merged into it (docs/adopting.md); {} nodes hold rows",
                kept.len()
            ),
        }),
    }
}

/// The lifecycle part of a plan.
#[derive(Debug, Default)]
pub struct LifecyclePlan {
    pub changes: Vec<Change>,
    pub blockers: Vec<Blocker>,
    /// Every leaving node, reachable or not, for the plan to show.
    pub departures: Vec<Departure>,
}

pub fn plan_lifecycle(input: &LifecycleInput<'_>) -> LifecyclePlan {
    let mut plan = LifecyclePlan::default();
    let members: Vec<&str> = input
        .config
        .nodes
        .iter()
        .filter(|n| {
            input
                .observed
                .get(&n.name)
                .is_some_and(|c| is_member(&n.name, c, input.config))
        })
        .map(|n| n.name.as_str())
        .collect();
    // A mesh formed around a database that already holds rows starts from that node: it
    // joins as it is and the others are bootstrapped from it.
    let seed = if members.is_empty() {
        match seed_node(input) {
            Ok(seed) => seed,
            Err(blocker) => {
                plan.blockers.push(blocker);
                None
            }
        }
    } else {
        None
    };
    let members: Vec<&str> = seed.map_or(members, |s| vec![s]);
    for node in input.desired {
        let Some(observed) = input.observed.get(&node.name) else {
            continue;
        };
        if seed == Some(node.name.as_str()) && observed.membership.is_none() {
            plan.changes.push(membership::bare_join(
                node,
                "holds rows: the mesh starts from this node's data, the others copy it",
            ));
            continue;
        }
        match membership::join_change(input, node, observed, &members) {
            Ok(Some(change)) => plan.changes.push(change),
            Ok(None) => {}
            Err(blocker) => plan.blockers.push(blocker),
        }
    }
    for (name, departing) in input.departing {
        let empty = BTreeSet::new();
        let managed = input.managed.get(name).unwrap_or(&empty);
        plan.changes
            .extend(removal::departure_changes(input, name, departing, managed));
        plan.departures.push(removal::departure(name, departing));
    }
    plan
}
