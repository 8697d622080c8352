//! `status`: reads every configured node's replication health at once and judges it.
//!
//! Reading is [`Cluster::status`]; judging is [`derive_findings`], a pure function of what
//! was read, the configuration's node names and the thresholds. An unreachable node is a
//! result (and an error finding), not a failure of the operation.

use pgconverge_model::config::WritePath;
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use pgconverge_model::naming::{subscription_name, INTERNAL_SCHEMA};
use pgconverge_plan::conflict::naming::{
    CHANGES_TABLE, CLAIMS_TABLE, CONFLICTS_TABLE, FORWARDING_TOMBSTONES_TABLE, TOMBSTONES_TABLE,
};
use pgconverge_plan::verify::sql::orphan_count_sql;
use pgconverge_plan::verify::verify_tables;
use pgconverge_postgres::status::{read_health_of_nodes, HealthScope, OrphanCheck};
pub use pgconverge_postgres::status::{
    ConflictCount, NodeHealth, OrphanCount, RegisterSize, SlotHealth, SubscriptionHealth,
};
use pgconverge_sql::quote_qualified;
use pgconverge_state::format_rfc3339_utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::context::Cluster;

/// Version of the `status --json` document; incompatible changes bump it.
pub const STATUS_FORMAT_VERSION: u32 = 1;

/// Limits above which a finding is a warning.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatusThresholds {
    /// A slot whose consumer has not confirmed more than this many bytes of WAL.
    pub max_lag_bytes: i64,
    /// A subscription that has heard nothing for longer than this while its publisher has
    /// WAL to send it.
    pub max_lag_seconds: u64,
    /// A slot keeping more than this many bytes of WAL.
    pub max_retained_wal_bytes: i64,
}

impl Default for StatusThresholds {
    fn default() -> Self {
        StatusThresholds {
            max_lag_bytes: 64 << 20,
            max_lag_seconds: 60,
            max_retained_wal_bytes: 1 << 30,
        }
    }
}

/// The cluster's health, as printed by `pgconverge status --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterStatus {
    /// Format version of this document; incompatible changes bump it.
    pub format_version: u32,
    pub pgconverge_version: String,
    /// Conflicts are counted from this time on (RFC 3339 UTC); null counts all of them.
    pub conflicts_since: Option<String>,
    pub thresholds: StatusThresholds,
    /// Every configured node, in configuration order.
    pub nodes: Vec<NodeStatus>,
    /// What needs attention, errors first, then in node order.
    pub findings: Vec<Finding>,
    pub summary: StatusSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeStatus {
    pub node: String,
    pub reachable: bool,
    /// Why the node could not be read, when it could not.
    pub error: Option<String>,
    /// What was read; null when the node could not be read.
    pub health: Option<NodeHealth>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Replication is broken or will break: act now.
    Error,
    /// Replication works but is behind or keeps much WAL: look soon.
    Warning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Unreachable,
    SubscriptionMissing,
    SubscriptionDisabled,
    WorkerNotRunning,
    ApplyErrors,
    SyncErrors,
    OrphanSlot,
    SlotLost,
    SlotLag,
    SubscriptionStale,
    RetainedWal,
    /// Rows breaking a declared foreign key (read only with `status --orphans`).
    OrphanRows,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    pub level: Level,
    pub kind: FindingKind,
    /// The node it was found on.
    pub node: String,
    /// The subscription or slot concerned, if any.
    pub object: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatusSummary {
    pub errors: usize,
    pub warnings: usize,
}

impl ClusterStatus {
    /// The worst level found; `None` when healthy.
    pub fn worst(&self) -> Option<Level> {
        self.findings.iter().map(|f| f.level).min()
    }
}

/// The JSON Schema of [`ClusterStatus`], as kept in `schemas/status.schema.json`.
pub fn status_schema() -> String {
    let schema = schemars::schema_for!(ClusterStatus);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

impl Cluster {
    /// Reads every configured node at once and judges what was read. Conflicts are counted
    /// from `since` on (all when `None`); with `orphans`, the rows breaking each declared
    /// foreign key too (a scan of every referencing table).
    pub async fn status(
        &self,
        since: Option<SystemTime>,
        thresholds: StatusThresholds,
        orphans: bool,
    ) -> ClusterStatus {
        let nodes = self.nodes_with_secrets();
        let registers: &[&str] = match self.config.replication.write_path {
            WritePath::ChangeLog => &[CHANGES_TABLE, TOMBSTONES_TABLE, CLAIMS_TABLE],
            WritePath::Forwarding => &[FORWARDING_TOMBSTONES_TABLE],
        };
        let registers = registers
            .iter()
            .map(|table| quote_qualified(INTERNAL_SCHEMA, table))
            .collect();
        let scope = HealthScope {
            conflicts_table: quote_qualified(INTERNAL_SCHEMA, CONFLICTS_TABLE),
            registers,
            conflicts_since: since,
            orphan_checks: orphans.then(|| orphan_checks(&self.config)),
        };
        let results = read_health_of_nodes(&nodes, &scope).await;
        let statuses: Vec<NodeStatus> = self
            .config
            .nodes
            .iter()
            .zip(results)
            .map(|(node, result)| match result {
                Ok(health) => NodeStatus {
                    node: node.name.clone(),
                    reachable: true,
                    error: None,
                    health: Some(health),
                },
                Err(error) => NodeStatus {
                    node: node.name.clone(),
                    reachable: false,
                    error: Some(error.to_string()),
                    health: None,
                },
            })
            .collect();
        let databases: BTreeMap<String, String> = self
            .config
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.db.clone()))
            .collect();
        let findings = derive_findings(&databases, &statuses, &thresholds);
        ClusterStatus {
            format_version: STATUS_FORMAT_VERSION,
            pgconverge_version: env!("CARGO_PKG_VERSION").to_string(),
            conflicts_since: since.map(format_rfc3339_utc),
            thresholds,
            summary: summarize(&findings),
            nodes: statuses,
            findings,
        }
    }
}

/// Every declared foreign key with the query counting its breaking rows.
fn orphan_checks(config: &pgconverge_model::config::ClusterConfig) -> Vec<OrphanCheck> {
    let mut checks = Vec::new();
    for table in verify_tables(config, &[]).unwrap_or_default() {
        for fk in &table.foreign_keys {
            checks.push(OrphanCheck {
                table: table.label.clone(),
                columns: fk.columns.clone(),
                parent_table: format!("{}.{}", fk.parent.schema, fk.parent.name),
                count_sql: orphan_count_sql(&table, fk),
            });
        }
    }
    checks
}

fn summarize(findings: &[Finding]) -> StatusSummary {
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    StatusSummary {
        errors,
        warnings: findings.len() - errors,
    }
}

/// Judges what was read. `databases` maps every configured node to its database (slots of
/// other databases belong to someone else); `nodes` is what was read of each of them.
pub fn derive_findings(
    databases: &BTreeMap<String, String>,
    nodes: &[NodeStatus],
    thresholds: &StatusThresholds,
) -> Vec<Finding> {
    let names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
    let health: BTreeMap<&str, &NodeHealth> = nodes
        .iter()
        .filter_map(|n| Some((n.node.as_str(), n.health.as_ref()?)))
        .collect();
    let mut findings = Vec::new();
    for node in nodes {
        let Some(read) = &node.health else {
            let why = node.error.as_deref().unwrap_or("not read");
            findings.push(finding(
                Level::Error,
                FindingKind::Unreachable,
                &node.node,
                None,
                format!("node {} is unreachable: {why}", node.node),
            ));
            continue;
        };
        subscription_findings(&node.node, read, &names, &health, thresholds, &mut findings);
        for orphans in read.orphans.iter().flatten().filter(|o| o.orphan_rows > 0) {
            findings.push(finding(
                Level::Warning,
                FindingKind::OrphanRows,
                &node.node,
                Some(&orphans.table),
                format!(
                    "{} row(s) of {} name a missing {} row ({}); see pgconverge verify",
                    orphans.orphan_rows,
                    orphans.table,
                    orphans.parent_table,
                    orphans.columns.join(", ")
                ),
            ));
        }
        let database = databases.get(&node.node).map(String::as_str);
        slot_findings(
            &node.node,
            database,
            read,
            &names,
            thresholds,
            &mut findings,
        );
    }
    // Stable: within a level, node order and then the order found.
    findings.sort_by_key(|f| f.level);
    findings
}

/// Every peer's subscription must exist on `subscriber`, be enabled, have a running worker
/// and no errors; one that hears nothing while its publisher has WAL for it is stale.
fn subscription_findings(
    subscriber: &str,
    read: &NodeHealth,
    names: &[&str],
    health: &BTreeMap<&str, &NodeHealth>,
    thresholds: &StatusThresholds,
    findings: &mut Vec<Finding>,
) {
    for publisher in names.iter().filter(|p| **p != subscriber) {
        let name = subscription_name(subscriber, publisher);
        let mut add = |level, kind, message: String| {
            findings.push(finding(level, kind, subscriber, Some(&name), message));
        };
        let Some(sub) = read.subscriptions.iter().find(|s| s.name == name) else {
            add(
                Level::Error,
                FindingKind::SubscriptionMissing,
                format!("subscription {name} is missing: {subscriber} receives nothing from {publisher}"),
            );
            continue;
        };
        if !sub.enabled {
            add(
                Level::Error,
                FindingKind::SubscriptionDisabled,
                format!("subscription {name} is disabled"),
            );
        } else if !sub.worker_running {
            add(
                Level::Error,
                FindingKind::WorkerNotRunning,
                format!("subscription {name} has no running apply worker"),
            );
        }
        if sub.apply_error_count > 0 {
            add(
                Level::Error,
                FindingKind::ApplyErrors,
                format!(
                    "subscription {name} has {} apply errors",
                    sub.apply_error_count
                ),
            );
        }
        if sub.sync_error_count > 0 {
            add(
                Level::Error,
                FindingKind::SyncErrors,
                format!(
                    "subscription {name} has {} sync errors",
                    sub.sync_error_count
                ),
            );
        }
        let pending = health
            .get(publisher)
            .and_then(|p| p.slots.iter().find(|s| s.name == name))
            .and_then(|slot| slot.lag_bytes)
            .unwrap_or(0);
        let silent = sub.last_message_age_seconds.unwrap_or(0.0);
        if sub.enabled && pending > 0 && silent > thresholds.max_lag_seconds as f64 {
            add(
                Level::Warning,
                FindingKind::SubscriptionStale,
                format!(
                    "subscription {name} heard nothing for {silent:.0} s while {publisher} has {pending} bytes for it"
                ),
            );
        }
    }
}

/// Logical slots of the node's database that no configured subscription uses are orphans;
/// any slot that lost its WAL is broken; lag and retained WAL are checked on every slot.
fn slot_findings(
    publisher: &str,
    database: Option<&str>,
    read: &NodeHealth,
    names: &[&str],
    thresholds: &StatusThresholds,
    findings: &mut Vec<Finding>,
) {
    let desired: BTreeSet<String> = names
        .iter()
        .filter(|s| **s != publisher)
        .map(|subscriber| subscription_name(subscriber, publisher))
        .collect();
    for slot in &read.slots {
        let mut add = |level, kind, message: String| {
            findings.push(finding(level, kind, publisher, Some(&slot.name), message));
        };
        let ours = slot.slot_type == "logical" && slot.database.as_deref() == database;
        if ours && !desired.contains(&slot.name) {
            add(
                Level::Error,
                FindingKind::OrphanSlot,
                format!(
                    "slot {} is used by no configured subscription and keeps WAL",
                    slot.name
                ),
            );
        }
        if slot.wal_status.as_deref() == Some("lost") {
            add(
                Level::Error,
                FindingKind::SlotLost,
                format!(
                    "slot {} lost WAL it needed; its subscriber must be rebuilt",
                    slot.name
                ),
            );
        }
        if let Some(lag) = slot.lag_bytes.filter(|l| *l > thresholds.max_lag_bytes) {
            add(
                Level::Warning,
                FindingKind::SlotLag,
                format!("slot {} is {lag} bytes behind", slot.name),
            );
        }
        if let Some(kept) = slot
            .retained_wal_bytes
            .filter(|r| *r > thresholds.max_retained_wal_bytes)
        {
            add(
                Level::Warning,
                FindingKind::RetainedWal,
                format!("slot {} retains {kept} bytes of WAL", slot.name),
            );
        }
    }
}

fn finding(
    level: Level,
    kind: FindingKind,
    node: &str,
    object: Option<&str>,
    message: String,
) -> Finding {
    Finding {
        level,
        kind,
        node: node.to_string(),
        object: object.map(str::to_string),
        message,
    }
}

#[cfg(test)]
mod tests;
