//! The conflict tests' mesh: `pgconverge apply` of the tables on a [`TestCluster`], plus the
//! waits and checks the conflict tests share.

// Each test binary includes this file and uses a different subset of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use pgconverge_model::naming::subscription_name;
use pgconverge_model::TableConfig;
use pgconverge_sql::{quote_ident, quote_qualified};
use pgconverge_tests::TestCluster;
use tokio_postgres::Client;

/// Replicated table the catch-up wait writes to; not part of any comparison.
pub const SYNC_TABLE: &str = "pgc_test_sync";

/// A table config from JSON (the same shape as in pgconverge.json).
pub fn table(json: serde_json::Value) -> TableConfig {
    serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("test table config {json}: {e}"))
}

fn sync_table() -> TableConfig {
    table(serde_json::json!({
        "name": SYNC_TABLE,
        "columns": [{"name": "node", "type": "text"}, {"name": "n", "type": "bigint"}],
        "primary_key": ["node"],
    }))
}

/// The conflict-resolution mesh over a [`TestCluster`].
pub struct Mesh<'a> {
    pub cluster: &'a TestCluster,
    /// The configured tables (without the sync table).
    pub tables: Vec<TableConfig>,
    sync_round: std::sync::atomic::AtomicI64,
}

impl<'a> Mesh<'a> {
    /// Writes the tables into the cluster's pgconverge.json and runs `pgconverge apply`:
    /// the conflict machinery under test is exactly what the product installs.
    pub async fn install(cluster: &'a TestCluster, tables: Vec<TableConfig>) -> Mesh<'a> {
        Mesh::apply(cluster, tables, "change_log")
    }

    /// The same tables on the forwarding write path: `pgconverge apply` of a config with
    /// `"replication": {"write_path": "forwarding"}`, so the objects under test are exactly
    /// what the planner generates for that setting.
    pub async fn install_forwarding(
        cluster: &'a TestCluster,
        tables: Vec<TableConfig>,
    ) -> Mesh<'a> {
        Mesh::apply(cluster, tables, "forwarding")
    }

    fn apply(cluster: &'a TestCluster, tables: Vec<TableConfig>, write_path: &str) -> Mesh<'a> {
        let mut all = tables.clone();
        all.push(sync_table());
        let json = serde_json::to_value(&all).unwrap_or_else(|e| panic!("tables as JSON: {e}"));
        cluster.write_config_value(serde_json::json!({
            "nodes": cluster.nodes_json(),
            "tables": json,
            "replication": {"write_path": write_path},
        }));
        let out = cluster.pgconverge(&["apply", "--auto-approve"]);
        assert!(
            out.status.success(),
            "pgconverge apply ({write_path}) failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Mesh {
            cluster,
            tables,
            sync_round: std::sync::atomic::AtomicI64::new(0),
        }
    }

    fn node_count(&self) -> usize {
        self.cluster.nodes.len()
    }

    /// Enables or disables the subscription on `subscriber` that receives from `publisher`.
    /// Disabling waits until its apply worker has exited, so later writes stay unseen.
    pub async fn set_subscription(&self, subscriber: usize, publisher: usize, enabled: bool) {
        let name = subscription_name(
            &self.cluster.nodes[subscriber].name,
            &self.cluster.nodes[publisher].name,
        );
        let client = self.cluster.client(subscriber).await;
        let action = if enabled { "ENABLE" } else { "DISABLE" };
        client
            .batch_execute(&format!(
                "ALTER SUBSCRIPTION {} {action}",
                quote_ident(&name)
            ))
            .await
            .unwrap_or_else(|e| panic!("ALTER SUBSCRIPTION {name} {action}: {e:?}"));
        if !enabled {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let running: i64 = client
                    .query_one(
                        "SELECT count(*) FROM pg_stat_subscription WHERE subname = $1 AND pid IS NOT NULL",
                        &[&name],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("pg_stat_subscription: {e:?}"))
                    .get(0);
                if running == 0 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "apply worker of {name} still running 30 s after DISABLE"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Enables or disables every subscription of the mesh.
    pub async fn set_all_subscriptions(&self, enabled: bool) {
        for s in 0..self.node_count() {
            self.set_subscriptions_of(s, enabled).await;
        }
    }

    /// Enables or disables every subscription on node `subscriber`.
    pub async fn set_subscriptions_of(&self, subscriber: usize, enabled: bool) {
        for p in 0..self.node_count() {
            if p != subscriber {
                self.set_subscription(subscriber, p, enabled).await;
            }
        }
    }

    /// Waits until every node has applied everything every other node committed before the
    /// call: each node bumps its row in the sync table and waits for the others to see it.
    /// Changes from one origin are applied in commit order, so seeing the marker is enough.
    pub async fn wait_for_catch_up(&self, timeout: Duration) {
        let round = self
            .sync_round
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let sync = quote_ident(SYNC_TABLE);
        let deadline = Instant::now() + timeout;
        let mut clients = Vec::new();
        for i in 0..self.node_count() {
            clients.push(self.cluster.client(i).await);
        }
        for (i, client) in clients.iter().enumerate() {
            let name = &self.cluster.nodes[i].name;
            client
                .execute(
                    &format!(
                        "INSERT INTO {sync} (node, n) VALUES ($1, $2) \
                         ON CONFLICT (node) DO UPDATE SET n = excluded.n"
                    ),
                    &[name, &round],
                )
                .await
                .unwrap_or_else(|e| panic!("sync marker on {name}: {e:?}"));
        }
        for (i, client) in clients.iter().enumerate() {
            loop {
                let seen: i64 = client
                    .query_one(
                        &format!("SELECT count(*) FROM {sync} WHERE n >= $1"),
                        &[&round],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("reading sync markers: {e:?}"))
                    .get(0);
                if seen as usize == self.node_count() {
                    break;
                }
                if Instant::now() > deadline {
                    let errors = self.apply_errors().await;
                    panic!(
                        "{} saw {seen} of {} sync markers after {timeout:?}; apply errors: {errors:?}\n\
                         server log tail:\n{}",
                        self.cluster.nodes[i].name,
                        self.node_count(),
                        log_tail(&self.cluster.server_log(i), 40)
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// `apply_error_count` of every subscription, as (subscription, count).
    pub async fn apply_errors(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for i in 0..self.node_count() {
            let client = self.cluster.client(i).await;
            let rows = client
                .query(
                    "SELECT subname::text, apply_error_count FROM pg_stat_subscription_stats ORDER BY 1",
                    &[],
                )
                .await
                .unwrap_or_else(|e| panic!("pg_stat_subscription_stats: {e:?}"));
            for row in rows {
                out.push((row.get(0), row.get(1)));
            }
        }
        out
    }

    pub async fn assert_no_apply_errors(&self) {
        let errors: Vec<(String, i64)> = self
            .apply_errors()
            .await
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        if !errors.is_empty() {
            let logs: Vec<String> = (0..self.node_count())
                .map(|i| {
                    format!(
                        "--- {} ---\n{}",
                        self.cluster.nodes[i].name,
                        apply_error_lines(&self.cluster.server_log(i), 5)
                    )
                })
                .collect();
            panic!("apply errors: {errors:?}\n{}", logs.join("\n"));
        }
    }

    /// Every row of `table` on node `node`, as text in key order, with session settings
    /// fixed so that the same rows print the same on every node.
    pub async fn rows(&self, node: usize, table: &TableConfig) -> Vec<String> {
        let client = self.cluster.client(node).await;
        stable_session(&client).await;
        let sql = format!(
            "SELECT t::text FROM {} AS t ORDER BY {}",
            quote_qualified(&table.schema, &table.name),
            table
                .primary_key
                .iter()
                .map(|c| format!("t.{}", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        client
            .query(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// md5 of all rows of `table` on `node` in key order, and the row count.
    pub async fn checksum(&self, node: usize, table: &TableConfig) -> (String, i64) {
        let client = self.cluster.client(node).await;
        stable_session(&client).await;
        let sql = format!(
            "SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY {}), '')), count(*) FROM {} AS t",
            table
                .primary_key
                .iter()
                .map(|c| format!("t.{}", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", "),
            quote_qualified(&table.schema, &table.name)
        );
        let row = client
            .query_one(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        (row.get(0), row.get(1))
    }

    /// Asserts every configured table holds the same rows on every node; on a mismatch the
    /// message shows the rows that differ.
    pub async fn assert_converged(&self) {
        for table in &self.tables {
            let mut sums = Vec::new();
            for i in 0..self.node_count() {
                sums.push(self.checksum(i, table).await);
            }
            if sums.iter().all(|s| *s == sums[0]) {
                continue;
            }
            let mut report = format!("{} diverged: {sums:?}\n", table.name);
            let first = self.rows(0, table).await;
            for i in 1..self.node_count() {
                let other = self.rows(i, table).await;
                for r in first.iter().filter(|r| !other.contains(r)).take(10) {
                    report.push_str(&format!("  only on n1 (vs n{}): {r}\n", i + 1));
                }
                for r in other.iter().filter(|r| !first.contains(r)).take(10) {
                    report.push_str(&format!("  only on n{}: {r}\n", i + 1));
                }
            }
            panic!("{report}");
        }
    }

    /// Rows in the change log on any node (it must stay empty: the origin deletes its rows
    /// at once and receivers never store them).
    pub async fn change_log_rows(&self) -> i64 {
        let mut total = 0;
        for i in 0..self.node_count() {
            let client = self.cluster.client(i).await;
            let n: i64 = client
                .query_one("SELECT count(*) FROM _pgconverge.changes", &[])
                .await
                .unwrap_or_else(|e| panic!("counting _pgconverge.changes: {e:?}"))
                .get(0);
            total += n;
        }
        total
    }

    /// Conflict-ledger entries of `kind` on node `node`.
    pub async fn ledger_count(&self, node: usize, kind: &str) -> i64 {
        let client = self.cluster.client(node).await;
        client
            .query_one(
                "SELECT count(*) FROM _pgconverge.conflicts WHERE kind = $1",
                &[&kind],
            )
            .await
            .unwrap_or_else(|e| panic!("reading the conflict ledger: {e:?}"))
            .get(0)
    }
}

/// Session settings under which a row prints the same on every node.
pub async fn stable_session(client: &Client) {
    client
        .batch_execute(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
             SET extra_float_digits = 1; SET bytea_output = 'hex'",
        )
        .await
        .unwrap_or_else(|e| panic!("session settings: {e:?}"));
}

/// The last `max` errors raised in apply workers (an ERROR followed by the apply context),
/// from a server log.
pub fn apply_error_lines(log: &str, max: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let mut found = Vec::new();
    let mut last_error = None;
    for (i, line) in lines.iter().enumerate() {
        if line.contains(" ERROR: ") {
            last_error = Some(i);
        }
        if line.contains("processing remote data") {
            if let Some(start) = last_error.take() {
                found.push(lines[start..=i].join("\n"));
            }
        }
    }
    found[found.len().saturating_sub(max)..].join("\n")
}

pub fn log_tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Every row of `public.<table>` on node `node` (0-based) as canonical JSON (keys sorted, so
/// nodes whose columns are in another order compare equal), ordered by `id`.
pub async fn rows_as_json(cluster: &TestCluster, node: usize, table: &str) -> Vec<String> {
    let client = cluster.client(node).await;
    stable_session(&client).await;
    let sql = format!(
        "SELECT pg_catalog.to_jsonb(t)::text FROM {} AS t ORDER BY id",
        quote_qualified("public", table)
    );
    client
        .query(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("reading {table} on node {node}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Waits until `public.<table>` holds the same rows on every node and returns them; past
/// `deadline`, fails showing what differs from node 0.
pub async fn wait_until_identical(
    cluster: &TestCluster,
    table: &str,
    deadline: Instant,
) -> Vec<String> {
    loop {
        let first = rows_as_json(cluster, 0, table).await;
        let mut report = String::new();
        for node in 1..cluster.nodes.len() {
            let other = rows_as_json(cluster, node, table).await;
            if other != first {
                let a: std::collections::BTreeSet<&String> = first.iter().collect();
                let b: std::collections::BTreeSet<&String> = other.iter().collect();
                let only_first: Vec<&&String> = a.difference(&b).take(5).collect();
                let only_other: Vec<&&String> = b.difference(&a).take(5).collect();
                report.push_str(&format!(
                    "node {node}: {} rows against {}; only on node 0: {only_first:?}; only on node {node}: {only_other:?}\n",
                    other.len(),
                    first.len()
                ));
            }
        }
        if report.is_empty() {
            return first;
        }
        assert!(
            Instant::now() < deadline,
            "{table} differs between nodes after writes stopped:\n{report}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Apply errors counted by every subscription of node `node`, with the server log's last ones.
pub async fn apply_error_count(cluster: &TestCluster, node: usize) -> (i64, String) {
    let count = cluster
        .client(node)
        .await
        .query_one(
            "SELECT coalesce(sum(apply_error_count), 0)::int8 FROM pg_stat_subscription_stats",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("subscription stats on node {node}: {e}"))
        .get(0);
    (count, apply_error_lines(&cluster.server_log(node), 5))
}

/// Whether a planned change (an entry of `plan --json`'s `changes`) only adds pgconverge's
/// own machinery to an existing database: its schema and tables, its reserved columns,
/// functions and triggers, a partition's TRUNCATE refusal, the publication, slots,
/// subscriptions, membership, and the key slot that bounds the existing sequences.
pub fn is_pgconverge_addition(change: &serde_json::Value) -> bool {
    let kind = change["kind"].as_str().unwrap_or_default();
    let name = change["name"].as_str().unwrap_or_default();
    let created = change["actions"] == serde_json::json!(["create"]);
    match kind {
        "schema" => name == "_pgconverge",
        "table" => name.starts_with("_pgconverge."),
        "column" => created && (name.ends_with("._pgc_version") || name.ends_with("._pgc_origin")),
        "trigger" => {
            created
                && (name.starts_with("_pgconverge.")
                    || name
                        .rsplit('.')
                        .next()
                        .is_some_and(|t| t.starts_with("_pgc_")))
        }
        "function" => created && name.starts_with("_pgconverge."),
        "partition" => change["actions"] == serde_json::json!(["update"]),
        "publication" | "slot" | "subscription" | "membership" | "key slot" => true,
        _ => false,
    }
}
