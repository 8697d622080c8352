//! A docker-compose file running the mesh's local nodes in containers: one service per node
//! on the plain PostgreSQL image, started with `postgres -c …` settings sized for the mesh
//! (the same capacity the sandbox gives its servers), a health check, a named volume, its
//! port published on 127.0.0.1 only, and one network the peers reach each other on.
//! Passwords are `${VAR}` references compose fills in from an env file, never values.

use serde_json::{json, Map, Value};

use crate::settings::ReplicationCapacity;

/// The network every service joins.
pub const NETWORK: &str = "pgconverge";

/// Oldest PostgreSQL major the mesh runs on (subscriptions with `origin = none`).
pub const MIN_COMPOSE_MAJOR: u32 = 16;

/// One node as a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeNode {
    /// The node's name: the service name, a host name on the compose network.
    pub name: String,
    /// Published on 127.0.0.1 (where pgconverge connects: the config's `port`).
    pub host_port: u16,
    /// The server listens on it inside the network (where peers connect: `peer_port`).
    pub container_port: u16,
    /// Further names the peers reach it by on the network (its `peer_host`).
    pub aliases: Vec<String>,
    pub db: String,
    /// Created as the image's superuser: it creates subscriptions and replicates.
    pub user: String,
    /// Environment variable holding the password, filled in by compose.
    pub password_variable: String,
}

/// The `-c` settings every server of a mesh of `mesh_size` nodes runs with, listening on
/// `port`: logical WAL and the sandbox's capacity (a slot, a sender and apply workers per
/// peer, room for table syncs and tools).
pub fn server_settings(mesh_size: usize, port: u16) -> Vec<(String, String)> {
    let c = ReplicationCapacity::for_mesh(mesh_size);
    [
        ("port", port.to_string()),
        ("wal_level", "logical".to_string()),
        ("max_replication_slots", c.max_replication_slots.to_string()),
        ("max_wal_senders", c.max_wal_senders.to_string()),
        (
            "max_logical_replication_workers",
            c.max_logical_replication_workers.to_string(),
        ),
        ("max_worker_processes", c.max_worker_processes.to_string()),
        (
            "max_sync_workers_per_subscription",
            c.max_sync_workers_per_subscription.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Where the image keeps its data: 18 moved it to a directory per major under
/// `/var/lib/postgresql`, which is where its volume goes.
fn data_mount(major: u32) -> &'static str {
    if major >= 18 {
        "/var/lib/postgresql"
    } else {
        "/var/lib/postgresql/data"
    }
}

fn volume_name(node: &str) -> String {
    format!("pgdata_{node}")
}

fn service(node: &ComposeNode, major: u32, mesh_size: usize) -> Value {
    let mut command = vec![json!("postgres")];
    for (name, value) in server_settings(mesh_size, node.container_port) {
        command.push(json!("-c"));
        command.push(json!(format!("{name}={value}")));
    }
    let port = node.container_port.to_string();
    let networks = if node.aliases.is_empty() {
        json!([NETWORK])
    } else {
        json!({ NETWORK: { "aliases": node.aliases } })
    };
    json!({
        "image": format!("postgres:{major}"),
        "command": command,
        "environment": {
            "POSTGRES_DB": node.db,
            "POSTGRES_USER": node.user,
            "POSTGRES_PASSWORD": format!(
                "${{{var}:?set {var} in the env file}}",
                var = node.password_variable
            ),
            // psql and pg_isready inside the container find the server without -p.
            "PGPORT": port,
        },
        "ports": [format!("127.0.0.1:{}:{}", node.host_port, node.container_port)],
        "volumes": [format!("{}:{}", volume_name(&node.name), data_mount(major))],
        "networks": networks,
        // Over TCP: during the image's first initialisation the server listens only on its
        // socket, and is not ready for peers yet.
        "healthcheck": {
            "test": ["CMD", "pg_isready", "-h", "127.0.0.1", "-p", port, "-U", node.user, "-d", node.db],
            "interval": "5s",
            "timeout": "5s",
            "retries": 12,
            "start_period": "30s",
        },
        "restart": "unless-stopped",
    })
}

/// The compose file for `nodes` of a mesh of `mesh_size` nodes (external ones count: every
/// node holds a slot for each peer) on PostgreSQL `major`, with a header saying how to run it.
pub fn compose_file(
    nodes: &[ComposeNode],
    mesh_size: usize,
    major: u32,
    env_file: &str,
) -> Result<String, serde_norway::Error> {
    let mut services = Map::new();
    let mut volumes = Map::new();
    for node in nodes {
        services.insert(node.name.clone(), service(node, major, mesh_size));
        volumes.insert(volume_name(&node.name), json!({}));
    }
    let document = json!({
        "services": services,
        "volumes": volumes,
        "networks": { NETWORK: {} },
    });
    let body = serde_norway::to_string(&document)?;
    Ok(format!(
        "# Written by `pgconverge generate compose`: {count} PostgreSQL {major} servers for the\n\
         # mesh, settings sized for {mesh_size} nodes. Passwords come from the env file, never\n\
         # from here:\n\
         #   docker compose --env-file {env_file} up -d --wait\n\
         # then, with the same variables exported, `pgconverge apply`.\n{body}{newline}",
        newline = if body.ends_with('\n') { "" } else { "\n" },
        count = nodes.len(),
    ))
}

/// An env file naming every password variable, with no value: the operator fills them in.
pub fn example_env_file(nodes: &[ComposeNode]) -> String {
    let mut out = String::from(
        "# Passwords of the compose services (and of pgconverge's connections to them).\n\
         # Fill each in; an empty one stops `docker compose up`. Keep this file out of\n\
         # version control.\n",
    );
    for node in nodes {
        out.push_str(&format!("{}=\n", node.password_variable));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, aliases: &[&str]) -> ComposeNode {
        ComposeNode {
            name: name.into(),
            host_port: 54331,
            container_port: 5432,
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            db: "app".into(),
            user: "repl".into(),
            password_variable: format!("PGCONVERGE_{}_PASSWORD", name.to_uppercase()),
        }
    }

    #[test]
    fn the_file_names_variables_and_the_volume_follows_the_image_major() {
        let nodes = [node("n1", &["db1.internal"]), node("n2", &[])];
        let text = compose_file(&nodes, 3, 18, ".env").expect("yaml");
        assert!(
            text.contains("${PGCONVERGE_N1_PASSWORD:?set PGCONVERGE_N1_PASSWORD in the env file}")
        );
        assert!(text.contains("pgdata_n1:/var/lib/postgresql\n"), "{text}");
        let old = compose_file(&nodes, 3, 16, ".env").expect("yaml");
        assert!(old.contains("pgdata_n1:/var/lib/postgresql/data"), "{old}");
        assert!(old.contains("image: postgres:16"), "{old}");
        let env = example_env_file(&nodes);
        assert!(env.contains("\nPGCONVERGE_N2_PASSWORD=\n"), "{env}");
    }

    #[test]
    fn settings_cover_every_peer() {
        let settings = server_settings(5, 5433);
        let get = |name: &str| {
            settings
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse::<u32>().ok())
                .unwrap_or(0)
        };
        assert_eq!(get("port"), 5433);
        assert!(get("max_replication_slots") >= 4);
        assert!(get("max_wal_senders") >= get("max_replication_slots"));
        assert!(get("max_worker_processes") > get("max_logical_replication_workers"));
    }
}
