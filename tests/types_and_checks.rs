//! Enum and domain types and CHECK constraints on real servers: columns of those types
//! replicate and converge on a 3-node mesh; a new enum label, a new domain check and a new
//! table CHECK are applied to the live mesh while a writer writes on every node; a CHECK that
//! existing rows break is refused by preflight with nothing changed; and a database using
//! these kinds imports into a config whose plan changes nothing that exists.

#[path = "common/mesh.rs"]
mod mesh;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgconverge_tests::{output_text as text, TestCluster};
use serde_json::{json, Value};
use tokio_postgres::Client;

/// The config at `step`: 0 the starting schema, with an unused enum `retired`; 1 adds the
/// labels `meh` (first) and `great` (after `happy`), the domain check `VALUE < 1000` and the
/// table check `price < 1000000`, and leaves `retired` out (it is kept); 2 is 0 with `retired`
/// in `dropped_types`.
fn config(cluster: &TestCluster, step: usize) -> Value {
    let labels = if step == 0 {
        json!(["sad", "ok", "happy"])
    } else {
        json!(["meh", "sad", "ok", "happy", "great"])
    };
    let mut domain_checks = vec![json!({ "name": "qty_positive", "expression": "VALUE > 0" })];
    // Hand spellings that PostgreSQL prints otherwise: the re-plans below are empty all the same.
    let mut table_checks = vec![
        json!({ "expression": "price >= 0" }),
        json!({ "name": "items_price_unlucky", "expression": "price NOT IN (13, 666)" }),
        json!({ "name": "items_price_range", "expression": "price BETWEEN 0 AND 100000000" }),
    ];
    if step >= 1 {
        domain_checks.push(json!({ "expression": "VALUE < 1000" }));
        table_checks.push(json!({ "name": "items_price_cap", "expression": "price < 1000000" }));
    }
    let mut types = vec![
        json!({ "name": "mood", "enum": labels }),
        json!({ "name": "qty", "domain": "integer", "nullable": false, "default": "1",
                "checks": domain_checks }),
    ];
    if step == 0 {
        types.push(json!({ "name": "retired", "enum": ["x"] }));
    }
    json!({
        "nodes": cluster.nodes_json(),
        "dropped_types": if step == 2 { json!(["retired"]) } else { json!([]) },
        "types": types,
        "tables": [{
            "name": "items",
            "columns": [
                { "name": "id", "type": "bigint" },
                { "name": "mood", "type": "mood", "nullable": false, "default": "'ok'" },
                { "name": "qty", "type": "qty" },
                { "name": "price", "type": "numeric(12,2)" },
                { "name": "moods", "type": "public.mood[]" }
            ],
            "primary_key": ["id"],
            "checks": table_checks
        }]
    })
}

fn apply(cluster: &TestCluster) {
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply failed:\n{}", text(&out));
}

fn assert_plan_empty(cluster: &TestCluster) {
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the plan is not empty:\n{}",
        text(&out)
    );
}

async fn assert_no_apply_errors(cluster: &TestCluster) {
    for node in 0..cluster.nodes.len() {
        let (errors, log) = mesh::apply_error_count(cluster, node).await;
        assert_eq!(errors, 0, "apply errors on node {node}:\n{log}");
    }
}

/// Inserts, then updates, rows on node `node` using the enum, the domain, the array of the
/// enum and the checked column.
async fn write_rows(client: &Client, node: i64, labels: &[&str]) {
    for n in 0..20i64 {
        let id = node * 1_000_000 + n;
        let mood = labels[(n as usize) % labels.len()];
        client
            .execute(
                "INSERT INTO public.items (id, mood, qty, price, moods) \
                 VALUES ($1, $2::text::public.mood, $3::int4, $4::text::numeric, \
                         ARRAY[$2::text::public.mood, 'sad'])",
                &[&id, &mood, &((n % 50 + 1) as i32), &format!("{n}.50")],
            )
            .await
            .unwrap_or_else(|e| panic!("insert on node {node}: {e:?}"));
    }
    client
        .batch_execute(&format!(
            "UPDATE public.items SET qty = qty + 1, mood = 'happy' WHERE id % 3 = 0 AND id / 1000000 = {node}"
        ))
        .await
        .unwrap_or_else(|e| panic!("update on node {node}: {e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_enum_and_domain_columns_replicate_and_converge() {
    let cluster = TestCluster::start(3);
    cluster.write_config_value(config(&cluster, 0));
    apply(&cluster);
    assert_plan_empty(&cluster);

    for node in 0..3 {
        let client = cluster.client(node).await;
        write_rows(&client, node as i64, &["sad", "ok", "happy"]).await;
    }
    let rows =
        mesh::wait_until_identical(&cluster, "items", Instant::now() + Duration::from_secs(60))
            .await;
    assert_eq!(rows.len(), 60);
    assert_no_apply_errors(&cluster).await;

    // The domain and the check hold on every node: a row breaking either is refused.
    for node in 0..3 {
        let client = cluster.client(node).await;
        for (bad, what) in [
            (
                "INSERT INTO public.items (id, qty) VALUES (9999999, 0)",
                "domain check",
            ),
            (
                "INSERT INTO public.items (id, price) VALUES (9999999, -1)",
                "table check",
            ),
            (
                "INSERT INTO public.items (id, mood) VALUES (9999999, 'meh')",
                "enum label",
            ),
        ] {
            let error = client.batch_execute(bad).await.err();
            assert!(
                error.is_some(),
                "the {what} let a bad row in on node {node}"
            );
        }
        let qty_default: i32 = client
            .query_one(
                "INSERT INTO public.items (id) VALUES (8000000 + $1::int8) RETURNING qty",
                &[&(node as i64)],
            )
            .await
            .unwrap_or_else(|e| panic!("default qty on node {node}: {e:?}"))
            .get(0);
        assert_eq!(qty_default, 1, "the domain's default on node {node}");
    }
    mesh::wait_until_identical(&cluster, "items", Instant::now() + Duration::from_secs(60)).await;
    assert_no_apply_errors(&cluster).await;
    assert_plan_empty(&cluster);
    // verify's digests read enum, domain and enum-array columns alike on every node.
    let out = cluster.pgconverge(&["verify"]);
    assert_eq!(out.status.code(), Some(0), "verify:\n{}", text(&out));

    // Changed by hand on one node: the plan calls it drift and apply puts it back.
    cluster
        .client(1)
        .await
        .batch_execute(
            "ALTER DOMAIN public.qty DROP CONSTRAINT qty_positive;
             ALTER TABLE public.items DROP CONSTRAINT items_price_check;",
        )
        .await
        .expect("hand-made changes");
    let out = cluster.pgconverge(&["plan"]);
    let plan_text = text(&out);
    for expected in [
        "changed outside of pgconverge",
        "public.qty",
        "items_price_check",
    ] {
        assert!(
            plan_text.contains(expected),
            "lacks {expected:?}:\n{plan_text}"
        );
    }
    apply(&cluster);
    assert_plan_empty(&cluster);
    let refused = cluster
        .client(1)
        .await
        .batch_execute("INSERT INTO public.items (id, qty) VALUES (9999998, -5)")
        .await;
    assert!(refused.is_err(), "the domain check was not put back");

    // A type goes only when listed in dropped_types.
    cluster.write_config_value(config(&cluster, 2));
    apply(&cluster);
    assert_plan_empty(&cluster);
    for node in 0..3 {
        let left = cluster
            .query_i64(
                node,
                "SELECT count(*) FROM pg_type WHERE typname = 'retired'",
            )
            .await;
        assert_eq!(left, 0, "retired is still on node {node}");
    }
}

/// Writes rows on node `node` until `stop`, with labels from `labels` (the newest ones only
/// once `new_labels` is set: every node has them then) and values every check, old and new,
/// accepts. Returns how many rows it wrote.
async fn writer(
    client: Client,
    node: i64,
    stop: Arc<AtomicBool>,
    new_labels: Arc<AtomicBool>,
) -> i64 {
    let mut n = 0i64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let labels: &[&str] = if new_labels.load(Ordering::Relaxed) {
            &["meh", "great", "ok"]
        } else {
            &["sad", "ok", "happy"]
        };
        let id = node * 1_000_000 + n;
        let mood = labels[(n as usize) % labels.len()];
        let sql = if n % 4 == 0 && n > 1 {
            format!(
                "UPDATE public.items SET qty = {}, mood = '{mood}' WHERE id = {}",
                n % 900 + 1,
                id - 1
            )
        } else {
            format!(
                "INSERT INTO public.items (id, mood, qty, price, moods) \
                 VALUES ({id}, '{mood}', {}, {n}.25, ARRAY['{mood}', 'ok']::public.mood[])",
                n % 900 + 1
            )
        };
        client
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("writer on node {node}: {sql}: {e:?}"));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_new_label_domain_check_and_table_check_under_writes_converge() {
    let cluster = TestCluster::start(3);
    cluster.write_config_value(config(&cluster, 0));
    apply(&cluster);

    let stop = Arc::new(AtomicBool::new(false));
    let new_labels = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for node in 0..3 {
        let client = cluster.client(node).await;
        writers.push(tokio::spawn(writer(
            client,
            node as i64,
            Arc::clone(&stop),
            Arc::clone(&new_labels),
        )));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;

    cluster.write_config_value(config(&cluster, 1));
    let plan = cluster.pgconverge(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "plan:\n{}", text(&plan));
    assert!(text(&plan).contains("[gated]"), "{}", text(&plan));
    let plan = cluster.pgconverge(&["plan", "--sql"]);
    let plan_text = text(&plan);
    assert_eq!(plan.status.code(), Some(0), "plan:\n{plan_text}");
    for expected in [
        "ADD VALUE IF NOT EXISTS 'meh' BEFORE 'sad'",
        "ADD VALUE IF NOT EXISTS 'great' AFTER 'happy'",
        "ADD CONSTRAINT qty_check CHECK (VALUE < 1000) NOT VALID",
        "ADD CONSTRAINT items_price_cap CHECK (price < 1000000) NOT VALID",
    ] {
        assert!(
            plan_text.contains(expected),
            "the plan lacks {expected:?}:\n{plan_text}"
        );
    }
    apply(&cluster);
    new_labels.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for (node, w) in writers.into_iter().enumerate() {
        let written = w.await.expect("writer");
        assert!(written > 50, "node {node} wrote only {written}");
    }
    // Left out of `types` without `dropped_types`: kept.
    assert_eq!(
        cluster
            .query_i64(2, "SELECT count(*) FROM pg_type WHERE typname = 'retired'")
            .await,
        1
    );

    let rows =
        mesh::wait_until_identical(&cluster, "items", Instant::now() + Duration::from_secs(90))
            .await;
    assert!(
        rows.iter().any(|r| r.contains("\"great\"")),
        "no row used a new label"
    );
    assert_no_apply_errors(&cluster).await;
    assert_plan_empty(&cluster);
    for node in 0..3 {
        let labels: String = cluster
            .client(node)
            .await
            .query_one(
                "SELECT string_agg(enumlabel::text, ',' ORDER BY enumsortorder) \
                 FROM pg_enum WHERE enumtypid = 'public.mood'::regtype",
                &[],
            )
            .await
            .expect("labels")
            .get(0);
        assert_eq!(labels, "meh,sad,ok,happy,great", "node {node}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_a_check_broken_by_existing_rows_is_refused_before_any_change() {
    let cluster = TestCluster::start(2);
    cluster.write_config_value(config(&cluster, 0));
    apply(&cluster);
    cluster
        .client(1)
        .await
        .batch_execute(
            "INSERT INTO public.items (id, price, qty) \
             VALUES (1, 5, 1), (2, 2000000, 1), (3, 3000000, 1), (4, 1, 5000)",
        )
        .await
        .expect("rows");
    mesh::wait_until_identical(&cluster, "items", Instant::now() + Duration::from_secs(60)).await;

    cluster.write_config_value(config(&cluster, 1));
    for command in [&["plan"][..], &["apply", "--auto-approve"][..]] {
        let out = cluster.pgconverge(command);
        let message = text(&out);
        assert_eq!(out.status.code(), Some(1), "{command:?}:\n{message}");
        for expected in [
            "public.items",
            "items_price_cap",
            "2 rows break it",
            "e.g. key (",
            "new domain check qty_check (VALUE < 1000) needs every value of qty to pass it; 1 rows break it, e.g. key (4)",
        ] {
            assert!(
                message.contains(expected),
                "{command:?} lacks {expected:?}:\n{message}"
            );
        }
    }
    // Nothing changed: no new label, no new check, on any node.
    for node in 0..2 {
        let client = cluster.client(node).await;
        let labels: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_enum WHERE enumtypid = 'public.mood'::regtype",
                &[],
            )
            .await
            .expect("labels")
            .get(0);
        assert_eq!(labels, 3, "node {node} gained a label");
        let checks: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_constraint WHERE conname IN ('items_price_cap', 'qty_check')",
                &[],
            )
            .await
            .expect("checks")
            .get(0);
        assert_eq!(checks, 0, "node {node} gained a check");
    }
}

/// A database made by hand with an enum, a domain over an enum array... and checks.
const SCHEMA_SQL: &str = "
CREATE TYPE status AS ENUM ('new', 'paid', 'shipped');
CREATE DOMAIN percent AS numeric(5,2) NOT NULL DEFAULT 0
    CONSTRAINT percent_range CHECK (VALUE >= 0 AND VALUE <= 100);
CREATE DOMAIN short_code AS text CHECK (length(VALUE) BETWEEN 2 AND 8);
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    status status NOT NULL DEFAULT 'new',
    discount percent,
    code short_code,
    total numeric(12,2) CHECK (total >= 0),
    shipped_at timestamptz,
    CONSTRAINT shipped_has_date CHECK (status <> 'shipped' OR shipped_at IS NOT NULL),
    CONSTRAINT code_in_list CHECK (code IN ('ab', 'abc', 'abcd')));
INSERT INTO orders VALUES (1, 'paid', 10, 'ab', 5, NULL), (2, 'shipped', 0, 'abc', 7, now());
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_import_of_types_and_checks_then_plan_changes_nothing_that_exists() {
    let cluster = TestCluster::start(1);
    cluster.write_config(json!([]));
    cluster
        .client(0)
        .await
        .batch_execute(SCHEMA_SQL)
        .await
        .unwrap_or_else(|e| panic!("creating the schema: {e:?}"));
    let out = cluster.pgconverge(&["import", "--from", "n1", "--out", "imported.json"]);
    assert!(out.status.success(), "import failed:\n{}", text(&out));
    let imported: Value = serde_json::from_str(
        &std::fs::read_to_string(cluster.dir.join("imported.json")).expect("imported.json"),
    )
    .expect("imported.json is JSON");
    let types = imported["types"].as_array().cloned().unwrap_or_default();
    assert_eq!(types.len(), 3, "{imported:#}");
    let orders = &imported["tables"][0];
    assert_eq!(
        orders["checks"].as_array().map(Vec::len),
        Some(3),
        "{orders:#}"
    );
    for kind in ["enum type", "domain", "CHECK constraint"] {
        assert!(
            !text(&out).contains(kind),
            "{kind} still reported:\n{}",
            text(&out)
        );
    }

    // Only pgconverge's own additions: no type, check or column of the table changes.
    let out = cluster.pgconverge(&["--config", "imported.json", "plan", "--json"]);
    assert!(out.status.success(), "plan failed:\n{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan --json");
    assert_eq!(plan["blockers"], json!([]), "{plan:#}");
    let touched: Vec<&Value> = plan["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["kind"] == "type"
                || (c["kind"] == "constraint"
                    && c["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("public.orders.")))
                || (c["kind"] == "column" && !c["name"].as_str().unwrap_or("").contains("._pgc_"))
        })
        .collect();
    assert!(
        touched.is_empty(),
        "the plan changes existing objects: {touched:#?}"
    );

    let out = cluster.pgconverge(&["--config", "imported.json", "apply", "--auto-approve"]);
    assert!(out.status.success(), "apply failed:\n{}", text(&out));
    let out = cluster.pgconverge(&["--config", "imported.json", "plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
