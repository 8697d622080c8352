//! Schema changes (columns added, widened, renamed and dropped, a UNIQUE added and dropped,
//! an index, tables added and one dropped)
//! applied one after another to a 3-node mesh while a seeded writer keeps
//! inserting and updating on every node, writing the new columns and the new table as soon as
//! its node has them. Afterwards every table is identical, row by row, on every node, and no
//! apply worker met an error.

#[path = "common/mesh.rs"]
mod mesh;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgconverge_tests::{output_text as text, TestCluster};
use serde_json::{json, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// The config at step `step` (0 = the starting schema), each step one more change: a
/// nullable column, a NOT NULL column with a default, a widened type, a UNIQUE, a new table, a
/// rename, a dropped column, the UNIQUE dropped and an index added, the index dropped; a
/// second new table, `audit`, is dropped at step 10 (see `config`).
fn tables(step: usize) -> Value {
    let mut columns = vec![
        json!({ "name": "id", "type": "bigint" }),
        json!({ "name": "code", "type": "text" }),
    ];
    if step < 7 {
        columns
            .push(json!({ "name": "score", "type": if step >= 3 { "bigint" } else { "integer" } }));
    }
    if step >= 6 {
        columns.push(json!({ "name": "remark", "type": "text", "renamed_from": "note" }));
    } else if step >= 1 {
        columns.push(json!({ "name": "note", "type": "text" }));
    }
    if step >= 2 {
        columns
            .push(json!({ "name": "qty", "type": "integer", "nullable": false, "default": "1" }));
    }
    let mut items = json!({ "name": "items", "columns": columns, "primary_key": ["id"] });
    if (4..8).contains(&step) {
        items["unique"] = json!([["code"]]);
    }
    if step == 8 {
        items["indexes"] = json!([{ "columns": ["remark"] }]);
    }
    if step >= 7 {
        items["dropped_columns"] = json!(["score"]);
    }
    let mut all = vec![items];
    if step >= 5 {
        all.push(json!({
            "name": "events",
            "columns": [
                { "name": "id", "type": "bigint" },
                { "name": "item_id", "type": "bigint" },
                { "name": "body", "type": "text" }
            ],
            "primary_key": ["id"]
        }));
    }
    if (5..10).contains(&step) {
        all.push(json!({
            "name": "audit",
            "columns": [{ "name": "id", "type": "bigint" }, { "name": "what", "type": "text" }],
            "primary_key": ["id"]
        }));
    }
    Value::Array(all)
}

/// The whole config at step `step`: the cluster's nodes, the tables, and from step 10 on the
/// table `audit` listed as dropped.
fn config(cluster: &TestCluster, step: usize) -> Value {
    let mut config = json!({ "nodes": cluster.nodes_json(), "tables": tables(step) });
    if step >= 10 {
        config["dropped_tables"] = json!(["audit"]);
    }
    config
}

/// The last config step. Every step but 9 (an index dropped, which happens concurrently
/// instead) is gated.
const STEPS: usize = 10;
fn gated(step: usize) -> bool {
    step != 9
}

/// Tiny deterministic generator (xorshift), so a failing run can be repeated.
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One statement at each schema level, newest first: the writer uses the newest its node
/// accepts (an undefined column or table sends it one level down).
fn writes(node: u64, n: u64, target: u64, rng: &mut Seeded) -> Vec<String> {
    let id = node * 1_000_000 + n;
    let score = rng.below(1_000_000);
    let qty = 2 + rng.below(50);
    if rng.below(3) == 0 && n > 1 {
        let text = format!("'u{node}-{n}'");
        return vec![
            format!("UPDATE public.items SET remark = {text}, qty = {qty} WHERE id = {target}"),
            format!("UPDATE public.items SET score = score + {score}, remark = {text}, qty = {qty} WHERE id = {target}"),
            format!("UPDATE public.items SET score = score + {score}, note = {text}, qty = {qty} WHERE id = {target}"),
            format!("UPDATE public.items SET score = score + {score}, note = {text} WHERE id = {target}"),
            format!("UPDATE public.items SET score = score + 1 WHERE id = {target}"),
        ];
    }
    let with_event = |insert: String, audit: bool| {
        let audit = if audit {
            format!(", a AS (INSERT INTO public.audit (id, what) SELECT id, 'a{id}' FROM i)")
        } else {
            String::new()
        };
        format!(
            "WITH i AS ({insert} RETURNING id){audit} \
             INSERT INTO public.events (id, item_id, body) SELECT id, id, 'e{id}' FROM i"
        )
    };
    let newest = format!(
        "INSERT INTO public.items (id, code, remark, qty) VALUES ({id}, 'c{id}', 'r{id}', {qty})"
    );
    vec![
        with_event(newest.clone(), true),
        with_event(newest, false),
        with_event(format!("INSERT INTO public.items (id, code, score, remark, qty) VALUES ({id}, 'c{id}', {score}, 'r{id}', {qty})"), true),
        with_event(format!("INSERT INTO public.items (id, code, score, note, qty) VALUES ({id}, 'c{id}', {score}, 'n{id}', {qty})"), true),
        format!("INSERT INTO public.items (id, code, score, note, qty) VALUES ({id}, 'c{id}', {score}, 'n{id}', {qty})"),
        format!("INSERT INTO public.items (id, code, score, note) VALUES ({id}, 'c{id}', {score}, 'n{id}')"),
        format!("INSERT INTO public.items (id, code, score) VALUES ({id}, 'c{id}', {})", score % 1000),
    ]
}

/// Writes on node `node` until `stop`; returns how many writes committed. Any error other
/// than a column or table this node does not have yet fails the test.
async fn writer(client: Client, node: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut rng = Seeded(0x9e37_79b9_7f4a_7c15 ^ (node + 1));
    let (mut n, mut committed) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        // Updates touch this node's rows and, one time in four, another node's.
        let owner = if rng.below(4) == 0 {
            rng.below(3)
        } else {
            node
        };
        let target = owner * 1_000_000 + 1 + rng.below(n.max(2) - 1);
        for sql in writes(node, n, target, &mut rng) {
            match client.batch_execute(&sql).await {
                Ok(()) => {
                    committed += 1;
                    break;
                }
                Err(e) if matches!(e.code(), Some(c) if *c == SqlState::UNDEFINED_COLUMN || *c == SqlState::UNDEFINED_TABLE) => {
                    continue
                }
                Err(e) => panic!("writer on node {node}: {sql}: {e:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    committed
}

#[tokio::test(flavor = "multi_thread")]
async fn evolution_changes_under_writes_on_every_node_converge() {
    let cluster = TestCluster::start(3);
    cluster.write_config_value(config(&cluster, 0));
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply failed:\n{}", text(&out));

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for node in 0..3 {
        let client = cluster.client(node).await;
        writers.push(tokio::spawn(writer(client, node as u64, Arc::clone(&stop))));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for step in 1..=STEPS {
        cluster.write_config_value(config(&cluster, step));
        let plan = cluster.pgconverge(&["plan"]);
        assert_eq!(plan.status.code(), Some(0), "plan {step}:\n{}", text(&plan));
        assert_eq!(
            text(&plan).contains("[gated]"),
            gated(step),
            "step {step}:\n{}",
            text(&plan)
        );
        let out = cluster.pgconverge(&["apply", "--auto-approve"]);
        assert_eq!(out.status.code(), Some(0), "apply {step}:\n{}", text(&out));
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for (node, w) in writers.into_iter().enumerate() {
        let committed = w.await.expect("writer");
        assert!(committed > 50, "node {node} wrote only {committed}");
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    for table in ["items", "events"] {
        let rows = mesh::wait_until_identical(&cluster, table, deadline).await;
        assert!(!rows.is_empty(), "{table} is empty");
    }
    for node in 0..3 {
        let audit: Option<String> = cluster
            .client(node)
            .await
            .query_one("SELECT to_regclass('public.audit')::text", &[])
            .await
            .expect("to_regclass")
            .get(0);
        assert_eq!(audit, None, "the dropped table is still on node {node}");
    }
    let qty_written: i64 = cluster
        .client(1)
        .await
        .query_one(
            "SELECT count(*) FROM public.items WHERE qty > 1 AND remark LIKE 'r%'",
            &[],
        )
        .await
        .expect("qty")
        .get(0);
    assert!(qty_written > 0, "no write used the new column");
    for node in 0..3 {
        let (errors, log) = mesh::apply_error_count(&cluster, node).await;
        assert_eq!(errors, 0, "apply errors on node {node}:\n{log}");
    }
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "re-plan:\n{}", text(&out));
}
