//! `pg_hba.conf` lines for every node: each accepts its peers' subscriptions (logical
//! replication connects to the database, so a database line), plus a `replication` line for
//! physical tools (a base backup of a node). Addresses are written as PostgreSQL accepts
//! them: an IP address with its full-length CIDR mask (`/32`, `/128`), a host name as it is —
//! `hostname/32` is refused by the server.
//!
//! A peer whose subscriptions certainly use TLS (`subscription_tls`: `require` or a verifying
//! mode) gets `hostssl` lines, so the node refuses them in clear text; with `auth:
//! certificate` its method is `cert`, and with a client certificate beside a password the
//! certificate is demanded as well (`clientcert=verify-full`).

use pgconverge_model::config::SubscriptionAuth;
use pgconverge_model::{ClusterConfig, NodeConfig};
use pgconverge_sql::{hba_address, quote_hba_name};
use std::fmt::Write;

/// Authentication methods a generated line may name.
pub const AUTH_METHODS: &[&str] = &[
    "scram-sha-256",
    "md5",
    "password",
    "trust",
    "cert",
    "reject",
];

/// The lines for every node of `config` (or only `only`, when given), each block headed by
/// the node it belongs to.
pub fn render(config: &ClusterConfig, only: Option<&str>, auth_method: &str) -> String {
    let mut out = String::from(
        "# pg_hba.conf lines written by `pgconverge generate hba`: each node accepts its\n\
         # peers' subscriptions. Add a line for the host pgconverge itself runs from.\n",
    );
    for node in config
        .nodes
        .iter()
        .filter(|n| only.is_none_or(|o| o == n.name))
    {
        let _ = writeln!(
            out,
            "\n# on node {} ({}:{})",
            node.name,
            node.host,
            node.port()
        );
        let _ = writeln!(out, "# TYPE  DATABASE     USER  ADDRESS  METHOD");
        for peer in config.nodes.iter().filter(|p| p.name != node.name) {
            let address = hba_address(peer.peer_host());
            let _ = writeln!(out, "# from {}", peer.name);
            let (kind, method) = connection_rule(node, peer, auth_method);
            for database in [Database::Named(&node.db), Database::Replication] {
                let _ = writeln!(
                    out,
                    "{}",
                    hba_line(kind, database, &node.user, &address, &method)
                );
            }
        }
    }
    out
}

/// The DATABASE field of a line.
enum Database<'a> {
    Named(&'a str),
    /// The `replication` keyword: physical replication connections.
    Replication,
}

/// The connection type and method of `peer`'s subscription to `node`, as `peer`'s
/// `subscription_tls` makes it connect.
fn connection_rule(
    node: &NodeConfig,
    peer: &NodeConfig,
    auth_method: &str,
) -> (&'static str, String) {
    let tls = peer.subscription_tls();
    let mode = tls
        .sslmode
        .as_deref()
        .or(node.sslmode.as_deref())
        .unwrap_or("prefer");
    let encrypted = matches!(mode, "require" | "verify-ca" | "verify-full");
    let kind = if encrypted { "hostssl" } else { "host   " };
    let method = match (tls.auth(), &tls.sslcert) {
        (SubscriptionAuth::Certificate, _) if encrypted => "cert".to_string(),
        (SubscriptionAuth::Password, Some(_)) if encrypted && auth_method != "cert" => {
            format!("{auth_method} clientcert=verify-full")
        }
        _ => auth_method.to_string(),
    };
    (kind, method)
}

/// One `host` or `hostssl` line.
fn hba_line(kind: &str, database: Database<'_>, user: &str, address: &str, method: &str) -> String {
    let database = match database {
        Database::Named(name) => quote_hba_name(name),
        Database::Replication => "replication".to_string(),
    };
    format!(
        "{kind} {database}  {}  {address}  {method}",
        quote_hba_name(user)
    )
}

/// Whether `config` names node `name`.
pub fn has_node(config: &ClusterConfig, name: &str) -> bool {
    config.nodes.iter().any(|n: &NodeConfig| n.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_accepts_each_peer_for_its_database_and_replication() {
        let config: ClusterConfig = serde_json::from_value(serde_json::json!({
            "nodes": [
                {"name": "n1", "host": "bastion", "port": 6432, "peer_host": "10.0.0.1",
                 "db": "app", "user": "repl"},
                {"name": "n2", "host": "db2.internal", "db": "app", "user": "repl"}
            ],
            "tables": []
        }))
        .expect("config");
        let text = render(&config, None, "scram-sha-256");
        assert!(text.contains("# on node n1 (bastion:6432)\n"), "{text}");
        assert!(
            text.contains("host    app  repl  db2.internal  scram-sha-256\n"),
            "{text}"
        );
        assert!(
            text.contains("host    app  repl  10.0.0.1/32  scram-sha-256\n"),
            "{text}"
        );
        assert!(text.contains("host    replication  repl  10.0.0.1/32  scram-sha-256\n"));
        assert!(!text.contains("db2.internal/32"));
        let only = render(&config, Some("n2"), "md5");
        assert!(!only.contains("# on node n1"));
        assert!(only.contains("host    app  repl  10.0.0.1/32  md5"));
    }

    #[test]
    fn subscriptions_over_tls_get_hostssl_lines_and_certificates_their_method() {
        let config: ClusterConfig = serde_json::from_value(serde_json::json!({
            "nodes": [
                {"name": "n1", "host": "10.0.0.1", "db": "app", "user": "repl",
                 "subscription_tls": {"sslmode": "verify-full", "sslrootcert": "/ca",
                   "sslcert": "/c", "sslkey": "/k", "auth": "certificate"}},
                {"name": "n2", "host": "10.0.0.2", "db": "app", "user": "repl",
                 "subscription_tls": {"sslmode": "verify-full", "sslrootcert": "/ca",
                   "sslcert": "/c", "sslkey": "/k"}},
                {"name": "n3", "host": "10.0.0.3", "db": "app", "user": "repl"}
            ],
            "tables": []
        }))
        .expect("config");
        let text = render(&config, Some("n3"), "scram-sha-256");
        assert!(
            text.contains("hostssl app  repl  10.0.0.1/32  cert\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "hostssl replication  repl  10.0.0.2/32  scram-sha-256 clientcert=verify-full\n"
            ),
            "{text}"
        );
        let on_n1 = render(&config, Some("n1"), "scram-sha-256");
        assert!(
            on_n1.contains("host    app  repl  10.0.0.3/32  scram-sha-256\n"),
            "{on_n1}"
        );
    }
}
