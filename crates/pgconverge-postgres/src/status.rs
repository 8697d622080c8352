//! Reads a node's replication health: its subscriptions' workers and error counters, its
//! slots' WAL retention and lag, the conflicts it recorded and the size of pgconverge's
//! registers. One set-based query per kind, pipelined on one connection; nothing is changed.
//!
//! Times are read as ages computed by the server (`now() - t`), so a client whose clock is
//! off does not misjudge them, and as RFC 3339 UTC text for people.

use std::time::SystemTime;

use futures_util::future::join_all;
use pgconverge_model::NodeConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

use crate::connect::connect;
use crate::credentials::Secret;
use crate::introspect::{get, query, IntrospectError, NodeError};
use crate::query_error::QueryError;

/// `server_version_num` of PostgreSQL 17.0: `pg_stat_subscription.worker_type` appears.
const WORKER_TYPE_VERSION_NUM: u32 = 170000;

/// What to read besides the catalogs every node has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthScope {
    /// The conflict ledger, schema-qualified and quoted (`"_pgconverge"."conflicts"`); read
    /// only when it exists.
    pub conflicts_table: String,
    /// Tables whose size is reported when they exist, schema-qualified and quoted.
    pub registers: Vec<String>,
    /// Conflicts recorded at or after this time are counted; all of them when `None`.
    pub conflicts_since: Option<SystemTime>,
    /// Foreign keys whose breaking rows are counted (`status --orphans`); `None` reads none.
    pub orphan_checks: Option<Vec<OrphanCheck>>,
}

/// A declared foreign key and the query counting the rows that break it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanCheck {
    /// The referencing table, `schema.table`.
    pub table: String,
    pub columns: Vec<String>,
    /// The referenced table, `schema.table`.
    pub parent_table: String,
    /// Returns one `int8`: the number of breaking rows.
    pub count_sql: String,
}

/// One node's replication health as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeHealth {
    /// e.g. `18.1`.
    pub server_version: String,
    pub server_version_num: u32,
    /// The subscriptions of the node's database, sorted by name.
    pub subscriptions: Vec<SubscriptionHealth>,
    /// Every replication slot of the server, sorted by name.
    pub slots: Vec<SlotHealth>,
    /// Conflicts recorded since the requested time, by kind; null when the node has no
    /// conflict ledger.
    pub conflicts: Option<Vec<ConflictCount>>,
    /// Size of each register table that exists.
    pub registers: Vec<RegisterSize>,
    /// Rows breaking each declared foreign key, when asked for (`status --orphans`).
    pub orphans: Option<Vec<OrphanCount>>,
}

/// How many rows of a table name a parent row that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrphanCount {
    /// The referencing table, `schema.table`.
    pub table: String,
    /// Its referencing columns.
    pub columns: Vec<String>,
    /// The referenced table, `schema.table`.
    pub parent_table: String,
    pub orphan_rows: i64,
}

/// A subscription and its leader apply worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionHealth {
    pub name: String,
    pub enabled: bool,
    /// Whether its apply worker runs (`pg_stat_subscription.pid` is set).
    pub worker_running: bool,
    /// When the worker last received a message from the publisher, RFC 3339 UTC.
    pub last_message_at: Option<String>,
    /// Seconds since then, as the server's clock sees it.
    pub last_message_age_seconds: Option<f64>,
    /// The last time the worker reported a WAL position back to the publisher, RFC 3339 UTC.
    pub latest_end_at: Option<String>,
    /// Errors while applying changes, since the statistics were last reset.
    pub apply_error_count: i64,
    /// Errors while synchronising tables' initial contents.
    pub sync_error_count: i64,
}

/// A replication slot and the WAL it keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SlotHealth {
    pub name: String,
    /// `logical` or `physical`.
    pub slot_type: String,
    /// The database of a logical slot.
    pub database: Option<String>,
    /// Whether a walsender is streaming from it.
    pub active: bool,
    /// `reserved`, `extended`, `unreserved` or `lost` (null when it reserves no WAL).
    pub wal_status: Option<String>,
    /// WAL kept for this slot: bytes from its restart position to the current position.
    pub retained_wal_bytes: Option<i64>,
    /// WAL the consumer has not confirmed: bytes from its confirmed position to the current
    /// position (logical slots only).
    pub lag_bytes: Option<i64>,
}

/// How many conflicts of one kind were recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConflictCount {
    /// The ledger's `kind`, e.g. `update_update`.
    pub kind: String,
    pub count: i64,
}

/// The size of one register table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegisterSize {
    /// `schema.table`.
    pub table: String,
    /// The planner's row estimate; null when the table was never analysed or vacuumed.
    pub estimated_rows: Option<i64>,
    /// Table, indexes and TOAST, in bytes.
    pub total_bytes: i64,
}

const SERVER_SQL: &str = "
SELECT pg_catalog.current_setting('server_version_num')::int4,
       pg_catalog.current_setting('server_version'),
       pg_catalog.to_regclass($1) IS NOT NULL";

const UTC_TEXT: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'";

/// The subscriptions of the current database with their leader apply worker (`relid IS NULL`
/// excludes table sync workers; `{leader}` excludes parallel apply workers).
fn subscriptions_sql(version_num: u32) -> String {
    let leader = if version_num >= WORKER_TYPE_VERSION_NUM {
        "w.worker_type = 'apply'"
    } else {
        "w.leader_pid IS NULL"
    };
    format!(
        "
SELECT s.subname::text, s.subenabled, w.pid IS NOT NULL,
       pg_catalog.to_char(w.last_msg_receipt_time AT TIME ZONE 'UTC', {UTC_TEXT}),
       CASE WHEN w.last_msg_receipt_time IS NOT NULL
            THEN GREATEST(0, EXTRACT(EPOCH FROM pg_catalog.now() - w.last_msg_receipt_time))
       END::float8,
       pg_catalog.to_char(w.latest_end_time AT TIME ZONE 'UTC', {UTC_TEXT}),
       COALESCE(st.apply_error_count, 0)::int8, COALESCE(st.sync_error_count, 0)::int8
FROM pg_catalog.pg_subscription s
JOIN pg_catalog.pg_database d
  ON d.oid = s.subdbid AND d.datname = pg_catalog.current_database()
LEFT JOIN pg_catalog.pg_stat_subscription w
  ON w.subid = s.oid AND w.relid IS NULL AND {leader}
LEFT JOIN pg_catalog.pg_stat_subscription_stats st ON st.subid = s.oid
ORDER BY 1"
    )
}

const SLOTS_SQL: &str = "
SELECT s.slot_name::text, s.slot_type, s.database::text, s.active, s.wal_status,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::int8,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.confirmed_flush_lsn)::int8
FROM pg_catalog.pg_replication_slots s
ORDER BY 1";

/// `$1` holds the tables' quoted names: `to_regclass` resolves them (null when missing), so
/// no name is spliced into SQL.
const REGISTERS_SQL: &str = "
SELECT n.nspname::text || '.' || c.relname::text,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::int8 END,
       pg_catalog.pg_total_relation_size(c.oid)
FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS r(name, ord)
JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(r.name)
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
ORDER BY r.ord";

/// Reads every node at once. One result per node, in the order given; a node that cannot be
/// reached or read does not stop the others.
pub async fn read_health_of_nodes(
    nodes: &[(NodeConfig, Option<Secret>)],
    scope: &HealthScope,
) -> Vec<Result<NodeHealth, NodeError>> {
    let reads = nodes.iter().map(|(node, password)| async move {
        let client = connect(node, password.as_ref()).await?;
        read_health(&client, scope)
            .await
            .map_err(|error| NodeError::Introspect {
                node: node.name.clone(),
                error,
            })
    });
    join_all(reads).await
}

/// Reads the health of the node `client` is connected to.
pub async fn read_health(
    client: &Client,
    scope: &HealthScope,
) -> Result<NodeHealth, IntrospectError> {
    let server = query(
        client,
        "server",
        SERVER_SQL,
        &[(&scope.conflicts_table, Type::TEXT)],
    )
    .await?;
    let row = server.first().ok_or_else(|| IntrospectError {
        what: "server",
        error: QueryError {
            sqlstate: None,
            message: "the server returned no row".to_string(),
            detail: None,
            hint: None,
        },
    })?;
    let version_num: i32 = get(row, 0, "server")?;
    let version_num = u32::try_from(version_num).unwrap_or(0);
    let server_version: String = get(row, 1, "server")?;
    let has_conflicts: bool = get(row, 2, "server")?;

    let subscriptions_sql = subscriptions_sql(version_num);
    let conflicts = async {
        if has_conflicts {
            read_conflicts(client, scope).await.map(Some)
        } else {
            Ok(None)
        }
    };
    let register_params: [(&(dyn ToSql + Sync), Type); 1] = [(&scope.registers, Type::TEXT_ARRAY)];
    // Issued together, so tokio-postgres pipelines them: one round trip.
    let (subscription_rows, slot_rows, register_rows, conflicts, orphans) = futures_util::try_join!(
        query(client, "subscriptions", &subscriptions_sql, &[]),
        query(client, "replication slots", SLOTS_SQL, &[]),
        query(client, "register sizes", REGISTERS_SQL, &register_params),
        conflicts,
        read_orphans(client, scope.orphan_checks.as_deref()),
    )?;
    Ok(NodeHealth {
        server_version,
        server_version_num: version_num,
        subscriptions: subscription_rows
            .iter()
            .map(decode_subscription)
            .collect::<Result<_, _>>()?,
        slots: slot_rows
            .iter()
            .map(decode_slot)
            .collect::<Result<_, _>>()?,
        conflicts,
        registers: register_rows
            .iter()
            .map(decode_register)
            .collect::<Result<_, _>>()?,
        orphans,
    })
}

/// Counts the rows breaking each foreign key of `checks` (a scan of each referencing table).
async fn read_orphans(
    client: &Client,
    checks: Option<&[OrphanCheck]>,
) -> Result<Option<Vec<OrphanCount>>, IntrospectError> {
    const WHAT: &str = "orphan rows";
    let Some(checks) = checks else {
        return Ok(None);
    };
    let counts = checks.iter().map(|check| async move {
        let rows = query(client, WHAT, &check.count_sql, &[]).await?;
        let orphan_rows = match rows.first() {
            Some(row) => get(row, 0, WHAT)?,
            None => 0,
        };
        Ok::<_, IntrospectError>(OrphanCount {
            table: check.table.clone(),
            columns: check.columns.clone(),
            parent_table: check.parent_table.clone(),
            orphan_rows,
        })
    });
    futures_util::future::try_join_all(counts).await.map(Some)
}

/// Counts by kind; the ledger's name is quoted by the caller (see [`HealthScope`]).
async fn read_conflicts(
    client: &Client,
    scope: &HealthScope,
) -> Result<Vec<ConflictCount>, IntrospectError> {
    const WHAT: &str = "conflicts";
    let sql = format!(
        "SELECT kind, pg_catalog.count(*) FROM {} \
         WHERE $1::timestamptz IS NULL OR at >= $1::timestamptz GROUP BY kind ORDER BY kind",
        scope.conflicts_table
    );
    let rows = query(
        client,
        WHAT,
        &sql,
        &[(&scope.conflicts_since, Type::TIMESTAMPTZ)],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ConflictCount {
                kind: get(row, 0, WHAT)?,
                count: get(row, 1, WHAT)?,
            })
        })
        .collect()
}

fn decode_subscription(row: &Row) -> Result<SubscriptionHealth, IntrospectError> {
    const WHAT: &str = "subscriptions";
    Ok(SubscriptionHealth {
        name: get(row, 0, WHAT)?,
        enabled: get(row, 1, WHAT)?,
        worker_running: get(row, 2, WHAT)?,
        last_message_at: get(row, 3, WHAT)?,
        last_message_age_seconds: get(row, 4, WHAT)?,
        latest_end_at: get(row, 5, WHAT)?,
        apply_error_count: get(row, 6, WHAT)?,
        sync_error_count: get(row, 7, WHAT)?,
    })
}

fn decode_slot(row: &Row) -> Result<SlotHealth, IntrospectError> {
    const WHAT: &str = "replication slots";
    Ok(SlotHealth {
        name: get(row, 0, WHAT)?,
        slot_type: get(row, 1, WHAT)?,
        database: get(row, 2, WHAT)?,
        active: get(row, 3, WHAT)?,
        wal_status: get(row, 4, WHAT)?,
        retained_wal_bytes: get(row, 5, WHAT)?,
        lag_bytes: get(row, 6, WHAT)?,
    })
}

fn decode_register(row: &Row) -> Result<RegisterSize, IntrospectError> {
    const WHAT: &str = "register sizes";
    Ok(RegisterSize {
        table: get(row, 0, WHAT)?,
        estimated_rows: get(row, 1, WHAT)?,
        total_bytes: get(row, 2, WHAT)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_worker_is_chosen_by_the_columns_each_release_has() {
        assert!(subscriptions_sql(160004).contains("w.leader_pid IS NULL"));
        assert!(!subscriptions_sql(160004).contains("worker_type"));
        assert!(subscriptions_sql(170000).contains("w.worker_type = 'apply'"));
        assert!(subscriptions_sql(180001).contains("w.worker_type = 'apply'"));
    }
}
