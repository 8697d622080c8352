//! The edge of `verify`: runs the SQL the planner's `verify` module writes on one node and
//! decodes the rows; waits until a publisher's subscribers have caught up; re-sends winning
//! versions in one transaction per node. Nothing here decides what differs or what wins.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use pgconverge_model::NodeConfig;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

use crate::connect::connect;
use crate::credentials::Secret;
use crate::introspect::{get, query, IntrospectError, NodeError};
use crate::lifecycle::{current_wal_lsn, wait_for_confirmed, CatchUpError, Lsn};
use crate::query_error::QueryError;

/// Connects to every node at once and runs `session_sql` on each (the settings under which
/// rows print alike). One result per node, in the order given.
pub async fn open_sessions(
    nodes: &[(NodeConfig, Option<Secret>)],
    session_sql: &str,
) -> Vec<Result<Client, NodeError>> {
    let opens = nodes.iter().map(|(node, password)| async move {
        let client = connect(node, password.as_ref()).await?;
        client
            .batch_execute(session_sql)
            .await
            .map_err(|e| NodeError::Introspect {
                node: node.name.clone(),
                error: IntrospectError {
                    what: "session settings",
                    error: QueryError::from(e),
                },
            })?;
        Ok(client)
    });
    join_all(opens).await
}

/// Estimated rows of each table in `names` (quoted), in order.
pub async fn estimated_rows(
    client: &Client,
    sql: &str,
    names: &[String],
) -> Result<Vec<i64>, IntrospectError> {
    const WHAT: &str = "table sizes";
    let params: [(&(dyn ToSql + Sync), Type); 1] = [(&names, Type::TEXT_ARRAY)];
    let rows = query(client, WHAT, sql, &params).await?;
    rows.iter().map(|row| get(row, 1, WHAT)).collect()
}

/// `(bucket, rows, digest)` of every non-empty bucket.
pub async fn bucket_digests(
    client: &Client,
    sql: &str,
) -> Result<Vec<(i64, i64, i64)>, IntrospectError> {
    const WHAT: &str = "bucket digests";
    let rows = query(client, WHAT, sql, &[]).await?;
    rows.iter()
        .map(|row| Ok((get(row, 0, WHAT)?, get(row, 1, WHAT)?, get(row, 2, WHAT)?)))
        .collect()
}

/// A row of a narrowed bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRow {
    /// Canonical key (jsonb text).
    pub key: String,
    /// The key columns as a JSON object in their ordinary spelling.
    pub key_row: String,
    pub version: i64,
    pub origin: String,
    pub hash: i64,
}

/// The rows of `buckets`.
pub async fn bucket_rows(
    client: &Client,
    sql: &str,
    buckets: &[i64],
) -> Result<Vec<BucketRow>, IntrospectError> {
    const WHAT: &str = "rows of differing buckets";
    let params: [(&(dyn ToSql + Sync), Type); 1] = [(&buckets, Type::INT8_ARRAY)];
    let rows = query(client, WHAT, sql, &params).await?;
    rows.iter()
        .map(|row| {
            Ok(BucketRow {
                key: get(row, 0, WHAT)?,
                key_row: get(row, 1, WHAT)?,
                version: get(row, 2, WHAT)?,
                origin: get(row, 3, WHAT)?,
                hash: get(row, 4, WHAT)?,
            })
        })
        .collect()
}

/// One key as a node holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub key: String,
    pub key_row: String,
    /// The row's stamp and hash; `None` when the node has no row for the key.
    pub row: Option<(i64, String, i64)>,
    /// The key's tombstone stamp, if any.
    pub tombstone: Option<(i64, String)>,
}

/// The keys of `keys_json` (a JSON array of key rows).
pub async fn key_rows(
    client: &Client,
    sql: &str,
    keys_json: &str,
) -> Result<Vec<KeyRow>, IntrospectError> {
    const WHAT: &str = "keys";
    let params: [(&(dyn ToSql + Sync), Type); 1] = [(&keys_json, Type::TEXT)];
    let rows = query(client, WHAT, sql, &params).await?;
    rows.iter()
        .map(|row| {
            let version: Option<i64> = get(row, 2, WHAT)?;
            let origin: Option<String> = get(row, 3, WHAT)?;
            let hash: i64 = get(row, 4, WHAT)?;
            let tomb_version: Option<i64> = get(row, 5, WHAT)?;
            let tomb_origin: Option<String> = get(row, 6, WHAT)?;
            Ok(KeyRow {
                key: get(row, 0, WHAT)?,
                key_row: get(row, 1, WHAT)?,
                row: version.zip(origin).map(|(v, o)| (v, o, hash)),
                tombstone: tomb_version.zip(tomb_origin),
            })
        })
        .collect()
}

/// `(canonical key, first column, count)` rows of a query returning two texts and a
/// count: the whole rows of winners or the orphans of a foreign key.
pub async fn text_pairs(
    client: &Client,
    what: &'static str,
    sql: &str,
    keys_json: Option<&str>,
) -> Result<Vec<(String, String, Option<i64>)>, IntrospectError> {
    let rows = match keys_json {
        Some(keys) => {
            let params: [(&(dyn ToSql + Sync), Type); 1] = [(&keys, Type::TEXT)];
            query(client, what, sql, &params).await?
        }
        None => query(client, what, sql, &[]).await?,
    };
    rows.iter()
        .map(|row| {
            let count = if row.len() > 2 {
                Some(get(row, 2, what)?)
            } else {
                None
            };
            Ok((get(row, 0, what)?, get(row, 1, what)?, count))
        })
        .collect()
}

/// The single `int8` a counting query returns.
pub async fn count(client: &Client, what: &'static str, sql: &str) -> Result<i64, IntrospectError> {
    let rows = query(client, what, sql, &[]).await?;
    match rows.first() {
        Some(row) => get(row, 0, what),
        None => Ok(0),
    }
}

/// The publisher's current WAL position, then, for each slot in `slots` a subscriber is
/// streaming from, a wait until it confirmed that position, all within `timeout`. Slots
/// nobody streams from are returned without waiting (their subscriber is behind until it
/// streams again).
pub async fn wait_for_subscribers(
    publisher: &Client,
    slots: &[String],
    timeout: Duration,
) -> Result<Vec<String>, CatchUpError> {
    let deadline = Instant::now() + timeout;
    let target: Lsn = current_wal_lsn(publisher).await?;
    let active = publisher
        .query(
            "SELECT slot_name::text, active FROM pg_catalog.pg_replication_slots \
             WHERE slot_name = ANY ($1)",
            &[&slots],
        )
        .await
        .map_err(QueryError::from)?;
    let mut streaming_slots = Vec::new();
    for row in &active {
        let name: String = row.try_get(0).map_err(QueryError::from)?;
        let streaming: bool = row.try_get(1).map_err(QueryError::from)?;
        if streaming {
            streaming_slots.push(name);
        }
    }
    let mut idle = Vec::new();
    for slot in slots {
        let streaming = streaming_slots.contains(slot);
        if !streaming {
            idle.push(slot.clone());
            continue;
        }
        // One budget for all of them: a stuck subscriber does not cost the timeout per slot.
        let left = deadline.saturating_duration_since(Instant::now());
        wait_for_confirmed(publisher, slot, target, left, &mut |_| {}).await?;
    }
    Ok(idle)
}

/// One key to re-send: parameters of the planner's repair statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resend {
    pub key_row: String,
    pub key: String,
    /// The winning row as JSON; `None` for a delete.
    pub row: Option<String>,
    pub version: i64,
    pub origin: String,
}

/// Re-sends `keys` on one node in one transaction: `prelude`, then per key the ledger
/// statement and the change statement. All or nothing.
pub async fn resend(
    client: &mut Client,
    prelude: &str,
    ledger_sql: &str,
    change_sql: &str,
    keys: &[Resend],
) -> Result<(), QueryError> {
    let transaction = client.transaction().await?;
    transaction.batch_execute(prelude).await?;
    for key in keys {
        let params: [(&(dyn ToSql + Sync), Type); 5] = [
            (&key.key_row, Type::TEXT),
            (&key.key, Type::TEXT),
            (&key.row, Type::TEXT),
            (&key.version, Type::INT8),
            (&key.origin, Type::TEXT),
        ];
        transaction.query_typed(ledger_sql, &params).await?;
        transaction.query_typed(change_sql, &params).await?;
    }
    transaction.commit().await?;
    Ok(())
}
