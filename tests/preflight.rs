//! Preflight checks against live rows on real servers: a new UNIQUE over duplicates, a new
//! NOT NULL over NULLs and a narrowing type change over values that do not fit stop `plan`
//! and `apply` with the table, the node and a sample key, before any node is changed; once
//! the rows are fixed, the same change applies.

use std::time::{Duration, Instant};

use pgconverge_tests::{output_text as text, TestCluster};
use serde_json::{json, Value};

fn users(unique_email: bool, note_not_null: bool, score_type: &str) -> Value {
    let mut table = json!({
        "name": "users",
        "columns": [
            { "name": "id", "type": "bigint" },
            { "name": "email", "type": "text" },
            { "name": "note", "type": "text", "nullable": !note_not_null },
            { "name": "score", "type": score_type }
        ],
        "primary_key": ["id"]
    });
    if unique_email {
        table["unique"] = json!([["email"]]);
    }
    json!([table])
}

/// Waits until every node holds `rows` rows in `public.users`.
async fn wait_for_rows(cluster: &TestCluster, rows: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in 0..cluster.nodes.len() {
        while cluster
            .query_i64(node, "SELECT count(*) FROM public.users")
            .await
            != rows
        {
            assert!(Instant::now() < deadline, "rows never reached node {node}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_stops_changes_that_rows_break_and_changes_nothing() {
    let cluster = TestCluster::start(2);
    cluster.write_config(users(false, false, "bigint"));
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply failed:\n{}", text(&out));
    cluster
        .client(0)
        .await
        .batch_execute(
            "INSERT INTO public.users (id, email, note, score) VALUES \
             (1, 'a@x', NULL, 1), (2, 'a@x', 'n', 5000000000), (3, 'b@x', 'm', 3)",
        )
        .await
        .expect("insert");
    wait_for_rows(&cluster, 3).await;

    cluster.write_config(users(true, true, "integer"));
    for args in [
        &["plan"][..],
        &["plan", "--detailed-exitcode"],
        &["apply", "--auto-approve"],
    ] {
        let out = cluster.pgconverge(args);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}:\n{all}");
        assert!(all.contains("preflight"), "{args:?}:\n{all}");
        for node in ["n1", "n2"] {
            for expected in [
                format!("node {node}, table public.users: new UNIQUE (email) needs no duplicate values; 1 duplicate value groups, e.g. (a@x) held by keys"),
                format!("node {node}, table public.users: NOT NULL on note needs no NULL in it; 1 rows break it, e.g. key (1)"),
                format!("node {node}, table public.users: type change of score to integer needs every value to read as integer; 1 rows break it, e.g. key (2)"),
            ] {
                assert!(all.contains(&expected), "{args:?}: missing {expected:?} in\n{all}");
            }
        }
    }
    // Nothing was changed on any node.
    for node in 0..2 {
        let constraints = cluster.query_i64(
            node,
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.users'::regclass AND contype = 'u'",
        )
        .await;
        assert_eq!(constraints, 0, "node {node} got a UNIQUE constraint");
        let score_type: String = cluster
            .client(node)
            .await
            .query_one(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = 'public.users'::regclass AND attname = 'score'",
                &[],
            )
            .await
            .expect("score type")
            .get(0);
        assert_eq!(score_type, "bigint");
    }

    // Rows fixed on one node reach the other; then the same change applies.
    cluster
        .client(0)
        .await
        .batch_execute(
            "DELETE FROM public.users WHERE id = 2; UPDATE public.users SET note = 'x' WHERE id = 1",
        )
        .await
        .expect("fix rows");
    wait_for_rows(&cluster, 2).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster
        .query_i64(1, "SELECT count(*) FROM public.users WHERE note IS NULL")
        .await
        != 0
    {
        assert!(Instant::now() < deadline, "the fix never reached n2");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply failed:\n{}", text(&out));
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "re-plan:\n{}", text(&out));
}
