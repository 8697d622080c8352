//! Node lifecycle in the plan: configured nodes join the mesh (bootstrapped from a donor when
//! the mesh already holds data), nodes the state knows but the config no longer names leave
//! it (drained, then unsubscribed everywhere). Pure: the decisions come from the catalogs and
//! the state's managed set; the engine runs the steps.
//!
//! - `membership`: the membership table and the rule for who is already a member.
//! - `bootstrap`: a joining node's copy from its donor (what is copied, what is waited for).
//! - `removal`: a leaving node's drain and the cleanup of its own objects.

mod bootstrap;
mod membership;
mod removal;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use pgconverge_model::catalog::NodeCatalog;
use pgconverge_model::{ClusterConfig, ObjectAddress};
use serde::{Deserialize, Serialize};

use crate::change::Change;
use crate::desired::DesiredNode;
use crate::prereq::Blocker;

pub use bootstrap::{BootstrapSpec, CatchUpWait, TableCopySpec};
pub use membership::{is_member, membership_table};
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
    for node in input.desired {
        let Some(observed) = input.observed.get(&node.name) else {
            continue;
        };
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
