//! The forwarding write path (`"write_path": "forwarding"`; docs/conflicts.md,
//! "A write path without a second row") on real servers: planned and applied like the change
//! log, re-planned empty, verified, and refusing what it cannot coordinate; and the hazard of
//! out-of-line values that PostgreSQL sends as "unchanged", reproduced without the path's
//! remedy and shown mended with it. The seeded harness runs on this path in
//! tests/convergence.rs.

#[path = "common/mesh.rs"]
mod mesh;

use std::process::Output;
use std::time::Duration;

use mesh::{table, Mesh};
use pgconverge_tests::TestCluster;

fn docs_table() -> pgconverge_model::TableConfig {
    table(serde_json::json!({
        "name": "docs",
        "columns": [
            {"name": "id", "type": "bigint"},
            {"name": "v", "type": "int"},
            {"name": "payload", "type": "text"}
        ],
        "primary_key": ["id"]
    }))
}

/// A value PostgreSQL stores out of line: 12,800 characters that pglz cannot shrink.
fn large_value(seed: u32) -> String {
    format!("(SELECT string_agg(md5((g * {seed})::text), '') FROM generate_series(1, 400) g)")
}

/// Two concurrent updates of one row: n2 rewrites the large value, n1 (later, so it wins)
/// changes only `v`. Returns the md5 of `payload` on each node once all have caught up.
async fn concurrent_updates(mesh: &Mesh<'_>, id: i64) -> Vec<String> {
    let cluster = mesh.cluster;
    let n1 = cluster.client(0).await;
    n1.batch_execute(&format!(
        "INSERT INTO docs VALUES ({id}, 0, {})",
        large_value(1)
    ))
    .await
    .unwrap_or_else(|e| panic!("insert: {e:?}"));
    mesh.wait_for_catch_up(Duration::from_secs(60)).await;

    mesh.set_all_subscriptions(false).await;
    let n2 = cluster.client(1).await;
    n2.batch_execute(&format!(
        "UPDATE docs SET payload = {} WHERE id = {id}",
        large_value(7)
    ))
    .await
    .unwrap_or_else(|e| panic!("update on n2: {e:?}"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    n1.batch_execute(&format!("UPDATE docs SET v = 1 WHERE id = {id}"))
        .await
        .unwrap_or_else(|e| panic!("update on n1: {e:?}"));
    mesh.set_all_subscriptions(true).await;
    mesh.wait_for_catch_up(Duration::from_secs(60)).await;

    let mut digests = Vec::new();
    for node in 0..3 {
        let client = cluster.client(node).await;
        let row = client
            .query_one(
                &format!("SELECT v, md5(payload) FROM docs WHERE id = {id}"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("reading n{}: {e:?}", node + 1));
        assert_eq!(
            row.get::<_, i32>(0),
            1,
            "n{}: n1's later update lost",
            node + 1
        );
        digests.push(row.get(1));
    }
    digests
}

/// Without the remedy, n1's update carries `payload` as "unchanged" and n2 fills it from its
/// own, different version: the nodes disagree for good. With it, they agree on n1's row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarding_path_sends_out_of_line_values_whole() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install_forwarding(&cluster, vec![docs_table()]).await;

    let with_remedy = concurrent_updates(&mesh, 1).await;
    assert!(
        with_remedy.iter().all(|d| *d == with_remedy[0]),
        "with the remedy the nodes must agree: {with_remedy:?}"
    );

    // The local UPDATE function without the lines that rebuild large values.
    for node in 0..3 {
        let client = cluster.client(node).await;
        client
            .batch_execute(
                r#"DO $$
                DECLARE f regprocedure; src text;
                BEGIN
                  SELECT p.oid::regprocedure, p.prosrc INTO f, src
                    FROM pg_proc p JOIN pg_trigger t ON t.tgfoid = p.oid
                   WHERE t.tgrelid = 'public.docs'::regclass AND t.tgname = '_pgc_10_stamp';
                  src := regexp_replace(src, 'IF pg_catalog.pg_column_size[^\n]*\n', '', 'g');
                  EXECUTE format('CREATE OR REPLACE FUNCTION %s RETURNS trigger LANGUAGE plpgsql AS %L', f, src);
                END $$"#,
            )
            .await
            .unwrap_or_else(|e| panic!("removing the remedy on n{}: {e:?}", node + 1));
    }
    let without = concurrent_updates(&mesh, 2).await;
    // n3 receives both updates in either order: it ends with n1's value, or, if n2's update
    // came first, with n2's under n1's update, as n2 does. n1 and n2 are deterministic.
    assert!(
        without[2] == without[0] || without[2] == without[1],
        "n3 holds a value neither n1 nor n2 wrote: {without:?}"
    );
    assert_ne!(
        without[0], without[1],
        "without the remedy n2 keeps its own large value under n1's update: the hazard is gone?"
    );
    mesh.assert_no_apply_errors().await;
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `out` exited with `code` and says `needle`.
fn assert_exit(out: &Output, code: i32, needle: &str) {
    let said = text(out);
    assert_eq!(out.status.code(), Some(code), "{said}");
    assert!(said.contains(needle), "no {needle:?} in:\n{said}");
}

/// The config `install_forwarding` wrote, with `edit` applied.
fn edited_config(cluster: &TestCluster, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = cluster.dir.join("pgconverge.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading config: {e}"));
    let mut config: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("config JSON: {e}"));
    edit(&mut config);
    cluster.write_config_value(config);
}

/// A forwarding mesh is what the planner made of the setting: base tables published, every
/// subscription `origin = any`, the identity on (key, incarnation). It re-plans empty, its
/// nodes verify equal after writes on each, and a plan that would change replicated tables
/// or the write path of the running mesh is refused with exit status 1 and nothing run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarding_mesh_is_planned_replans_empty_and_refuses_what_it_cannot_coordinate() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install_forwarding(&cluster, vec![docs_table()]).await;

    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "re-plan not empty:\n{}",
        text(&out)
    );

    let n1 = cluster.client(0).await;
    let origins: Vec<String> = n1
        .query(
            "SELECT suborigin FROM pg_subscription ORDER BY subname",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("pg_subscription: {e:?}"))
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(origins, ["any", "any"]);
    let identity: String = n1
        .query_one(
            "SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
             WHERE x.indrelid = 'public.docs'::regclass AND x.indisreplident",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("replica identity: {e:?}"))
        .get(0);
    assert_eq!(identity, "docs_pgc_identity");
    let published: i64 = cluster
        .query_i64(
            0,
            "SELECT count(*) FROM pg_publication_tables WHERE tablename IN ('docs', 'pgc_test_sync')",
        )
        .await;
    assert_eq!(published, 2, "the base tables are published");

    for node in 0..3 {
        let client = cluster.client(node).await;
        client
            .batch_execute(&format!(
                "INSERT INTO docs SELECT g, {node}, 'row ' || g FROM generate_series({0}, {0} + 99) g;
                 UPDATE docs SET v = v + 10 WHERE id % 3 = 0;
                 DELETE FROM docs WHERE id % 7 = 0;",
                node * 1000
            ))
            .await
            .unwrap_or_else(|e| panic!("writes on n{}: {e:?}", node + 1));
    }
    mesh.wait_for_catch_up(Duration::from_secs(60)).await;
    let out = cluster.pgconverge(&["verify"]);
    assert!(out.status.success(), "verify:\n{}", text(&out));
    // status reports the tombstone register of this path.
    let out = cluster.pgconverge(&["status", "--json"]);
    assert_exit(&out, 0, "incarnation_tombstones");
    let out = cluster.pgconverge(&["verify", "--repair"]);
    assert_exit(&out, 1, "forwarding write path");

    // A new column on a running forwarding mesh: refused before anything runs.
    edited_config(&cluster, |config| {
        config["tables"][0]["columns"]
            .as_array_mut()
            .expect("columns")
            .push(serde_json::json!({"name": "note", "type": "text"}));
    });
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_exit(&out, 1, "coordinates no schema change");
    let columns = cluster
        .query_i64(0, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.docs'::regclass AND attname = 'note'")
        .await;
    assert_eq!(columns, 0, "nothing may run on a refused plan");

    // Switching the write path of a cluster in the mesh: refused on every node.
    edited_config(&cluster, |config| {
        config["tables"][0]["columns"]
            .as_array_mut()
            .expect("columns")
            .pop();
        config["replication"]["write_path"] = serde_json::json!("change_log");
    });
    let out = cluster.pgconverge(&["plan"]);
    assert_exit(&out, 1, "replication.write_path");
    assert_eq!(
        text(&out).matches("replication.write_path").count(),
        3,
        "{}",
        text(&out)
    );
    mesh.assert_no_apply_errors().await;
}
