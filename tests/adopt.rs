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

/// A shop schema as an application would have made it: serial and identity keys, foreign
/// keys with actions, a composite key, indexes, and objects the config cannot describe.
const SHOP_SQL: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE SCHEMA shop;
CREATE TABLE customers (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text,
                        mood mood);
CREATE TABLE shop.orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    total numeric(12,2) NOT NULL DEFAULT 0 CHECK (total >= 0),
    created timestamptz NOT NULL DEFAULT now(),
    note text);
CREATE INDEX orders_created_idx ON shop.orders (created);
CREATE INDEX orders_big_idx ON shop.orders (total DESC) WHERE total > 100;
CREATE TABLE shop.order_lines (
    order_id bigint REFERENCES shop.orders (id),
    line int,
    qty int DEFAULT 1,
    PRIMARY KEY (order_id, line));
CREATE TABLE tags (id serial PRIMARY KEY, label varchar(20) UNIQUE);
CREATE TABLE log (line text);
CREATE VIEW order_totals AS SELECT customer_id, sum(total) AS total FROM shop.orders GROUP BY 1;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql
    AS $$BEGIN NEW.note := coalesce(NEW.note, ''); RETURN NEW; END$$;
CREATE TRIGGER orders_touch BEFORE INSERT ON shop.orders FOR EACH ROW EXECUTE FUNCTION touch();
INSERT INTO customers (email) VALUES ('a@example.com'), ('b@example.com');
INSERT INTO shop.orders (customer_id, total) VALUES (1, 10), (2, 200);
INSERT INTO shop.order_lines VALUES (1, 1, 2), (2, 1, 5);
INSERT INTO tags (label) VALUES ('new');
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_import_from_a_live_database_then_plan_changes_nothing_that_exists() {
    let cluster = TestCluster::start(1);
    cluster.write_config(serde_json::json!([]));
    let client = cluster.client(0).await;
    client
        .batch_execute(SHOP_SQL)
        .await
        .unwrap_or_else(|e| panic!("creating the shop schema: {e:?}"));

    let out = cluster.pgconverge(&[
        "import",
        "--from",
        "n1",
        "--out",
        "imported.json",
        "--report",
        "report.txt",
    ]);
    let text = output_text(&out);
    assert!(out.status.success(), "import failed:\n{text}");
    let report = std::fs::read_to_string(cluster.dir.join("report.txt"))
        .unwrap_or_else(|e| panic!("report.txt: {e}"));
    for listed in [
        "view public.order_totals",
        "function public.touch()",
        "trigger orders_touch on shop.orders",
        "index orders_big_idx on shop.orders",
        "table public.log: has no primary key",
    ] {
        assert!(
            report.contains(listed),
            "report lacks {listed:?}:\n{report}"
        );
        assert!(text.contains(listed), "stderr lacks {listed:?}:\n{text}");
    }

    let imported: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(cluster.dir.join("imported.json"))
            .unwrap_or_else(|e| panic!("imported.json: {e}")),
    )
    .unwrap_or_else(|e| panic!("imported.json is not JSON: {e}"));
    assert_eq!(imported["nodes"][0]["name"], "n1");
    let tables: Vec<String> = imported["tables"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    format!(
                        "{}.{}",
                        t["schema"].as_str().unwrap_or("public"),
                        t["name"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        tables,
        [
            "public.customers",
            "public.tags",
            "shop.order_lines",
            "shop.orders"
        ],
        "{imported:#}"
    );
    let customers = &imported["tables"][0];
    assert_eq!(
        customers["columns"][0]["type"], "bigserial",
        "{customers:#}"
    );
    assert_eq!(customers["unique"], serde_json::json!([["email"]]));
    let orders = &imported["tables"][3];
    assert_eq!(orders["columns"][0]["identity"], "always", "{orders:#}");
    assert_eq!(
        orders["foreign_keys"][0]["on_delete"], "cascade",
        "{orders:#}"
    );
    assert_eq!(
        orders["indexes"][0]["name"], "orders_created_idx",
        "{orders:#}"
    );
    assert_eq!(imported["tables"][1]["columns"][0]["type"], "serial");
    // The enum and the CHECK come in as PostgreSQL prints them, not in the report.
    assert_eq!(
        imported["types"],
        serde_json::json!([{ "name": "mood", "schema": "public", "enum": ["sad", "ok"] }])
    );
    assert_eq!(
        customers["columns"][3]["type"], "public.mood",
        "{customers:#}"
    );
    assert_eq!(
        orders["checks"],
        serde_json::json!([{ "name": "orders_total_check", "expression": "(total >= (0)::numeric)" }]),
        "{orders:#}"
    );
    assert!(!text.contains("CHECK constraint"), "{text}");
    assert!(!text.contains("enum type"), "{text}");

    // The same database named by a connection string gives the same tables; without a
    // config there are no nodes to carry over.
    let conninfo = cluster.node(0).connection_string();
    let out = cluster.pgconverge(&[
        "--config",
        "absent.json",
        "import",
        "--from",
        &conninfo,
        "--out",
        "-",
    ]);
    assert!(
        out.status.code() == Some(1),
        "an absent --config is not refused:\n{}",
        output_text(&out)
    );
    std::fs::remove_file(cluster.dir.join("pgconverge.json"))
        .unwrap_or_else(|e| panic!("removing pgconverge.json: {e}"));
    let out = cluster.pgconverge(&["import", "--from", &conninfo, "--out", "-"]);
    assert!(
        out.status.success(),
        "import by conninfo failed:\n{}",
        output_text(&out)
    );
    let by_conninfo: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("import --out - is not JSON: {e}\n{}", output_text(&out)));
    assert_eq!(by_conninfo["nodes"], serde_json::json!([]));
    assert_eq!(by_conninfo["tables"], imported["tables"]);
    assert!(
        output_text(&out).contains("add them before"),
        "{}",
        output_text(&out)
    );

    // Planned against the same database, the imported config changes nothing that exists.
    let out = cluster.pgconverge(&["--config", "imported.json", "plan", "--json"]);
    assert!(out.status.success(), "plan failed:\n{}", output_text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan --json: {e}\n{}", output_text(&out)));
    assert_eq!(plan["blockers"], serde_json::json!([]), "{plan:#}");
    let changes = plan["changes"].as_array().cloned().unwrap_or_default();
    assert!(!changes.is_empty());
    let foreign: Vec<&serde_json::Value> = changes
        .iter()
        .filter(|c| !mesh::is_pgconverge_addition(c))
        .collect();
    assert!(
        foreign.is_empty(),
        "the plan changes existing objects: {:#}",
        serde_json::Value::Array(foreign.into_iter().cloned().collect())
    );
    // The existing sequences are made node-unique: bounded to n1's block, above its rows.
    let key_slot = changes
        .iter()
        .find(|c| c["kind"] == "key slot")
        .unwrap_or_else(|| panic!("no key slot step in {plan:#}"));
    let sql = key_slot["sql"].to_string();
    for sequence in ["customers_id_seq", "orders_id_seq", "tags_id_seq"] {
        assert!(sql.contains(sequence), "{sequence} is not bounded: {sql}");
    }

    let out = cluster.pgconverge(&["--config", "imported.json", "apply", "--auto-approve"]);
    assert!(out.status.success(), "apply failed:\n{}", output_text(&out));
    let out = cluster.pgconverge(&["--config", "imported.json", "plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // Old rows keep their keys; new ones come from n1's block.
    let row = client
        .query_one(
            "INSERT INTO shop.orders (customer_id) VALUES (1) RETURNING id >> 48, \
             (SELECT min(id) FROM shop.orders)",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("inserting after adoption: {e:?}"));
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (1, 1));
}

fn apply_ok(cluster: &TestCluster) {
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert!(out.status.success(), "apply failed:\n{}", output_text(&out));
}

/// Inserts `rows` rows with default keys into both keyed tables on node `node`.
async fn insert_on(cluster: &TestCluster, node: usize, rows: i64) {
    let client = cluster.client(node).await;
    let name = cluster.nodes[node].name.clone();
    for n in 0..rows {
        for table in ["orders", "tickets"] {
            client
                .execute(
                    &format!("INSERT INTO public.{table} (node, n) VALUES ($1, $2)"),
                    &[&name, &n],
                )
                .await
                .unwrap_or_else(|e| panic!("insert into {table} on {name}: {e:?}"));
        }
    }
}

/// Waits until every node of `members` holds `rows` rows in both keyed tables.
async fn wait_for_rows(cluster: &TestCluster, members: &[usize], rows: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    for &node in members {
        let client = cluster.client(node).await;
        loop {
            let row = client
                .query_one(
                    "SELECT (SELECT count(*) FROM public.orders), (SELECT count(*) FROM public.tickets)",
                    &[],
                )
                .await
                .unwrap_or_else(|e| panic!("counting rows: {e:?}"));
            if (row.get::<_, i64>(0), row.get::<_, i64>(1)) == (rows, rows) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "n{} holds {:?} rows, not {rows}",
                node + 1,
                (row.get::<_, i64>(0), row.get::<_, i64>(1))
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn register(cluster: &TestCluster, node: usize) -> Vec<(String, i64)> {
    cluster
        .client(node)
        .await
        .query(
            "SELECT node, slot FROM _pgconverge.key_slot ORDER BY node",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("reading the key slot register: {e:?}"))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_a_joining_node_gets_a_new_slot_and_a_leaving_one_keeps_its_own() {
    let cluster = TestCluster::start(3);
    let tables = serde_json::to_value(keyed_tables()).unwrap_or_else(|e| panic!("tables: {e}"));
    cluster.write_config_for(&[0, 1], tables.clone());
    apply_ok(&cluster);
    insert_on(&cluster, 0, 20).await;
    insert_on(&cluster, 1, 20).await;
    wait_for_rows(&cluster, &[0, 1], 40).await;

    cluster.write_config_for(&[0, 1, 2], tables.clone());
    apply_ok(&cluster);
    insert_on(&cluster, 2, 20).await;
    wait_for_rows(&cluster, &[0, 1, 2], 60).await;
    let all = vec![
        ("n1".to_string(), 1),
        ("n2".to_string(), 2),
        ("n3".to_string(), 3),
    ];
    for node in 0..3 {
        assert_eq!(
            register(&cluster, node).await,
            all,
            "register of n{}",
            node + 1
        );
    }
    let n3 = cluster.client(2).await;
    for table in ["orders", "tickets"] {
        let blocks: Vec<i64> = n3
            .query(
                &format!(
                    "SELECT DISTINCT id >> {BLOCK_BITS} FROM public.{table} WHERE node = 'n3'"
                ),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("blocks of n3's keys: {e:?}"))
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(blocks, [3], "{table}: n3's keys are not in its block");
    }
    let (code, text) = plan_exit_code(&cluster);
    assert_eq!(code, 0, "the plan after the join is not empty:\n{text}");

    // n2 leaves: the others keep its slot, so no node will ever be given block 2 again.
    cluster.write_config_for(&[0, 2], tables);
    apply_ok(&cluster);
    for node in [0, 2] {
        assert_eq!(
            register(&cluster, node).await,
            all,
            "register of n{}",
            node + 1
        );
    }
    let (code, text) = plan_exit_code(&cluster);
    assert_eq!(code, 0, "the plan after the leave is not empty:\n{text}");
}
