//! Snapshot tests over `fixtures/plans/<case>/`: a config plus (optionally) live catalogs per
//! node, or another case's (`catalogs-from`) → the human plan and the SQL plan. Nodes without catalogs are fresh PostgreSQL 18
//! servers with replication settings for the mesh.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pgconverge_model::catalog::NodeCatalog;
use pgconverge_model::load::{load_unified, ConfigSource};
use pgconverge_plan::render::{human, json::PlanView, sql};
use pgconverge_plan::{make_plan, PlanInput};
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/plans")
}

fn fresh_node() -> Value {
    json!({
        "server_version_num": 180001,
        "server_version": "18.1",
        "settings": {
            "wal_level": "logical",
            "max_replication_slots": "10",
            "max_wal_senders": "10",
            "max_logical_replication_workers": "8",
            "max_worker_processes": "16",
            "max_sync_workers_per_subscription": "2"
        },
        "role": { "name": "app", "superuser": true, "replication": true, "create_subscription": true },
        "schemas": ["public"]
    })
}

fn catalogs(case: &Path, nodes: &[String]) -> BTreeMap<String, NodeCatalog> {
    let overlay: Value = std::fs::read_to_string(catalogs_file(case))
        .map(|text| serde_json::from_str(&text).expect("catalogs.json is JSON"))
        .unwrap_or_else(|_| json!({}));
    nodes
        .iter()
        .map(|name| {
            let mut node = fresh_node();
            if let Some(fields) = overlay.get(name).and_then(Value::as_object) {
                for (key, value) in fields {
                    node[key] = value.clone();
                }
            }
            let catalog: NodeCatalog = serde_json::from_value(node).expect("catalog fixture");
            (name.clone(), catalog)
        })
        .collect()
}

/// A case's `catalogs.json`, or the one of the case its `catalogs-from` file names: variations
/// of one live cluster's config share its catalogs.
fn catalogs_file(case: &Path) -> PathBuf {
    match std::fs::read_to_string(case.join(CATALOGS_FROM)) {
        Ok(other) => fixtures().join(other.trim()).join("catalogs.json"),
        Err(_) => case.join("catalogs.json"),
    }
}

/// Names the case whose catalogs a case shares; such a case snapshots only its human plan
/// (the SQL of the shared catalogs is the other case's).
const CATALOGS_FROM: &str = "catalogs-from";

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures/plans")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

#[test]
fn plans_match_snapshots() {
    let cases = cases();
    assert!(cases.len() >= 3, "fixture cases missing");
    for case in cases {
        let name = case
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("case")
            .to_string();
        let text = std::fs::read_to_string(case.join("pgconverge.json")).expect("config");
        let config = load_unified(&ConfigSource::new("pgconverge.json", text))
            .unwrap_or_else(|d| panic!("{name}: {d}"));
        let nodes: Vec<String> = config.nodes.iter().map(|n| n.name.clone()).collect();
        let observed = catalogs(&case, &nodes);
        let managed = BTreeMap::new();
        let departing = BTreeMap::new();
        let plan = make_plan(&PlanInput {
            config: &config,
            observed: &observed,
            managed: &managed,
            applied: &BTreeMap::new(),
            departing: &departing,
            donor: None,
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));

        // Same inputs, byte-identical plan.
        let again = make_plan(&PlanInput {
            config: &config,
            observed: &observed,
            managed: &managed,
            applied: &BTreeMap::new(),
            departing: &departing,
            donor: None,
        })
        .expect("second plan");
        assert_eq!(
            serde_json::to_string(&PlanView::from_plan(&plan)).expect("json"),
            serde_json::to_string(&PlanView::from_plan(&again)).expect("json"),
            "{name}: plan is not deterministic"
        );

        insta::assert_snapshot!(format!("{name}__human"), human::render(&plan, false));
        if !case.join(CATALOGS_FROM).exists() {
            insta::assert_snapshot!(format!("{name}__sql"), sql::render(&plan));
        }
    }
}
