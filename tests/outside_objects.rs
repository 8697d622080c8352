//! Objects outside the model on real servers: a node joining a mesh whose first node holds
//! functions, views, a materialized view, a user trigger, a row-level security policy and
//! grants gets each of them from its donor, with the donor's definition, while a client
//! writes on the donor; the plan lists them, and a role the joiner's server lacks blocks it.
//!
//! Tests whose names contain `join_` run on PostgreSQL 16 and 17 too (scripts/test.sh).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pgconverge_tests::{output_text as text, TestCluster};
use serde_json::{json, Value};

fn tables() -> Value {
    json!([{
        "name": "notes",
        "columns": [
            { "name": "id", "type": "bigint" },
            { "name": "owner", "type": "text", "nullable": false, "default": "'nobody'" },
            { "name": "body", "type": "text" },
            { "name": "touched", "type": "boolean", "nullable": false, "default": "false" }
        ],
        "primary_key": ["id"]
    }])
}

/// The donor's objects outside the model; `note_len` is used by a view, `long_notes_count`
/// reads another view, so creating them in the wrong order fails.
const OUTSIDE_OBJECTS: &str = r#"
CREATE FUNCTION public.note_len(t text) RETURNS integer LANGUAGE sql IMMUTABLE
    AS $$ SELECT coalesce(length(t), 0) $$;
CREATE FUNCTION public.note_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.touched := true; RETURN NEW; END $$;
CREATE VIEW public.long_notes WITH (security_barrier = true) AS
    SELECT id, owner, public.note_len(body) AS len FROM public.notes WHERE public.note_len(body) > 3;
CREATE VIEW public.long_notes_count AS SELECT count(*) AS n FROM public.long_notes;
CREATE MATERIALIZED VIEW public.notes_per_owner AS
    SELECT owner, count(*) AS n FROM public.notes GROUP BY owner;
CREATE UNIQUE INDEX notes_per_owner_owner ON public.notes_per_owner (owner);
CREATE TRIGGER note_touch BEFORE INSERT ON public.notes
    FOR EACH ROW EXECUTE FUNCTION public.note_touch();
ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON public.notes FOR SELECT TO app_reader USING (owner = current_user);
GRANT USAGE ON SCHEMA public TO app_reader;
GRANT SELECT ON public.notes, public.long_notes TO app_reader;
GRANT EXECUTE ON FUNCTION public.note_len(text) TO app_reader;
"#;

/// Every definition the test compares, one line each, as the server prints it.
const DEFINITIONS_SQL: &str = r#"
SELECT 'routine ' || p.oid::regprocedure::text || ': ' || pg_get_functiondef(p.oid)
FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
UNION ALL
SELECT c.relkind::text || ' ' || c.oid::regclass::text || coalesce(c.reloptions::text, '') || ': '
       || pg_get_viewdef(c.oid)
FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('v', 'm')
UNION ALL
SELECT 'index ' || indexdef FROM pg_indexes WHERE tablename = 'notes_per_owner'
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text
FROM pg_trigger t WHERE t.tgrelid = 'public.notes'::regclass AND t.tgname = 'note_touch'
UNION ALL
SELECT 'policy ' || policyname || ' ' || cmd || ' ' || roles::text || ' ' || coalesce(qual, '')
FROM pg_policies WHERE schemaname = 'public'
UNION ALL
SELECT 'rls ' || relrowsecurity::text || relforcerowsecurity::text
FROM pg_class WHERE oid = 'public.notes'::regclass
UNION ALL
SELECT 'grant ' || c.relname || ' ' || a.privilege_type
FROM pg_class c, aclexplode(c.relacl) a
WHERE c.relnamespace = 'public'::regnamespace AND a.grantee = 'app_reader'::regrole
UNION ALL
SELECT 'grant schema ' || a.privilege_type
FROM pg_namespace n, aclexplode(n.nspacl) a
WHERE n.nspname = 'public' AND a.grantee = 'app_reader'::regrole
UNION ALL
SELECT 'grant ' || p.proname || ' ' || a.privilege_type
FROM pg_proc p, aclexplode(p.proacl) a
WHERE p.pronamespace = 'public'::regnamespace AND a.grantee = 'app_reader'::regrole
ORDER BY 1"#;

async fn definitions(cluster: &TestCluster, node: usize) -> Vec<String> {
    let client = cluster.client(node).await;
    client
        .batch_execute("SET search_path = ''")
        .await
        .expect("search_path");
    client
        .query(DEFINITIONS_SQL, &[])
        .await
        .expect("definitions")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn apply(cluster: &TestCluster) -> String {
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "apply failed:\n{shown}");
    shown
}

async fn create_role(cluster: &TestCluster, node: usize) {
    cluster
        .client(node)
        .await
        .batch_execute("CREATE ROLE app_reader")
        .await
        .expect("create role");
}

/// Inserts a row a millisecond on n1 until told to stop; returns how many it wrote.
async fn start_writer(
    cluster: &TestCluster,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<i64> {
    let client = cluster.client(0).await;
    tokio::spawn(async move {
        let mut written = 0;
        while !stop.load(Ordering::SeqCst) {
            written += 1;
            client
                .execute(
                    "INSERT INTO public.notes (id, owner, body) VALUES ($1, 'w', 'written')",
                    &[&(1_000_000 + written)],
                )
                .await
                .expect("writer insert");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        written
    })
}

async fn wait_for_rows(cluster: &TestCluster, node: usize, rows: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let seen = cluster
            .query_i64(node, "SELECT count(*) FROM public.notes")
            .await;
        if seen == rows {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} holds {seen} of {rows} rows",
            cluster.node(node).name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn join_carries_functions_views_triggers_policies_and_grants() {
    let cluster = TestCluster::start(3);
    cluster.write_config_for(&[0, 1], tables());
    apply(&cluster);
    create_role(&cluster, 0).await;
    let n1 = cluster.client(0).await;
    n1.batch_execute(OUTSIDE_OBJECTS)
        .await
        .expect("objects on n1");
    n1.batch_execute(
        "INSERT INTO public.notes (id, owner, body) \
         SELECT g, 'o' || (g % 7), repeat('x', g % 10) FROM generate_series(1, 2000) g; \
         REFRESH MATERIALIZED VIEW public.notes_per_owner",
    )
    .await
    .expect("rows on n1");
    // Rows written on n2, which has no trigger: untouched everywhere, on n3 too if the
    // trigger does not fire for copied rows.
    cluster
        .client(1)
        .await
        .batch_execute(
            "INSERT INTO public.notes (id, body) SELECT g, 'n2' FROM generate_series(3001, 3100) g",
        )
        .await
        .expect("rows on n2");
    wait_for_rows(&cluster, 0, 2100).await;

    // A role the grants and the policy name is missing on n3's server: the plan says so.
    cluster.write_config_for(&[0, 1, 2], tables());
    let blocked = cluster.pgconverge(&["plan"]);
    assert_ne!(blocked.status.code(), Some(0), "{}", text(&blocked));
    assert!(
        text(&blocked).contains("missing: app_reader"),
        "{}",
        text(&blocked)
    );
    create_role(&cluster, 2).await;

    let plan = cluster.pgconverge(&["plan"]);
    let shown = text(&plan);
    for listed in [
        "2 functions, 2 views, 1 materialized view, 1 trigger, 1 policy, 1 row security, 4 grants from n1",
        "copies function: public.note_len(t text); public.note_touch()",
        "copies view: public.long_notes; public.long_notes_count",
        "copies materialized view: public.notes_per_owner",
        "copies trigger: note_touch on public.notes",
        "copies policy: own_notes on public.notes",
        "USAGE on schema public to app_reader",
    ] {
        assert!(shown.contains(listed), "plan lacks {listed:?}:\n{shown}");
    }
    let json = cluster.pgconverge(&["plan", "--json"]);
    let json: Value = serde_json::from_slice(&json.stdout).expect("plan --json");
    let bootstrap = json["changes"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| !s["bootstrap"].is_null()))
        .map(|s| s["bootstrap"]["objects"].clone())
        .unwrap_or_default();
    assert!(
        bootstrap.as_array().is_some_and(
            |o| o.contains(&json!({"kind": "view", "name": "public.long_notes_count"}))
        ),
        "{bootstrap}"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_writer(&cluster, stop.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shown = apply(&cluster);
    assert!(shown.contains("bootstrap n3 from n1"), "{shown}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let written = writer.await.expect("writer");
    assert!(written > 0);
    for node in 0..3 {
        wait_for_rows(&cluster, node, 2100 + written).await;
    }

    let on_donor = definitions(&cluster, 0).await;
    assert_eq!(on_donor.len(), 13, "{on_donor:#?}");
    assert_eq!(definitions(&cluster, 2).await, on_donor);
    // The materialized view was filled from the copied rows (n1's was last refreshed before
    // the writer started); the trigger fired for none of the copied rows and fires for n3's
    // own writes.
    let in_view = cluster
        .query_i64(2, "SELECT sum(n)::int8 FROM public.notes_per_owner")
        .await;
    assert!((2100..=2100 + written).contains(&in_view), "{in_view}");
    assert_eq!(
        cluster
            .query_i64(2, "SELECT count(*) FROM public.notes WHERE NOT touched")
            .await,
        100
    );
    let n3 = cluster.client(2).await;
    n3.batch_execute("INSERT INTO public.notes (id, body) VALUES (5000000, 'from n3')")
        .await
        .expect("write on n3");
    assert_eq!(
        cluster
            .query_i64(
                2,
                "SELECT count(*) FROM public.notes WHERE id = 5000000 AND touched"
            )
            .await,
        1
    );
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "plan not empty:\n{}",
        text(&out)
    );
}

fn write_sql(cluster: &TestCluster, name: &str, text: &str) {
    let path = cluster.dir.join(name);
    std::fs::create_dir_all(path.parent().expect("a directory")).expect("sql directory");
    std::fs::write(&path, text).expect("sql file");
}

fn config_with_files(cluster: &TestCluster, members: &[usize], files: &[&str]) {
    let nodes: Vec<Value> = members
        .iter()
        .map(|&i| cluster.node(i).config_json())
        .collect();
    cluster.write_config_value(json!({ "nodes": nodes, "tables": tables(), "sql_files": files }));
}

async fn shout(cluster: &TestCluster, node: usize) -> String {
    cluster
        .client(node)
        .await
        .query_one("SELECT public.shout('Hi')", &[])
        .await
        .expect("shout")
        .get(0)
}

const VIEWS_SQL: &str =
    "CREATE OR REPLACE VIEW public.note_count AS SELECT count(*) AS n FROM public.notes;\n";
const FUNCTIONS_SQL: &str = "CREATE OR REPLACE FUNCTION public.shout(t text) RETURNS text\n\
                             LANGUAGE sql AS $$ SELECT upper(t) $$;\n";

#[tokio::test(flavor = "multi_thread")]
async fn join_sql_files_reach_every_node_in_order_and_again_when_changed() {
    let cluster = TestCluster::start(3);
    write_sql(&cluster, "sql/001_views.sql", VIEWS_SQL);
    write_sql(&cluster, "sql/002_functions.sql", FUNCTIONS_SQL);
    let files = ["sql/001_views.sql", "sql/002_functions.sql"];

    // A file that cannot be read is a located config error; nothing runs.
    config_with_files(&cluster, &[0, 1], &["sql/001_views.sql", "sql/missing.sql"]);
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("pgconverge.json:") && shown.contains("sql_files[1]: cannot read SQL file"),
        "{shown}"
    );
    assert_eq!(
        cluster
            .query_i64(
                0,
                "SELECT count(*) FROM pg_namespace WHERE nspname = '_pgconverge'"
            )
            .await,
        0
    );

    config_with_files(&cluster, &[0, 1], &files);
    let plan = text(&cluster.pgconverge(&["plan"]));
    assert!(
        plan.matches("+ sql file sql/001_views.sql").count() == 2
            && plan.matches("+ sql file sql/002_functions.sql").count() == 2,
        "{plan}"
    );
    apply(&cluster);
    for node in 0..2 {
        assert_eq!(shout(&cluster, node).await, "HI");
        assert_eq!(
            cluster
                .query_i64(node, "SELECT n FROM public.note_count")
                .await,
            0
        );
    }
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A changed file runs again; a plan saved before the change is stale.
    let saved = cluster.dir.join("before.plan");
    let out = cluster.pgconverge(&["plan", "--out", saved.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    write_sql(
        &cluster,
        "sql/002_functions.sql",
        &FUNCTIONS_SQL.replace("upper", "lower"),
    );
    let out = cluster.pgconverge(&["apply", "--auto-approve", saved.to_str().expect("path")]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("stale"), "{}", text(&out));
    let plan = text(&cluster.pgconverge(&["plan"]));
    assert!(
        plan.matches("~ sql file sql/002_functions.sql  # changed since it ran")
            .count()
            == 2
            && !plan.contains("001_views"),
        "{plan}"
    );
    apply(&cluster);
    assert_eq!(shout(&cluster, 0).await, "hi");
    assert_eq!(shout(&cluster, 1).await, "hi");

    // A failing file stops the apply naming node, file and line; the next apply, the file
    // mended, runs it and the files after it.
    write_sql(
        &cluster,
        "sql/003_broken.sql",
        "-- a comment\nCREATE OR REPLACE VIEW public.v1 AS SELECT 1 AS one;\nSELEC 2;\n",
    );
    write_sql(
        &cluster,
        "sql/004_after.sql",
        "CREATE OR REPLACE VIEW public.v2 AS SELECT 2 AS two;\n",
    );
    let more = [
        files[0],
        files[1],
        "sql/003_broken.sql",
        "sql/004_after.sql",
    ];
    config_with_files(&cluster, &[0, 1], &more);
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    let failure = ": + sql file sql/003_broken.sql: line 3: syntax error at or near \"SELEC\"";
    assert!(
        shown.contains(&format!("on n1{failure}")) || shown.contains(&format!("on n2{failure}")),
        "{shown}"
    );
    for node in 0..2 {
        assert_eq!(
            cluster
                .query_i64(
                    node,
                    "SELECT count(*) FROM pg_class WHERE relname IN ('v1', 'v2')"
                )
                .await,
            0,
            "the failed file left nothing and the next did not run"
        );
    }
    write_sql(
        &cluster,
        "sql/003_broken.sql",
        "-- a comment\nCREATE OR REPLACE VIEW public.v1 AS SELECT 1 AS one;\n",
    );
    apply(&cluster);

    // A joining node gets the donor's objects and runs every file in order.
    config_with_files(&cluster, &[0, 1, 2], &more);
    let plan = text(&cluster.pgconverge(&["plan"]));
    assert!(
        plan.contains("copies view: public.note_count; public.v1; public.v2"),
        "{plan}"
    );
    apply(&cluster);
    for node in 0..3 {
        assert_eq!(shout(&cluster, node).await, "hi");
        assert_eq!(
            cluster
                .query_i64(
                    node,
                    "SELECT count(*) FROM pg_class WHERE relname IN ('v1', 'v2')"
                )
                .await,
            2
        );
        assert_eq!(
            cluster
                .query_i64(node, "SELECT count(*) FROM _pgconverge.sql_files")
                .await,
            4
        );
    }
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
