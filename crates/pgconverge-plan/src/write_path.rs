//! What the forwarding write path refuses to plan, as blockers: switching a cluster's write
//! path, and, once its mesh runs, any change that alters what is replicated or who replicates.
//! The prototype has no coordinated schema change (the change log's gate) and no join or
//! drain procedure of its own, so such a plan stops before any node is touched.

use std::collections::BTreeMap;

use pgconverge_model::catalog::NodeCatalog;
use pgconverge_model::config::{ClusterConfig, WritePath};
use pgconverge_model::naming::INTERNAL_SCHEMA;

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::conflict::naming::{internal, CHANGES_TABLE, FORWARDING_TOMBSTONES_TABLE};
use crate::prereq::Blocker;

/// The blockers of `changes` on a cluster whose config chooses `write_path`.
pub fn blockers(
    config: &ClusterConfig,
    observed: &BTreeMap<String, NodeCatalog>,
    changes: &[Change],
) -> Vec<Blocker> {
    let wanted = config.replication.write_path;
    let mut blockers: Vec<Blocker> = observed
        .iter()
        .filter_map(|(node, catalog)| {
            let live = live_write_path(catalog)?;
            (live != wanted).then(|| Blocker {
                node: node.clone(),
                setting: "replication.write_path".into(),
                current: live.as_str().into(),
                required: wanted.as_str().into(),
                fix: format!(
                    "keep \"write_path\": \"{}\": a cluster's write path cannot change once its tables are managed",
                    live.as_str()
                ),
            })
        })
        .collect();
    if wanted != WritePath::Forwarding || !blockers.is_empty() {
        return blockers;
    }
    blockers.extend(changes.iter().filter(|c| c.lifecycle.is_some()).map(|c| Blocker {
        node: c.node.clone(),
        setting: c.address.to_string(),
        current: "a join that copies rows, or a drain".into(),
        required: "nodes that start empty together".into(),
        fix: "the forwarding write path has no join copy or drain procedure: start every node empty, or use \"write_path\": \"change_log\"".into(),
    }));
    let running = observed.values().any(|c| !c.subscriptions.is_empty());
    if !running {
        return blockers;
    }
    blockers.extend(
        changes
            .iter()
            .filter(|c| alters_replication(c))
            .map(|c| Blocker {
                node: c.node.clone(),
                setting: c.address.to_string(),
                current: "a running forwarding mesh".into(),
                required: "no change to replicated tables or membership".into(),
                fix: "the forwarding write path coordinates no schema change and no join: use \"write_path\": \"change_log\" for a cluster that changes".into(),
            }),
    );
    blockers
}

/// Which write path a node's pgconverge objects belong to, if it has any.
fn live_write_path(catalog: &NodeCatalog) -> Option<WritePath> {
    if catalog.tables.contains_key(&internal(CHANGES_TABLE)) {
        Some(WritePath::ChangeLog)
    } else if catalog
        .tables
        .contains_key(&internal(FORWARDING_TOMBSTONES_TABLE))
    {
        Some(WritePath::Forwarding)
    } else {
        None
    }
}

/// Changes that would change what a running mesh replicates, or which nodes take part.
fn alters_replication(change: &Change) -> bool {
    match &change.address {
        ObjectAddress::Table { table } | ObjectAddress::Column { table, .. } => {
            table.schema != INTERNAL_SCHEMA
        }
        ObjectAddress::Constraint { .. }
        | ObjectAddress::ReplicaIdentity { .. }
        | ObjectAddress::Partition { .. }
        | ObjectAddress::Publication { .. }
        | ObjectAddress::Membership { .. } => true,
        ObjectAddress::Subscription { .. } => change.action == Action::Delete,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use pgconverge_model::catalog::{QualifiedName, SubscriptionCatalog, TableCatalog};

    use super::*;

    fn config(write_path: &str) -> ClusterConfig {
        serde_json::from_value(serde_json::json!({
            "nodes": [{"name": "a", "host": "127.0.0.1", "db": "app", "user": "u"}],
            "tables": [],
            "replication": {"write_path": write_path},
        }))
        .expect("config")
    }

    fn node(internal_table: Option<&str>, subscribed: bool) -> BTreeMap<String, NodeCatalog> {
        let mut catalog = NodeCatalog::default();
        if let Some(t) = internal_table {
            catalog.tables.insert(internal(t), TableCatalog::default());
        }
        if subscribed {
            catalog.subscriptions.insert(
                "pgc_a_from_b".into(),
                SubscriptionCatalog {
                    conninfo_redacted: String::new(),
                    conninfo_sha256: String::new(),
                    publications: vec!["pgc_pub_b".into()],
                    enabled: true,
                    origin: "any".into(),
                    slot_name: Some("pgc_a_from_b".into()),
                    owner: String::new(),
                },
            );
        }
        BTreeMap::from([("a".to_string(), catalog)])
    }

    fn add_column() -> Change {
        Change::new(
            "a",
            ObjectAddress::Column {
                table: QualifiedName::new("public", "t"),
                column: "note".into(),
            },
            Action::Create,
            Vec::new(),
        )
    }

    #[test]
    fn a_switch_of_write_path_is_refused_both_ways() {
        let to_forwarding = blockers(&config("forwarding"), &node(Some(CHANGES_TABLE), true), &[]);
        assert_eq!(to_forwarding.len(), 1, "{to_forwarding:?}");
        assert_eq!(to_forwarding[0].current, "change_log");
        let to_change_log = blockers(
            &config("change_log"),
            &node(Some(FORWARDING_TOMBSTONES_TABLE), false),
            &[],
        );
        assert_eq!(to_change_log.len(), 1, "{to_change_log:?}");
        assert!(blockers(&config("change_log"), &node(Some(CHANGES_TABLE), true), &[]).is_empty());
    }

    #[test]
    fn a_running_forwarding_mesh_refuses_table_changes_and_a_new_one_takes_them() {
        let changes = [add_column()];
        let running = node(Some(FORWARDING_TOMBSTONES_TABLE), true);
        let refused = blockers(&config("forwarding"), &running, &changes);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].setting, changes[0].address.to_string());
        let new = node(Some(FORWARDING_TOMBSTONES_TABLE), false);
        assert!(blockers(&config("forwarding"), &new, &changes).is_empty());
        // The change log's gate coordinates the same change.
        let change_log = node(Some(CHANGES_TABLE), true);
        assert!(blockers(&config("change_log"), &change_log, &changes).is_empty());
    }
}
