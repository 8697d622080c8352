//! `pg_hba.conf` lines for every node: each accepts its peers' subscriptions (logical
//! replication connects to the database, so a database line), plus a `replication` line for
//! physical tools (a base backup of a node). Addresses are written as PostgreSQL accepts
//! them: an IP address with its full-length CIDR mask (`/32`, `/128`), a host name as it is —
//! `hostname/32` is refused by the server.

use std::fmt::Write;
use std::net::IpAddr;

use pgconverge_model::{ClusterConfig, NodeConfig};

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
            for database in [node.db.as_str(), "replication"] {
                let _ = writeln!(
                    out,
                    "{}",
                    hba_line(database, &node.user, &address, auth_method)
                );
            }
        }
    }
    out
}

/// One `host` line; names with characters `pg_hba.conf` treats specially are double-quoted.
fn hba_line(database: &str, user: &str, address: &str, method: &str) -> String {
    let database = if database == "replication" {
        // Unquoted it is the keyword for replication connections.
        "replication".to_string()
    } else {
        hba_name(database)
    };
    format!(
        "host    {database}  {}  {address}  {method}",
        hba_name(user)
    )
}

/// A database or role name as `pg_hba.conf` reads it: quoted unless plain (quoting also
/// stops a name like `all` or `replication` from being read as a keyword).
fn hba_name(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !matches!(
            name,
            "all" | "sameuser" | "samerole" | "samegroup" | "replication"
        );
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A peer's address as a `pg_hba.conf` ADDRESS field.
pub fn hba_address(host: &str) -> String {
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(ip)) => format!("{ip}/32"),
        Ok(IpAddr::V6(ip)) => format!("{ip}/128"),
        Err(_) => host.to_string(),
    }
}

/// Whether `config` names node `name`.
pub fn has_node(config: &ClusterConfig, name: &str) -> bool {
    config.nodes.iter().any(|n: &NodeConfig| n.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_cidr_for_ips_and_bare_for_host_names() {
        assert_eq!(hba_address("10.0.1.5"), "10.0.1.5/32");
        assert_eq!(hba_address("::1"), "::1/128");
        assert_eq!(hba_address("[fd00::5]"), "fd00::5/128");
        assert_eq!(hba_address("db2.internal"), "db2.internal");
    }

    #[test]
    fn names_are_quoted_unless_plain() {
        assert_eq!(hba_name("app"), "app");
        assert_eq!(hba_name("all"), "\"all\"");
        assert_eq!(hba_name("My DB"), "\"My DB\"");
        assert_eq!(hba_name("a\"b"), "\"a\"\"b\"");
    }

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
}
