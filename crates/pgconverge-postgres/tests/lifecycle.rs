//! The lifecycle edge against real servers: a join's copy moves every row in one snapshot and
//! one transaction (an interrupted copy leaves the joining node empty, a copy into a table
//! holding rows is refused), and waiting for a slot's confirmation ends when its consumer
//! gets there.

use std::time::Duration;

use pgconverge_postgres::lifecycle::{
    copy_into_joiner, current_wal_lsn, slot_position, wait_for_confirmed, CatchUpError, CopyError,
    CopySpec, SlotPosition, TableCopy,
};
use pgconverge_tests::TestCluster;

const TABLE_SQL: &str = "CREATE TABLE items (id int PRIMARY KEY, label text, at timestamptz);
     CREATE TABLE marks (node text PRIMARY KEY);";

fn spec(finish: &str) -> CopySpec {
    let table = |name: &str, columns: &str| TableCopy {
        label: format!("public.{name}"),
        copy_out_sql: format!(
            "COPY (SELECT {columns} FROM public.{name}) TO STDOUT (FORMAT binary)"
        ),
        copy_in_sql: format!("COPY public.{name} ({columns}) FROM STDIN (FORMAT binary)"),
        holds_rows_sql: format!("SELECT EXISTS (SELECT 1 FROM public.{name})"),
    };
    CopySpec {
        joiner_setup_sql: vec!["SET LOCAL session_replication_role = replica".into()],
        joiner_before_copy_sql: Vec::new(),
        tables: vec![table("items", "id, label, at")],
        joiner_after_copy_sql: Vec::new(),
        joiner_finish_sql: vec![finish.to_string()],
    }
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_copy_is_one_snapshot_and_one_transaction() {
    let cluster = TestCluster::start(2);
    let mut donor = cluster.client(0).await;
    let mut joiner = cluster.client(1).await;
    for client in [&donor, &joiner] {
        client.batch_execute(TABLE_SQL).await.expect("tables");
    }
    donor
        .batch_execute(
            "INSERT INTO items SELECT g, 'row ' || g, now() FROM generate_series(1, 5000) g",
        )
        .await
        .expect("rows");

    // A failure in the last statement rolls the whole copy back.
    let failed = copy_into_joiner(
        &mut donor,
        &mut joiner,
        &spec("INSERT INTO marks VALUES (NULL)"),
        &mut |_| {},
    )
    .await;
    assert!(matches!(failed, Err(CopyError::Joiner(_))), "{failed:?}");
    assert_eq!(count(&joiner, "SELECT count(*) FROM items").await, 0);

    let mut progress_calls = 0;
    let report = copy_into_joiner(
        &mut donor,
        &mut joiner,
        &spec("INSERT INTO marks VALUES ('n2')"),
        &mut |_| progress_calls += 1,
    )
    .await
    .expect("copy");
    assert_eq!(report.rows, 5000);
    assert!(report.bytes > 0 && progress_calls > 0);
    assert_eq!(report.tables, vec![("public.items".to_string(), 5000)]);
    let same = "SELECT count(*) FROM items WHERE label = 'row ' || id";
    assert_eq!(count(&joiner, same).await, 5000);
    assert_eq!(count(&joiner, "SELECT count(*) FROM marks").await, 1);

    // Nothing is ever merged into a table that already holds rows.
    let again = copy_into_joiner(&mut donor, &mut joiner, &spec("SELECT 1"), &mut |_| {}).await;
    assert!(
        matches!(&again, Err(CopyError::JoinerNotEmpty { table }) if table == "public.items"),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_slot_ends_when_its_consumer_confirms() {
    let cluster = TestCluster::start(1);
    let client = cluster.client(0).await;
    client
        .batch_execute("SELECT pg_create_logical_replication_slot('joining', 'pgoutput')")
        .await
        .expect("slot");
    let SlotPosition::Confirmed(created) = slot_position(&client, "joining").await.expect("query")
    else {
        panic!("a new slot has a position");
    };
    assert_eq!(
        slot_position(&client, "no such slot").await.expect("query"),
        SlotPosition::Missing
    );
    client
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .await
        .expect("writes");
    let target = current_wal_lsn(&client).await.expect("lsn");
    assert!(target > created, "{target} > {created}");

    let short = wait_for_confirmed(
        &client,
        "joining",
        target,
        Duration::from_millis(500),
        &mut |_| {},
    )
    .await;
    assert!(
        matches!(short, Err(CatchUpError::TimedOut { .. })),
        "{short:?}"
    );

    // The consumer moves on (here by hand) while the wait polls.
    let advancer = cluster.client(0).await;
    // (Advancing stops at what is flushed; asynchronous commits are flushed within 200 ms.)
    let advance = tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            advancer
                .batch_execute(
                    "SELECT pg_replication_slot_advance('joining', pg_current_wal_lsn())",
                )
                .await?;
        }
        Ok::<(), tokio_postgres::Error>(())
    });
    let mut behind_seen = Vec::new();
    wait_for_confirmed(
        &client,
        "joining",
        target,
        Duration::from_secs(30),
        &mut |behind| behind_seen.push(behind),
    )
    .await
    .expect("confirmed");
    advance.await.expect("task").expect("advance");
    assert!(behind_seen.iter().all(|b| *b > 0));

    let missing =
        wait_for_confirmed(&client, "nope", target, Duration::from_secs(1), &mut |_| {}).await;
    assert!(
        matches!(missing, Err(CatchUpError::SlotMissing { .. })),
        "{missing:?}"
    );
}
