//! The findings derived from read health, without a server.

use std::collections::BTreeMap;

use pgconverge_postgres::status::{NodeHealth, SlotHealth, SubscriptionHealth};

use super::*;

fn databases() -> BTreeMap<String, String> {
    ["a", "b"]
        .iter()
        .map(|n| (n.to_string(), "app".to_string()))
        .collect()
}

fn subscription(name: &str) -> SubscriptionHealth {
    SubscriptionHealth {
        name: name.to_string(),
        enabled: true,
        worker_running: true,
        last_message_at: Some("2026-01-01T00:00:00Z".to_string()),
        last_message_age_seconds: Some(1.0),
        latest_end_at: None,
        apply_error_count: 0,
        sync_error_count: 0,
    }
}

fn slot(name: &str) -> SlotHealth {
    SlotHealth {
        name: name.to_string(),
        slot_type: "logical".to_string(),
        database: Some("app".to_string()),
        active: true,
        wal_status: Some("reserved".to_string()),
        retained_wal_bytes: Some(1000),
        lag_bytes: Some(0),
    }
}

/// Node `me` of the mesh {a, b}, healthy.
fn healthy(me: &str, peer: &str) -> NodeStatus {
    NodeStatus {
        node: me.to_string(),
        reachable: true,
        error: None,
        health: Some(NodeHealth {
            server_version: "18.1".to_string(),
            server_version_num: 180001,
            subscriptions: vec![subscription(&format!("pgc_{me}_from_{peer}"))],
            slots: vec![slot(&format!("pgc_{peer}_from_{me}"))],
            conflicts: None,
            registers: Vec::new(),
            orphans: None,
        }),
    }
}

fn mesh() -> Vec<NodeStatus> {
    vec![healthy("a", "b"), healthy("b", "a")]
}

fn kinds(nodes: &[NodeStatus]) -> Vec<(Level, FindingKind, String, Option<String>)> {
    derive_findings(&databases(), nodes, &StatusThresholds::default())
        .into_iter()
        .map(|f| (f.level, f.kind, f.node, f.object))
        .collect()
}

fn health(node: &mut NodeStatus) -> &mut NodeHealth {
    node.health.as_mut().expect("read")
}

#[test]
fn a_healthy_mesh_has_no_findings() {
    assert!(kinds(&mesh()).is_empty());
}

#[test]
fn an_unreachable_node_is_an_error_and_its_peers_are_judged_alone() {
    let mut nodes = mesh();
    nodes[1] = NodeStatus {
        node: "b".to_string(),
        reachable: false,
        error: Some("connection refused".to_string()),
        health: None,
    };
    let found = derive_findings(&databases(), &nodes, &StatusThresholds::default());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, FindingKind::Unreachable);
    assert!(found[0].message.contains("connection refused"));
}

#[test]
fn missing_disabled_and_workerless_subscriptions_are_errors() {
    let mut nodes = mesh();
    health(&mut nodes[0]).subscriptions.clear();
    health(&mut nodes[1]).subscriptions[0].enabled = false;
    health(&mut nodes[1]).subscriptions[0].worker_running = false;
    let sub_a = Some("pgc_a_from_b".to_string());
    let sub_b = Some("pgc_b_from_a".to_string());
    assert_eq!(
        kinds(&nodes),
        vec![
            (
                Level::Error,
                FindingKind::SubscriptionMissing,
                "a".into(),
                sub_a
            ),
            (
                Level::Error,
                FindingKind::SubscriptionDisabled,
                "b".into(),
                sub_b.clone()
            ),
        ]
    );
    health(&mut nodes[1]).subscriptions[0].enabled = true;
    assert_eq!(
        kinds(&nodes)[1],
        (
            Level::Error,
            FindingKind::WorkerNotRunning,
            "b".into(),
            sub_b
        )
    );
}

#[test]
fn apply_and_sync_errors_are_errors() {
    let mut nodes = mesh();
    health(&mut nodes[0]).subscriptions[0].apply_error_count = 2;
    health(&mut nodes[0]).subscriptions[0].sync_error_count = 1;
    let found: Vec<_> = kinds(&nodes).into_iter().map(|f| f.1).collect();
    assert_eq!(
        found,
        vec![FindingKind::ApplyErrors, FindingKind::SyncErrors]
    );
}

#[test]
fn only_unused_logical_slots_of_the_nodes_database_are_orphans() {
    let mut nodes = mesh();
    let slots = &mut health(&mut nodes[0]).slots;
    slots.push(slot("stray"));
    slots.push(SlotHealth {
        database: Some("other".to_string()),
        ..slot("elsewhere")
    });
    slots.push(SlotHealth {
        slot_type: "physical".to_string(),
        database: None,
        lag_bytes: None,
        ..slot("standby")
    });
    assert_eq!(
        kinds(&nodes),
        vec![(
            Level::Error,
            FindingKind::OrphanSlot,
            "a".into(),
            Some("stray".into())
        )]
    );
}

#[test]
fn a_lost_slot_is_an_error() {
    let mut nodes = mesh();
    health(&mut nodes[0]).slots[0].wal_status = Some("lost".to_string());
    assert_eq!(kinds(&nodes)[0].1, FindingKind::SlotLost);
}

#[test]
fn lag_retention_and_silence_above_the_thresholds_are_warnings() {
    let mut nodes = mesh();
    // a's slot for b: far behind, keeps much WAL; b's subscription from a hears nothing.
    health(&mut nodes[0]).slots[0].lag_bytes = Some(65 << 20);
    health(&mut nodes[0]).slots[0].retained_wal_bytes = Some(2 << 30);
    health(&mut nodes[1]).subscriptions[0].last_message_age_seconds = Some(61.0);
    let found = kinds(&nodes);
    assert!(found.iter().all(|f| f.0 == Level::Warning), "{found:?}");
    let found: Vec<_> = found.into_iter().map(|f| f.1).collect();
    assert_eq!(
        found,
        vec![
            FindingKind::SlotLag,
            FindingKind::RetainedWal,
            FindingKind::SubscriptionStale
        ]
    );
}

#[test]
fn silence_is_no_warning_when_the_publisher_has_nothing_to_send() {
    let mut nodes = mesh();
    health(&mut nodes[1]).subscriptions[0].last_message_age_seconds = Some(3600.0);
    assert!(kinds(&nodes).is_empty());
}

#[test]
fn errors_come_before_warnings() {
    let mut nodes = mesh();
    health(&mut nodes[0]).slots[0].retained_wal_bytes = Some(2 << 30);
    health(&mut nodes[1]).subscriptions[0].enabled = false;
    let levels: Vec<_> = kinds(&nodes).into_iter().map(|f| f.0).collect();
    assert_eq!(levels, vec![Level::Error, Level::Warning]);
}

#[test]
fn rows_breaking_a_foreign_key_are_a_warning_when_counted() {
    let mut nodes = mesh();
    let count = |rows| pgconverge_postgres::status::OrphanCount {
        table: "public.child".to_string(),
        columns: vec!["parent_id".to_string()],
        parent_table: "public.parent".to_string(),
        orphan_rows: rows,
    };
    health(&mut nodes[0]).orphans = Some(vec![count(0)]);
    health(&mut nodes[1]).orphans = Some(vec![count(3)]);
    assert_eq!(
        kinds(&nodes),
        [(
            Level::Warning,
            FindingKind::OrphanRows,
            "b".to_string(),
            Some("public.child".to_string())
        )]
    );
}
