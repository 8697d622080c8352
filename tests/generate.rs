//! `pgconverge generate hba` against a real server: the lines it writes parse without error in
//! `pg_hba.conf` (`pg_hba_file_rules`), with CIDR masks for IP addresses and bare host names.

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
