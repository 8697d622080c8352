//! `verify`: compares every replicated table across all nodes without copying it, reports
//! the keys that differ and the rows that break a declared foreign key, and with `repair`
//! re-sends the winning version of each differing key to the nodes that lack it.
//!
//! Every node is read at once, table by table: bucket digests, then the rows of differing
//! buckets, then the differing keys again after every subscriber has caught up with its
//! publishers (a few rounds), so writes in flight are not reported. What differs and what
//! wins is decided by `pgconverge_plan::verify`; this module runs the reads in order.

use pgconverge_model::config::WritePath;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::future::join_all;
use pgconverge_model::naming::subscription_name;
use pgconverge_plan::verify::compare::{
    differing_buckets, differing_keys, greatest_register, recheck, same_everywhere, BucketDigest,
    KeyRead, Recheck, RowRead,
};
use pgconverge_plan::verify::sql::{
    bucket_count, bucket_digests_sql, bucket_rows_sql, key_reads_sql, orphans_sql,
    table_digest_sql, ESTIMATED_ROWS_SQL, SESSION_SETTINGS_SQL,
};
use pgconverge_plan::verify::winner::{choose_winner, Verdict, Winner};
use pgconverge_plan::verify::{verify_tables, Stamp, VerifyTable};
use pgconverge_postgres::verify::{
    bucket_digests, bucket_rows, estimated_rows, key_rows, open_sessions, text_pairs,
    wait_for_subscribers,
};
use pgconverge_postgres::IntrospectError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::context::Cluster;
use crate::error::{EngineError, NodeFailure};

mod repair;

pub use repair::{RepairOutcome, UnrepairedKey};

/// Version of the `verify --json` document; incompatible changes bump it.
pub const VERIFY_FORMAT_VERSION: u32 = 1;

/// Rounds of catching up and reading differing keys again before a key still being written
/// is given up on as unsettled.
const RECHECK_ROUNDS: usize = 3;
/// Keys read per query when keys are looked up one by one.
const KEY_BATCH: usize = 5000;
/// Orphan rows listed per foreign key and node (all are counted).
const ORPHAN_SAMPLE: u32 = 20;

/// What to verify and how.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Only these tables (`table` or `schema.table`); all when empty.
    pub tables: Vec<String>,
    /// Re-send the winning version of each differing key.
    pub repair: bool,
    /// Differing keys listed per table (all are counted).
    pub max_keys: usize,
    /// How long to wait for subscribers to catch up before each re-check.
    pub catch_up_timeout: Duration,
}

/// The outcome, as printed by `pgconverge verify --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VerifyReport {
    /// Format version of this document; incompatible changes bump it.
    pub format_version: u32,
    pub pgconverge_version: String,
    /// The nodes compared, in configuration order.
    pub nodes: Vec<String>,
    /// Every table verified, in configuration order.
    pub tables: Vec<TableVerdict>,
    /// Rows breaking a declared foreign key, per node, table and key.
    pub orphans: Vec<OrphanFinding>,
    /// What limited the comparison (subscribers not streaming, catch-up timeouts, keys
    /// still being written).
    pub notes: Vec<String>,
    /// What `--repair` did; null without it.
    pub repair: Option<RepairOutcome>,
    pub summary: VerifySummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TableVerdict {
    /// `schema.table`.
    pub table: String,
    /// Every node holds the same rows.
    pub identical: bool,
    /// Rows each node holds, in node order.
    pub rows: Vec<NodeRows>,
    /// Buckets of primary-key hashes compared.
    pub buckets: i64,
    /// Buckets whose digest differed and were read key by key.
    pub differing_buckets: usize,
    /// Keys that still differ after every node caught up.
    pub differing_keys: usize,
    /// Keys written during every re-check, so never compared at rest (not counted as
    /// differing).
    pub unsettled_keys: usize,
    /// The first differing keys (at most `--max-keys`).
    pub keys: Vec<KeyDifference>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeRows {
    pub node: String,
    pub rows: i64,
}

/// A key that differs between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeyDifference {
    /// The primary key as a JSON object (canonical spelling, as in the ledger).
    pub key: serde_json::Value,
    /// How each node holds it, in node order.
    pub nodes: Vec<NodeKey>,
    /// The node holding the winning version by the conflict rules; null when they cannot
    /// choose.
    pub winner: Option<String>,
    /// The winning version is a delete.
    pub winner_deleted: bool,
    /// Why the rules cannot choose, when they cannot.
    pub undecidable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeKey {
    pub node: String,
    pub state: KeyState,
    /// The row's stamp, or the tombstone's when the row is absent (null if neither).
    pub stamp: Option<Stamp>,
    /// It holds the winning version already.
    pub holds_winner: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Present,
    Absent,
}

/// Rows of one table on one node whose foreign key names a parent row that does not exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrphanFinding {
    pub node: String,
    /// The referencing table, `schema.table`.
    pub table: String,
    pub columns: Vec<String>,
    /// The referenced table, `schema.table`.
    pub parent_table: String,
    pub parent_columns: Vec<String>,
    /// How many rows break the key.
    pub count: i64,
    /// The first of them.
    pub rows: Vec<OrphanRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrphanRow {
    /// The referencing row's primary key.
    pub key: serde_json::Value,
    /// The parent key it names, as the parent's columns.
    pub missing_parent: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VerifySummary {
    pub tables: usize,
    pub differing_tables: usize,
    pub differing_keys: usize,
    pub unsettled_keys: usize,
    /// Rows breaking a foreign key, summed over nodes.
    pub orphan_rows: i64,
}

impl VerifyReport {
    /// Every node holds the same rows and none breaks a foreign key.
    pub fn clean(&self) -> bool {
        self.summary.differing_keys == 0 && self.summary.orphan_rows == 0
    }
}

/// The JSON Schema of [`VerifyReport`], as kept in `schemas/verify.schema.json`.
pub fn verify_schema() -> String {
    let schema = schemars::schema_for!(VerifyReport);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// A table being compared: what was read, the keys still to settle and those that differ.
struct TableWork<'a> {
    table: &'a VerifyTable,
    buckets: i64,
    rows: Vec<i64>,
    differing_buckets: usize,
    /// Key → (key row, greatest register seen before the last catch-up).
    candidates: BTreeMap<String, (String, Option<Stamp>)>,
    /// Key → (key row, how each node holds it), once it differs at rest.
    differing: BTreeMap<String, (String, Vec<KeyRead>)>,
}

impl Cluster {
    /// Compares the configured tables (or `options.tables`) on every node; with
    /// `options.repair`, re-sends winners and reports what it did. Fails when a node cannot
    /// be read.
    pub async fn verify(&self, options: &VerifyOptions) -> Result<VerifyReport, EngineError> {
        if options.repair && self.config.replication.write_path == WritePath::Forwarding {
            return Err(EngineError::VerifyInput(
                "--repair re-sends winners through the change log, which the forwarding write path does not have; compare without --repair"
                    .to_string(),
            ));
        }
        let tables =
            verify_tables(&self.config, &options.tables).map_err(EngineError::VerifyInput)?;
        let names: Vec<String> = self.config.nodes.iter().map(|n| n.name.clone()).collect();
        let mut clients = self.open_verify_sessions().await?;
        let mut notes = Vec::new();
        let mut work = Vec::new();
        let sizes = read_all(&clients, &names, |c| {
            let quoted: Vec<String> = tables.iter().map(|t| t.qualified.clone()).collect();
            async move { estimated_rows(c, ESTIMATED_ROWS_SQL, &quoted).await }
        })
        .await?;
        for (i, table) in tables.iter().enumerate() {
            let largest = sizes.iter().filter_map(|s| s.get(i)).max().copied();
            let buckets = bucket_count(largest.unwrap_or(0));
            work.push(compare_table(&clients, &names, table, buckets).await?);
        }
        settle(&clients, &names, &mut work, options, &mut notes).await?;
        let orphans = read_orphans(&clients, &names, &tables).await?;
        let mut report = build_report(&names, &work, orphans, notes, options.max_keys);
        if options.repair {
            let outcome = repair::repair(&mut clients, &names, &work).await?;
            report.repair = Some(outcome);
        }
        Ok(report)
    }

    async fn open_verify_sessions(&self) -> Result<Vec<Client>, EngineError> {
        let nodes = self.nodes_with_secrets();
        let mut clients = Vec::new();
        let mut failures = Vec::new();
        for result in open_sessions(&nodes, SESSION_SETTINGS_SQL).await {
            match result {
                Ok(client) => clients.push(client),
                Err(error) => failures.push(NodeFailure {
                    node: error.node().to_string(),
                    error,
                }),
            }
        }
        if failures.is_empty() {
            Ok(clients)
        } else {
            Err(EngineError::Unreachable { failures })
        }
    }
}

/// Runs `read` on every node at once; the first failure (in node order) fails the whole.
async fn read_all<'c, T, F, Fut>(
    clients: &'c [Client],
    names: &[String],
    read: F,
) -> Result<Vec<T>, EngineError>
where
    F: Fn(&'c Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, IntrospectError>>,
{
    let results = join_all(clients.iter().map(read)).await;
    results
        .into_iter()
        .zip(names)
        .map(|(r, node)| {
            r.map_err(|error| EngineError::VerifyRead {
                node: node.clone(),
                error: Box::new(error),
            })
        })
        .collect()
}

/// Bucket digests from every node, then the rows of the buckets that differ: the keys that
/// are not held alike become candidates.
async fn compare_table<'a>(
    clients: &[Client],
    names: &[String],
    table: &'a VerifyTable,
    buckets: i64,
) -> Result<TableWork<'a>, EngineError> {
    // The whole table first: when every node agrees, no bucket is read.
    let whole = read_digests(clients, names, &table_digest_sql(table)).await?;
    let rows = whole
        .iter()
        .map(|n| n.values().map(|d| d.rows).sum())
        .collect();
    let differing = if differing_buckets(&whole).is_empty() {
        Vec::new()
    } else {
        let per_node = read_digests(clients, names, &bucket_digests_sql(table, buckets)).await?;
        differing_buckets(&per_node)
    };
    let mut candidates = BTreeMap::new();
    if !differing.is_empty() {
        let sql = bucket_rows_sql(table, buckets);
        let read = read_all(clients, names, |c| bucket_rows(c, &sql, &differing)).await?;
        let per_node: Vec<BTreeMap<String, (String, RowRead)>> = read
            .into_iter()
            .map(|rows| {
                rows.into_iter()
                    .map(|r| {
                        let stamp = Stamp {
                            version: r.version,
                            origin: r.origin,
                        };
                        (
                            r.key,
                            (
                                r.key_row,
                                RowRead {
                                    stamp,
                                    hash: r.hash,
                                },
                            ),
                        )
                    })
                    .collect()
            })
            .collect();
        for (key, key_row) in differing_keys(&per_node) {
            candidates.insert(key, (key_row, None));
        }
    }
    Ok(TableWork {
        table,
        buckets,
        rows,
        differing_buckets: differing.len(),
        candidates,
        differing: BTreeMap::new(),
    })
}

/// Digests by bucket from every node.
async fn read_digests(
    clients: &[Client],
    names: &[String],
    sql: &str,
) -> Result<Vec<BTreeMap<i64, BucketDigest>>, EngineError> {
    let digests = read_all(clients, names, |c| bucket_digests(c, sql)).await?;
    Ok(digests
        .iter()
        .map(|rows| {
            rows.iter()
                .map(|(b, rows, digest)| {
                    let digest = BucketDigest {
                        rows: *rows,
                        digest: *digest,
                    };
                    (*b, digest)
                })
                .collect()
        })
        .collect())
}

/// How every node holds each of `keys` (key rows as JSON texts): key → reads in node order.
async fn read_keys(
    clients: &[Client],
    names: &[String],
    table: &VerifyTable,
    keys: &[&String],
) -> Result<BTreeMap<String, Vec<KeyRead>>, EngineError> {
    let sql = key_reads_sql(table);
    let mut out: BTreeMap<String, Vec<KeyRead>> = BTreeMap::new();
    for batch in keys.chunks(KEY_BATCH) {
        let json = format!(
            "[{}]",
            batch
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        let read = read_all(clients, names, |c| key_rows(c, &sql, &json)).await?;
        let per_node: Vec<BTreeMap<String, KeyRead>> = read
            .into_iter()
            .map(|rows| {
                rows.into_iter()
                    .map(|r| (r.key.clone(), key_read(r)))
                    .collect()
            })
            .collect();
        let all: BTreeSet<&String> = per_node.iter().flat_map(|n| n.keys()).collect();
        for key in all {
            let reads = per_node
                .iter()
                .map(|n| {
                    n.get(key).cloned().unwrap_or(KeyRead {
                        row: None,
                        tombstone: None,
                    })
                })
                .collect();
            out.insert(key.clone(), reads);
        }
    }
    Ok(out)
}

fn key_read(row: pgconverge_postgres::verify::KeyRow) -> KeyRead {
    KeyRead {
        row: row.row.map(|(version, origin, hash)| RowRead {
            stamp: Stamp { version, origin },
            hash,
        }),
        tombstone: row
            .tombstone
            .map(|(version, origin)| Stamp { version, origin }),
    }
}

/// Reads the candidates again with their tombstones, then, round by round, once every
/// subscriber has caught up: keys held alike are dropped, keys that still differ at rest are
/// kept as differing, keys written meanwhile are looked at again.
async fn settle(
    clients: &[Client],
    names: &[String],
    work: &mut [TableWork<'_>],
    options: &VerifyOptions,
    notes: &mut Vec<String>,
) -> Result<(), EngineError> {
    for table in work.iter_mut() {
        let reads = read_candidates(clients, names, table).await?;
        for (key, reads) in reads {
            if same_everywhere(&reads) {
                table.candidates.remove(&key);
            } else if let Some(entry) = table.candidates.get_mut(&key) {
                entry.1 = greatest_register(&reads);
            }
        }
    }
    for _ in 0..RECHECK_ROUNDS {
        if work.iter().all(|t| t.candidates.is_empty()) {
            return Ok(());
        }
        catch_up(clients, names, options.catch_up_timeout, notes).await;
        for table in work.iter_mut() {
            let reads = read_candidates(clients, names, table).await?;
            for (key, reads) in reads {
                let Some((key_row, before)) = table.candidates.get(&key).cloned() else {
                    continue;
                };
                match recheck(before.as_ref(), &reads) {
                    Recheck::Identical => {
                        table.candidates.remove(&key);
                    }
                    Recheck::Differs => {
                        table.candidates.remove(&key);
                        table.differing.insert(key, (key_row, reads));
                    }
                    Recheck::Moved(now) => {
                        table.candidates.insert(key, (key_row, Some(now)));
                    }
                }
            }
        }
    }
    let unsettled: usize = work.iter().map(|t| t.candidates.len()).sum();
    if unsettled > 0 {
        notes.push(format!(
            "{unsettled} key(s) were written again during each of {RECHECK_ROUNDS} re-checks and \
             could not be compared at rest; they are not counted as differing"
        ));
    }
    Ok(())
}

async fn read_candidates(
    clients: &[Client],
    names: &[String],
    table: &TableWork<'_>,
) -> Result<BTreeMap<String, Vec<KeyRead>>, EngineError> {
    let rows: Vec<&String> = table.candidates.values().map(|(row, _)| row).collect();
    if rows.is_empty() {
        return Ok(BTreeMap::new());
    }
    read_keys(clients, names, table.table, &rows).await
}

/// Waits, on every node at once, until each subscriber streaming from it has confirmed its
/// current WAL position. What cannot be waited for becomes a note; the re-check goes on.
async fn catch_up(
    clients: &[Client],
    names: &[String],
    timeout: Duration,
    notes: &mut Vec<String>,
) {
    let waits = clients.iter().zip(names).map(|(client, publisher)| {
        let slots: Vec<String> = names
            .iter()
            .filter(|s| *s != publisher)
            .map(|subscriber| subscription_name(subscriber, publisher))
            .collect();
        async move {
            (
                publisher,
                wait_for_subscribers(client, &slots, timeout).await,
            )
        }
    });
    for (publisher, outcome) in join_all(waits).await {
        let note = match outcome {
            Ok(idle) if idle.is_empty() => continue,
            Ok(idle) => format!(
                "on {publisher}, no subscriber streams from slot(s) {}: what they miss is reported as different",
                idle.join(", ")
            ),
            Err(error) => format!("waiting for the subscribers of {publisher}: {error}"),
        };
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
}

/// Rows breaking each declared foreign key, on every node.
async fn read_orphans(
    clients: &[Client],
    names: &[String],
    tables: &[VerifyTable],
) -> Result<Vec<OrphanFinding>, EngineError> {
    let mut findings = Vec::new();
    for table in tables {
        for fk in &table.foreign_keys {
            let sql = orphans_sql(table, fk, ORPHAN_SAMPLE);
            let read =
                read_all(clients, names, |c| text_pairs(c, "orphan rows", &sql, None)).await?;
            for (node, rows) in names.iter().zip(read) {
                let count = rows.first().and_then(|(_, _, c)| *c).unwrap_or(0);
                if count == 0 {
                    continue;
                }
                findings.push(OrphanFinding {
                    node: node.clone(),
                    table: table.label.clone(),
                    columns: fk.columns.clone(),
                    parent_table: format!("{}.{}", fk.parent.schema, fk.parent.name),
                    parent_columns: fk.parent_columns.clone(),
                    count,
                    rows: rows
                        .into_iter()
                        .map(|(key, parent, _)| OrphanRow {
                            key: json_value(&key),
                            missing_parent: json_value(&parent),
                        })
                        .collect(),
                });
            }
        }
    }
    Ok(findings)
}

/// JSON text the server produced, as a value (kept as a string if it does not parse).
pub(crate) fn json_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

fn build_report(
    names: &[String],
    work: &[TableWork<'_>],
    orphans: Vec<OrphanFinding>,
    notes: Vec<String>,
    max_keys: usize,
) -> VerifyReport {
    let tables: Vec<TableVerdict> = work
        .iter()
        .map(|t| TableVerdict {
            table: t.table.label.clone(),
            identical: t.differing.is_empty(),
            rows: names
                .iter()
                .zip(&t.rows)
                .map(|(node, rows)| NodeRows {
                    node: node.clone(),
                    rows: *rows,
                })
                .collect(),
            buckets: t.buckets,
            differing_buckets: t.differing_buckets,
            differing_keys: t.differing.len(),
            unsettled_keys: t.candidates.len(),
            keys: t
                .differing
                .iter()
                .take(max_keys)
                .map(|(key, (_, reads))| key_difference(names, key, reads))
                .collect(),
        })
        .collect();
    let summary = VerifySummary {
        tables: tables.len(),
        differing_tables: tables.iter().filter(|t| !t.identical).count(),
        differing_keys: tables.iter().map(|t| t.differing_keys).sum(),
        unsettled_keys: tables.iter().map(|t| t.unsettled_keys).sum(),
        orphan_rows: orphans.iter().map(|o| o.count).sum(),
    };
    VerifyReport {
        format_version: VERIFY_FORMAT_VERSION,
        pgconverge_version: env!("CARGO_PKG_VERSION").to_string(),
        nodes: names.to_vec(),
        tables,
        orphans,
        notes,
        repair: None,
        summary,
    }
}

fn key_difference(names: &[String], key: &str, reads: &[KeyRead]) -> KeyDifference {
    let verdict = choose_winner(names, reads);
    let winner: Option<&Winner> = match &verdict {
        Verdict::Winner(w) => Some(w),
        Verdict::Undecidable(_) => None,
    };
    let nodes = names
        .iter()
        .zip(reads)
        .map(|(node, read)| NodeKey {
            node: node.clone(),
            state: if read.row.is_some() {
                KeyState::Present
            } else {
                KeyState::Absent
            },
            stamp: read
                .row
                .as_ref()
                .map(|r| r.stamp.clone())
                .or_else(|| read.tombstone.clone()),
            holds_winner: winner
                .is_some_and(|w| pgconverge_plan::verify::winner::holds_winner(read, w)),
        })
        .collect();
    KeyDifference {
        key: json_value(key),
        nodes,
        winner: winner.and_then(|w| names.get(w.node).cloned()),
        winner_deleted: winner.is_some_and(|w| w.deleted),
        undecidable: match verdict {
            Verdict::Undecidable(why) => Some(why),
            Verdict::Winner(_) => None,
        },
    }
}
