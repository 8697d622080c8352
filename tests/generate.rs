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

/// Waits until `sql` counts `expected` on every node.
async fn wait_everywhere(cluster: &TestCluster, sql: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut counts = Vec::new();
        for node in 0..cluster.nodes.len() {
            counts.push(cluster.query_i64(node, sql).await);
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
    let all = cluster.pgconverge(&["generate", "sql"]);
    assert_eq!(all.status.code(), Some(0), "{}", text(&all));
    let all = String::from_utf8_lossy(&all.stdout);
    for name in &names {
        let script = std::fs::read_to_string(dir.join(name)).expect("script");
        assert!(
            all.contains(&format!("-- ===== {name} =====\n{script}")),
            "{name} is not in stdout as written to its file"
        );
    }
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

/// The `-c name=value` settings of a service's `command`.
fn command_settings(service: &serde_json::Value) -> Vec<(String, String)> {
    let command: Vec<&str> = service["command"]
        .as_array()
        .expect("command is a list")
        .iter()
        .map(|a| a.as_str().expect("command arguments are strings"))
        .collect();
    assert_eq!(command.first(), Some(&"postgres"), "{command:?}");
    command[1..]
        .chunks(2)
        .map(|pair| {
            assert_eq!(pair[0], "-c", "{command:?}");
            let (name, value) = pair[1].split_once('=').expect("name=value");
            (name.to_string(), value.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_compose_file_runs_servers_with_settings_postgres_accepts() {
    let cluster = TestCluster::start(1);
    let port = cluster.node(0).port;
    cluster.write_config_value(json!({
        "nodes": [
            { "name": "n1", "host": "127.0.0.1", "port": port, "peer_host": "n1",
              "peer_port": port, "db": "app", "user": "pgc", "password": "inline-secret-1" },
            { "name": "n2", "host": "localhost", "port": 15432, "peer_host": "db2.internal",
              "peer_port": 5432, "db": "app", "user": "pgc" },
            { "name": "n3", "host": "127.0.0.1", "port": 15433, "db": "app", "user": "pgc",
              "external": true },
            { "name": "n4", "host": "db4.example", "db": "app", "user": "pgc" }
        ],
        "tables": []
    }));
    let out = cluster.pgconverge(&[
        "generate",
        "compose",
        "--out",
        "compose.yaml",
        "--env-file",
        "pg.env",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("left out (external, or not on this host): n3, n4"),
        "{stderr}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
    let yaml = std::fs::read_to_string(cluster.dir.join("compose.yaml")).expect("compose file");
    let env = std::fs::read_to_string(cluster.dir.join("pg.env")).expect("env file");
    assert!(!yaml.contains("inline-secret") && !env.contains("inline-secret"));
    assert!(
        env.contains("\nPGCONVERGE_N1_PASSWORD=\nPGCONVERGE_N2_PASSWORD=\n"),
        "{env}"
    );

    let doc: serde_json::Value = serde_norway::from_str(&yaml).expect("the file is YAML");
    let services = doc["services"].as_object().expect("services");
    assert_eq!(services.keys().collect::<Vec<_>>(), ["n1", "n2"]);
    let n1 = &services["n1"];
    let n2 = &services["n2"];
    assert_eq!(n1["image"], "postgres:18");
    assert_eq!(n1["ports"], json!([format!("127.0.0.1:{port}:{port}")]));
    assert_eq!(n2["ports"], json!(["127.0.0.1:15432:5432"]));
    assert_eq!(
        n2["networks"]["pgconverge"]["aliases"],
        json!(["db2.internal"])
    );
    assert_eq!(n1["networks"], json!(["pgconverge"]));
    assert_eq!(n1["volumes"], json!(["pgdata_n1:/var/lib/postgresql"]));
    assert_eq!(
        doc["volumes"]
            .as_object()
            .map(|v| v.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["pgdata_n1".to_string(), "pgdata_n2".to_string()])
    );
    assert!(doc["networks"]["pgconverge"].is_object(), "{yaml}");
    assert_eq!(
        n1["environment"]["POSTGRES_PASSWORD"],
        "${PGCONVERGE_N1_PASSWORD:?set PGCONVERGE_N1_PASSWORD in the env file}"
    );
    assert_eq!(n1["environment"]["POSTGRES_USER"], "pgc");
    let health: Vec<&str> = n1["healthcheck"]["test"]
        .as_array()
        .expect("health check")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(&health[..2], ["CMD", "pg_isready"]);
    assert!(health
        .windows(2)
        .any(|w| w == ["-p", port.to_string().as_str()]));

    // Sized for the four nodes of the mesh, external ones included: three peers each.
    let settings = command_settings(n1);
    let setting = |name: &str| {
        settings
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} is not set: {settings:?}"))
    };
    assert_eq!(setting("wal_level"), "logical");
    assert_eq!(setting("port"), port.to_string());
    for name in [
        "max_replication_slots",
        "max_wal_senders",
        "max_logical_replication_workers",
    ] {
        assert!(
            setting(name).parse::<u32>().expect("a number") >= 3,
            "{name}"
        );
    }
    assert!(
        setting("max_worker_processes")
            .parse::<u32>()
            .expect("a number")
            > setting("max_logical_replication_workers")
                .parse::<u32>()
                .expect("a number")
    );

    // The same settings on a real server: it starts with them and reports each as given.
    cluster.stop_node(0);
    let conf = cluster.sandbox().root().join("n1/data/pgconverge.conf");
    let mut extra = String::from("\n# generate compose's command line\n");
    for (name, value) in &settings {
        extra.push_str(&format!("{name} = '{value}'\n"));
    }
    let existing = std::fs::read_to_string(&conf).expect("pgconverge.conf");
    std::fs::write(&conf, existing + &extra).expect("append the settings");
    cluster.start_node(0);
    let client = cluster.client(0).await;
    for (name, value) in &settings {
        let shown: String = client
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .unwrap_or_else(|e| panic!("SHOW {name}: {e}"))
            .get(0);
        assert_eq!(&shown, value, "{name}");
    }

    // An env file that exists may hold real passwords: it is never overwritten.
    std::fs::write(cluster.dir.join("pg.env"), "PGCONVERGE_N1_PASSWORD=kept\n").expect("env");
    let again = cluster.pgconverge(&[
        "generate",
        "compose",
        "--env-file",
        "pg.env",
        "--pg-major",
        "16",
    ]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(
        std::fs::read_to_string(cluster.dir.join("pg.env")).expect("env"),
        "PGCONVERGE_N1_PASSWORD=kept\n"
    );
    let old: serde_json::Value =
        serde_norway::from_slice(&again.stdout).expect("stdout is the YAML");
    assert_eq!(old["services"]["n1"]["image"], "postgres:16");
    assert_eq!(
        old["services"]["n1"]["volumes"],
        json!(["pgdata_n1:/var/lib/postgresql/data"])
    );
    let too_old = cluster.pgconverge(&["generate", "compose", "--pg-major", "15"]);
    assert_eq!(too_old.status.code(), Some(1), "{}", text(&too_old));
}
