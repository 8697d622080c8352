//! `pgconverge status` against real servers: a healthy mesh checks clean and its JSON has the
//! documented shape; a disabled subscription, a stray slot and a stopped node are errors
//! naming what is wrong; retained WAL above the threshold is a warning (exit 2).

use std::time::{Duration, Instant};

use pgconverge_tests::{output_text as text, TestCluster};
use serde_json::{json, Value};

fn tables() -> Value {
    json!([{
        "name": "notes",
        "columns": [
            { "name": "id", "type": "bigint" },
            { "name": "body", "type": "text" }
        ],
        "primary_key": ["id"]
    }])
}

/// A 2-node mesh, applied, with every apply worker running (`status --check` exits 0).
fn healthy_mesh() -> TestCluster {
    let cluster = TestCluster::start(2);
    cluster.write_config(tables());
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply failed:\n{}", text(&out));
    // Apply workers start shortly after their subscription is created.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cluster.pgconverge(&["status", "--check"]);
        if out.status.code() == Some(0) {
            return cluster;
        }
        assert!(
            Instant::now() < deadline,
            "the mesh never became healthy:\n{}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn status_json(cluster: &TestCluster, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["status", "--json", "--check"];
    args.extend_from_slice(extra);
    let out = cluster.pgconverge(&args);
    let value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json did not print JSON ({e}):\n{}", text(&out)));
    (out.status.code().unwrap_or(-1), value)
}

async fn execute(cluster: &TestCluster, node: usize, sql: &str) {
    cluster
        .client(node)
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn healthy_mesh_checks_clean_and_retained_wal_above_the_limit_warns() {
    let cluster = healthy_mesh();
    let (code, status) = status_json(&cluster, &["--since", "1h"]);
    assert_eq!(code, 0, "{status:#}");
    assert_eq!(status["format_version"], 1);
    assert!(status["conflicts_since"].is_string(), "{status:#}");
    assert_eq!(status["summary"], json!({ "errors": 0, "warnings": 0 }));
    assert_eq!(status["findings"], json!([]));
    let nodes = status["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2);
    for (node, peer) in [("n1", "n2"), ("n2", "n1")] {
        let entry = nodes.iter().find(|n| n["node"] == node).expect("node");
        assert_eq!(entry["reachable"], true);
        let health = &entry["health"];
        assert!(health["server_version"].is_string());
        let subscription = &health["subscriptions"][0];
        assert_eq!(subscription["name"], format!("pgc_{node}_from_{peer}"));
        assert_eq!(subscription["enabled"], true);
        assert_eq!(subscription["worker_running"], true);
        assert_eq!(subscription["apply_error_count"], 0);
        let slot = &health["slots"][0];
        assert_eq!(slot["name"], format!("pgc_{peer}_from_{node}"));
        assert_eq!(slot["slot_type"], "logical");
        assert!(slot["retained_wal_bytes"].is_i64(), "{slot:#}");
        assert_eq!(health["conflicts"], json!([]));
        let registers: Vec<&str> = health["registers"]
            .as_array()
            .expect("registers")
            .iter()
            .filter_map(|r| r["table"].as_str())
            .collect();
        assert_eq!(
            registers,
            [
                "_pgconverge.changes",
                "_pgconverge.tombstones",
                "_pgconverge.claims"
            ]
        );
    }

    execute(
        &cluster,
        0,
        "INSERT INTO notes SELECT g, repeat('x', 200) FROM generate_series(1, 500) g",
    )
    .await;
    let (code, status) = status_json(&cluster, &["--max-retained-wal", "1"]);
    let retained: Vec<i64> = status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .flat_map(|n| n["health"]["slots"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["retained_wal_bytes"].as_i64())
        .collect();
    assert!(retained.iter().any(|r| *r > 1), "{status:#}");
    assert_eq!(code, 2, "warnings only:\n{status:#}");
    assert_eq!(status["summary"]["errors"], 0);
    assert!(status["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .all(|f| f["level"] == "warning" && f["kind"] == "retained_wal"));
    // Without --check the status is informational.
    let out = cluster.pgconverge(&["status", "--max-retained-wal", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("warning: "), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_subscription_and_a_stray_slot_are_errors_naming_them() {
    let cluster = healthy_mesh();
    execute(&cluster, 0, "ALTER SUBSCRIPTION pgc_n1_from_n2 DISABLE").await;
    execute(
        &cluster,
        1,
        "SELECT pg_create_logical_replication_slot('stray', 'pgoutput')",
    )
    .await;
    let out = cluster.pgconverge(&["status", "--check"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("error: n1: subscription pgc_n1_from_n2 is disabled"),
        "{shown}"
    );
    assert!(shown.contains("error: n2: slot stray"), "{shown}");
    let (code, status) = status_json(&cluster, &[]);
    assert_eq!(code, 1);
    let kinds: Vec<(&str, &str)> = status["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| Some((f["kind"].as_str()?, f["object"].as_str()?)))
        .collect();
    assert!(
        kinds.contains(&("subscription_disabled", "pgc_n1_from_n2")),
        "{status:#}"
    );
    assert!(kinds.contains(&("orphan_slot", "stray")), "{status:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_node_is_named_unreachable_and_the_others_are_still_read() {
    let cluster = healthy_mesh();
    cluster.stop_node(1);
    let out = cluster.pgconverge(&["status", "--check"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("node n2 is unreachable"), "{shown}");
    assert!(shown.contains("node n1: reachable"), "{shown}");
    let (code, status) = status_json(&cluster, &[]);
    assert_eq!(code, 1);
    assert_eq!(status["nodes"][1]["reachable"], false);
    assert!(status["nodes"][1]["error"].is_string());
    assert_eq!(status["nodes"][0]["reachable"], true);
}
