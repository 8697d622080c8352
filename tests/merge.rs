//! Merging databases that each hold rows (`merge_rows`), on real servers. Two databases with
//! overlapping keys form a mesh with an empty third node while clients write: keys only one
//! holds reach every node, a key both held keeps the first node's version everywhere and the
//! other is set aside in the merging node's conflict ledger. A node holding rows that joins a
//! running mesh is refused until it sets `merge_rows`, then merged while every node writes.
//! A generated column is computed on every node, never written by the merge.

#[path = "common/mesh.rs"]
mod mesh;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgconverge_tests::{output_text as text, TestCluster};
use serde_json::{json, Value};
use tokio_postgres::Client;

const SCHEMA: &str = "
CREATE TABLE public.customers (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    label text GENERATED ALWAYS AS ('#' || id::text || ' ' || name) STORED
);
CREATE TABLE public.orders (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES public.customers (id),
    amount bigint NOT NULL
);";

fn tables() -> Value {
    json!([
        {"name": "customers", "columns": [
            {"name": "id", "type": "bigint"},
            {"name": "name", "type": "text", "nullable": false},
            {"name": "label", "type": "text", "generated": "'#' || id::text || ' ' || name"}],
         "primary_key": ["id"]},
        {"name": "orders", "columns": [
            {"name": "id", "type": "bigint"},
            {"name": "customer_id", "type": "bigint", "nullable": false},
            {"name": "amount", "type": "bigint", "nullable": false}],
         "primary_key": ["id"],
         "foreign_keys": [{"columns": ["customer_id"],
                           "references": {"table": "customers", "columns": ["id"]}}]}
    ])
}

/// The config of nodes `members`, with `merge_rows` set on the nodes in `merging`.
fn config(cluster: &TestCluster, members: &[usize], merging: &[usize]) -> Value {
    let nodes: Vec<Value> = members
        .iter()
        .map(|&i| {
            let mut node = cluster.node(i).config_json();
            if merging.contains(&i) {
                node["merge_rows"] = json!(true);
            }
            node
        })
        .collect();
    json!({"nodes": nodes, "tables": tables()})
}

/// Inserts customers with orders, and renames its own customers, in the key range `base..`
/// until `stop`; returns the writes.
async fn write_until(client: Client, base: i64, stop: Arc<AtomicBool>) -> i64 {
    let mut n = 0i64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = base + n;
        let sql = if n % 3 == 0 {
            format!(
                "UPDATE public.customers SET name = 'renamed-{n}' WHERE id = {}",
                base + n / 2
            )
        } else {
            format!(
                "INSERT INTO public.customers VALUES ({id}, 'w-{id}'); \
                 INSERT INTO public.orders VALUES ({id}, {id}, {n})"
            )
        };
        client
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("writer {base}: {sql}: {e:?}"));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    n
}

async fn writers(
    cluster: &TestCluster,
    nodes: &[(usize, i64)],
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<i64>> {
    let mut handles = Vec::new();
    for &(node, base) in nodes {
        handles.push(tokio::spawn(write_until(
            cluster.client(node).await,
            base,
            Arc::clone(stop),
        )));
    }
    handles
}

async fn converged(cluster: &TestCluster) {
    let deadline = Instant::now() + Duration::from_secs(90);
    for table in ["customers", "orders"] {
        mesh::wait_until_identical(cluster, table, deadline).await;
    }
    for node in 0..3 {
        let (errors, log) = mesh::apply_error_count(cluster, node).await;
        assert_eq!(errors, 0, "apply errors on node {node}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_merges_two_databases_with_rows_while_both_take_writes() {
    let cluster = TestCluster::start(3);
    let n1 = cluster.client(0).await;
    let n2 = cluster.client(1).await;
    for client in [&n1, &n2] {
        client.batch_execute(SCHEMA).await.expect("schema");
    }
    // n1: customers 1..1000 with 3,000 orders. n2: customers 1..50 as n1 has them, 51..100
    // under other names, 5001..5500 of its own with orders.
    n1.batch_execute(
        "INSERT INTO public.customers SELECT g, 'c-' || g FROM generate_series(1, 1000) g; \
         INSERT INTO public.orders SELECT g, 1 + g % 1000, g FROM generate_series(1, 3000) g",
    )
    .await
    .expect("rows on n1");
    n2.batch_execute(
        "INSERT INTO public.customers SELECT g, CASE WHEN g <= 50 THEN 'c-' || g ELSE 'n2-' || g END \
           FROM generate_series(1, 100) g; \
         INSERT INTO public.customers SELECT g, 'n2-' || g FROM generate_series(5001, 5500) g; \
         INSERT INTO public.orders SELECT g, 5001 + g % 500, g FROM generate_series(10001, 11000) g",
    )
    .await
    .expect("rows on n2");

    // Without the opt-in the second database is refused, naming the setting.
    cluster.write_config_value(config(&cluster, &[0, 1, 2], &[]));
    let out = cluster.pgconverge(&["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("\"merge_rows\": true"),
        "{}",
        text(&out)
    );

    cluster.write_config_value(config(&cluster, &[0, 1, 2], &[1]));
    let out = cluster.pgconverge(&["plan"]);
    assert_eq!(out.status.code(), Some(0), "plan:\n{}", text(&out));
    for expected in [
        "bootstrap n2 from n1",
        "bootstrap n3 from n1",
        "merged with the mesh's",
    ] {
        assert!(
            text(&out).contains(expected),
            "missing {expected:?}:\n{}",
            text(&out)
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let during = writers(&cluster, &[(0, 100_000), (1, 200_000)], &stop).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply:\n{}", text(&out));
    for expected in ["n2: merged public.customers:", "n2: merged public.orders:"] {
        assert!(
            text(&out).contains(expected),
            "missing {expected:?}:\n{}",
            text(&out)
        );
    }
    let after = writers(&cluster, &[(2, 300_000)], &stop).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in during.into_iter().chain(after) {
        assert!(writer.await.expect("writer") > 20);
    }
    converged(&cluster).await;

    // Every key either database held is on every node; for keys both held, n1's version.
    for node in 0..3 {
        let count = |sql: &'static str| cluster.query_i64(node, sql);
        assert_eq!(
            count("SELECT count(*) FROM public.customers WHERE id <= 1000 OR id BETWEEN 5001 AND 5500").await,
            1500,
            "node {node}"
        );
        assert_eq!(
            count("SELECT count(*) FROM public.customers WHERE id <= 100 AND name <> 'c-' || id")
                .await,
            0,
            "node {node} holds n2's version of a key n1 held"
        );
        assert_eq!(
            count("SELECT count(*) FROM public.customers WHERE label IS DISTINCT FROM '#' || id || ' ' || name").await,
            0,
            "node {node}: a generated value not computed from its row"
        );
        assert_eq!(
            count(
                "SELECT count(*) FROM public.orders WHERE id <= 3000 OR id BETWEEN 10001 AND 11000"
            )
            .await,
            4000,
            "node {node}"
        );
    }
    // n2's other versions of keys 51..100 are in its ledger, the identical 1..50 are not.
    let set_aside = cluster
        .query_i64(
            1,
            "SELECT count(*) FROM _pgconverge.conflicts WHERE kind = 'merge' \
             AND tbl = 'public.customers' AND (pk ->> 'id')::int8 BETWEEN 51 AND 100",
        )
        .await;
    assert_eq!(set_aside, 50);
    assert_eq!(
        cluster
            .query_i64(
                1,
                "SELECT count(*) FROM _pgconverge.conflicts WHERE kind = 'merge'"
            )
            .await,
        50
    );
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "re-plan:\n{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn join_of_a_node_holding_rows_needs_merge_rows_then_merges_under_writes() {
    let cluster = TestCluster::start(3);
    for node in 0..3 {
        cluster
            .client(node)
            .await
            .batch_execute(SCHEMA)
            .await
            .expect("schema");
    }
    cluster.write_config_value(config(&cluster, &[0, 1], &[]));
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply n1, n2:\n{}", text(&out));
    cluster
        .client(0)
        .await
        .batch_execute(
            "INSERT INTO public.customers SELECT g, 'c-' || g FROM generate_series(1, 500) g; \
             INSERT INTO public.orders SELECT g, g, g FROM generate_series(1, 500) g",
        )
        .await
        .expect("rows in the mesh");
    let n3 = cluster.client(2).await;
    n3.batch_execute(
        "INSERT INTO public.customers SELECT g, 'n3-' || g FROM generate_series(401, 700) g; \
         INSERT INTO public.orders SELECT g, g, g FROM generate_series(601, 700) g",
    )
    .await
    .expect("rows on n3");

    cluster.write_config_value(config(&cluster, &[0, 1, 2], &[]));
    let out = cluster.pgconverge(&["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for expected in [
        "holds rows in public.customers, public.orders",
        "\"merge_rows\": true on n3",
    ] {
        assert!(
            text(&out).contains(expected),
            "missing {expected:?}:\n{}",
            text(&out)
        );
    }

    cluster.write_config_value(config(&cluster, &[0, 1, 2], &[2]));
    let stop = Arc::new(AtomicBool::new(false));
    let during = writers(&cluster, &[(0, 100_000), (1, 200_000), (2, 300_000)], &stop).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply n3:\n{}", text(&out));
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in during {
        assert!(writer.await.expect("writer") > 20);
    }
    converged(&cluster).await;
    for node in 0..3 {
        assert_eq!(
            cluster
                .query_i64(
                    node,
                    "SELECT count(*) FROM public.customers WHERE id <= 700"
                )
                .await,
            700,
            "node {node}"
        );
        assert_eq!(
            cluster
                .query_i64(
                    node,
                    "SELECT count(*) FROM public.customers WHERE id <= 500 AND name <> 'c-' || id"
                )
                .await,
            0,
            "node {node}: the mesh's version of 401..500 stays"
        );
    }
    assert_eq!(
        cluster
            .query_i64(
                2,
                "SELECT count(*) FROM _pgconverge.conflicts WHERE kind = 'merge'"
            )
            .await,
        100
    );
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "re-plan:\n{}", text(&out));
}
