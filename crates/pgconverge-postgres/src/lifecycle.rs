//! Node lifecycle at the edge: replication positions, waiting until a subscriber has applied a
//! publisher's changes up to a position, and copying a donor's rows into a joining node in one
//! snapshot and one transaction.
//!
//! The SQL comes from the planner (it quotes every name); this module only runs it and moves
//! the bytes, so a join can be tested against real servers without the rest of pgconverge.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{pin_mut, SinkExt, TryStreamExt};
use pgconverge_model::units::describe_bytes;
use tokio_postgres::{Client, IsolationLevel};

use crate::query_error::QueryError;

/// A WAL position (`pg_lsn`), comparable as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses PostgreSQL's `XXXXXXXX/XXXXXXXX` text form.
    pub fn parse(text: &str) -> Option<Lsn> {
        let (high, low) = text.trim().split_once('/')?;
        let high = u64::from_str_radix(high, 16).ok()?;
        let low = u64::from_str_radix(low, 16).ok()?;
        (high <= u64::from(u32::MAX) && low <= u64::from(u32::MAX)).then_some(Lsn(high << 32 | low))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Where a replication slot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotPosition {
    Missing,
    /// The slot exists but no position is confirmed on it (a physical slot, say).
    Unconfirmed,
    /// Its consumer has confirmed applying everything up to here; a slot nobody consumed yet
    /// stands where it was created.
    Confirmed(Lsn),
}

/// Where `slot` stands, in one round trip.
pub async fn slot_position(client: &Client, slot: &str) -> Result<SlotPosition, QueryError> {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text FROM pg_catalog.pg_replication_slots \
             WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    let Some(row) = row else {
        return Ok(SlotPosition::Missing);
    };
    let text: Option<String> = row.try_get(0)?;
    Ok(match text.as_deref().and_then(Lsn::parse) {
        Some(lsn) => SlotPosition::Confirmed(lsn),
        None => SlotPosition::Unconfirmed,
    })
}

/// The server's current WAL insert position (ahead of `pg_current_wal_lsn()`, the write
/// position, by what asynchronous commits have not written out yet).
pub async fn current_wal_lsn(client: &Client) -> Result<Lsn, QueryError> {
    let row = client
        .query_one("SELECT pg_catalog.pg_current_wal_insert_lsn()::text", &[])
        .await?;
    let text: String = row.try_get(0)?;
    Lsn::parse(&text).ok_or_else(|| QueryError {
        sqlstate: None,
        message: format!("pg_current_wal_insert_lsn() returned {text:?}"),
        detail: None,
        hint: None,
    })
}

/// Writes a tiny WAL record (a logical message no publication sends), so that an idle
/// publisher's walsenders move past every earlier position and subscribers confirm it.
pub async fn nudge_wal(client: &Client) -> Result<(), QueryError> {
    client
        .execute(
            "SELECT pg_catalog.pg_logical_emit_message(false, 'pgconverge', 'position')",
            &[],
        )
        .await?;
    Ok(())
}

/// Waiting for a subscriber to apply a publisher's changes up to a position.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatchUpError {
    #[error("slot {slot} does not exist")]
    SlotMissing { slot: String },
    #[error(
        "the subscriber of slot {slot} is still {} behind position {target} after {}s",
        describe_bytes(*behind),
        timeout.as_secs()
    )]
    TimedOut {
        slot: String,
        target: Lsn,
        behind: u64,
        timeout: Duration,
    },
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// Polls `slot` on the publisher until its subscriber has confirmed `target`. Calls
/// `on_wait` with the bytes still to go before each pause; nudges the publisher's WAL now and
/// then so an idle publisher's keepalives carry the confirmation past `target`.
pub async fn wait_for_confirmed(
    publisher: &Client,
    slot: &str,
    target: Lsn,
    timeout: Duration,
    on_wait: &mut (dyn FnMut(u64) + Send),
) -> Result<(), CatchUpError> {
    let started = Instant::now();
    let mut polls: u32 = 0;
    loop {
        let confirmed = match slot_position(publisher, slot).await? {
            SlotPosition::Missing => {
                return Err(CatchUpError::SlotMissing {
                    slot: slot.to_string(),
                })
            }
            SlotPosition::Unconfirmed => Lsn(0),
            SlotPosition::Confirmed(lsn) => lsn,
        };
        if confirmed >= target {
            return Ok(());
        }
        let behind = target.0 - confirmed.0;
        if started.elapsed() >= timeout {
            return Err(CatchUpError::TimedOut {
                slot: slot.to_string(),
                target,
                behind,
                timeout,
            });
        }
        on_wait(behind);
        if polls.is_multiple_of(10) {
            nudge_wal(publisher).await?;
        }
        polls += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Bytes of rows gathered before they are written to the joining node.
const COPY_BATCH_BYTES: usize = 256 * 1024;

/// One table's copy, as the planner wrote it.
#[derive(Debug, Clone)]
pub struct TableCopy {
    /// What progress and errors call it, e.g. `public.users`.
    pub label: String,
    /// `COPY (SELECT …) TO STDOUT (FORMAT binary)` run on the donor.
    pub copy_out_sql: String,
    /// `COPY … FROM STDIN (FORMAT binary)` run on the joining node.
    pub copy_in_sql: String,
    /// A query on the joining node returning one boolean: whether the table already holds
    /// rows (a join copies into empty tables only).
    pub holds_rows_sql: String,
}

/// Everything a join copies, and what the joining node runs around it.
#[derive(Debug, Clone, Default)]
pub struct CopySpec {
    /// Run first in the joining node's transaction (e.g. `SET LOCAL session_replication_role`).
    pub joiner_setup_sql: Vec<String>,
    /// Run after the setup, before the joiner's tables are checked for rows (a merge sets
    /// the joiner's own rows aside here).
    pub joiner_before_copy_sql: Vec<String>,
    pub tables: Vec<TableCopy>,
    /// Run one by one after every table is copied; the rows each affects are reported in
    /// [`CopyReport::after_copy_rows`].
    pub joiner_after_copy_sql: Vec<String>,
    /// Run last in the joining node's transaction, before COMMIT (e.g. the membership row).
    pub joiner_finish_sql: Vec<String>,
}

/// Progress of a copy, reported as bytes flow.
#[derive(Debug, Clone, Copy)]
pub struct CopyProgress<'a> {
    pub table: &'a str,
    /// Index of the table in [`CopySpec::tables`].
    pub table_index: usize,
    /// Bytes copied so far, all tables.
    pub bytes: u64,
    /// Rows copied in the tables finished so far.
    pub rows: u64,
}

/// What a finished copy moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub rows: u64,
    pub bytes: u64,
    /// Rows per table label, in copy order.
    pub tables: Vec<(String, u64)>,
    /// Rows affected by each of [`CopySpec::joiner_after_copy_sql`], in order.
    pub after_copy_rows: Vec<u64>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CopyError {
    #[error(
        "{table} already holds rows on the joining node; a join copies into empty tables only"
    )]
    JoinerNotEmpty { table: String },
    #[error("on the donor: {0}")]
    Donor(QueryError),
    #[error("on the joining node: {0}")]
    Joiner(QueryError),
    #[error("copying {table}: {error}")]
    Table { table: String, error: QueryError },
}

/// Copies every table of `spec` from `donor` to `joiner`: the donor reads under one
/// REPEATABLE READ snapshot (every table as of one instant), the joiner writes in one
/// transaction that commits only when everything, membership row included, is in. An
/// interrupted copy therefore leaves the joining node as it was, and running it again is safe.
pub async fn copy_into_joiner(
    donor: &mut Client,
    joiner: &mut Client,
    spec: &CopySpec,
    on_progress: &mut (dyn FnMut(CopyProgress<'_>) + Send),
) -> Result<CopyReport, CopyError> {
    let on_donor = |e: tokio_postgres::Error| CopyError::Donor(QueryError::from(&e));
    let on_joiner = |e: tokio_postgres::Error| CopyError::Joiner(QueryError::from(&e));
    let source = donor
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(on_donor)?;
    // A table under row-level security must be copied whole or not at all: with row security
    // off, a role its policies would filter gets an error instead of fewer rows.
    source
        .batch_execute("SET LOCAL row_security = off")
        .await
        .map_err(on_donor)?;
    let target = joiner.transaction().await.map_err(on_joiner)?;
    for sql in spec
        .joiner_setup_sql
        .iter()
        .chain(&spec.joiner_before_copy_sql)
    {
        target.batch_execute(sql).await.map_err(on_joiner)?;
    }
    for table in &spec.tables {
        let holds_rows: bool = target
            .query_one(&table.holds_rows_sql, &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(on_joiner)?;
        if holds_rows {
            return Err(CopyError::JoinerNotEmpty {
                table: table.label.clone(),
            });
        }
    }
    let mut report = CopyReport::default();
    for (table_index, table) in spec.tables.iter().enumerate() {
        let failed = |e: tokio_postgres::Error| CopyError::Table {
            table: table.label.clone(),
            error: QueryError::from(&e),
        };
        let reader = source.copy_out(&table.copy_out_sql).await.map_err(failed)?;
        let writer = target
            .copy_in::<_, Bytes>(&table.copy_in_sql)
            .await
            .map_err(failed)?;
        pin_mut!(reader);
        pin_mut!(writer);
        // The donor sends a message per row; batching them keeps the joiner's side to one
        // write (and one flush) per COPY_BATCH_BYTES instead of one per row.
        let mut batch = BytesMut::with_capacity(COPY_BATCH_BYTES);
        while let Some(chunk) = reader.try_next().await.map_err(failed)? {
            report.bytes += chunk.len() as u64;
            batch.extend_from_slice(&chunk);
            if batch.len() >= COPY_BATCH_BYTES {
                writer.send(batch.split().freeze()).await.map_err(failed)?;
                on_progress(CopyProgress {
                    table: &table.label,
                    table_index,
                    bytes: report.bytes,
                    rows: report.rows,
                });
            }
        }
        if !batch.is_empty() {
            writer.send(batch.freeze()).await.map_err(failed)?;
        }
        let rows = writer.finish().await.map_err(failed)?;
        report.rows += rows;
        report.tables.push((table.label.clone(), rows));
        on_progress(CopyProgress {
            table: &table.label,
            table_index,
            bytes: report.bytes,
            rows: report.rows,
        });
    }
    for sql in &spec.joiner_after_copy_sql {
        let rows = target.execute(sql.as_str(), &[]).await.map_err(on_joiner)?;
        report.after_copy_rows.push(rows);
    }
    for sql in &spec.joiner_finish_sql {
        target.batch_execute(sql).await.map_err(on_joiner)?;
    }
    // The donor's snapshot was only read; ending it first keeps no snapshot open while the
    // joiner commits.
    source.commit().await.map_err(on_donor)?;
    target.commit().await.map_err(on_joiner)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_parse_and_print_as_postgres_does() {
        let lsn = Lsn::parse("16/B374D848").expect("parses");
        assert_eq!(lsn, Lsn(0x16_B374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(Lsn::parse("0/0"), Some(Lsn(0)));
        assert!(Lsn::parse("0/1") < Lsn::parse("1/0"));
        for bad in ["", "16", "x/1", "1/x", "1/2/3", "100000000/0"] {
            assert_eq!(Lsn::parse(bad), None, "{bad}");
        }
    }
}
