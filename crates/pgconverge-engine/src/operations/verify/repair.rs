//! `verify --repair`: for each differing key whose winning version the conflict rules
//! choose, that version is re-sent to every node lacking it, as a change merged by the
//! node's own apply trigger (see `repair_change_sql`), and recorded in the node's ledger as
//! kind `repair`. Keys the rules cannot decide are reported and left alone.

use std::collections::BTreeMap;

use pgconverge_plan::conflict::naming::{ORIGIN_COLUMN, VERSION_COLUMN};
use pgconverge_plan::verify::compare::same_everywhere;
use pgconverge_plan::verify::sql::{
    repair_change_sql, repair_ledger_sql, winner_rows_sql, REPAIR_PRELUDE_SQL,
};
use pgconverge_plan::verify::winner::{choose_winner, repair_targets, Verdict, Winner};
use pgconverge_postgres::verify::{resend, text_pairs, Resend};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::{json_value, read_keys, TableWork, KEY_BATCH};
use crate::error::EngineError;

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RepairOutcome {
    /// Keys re-sent and held alike by every node afterwards.
    pub repaired_keys: usize,
    /// Changes sent (one per key and node that lacked the winner).
    pub changes_sent: usize,
    /// Keys re-sent that still differ when read back (written again meanwhile, or the
    /// receiving node's claims decided otherwise); run verify again.
    pub still_differing: usize,
    /// Keys, or a key on one node, left alone, and why.
    pub unrepaired: Vec<UnrepairedKey>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UnrepairedKey {
    pub table: String,
    pub key: serde_json::Value,
    /// The node it could not be sent to; null when no node could.
    pub node: Option<String>,
    pub reason: String,
}

/// A differing key with a winner and the nodes to send it to.
struct Planned<'w> {
    key: &'w String,
    key_row: &'w String,
    winner: Winner,
    targets: Vec<usize>,
}

pub(super) async fn repair(
    clients: &mut [Client],
    names: &[String],
    work: &[TableWork<'_>],
) -> Result<RepairOutcome, EngineError> {
    let mut outcome = RepairOutcome {
        repaired_keys: 0,
        changes_sent: 0,
        still_differing: 0,
        unrepaired: Vec::new(),
    };
    for table in work {
        let planned = plan_table(names, table, &mut outcome.unrepaired);
        if planned.is_empty() {
            continue;
        }
        let rows = winning_rows(clients, names, table, &planned).await?;
        let mut per_node: BTreeMap<usize, Vec<Resend>> = BTreeMap::new();
        let mut sent_keys = Vec::new();
        for p in &planned {
            let row = if p.winner.deleted {
                None
            } else if let Some(row) = rows.get(p.key).filter(|r| carries(r, &p.winner)) {
                Some(row.clone())
            } else {
                outcome.unrepaired.push(UnrepairedKey {
                    table: table.table.label.clone(),
                    key: json_value(p.key),
                    node: None,
                    reason: "the winning row changed while repairing; verify again".to_string(),
                });
                continue;
            };
            sent_keys.push(p.key_row);
            for target in &p.targets {
                per_node.entry(*target).or_default().push(Resend {
                    key_row: p.key_row.clone(),
                    key: p.key.clone(),
                    row: row.clone(),
                    version: p.winner.stamp.version,
                    origin: p.winner.stamp.origin.clone(),
                });
            }
        }
        let ledger = repair_ledger_sql(table.table);
        let change = repair_change_sql(table.table);
        for (node, keys) in per_node {
            let (Some(client), Some(name)) = (clients.get_mut(node), names.get(node)) else {
                continue;
            };
            for batch in keys.chunks(KEY_BATCH) {
                resend(client, REPAIR_PRELUDE_SQL, &ledger, &change, batch)
                    .await
                    .map_err(|error| EngineError::Repair {
                        node: name.clone(),
                        error: Box::new(error),
                    })?;
                outcome.changes_sent += batch.len();
            }
        }
        let after = read_keys(clients, names, table.table, &sent_keys).await?;
        for reads in after.values() {
            if same_everywhere(reads) {
                outcome.repaired_keys += 1;
            } else {
                outcome.still_differing += 1;
            }
        }
    }
    Ok(outcome)
}

/// The winner and targets of each differing key of `table`; what cannot be repaired goes to
/// `unrepaired`.
fn plan_table<'w>(
    names: &[String],
    table: &'w TableWork<'_>,
    unrepaired: &mut Vec<UnrepairedKey>,
) -> Vec<Planned<'w>> {
    let mut planned = Vec::new();
    for (key, (key_row, reads)) in &table.differing {
        let mut skip = |node: Option<usize>, reason: String| {
            unrepaired.push(UnrepairedKey {
                table: table.table.label.clone(),
                key: json_value(key),
                node: node.and_then(|n| names.get(n).cloned()),
                reason,
            });
        };
        let winner = match choose_winner(names, reads) {
            Verdict::Winner(w) => w,
            Verdict::Undecidable(why) => {
                skip(None, why);
                continue;
            }
        };
        let mut targets = Vec::new();
        for (node, target) in repair_targets(names, reads, &winner) {
            match target {
                Ok(()) => targets.push(node),
                Err(why) => skip(Some(node), why),
            }
        }
        if !targets.is_empty() {
            planned.push(Planned {
                key,
                key_row,
                winner,
                targets,
            });
        }
    }
    planned
}

/// The row read is still the winning version (it may have been written again since).
fn carries(row: &str, winner: &Winner) -> bool {
    let Ok(serde_json::Value::Object(row)) = serde_json::from_str::<serde_json::Value>(row) else {
        return false;
    };
    row.get(VERSION_COLUMN).and_then(|v| v.as_i64()) == Some(winner.stamp.version)
        && row.get(ORIGIN_COLUMN).and_then(|o| o.as_str()) == Some(winner.stamp.origin.as_str())
}

/// The whole winning rows, read from the node holding each: canonical key → row JSON.
async fn winning_rows(
    clients: &[Client],
    names: &[String],
    table: &TableWork<'_>,
    planned: &[Planned<'_>],
) -> Result<BTreeMap<String, String>, EngineError> {
    let mut by_node: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for p in planned.iter().filter(|p| !p.winner.deleted) {
        by_node.entry(p.winner.node).or_default().push(p.key_row);
    }
    let sql = winner_rows_sql(table.table);
    let mut rows = BTreeMap::new();
    for (node, key_rows) in by_node {
        let (Some(client), Some(name)) = (clients.get(node), names.get(node)) else {
            continue;
        };
        for batch in key_rows.chunks(KEY_BATCH) {
            let json = format!("[{}]", batch.join(","));
            let read = text_pairs(client, "winning rows", &sql, Some(&json))
                .await
                .map_err(|error| EngineError::VerifyRead {
                    node: name.clone(),
                    error: Box::new(error),
                })?;
            rows.extend(read.into_iter().map(|(key, row, _)| (key, row)));
        }
    }
    Ok(rows)
}
