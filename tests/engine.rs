//! End-to-end engine tests against real PostgreSQL servers: fresh apply on a 3-node mesh,
//! idempotency, drift detection and repair, stale plans, interrupted applies, unreachable nodes.

use std::time::{Duration, Instant};

use pgconverge_tests::{output_text as text, TestCluster};
use serde_json::{json, Value};

fn tables() -> Value {
    json!([
        {
            "name": "accounts",
            "columns": [
                { "name": "id", "type": "uuid", "default": "gen_random_uuid()" },
                { "name": "email", "type": "text", "nullable": false },
                { "name": "balance", "type": "numeric(12,2)", "default": "0" }
            ],
            "primary_key": ["id"],
            "unique": [["email"]]
        },
        {
            "name": "transfers",
            "columns": [
                { "name": "id", "type": "uuid", "default": "gen_random_uuid()" },
                { "name": "account_id", "type": "uuid", "nullable": false },
                { "name": "amount", "type": "numeric(12,2)", "nullable": false },
                { "name": "note", "type": "text" }
            ],
            "primary_key": ["id"],
            "foreign_keys": [{ "columns": ["account_id"], "references": { "table": "accounts", "columns": ["id"] } }],
            "indexes": [{ "columns": ["account_id"] }]
        }
    ])
}

fn run_ok(cluster: &TestCluster, args: &[&str]) -> String {
    let out = cluster.pgconverge(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "pgconverge {args:?} failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn plan_json(cluster: &TestCluster) -> (i32, Value) {
    let out = cluster.pgconverge(&["plan", "--json", "--detailed-exitcode"]);
    let code = out.status.code().unwrap_or(-1);
    let value: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan --json did not print JSON ({e}):\n{}", text(&out)));
    (code, value)
}

async fn scalar(cluster: &TestCluster, node: usize, sql: &str) -> i64 {
    let client = cluster.client(node).await;
    let row = client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.get::<_, i64>(0)
}

/// Waits until `sql` returns `expected` on every node.
async fn wait_everywhere(cluster: &TestCluster, sql: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut values = Vec::new();
        for i in 0..cluster.nodes.len() {
            values.push(scalar(cluster, i, sql).await);
        }
        if values.iter().all(|v| *v == expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: expected {expected} on every node, got {values:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each node writes one account and one transfer; all six rows must reach all nodes.
async fn write_on_every_node_and_check(cluster: &TestCluster, round: &str) {
    for i in 0..cluster.nodes.len() {
        let client = cluster.client(i).await;
        let email = format!("{round}-{}@example.com", cluster.nodes[i].name);
        let n = client
            .execute(
                "WITH a AS (INSERT INTO accounts (email) VALUES ($1) RETURNING id) \
                 INSERT INTO transfers (account_id, amount, note) SELECT id, 10.5, 'it''s from ' || $1 FROM a",
                &[&email],
            )
            .await
            .expect("local write");
        assert_eq!(n, 1);
    }
    let count = cluster.nodes.len() as i64;
    wait_everywhere(
        cluster,
        &format!("SELECT count(*) FROM accounts a JOIN transfers t ON t.account_id = a.id WHERE a.email LIKE '{round}-%'"),
        count,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_apply_then_idempotent_plan() {
    let cluster = TestCluster::start(3);
    cluster.write_config(tables());

    let (code, plan) = plan_json(&cluster);
    assert_eq!(code, 2, "changes pending on a fresh cluster: {plan:#}");
    assert!(plan["summary"]["add"].as_u64().unwrap_or(0) > 10);
    let subs: Vec<&Value> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["kind"] == "subscription")
        .collect();
    assert_eq!(subs.len(), 6, "full mesh of 3 nodes needs 6 subscriptions");

    let out = run_ok(&cluster, &["apply", "--auto-approve"]);
    assert!(out.contains("Apply complete!"), "{out}");

    write_on_every_node_and_check(&cluster, "first").await;

    // Idempotent: nothing left to do, exit 0.
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No changes."),
        "{}",
        text(&out)
    );
    let out = run_ok(&cluster, &["apply", "--auto-approve"]);
    assert!(out.contains("No changes."), "{out}");

    // Every node: two peer subscriptions and two slots for its peers.
    for i in 0..3 {
        assert_eq!(
            scalar(
                &cluster,
                i,
                "SELECT count(*) FROM pg_subscription WHERE subname LIKE 'pgc\\_%'"
            )
            .await,
            2
        );
        assert_eq!(
            scalar(
                &cluster,
                i,
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pgc\\_%'"
            )
            .await,
            2
        );
    }
    let state = run_ok(&cluster, &["state", "show"]);
    assert!(state.contains("\"lineage\""), "{state}");
    assert!(state.contains("subscription pgc_n1_from_n2"), "{state}");
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_detected_exactly_and_repaired() {
    let cluster = TestCluster::start(3);
    cluster.write_config(tables());
    run_ok(&cluster, &["apply", "--auto-approve"]);

    let n2 = cluster.client(1).await;
    n2.batch_execute("DROP SUBSCRIPTION pgc_n2_from_n1")
        .await
        .expect("drop subscription");
    let n3 = cluster.client(2).await;
    n3.batch_execute("DROP INDEX transfers_account_id_idx")
        .await
        .expect("drop index");
    // On n1, a concurrent build under the configured name that failed half-way (duplicates
    // for a UNIQUE index) leaves an invalid index behind.
    let n1 = cluster.client(0).await;
    n1.batch_execute(
        "WITH a AS (INSERT INTO accounts (email) VALUES ('twice@example.com') RETURNING id) \
         INSERT INTO transfers (account_id, amount) SELECT id, 1 FROM a, generate_series(1, 2); \
         DROP INDEX transfers_account_id_idx;",
    )
    .await
    .expect("duplicates written, index dropped");
    n1.batch_execute(
        "CREATE UNIQUE INDEX CONCURRENTLY transfers_account_id_idx ON transfers (account_id)",
    )
    .await
    .expect_err("duplicates stop a unique build");

    let (code, plan) = plan_json(&cluster);
    assert_eq!(code, 2, "{plan:#}");
    let changes: Vec<(String, String, String)> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["node"].as_str().unwrap_or("").to_string(),
                c["address"].as_str().unwrap_or("").to_string(),
                c["actions"][0].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        // DROP SUBSCRIPTION also dropped its slot on the publisher.
        vec![
            (
                "n1".into(),
                "index public.transfers.transfers_account_id_idx".into(),
                "delete".into()
            ),
            ("n1".into(), "slot pgc_n2_from_n1".into(), "create".into()),
            (
                "n2".into(),
                "subscription pgc_n2_from_n1".into(),
                "create".into()
            ),
            (
                "n3".into(),
                "index public.transfers.transfers_account_id_idx".into(),
                "create".into()
            ),
        ],
        "{plan:#}"
    );
    assert!(plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .all(|c| c["drift"] == true));
    let human = cluster.pgconverge(&["plan"]);
    let human_text = String::from_utf8_lossy(&human.stdout);
    assert!(
        human_text.contains("Objects have changed outside of pgconverge"),
        "{human_text}"
    );
    assert!(
        human_text.contains("Plan: 4 to add, 0 to change, 1 to destroy."),
        "{human_text}"
    );

    run_ok(&cluster, &["apply", "--auto-approve"]);
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let valid: bool = n1
        .query_one(
            "SELECT indisvalid AND NOT indisunique FROM pg_index \
             WHERE indexrelid = 'transfers_account_id_idx'::regclass",
            &[],
        )
        .await
        .expect("rebuilt index")
        .get(0);
    assert!(
        valid,
        "the invalid unique index was not rebuilt as configured"
    );
    write_on_every_node_and_check(&cluster, "after-repair").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_saved_plan_is_refused() {
    let cluster = TestCluster::start(2);
    cluster.write_config(tables());
    run_ok(&cluster, &["plan", "--out", "saved.plan"]);
    // Someone changes a node after the plan was saved.
    let n1 = cluster.client(0).await;
    n1.batch_execute("CREATE TABLE unrelated_change (id int)")
        .await
        .expect("create");
    n1.batch_execute("CREATE SCHEMA _pgconverge")
        .await
        .expect("create schema");
    let out = cluster.pgconverge(&["apply", "saved.plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stale") && err.contains("node n1 changed"),
        "{}",
        text(&out)
    );
    assert_eq!(
        scalar(&cluster, 1, "SELECT count(*) FROM pg_subscription").await,
        0,
        "nothing may run"
    );

    // A fresh saved plan applies without a prompt.
    run_ok(&cluster, &["plan", "--out", "fresh.plan"]);
    let out = run_ok(&cluster, &["apply", "fresh.plan"]);
    assert!(out.contains("Apply complete!"), "{out}");
    write_on_every_node_and_check(&cluster, "saved").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stopped_node_is_named_and_nothing_runs() {
    let cluster = TestCluster::start(3);
    cluster.write_config(tables());
    cluster.stop_node(2);
    let out = cluster.pgconverge(&["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node n3"), "{}", text(&out));
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        scalar(
            &cluster,
            0,
            "SELECT count(*) FROM pg_namespace WHERE nspname = '_pgconverge'"
        )
        .await,
        0,
        "nothing may run"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn declined_prompt_changes_nothing() {
    let cluster = TestCluster::start(2);
    cluster.write_config(tables());
    // No standard input: the prompt reads end-of-file, which is not "yes".
    let out = cluster.pgconverge(&["apply"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cancelled"),
        "{}",
        text(&out)
    );
    assert_eq!(
        scalar(
            &cluster,
            0,
            "SELECT count(*) FROM pg_namespace WHERE nspname = '_pgconverge'"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_apply_resumes_without_duplicates() {
    let cluster = TestCluster::start(3);
    // Many tables make the apply long enough to interrupt.
    let many: Vec<Value> = (0..60)
        .map(|i| {
            json!({
                "name": format!("t{i:02}"),
                "columns": [
                    { "name": "id", "type": "bigint" },
                    { "name": "code", "type": "text" },
                    { "name": "payload", "type": "jsonb" }
                ],
                "primary_key": ["id"],
                "unique": [["code"]],
                "indexes": [{ "columns": ["payload"] }]
            })
        })
        .collect();
    cluster.write_config(Value::Array(many));
    let mut child = std::process::Command::new(TestCluster::pgconverge_bin())
        .args(["apply", "--auto-approve", "--parallelism", "1"])
        .current_dir(&cluster.dir)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn pgconverge");
    // Kill it once some steps are done but long before the end.
    let stdout = child.stdout.take().expect("stdout");
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut seen = 0;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("done (") {
                seen += 1;
                if seen == 40 {
                    return seen;
                }
            }
        }
        seen
    });
    let seen = lines.join().expect("reader");
    // SIGKILL: no cleanup, the state lock stays behind.
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen, 40, "apply finished before it could be interrupted");

    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for i in 0..3 {
        assert_eq!(
            scalar(&cluster, i, "SELECT count(*) FROM pg_subscription").await,
            2
        );
        assert_eq!(
            scalar(&cluster, i, "SELECT count(*) FROM pg_replication_slots").await,
            2
        );
        assert_eq!(
            scalar(&cluster, i, "SELECT count(*) FROM pg_publication").await,
            1
        );
        assert_eq!(
            scalar(&cluster, i, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'").await,
            60
        );
    }
    let n1 = cluster.client(0).await;
    n1.batch_execute("INSERT INTO t00 (id, code) VALUES (1, 'x')")
        .await
        .expect("insert");
    wait_everywhere(&cluster, "SELECT count(*) FROM t00", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_config_fails_validation_with_its_location() {
    // The CLI side of the fixture corpus: exit 1, file and line in every message, no node
    // contacted (the nodes in these fixtures do not exist).
    let cluster = TestCluster::start(1);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/invalid");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .expect("fixtures/invalid")
        .flatten()
        .map(|e| e.path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected a corpus of bad configs in {}",
        root.display()
    );
    for case in cases {
        let unified = case.join("pgconverge.json");
        let args: Vec<String> = if unified.exists() {
            vec![
                "validate".into(),
                "--config".into(),
                unified.display().to_string(),
            ]
        } else {
            vec![
                "validate".into(),
                "--nodes".into(),
                case.join("nodes.json").display().to_string(),
                "--schema".into(),
                case.join("schema.json").display().to_string(),
            ]
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cluster.pgconverge(&args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {}",
            case.display(),
            text(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(".json:"),
            "{}: no file:line in {err}",
            case.display()
        );
        assert!(!err.contains("panicked"), "{}: {err}", case.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn function_changed_by_hand_shows_a_body_diff_and_is_restored() {
    let cluster = TestCluster::start(2);
    cluster.write_config(tables());
    run_ok(&cluster, &["apply", "--auto-approve"]);
    let n1 = cluster.client(0).await;
    n1.batch_execute(
        "CREATE OR REPLACE FUNCTION _pgconverge.node_name() RETURNS text LANGUAGE sql IMMUTABLE \
         SET search_path = '' AS $$ SELECT 'impostor'::text $$",
    )
    .await
    .expect("replace function");
    // A per-table function, whose body plans do not read while its comment vouches for it,
    // replaced with an edited body: the replacement is seen all the same.
    let stamp = n1
        .query_one(
            "SELECT p.proname::text, p.prosrc FROM pg_proc p \
             WHERE p.pronamespace = '_pgconverge'::regnamespace AND p.proname LIKE 'stamp\\_%' \
             ORDER BY 1 LIMIT 1",
            &[],
        )
        .await
        .expect("stamp function");
    let (stamp_name, stamp_body): (String, String) = (stamp.get(0), stamp.get(1));
    n1.batch_execute(&format!(
        "CREATE OR REPLACE FUNCTION _pgconverge.{stamp_name}() RETURNS trigger \
         LANGUAGE plpgsql SET search_path = '' AS $edited$\n-- edited by hand{stamp_body}$edited$"
    ))
    .await
    .expect("replace stamp function");
    // An apply trigger whose condition was changed: it would take another table's changes.
    let apply = n1
        .query_one(
            "SELECT tgname::text, tgfoid::regproc::text FROM pg_trigger \
             WHERE tgrelid = '_pgconverge.changes'::regclass AND tgname LIKE '%apply%' \
             ORDER BY 1 LIMIT 1",
            &[],
        )
        .await
        .expect("apply trigger");
    let (apply_trigger, apply_function): (String, String) = (apply.get(0), apply.get(1));
    n1.batch_execute(&format!(
        "CREATE OR REPLACE TRIGGER \"{apply_trigger}\" BEFORE INSERT ON _pgconverge.changes \
         FOR EACH ROW WHEN (new.tbl = 'elsewhere') EXECUTE FUNCTION {apply_function}(); \
         ALTER TABLE _pgconverge.changes ENABLE REPLICA TRIGGER \"{apply_trigger}\""
    ))
    .await
    .expect("replace trigger");
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode", "--no-color"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!(
            "-/+ trigger _pgconverge.changes.{apply_trigger}  # forces replacement: definition differs"
        )),
        "{shown}"
    );
    assert!(
        shown.contains("~ function _pgconverge.node_name()"),
        "{shown}"
    );
    assert!(
        shown.contains("-") && shown.contains("impostor"),
        "body diff expected: {shown}"
    );
    assert!(
        shown.contains(&format!("~ function _pgconverge.{stamp_name}()"))
            && shown.contains("-- edited by hand"),
        "{shown}"
    );
    assert!(
        shown.contains("Plan: 1 to add, 2 to change, 1 to destroy."),
        "{shown}"
    );
    run_ok(&cluster, &["apply", "--auto-approve"]);
    let row = n1
        .query_one("SELECT _pgconverge.node_name()", &[])
        .await
        .expect("call");
    assert_eq!(row.get::<_, String>(0), "n1");
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode", "--no-color"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // n2's node_name() vouched for as n1's (as if the server had been n1): its body is not
    // read, and it is replaced all the same.
    let n1_comment: String = n1
        .query_one(
            "SELECT obj_description('_pgconverge.node_name()'::regprocedure, 'pg_proc')",
            &[],
        )
        .await
        .expect("n1 comment")
        .get(0);
    let n1_fingerprint = n1_comment
        .rsplit_once(':')
        .map(|(prefix, _xmin)| prefix.to_string())
        .expect("comment shape");
    let n2 = cluster.client(1).await;
    n2.batch_execute(&format!(
        "DO $$ BEGIN EXECUTE format('COMMENT ON FUNCTION _pgconverge.node_name() IS %L', \
         '{n1_fingerprint}:' || (SELECT xmin FROM pg_proc \
         WHERE oid = '_pgconverge.node_name()'::regprocedure)); END $$"
    ))
    .await
    .expect("comment copied");
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode", "--no-color"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("~ function _pgconverge.node_name()  # generated for other inputs"),
        "{shown}"
    );
    run_ok(&cluster, &["apply", "--auto-approve"]);
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode", "--no-color"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_lock_stops_apply_until_unlocked() {
    let cluster = TestCluster::start(2);
    cluster.write_config(tables());
    // A lock held by a live process (this test) on this host.
    let lock_dir = cluster.dir.join(".pgconverge");
    std::fs::create_dir_all(&lock_dir).expect("mkdir");
    let store = pgconverge_state::StateStore::new(lock_dir.join("state.json"));
    let lock = store.lock("apply").expect("take the lock");
    let id = lock.id().to_string();
    std::mem::forget(lock);
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&id) && err.contains("held for"), "{err}");
    assert_eq!(
        scalar(
            &cluster,
            0,
            "SELECT count(*) FROM pg_namespace WHERE nspname = '_pgconverge'"
        )
        .await,
        0
    );
    let out = cluster.pgconverge(&["state", "unlock", "wrong-id"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    run_ok(&cluster, &["state", "unlock", &id]);
    let out = run_ok(&cluster, &["apply", "--auto-approve"]);
    assert!(out.contains("Apply complete!"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_step_is_reported_and_a_rerun_does_only_what_is_left() {
    let cluster = TestCluster::start(2);
    cluster.write_config(tables());
    // A view with the name of a planned table makes that step fail on n2 only.
    let n2 = cluster.client(1).await;
    n2.batch_execute("CREATE VIEW accounts AS SELECT 1 AS id")
        .await
        .expect("view");
    let out = cluster.pgconverge(&["apply", "--auto-approve", "--parallelism", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apply failed"), "{err}");
    assert!(
        err.contains("table public.accounts") && err.contains("already exists"),
        "{err}"
    );
    assert!(err.contains("on n2"), "{err}");
    let state = run_ok(&cluster, &["state", "show"]);
    assert!(state.contains("failed at step"), "{state}");

    n2.batch_execute("DROP VIEW accounts")
        .await
        .expect("drop view");
    let (code, plan) = plan_json(&cluster);
    assert_eq!(code, 2);
    // Nothing that was applied before the failure is planned again.
    let first_run = String::from_utf8_lossy(&out.stdout);
    let applied: Vec<String> = first_run
        .lines()
        .filter(|l| l.ends_with("ms)") && l.contains(" … done"))
        .filter_map(|l| l.split(" … ").next())
        .map(|l| l.to_string())
        .collect();
    assert!(
        !applied.is_empty(),
        "some steps ran before the failure: {first_run}"
    );
    for change in plan["changes"].as_array().expect("changes") {
        let line = format!(
            "{}: + {}",
            change["node"].as_str().unwrap_or(""),
            change["address"].as_str().unwrap_or("")
        );
        assert!(
            !applied.contains(&line),
            "{line} was applied but is planned again"
        );
    }
    assert!(plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .any(|c| c["address"] == "table public.accounts" && c["node"] == "n2"));
    run_ok(&cluster, &["apply", "--auto-approve"]);
    write_on_every_node_and_check(&cluster, "after-failure").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_change_is_no_drift_and_reads_in_a_line_per_object() {
    let cluster = TestCluster::start(3);
    cluster.write_config(tables());
    run_ok(&cluster, &["apply", "--auto-approve"]);

    // One table gains a column: its generated functions are regenerated because the config
    // moved, not because anything changed outside pgconverge.
    let mut changed = tables();
    changed[0]["columns"]
        .as_array_mut()
        .expect("columns")
        .push(json!({ "name": "phone", "type": "text" }));
    cluster.write_config(changed);
    let out = cluster.pgconverge(&["plan"]);
    let plan = text(&out);
    assert!(!plan.contains("changed outside"), "{plan}");
    assert!(
        plan.contains("regenerated: public.accounts gained columns phone"),
        "{plan}"
    );
    assert!(!plan.contains("@@"), "a body diff without --diff:\n{plan}");
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(lines < 40, "{lines} lines:\n{plan}");

    let with_diffs = text(&cluster.pgconverge(&["plan", "--diff"]));
    assert!(with_diffs.contains("@@"), "{with_diffs}");

    let (code, json) = plan_json(&cluster);
    assert_eq!(code, 2);
    assert!(json["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .all(|c| c["drift"] == false));
    run_ok(&cluster, &["apply", "--auto-approve"]);
    let out = cluster.pgconverge(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
