//! Node lifecycle against real servers: a node joins a mesh holding rows while pgbench writes
//! on every existing node and ends with every row and register; a join killed at several
//! points finishes on the next apply; a running node and an unreachable one are removed
//! leaving no slot behind; a node moves to another address without a new copy.
//!
//! Tests whose names contain `join` run on PostgreSQL 16 and 17 too (scripts/test.sh).

#[path = "common/mesh.rs"]
mod mesh;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mesh::{stable_session, table};
use pgconverge_model::TableConfig;
use pgconverge_tests::{output_text as text, TestCluster};
use serde_json::{json, Value};

/// A table with a UNIQUE column, so joins must carry claims as well as tombstones.
fn items() -> Value {
    json!({
        "name": "items",
        "columns": [
            { "name": "id", "type": "bigint" },
            { "name": "code", "type": "text" },
            { "name": "n", "type": "bigint", "nullable": false, "default": "0" },
            { "name": "note", "type": "text" }
        ],
        "primary_key": ["id"],
        "unique": [["code"]]
    })
}

fn accounts() -> Value {
    json!({
        "name": "accounts",
        "columns": [
            { "name": "id", "type": "bigint" },
            { "name": "balance", "type": "bigint", "nullable": false, "default": "0" }
        ],
        "primary_key": ["id"]
    })
}

fn tables() -> Value {
    json!([items(), accounts()])
}

fn table_configs() -> Vec<TableConfig> {
    vec![table(items()), table(accounts())]
}

fn apply(cluster: &TestCluster) -> String {
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "apply failed:\n{shown}");
    shown
}

fn plan_is_empty(cluster: &TestCluster) {
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "plan not empty:\n{}",
        text(&out)
    );
}

async fn scalar(cluster: &TestCluster, node: usize, sql: &str) -> i64 {
    cluster
        .client(node)
        .await
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

async fn seed(cluster: &TestCluster, node: usize, rows: i64) {
    cluster
        .client(node)
        .await
        .execute(
            "INSERT INTO items (id, code, note) \
             SELECT g, 'code-' || g, repeat('x', 40) FROM generate_series(100001, 100000 + $1::bigint) g",
            &[&rows],
        )
        .await
        .expect("seed items");
    cluster
        .client(node)
        .await
        .execute(
            "INSERT INTO accounts (id) SELECT g FROM generate_series(100001, 100000 + $1::bigint) g",
            &[&rows],
        )
        .await
        .expect("seed accounts");
}

/// pgbench script: every kind of write on shared keys, colliding between nodes. Keys stay
/// below 12,001; seeded rows start at 100,001. Its rows leave `code` NULL: an upsert arbitrated
/// on `id` fails outright when a concurrent insert of the same key takes the same `code` first
/// (PostgreSQL's ON CONFLICT covers one arbiter), which is no concern of a join.
const WORKLOAD: &str = "\\set id random(1, 6000)
\\set op random(1, 10)
BEGIN;
UPDATE accounts SET balance = balance + 1 WHERE id = :id;
INSERT INTO items (id, note) VALUES (:id, 'w') ON CONFLICT (id) DO UPDATE SET n = items.n + 1;
DELETE FROM items WHERE id = :id + 1 AND :op = 1;
INSERT INTO accounts (id, balance) VALUES (:id + 6000, 1) ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + 1;
END;
";

/// pgbench writing on `node` for `seconds` with two clients.
fn start_pgbench(cluster: &TestCluster, node: usize, seconds: u32) -> Child {
    // One file per node: pgbench processes start at once and must not read a file being written.
    let script: PathBuf = cluster.dir.join(format!("workload-{node}.sql"));
    std::fs::write(&script, WORKLOAD).expect("write workload");
    let target = cluster.node(node);
    Command::new(TestCluster::client_bin_dir().join("pgbench"))
        .args(["-n", "-c", "2", "-j", "1", "--max-tries", "20"])
        .args(["-T", &seconds.to_string(), "-f"])
        .arg(&script)
        .args(["-h", "127.0.0.1", "-p", &target.port.to_string()])
        .args(["-U", &target.user, &target.db])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pgbench")
}

fn finish_pgbench(child: Child) -> String {
    let out = child.wait_with_output().expect("pgbench");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench failed:\n{shown}");
    assert!(
        shown.contains("number of failed transactions: 0"),
        "{shown}"
    );
    shown
}

/// Marker rounds: each wait writes a higher one, so markers left by an earlier wait (or
/// copied to a joining node) never count.
static MARKER_ROUND: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Waits until every member has applied what every other member committed before the call:
/// each member writes its marker row at a new round, and changes from one node are applied in
/// its commit order, so seeing a member's marker means having applied all it wrote before.
async fn wait_for_catch_up(cluster: &TestCluster, members: &[usize]) {
    let round = MARKER_ROUND.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    for &i in members {
        cluster
            .client(i)
            .await
            .execute(
                "INSERT INTO accounts (id, balance) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET balance = excluded.balance",
                &[&(-1 - i as i64), &round],
            )
            .await
            .expect("marker");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let seen_sql = format!("SELECT count(*) FROM accounts WHERE id < 0 AND balance >= {round}");
    for &i in members {
        loop {
            let seen = scalar(cluster, i, &seen_sql).await;
            if seen as usize >= members.len() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} saw {seen} of {} markers",
                cluster.node(i).name,
                members.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn checksum(cluster: &TestCluster, node: usize, table: &str) -> (String, i64) {
    let client = cluster.client(node).await;
    stable_session(&client).await;
    let row = client
        .query_one(
            &format!(
                "SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t.id), '')), count(*) \
                 FROM {table} AS t"
            ),
            &[],
        )
        .await
        .expect("checksum");
    (row.get(0), row.get(1))
}

/// Every row of `table` on `node`, as text in key order.
async fn rows(cluster: &TestCluster, node: usize, table: &str) -> Vec<String> {
    let client = cluster.client(node).await;
    stable_session(&client).await;
    client
        .query(
            &format!("SELECT t::text FROM {table} AS t ORDER BY t.id"),
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn assert_converged(cluster: &TestCluster, members: &[usize]) {
    for table in table_configs() {
        let mut sums = Vec::new();
        for &i in members {
            sums.push((i, checksum(cluster, i, &table.name).await));
        }
        if sums.iter().all(|(_, s)| *s == sums[0].1) {
            continue;
        }
        let first = rows(cluster, members[0], &table.name).await;
        let mut report = format!("{} differs between nodes: {sums:?}\n", table.name);
        for &i in &members[1..] {
            let other = rows(cluster, i, &table.name).await;
            let name = &cluster.node(i).name;
            for r in first.iter().filter(|r| !other.contains(r)).take(10) {
                report.push_str(&format!("  not on {name}: {r}\n"));
            }
            for r in other.iter().filter(|r| !first.contains(r)).take(10) {
                report.push_str(&format!("  only on {name}: {r}\n"));
            }
        }
        panic!("{report}");
    }
    for &i in members {
        let errors = scalar(
            cluster,
            i,
            "SELECT coalesce(sum(apply_error_count), 0)::int8 FROM pg_stat_subscription_stats",
        )
        .await;
        assert_eq!(errors, 0, "apply errors on {}", cluster.node(i).name);
    }
}

async fn slots_for(cluster: &TestCluster, node: usize, pattern: &str) -> i64 {
    cluster
        .client(node)
        .await
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1",
            &[&pattern],
        )
        .await
        .expect("slots")
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn join_under_writes_copies_rows_and_registers() {
    let cluster = TestCluster::start(4);
    cluster.write_config_for(&[0, 1, 2], tables());
    apply(&cluster);
    seed(&cluster, 0, 3000).await;
    // A tombstone and a freed unique value the joining node must know about.
    let n1 = cluster.client(0).await;
    n1.batch_execute(
        "DELETE FROM items WHERE id = 100007; UPDATE items SET code = 'moved' WHERE id = 100008",
    )
    .await
    .expect("registers");
    wait_for_catch_up(&cluster, &[0, 1, 2]).await;

    let load: Vec<Child> = (0..3).map(|i| start_pgbench(&cluster, i, 12)).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.write_config_for(&[0, 1, 2, 3], tables());
    let plan = cluster.pgconverge(&["plan"]);
    assert!(
        text(&plan).contains("+ bootstrap n4 from n1"),
        "{}",
        text(&plan)
    );
    let shown = apply(&cluster);
    assert!(shown.contains("bootstrap n4 from n1"), "{shown}");
    for child in load {
        finish_pgbench(child);
    }
    wait_for_catch_up(&cluster, &[0, 1, 2, 3]).await;
    assert_converged(&cluster, &[0, 1, 2, 3]).await;
    plan_is_empty(&cluster);

    // The registers travelled: n4, its clock an hour behind, re-creates the deleted key and
    // takes the freed value. It must stamp above what it copied, or the others would keep
    // the delete and the old holder while n4 kept its writes.
    let n4 = cluster.client(3).await;
    n4.batch_execute(
        "SET pgconverge.clock_offset_ms = -3600000; \
         INSERT INTO items (id, code) VALUES (100007, 'again'); \
         INSERT INTO items (id, code) VALUES (200000, 'code-100008')",
    )
    .await
    .expect("writes on n4");
    wait_for_catch_up(&cluster, &[0, 1, 2, 3]).await;
    assert_converged(&cluster, &[0, 1, 2, 3]).await;
    for i in 0..4 {
        assert_eq!(
            scalar(
                &cluster,
                i,
                "SELECT count(*) FROM items WHERE id IN (100007, 200000)"
            )
            .await,
            2,
            "{}",
            cluster.node(i).name
        );
    }
}

/// Runs `pgconverge apply` and SIGKILLs it once a line of its output contains `kill_at`.
fn apply_killed_at(cluster: &TestCluster, kill_at: &str) -> Vec<String> {
    let mut child = Command::new(TestCluster::pgconverge_bin())
        .args(["apply", "--auto-approve", "--parallelism", "1"])
        .current_dir(&cluster.dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pgconverge");
    let stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let hit = line.contains(kill_at);
        seen.push(line);
        if hit {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.last().is_some_and(|l| l.contains(kill_at)),
        "apply ended before `{kill_at}`:\n{}",
        seen.join("\n")
    );
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn join_killed_at_any_point_finishes_on_the_next_apply() {
    // Before the copy (slots made on the peers), during it, and after it committed.
    for kill_at in [
        "+ slot pgc_n3_from_n2",
        "bootstrap n3 from n1 … copying",
        "+ bootstrap n3 from n1 … done",
    ] {
        let cluster = TestCluster::start(3);
        cluster.write_config_for(&[0, 1], tables());
        apply(&cluster);
        seed(&cluster, 0, 20000).await;
        wait_for_catch_up(&cluster, &[0, 1]).await;
        let load: Vec<Child> = (0..2).map(|i| start_pgbench(&cluster, i, 8)).collect();
        cluster.write_config_for(&[0, 1, 2], tables());
        apply_killed_at(&cluster, kill_at);
        let shown = apply(&cluster);
        assert!(!shown.contains("FAILED"), "{shown}");
        for child in load {
            finish_pgbench(child);
        }
        wait_for_catch_up(&cluster, &[0, 1, 2]).await;
        assert_converged(&cluster, &[0, 1, 2]).await;
        plan_is_empty(&cluster);
    }
}

/// Node `node` holds no slot and no subscription serving `gone`.
async fn assert_nothing_replicates_with(cluster: &TestCluster, node: usize, gone: &str) {
    let pattern = format!("%{gone}%");
    assert_eq!(slots_for(cluster, node, &pattern).await, 0);
    let subscriptions: i64 = cluster
        .client(node)
        .await
        .query_one(
            "SELECT count(*) FROM pg_subscription WHERE subname LIKE $1",
            &[&pattern],
        )
        .await
        .expect("subscriptions")
        .get(0);
    assert_eq!(subscriptions, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_running_node_drains_it_and_leaves_no_slot() {
    let cluster = TestCluster::start(3);
    cluster.write_config(tables());
    apply(&cluster);
    seed(&cluster, 2, 500).await;
    cluster.write_config_for(&[0, 1], tables());
    let plan = text(&cluster.pgconverge(&["plan"]));
    assert!(plan.contains("- drain n3"), "{plan}");
    apply(&cluster);
    // Drained: what n3 wrote before leaving is on the others.
    for i in 0..2 {
        assert_eq!(scalar(&cluster, i, "SELECT count(*) FROM items").await, 500);
        assert_nothing_replicates_with(&cluster, i, "n3").await;
    }
    assert_eq!(
        scalar(&cluster, 2, "SELECT count(*) FROM pg_subscription").await,
        0
    );
    assert_eq!(
        scalar(&cluster, 2, "SELECT count(*) FROM pg_publication").await,
        0
    );
    assert_eq!(slots_for(&cluster, 2, "%").await, 0);
    plan_is_empty(&cluster);
    // The two left still replicate.
    wait_for_catch_up(&cluster, &[0, 1]).await;
    assert_converged(&cluster, &[0, 1]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_an_unreachable_node_cleans_up_the_others() {
    let cluster = TestCluster::start(3);
    cluster.write_config(tables());
    apply(&cluster);
    cluster.stop_node(2);
    cluster.write_config_for(&[0, 1], tables());
    let plan = text(&cluster.pgconverge(&["plan"]));
    assert!(plan.contains("n3 is unreachable"), "{plan}");
    apply(&cluster);
    for i in 0..2 {
        assert_nothing_replicates_with(&cluster, i, "n3").await;
    }
    plan_is_empty(&cluster);
    seed(&cluster, 0, 100).await;
    wait_for_catch_up(&cluster, &[0, 1]).await;
    assert_converged(&cluster, &[0, 1]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readdressing_a_node_alters_subscriptions_in_place() {
    let cluster = TestCluster::start(2);
    cluster.write_config(tables());
    apply(&cluster);
    seed(&cluster, 0, 100).await;
    wait_for_catch_up(&cluster, &[0, 1]).await;
    // Peers reach n1 by another name for the same server.
    let mut nodes: Vec<Value> = cluster.nodes.iter().map(|n| n.config_json()).collect();
    nodes[0]["peer_host"] = json!("localhost");
    cluster.write_config_value(json!({ "nodes": nodes, "tables": tables() }));
    let plan = text(&cluster.pgconverge(&["plan"]));
    assert!(plan.contains("~ subscription pgc_n2_from_n1"), "{plan}");
    assert!(plan.contains("host 127.0.0.1 → localhost"), "{plan}");
    assert!(!plan.contains("bootstrap"), "{plan}");
    apply(&cluster);
    plan_is_empty(&cluster);
    cluster
        .client(0)
        .await
        .batch_execute("INSERT INTO items (id, code) VALUES (300000, 'after move')")
        .await
        .expect("write");
    wait_for_catch_up(&cluster, &[0, 1]).await;
    assert_converged(&cluster, &[0, 1]).await;
}
