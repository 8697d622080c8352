//! Membership: the table that records that a node has joined the mesh, the rule for who is a
//! member, and the change that makes a configured node one (with a bootstrap copy when the
//! mesh already holds data).

use pgconverge_model::catalog::{NodeCatalog, QualifiedName};
use pgconverge_model::naming::{subscription_name, INTERNAL_SCHEMA, MEMBERSHIP_TABLE};
use pgconverge_model::{ClusterConfig, ObjectAddress};

use super::bootstrap::{bootstrap_change, merges_rows};
use super::{tables_holding_rows, LifecycleInput};
use crate::change::{Action, Change};
use crate::conflict::InternalTable;
use crate::desired::DesiredNode;
use crate::prereq::Blocker;
use crate::statement::Statement;
use pgconverge_sql::{quote_literal, quote_qualified};

/// `_pgconverge.membership`: one row, the node's own, written in the transaction that
/// finishes its join. Not replicated.
pub fn membership_table() -> InternalTable {
    let table = quote_qualified(INTERNAL_SCHEMA, MEMBERSHIP_TABLE);
    InternalTable {
        name: QualifiedName::new(INTERNAL_SCHEMA, MEMBERSHIP_TABLE),
        create_sql: vec![format!(
            "CREATE TABLE IF NOT EXISTS {table} (\n  \
             node text PRIMARY KEY,\n  \
             donor text,\n  \
             joined_at timestamptz NOT NULL DEFAULT now()\n)"
        )],
        columns: vec![
            ("node".into(), "text".into()),
            ("donor".into(), "text".into()),
            ("joined_at".into(), "timestamp with time zone".into()),
        ],
    }
}

/// Whether `node` is already a member: it holds its membership record, or (a mesh set up
/// before membership was recorded) it already subscribes to one of the configured nodes. A
/// node whose join was interrupted before its copy committed has neither, so its join starts
/// again.
pub fn is_member(node: &str, catalog: &NodeCatalog, config: &ClusterConfig) -> bool {
    if catalog.membership.as_ref().is_some_and(|m| m.node == node) {
        return true;
    }
    config
        .nodes
        .iter()
        .filter(|peer| peer.name != node)
        .any(|peer| {
            catalog
                .subscriptions
                .contains_key(&subscription_name(node, &peer.name))
        })
}

/// `INSERT` of the node's membership record.
pub(super) fn record_sql(node: &str, donor: Option<&str>) -> String {
    format!(
        "INSERT INTO {} (node, donor) VALUES ({}, {}) ON CONFLICT (node) DO NOTHING",
        quote_qualified(INTERNAL_SCHEMA, MEMBERSHIP_TABLE),
        quote_literal(node),
        donor.map_or_else(|| "NULL".to_string(), quote_literal)
    )
}

/// The change that makes `node` a member, if it is not one yet: a bootstrap from a donor
/// when other nodes are members, or the bare record when none is (a new mesh, nothing to
/// copy). A database that records another node's membership (a copy of that node) is refused.
pub(super) fn join_change(
    input: &LifecycleInput<'_>,
    node: &DesiredNode,
    observed: &NodeCatalog,
    members: &[&str],
) -> Result<Option<Change>, Blocker> {
    if let Some(recorded) = &observed.membership {
        if recorded.node != node.name {
            return Err(Blocker {
                node: node.name.clone(),
                setting: "membership".into(),
                current: format!("this database records membership as node {}", recorded.node),
                required: format!("no record, or one for {}", node.name),
                fix: format!(
                    "this database looks like a copy of node {}: point {} at an empty database",
                    recorded.node, node.name
                ),
            });
        }
        return Ok(None);
    }
    if is_member(&node.name, observed, input.config) {
        return Ok(Some(bare_join(
            node,
            "already replicating; records its membership",
        )));
    }
    let peers: Vec<&str> = members
        .iter()
        .copied()
        .filter(|m| *m != node.name)
        .collect();
    if peers.is_empty() {
        return Ok(Some(bare_join(
            node,
            "nothing to copy: no other node has joined the mesh yet",
        )));
    }
    let holding = tables_holding_rows(input, &node.name);
    if !holding.is_empty() && !merges_rows(input, node) {
        return Err(Blocker {
            node: node.name.clone(),
            setting: "rows before joining".into(),
            current: format!("holds rows in {}", holding.join(", ")),
            required: "empty replicated tables: a join copies the mesh's rows into them".into(),
            fix: format!(
                "empty those tables on {node} (or point it at an empty database), or set \"merge_rows\": true on {node} to merge its rows into the mesh's (docs/adopting.md)",
                node = node.name
            ),
        });
    }
    bootstrap_change(input, node, &peers).map(Some)
}

/// A join that copies nothing: the record alone.
pub(super) fn bare_join(node: &DesiredNode, reason: &str) -> Change {
    let address = ObjectAddress::Membership {
        node: node.name.clone(),
    };
    let record = Statement::sql(record_sql(&node.name, None));
    let mut change = Change::new(&node.name, address, Action::Create, vec![record]);
    change.reason = Some(reason.to_string());
    change
}
