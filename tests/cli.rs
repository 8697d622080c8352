//! Command-line behaviour: exit codes, the older two-file format end to end, `import`, and
//! `sandbox up --count` / `status` / `down` on real servers.

use std::time::{Duration, Instant};

use pgconverge_tests::{output_text as text, TestCluster};
use serde_json::json;

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let bin = TestCluster::pgconverge_bin();
    let out = std::process::Command::new(&bin)
        .args(["plan", "--no-such-flag"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = std::process::Command::new(&bin)
        .arg("--help")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = std::env::temp_dir();
    let out = std::process::Command::new(&bin)
        .args(["validate", "--config", "/nonexistent/pgconverge.json"])
        .current_dir(dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/pgconverge.json"));
}

/// The older format on real servers: `serial` keys become uuids, `updated_at` and
/// `origin_node` are maintained on local writes, and rows replicate.
#[tokio::test(flavor = "multi_thread")]
async fn legacy_two_file_format_applies_and_import_round_trips() {
    let cluster = TestCluster::start(2);
    let nodes: Vec<serde_json::Value> = cluster
        .nodes
        .iter()
        .map(|n| json!({ "name": n.name, "host": "127.0.0.1", "port": n.port, "db": n.db, "user": n.user }))
        .collect();
    std::fs::write(
        cluster.dir.join("nodes.json"),
        serde_json::to_string_pretty(&nodes).expect("json"),
    )
    .expect("write");
    let schema = json!({
        "users": {
            "name": "users",
            "columns": {
                "id": { "name": "id", "data_type": "serial" },
                "email": { "name": "email", "data_type": "varchar(150)" }
            },
            "constraints": { "primary": ["id"], "unique": [["email"]] },
            "indexes": [["email"]],
            "crdt": { "enabled": true }
        }
    });
    std::fs::write(
        cluster.dir.join("schema.json"),
        serde_json::to_string_pretty(&schema).expect("json"),
    )
    .expect("write");

    // No pgconverge.json: the two files are picked up by default.
    let out = cluster.pgconverge(&["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = cluster.pgconverge(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let n1 = cluster.client(0).await;
    n1.execute("INSERT INTO users (email) VALUES ('a@example.com')", &[])
        .await
        .expect("insert");
    let row = n1
        .query_one(
            "SELECT pg_typeof(id)::text, updated_at IS NOT NULL, origin_node FROM users",
            &[],
        )
        .await
        .expect("select");
    assert_eq!(row.get::<_, String>(0), "uuid");
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("n1"));
    let updated = n1
        .execute("UPDATE users SET email = 'b@example.com'", &[])
        .await
        .expect("update");
    assert_eq!(
        updated, 1,
        "a local UPDATE that does not set updated_at must still apply"
    );

    let n2 = cluster.client(1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = n2
            .query_opt("SELECT email, origin_node FROM users", &[])
            .await
            .expect("select");
        if let Some(row) = row {
            if row.get::<_, String>(0) == "b@example.com" {
                assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("n1"));
                break;
            }
        }
        assert!(Instant::now() < deadline, "row did not reach n2");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // import writes the unified file; planning from it finds nothing to do.
    let out = cluster.pgconverge(&["import"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = cluster.pgconverge(&["import"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "refuses to overwrite: {}",
        text(&out)
    );
    let out = cluster.pgconverge(&["plan", "--config", "pgconverge.json", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn sandbox_count_writes_a_config_and_down_stops_everything() {
    let dir = std::env::temp_dir().join(format!("pgconverge-cli-sandbox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let bin_dir = pgconverge_tests::repo_root()
        .join(".pg")
        .join(pgconverge_tests::test_major().to_string())
        .join("bin");
    let run = |args: &[&str]| {
        std::process::Command::new(TestCluster::pgconverge_bin())
            .args(args)
            .current_dir(&dir)
            .env("PGCONVERGE_PG_BIN", &bin_dir)
            .env("NO_COLOR", "1")
            .output()
            .expect("run pgconverge")
    };
    let out = run(&["sandbox", "up", "--count", "2"]);
    let result = std::panic::catch_unwind(|| {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(dir.join("pgconverge.json").exists());
        let out = run(&["validate"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let out = run(&["sandbox", "up"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "up twice is harmless: {}",
            text(&out)
        );
        let out = run(&["sandbox", "status"]);
        let status = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(status.matches("running").count(), 2, "{status}");
        let out = run(&["plan", "--detailed-exitcode"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    });
    let out = run(&["sandbox", "down"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&["sandbox", "status"]);
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(!status.contains("running"), "{status}");
}
