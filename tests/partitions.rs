//! Partitioned tables on real servers: a range- and a list-partitioned table written on every
//! node of a 3-node mesh at once (inserts, updates, updates moving rows to another partition,
//! deletes) end with the same rows in the same partitions everywhere; a partition added on
//! the live mesh while the writers write takes its rows on every node; a DEFAULT partition
//! holding rows of a new partition's range stops the plan; a dropped partition goes on every
//! node; a node joining a mesh gets the rows into their partitions, and the partitioned table
//! then takes a new column and an index like any other; and a database with
//! partitioned tables imports into a config whose plan changes nothing that exists.

#[path = "common/mesh.rs"]
mod mesh;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgconverge_tests::{output_text as text, TestCluster};
use serde_json::{json, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// `events` by range of `day` (2025, 2026, a DEFAULT), `accounts` by list of `region`,
/// `readings` by range of a `timestamptz` with bounds written as dates (PostgreSQL prints
/// them as midnights in the session's time zone), and with `with_2028` the partition
/// `events_2028`, with `dropped_2025` the 2025 one dropped.
fn tables(with_2028: bool, dropped_2025: bool) -> Value {
    let mut event_partitions =
        vec![json!({ "name": "events_2026", "bounds": "FROM ('2026-01-01') TO ('2027-01-01')" })];
    if !dropped_2025 {
        event_partitions.insert(
            0,
            json!({ "name": "events_2025", "bounds": "from ('2025-01-01'::date) to ('2026-01-01')" }),
        );
    }
    if with_2028 {
        event_partitions.push(
            json!({ "name": "events_2028", "bounds": "FROM ('2028-01-01') TO ('2029-01-01')" }),
        );
    }
    event_partitions.push(json!({ "name": "events_rest", "bounds": "DEFAULT" }));
    let mut events = json!({
        "name": "events",
        "columns": [
            { "name": "id", "type": "bigint" },
            { "name": "day", "type": "date", "nullable": false },
            { "name": "body", "type": "text" }
        ],
        "primary_key": ["id", "day"],
        "indexes": [{ "columns": ["body"] }],
        "partition_by": { "strategy": "range", "columns": ["day"] },
        "partitions": event_partitions
    });
    if dropped_2025 {
        events["dropped_partitions"] = json!(["events_2025"]);
    }
    json!([
        events,
        {
            "name": "accounts",
            "columns": [
                { "name": "id", "type": "bigint" },
                { "name": "region", "type": "text", "nullable": false },
                { "name": "email", "type": "text" }
            ],
            "primary_key": ["id", "region"],
            "unique": [["email", "region"]],
            "partition_by": { "strategy": "list", "columns": ["region"] },
            "partitions": [
                { "name": "accounts_eu", "bounds": "IN ('eu', 'uk')" },
                { "name": "accounts_us", "bounds": "IN ('us')" }
            ]
        },
        {
            "name": "readings",
            "columns": [
                { "name": "id", "type": "bigint" },
                { "name": "at", "type": "timestamptz", "nullable": false }
            ],
            "primary_key": ["id", "at"],
            "partition_by": { "strategy": "range", "columns": ["at"] },
            "partitions": [
                { "name": "readings_2026", "bounds": "FROM ('2026-01-01') TO ('2027-01-01')" }
            ]
        }
    ])
}

/// Every row of `public.<table>` on node `node` with the partition holding it, sorted.
async fn rows_with_partition(cluster: &TestCluster, node: usize, table: &str) -> Vec<String> {
    let client = cluster.client(node).await;
    mesh::stable_session(&client).await;
    let sql = format!(
        "SELECT t.tableoid::pg_catalog.regclass::text || ' ' || pg_catalog.to_jsonb(t)::text AS r \
         FROM public.{table} AS t ORDER BY r"
    );
    client
        .query(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("reading {table} on node {node}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Waits until `public.<table>` holds the same rows in the same partitions on every node.
async fn wait_until_same_partitions(cluster: &TestCluster, table: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let first = rows_with_partition(cluster, 0, table).await;
        let mut report = String::new();
        for node in 1..cluster.nodes.len() {
            let other = rows_with_partition(cluster, node, table).await;
            if other != first {
                let only_first: Vec<&String> = first
                    .iter()
                    .filter(|r| !other.contains(r))
                    .take(5)
                    .collect();
                let only_other: Vec<&String> = other
                    .iter()
                    .filter(|r| !first.contains(r))
                    .take(5)
                    .collect();
                report.push_str(&format!(
                    "node {node}: only on node 0: {only_first:?}; only on node {node}: {only_other:?}\n"
                ));
            }
        }
        if report.is_empty() {
            return first;
        }
        assert!(
            Instant::now() < deadline,
            "{table} differs between nodes:\n{report}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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

const REGIONS: [&str; 3] = ["eu", "uk", "us"];

/// One write on node `node`: inserts, updates in place, updates that move a row to another
/// partition (a new day or region), deletes; rows of 2028 once `late` is set.
fn write(node: u64, n: u64, rng: &mut Seeded, late: bool) -> String {
    let id = node * 1_000_000 + n;
    // Another node's row one time in four: concurrent writes to the same keys.
    let owner = if rng.below(4) == 0 {
        rng.below(3)
    } else {
        node
    };
    let target = owner * 1_000_000 + 1 + rng.below(n.max(2) - 1);
    let day = if late && rng.below(3) == 0 {
        format!("DATE '2028-01-01' + {}", rng.below(360))
    } else {
        format!("DATE '2025-01-01' + {}", rng.below(730))
    };
    let region = REGIONS[rng.below(3) as usize];
    match rng.below(8) {
        0 | 1 => format!(
            "INSERT INTO public.events (id, day, body) VALUES ({id}, {day}, 'b{id}');
             INSERT INTO public.accounts (id, region, email) VALUES ({id}, '{region}', 'e{id}@x')"
        ),
        2 => format!("UPDATE public.events SET body = 'u{node}-{n}' WHERE id = {target}"),
        3 => format!("UPDATE public.events SET day = {day} WHERE id = {target}"),
        4 => format!("UPDATE public.accounts SET region = '{region}' WHERE id = {target}"),
        5 => format!("UPDATE public.accounts SET email = 'm{node}-{n}@x' WHERE id = {target}"),
        6 if n.is_multiple_of(5) => format!(
            "DELETE FROM public.events WHERE id = {target}; DELETE FROM public.accounts WHERE id = {target}"
        ),
        _ => format!(
            "INSERT INTO public.events (id, day, body) VALUES ({id}, {day}, 'b{id}')"
        ),
    }
}

/// Writes on node `node` until `stop`; returns how many writes committed. A write that meets
/// a concurrent replicated change (serialization failure) or a value another node took
/// (unique violation) is dropped, as a client would retry it; any other error fails the test.
async fn writer(client: Client, node: u64, stop: Arc<AtomicBool>, late: Arc<AtomicBool>) -> u64 {
    let mut rng = Seeded(0x2545_f491_4f6c_dd1d ^ (node + 1));
    let (mut n, mut committed) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let sql = write(node, n, &mut rng, late.load(Ordering::Relaxed));
        match client.batch_execute(&format!("BEGIN; {sql}; COMMIT")).await {
            Ok(()) => committed += 1,
            Err(e)
                if matches!(e.code(), Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::UNIQUE_VIOLATION) =>
            {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            Err(e) => panic!("writer on node {node}: {sql}: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    committed
}

fn apply(cluster: &TestCluster, what: &str) -> String {
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply ({what}):\n{}",
        text(&out)
    );
    text(&out)
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_partitioned_tables_written_on_every_node_keep_rows_in_the_same_partitions() {
    let cluster = TestCluster::start(3);
    cluster.write_config(tables(false, false));
    apply(&cluster, "partitioned tables");

    let stop = Arc::new(AtomicBool::new(false));
    let late = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for node in 0..3 {
        let client = cluster.client(node).await;
        let (stop, late) = (Arc::clone(&stop), Arc::clone(&late));
        writers.push(tokio::spawn(writer(client, node as u64, stop, late)));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A partition added while every node writes: gated, so it goes live everywhere at once.
    cluster.write_config(tables(true, false));
    let plan = cluster.pgconverge(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "plan:\n{}", text(&plan));
    assert!(
        text(&plan).contains("partition public.events.events_2028"),
        "{}",
        text(&plan)
    );
    assert!(text(&plan).contains("[gated]"), "{}", text(&plan));
    apply(&cluster, "a partition added under writes");
    late.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for (node, w) in writers.into_iter().enumerate() {
        let committed = w.await.expect("writer");
        assert!(committed > 50, "node {node} wrote only {committed}");
    }

    let events = wait_until_same_partitions(&cluster, "events").await;
    let accounts = wait_until_same_partitions(&cluster, "accounts").await;
    for (partition, rows) in [
        ("events_2025", &events),
        ("events_2026", &events),
        ("events_2028", &events),
        ("accounts_eu", &accounts),
        ("accounts_us", &accounts),
    ] {
        assert!(
            rows.iter().any(|r| r.starts_with(&format!("{partition} "))),
            "no row in {partition}"
        );
    }
    assert!(
        !events.iter().any(|r| r.starts_with("events_rest ")),
        "rows of 2028 reached the DEFAULT partition somewhere"
    );
    for node in 0..3 {
        let (errors, log) = mesh::apply_error_count(&cluster, node).await;
        assert_eq!(errors, 0, "apply errors on node {node}:\n{log}");
    }
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "re-plan:\n{}", text(&out));
    let out = cluster.pgconverge(&["verify"]);
    assert_eq!(out.status.code(), Some(0), "verify:\n{}", text(&out));

    // A TRUNCATE of one partition is refused like one of its table.
    let truncate = cluster
        .client(1)
        .await
        .batch_execute("TRUNCATE public.events_2026")
        .await;
    assert!(truncate.is_err(), "TRUNCATE of a partition went through");

    // A new partition over rows already in the DEFAULT partition stops the plan.
    cluster
        .client(0)
        .await
        .batch_execute("INSERT INTO public.events VALUES (7, DATE '2030-05-01', 'late')")
        .await
        .expect("row of 2030");
    let mut config = tables(true, false);
    config[0]["partitions"]
        .as_array_mut()
        .expect("partitions")
        .insert(
            3,
            json!({ "name": "events_2030", "bounds": "FROM ('2030-01-01') TO ('2031-01-01')" }),
        );
    let wanted = config.clone();
    cluster.write_config(config);
    let out = cluster.pgconverge(&["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("new partition events_2030 needs no row of its range"),
        "{}",
        text(&out)
    );
    cluster
        .client(0)
        .await
        .batch_execute("DELETE FROM public.events WHERE id = 7")
        .await
        .expect("row of 2030 deleted");
    wait_until_same_partitions(&cluster, "events").await;
    cluster.write_config(wanted);
    apply(&cluster, "a partition beside a DEFAULT one");

    // A dropped partition takes its rows with it, on every node.
    let before_2025 = cluster
        .query_i64(2, "SELECT count(*) FROM public.events_2025")
        .await;
    let total = cluster
        .query_i64(2, "SELECT count(*) FROM public.events")
        .await;
    cluster.write_config(tables(true, true));
    let plan = cluster.pgconverge(&["plan"]);
    assert!(
        text(&plan).contains("drops the partition and every row in it"),
        "{}",
        text(&plan)
    );
    apply(&cluster, "a partition dropped");
    for node in 0..3 {
        let left = cluster
            .query_i64(node, "SELECT count(*) FROM public.events")
            .await;
        assert_eq!(left, total - before_2025, "node {node}");
    }
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "re-plan:\n{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_partitioned_rows_reach_their_partitions_on_a_joining_node() {
    let cluster = TestCluster::start(3);
    cluster.write_config_for(&[0, 1], tables(false, false));
    apply(&cluster, "two nodes");
    cluster
        .client(0)
        .await
        .batch_execute(
            "INSERT INTO public.events SELECT g, DATE '2025-01-01' + (g * 7) % 1000, 'b' || g
                 FROM generate_series(1, 2000) g;
             INSERT INTO public.accounts
                 SELECT g, (ARRAY['eu', 'uk', 'us'])[1 + g % 3], 'e' || g FROM generate_series(1, 500) g;
             UPDATE public.accounts SET region = 'us' WHERE id % 10 = 0",
        )
        .await
        .expect("rows on n1");
    cluster.write_config(tables(false, false));
    apply(&cluster, "a third node joins");
    let events = wait_until_same_partitions(&cluster, "events").await;
    assert_eq!(events.len(), 2000);
    assert!(events.iter().any(|r| r.starts_with("events_rest ")));
    let accounts = wait_until_same_partitions(&cluster, "accounts").await;
    assert_eq!(accounts.len(), 500);
    // Writes on the joined node replicate into the others' partitions.
    cluster
        .client(2)
        .await
        .batch_execute("UPDATE public.events SET day = DATE '2026-06-01' WHERE id <= 100")
        .await
        .expect("moves on n3");
    let events = wait_until_same_partitions(&cluster, "events").await;
    let moved = events
        .iter()
        .filter(|r| r.starts_with("events_2026 ") && r.contains("\"day\": \"2026-06-01\""))
        .count();
    assert!(moved >= 100, "{moved} rows moved");

    // The partitioned table evolves like any other: a column added (gated, reaching every
    // partition) and an index, built in a transaction since it cannot be built concurrently.
    let mut evolved = tables(false, false);
    evolved[1]["columns"]
        .as_array_mut()
        .expect("columns")
        .push(json!({ "name": "note", "type": "text" }));
    evolved[1]["indexes"] = json!([{ "columns": ["email"] }]);
    cluster.write_config(evolved);
    let plan = cluster.pgconverge(&["plan"]);
    assert!(
        text(&plan).contains("blocks writes to the partitioned table"),
        "{}",
        text(&plan)
    );
    apply(&cluster, "a column and an index on a partitioned table");
    cluster
        .client(1)
        .await
        .batch_execute("UPDATE public.accounts SET note = 'n', region = 'eu' WHERE id <= 30")
        .await
        .expect("the new column written on n2");
    let accounts = wait_until_same_partitions(&cluster, "accounts").await;
    let noted = accounts
        .iter()
        .filter(|r| r.starts_with("accounts_eu ") && r.contains("\"note\": \"n\""))
        .count();
    assert_eq!(noted, 30);
    for node in 0..3 {
        let (errors, log) = mesh::apply_error_count(&cluster, node).await;
        assert_eq!(errors, 0, "apply errors on node {node}:\n{log}");
    }
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "re-plan:\n{}", text(&out));
}

const PARTITIONED_SQL: &str = "
CREATE TABLE public.events (id bigint, day date, body text, PRIMARY KEY (id, day))
    PARTITION BY RANGE (day);
CREATE TABLE public.events_2026 PARTITION OF public.events
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.events_rest PARTITION OF public.events DEFAULT;
CREATE INDEX events_body_idx ON public.events (body);
CREATE TABLE public.tokens (id bigint PRIMARY KEY, owner text) PARTITION BY HASH (id);
CREATE TABLE public.tokens_0 PARTITION OF public.tokens FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE public.tokens_1 PARTITION OF public.tokens FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE public.monthly (id bigint, at timestamp)
    PARTITION BY RANGE (date_trunc('month', at));
INSERT INTO public.events SELECT g, DATE '2025-12-01' + g, 'b' || g FROM generate_series(1, 100) g;
INSERT INTO public.tokens SELECT g, 'o' || g FROM generate_series(1, 50) g;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_partitioned_import_then_plan_changes_nothing_that_exists() {
    let cluster = TestCluster::start(1);
    cluster.write_config(json!([]));
    cluster
        .client(0)
        .await
        .batch_execute(PARTITIONED_SQL)
        .await
        .unwrap_or_else(|e| panic!("partitioned tables: {e:?}"));
    let out = cluster.pgconverge(&[
        "import",
        "--from",
        "n1",
        "--out",
        "imported.json",
        "--report",
        "report.txt",
    ]);
    assert!(out.status.success(), "import failed:\n{}", text(&out));
    let report = std::fs::read_to_string(cluster.dir.join("report.txt")).expect("report.txt");
    assert!(
        report.contains("table public.monthly: a partitioned table whose key"),
        "{report}"
    );
    assert!(!report.contains("events_2026"), "{report}");
    let imported: Value = serde_json::from_str(
        &std::fs::read_to_string(cluster.dir.join("imported.json")).expect("imported.json"),
    )
    .expect("imported.json is JSON");
    let events = &imported["tables"][0];
    assert_eq!(events["name"], "events", "{imported:#}");
    assert_eq!(
        events["partition_by"],
        json!({ "strategy": "range", "columns": ["day"] })
    );
    assert_eq!(
        events["partitions"],
        json!([
            { "name": "events_2026", "bounds": "FROM ('2026-01-01') TO ('2027-01-01')" },
            { "name": "events_rest", "bounds": "DEFAULT" }
        ])
    );
    let tokens = &imported["tables"][1];
    assert_eq!(
        tokens["partitions"][1]["bounds"],
        "WITH (modulus 2, remainder 1)"
    );
    assert_eq!(imported["tables"].as_array().map(Vec::len), Some(2));

    let out = cluster.pgconverge(&["--config", "imported.json", "plan", "--json"]);
    assert!(out.status.success(), "plan failed:\n{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan --json");
    assert_eq!(plan["blockers"], json!([]), "{plan:#}");
    let changes = plan["changes"].as_array().cloned().unwrap_or_default();
    for change in &changes {
        let kind = change["kind"].as_str().unwrap_or_default();
        let name = change["name"].as_str().unwrap_or_default();
        let ours = match kind {
            "schema" => name == "_pgconverge",
            "table" => name.starts_with("_pgconverge."),
            "column" => name.ends_with("._pgc_version") || name.ends_with("._pgc_origin"),
            "trigger" => name.starts_with("_pgconverge.") || name.contains("._pgc_"),
            "function" => name.starts_with("_pgconverge."),
            // The TRUNCATE refusal added to each partition, nothing else.
            "partition" => change["actions"] == json!(["update"]),
            "publication" | "membership" => true,
            _ => false,
        };
        assert!(ours, "the plan changes an existing object: {change:#}");
    }
    let out = cluster.pgconverge(&["--config", "imported.json", "apply", "--auto-approve"]);
    assert!(out.status.success(), "apply failed:\n{}", text(&out));
    let out = cluster.pgconverge(&["--config", "imported.json", "plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stamped = cluster
        .query_i64(
            0,
            "SELECT count(*) FROM public.events_rest WHERE _pgc_version = 0",
        )
        .await;
    assert!(stamped > 0, "existing rows keep their place");

    // A partition's TRUNCATE refusal dropped behind pgconverge's back is drift, repaired.
    cluster
        .client(0)
        .await
        .batch_execute("DROP TRIGGER _pgc_95_truncate ON public.tokens_1")
        .await
        .expect("trigger dropped");
    let out = cluster.pgconverge(&["--config", "imported.json", "plan"]);
    assert!(
        text(&out).contains("! partition public.tokens.tokens_1 on n1"),
        "{}",
        text(&out)
    );
    let out = cluster.pgconverge(&["--config", "imported.json", "apply", "--auto-approve"]);
    assert!(out.status.success(), "apply failed:\n{}", text(&out));
    let out = cluster.pgconverge(&["--config", "imported.json", "plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
