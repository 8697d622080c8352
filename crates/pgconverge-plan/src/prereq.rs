//! Prerequisites a node must meet before any step runs: version, replication settings sized
//! for the mesh, and role privileges. Unmet ones stop the plan with the setting to change.

use pgconverge_model::catalog::NodeCatalog;
use serde::{Deserialize, Serialize};

use pgconverge_sql::quote_ident;

/// Oldest supported server: `origin = none` on subscriptions arrived in PostgreSQL 16.
pub const MIN_SERVER_VERSION_NUM: u32 = 160000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    pub node: String,
    /// Setting or property at fault, e.g. `wal_level`.
    pub setting: String,
    pub current: String,
    pub required: String,
    /// What to do about it.
    pub fix: String,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node {}: {}: {} (needs {}); fix: {}",
            self.node, self.setting, self.current, self.required, self.fix
        )
    }
}

/// Checks one node that will take part in a mesh of `mesh_size` nodes.
pub fn check_node(node: &str, catalog: &NodeCatalog, mesh_size: usize) -> Vec<Blocker> {
    let mut blockers = Vec::new();
    let peers = mesh_size.saturating_sub(1) as i64;
    if catalog.server_version_num < MIN_SERVER_VERSION_NUM {
        blockers.push(Blocker {
            node: node.into(),
            setting: "server version".into(),
            current: catalog.server_version.clone(),
            required: "16 or newer".into(),
            fix: "upgrade the server: the mesh needs subscriptions WITH (origin = none), added in PostgreSQL 16".into(),
        });
        return blockers;
    }
    let setting = |name: &str| catalog.settings.get(name).cloned().unwrap_or_default();
    let wal_level = setting("wal_level");
    if wal_level != "logical" {
        blockers.push(Blocker {
            node: node.into(),
            setting: "wal_level".into(),
            current: if wal_level.is_empty() {
                "unknown".into()
            } else {
                wal_level
            },
            required: "logical".into(),
            fix: "ALTER SYSTEM SET wal_level = logical; then restart the server".into(),
        });
    }
    let numeric = |name: &str| setting(name).parse::<i64>().ok();
    // Own slots: one per peer subscribing to this node, plus room for a joining node.
    let foreign_slots = catalog
        .slots
        .keys()
        .filter(|name| !name.starts_with("pgc_"))
        .count() as i64;
    let minimums = [
        ("max_replication_slots", peers + foreign_slots, true),
        ("max_wal_senders", peers, true),
        ("max_logical_replication_workers", peers, true),
        ("max_worker_processes", peers + 1, true),
    ];
    for (name, required, restart) in minimums {
        if peers == 0 {
            break;
        }
        match numeric(name) {
            Some(current) if current >= required => {}
            current => blockers.push(Blocker {
                node: node.into(),
                setting: name.into(),
                current: current.map_or_else(|| "unknown".into(), |c| c.to_string()),
                required: format!("at least {required}"),
                fix: format!(
                    "ALTER SYSTEM SET {name} = {required}{}",
                    if restart {
                        "; then restart the server"
                    } else {
                        ""
                    }
                ),
            }),
        }
    }
    let role = &catalog.role;
    if !role.superuser && !role.create_subscription {
        blockers.push(Blocker {
            node: node.into(),
            setting: format!("role {}", role.name),
            current: "cannot create subscriptions".into(),
            required: "superuser or member of pg_create_subscription".into(),
            fix: format!(
                "GRANT pg_create_subscription TO {}",
                quote_ident(&role.name)
            ),
        });
    }
    if peers > 0 && !role.superuser && !role.replication {
        blockers.push(Blocker {
            node: node.into(),
            setting: format!("role {}", role.name),
            current: "NOREPLICATION".into(),
            required: "REPLICATION, since peers stream changes as this role".into(),
            fix: format!("ALTER ROLE {} REPLICATION", quote_ident(&role.name)),
        });
    }
    blockers
}

/// First server version not known to need a superuser for a subscription without a password.
const PASSWORDLESS_SUBSCRIPTION_KNOWN_UNTIL: u32 = 190000;

/// A node whose subscriptions authenticate by certificate alone must own them as a superuser:
/// PostgreSQL 16 to 18 refuse a subscription without a password to any other owner.
pub fn check_certificate_subscriptions(
    node: &crate::desired::DesiredNode,
    catalog: &NodeCatalog,
) -> Option<Blocker> {
    let passwordless = node
        .subscriptions
        .iter()
        .any(|sub| sub.conninfo.password_of.is_none());
    let role = &catalog.role;
    (passwordless
        && !role.superuser
        && catalog.server_version_num >= MIN_SERVER_VERSION_NUM
        && catalog.server_version_num < PASSWORDLESS_SUBSCRIPTION_KNOWN_UNTIL)
        .then(|| Blocker {
            node: node.name.clone(),
            setting: format!("role {}", role.name),
            current: "not a superuser".into(),
            required:
                "a superuser, since subscription_tls.auth is certificate: PostgreSQL 16 to 18 \
                       refuse a subscription without a password to any other owner"
                    .into(),
            fix: "use auth \"password\" for this node's subscriptions, or a superuser role".into(),
        })
}
