//! `pgconverge generate` against real servers: the `pg_hba.conf` lines it writes parse without
//! error (`pg_hba_file_rules`), with CIDR masks for IP addresses and bare host names; the SQL
//! scripts, run by psql on empty databases, make a mesh that replicates and that `plan` finds
//! in sync.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pgconverge_tests::{output_text as text, TestCluster};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn generated_hba_lines_are_accepted_by_the_server() {
    let cluster = TestCluster::start(1);
    let mut nodes = vec![cluster.node(0).config_json()];
    for (name, host) in [
        ("n2", "10.0.0.7"),
        ("n3", "db3.internal"),
        ("n4", "fd00::4"),
    ] {
        nodes.push(json!({ "name": name, "host": host, "db": "app", "user": "pgc" }));
    }
    cluster.write_config_value(json!({ "nodes": nodes, "tables": [] }));
    let out = cluster.pgconverge(&["generate", "hba", "--node", "n1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let lines = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        lines.contains("10.0.0.7/32") && lines.contains("fd00::4/128"),
        "{lines}"
    );
    assert!(
        lines.contains(" db3.internal ") && !lines.contains("db3.internal/"),
        "{lines}"
    );

    let hba = cluster.sandbox().root().join("n1/data/pg_hba.conf");
    let existing = std::fs::read_to_string(&hba).expect("pg_hba.conf");
    std::fs::write(&hba, format!("{existing}\n{lines}")).expect("append the generated lines");
    let client = cluster.client(0).await;
    let errors: Vec<String> = client
        .query(
            "SELECT line_number || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL",
            &[],
        )
        .await
        .expect("pg_hba_file_rules")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{lines}");
    let peers: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_hba_file_rules WHERE address IN ('10.0.0.7', 'db3.internal', 'fd00::4')",
            &[],
        )
        .await
        .expect("rules")
        .get(0);
    // Three peers, a database and a replication line each.
    assert_eq!(peers, 6, "{lines}");

    let unknown = cluster.pgconverge(&["generate", "hba", "--node", "n9"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert!(text(&unknown).contains("node n9 is not in the configuration"));
    let bad_method = cluster.pgconverge(&["generate", "hba", "--auth-method", "plaintext"]);
    assert_eq!(bad_method.status.code(), Some(1), "{}", text(&bad_method));
}

/// Passwords with everything that needs quoting in a connection string and in SQL, given to
/// psql three ways: n1's in PGCONVERGE_N1_PASSWORD, n2's in its `password_env`, n3's as a
/// psql variable.
const PASSWORDS: [&str; 3] = ["it's a \\ secret", "$$ n2 'pw' $$", "plain-n3.pw"];

fn sql_tables() -> serde_json::Value {
    json!([
        { "name": "accounts",
          "columns": [
            { "name": "id", "type": "uuid", "default": "gen_random_uuid()" },
            { "name": "email", "type": "text", "nullable": false }
          ],
          "primary_key": ["id"], "unique": [["email"]] },
        { "name": "transfers",
          "columns": [
            { "name": "id", "type": "uuid", "default": "gen_random_uuid()" },
            { "name": "account_id", "type": "uuid", "nullable": false },
            { "name": "amount", "type": "numeric(12,2)", "nullable": false }
          ],
          "primary_key": ["id"],
          "foreign_keys": [{ "columns": ["account_id"],
                             "references": { "table": "accounts", "columns": ["id"] } }] }
    ])
}

/// The environment psql and pgconverge get: n1's and n2's passwords.
fn password_env() -> [(&'static str, &'static str); 2] {
    [
        ("PGCONVERGE_N1_PASSWORD", PASSWORDS[0]),
        ("N2_SECRET", PASSWORDS[1]),
    ]
}

/// pgconverge with the passwords in its environment.
fn pgconverge_with_passwords(cluster: &TestCluster, args: &[&str]) -> Output {
    Command::new(TestCluster::pgconverge_bin())
        .args(args)
        .current_dir(&cluster.dir)
        .env("NO_COLOR", "1")
        .env("PGCONVERGE_PG_BIN", cluster.bin_dir())
        .envs(password_env())
        .output()
        .expect("run pgconverge")
}

/// Runs `script` with psql on node `node` (0-based), as the generated header says.
fn psql_file(cluster: &TestCluster, node: usize, script: &Path) -> Output {
    let target = cluster.node(node);
    Command::new(TestCluster::client_bin_dir().join("psql"))
        .arg("-X")
        .args(["-v", "ON_ERROR_STOP=1"])
        .args(["-v", &format!("pgc_password_n3={}", PASSWORDS[2])])
        .arg("-f")
        .arg(script)
        .arg(target.connection_string())
        .envs(password_env())
        .output()
        .expect("run psql")
}

async fn count(cluster: &TestCluster, node: usize, sql: &str) -> i64 {
    cluster
        .client(node)
        .await
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Waits until `sql` counts `expected` on every node.
async fn wait_everywhere(cluster: &TestCluster, sql: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut counts = Vec::new();
        for node in 0..cluster.nodes.len() {
            counts.push(count(cluster, node, sql).await);
        }
        if counts.iter().all(|c| *c == expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: expected {expected} everywhere, got {counts:?}\n{}",
            cluster.server_log(0)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_sql_run_by_psql_makes_empty_databases_a_mesh_in_sync() {
    let cluster = TestCluster::start(3);
    let mut nodes = cluster.nodes_json();
    nodes[1]["password_env"] = json!("N2_SECRET");
    cluster.write_config_value(json!({ "nodes": nodes, "tables": sql_tables() }));

    let out = cluster.pgconverge(&["generate", "sql", "--out-dir", "sql"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = cluster.dir.join("sql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("sql dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "1-objects.n1.sql",
            "1-objects.n2.sql",
            "1-objects.n3.sql",
            "2-subscriptions.n1.sql",
            "2-subscriptions.n2.sql",
            "2-subscriptions.n3.sql"
        ]
    );
    let single = cluster.pgconverge(&["generate", "sql", "--node", "n2", "--part", "objects"]);
    assert_eq!(single.status.code(), Some(0), "{}", text(&single));
    assert_eq!(
        String::from_utf8_lossy(&single.stdout),
        std::fs::read_to_string(dir.join("1-objects.n2.sql")).expect("script")
    );

    // In name order: every node's part 1, then every node's part 2.
    for (file, name) in files.iter().zip(&names) {
        let script = std::fs::read_to_string(file).expect("script");
        for password in PASSWORDS {
            assert!(!script.contains(password), "{name} holds a password");
        }
        // 1-objects.n2.sql runs on n2.
        let node = cluster
            .nodes
            .iter()
            .position(|n| name.ends_with(&format!(".{}.sql", n.name)))
            .expect("a node's script");
        let run = psql_file(&cluster, node, file);
        assert!(run.status.success(), "{}: {}", file.display(), text(&run));
    }

    // The subscriptions hold what apply would have written, password included.
    for (node, peer) in [(0, 1), (1, 2), (2, 0)] {
        let target = cluster.node(peer);
        let expected = format!(
            "host=127.0.0.1 port={} dbname=app user=pgc password={} application_name=pgconverge",
            target.port,
            pgconverge_sql::quote_conninfo_value(PASSWORDS[peer])
        );
        let stored: String = cluster
            .client(node)
            .await
            .query_one(
                "SELECT subconninfo FROM pg_subscription WHERE subname = $1",
                &[&format!("pgc_n{}_from_{}", node + 1, target.name)],
            )
            .await
            .expect("subconninfo")
            .get(0);
        assert_eq!(stored, expected);
    }

    // The mesh replicates: a row written on each node reaches every node.
    for node in 0..3 {
        let email = format!("generated-{node}@example.com");
        cluster
            .client(node)
            .await
            .execute(
                "WITH a AS (INSERT INTO accounts (email) VALUES ($1) RETURNING id) \
                 INSERT INTO transfers (account_id, amount) SELECT id, 1.5 FROM a",
                &[&email],
            )
            .await
            .expect("local write");
    }
    wait_everywhere(
        &cluster,
        "SELECT count(*) FROM accounts a JOIN transfers t ON t.account_id = a.id",
        3,
    )
    .await;

    // pgconverge finds exactly what it would have applied, and adopts it.
    let plan = pgconverge_with_passwords(&cluster, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let apply = pgconverge_with_passwords(&cluster, &["apply", "--auto-approve"]);
    assert_eq!(apply.status.code(), Some(0), "{}", text(&apply));
    let state = std::fs::read_to_string(cluster.dir.join(".pgconverge/state.json"))
        .expect("apply records the state");
    assert!(state.contains("subscription pgc_n1_from_n2"), "{state}");
}

#[test]
fn generate_sql_refuses_unknown_nodes_and_an_ambiguous_out() {
    let cluster = TestCluster::start(1);
    cluster.write_config(sql_tables());
    let unknown = cluster.pgconverge(&["generate", "sql", "--node", "n9"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("node n9 is not in the configuration")
            && text(&unknown).contains("the configured nodes are: n1"),
        "{}",
        text(&unknown)
    );
    assert!(unknown.stdout.is_empty());
    let many = cluster.pgconverge(&["generate", "sql", "--out", "all.sql"]);
    assert_eq!(many.status.code(), Some(1), "{}", text(&many));
    assert!(text(&many).contains("--out writes one script, and 2 are selected"));
    assert!(!cluster.dir.join("all.sql").exists());
    let bad_part = cluster.pgconverge(&["generate", "sql", "--part", "tables"]);
    assert_eq!(bad_part.status.code(), Some(1), "{}", text(&bad_part));
}
