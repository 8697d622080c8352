//! Adopting existing schemas on real servers: integer keys drawn from sequences (identity,
//! bigserial) stay node-unique when every node inserts with its default keys at once, a
//! sequence reset behind pgconverge's back is raised again, and configs whose key columns
//! cannot be made node-unique are refused with located errors.

#[path = "common/mesh.rs"]
mod mesh;

use std::time::Duration;

use mesh::{table, Mesh};
use pgconverge_tests::{output_text, repo_root, TestCluster};

const CLIENTS_PER_NODE: usize = 3;
const INSERTS_PER_CLIENT: i64 = 150;
const BLOCK_BITS: u32 = 48;

fn keyed_tables() -> Vec<pgconverge_model::TableConfig> {
    vec![
        table(serde_json::json!({
            "name": "orders",
            "columns": [
                {"name": "id", "type": "bigint", "identity": "always"},
                {"name": "node", "type": "text", "nullable": false},
                {"name": "n", "type": "bigint"}
            ],
            "primary_key": ["id"]
        })),
        table(serde_json::json!({
            "name": "tickets",
            "columns": [
                {"name": "id", "type": "bigserial"},
                {"name": "node", "type": "text", "nullable": false},
                {"name": "n", "type": "bigint"}
            ],
            "primary_key": ["id"]
        })),
    ]
}

/// Every client of every node inserts rows with default keys into both tables, at once.
async fn insert_everywhere(cluster: &TestCluster) {
    let mut tasks = Vec::new();
    for node in 0..cluster.nodes.len() {
        for client_no in 0..CLIENTS_PER_NODE {
            let client = cluster.client(node).await;
            let name = cluster.nodes[node].name.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..INSERTS_PER_CLIENT {
                    let n = (client_no as i64) * INSERTS_PER_CLIENT + i;
                    for sql in [
                        "INSERT INTO public.orders (node, n) VALUES ($1, $2)",
                        "INSERT INTO public.tickets (node, n) VALUES ($1, $2)",
                    ] {
                        client
                            .execute(sql, &[&name, &n])
                            .await
                            .unwrap_or_else(|e| panic!("{sql} on {name}: {e:?}"));
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap_or_else(|e| panic!("insert task: {e}"));
    }
}

/// Exit code of `pgconverge plan --detailed-exitcode`: 0 in sync, 2 with changes.
fn plan_exit_code(cluster: &TestCluster) -> (i32, String) {
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    (out.status.code().unwrap_or(-1), output_text(&out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_concurrent_default_key_inserts_on_three_nodes_never_collide() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, keyed_tables()).await;
    let (code, text) = plan_exit_code(&cluster);
    assert_eq!(code, 0, "the plan after apply is not empty:\n{text}");

    insert_everywhere(&cluster).await;
    mesh.wait_for_catch_up(Duration::from_secs(120)).await;
    mesh.assert_no_apply_errors().await;
    mesh.assert_converged().await;

    let expected = (cluster.nodes.len() * CLIENTS_PER_NODE) as i64 * INSERTS_PER_CLIENT;
    for node in 0..cluster.nodes.len() {
        let client = cluster.client(node).await;
        for table in ["orders", "tickets"] {
            // Every row arrived, and each node's keys lie in one block that no other node uses.
            let sql = format!(
                "SELECT count(*), count(DISTINCT id), \
                        count(DISTINCT (node, id >> {BLOCK_BITS})), \
                        count(DISTINCT id >> {BLOCK_BITS}), min(id >> {BLOCK_BITS}) \
                 FROM public.{table}"
            );
            let row = client
                .query_one(&sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            let (rows, ids, node_blocks, blocks, lowest): (i64, i64, i64, i64, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
            assert_eq!(
                (rows, ids),
                (expected, expected),
                "{table} on n{}",
                node + 1
            );
            assert_eq!((node_blocks, blocks), (3, 3), "{table} on n{}", node + 1);
            assert!(lowest >= 1, "{table}: a key in block 0 on n{}", node + 1);
        }
    }
    // Two nodes handing out one key would have met as a conflict (one row overwriting the
    // other): the ledger stays empty.
    for node in 0..cluster.nodes.len() {
        let conflicts: i64 = cluster
            .client(node)
            .await
            .query_one("SELECT count(*) FROM _pgconverge.conflicts", &[])
            .await
            .unwrap_or_else(|e| panic!("reading the conflict ledger: {e:?}"))
            .get(0);
        assert_eq!(conflicts, 0, "conflicts on n{}", node + 1);
    }

    // A sequence reset behind pgconverge's back would hand out values its node already
    // used; the next plan raises it above them and nothing else.
    let client = cluster.client(1).await;
    let restart = 1i64 << BLOCK_BITS;
    client
        .batch_execute(&format!(
            "ALTER SEQUENCE public.tickets_id_seq RESTART WITH {}",
            restart * 2 + 1
        ))
        .await
        .unwrap_or_else(|e| panic!("resetting the sequence: {e:?}"));
    let (code, text) = plan_exit_code(&cluster);
    assert_eq!(code, 2, "a reset sequence is not planned:\n{text}");
    assert!(text.contains("key slot n2"), "{text}");
    assert!(text.contains("raised from"), "{text}");
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let row = client
        .query_one(
            "SELECT nextval('public.tickets_id_seq') > (SELECT max(id) FROM public.tickets \
             WHERE id >> 48 = (SELECT slot FROM _pgconverge.key_slot WHERE node = 'n2'))",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("reading the raised sequence: {e:?}"));
    assert!(
        row.get::<_, bool>(0),
        "the raised sequence is not above n2's keys"
    );
    let (code, text) = plan_exit_code(&cluster);
    assert_eq!(code, 0, "the plan after raising is not empty:\n{text}");
}

#[test]
fn adopt_key_columns_that_cannot_be_node_unique_are_refused_with_located_errors() {
    let case = repo_root().join("fixtures/invalid/key-generators/pgconverge.json");
    let config = case.to_string_lossy().into_owned();
    let out = std::process::Command::new(TestCluster::pgconverge_bin())
        .args(["validate", "--config", &config])
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("running pgconverge: {e}"));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for located in [
        "pgconverge.json:8:61: tables[0].columns[1].default",
        "pgconverge.json:10:55: tables[0].columns[3].identity: an identity column must be",
        "pgconverge.json:12:56: tables[0].columns[5].default",
    ] {
        assert!(text.contains(located), "missing {located:?} in:\n{text}");
    }
}
