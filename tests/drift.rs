//! Drift means drift, on real servers: after a config change the plan shows the changes
//! without calling them changed outside pgconverge; a managed trigger altered by hand on one
//! node is reported as drift on that node only, and one dropped by hand as missing.

use pgconverge_tests::{output_text as text, TestCluster};
use serde_json::{json, Value};

const BANNER: &str = "Objects have changed outside of pgconverge:";

fn notes(default: Option<&str>, nullable: bool) -> Value {
    let mut body = json!({ "name": "body", "type": "text", "nullable": nullable });
    if let Some(default) = default {
        body["default"] = json!(default);
    }
    json!([{
        "name": "notes",
        "columns": [{ "name": "id", "type": "bigint" }, body, { "name": "tag", "type": "text" }],
        "primary_key": ["id"],
        "indexes": [{ "columns": ["tag"] }]
    }])
}

fn plan(cluster: &TestCluster) -> String {
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected changes:\n{}",
        text(&out)
    );
    text(&out)
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_only_what_changed_outside_pgconverge() {
    let cluster = TestCluster::start(2);
    cluster.write_config(notes(None, true));
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply failed:\n{}", text(&out));

    // The config moves: n2's subscription to n1 must reach n1 by another name for the
    // same loopback address, and a column gets a default and NOT NULL. Changes, not drift.
    let mut nodes = cluster.nodes_json();
    nodes[0]["peer_host"] = json!("localhost");
    cluster.write_config_value(json!({ "nodes": nodes, "tables": notes(Some("''"), false) }));
    let moved = plan(&cluster);
    assert!(
        !moved.contains(BANNER),
        "config change called drift:\n{moved}"
    );
    assert!(moved.contains("column public.notes.body"), "{moved}");
    assert!(moved.contains("subscription pgc_n2_from_n1"), "{moved}");

    // By hand on n2 only: a managed trigger disabled and a managed index dropped.
    cluster
        .client(1)
        .await
        .batch_execute(
            "ALTER TABLE public.notes DISABLE TRIGGER _pgc_90_log; \
             DROP INDEX public.notes_tag_idx",
        )
        .await
        .expect("change by hand");
    let drifted = plan(&cluster);
    let banner = drifted
        .split(BANNER)
        .nth(1)
        .unwrap_or_else(|| panic!("no drift banner:\n{drifted}"));
    let banner: Vec<&str> = banner
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  !"))
        .collect();
    assert_eq!(banner.len(), 2, "{drifted}");
    assert!(
        banner.iter().all(|l| l.contains(" on n2")),
        "drift outside n2:\n{drifted}"
    );
    assert!(
        banner
            .iter()
            .any(|l| l.contains("trigger public.notes._pgc_90_log")),
        "{drifted}"
    );
    assert!(
        banner
            .iter()
            .any(|l| l.contains("index") && l.contains("(missing)")),
        "{drifted}"
    );

    // Applying restores both and records the new definitions: nothing is drift any more.
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply failed:\n{}", text(&out));
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "re-plan:\n{}", text(&out));
}
