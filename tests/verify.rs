//! `pgconverge verify` on three real servers after `apply`: an identical mesh exits 0; rows
//! changed, deleted and inserted on one node with replication bypassed, and a delete a
//! disabled subscription did not deliver, exit 2 naming table, key and nodes; `--repair`
//! re-sends the winners (recorded in the ledger as `repair`) and leaves alone what the rules
//! cannot decide; rows breaking a foreign key are reported (and counted by `status
//! --orphans`); writers on every node during
//! verify cause no false difference.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgconverge_tests::{output_text as text, TestCluster};
use serde_json::{json, Value};

fn tables() -> Value {
    json!([
        {
            "name": "parent",
            "columns": [
                { "name": "id", "type": "bigint" },
                { "name": "name", "type": "text" }
            ],
            "primary_key": ["id"]
        },
        {
            "name": "child",
            "columns": [
                { "name": "id", "type": "bigint" },
                { "name": "parent_id", "type": "bigint" }
            ],
            "primary_key": ["id"],
            "foreign_keys": [{ "columns": ["parent_id"], "references": { "table": "parent", "columns": ["id"] } }]
        }
    ])
}

fn applied_mesh() -> TestCluster {
    let cluster = TestCluster::start(3);
    cluster.write_config(tables());
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply failed:\n{}", text(&out));
    cluster
}

async fn execute(cluster: &TestCluster, node: usize, sql: &str) {
    cluster
        .client(node)
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Waits until every node answers `sql` with `expected`.
async fn wait_for(cluster: &TestCluster, sql: &str, expected: i64) {
    for node in 0..3 {
        wait_on(cluster, node, sql, expected).await;
    }
}

/// Waits until node `node` answers `sql` with `expected`.
async fn wait_on(cluster: &TestCluster, node: usize, sql: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.query_i64(node, sql).await != expected {
        assert!(
            Instant::now() < deadline,
            "node {node} never reached {expected}: {sql}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn verify(cluster: &TestCluster, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["verify", "--json"];
    if !args.contains(&"--catch-up-timeout") {
        all.extend(["--catch-up-timeout", "5"]);
    }
    all.extend_from_slice(args);
    let owned: Vec<String> = all.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::block_in_place(|| {
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        cluster.pgconverge(&refs)
    });
    let shown = text(&out);
    let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), value, shown)
}

fn table<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["table"] == name))
        .unwrap_or_else(|| panic!("no table {name} in {report:#}"))
}

fn key<'a>(report: &'a Value, table_name: &str, id: i64) -> &'a Value {
    table(report, table_name)["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["key"] == json!({ "id": id })))
        .unwrap_or_else(|| panic!("key {id} of {table_name} not reported: {report:#}"))
}

fn node_state(key: &Value, node: &str) -> (String, bool) {
    let entry = key["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == node))
        .unwrap_or_else(|| panic!("node {node} missing in {key:#}"));
    (
        entry["state"].as_str().unwrap_or_default().to_string(),
        entry["holds_winner"].as_bool().unwrap_or(false),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_bypassed_writes_and_orphans_and_repair_makes_nodes_agree() {
    let cluster = applied_mesh();
    execute(
        &cluster,
        0,
        "INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 500) g; \
         INSERT INTO child SELECT g, g FROM generate_series(1, 200) g",
    )
    .await;
    wait_for(&cluster, "SELECT count(*) FROM parent", 500).await;
    wait_for(&cluster, "SELECT count(*) FROM child", 200).await;

    let (code, report, shown) = verify(&cluster, &[]).await;
    assert_eq!(code, 0, "{shown}");
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["summary"]["differing_keys"], 0, "{report:#}");
    assert_eq!(table(&report, "public.parent")["identical"], true);
    assert_eq!(table(&report, "public.parent")["rows"][2]["rows"], 500);

    // Outside replication: n2 changes a row in place (same version, other contents), n3
    // loses a row, n1 gains one; and a delete on n2 does not reach n3.
    execute(
        &cluster,
        1,
        "SET session_replication_role = replica; UPDATE parent SET name = 'changed' WHERE id = 1",
    )
    .await;
    execute(
        &cluster,
        2,
        "SET session_replication_role = replica; DELETE FROM parent WHERE id = 2",
    )
    .await;
    execute(
        &cluster,
        0,
        "SET session_replication_role = replica; INSERT INTO parent VALUES (1000, 'extra')",
    )
    .await;
    execute(&cluster, 2, "ALTER SUBSCRIPTION pgc_n3_from_n2 DISABLE").await;
    execute(
        &cluster,
        1,
        "DELETE FROM child WHERE id = 3; DELETE FROM parent WHERE id = 3",
    )
    .await;
    wait_on(&cluster, 0, "SELECT count(*) FROM parent WHERE id = 3", 0).await;
    // Orphan: a child naming a parent no node has, written where foreign keys are not
    // checked (as in an apply worker).
    execute(
        &cluster,
        1,
        "SET session_replication_role = replica; INSERT INTO child VALUES (999, 4242)",
    )
    .await;

    let (code, report, shown) = verify(&cluster, &[]).await;
    assert_eq!(code, 2, "{shown}");
    let parent = table(&report, "public.parent");
    assert_eq!(parent["identical"], false);
    assert_eq!(parent["differing_keys"], 4, "{report:#}");
    let same_version = key(&report, "public.parent", 1);
    assert!(same_version["winner"].is_null(), "{same_version:#}");
    assert!(same_version["undecidable"]
        .as_str()
        .unwrap_or_default()
        .contains("same version"));
    let lost = key(&report, "public.parent", 2);
    assert_eq!(lost["winner"], "n1");
    assert_eq!(node_state(lost, "n3"), ("absent".to_string(), false));
    assert_eq!(node_state(lost, "n2"), ("present".to_string(), true));
    let extra = key(&report, "public.parent", 1000);
    assert_eq!(extra["winner"], "n1");
    assert_eq!(node_state(extra, "n2"), ("absent".to_string(), false));
    let deleted = key(&report, "public.parent", 3);
    assert_eq!(deleted["winner_deleted"], true, "{deleted:#}");
    assert_eq!(node_state(deleted, "n3"), ("present".to_string(), false));
    let orphans = report["orphans"].as_array().expect("orphans");
    assert!(
        orphans.iter().any(|o| o["node"] == "n2"
            && o["table"] == "public.child"
            && o["parent_table"] == "public.parent"
            && o["rows"][0]["key"] == json!({ "id": 999 })
            && o["rows"][0]["missing_parent"] == json!({ "id": 4242 })),
        "{report:#}"
    );
    assert!(
        orphans.iter().any(|o| o["node"] == "n3"
            && o["count"] == 1
            && o["rows"][0]["missing_parent"] == json!({ "id": 2 })),
        "child 2 lost its parent on n3: {report:#}"
    );
    // The human view names table, key and nodes.
    let out =
        tokio::task::block_in_place(|| cluster.pgconverge(&["verify", "--catch-up-timeout", "5"]));
    let human = text(&out);
    assert_eq!(out.status.code(), Some(2), "{human}");
    assert!(human.contains("public.parent: 4 key(s) differ"), "{human}");
    assert!(human.contains("{\"id\":2}: n1 present"), "{human}");
    assert!(human.contains("n3 absent (differs)"), "{human}");
    assert!(
        human.contains("n2: public.child(parent_id) -> public.parent(id): 1 row(s)"),
        "{human}"
    );

    // status --orphans counts them per node.
    let out =
        tokio::task::block_in_place(|| cluster.pgconverge(&["status", "--orphans", "--json"]));
    let status: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json ({e}):\n{}", text(&out)));
    let counts: Vec<i64> = (0..3)
        .map(|n| {
            status["nodes"][n]["health"]["orphans"][0]["orphan_rows"]
                .as_i64()
                .unwrap_or(-1)
        })
        .collect();
    // n2's child 999; on n3, child 2 lost its parent with the row deleted there.
    assert_eq!(counts, [0, 1, 1], "{status:#}");
    assert!(
        status["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["kind"] == "orphan_rows" && f["node"] == "n2" && f["level"] == "warning"),
        "{status:#}"
    );

    // Repair: the orphan child goes first (it is a difference too: only n2 has it).
    execute(
        &cluster,
        1,
        "SET session_replication_role = replica; DELETE FROM child WHERE id = 999",
    )
    .await;
    let (code, report, shown) = verify(&cluster, &["--repair"]).await;
    assert_eq!(code, 2, "key 1 cannot be decided:\n{shown}");
    let repair = &report["repair"];
    assert_eq!(repair["repaired_keys"], 4, "{report:#}");
    assert_eq!(repair["still_differing"], 0, "{report:#}");
    let unrepaired = repair["unrepaired"].as_array().expect("unrepaired");
    assert_eq!(unrepaired.len(), 1, "{report:#}");
    assert_eq!(unrepaired[0]["key"], json!({ "id": 1 }));
    // n3: parent 2, 3 and 1000 and child 3; n2: parent 1000.
    for (node, expected) in [(2, 4), (1, 1)] {
        let repairs = cluster
            .query_i64(
                node,
                "SELECT count(*) FROM _pgconverge.conflicts WHERE kind = 'repair'",
            )
            .await;
        assert_eq!(repairs, expected, "repair rows in n{}'s ledger", node + 1);
    }
    assert_eq!(
        cluster
            .query_i64(2, "SELECT count(*) FROM parent WHERE id IN (2, 1000)")
            .await,
        2
    );
    assert_eq!(
        cluster
            .query_i64(2, "SELECT count(*) FROM parent WHERE id = 3")
            .await,
        0
    );

    // A later write decides key 1 for every node; the delayed delete arrives harmlessly.
    execute(
        &cluster,
        0,
        "UPDATE parent SET name = 'decided' WHERE id = 1",
    )
    .await;
    execute(&cluster, 2, "ALTER SUBSCRIPTION pgc_n3_from_n2 ENABLE").await;
    wait_for(
        &cluster,
        "SELECT count(*) FROM parent WHERE name = 'decided'",
        1,
    )
    .await;
    let (code, report, shown) = verify(&cluster, &[]).await;
    assert_eq!(code, 0, "{shown}");
    assert_eq!(report["summary"]["differing_keys"], 0);
    let applied_errors = cluster
        .query_i64(
            2,
            "SELECT COALESCE(sum(apply_error_count), 0)::int8 FROM pg_stat_subscription_stats",
        )
        .await;
    assert_eq!(applied_errors, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_while_every_node_writes_reports_no_false_difference() {
    let cluster = applied_mesh();
    execute(
        &cluster,
        0,
        "INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 3000) g",
    )
    .await;
    wait_for(&cluster, "SELECT count(*) FROM parent", 3000).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for node in 0..3 {
        let client = cluster.client(node).await;
        let stop = Arc::clone(&stop);
        writers.push(tokio::spawn(async move {
            let mut n: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = (n * 7919 + node as i64 * 1009) % 3000 + 1;
                let insert = 100_000 * (node as i64 + 1) + n;
                client
                    .batch_execute(&format!(
                        "UPDATE parent SET name = 'w{node}-{n}' WHERE id = {id}; \
                         INSERT INTO parent VALUES ({insert}, 'new')"
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("writer on node {node}: {e}"));
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, report, shown) = verify(&cluster, &["--catch-up-timeout", "30"]).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        let writes = writer.await.expect("writer task");
        assert!(writes > 10, "a writer barely wrote ({writes})");
    }
    assert!(
        table(&report, "public.parent")["differing_buckets"].as_u64() > Some(0),
        "nothing was in flight, so nothing was re-checked: {report:#}"
    );
    assert_eq!(
        code, 0,
        "writes in flight reported as differences:\n{shown}"
    );
    assert_eq!(report["summary"]["differing_keys"], 0, "{report:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_repairs_composite_keys_of_types_spelled_per_session() {
    let cluster = TestCluster::start(3);
    cluster.write_config(json!([{
        "name": "entries",
        "columns": [
            { "name": "tenant", "type": "text" },
            { "name": "at", "type": "timestamptz" },
            { "name": "amount", "type": "numeric(12,2)" },
            { "name": "blob", "type": "bytea" },
            { "name": "doc", "type": "json" }
        ],
        "primary_key": ["tenant", "at"]
    }]));
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply failed:\n{}", text(&out));
    // Each node's sessions print times and bytes their own way; keys must still match.
    for (node, zone) in [(0, "Asia/Tokyo"), (1, "America/Lima"), (2, "UTC")] {
        execute(
            &cluster,
            node,
            &format!("ALTER DATABASE app SET TimeZone = '{zone}'; ALTER DATABASE app SET bytea_output = 'escape'"),
        )
        .await;
    }
    execute(
        &cluster,
        0,
        "INSERT INTO entries SELECT 'acme', timestamptz '2025-03-01 10:00:00+00' + g * interval '1 minute', \
         g * 1.5, decode(md5(g::text), 'hex'), json_build_object('g', g) FROM generate_series(1, 50) g",
    )
    .await;
    wait_for(&cluster, "SELECT count(*) FROM entries", 50).await;
    let (code, _, shown) = verify(&cluster, &[]).await;
    assert_eq!(code, 0, "{shown}");

    // n2 loses a row outside replication; n3's delete of another never reaches n1.
    execute(
        &cluster,
        1,
        "SET session_replication_role = replica; \
         DELETE FROM entries WHERE at = timestamptz '2025-03-01 10:05:00+00'",
    )
    .await;
    execute(&cluster, 0, "ALTER SUBSCRIPTION pgc_n1_from_n3 DISABLE").await;
    execute(
        &cluster,
        2,
        "DELETE FROM entries WHERE at = timestamptz '2025-03-01 10:07:00+00'",
    )
    .await;
    wait_on(&cluster, 1, "SELECT count(*) FROM entries", 48).await;

    let (code, report, shown) = verify(&cluster, &["--repair"]).await;
    assert_eq!(code, 0, "both keys have a winner:\n{shown}");
    let entries = table(&report, "public.entries");
    assert_eq!(entries["differing_keys"], 2, "{report:#}");
    let keys: Vec<&Value> = entries["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| &k["key"])
        .collect();
    assert!(
        keys.contains(&&json!({ "tenant": "acme", "at": "2025-03-01T10:07:00" })),
        "canonical keys in UTC: {report:#}"
    );
    assert_eq!(report["repair"]["repaired_keys"], 2, "{report:#}");
    for node in 0..3 {
        assert_eq!(
            cluster
                .query_i64(node, "SELECT count(*) FROM entries")
                .await,
            49
        );
    }
    let (code, _, shown) = verify(&cluster, &[]).await;
    assert_eq!(code, 0, "{shown}");
}

#[test]
fn verify_refuses_an_unknown_table_before_contacting_any_node() {
    let dir = std::env::temp_dir().join(format!("pgconverge-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // Nothing listens on ports 1 and 2: contacting a node would fail differently.
    let config = json!({
        "nodes": [
            { "name": "n1", "host": "127.0.0.1", "port": 1, "db": "app", "user": "pgc" },
            { "name": "n2", "host": "127.0.0.1", "port": 2, "db": "app", "user": "pgc" }
        ],
        "tables": tables()
    });
    std::fs::write(dir.join("pgconverge.json"), config.to_string()).expect("config");
    let out = std::process::Command::new(TestCluster::pgconverge_bin())
        .args(["verify", "--table", "nope"])
        .current_dir(&dir)
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("--table nope: no such table in the configuration (tables: public.parent, public.child)"),
        "{shown}"
    );
    assert!(
        !shown.contains("unreachable") && !shown.contains("cannot read"),
        "{shown}"
    );
}
