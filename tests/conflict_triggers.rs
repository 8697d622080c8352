//! Conflict-resolution triggers on a real 3-node mesh: one focused case per kind of
//! conflict, each ending with identical tables everywhere and zero apply errors.

#[path = "common/mesh.rs"]
mod mesh;

use std::time::Duration;

use mesh::{table, Mesh};
use pgconverge_model::TableConfig;
use pgconverge_tests::TestCluster;
use tokio_postgres::types::ToSql;

const CATCH_UP: Duration = Duration::from_secs(60);

fn accounts() -> TableConfig {
    table(serde_json::json!({
        "name": "accounts",
        "columns": [
            {"name": "id", "type": "int"},
            {"name": "email", "type": "text"},
            {"name": "tenant", "type": "int"},
            {"name": "handle", "type": "text"},
            {"name": "note", "type": "text"},
            {"name": "updated_at", "type": "timestamp"},
            {"name": "origin_node", "type": "text"}
        ],
        "primary_key": ["id"],
        "unique": [["email"], ["tenant", "handle"]],
        "legacy_columns": {"updated_at": "updated_at", "origin_node": "origin_node"}
    }))
}

async fn exec(mesh: &Mesh<'_>, node: usize, sql: &str, params: &[&(dyn ToSql + Sync)]) -> u64 {
    let client = mesh.cluster.client(node).await;
    client
        .execute(sql, params)
        .await
        .unwrap_or_else(|e| panic!("n{}: {sql}: {e:?}", node + 1))
}

/// `(version, origin)` of the row a write produced, read back with RETURNING.
async fn stamped(mesh: &Mesh<'_>, node: usize, sql: &str) -> (i64, String) {
    let client = mesh.cluster.client(node).await;
    let row = client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("n{}: {sql}: {e:?}", node + 1));
    (row.get(0), row.get(1))
}

async fn notes(mesh: &Mesh<'_>, node: usize) -> Vec<(i32, Option<String>)> {
    let client = mesh.cluster.client(node).await;
    client
        .query("SELECT id, note FROM accounts ORDER BY id", &[])
        .await
        .unwrap_or_else(|e| panic!("reading accounts: {e:?}"))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn settle(mesh: &Mesh<'_>) {
    mesh.wait_for_catch_up(CATCH_UP).await;
    mesh.assert_converged().await;
    mesh.assert_no_apply_errors().await;
    assert_eq!(
        mesh.change_log_rows().await,
        0,
        "the change log must stay empty"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn local_update_without_reserved_columns_reports_one_row_and_replicates() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    exec(
        &mesh,
        0,
        "INSERT INTO accounts (id, email, note) VALUES (1, 'a@x', 'first')",
        &[],
    )
    .await;
    mesh.wait_for_catch_up(CATCH_UP).await;

    let (before, _) = stamped(
        &mesh,
        1,
        "SELECT _pgc_version, _pgc_origin FROM accounts WHERE id = 1",
    )
    .await;
    let updated = exec(
        &mesh,
        1,
        "UPDATE accounts SET note = 'second' WHERE id = 1",
        &[],
    )
    .await;
    assert_eq!(updated, 1, "a local UPDATE must report the row it matched");
    let (after, origin) = stamped(
        &mesh,
        1,
        "SELECT _pgc_version, _pgc_origin FROM accounts WHERE id = 1",
    )
    .await;
    assert!(after > before, "version {after} must exceed {before}");
    assert_eq!(origin, "n2");

    // An UPDATE that matches several rows reports them all, and one that matches none, none.
    exec(
        &mesh,
        2,
        "INSERT INTO accounts (id, email) VALUES (2, 'b@x'), (3, 'c@x')",
        &[],
    )
    .await;
    assert_eq!(
        exec(&mesh, 2, "UPDATE accounts SET note = 'many'", &[]).await,
        3
    );
    assert_eq!(
        exec(
            &mesh,
            2,
            "UPDATE accounts SET note = 'none' WHERE id = 99",
            &[]
        )
        .await,
        0
    );
    settle(&mesh).await;

    for node in 0..3 {
        let client = cluster.client(node).await;
        let row = client
            .query_one(
                "SELECT note, origin_node, updated_at IS NOT NULL FROM accounts WHERE id = 1",
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(row.get::<_, String>(0), "many");
        assert_eq!(
            row.get::<_, String>(1),
            "n3",
            "legacy origin_node follows the writer"
        );
        assert!(row.get::<_, bool>(2), "legacy updated_at is set");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn insert_insert_on_one_key_converges_to_the_higher_version() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    mesh.set_all_subscriptions(false).await;
    let mut stamps = Vec::new();
    for node in 0..3 {
        let sql = format!(
            "INSERT INTO accounts (id, email, note) VALUES (7, 'k7-{n}', 'from n{n}') RETURNING _pgc_version, _pgc_origin",
            n = node + 1
        );
        stamps.push((stamped(&mesh, node, &sql).await, node));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    mesh.set_all_subscriptions(true).await;
    settle(&mesh).await;

    let ((_, winner_origin), winner) = stamps
        .iter()
        .max()
        .cloned()
        .unwrap_or_else(|| panic!("no stamps"));
    assert_eq!(winner_origin, format!("n{}", winner + 1));
    for node in 0..3 {
        assert_eq!(
            notes(&mesh, node).await,
            vec![(7, Some(format!("from n{}", winner + 1)))]
        );
    }
    let mut logged = 0;
    for node in 0..3 {
        logged += mesh.ledger_count(node, "insert_exists").await;
    }
    assert!(
        logged >= 2,
        "each losing insert is recorded somewhere, got {logged}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unique_collisions_converge_with_one_winner_and_a_ledger_entry() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    mesh.set_all_subscriptions(false).await;
    // Stamps rise in this order: 1 < 2 < 3. Row 1 collides with 2 on email and with 3 on
    // (tenant, handle); the later claim wins each value, so row 1 dies and 2 and 3 live.
    exec(
        &mesh,
        0,
        "INSERT INTO accounts (id, email, tenant, handle) VALUES (1, 'same@x', 1, 'h')",
        &[],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    exec(
        &mesh,
        1,
        "INSERT INTO accounts (id, email, tenant, handle) VALUES (2, 'same@x', 2, 'k')",
        &[],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    exec(
        &mesh,
        2,
        "INSERT INTO accounts (id, email, tenant, handle) VALUES (3, 'other@x', 1, 'h')",
        &[],
    )
    .await;
    // NULLs never collide, in single- or multi-column constraints.
    exec(
        &mesh,
        0,
        "INSERT INTO accounts (id, email, tenant, handle) VALUES (4, NULL, 9, NULL)",
        &[],
    )
    .await;
    exec(
        &mesh,
        1,
        "INSERT INTO accounts (id, email, tenant, handle) VALUES (5, NULL, 9, NULL)",
        &[],
    )
    .await;
    exec(
        &mesh,
        2,
        "INSERT INTO accounts (id, email, tenant, handle) VALUES (6, NULL, NULL, NULL)",
        &[],
    )
    .await;
    mesh.set_all_subscriptions(true).await;
    settle(&mesh).await;

    for node in 0..3 {
        let ids: Vec<i32> = notes(&mesh, node)
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, vec![2, 3, 4, 5, 6], "on n{}", node + 1);
    }
    // n1 held row 1 and saw it lose: the ledger there records it.
    assert!(mesh.ledger_count(0, "unique_collision").await >= 1);
    let client = cluster.client(0).await;
    let row = client
        .query_one(
            "SELECT winner, pk::text FROM _pgconverge.conflicts WHERE kind = 'unique_collision' ORDER BY id LIMIT 1",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(row.get::<_, String>(0), "remote");
    assert_eq!(row.get::<_, String>(1), r#"{"id": 1}"#);

    // The dead key can be written again: the new write is stamped above its tombstone.
    exec(
        &mesh,
        0,
        "INSERT INTO accounts (id, email, note) VALUES (1, 'fresh@x', 'back')",
        &[],
    )
    .await;
    settle(&mesh).await;
    for node in 0..3 {
        let rows = notes(&mesh, node).await;
        assert_eq!(rows[0], (1, Some("back".to_string())), "on n{}", node + 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn update_delete_converges_to_the_later_write() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    exec(
        &mesh,
        0,
        "INSERT INTO accounts (id, email, note) VALUES (1, 'a', 'x'), (2, 'b', 'x')",
        &[],
    )
    .await;
    mesh.wait_for_catch_up(CATCH_UP).await;
    mesh.set_all_subscriptions(false).await;
    // Row 1: delete then a later update, which wins. Row 2: update then a later delete.
    exec(&mesh, 1, "DELETE FROM accounts WHERE id = 1", &[]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        exec(
            &mesh,
            2,
            "UPDATE accounts SET note = 'kept' WHERE id = 1",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        exec(
            &mesh,
            1,
            "UPDATE accounts SET note = 'lost' WHERE id = 2",
            &[]
        )
        .await,
        1
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    exec(&mesh, 2, "DELETE FROM accounts WHERE id = 2", &[]).await;
    mesh.set_all_subscriptions(true).await;
    settle(&mesh).await;
    for node in 0..3 {
        assert_eq!(
            notes(&mesh, node).await,
            vec![(1, Some("kept".to_string()))]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn update_arriving_before_its_insert_is_kept() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    // n3 hears nothing from n1 until the end: it gets n2's update of n1's row first.
    mesh.set_subscription(2, 0, false).await;
    exec(
        &mesh,
        0,
        "INSERT INTO accounts (id, email, note) VALUES (1, 'a', 'inserted by n1')",
        &[],
    )
    .await;
    wait_for_note(&mesh, 1, 1, Some("inserted by n1")).await;
    assert_eq!(
        exec(
            &mesh,
            1,
            "UPDATE accounts SET note = 'updated by n2' WHERE id = 1",
            &[]
        )
        .await,
        1
    );
    wait_for_note(&mesh, 2, 1, Some("updated by n2")).await;
    mesh.set_subscription(2, 0, true).await;
    settle(&mesh).await;
    for node in 0..3 {
        assert_eq!(
            notes(&mesh, node).await,
            vec![(1, Some("updated by n2".to_string()))]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_and_reinsert_arriving_in_either_order_keep_the_row() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    exec(
        &mesh,
        0,
        "INSERT INTO accounts (id, email, note) VALUES (1, 'a', 'v1'), (2, 'b', 'v1')",
        &[],
    )
    .await;
    mesh.wait_for_catch_up(CATCH_UP).await;

    // Key 1: n1 deletes, n2 re-inserts after seeing the delete; n3 gets the re-insert first.
    mesh.set_subscription(2, 0, false).await;
    exec(&mesh, 0, "DELETE FROM accounts WHERE id = 1", &[]).await;
    wait_for_note(&mesh, 1, 1, None).await;
    exec(
        &mesh,
        1,
        "INSERT INTO accounts (id, email, note) VALUES (1, 'a', 're-inserted')",
        &[],
    )
    .await;
    wait_for_note(&mesh, 2, 1, Some("re-inserted")).await;
    mesh.set_subscription(2, 0, true).await;

    // Key 2: the same, but n3 gets the delete first and the re-insert after.
    mesh.set_subscription(2, 1, false).await;
    exec(&mesh, 0, "DELETE FROM accounts WHERE id = 2", &[]).await;
    wait_for_note(&mesh, 1, 2, None).await;
    wait_for_note(&mesh, 2, 2, None).await;
    exec(
        &mesh,
        1,
        "INSERT INTO accounts (id, email, note) VALUES (2, 'b', 're-inserted')",
        &[],
    )
    .await;
    mesh.set_subscription(2, 1, true).await;
    settle(&mesh).await;
    for node in 0..3 {
        assert_eq!(
            notes(&mesh, node).await,
            vec![
                (1, Some("re-inserted".to_string())),
                (2, Some("re-inserted".to_string()))
            ],
            "on n{}",
            node + 1
        );
    }

    // A delete concurrent with the re-insert it did not see: the later stamp wins everywhere.
    mesh.set_all_subscriptions(false).await;
    exec(&mesh, 2, "DELETE FROM accounts WHERE id = 1", &[]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    exec(
        &mesh,
        0,
        "UPDATE accounts SET note = 'after the delete' WHERE id = 1",
        &[],
    )
    .await;
    mesh.set_all_subscriptions(true).await;
    settle(&mesh).await;
    for node in 0..3 {
        assert_eq!(
            notes(&mesh, node).await[0],
            (1, Some("after the delete".to_string()))
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn incoming_insert_that_waits_for_a_local_delete_loses_to_what_it_left() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    // n1 and n2 do not see each other: n2 writes key 10 and value 'v@x' (under key 21)
    // first, n1 the same key and value (under key 20) after, with greater stamps.
    mesh.set_subscription(0, 1, false).await;
    mesh.set_subscription(1, 0, false).await;
    exec(
        &mesh,
        1,
        "INSERT INTO accounts (id, email) VALUES (10, 'k@x'), (21, 'v@x')",
        &[],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    exec(
        &mesh,
        0,
        "INSERT INTO accounts (id, email) VALUES (10, 'k2@x'), (20, 'v@x')",
        &[],
    )
    .await;

    // n1 deletes both rows in a transaction that stays open while n2's inserts arrive: the
    // apply worker's insert waits on the deleted rows' index entries, and proceeds once the
    // delete commits the tombstone of key 10 and the claim on 'v@x', above n2's stamps.
    let deleting = cluster.client(0).await;
    deleting
        .batch_execute("BEGIN; DELETE FROM accounts WHERE id IN (10, 20);")
        .await
        .expect("delete in an open transaction");
    mesh.set_subscription(0, 1, true).await;
    let observer = cluster.client(0).await;
    let deadline = std::time::Instant::now() + CATCH_UP;
    loop {
        let waiting: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE backend_type LIKE 'logical replication%worker' AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "n1's apply worker never waited for the open delete"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    deleting.batch_execute("COMMIT").await.expect("commit");
    mesh.set_subscription(1, 0, true).await;
    settle(&mesh).await;
    for node in 0..3 {
        assert_eq!(notes(&mesh, node).await, vec![], "on n{}", node + 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_above_read_committed_is_refused_until_the_setting_goes() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    // Apply workers take the database's default isolation when they start.
    exec(
        &mesh,
        0,
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_isolation = %L', \
         current_database(), 'repeatable read'); END $$",
        &[],
    )
    .await;
    mesh.set_subscriptions_of(0, false).await;
    mesh.set_subscriptions_of(0, true).await;
    exec(
        &mesh,
        1,
        "INSERT INTO accounts (id, email) VALUES (1, 'a@x')",
        &[],
    )
    .await;
    let deadline = std::time::Instant::now() + CATCH_UP;
    loop {
        let errors: i64 = mesh
            .apply_errors()
            .await
            .iter()
            .filter(|(name, _)| name.starts_with("pgc_n1_"))
            .map(|(_, count)| count)
            .sum();
        if errors > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "n1 applied a change at REPEATABLE READ without an error"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(notes(&mesh, 0).await, vec![], "n1 must not have merged it");

    exec(
        &mesh,
        0,
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET default_transaction_isolation', \
         current_database()); END $$",
        &[],
    )
    .await;
    mesh.set_subscriptions_of(0, false).await;
    mesh.set_subscriptions_of(0, true).await;
    mesh.wait_for_catch_up(CATCH_UP).await;
    mesh.assert_converged().await;
    assert_eq!(notes(&mesh, 0).await, vec![(1, None)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn causally_later_update_from_a_node_skewed_back_wins() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    let skewed = cluster.client(2).await;
    skewed
        .batch_execute("ALTER DATABASE app SET pgconverge.clock_offset_ms = '-300000'")
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    drop(skewed);

    let (v1, _) = stamped(&mesh, 0, "INSERT INTO accounts (id, email, note) VALUES (1, 'a', 'n1') RETURNING _pgc_version, _pgc_origin").await;
    mesh.wait_for_catch_up(CATCH_UP).await;
    // A new session on n3 runs five minutes behind…
    let (fresh, _) = stamped(&mesh, 2, "INSERT INTO accounts (id, email, note) VALUES (2, 'b', 'n3') RETURNING _pgc_version, _pgc_origin").await;
    assert!(
        fresh < v1 - 200_000_000,
        "n3's clock is not skewed: {fresh} vs {v1}"
    );
    // …yet its update of n1's row is stamped just above the version it overwrote.
    let (v3, origin) = stamped(&mesh, 2, "UPDATE accounts SET note = 'n3 after seeing n1' WHERE id = 1 RETURNING _pgc_version, _pgc_origin").await;
    assert_eq!((v3, origin.as_str()), (v1 + 1, "n3"));
    settle(&mesh).await;
    for node in 0..3 {
        assert_eq!(
            notes(&mesh, node).await[0],
            (1, Some("n3 after seeing n1".to_string()))
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_inserts_of_shared_keys_cause_no_apply_errors() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    let mut tasks = Vec::new();
    for node in 0..3 {
        let client = cluster.client(node).await;
        tasks.push(tokio::spawn(async move {
            for round in 0..150i32 {
                let id = round % 12;
                let note = format!("n{} round {round}", node + 1);
                let email = format!("e{}", (round * 7 + node as i32) % 12);
                // Colliding keys and unique values on every node at once. A unique violation
                // against a row already here is the application's own error; anything else
                // is not expected.
                let result = client
                    .execute(
                        "INSERT INTO accounts (id, email, note) VALUES ($1, $2, $3) \
                         ON CONFLICT (id) DO UPDATE SET note = excluded.note",
                        &[&id, &email, &note],
                    )
                    .await;
                if let Err(e) = result {
                    let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
                    assert!(
                        ["23505", "40001", "40P01"].contains(&code.as_str()),
                        "unexpected error: {e:?}"
                    );
                }
                if round % 5 == 0 {
                    let _ = client
                        .execute("DELETE FROM accounts WHERE id = $1", &[&((round + 3) % 12)])
                        .await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("writer task: {e:?}"));
    }
    settle(&mesh).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn truncate_is_refused_with_a_hint() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    let client = cluster.client(0).await;
    let err = client
        .batch_execute("TRUNCATE accounts")
        .await
        .err()
        .unwrap_or_else(|| panic!("TRUNCATE must be refused"));
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
    assert!(
        db.message().contains("TRUNCATE of public.accounts"),
        "{}",
        db.message()
    );
    assert!(db.hint().unwrap_or_default().contains("DELETE"));
    settle(&mesh).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn change_log_pages_are_reused_without_vacuum() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    let client = cluster.client(0).await;
    // Only on-access pruning may reclaim the change log's dead rows here.
    client
        .batch_execute(
            "ALTER TABLE _pgconverge.changes SET (autovacuum_enabled = off); \
             INSERT INTO accounts (id, email, note) VALUES (1, 'a@x', 'n0')",
        )
        .await
        .unwrap_or_else(|e| panic!("preparing n1: {e:?}"));
    let writes = 10_000;
    for i in 1..=writes {
        let note = format!("n{i}");
        client
            .execute("UPDATE accounts SET note = $1 WHERE id = 1", &[&note])
            .await
            .unwrap_or_else(|e| panic!("update {i}: {e:?}"));
    }
    let pages: i64 = client
        .query_one(
            "SELECT pg_catalog.pg_relation_size('_pgconverge.changes') / \
             pg_catalog.current_setting('block_size')::bigint",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("reading the change log's size: {e:?}"))
        .get(0);
    // A page holds about 30 change rows of this table: without pruning, 10 000 writes take
    // over 300 pages; pruned in place, a page serves until its line pointers run out.
    assert!(
        pages * 100 < writes,
        "{writes} writes left the change log at {pages} pages: its dead rows are not pruned"
    );
    wait_for_note(&mesh, 2, 1, Some(&format!("n{writes}"))).await;
    settle(&mesh).await;
}

/// Waits until `accounts` row `id` on `node` has `note` (None: the row is absent).
async fn wait_for_note(mesh: &Mesh<'_>, node: usize, id: i32, note: Option<&str>) {
    let want = note.map(|n| (id, Some(n.to_string())));
    for _ in 0..600 {
        let rows = notes(mesh, node).await;
        let got = rows.into_iter().find(|(i, _)| *i == id);
        if got == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("n{}: accounts row {id} never became {want:?}", node + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn primary_key_update_moves_the_row_everywhere() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    exec(
        &mesh,
        0,
        "INSERT INTO accounts (id, email, note) VALUES (1, 'a', 'moving'), (2, 'b', 'other')",
        &[],
    )
    .await;
    mesh.wait_for_catch_up(CATCH_UP).await;
    assert_eq!(
        exec(&mesh, 1, "UPDATE accounts SET id = 10 WHERE id = 1", &[]).await,
        1
    );
    settle(&mesh).await;
    for node in 0..3 {
        assert_eq!(
            notes(&mesh, node).await,
            vec![
                (2, Some("other".to_string())),
                (10, Some("moving".to_string()))
            ]
        );
    }
    // Concurrently: n1 moves key 2 to 20 while n3 edits key 2. Whatever wins, all agree.
    mesh.set_all_subscriptions(false).await;
    exec(&mesh, 0, "UPDATE accounts SET id = 20 WHERE id = 2", &[]).await;
    exec(
        &mesh,
        2,
        "UPDATE accounts SET note = 'edited' WHERE id = 2",
        &[],
    )
    .await;
    mesh.set_all_subscriptions(true).await;
    settle(&mesh).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_removes_only_entries_older_than_the_retention() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    let client = cluster.client(0).await;
    client
        .batch_execute(
            "INSERT INTO _pgconverge.tombstones (tbl, pk, version, origin, recorded_at) VALUES
               ('public.accounts', '{\"id\": 1}', 1, 'n2', now() - interval '8 days'),
               ('public.accounts', '{\"id\": 2}', 1, 'n2', now() - interval '6 days');
             INSERT INTO _pgconverge.claims (tbl, unique_columns, value, version, origin, owner_pk, recorded_at) VALUES
               ('public.accounts', 'email', '[\"old\"]', 1, 'n2', '{\"id\": 1}', now() - interval '8 days'),
               ('public.accounts', 'email', '[\"new\"]', 1, 'n2', '{\"id\": 2}', now());
             INSERT INTO _pgconverge.conflicts (at, tbl, pk, kind, winner) VALUES
               (now() - interval '8 days', 'public.accounts', '{\"id\": 1}', 'update_update', 'remote'),
               (now(), 'public.accounts', '{\"id\": 2}', 'update_update', 'remote');",
        )
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let removed: i64 = client
        .query_one("SELECT _pgconverge.prune()", &[])
        .await
        .unwrap_or_else(|e| panic!("prune: {e:?}"))
        .get(0);
    assert_eq!(removed, 3);
    let left: Vec<String> = client
        .query(
            "SELECT 'tombstone ' || pk::text FROM _pgconverge.tombstones
             UNION ALL SELECT 'claim ' || value::text FROM _pgconverge.claims
             UNION ALL SELECT 'conflict ' || pk::text FROM _pgconverge.conflicts ORDER BY 1",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        left,
        vec![
            r#"claim ["new"]"#,
            r#"conflict {"id": 2}"#,
            r#"tombstone {"id": 2}"#
        ]
    );
    drop(mesh);
}

#[tokio::test(flavor = "multi_thread")]
async fn repeatable_read_insert_over_an_unseen_tombstone_fails_to_serialize() {
    let cluster = TestCluster::start(3);
    let mesh = Mesh::install(&cluster, vec![accounts()]).await;
    // n2 runs a minute ahead, so its delete is stamped above anything n1 stamps now.
    cluster
        .client(1)
        .await
        .batch_execute("ALTER DATABASE app SET pgconverge.clock_offset_ms = '60000'")
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    exec(
        &mesh,
        0,
        "INSERT INTO accounts (id, email, note) VALUES (5, 'e', 'first')",
        &[],
    )
    .await;
    mesh.wait_for_catch_up(CATCH_UP).await;

    let mut early = cluster.client(0).await;
    let tx = early
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    tx.query_one("SELECT count(*) FROM accounts", &[])
        .await
        .unwrap_or_else(|e| panic!("{e:?}")); // the snapshot is taken here
    exec(&mesh, 1, "DELETE FROM accounts WHERE id = 5", &[]).await;
    wait_for_note(&mesh, 0, 5, None).await;

    // Stamping under the old snapshot would put the row below the unseen tombstone.
    let err = tx
        .execute(
            "INSERT INTO accounts (id, email, note) VALUES (5, 'e', 'again')",
            &[],
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("the insert must not be stamped below the tombstone"));
    assert_eq!(err.code().map(|c| c.code()), Some("40001"), "{err:?}");
    drop(tx);
    // Retried, it is stamped above the tombstone and lives everywhere.
    exec(
        &mesh,
        0,
        "INSERT INTO accounts (id, email, note) VALUES (5, 'e', 'again')",
        &[],
    )
    .await;
    settle(&mesh).await;
    for node in 0..3 {
        assert_eq!(
            notes(&mesh, node).await,
            vec![(5, Some("again".to_string()))]
        );
    }
}
