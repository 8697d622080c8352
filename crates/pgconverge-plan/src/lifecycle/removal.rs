//! A node leaving the mesh: the state names it, the config no longer does. If it can be
//! reached it is drained first (every remaining node applies what it wrote), then it stops
//! subscribing and its own subscriptions, publication and slots go; the remaining nodes drop
//! their subscriptions to it and the slots it used (see `diff::subscriptions` and
//! `diff::slots`, which treat them as objects no longer desired). If it cannot be reached the
//! remaining nodes are cleaned up all the same, so none of their slots keeps WAL for it.

use std::collections::BTreeSet;

use pgconverge_model::catalog::NodeCatalog;
use pgconverge_model::naming::{subscription_name, INTERNAL_SCHEMA, MEMBERSHIP_TABLE};
use pgconverge_model::ObjectAddress;
use serde::{Deserialize, Serialize};

use super::{LifecycleInput, LifecycleStep};
use crate::change::{Action, Change};
use crate::diff::publication::ddl::drop_publication_sql;
use crate::diff::slots::ddl::drop_slot_sql;
use crate::diff::subscriptions::ddl::detach_and_drop_subscription;
use crate::hazard::{Hazard, HazardKind};
use crate::statement::Statement;
use pgconverge_sql::{quote_ident, quote_qualified};

/// A node the state knows and the config no longer names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepartingNode {
    Reachable(Box<NodeCatalog>),
    Unreachable { error: String },
}

/// A leaving node as the plan shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Departure {
    pub node: String,
    /// Why it could not be read; `None` when it was.
    pub unreachable: Option<String>,
}

/// What a drain waits for: each remaining node confirming, on its slot on the leaving node,
/// the leaving node's WAL position taken when the drain starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainSpec {
    pub waits: Vec<DrainWait>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainWait {
    /// The remaining node that subscribes to the leaving one.
    pub subscriber: String,
    /// Its slot on the leaving node.
    pub slot: String,
}

pub(super) fn departure(name: &str, departing: &DepartingNode) -> Departure {
    Departure {
        node: name.to_string(),
        unreachable: match departing {
            DepartingNode::Reachable(_) => None,
            DepartingNode::Unreachable { error } => Some(error.clone()),
        },
    }
}

/// The changes on the leaving node itself: nothing when it cannot be reached.
pub(super) fn departure_changes(
    input: &LifecycleInput<'_>,
    name: &str,
    departing: &DepartingNode,
    managed: &BTreeSet<ObjectAddress>,
) -> Vec<Change> {
    let DepartingNode::Reachable(catalog) = departing else {
        return Vec::new();
    };
    let mut changes = vec![drain_change(input, name, catalog)];
    for sub in catalog.subscriptions.keys() {
        let address = ObjectAddress::Subscription { name: sub.clone() };
        if managed.contains(&address) {
            let mut c = Change::new(
                name,
                address,
                Action::Delete,
                detach_and_drop_subscription(sub),
            );
            c.transactional = false;
            c.reason = Some("the node leaves the mesh".into());
            changes.push(c);
        }
    }
    for publication in catalog.publications.keys() {
        let address = ObjectAddress::Publication {
            name: publication.clone(),
        };
        if managed.contains(&address) {
            let sql = drop_publication_sql(publication);
            changes.push(Change::new(
                name,
                address,
                Action::Delete,
                vec![Statement::sql(sql)],
            ));
        }
    }
    for slot in catalog.slots.keys() {
        let address = ObjectAddress::Slot { name: slot.clone() };
        if managed.contains(&address) {
            let sql = drop_slot_sql(slot);
            let mut c = Change::new(name, address, Action::Delete, vec![Statement::sql(sql)]);
            c.transactional = false;
            c.reason = Some("the node leaves the mesh; it would retain WAL".into());
            changes.push(c);
        }
    }
    changes
}

/// The drain: wait until every remaining node subscribing to `name` has applied what it
/// wrote, then stop its subscriptions (their walsenders on the remaining nodes exit, so the
/// slots there can go) and delete its membership record.
fn drain_change(input: &LifecycleInput<'_>, name: &str, catalog: &NodeCatalog) -> Change {
    let waits: Vec<DrainWait> = input
        .config
        .nodes
        .iter()
        .map(|n| DrainWait {
            subscriber: n.name.clone(),
            slot: subscription_name(&n.name, name),
        })
        .filter(|w| catalog.slots.contains_key(&w.slot))
        .collect();
    let mut statements: Vec<Statement> = catalog
        .subscriptions
        .iter()
        .filter(|(_, s)| s.enabled)
        .map(|(sub, _)| Statement::sql(format!("ALTER SUBSCRIPTION {} DISABLE", quote_ident(sub))))
        .collect();
    if catalog.membership.is_some() {
        statements.push(Statement::sql(format!(
            "DELETE FROM {}",
            quote_qualified(INTERNAL_SCHEMA, MEMBERSHIP_TABLE)
        )));
    }
    let subscribers: Vec<&str> = waits.iter().map(|w| w.subscriber.as_str()).collect();
    let mut c = Change::new(
        name,
        ObjectAddress::Membership {
            node: name.to_string(),
        },
        Action::Delete,
        statements,
    );
    c.reason = Some(if subscribers.is_empty() {
        "no remaining node subscribes to it; stops its subscriptions".to_string()
    } else {
        format!(
            "waits until {} applied everything it wrote, then stops its subscriptions",
            subscribers.join(", ")
        )
    });
    c.hazards.push(Hazard::new(
        HazardKind::ReplicationGap,
        format!(
            "writes made on {name} after the drain starts reach no other node: stop them first"
        ),
    ));
    c.lifecycle = Some(LifecycleStep::Drain(DrainSpec { waits }));
    c
}
