//! Smoke test of the test support library: a 2-node cluster answers on both nodes.

use pgconverge_tests::TestCluster;

#[tokio::test]
async fn two_node_cluster_answers_on_both_nodes() {
    let cluster = TestCluster::start(2);
    assert_eq!(cluster.nodes.len(), 2);
    assert_ne!(cluster.nodes[0].port, cluster.nodes[1].port);
    let expected_major = cluster.major().to_string();
    for node in 0..2 {
        let client = cluster.client(node).await;
        let row = client
            .query_one("select version(), current_setting('server_version_num')::int / 10000, current_database(), current_user, current_setting('wal_level')", &[])
            .await
            .expect("query");
        let version: String = row.get(0);
        let major: i32 = row.get(1);
        assert!(version.starts_with("PostgreSQL "), "{version}");
        assert_eq!(major.to_string(), expected_major, "{version}");
        assert_eq!(row.get::<_, String>(2), "app");
        assert_eq!(row.get::<_, String>(3), "pgc");
        assert_eq!(row.get::<_, String>(4), "logical");
    }
    let nodes = cluster.nodes_json();
    assert_eq!(nodes[1]["name"], "n2");
    assert_eq!(nodes[1]["host"], "127.0.0.1");
    assert_eq!(nodes[1]["port"], cluster.nodes[1].port);

    let config = cluster.write_config(serde_json::json!({}));
    assert_eq!(config, cluster.dir.join("pgconverge.json"));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).expect("read config"))
            .expect("config is JSON");
    assert_eq!(written["nodes"], nodes);
}

#[tokio::test]
async fn killed_node_comes_back_and_drop_stops_everything() {
    let cluster = TestCluster::start(1);
    let client = cluster.client(0).await;
    cluster.kill_node(0);
    assert!(
        client.simple_query("select 1").await.is_err(),
        "connection survived kill_node"
    );
    cluster.start_node(0);
    let again = cluster.client(0).await;
    again
        .simple_query("select 1")
        .await
        .expect("query after restart");
    cluster.stop_node(0);
    assert!(!cluster.sandbox().status().expect("status")[0].running);
    cluster.start_node(0);

    let dir = cluster.dir.clone();
    let pid = cluster.sandbox().status().expect("status")[0]
        .pid
        .expect("running node has a pid");
    drop(cluster);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| stat.contains(") Z ")),
        "postmaster {pid} still running after drop"
    );
}
