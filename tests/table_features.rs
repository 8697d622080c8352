//! Generated columns, index features (method, expression keys, INCLUDE, partial predicate) and
//! foreign key rules (actions, deferrability) on real servers: applied on three nodes with
//! composite keys, written on every node and converged with generated values computed on each,
//! changed on the live mesh while writers write, and imported from a live database so that the
//! next plan changes nothing that exists. Tests named `adopt_…` also run on PostgreSQL 16 and 17.

#[path = "common/mesh.rs"]
mod mesh;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mesh::{table, Mesh, SYNC_TABLE};
use pgconverge_tests::{output_text, TestCluster};

const ROWS_PER_NODE: i64 = 60;

/// `customers` keyed by (region, id) with an expression and a GIN index; `lines` with a
/// generated total, a composite foreign key with actions and deferral, and a covering partial
/// index. `predicate`, `on_delete` and `total` are what the live changes move.
fn tables(predicate: &str, on_delete: &str, total: &str) -> serde_json::Value {
    serde_json::json!([
        {
            "name": "customers",
            "columns": [
                {"name": "region", "type": "text"},
                {"name": "id", "type": "bigint"},
                {"name": "email", "type": "text"},
                {"name": "tags", "type": "text[]"}
            ],
            "primary_key": ["region", "id"],
            "indexes": [
                {"name": "customers_email_lower_idx", "expressions": ["lower(email)"]},
                {"name": "customers_tags_idx", "columns": ["tags"], "method": "gin"}
            ]
        },
        {
            "name": "lines",
            "columns": [
                {"name": "id", "type": "bigint"},
                {"name": "region", "type": "text"},
                {"name": "customer", "type": "bigint"},
                {"name": "price", "type": "numeric(12,2)", "nullable": false},
                {"name": "quantity", "type": "integer", "nullable": false},
                {"name": "total", "type": "numeric", "generated": total},
                {"name": "status", "type": "text", "default": "'open'"}
            ],
            "primary_key": ["id"],
            "foreign_keys": [{
                "columns": ["region", "customer"],
                "references": {"table": "customers", "columns": ["region", "id"]},
                "on_delete": on_delete,
                "on_update": "cascade",
                "deferrable": true,
                "initially_deferred": true
            }],
            "indexes": [{
                "name": "lines_open_idx",
                "columns": ["region", "customer"],
                "include": ["total"],
                "where": predicate
            }, {
                "name": "lines_active_idx",
                "columns": ["customer"],
                "where": "status IN ('open', 'held')"
            }]
        }
    ])
}

/// The tables as configs, for the mesh's comparisons.
fn table_configs(json: &serde_json::Value) -> Vec<pgconverge_model::TableConfig> {
    json.as_array()
        .map(|ts| ts.iter().cloned().map(table).collect())
        .unwrap_or_default()
}

/// Rewrites the config with the mesh's sync table kept, as `Mesh::install` wrote it.
fn write_tables(cluster: &TestCluster, tables: &serde_json::Value) {
    let mut all = tables.as_array().cloned().unwrap_or_default();
    all.push(serde_json::json!({
        "name": SYNC_TABLE,
        "columns": [{"name": "node", "type": "text"}, {"name": "n", "type": "bigint"}],
        "primary_key": ["node"],
    }));
    cluster.write_config(serde_json::Value::Array(all));
}

fn plan_exit_code(cluster: &TestCluster) -> (i32, String) {
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    (out.status.code().unwrap_or(-1), output_text(&out))
}

/// Node `node` writes in its own region: customers, their lines (a line before its customer
/// in one transaction, which the deferred foreign key allows), quantity updates, and deletes
/// of some customers, whose lines the foreign key's action handles on this node.
async fn write_region(cluster: &TestCluster, node: usize, from: i64, to: i64) {
    let mut client = cluster.client(node).await;
    let region = cluster.nodes[node].name.clone();
    for i in from..to {
        let tx = client
            .transaction()
            .await
            .unwrap_or_else(|e| panic!("BEGIN on {region}: {e:?}"));
        let line = (node as i64) * 1_000_000 + i;
        tx.execute(
            "INSERT INTO public.lines (id, region, customer, price, quantity) VALUES ($1, $2, $3, 2.50, $4)",
            &[&line, &region, &i, &((i % 7) as i32 + 1)],
        )
        .await
        .unwrap_or_else(|e| panic!("line {line} on {region}: {e:?}"));
        tx.execute(
            "INSERT INTO public.customers (region, id, email, tags) VALUES ($1, $2, $3, ARRAY['t' || $2::bigint::text])",
            &[&region, &i, &format!("C{i}@{region}.example")],
        )
        .await
        .unwrap_or_else(|e| panic!("customer {i} on {region}: {e:?}"));
        tx.commit()
            .await
            .unwrap_or_else(|e| panic!("COMMIT on {region}: {e:?}"));
        if i % 3 == 0 {
            client
                .execute(
                    "UPDATE public.lines SET quantity = quantity + 10, status = 'closed' WHERE id = $1",
                    &[&line],
                )
                .await
                .unwrap_or_else(|e| panic!("update of {line} on {region}: {e:?}"));
        }
        if i % 5 == 4 {
            client
                .execute(
                    "DELETE FROM public.customers WHERE region = $1 AND id = $2",
                    &[&region, &(i - 1)],
                )
                .await
                .unwrap_or_else(|e| panic!("delete of customer {} on {region}: {e:?}", i - 1));
        }
    }
}

/// Every node holds the same rows, every generated total is what the node computes, and no
/// change failed to apply.
async fn assert_converged_with_totals(mesh: &Mesh<'_>, total: &str) {
    mesh.wait_for_catch_up(Duration::from_secs(120)).await;
    mesh.assert_no_apply_errors().await;
    mesh.assert_converged().await;
    for node in 0..mesh.cluster.nodes.len() {
        let wrong = mesh
            .cluster
            .query_i64(
                node,
                &format!(
                    "SELECT count(*) FROM public.lines WHERE total IS DISTINCT FROM ({total})"
                ),
            )
            .await;
        assert_eq!(
            wrong,
            0,
            "generated totals differ from `{total}` on n{}",
            node + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_generated_columns_indexes_and_foreign_key_rules_converge_on_three_nodes() {
    let cluster = TestCluster::start(3);
    let json = tables("status = 'open'", "cascade", "price * quantity");
    let mesh = Mesh::install(&cluster, table_configs(&json)).await;
    let (code, text) = plan_exit_code(&cluster);
    assert_eq!(code, 0, "the plan after apply is not empty:\n{text}");

    let mut writers = Vec::new();
    for node in 0..cluster.nodes.len() {
        let cluster = &cluster;
        writers.push(async move { write_region(cluster, node, 0, ROWS_PER_NODE).await });
    }
    futures_join(writers).await;
    assert_converged_with_totals(&mesh, "price * quantity").await;

    // The cascades ran where the customers were deleted and reached the others as changes.
    let orphans = cluster
        .query_i64(
            1,
            "SELECT count(*) FROM public.lines l WHERE NOT EXISTS \
             (SELECT FROM public.customers c WHERE c.region = l.region AND c.id = l.customer)",
        )
        .await;
    assert_eq!(orphans, 0, "lines left without their customer");
    let lines = cluster
        .query_i64(2, "SELECT count(*) FROM public.lines")
        .await;
    assert_eq!(lines, 3 * (ROWS_PER_NODE - ROWS_PER_NODE / 5));
    // verify's digests hash the generated values each node computed: they agree.
    let out = cluster.pgconverge(&["verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify:
{}",
        output_text(&out)
    );
    let (code, text) = plan_exit_code(&cluster);
    assert_eq!(code, 0, "the plan after writes is not empty:\n{text}");
}

/// Runs the futures concurrently on this task.
async fn futures_join<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        pinned.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if pinned.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_index_predicate_foreign_key_action_and_generated_expression_change_under_writes() {
    let cluster = TestCluster::start(3);
    let before = tables("status = 'open'", "cascade", "price * quantity");
    let mesh = Mesh::install(&cluster, table_configs(&before)).await;

    // Writers on every node keep writing while the config changes.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for node in 0..cluster.nodes.len() {
        let client = cluster.client(node).await;
        let region = cluster.nodes[node].name.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0i64;
            while !stop.load(Ordering::SeqCst) {
                let line = 5_000_000 + (node as i64) * 1_000_000 + i;
                client
                    .execute(
                        "INSERT INTO public.customers (region, id, email) VALUES ($1, $2, 'w@x')",
                        &[&region, &(10_000 + i)],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("customer on {region}: {e:?}"));
                client
                    .execute(
                        "INSERT INTO public.lines (id, region, customer, price, quantity) VALUES ($1, $2, $3, 1.25, 3)",
                        &[&line, &region, &(10_000 + i)],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("line on {region}: {e:?}"));
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            i
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // On PostgreSQL 16 a new generated expression is a blocker: the rest changes alone first.
    let set_expression = cluster.major() >= 17;
    let total = if set_expression {
        "price * quantity + 1"
    } else {
        "price * quantity"
    };
    let after = tables("status <> 'closed'", "set null", total);
    write_tables(&cluster, &after);
    let (code, text) = plan_exit_code(&cluster);
    assert_eq!(code, 2, "the changes are not planned:\n{text}");
    for expected in [
        "lines_open_idx",
        "WHERE",
        "lines_region_customer_fkey",
        "set null",
    ] {
        assert!(text.contains(expected), "plan lacks {expected:?}:\n{text}");
    }
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert!(
        out.status.success(),
        "apply under writes failed:\n{}",
        output_text(&out)
    );

    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        let written = task.await.unwrap_or_else(|e| panic!("writer: {e}"));
        assert!(written > 0, "a writer wrote nothing");
    }
    // The tables keep their names and keys: the mesh compares them as before.
    assert_converged_with_totals(&mesh, total).await;
    let (code, text) = plan_exit_code(&cluster);
    assert_eq!(code, 0, "the plan after the change is not empty:\n{text}");

    for node in 0..cluster.nodes.len() {
        let client = cluster.client(node).await;
        let row = client
            .query_one(
                "SELECT pg_get_indexdef('public.lines_open_idx'::regclass), \
                        (SELECT confdeltype::text FROM pg_constraint WHERE conname = 'lines_region_customer_fkey'), \
                        (SELECT convalidated FROM pg_constraint WHERE conname = 'lines_region_customer_fkey')",
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("reading the changed objects: {e:?}"));
        let (definition, on_delete, validated): (String, String, bool) =
            (row.get(0), row.get(1), row.get(2));
        assert!(
            definition.contains("<> 'closed'"),
            "n{}: {definition}",
            node + 1
        );
        assert!(
            definition.contains("INCLUDE (total)"),
            "n{}: {definition}",
            node + 1
        );
        assert_eq!(
            (on_delete.as_str(), validated),
            ("n", true),
            "n{}",
            node + 1
        );
    }

    if !set_expression {
        let moved = tables("status <> 'closed'", "set null", "price * quantity + 1");
        write_tables(&cluster, &moved);
        let out = cluster.pgconverge(&["plan"]);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "no blocker on 16:\n{text}");
        assert!(text.contains("PostgreSQL 17"), "{text}");
    }
}

/// A shop using every feature, as an application would have made it.
const SHOP_SQL: &str = "
CREATE TABLE public.customers (
    region text NOT NULL,
    id bigint NOT NULL,
    email text,
    tags text[],
    PRIMARY KEY (region, id)
);
CREATE INDEX customers_email_lower_idx ON public.customers (lower(email));
CREATE INDEX customers_tags_idx ON public.customers USING gin (tags);
CREATE INDEX customers_region_email_idx ON public.customers (region, lower(email)) WHERE email IS NOT NULL;
CREATE INDEX customers_desc_idx ON public.customers (id DESC);
CREATE INDEX customers_hash_idx ON public.customers USING hash (email);
CREATE TABLE public.lines (
    id bigint PRIMARY KEY,
    region text,
    customer bigint,
    price numeric(12,2) NOT NULL,
    quantity integer NOT NULL,
    total numeric GENERATED ALWAYS AS (price * quantity) STORED,
    status text DEFAULT 'open',
    FOREIGN KEY (region, customer) REFERENCES public.customers (region, id)
        ON UPDATE CASCADE ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX lines_open_idx ON public.lines (region, customer) INCLUDE (total) WHERE status = 'open';
CREATE INDEX lines_total_brin ON public.lines USING brin (id);
INSERT INTO public.customers VALUES ('eu', 1, 'A@x', '{a}'), ('eu', 2, 'b@x', '{b}');
INSERT INTO public.lines (id, region, customer, price, quantity) VALUES (1, 'eu', 1, 2.00, 3);
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_import_of_table_features_then_plan_changes_nothing_that_exists() {
    let cluster = TestCluster::start(1);
    cluster.write_config(serde_json::json!([]));
    let client = cluster.client(0).await;
    client
        .batch_execute(SHOP_SQL)
        .await
        .unwrap_or_else(|e| panic!("creating the shop: {e:?}"));

    let out = cluster.pgconverge(&[
        "import",
        "--from",
        "n1",
        "--out",
        "imported.json",
        "--report",
        "report.txt",
    ]);
    assert!(
        out.status.success(),
        "import failed:\n{}",
        output_text(&out)
    );
    let report = std::fs::read_to_string(cluster.dir.join("report.txt"))
        .unwrap_or_else(|e| panic!("report.txt: {e}"));
    assert!(report.contains("index customers_desc_idx"), "{report}");
    assert!(report.contains("a key ordering"), "{report}");
    for imported in ["table public.lines", "lines_open_idx", "customers_tags_idx"] {
        assert!(!report.contains(imported), "{imported} reported:\n{report}");
    }
    let imported: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(cluster.dir.join("imported.json"))
            .unwrap_or_else(|e| panic!("imported.json: {e}")),
    )
    .unwrap_or_else(|e| panic!("imported.json is not JSON: {e}"));
    let customers = &imported["tables"][0];
    let lines = &imported["tables"][1];
    assert_eq!(lines["name"], "lines", "{imported:#}");
    assert!(
        lines["columns"][5]["generated"]
            .as_str()
            .is_some_and(|g| g.contains("price")),
        "{lines:#}"
    );
    let fk = &lines["foreign_keys"][0];
    assert_eq!(
        (
            &fk["on_update"],
            &fk["on_delete"],
            &fk["deferrable"],
            &fk["initially_deferred"]
        ),
        (
            &serde_json::json!("cascade"),
            &serde_json::json!("set null"),
            &serde_json::json!(true),
            &serde_json::json!(true)
        ),
        "{fk:#}"
    );
    let index = |t: &serde_json::Value, name: &str| -> serde_json::Value {
        t["indexes"]
            .as_array()
            .and_then(|ixs| ixs.iter().find(|ix| ix["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no index {name} in {t:#}"))
    };
    assert_eq!(
        index(lines, "lines_open_idx")["include"],
        serde_json::json!(["total"])
    );
    assert!(index(lines, "lines_open_idx")["where"].is_string());
    assert_eq!(index(lines, "lines_total_brin")["method"], "brin");
    assert_eq!(index(customers, "customers_tags_idx")["method"], "gin");
    assert_eq!(index(customers, "customers_hash_idx")["method"], "hash");
    assert_eq!(
        index(customers, "customers_email_lower_idx")["expressions"],
        serde_json::json!(["lower(email)"])
    );
    assert_eq!(
        index(customers, "customers_region_email_idx")["expressions"],
        serde_json::json!(["region", "lower(email)"])
    );

    // Planned against the same database, the imported config changes nothing that exists.
    let out = cluster.pgconverge(&["--config", "imported.json", "plan", "--json"]);
    assert!(out.status.success(), "plan failed:\n{}", output_text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan --json: {e}\n{}", output_text(&out)));
    assert_eq!(plan["blockers"], serde_json::json!([]), "{plan:#}");
    let foreign: Vec<&serde_json::Value> = plan["changes"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter(|c| !mesh::is_pgconverge_addition(c))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        foreign.is_empty(),
        "the plan changes existing objects: {:#}",
        serde_json::Value::Array(foreign.into_iter().cloned().collect())
    );
    let out = cluster.pgconverge(&["--config", "imported.json", "apply", "--auto-approve"]);
    assert!(out.status.success(), "apply failed:\n{}", output_text(&out));
    let out = cluster.pgconverge(&["--config", "imported.json", "plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // The application keeps writing as before; the generated column is computed.
    client
        .batch_execute("INSERT INTO public.lines (id, region, customer, price, quantity) VALUES (2, 'eu', 2, 1.50, 4)")
        .await
        .unwrap_or_else(|e| panic!("inserting after adoption: {e:?}"));
    let total = cluster
        .query_i64(
            0,
            "SELECT (total * 100)::int8 FROM public.lines WHERE id = 2",
        )
        .await;
    assert_eq!(total, 600);
}

/// A node joining a mesh whose tables hold rows gets them copied from its donor without the
/// generated column (which the joiner computes as the rows go in), and writes after the join
/// converge as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_a_joining_node_computes_generated_columns_of_the_copied_rows() {
    let cluster = TestCluster::start(3);
    let json = tables("status = 'open'", "cascade", "price * quantity");
    let mut with_sync = json.as_array().cloned().unwrap_or_default();
    with_sync.push(serde_json::json!({
        "name": SYNC_TABLE,
        "columns": [{"name": "node", "type": "text"}, {"name": "n", "type": "bigint"}],
        "primary_key": ["node"],
    }));
    let with_sync = serde_json::Value::Array(with_sync);
    cluster.write_config_for(&[0, 1], with_sync.clone());
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert!(out.status.success(), "apply failed:\n{}", output_text(&out));
    write_region(&cluster, 0, 0, 30).await;
    write_region(&cluster, 1, 0, 30).await;

    cluster.write_config_for(&[0, 1, 2], with_sync);
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert!(
        out.status.success(),
        "the join failed:\n{}",
        output_text(&out)
    );
    let mesh = Mesh::install(&cluster, table_configs(&json)).await;
    write_region(&cluster, 2, 0, 30).await;
    assert_converged_with_totals(&mesh, "price * quantity").await;
    let copied = cluster
        .query_i64(
            2,
            "SELECT count(*) FROM public.lines WHERE region IN ('n1', 'n2')",
        )
        .await;
    assert_eq!(copied, 2 * (30 - 30 / 5), "rows copied to the joining node");
    let (code, text) = plan_exit_code(&cluster);
    assert_eq!(code, 0, "the plan after the join is not empty:\n{text}");
}
