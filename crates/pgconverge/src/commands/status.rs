//! `pgconverge status`: every node's replication health and the findings derived from it,
//! for people or as versioned JSON; with `--check`, the exit code says how healthy.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use pgconverge_engine::operations::status::{
    ClusterStatus, Finding, Level, NodeHealth, SlotHealth, SubscriptionHealth,
};
use pgconverge_engine::{Cluster, StatusThresholds};
use pgconverge_model::units::describe_bytes;

use crate::cli::{GlobalArgs, StatusArgs};
use crate::config_source::locate_and_load;
use crate::error::{context, CommandError};
use crate::output::use_color;

pub async fn run(global: &GlobalArgs, args: &StatusArgs) -> Result<u8, CommandError> {
    let (_, config) = locate_and_load(global)?;
    let cluster = Cluster::new(config, &global.state)?;
    let thresholds = StatusThresholds {
        max_lag_bytes: args.max_lag_bytes,
        max_lag_seconds: args.max_lag_seconds,
        max_retained_wal_bytes: args.max_retained_wal,
    };
    let status = cluster.status(args.since, thresholds, args.orphans).await;
    if args.json {
        let text = serde_json::to_string_pretty(&status).map_err(context("encoding the status"))?;
        println!("{text}");
    } else {
        print!("{}", render(&status, use_color(global)));
    }
    Ok(match (args.check, status.worst()) {
        (false, _) | (true, None) => 0,
        (true, Some(Level::Error)) => 1,
        (true, Some(Level::Warning)) => 2,
    })
}

/// The human view: per node its subscriptions, slots, conflicts and registers, then the
/// findings.
fn render(status: &ClusterStatus, color: bool) -> String {
    // A subscription's lag is its slot's, on the publisher; slot names are unique in a mesh.
    let slot_lag: BTreeMap<&str, i64> = status
        .nodes
        .iter()
        .filter_map(|n| n.health.as_ref())
        .flat_map(|h| h.slots.iter())
        .filter_map(|s| Some((s.name.as_str(), s.lag_bytes?)))
        .collect();
    let mut out = String::new();
    for node in &status.nodes {
        match &node.health {
            Some(health) => {
                let _ = writeln!(
                    out,
                    "node {}: reachable, PostgreSQL {}",
                    node.node, health.server_version
                );
                render_node(
                    &mut out,
                    health,
                    &slot_lag,
                    status.conflicts_since.as_deref(),
                );
            }
            None => {
                let why = node.error.as_deref().unwrap_or("not read");
                let _ = writeln!(out, "node {}: UNREACHABLE: {why}", node.node);
            }
        }
        out.push('\n');
    }
    render_findings(&mut out, &status.findings, color);
    out
}

fn render_node(
    out: &mut String,
    health: &NodeHealth,
    slot_lag: &BTreeMap<&str, i64>,
    since: Option<&str>,
) {
    for sub in &health.subscriptions {
        let _ = writeln!(out, "  {}", subscription_line(sub, slot_lag));
    }
    for slot in &health.slots {
        let _ = writeln!(out, "  {}", slot_line(slot));
    }
    let since = since.map_or(String::new(), |t| format!(" since {t}"));
    match &health.conflicts {
        None => {
            let _ = writeln!(out, "  conflicts: no ledger");
        }
        Some(counts) if counts.is_empty() => {
            let _ = writeln!(out, "  conflicts{since}: none");
        }
        Some(counts) => {
            let counts: Vec<String> = counts
                .iter()
                .map(|c| format!("{} {}", c.kind, c.count))
                .collect();
            let _ = writeln!(out, "  conflicts{since}: {}", counts.join(", "));
        }
    }
    for orphans in health.orphans.iter().flatten() {
        let _ = writeln!(
            out,
            "  orphans {}({}) -> {}: {} row(s)",
            orphans.table,
            orphans.columns.join(", "),
            orphans.parent_table,
            orphans.orphan_rows
        );
    }
    for register in &health.registers {
        let rows = register
            .estimated_rows
            .map_or("rows not estimated yet".to_string(), |r| {
                format!("~{r} rows")
            });
        let _ = writeln!(
            out,
            "  register {}: {rows}, {}",
            register.table,
            bytes(register.total_bytes)
        );
    }
}

fn subscription_line(sub: &SubscriptionHealth, slot_lag: &BTreeMap<&str, i64>) -> String {
    let state = if sub.enabled { "enabled" } else { "DISABLED" };
    let worker = if sub.worker_running {
        "worker running"
    } else {
        "NO WORKER"
    };
    let lag = slot_lag
        .get(sub.name.as_str())
        .map_or("lag unknown".to_string(), |l| format!("lag {}", bytes(*l)));
    let heard = sub
        .last_message_age_seconds
        .map_or("no message yet".to_string(), |age| {
            format!("last message {age:.0} s ago")
        });
    format!(
        "subscription {}: {state}, {worker}, {lag}, {heard}, errors: apply {} sync {}",
        sub.name, sub.apply_error_count, sub.sync_error_count
    )
}

fn slot_line(slot: &SlotHealth) -> String {
    let active = if slot.active { "active" } else { "inactive" };
    let wal = slot.wal_status.as_deref().unwrap_or("no WAL reserved");
    let retained = slot.retained_wal_bytes.map_or("-".to_string(), bytes);
    let lag = slot
        .lag_bytes
        .map_or(String::new(), |l| format!(", lag {}", bytes(l)));
    format!(
        "slot {} ({}): {active}, wal {wal}, retains {retained}{lag}",
        slot.name, slot.slot_type
    )
}

fn render_findings(out: &mut String, findings: &[Finding], color: bool) {
    if findings.is_empty() {
        out.push_str("healthy: no findings\n");
        return;
    }
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    let warnings = findings.len() - errors;
    let _ = writeln!(out, "{errors} error(s), {warnings} warning(s):");
    for finding in findings {
        let (label, paint) = match finding.level {
            Level::Error => ("error", "\x1b[31m"),
            Level::Warning => ("warning", "\x1b[33m"),
        };
        let label = if color {
            format!("{paint}{label}\x1b[0m")
        } else {
            label.to_string()
        };
        let _ = writeln!(out, "  {label}: {}: {}", finding.node, finding.message);
    }
}

/// Sizes as people read them; a negative difference (a slot ahead of a just-read position)
/// shows as 0.
fn bytes(value: i64) -> String {
    describe_bytes(u64::try_from(value).unwrap_or(0))
}
