//! Lifecycle decisions on hand-made catalogs: who joins with a copy and from whom, who is
//! already a member, what a leaving node's changes are.

use std::collections::{BTreeMap, BTreeSet};

use pgconverge_model::catalog::{MembershipCatalog, NodeCatalog, SlotCatalog, SubscriptionCatalog};
use pgconverge_model::{ClusterConfig, ObjectAddress};

use super::*;
use crate::change::Action;
use crate::desired::desired_cluster;

fn config(nodes: &[&str]) -> ClusterConfig {
    let nodes: Vec<serde_json::Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            serde_json::json!({
                "name": n, "host": "127.0.0.1", "port": 5501 + i, "db": "app", "user": "pgc"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "nodes": nodes,
        "tables": [{
            "name": "items",
            "columns": [{ "name": "id", "type": "bigint" }, { "name": "code", "type": "text" }],
            "primary_key": ["id"],
            "unique": [["code"]]
        }]
    }))
    .expect("config")
}

/// A node that joined and subscribes to `peers` (enabled or not).
fn member(name: &str, peers: &[(&str, bool)]) -> NodeCatalog {
    let mut catalog = NodeCatalog {
        membership: Some(MembershipCatalog {
            node: name.to_string(),
            donor: None,
            joined_at: "2026-01-01 00:00:00+00".to_string(),
        }),
        ..NodeCatalog::default()
    };
    for (peer, enabled) in peers {
        catalog.subscriptions.insert(
            format!("pgc_{name}_from_{peer}"),
            SubscriptionCatalog {
                conninfo_redacted: String::new(),
                conninfo_sha256: String::new(),
                publications: vec![format!("pgc_pub_{peer}")],
                enabled: *enabled,
                origin: "none".into(),
                slot_name: Some(format!("pgc_{name}_from_{peer}")),
                owner: "pgc".into(),
            },
        );
    }
    catalog
}

struct Case {
    config: ClusterConfig,
    observed: BTreeMap<String, NodeCatalog>,
    departing: BTreeMap<String, DepartingNode>,
    managed: BTreeMap<String, BTreeSet<ObjectAddress>>,
    donor: Option<&'static str>,
}

impl Case {
    fn new(nodes: &[&str]) -> Case {
        Case {
            config: config(nodes),
            observed: nodes
                .iter()
                .map(|n| (n.to_string(), NodeCatalog::default()))
                .collect(),
            departing: BTreeMap::new(),
            managed: BTreeMap::new(),
            donor: None,
        }
    }

    fn plan(&self) -> LifecyclePlan {
        let desired = desired_cluster(&self.config);
        plan_lifecycle(&LifecycleInput {
            config: &self.config,
            desired: &desired,
            observed: &self.observed,
            departing: &self.departing,
            managed: &self.managed,
            donor: self.donor,
        })
    }
}

fn bootstrap_of(change: &Change) -> &BootstrapSpec {
    match &change.lifecycle {
        Some(LifecycleStep::Bootstrap(spec)) => spec,
        other => panic!("{} is no bootstrap: {other:?}", change.label()),
    }
}

#[test]
fn a_new_mesh_records_members_and_copies_nothing() {
    let plan = Case::new(&["n1", "n2", "n3"]).plan();
    assert_eq!(plan.changes.len(), 3);
    for c in &plan.changes {
        assert!(c.lifecycle.is_none(), "{}", c.label());
        assert_eq!(c.action, Action::Create);
        assert!(c.statements[0]
            .redacted()
            .contains("INSERT INTO _pgconverge.membership"));
    }
}

#[test]
fn a_node_new_to_a_mesh_is_bootstrapped_from_a_member_after_the_others_catch_up() {
    let mut case = Case::new(&["n1", "n2", "n3"]);
    case.observed
        .insert("n1".into(), member("n1", &[("n2", true)]));
    case.observed
        .insert("n2".into(), member("n2", &[("n1", true)]));
    let plan = case.plan();
    assert!(plan.blockers.is_empty(), "{:?}", plan.blockers);
    assert_eq!(plan.changes.len(), 1);
    let change = &plan.changes[0];
    assert_eq!(change.label(), "bootstrap n3 from n1");
    let spec = bootstrap_of(change);
    assert_eq!(spec.donor_slot, "pgc_n3_from_n1");
    assert_eq!(spec.catch_up.len(), 1);
    assert_eq!(spec.catch_up[0].publisher, "n2");
    assert_eq!(spec.catch_up[0].joiner_slot, "pgc_n3_from_n2");
    assert_eq!(spec.catch_up[0].donor_slot, "pgc_n1_from_n2");
    let copied: Vec<String> = spec.tables.iter().map(|t| t.table.to_string()).collect();
    assert_eq!(
        copied,
        [
            "public.items",
            "_pgconverge.tombstones",
            "_pgconverge.claims"
        ]
    );
    assert!(spec.tables[0]
        .copy_in_sql
        .contains("_pgc_version, _pgc_origin"));
    assert!(spec.joiner_finish_sql[0].contains("VALUES ('n3', 'n1')"));
    assert!(change
        .hazards
        .iter()
        .any(|h| h.kind == crate::hazard::HazardKind::LongCopy));
}

#[test]
fn the_donor_is_a_member_receiving_from_every_other_unless_one_is_named() {
    let mut case = Case::new(&["n1", "n2", "n3"]);
    case.observed
        .insert("n1".into(), member("n1", &[("n2", false)]));
    case.observed
        .insert("n2".into(), member("n2", &[("n1", true)]));
    assert_eq!(case.plan().changes[0].label(), "bootstrap n3 from n2");

    case.donor = Some("n1");
    let spec_donor = bootstrap_of(&case.plan().changes[0]).donor.clone();
    assert_eq!(spec_donor, "n1");

    case.donor = Some("n3");
    let plan = case.plan();
    assert!(plan.changes.is_empty());
    assert_eq!(plan.blockers[0].setting, "donor");
}

#[test]
fn a_mesh_from_before_membership_records_is_adopted_without_a_copy() {
    let mut case = Case::new(&["n1", "n2"]);
    for (name, peer) in [("n1", "n2"), ("n2", "n1")] {
        let mut catalog = member(name, &[(peer, true)]);
        catalog.membership = None;
        case.observed.insert(name.into(), catalog);
    }
    let plan = case.plan();
    assert_eq!(plan.changes.len(), 2);
    assert!(plan.changes.iter().all(|c| c.lifecycle.is_none()));
    assert_eq!(
        plan.changes[0].reason.as_deref(),
        Some("already replicating; records its membership")
    );
}

#[test]
fn a_copy_of_another_node_is_refused() {
    let mut case = Case::new(&["n1", "n2"]);
    case.observed.insert("n1".into(), member("n1", &[]));
    case.observed.insert("n2".into(), member("n1", &[]));
    let plan = case.plan();
    assert_eq!(plan.blockers.len(), 1);
    assert_eq!(plan.blockers[0].node, "n2");
    assert!(plan.blockers[0].fix.contains("copy of node n1"));
}

#[test]
fn a_leaving_node_is_drained_then_loses_what_pgconverge_made_on_it() {
    let mut case = Case::new(&["n1", "n2"]);
    case.observed
        .insert("n1".into(), member("n1", &[("n2", true), ("n3", true)]));
    case.observed
        .insert("n2".into(), member("n2", &[("n1", true), ("n3", true)]));
    let mut leaving = member("n3", &[("n1", true), ("n2", true)]);
    for slot in ["pgc_n1_from_n3", "pgc_n2_from_n3"] {
        leaving.slots.insert(
            slot.into(),
            SlotCatalog {
                plugin: Some("pgoutput".into()),
                slot_type: "logical".into(),
                database: Some("app".into()),
                active: true,
                wal_status: Some("reserved".into()),
                confirmed_flush_lsn: None,
            },
        );
    }
    leaving
        .publications
        .insert("pgc_pub_n3".into(), Default::default());
    case.managed.insert(
        "n3".into(),
        BTreeSet::from([
            ObjectAddress::Subscription {
                name: "pgc_n3_from_n1".into(),
            },
            ObjectAddress::Publication {
                name: "pgc_pub_n3".into(),
            },
            ObjectAddress::Slot {
                name: "pgc_n1_from_n3".into(),
            },
        ]),
    );
    case.departing
        .insert("n3".into(), DepartingNode::Reachable(Box::new(leaving)));
    let plan = case.plan();
    let labels: Vec<String> = plan.changes.iter().map(|c| c.label()).collect();
    assert_eq!(
        labels,
        [
            "drain n3",
            "subscription pgc_n3_from_n1",
            "publication pgc_pub_n3",
            "slot pgc_n1_from_n3"
        ]
    );
    match &plan.changes[0].lifecycle {
        Some(LifecycleStep::Drain(spec)) => {
            let subscribers: Vec<&str> = spec.waits.iter().map(|w| w.subscriber.as_str()).collect();
            assert_eq!(subscribers, ["n1", "n2"]);
        }
        other => panic!("no drain: {other:?}"),
    }
    let drain_sql: Vec<String> = plan.changes[0]
        .statements
        .iter()
        .map(|s| s.redacted())
        .collect();
    assert!(drain_sql
        .iter()
        .any(|s| s == "ALTER SUBSCRIPTION pgc_n3_from_n1 DISABLE"));
    assert!(drain_sql
        .iter()
        .any(|s| s.starts_with("DELETE FROM _pgconverge.membership")));
    assert_eq!(plan.departures[0].unreachable, None);
}

#[test]
fn an_unreachable_leaving_node_changes_nothing_on_it_and_is_named() {
    let mut case = Case::new(&["n1"]);
    case.observed.insert("n1".into(), member("n1", &[]));
    case.departing.insert(
        "n3".into(),
        DepartingNode::Unreachable {
            error: "connection refused".into(),
        },
    );
    let plan = case.plan();
    assert!(plan.changes.is_empty());
    assert_eq!(plan.departures.len(), 1);
    assert_eq!(
        plan.departures[0].unreachable.as_deref(),
        Some("connection refused")
    );
}

#[test]
fn the_sql_view_spells_out_a_bootstrap_and_a_drain() {
    let mut case = Case::new(&["n1", "n2", "n3"]);
    case.observed
        .insert("n1".into(), member("n1", &[("n2", true)]));
    case.observed
        .insert("n2".into(), member("n2", &[("n1", true)]));
    let mut leaving = member("n9", &[("n1", true)]);
    leaving.slots.insert(
        "pgc_n1_from_n9".into(),
        SlotCatalog {
            plugin: Some("pgoutput".into()),
            slot_type: "logical".into(),
            database: Some("app".into()),
            active: true,
            wal_status: Some("reserved".into()),
            confirmed_flush_lsn: None,
        },
    );
    case.departing
        .insert("n9".into(), DepartingNode::Reachable(Box::new(leaving)));
    let plan = crate::plan::make_plan(&crate::plan::PlanInput {
        config: &case.config,
        observed: &case.observed,
        managed: &case.managed,
        applied: &BTreeMap::new(),
        departing: &case.departing,
        donor: None,
    })
    .expect("plan");
    let sql = crate::render::sql::render(&plan);
    for expected in [
        "+ bootstrap n3 from n1",
        "-- on n2: wait until slot pgc_n1_from_n2 confirms where slot pgc_n3_from_n2 starts",
        "--   COPY (SELECT id, code, _pgc_version, _pgc_origin FROM public.items) TO STDOUT",
        "SET LOCAL session_replication_role = replica;",
        "INSERT INTO _pgconverge.membership (node, donor) VALUES ('n3', 'n1')",
        "-- ===== node n9 (leaving the mesh) =====",
        "- drain n9",
        "-- on n9: wait until slot pgc_n1_from_n9 confirms pg_current_wal_insert_lsn()",
        "ALTER SUBSCRIPTION pgc_n9_from_n1 DISABLE;",
    ] {
        assert!(sql.contains(expected), "missing {expected:?} in:\n{sql}");
    }
    let human = crate::render::human::render(&plan, false);
    assert!(human.contains("Node n9 (leaving the mesh)"), "{human}");
    assert!(
        human.contains("  + bootstrap n3 from n1  # copies 1 table"),
        "{human}"
    );
}
