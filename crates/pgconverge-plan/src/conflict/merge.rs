//! Merging the rows a joining node already holds (`merge_rows`) with the mesh's copy of a
//! table, inside the joiner's bootstrap transaction. The joiner's rows are set aside before
//! the donor's rows are copied in, then each one is settled by the conflict rules' stamp
//! order, the one every node uses:
//!
//! - a key the mesh has no version of (no row, no tombstone) is kept, written as a local
//!   insert: stamped now and logged, so it replicates to every node;
//! - a key both hold, or one the mesh deleted, goes to the newer stamp. A row that existed
//!   before adoption reads as version 0 from no node, older than anything the mesh wrote, so
//!   the mesh's version wins unless the joiner's row was written after pgconverge stamped it
//!   (during this apply). The joiner's winning rows are written as local updates or inserts
//!   (stamped and logged, so every node takes them); each losing row that differs from the
//!   mesh's is kept in the conflict ledger, kind `merge`.
//! - a write the joiner made after it was stamped, which the donor already holds (the same
//!   stamp), is written again as a local write, and so is a delete the joiner made that the
//!   donor's row predates: while the joiner's peers were creating their slots on it, such a
//!   write may have reached some of them and not others, and writing it again reaches all.
//!
//! Only SQL is built here; the engine runs it in the order [`TableMergeSql`] describes.

use pgconverge_model::config::TableConfig;
use pgconverge_model::naming::INTERNAL_SCHEMA;
use pgconverge_sql::{quote_ident, quote_literal, quote_qualified};

use super::naming::{
    CLAIMS_TABLE, ORIGIN_COLUMN, RECORD_CONFLICT_FUNCTION, TOMBSTONES_TABLE, VERSION_COLUMN,
};
use super::shape::{field, stamp_greater, TableShape};

/// `conflicts.kind` of a joiner's row that lost to the mesh's version of its key.
pub const MERGE_KIND: &str = "merge";

/// What the joiner runs for one table, in its copy transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMergeSql {
    /// Before the copy, in replica mode: hold off the joiner's writers, set its rows aside
    /// in a temporary table, and empty the table for the copy.
    pub stage: Vec<String>,
    /// After the copy, still in replica mode: the joiner's rows that lose to the mesh (and
    /// differ from its version) are kept in the ledger. Affects one row per loser.
    pub record_losers: String,
    /// After the copy, in origin mode (local triggers stamp and log), parents before
    /// children: the joiner's rows that win over the mesh's version of their key. Affects one
    /// row per winner.
    pub update_winners: String,
    /// Then the joiner's rows the mesh has no live version of, and those newer than the
    /// mesh's tombstone. Affects one row per kept row.
    pub insert_kept: String,
    /// Then the rows the joiner deleted after it was stamped, where the mesh's row is older
    /// than the delete. Affects one row per delete.
    pub delete_winners: String,
}

/// The temporary table holding the joiner's tombstones while the donor's are copied in.
const STAGED_TOMBSTONES: &str = "pg_temp._pgc_merge_tombstones";

/// The joiner's own conflict registers describe writes the mesh never saw; the donor's are
/// copied in their place, and the rows kept recreate their claims as they are written.
pub fn clear_registers_sql() -> Vec<String> {
    let tombstones = quote_qualified(INTERNAL_SCHEMA, TOMBSTONES_TABLE);
    let mut sql = vec![format!(
        "CREATE TEMPORARY TABLE {STAGED_TOMBSTONES} ON COMMIT DROP AS SELECT * FROM {tombstones}"
    )];
    sql.extend(
        [TOMBSTONES_TABLE, CLAIMS_TABLE]
            .iter()
            .map(|t| format!("DELETE FROM {}", quote_qualified(INTERNAL_SCHEMA, t))),
    );
    sql
}

/// The merge of `table`'s rows; `index` names its temporary table, unique per bootstrap.
pub fn table_merge_sql(table: &TableConfig, index: usize) -> TableMergeSql {
    let shape = TableShape::new(table);
    let stage = quote_ident(&format!("_pgc_merge_{index}"));
    let stage = format!("pg_temp.{stage}");
    let configured: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let staged = [
        configured,
        vec![quote_ident(VERSION_COLUMN), quote_ident(ORIGIN_COLUMN)],
    ]
    .concat()
    .join(", ");
    let same_key = format!("{} = {}", shape.key_tuple("d"), shape.key_tuple("s"));
    let s_newer_than = |v: &str, o: &str| {
        stamp_greater(
            &field("s", VERSION_COLUMN),
            &field("s", ORIGIN_COLUMN),
            v,
            o,
        )
    };
    // Newer, or the joiner's own stamped write that the donor holds too: written again.
    let row_newer = format!(
        "({} OR ({s_v} > 0 AND ({s_v}, {s_o}) = ({d_v}, {d_o})))",
        s_newer_than(&field("d", VERSION_COLUMN), &field("d", ORIGIN_COLUMN)),
        s_v = field("s", VERSION_COLUMN),
        s_o = field("s", ORIGIN_COLUMN),
        d_v = field("d", VERSION_COLUMN),
        d_o = field("d", ORIGIN_COLUMN),
    );
    let tombstones = quote_qualified(INTERNAL_SCHEMA, TOMBSTONES_TABLE);
    let tombstone_of_s = format!(
        "ts.tbl = {} AND ts.pk = {}",
        shape.key_literal,
        shape.key_json("s")
    );
    let newer_than_tombstone = s_newer_than("ts.version", "ts.origin");
    let contents = |rec: &str| {
        let fields: Vec<String> = table.columns.iter().map(|c| field(rec, &c.name)).collect();
        format!("ROW({})", fields.join(", "))
    };
    let record = |winner: &str, local_row: &str, remote_row: &str, remote_stamp: (&str, &str)| {
        format!(
            "{}({}, {}, {}, {}, NULL, {local_row}, {remote_row}, {}, {}, {}, {})",
            quote_qualified(INTERNAL_SCHEMA, RECORD_CONFLICT_FUNCTION),
            shape.key_literal,
            shape.key_json("s"),
            quote_literal(MERGE_KIND),
            quote_literal(winner),
            field("s", VERSION_COLUMN),
            field("s", ORIGIN_COLUMN),
            remote_stamp.0,
            remote_stamp.1,
        )
    };
    let record_losers = format!(
        "SELECT {row_loser} FROM {stage} AS s JOIN {qualified} AS d ON {same_key} \
         WHERE NOT {row_newer} AND {s_contents} IS DISTINCT FROM {d_contents} \
         UNION ALL \
         SELECT {tomb_loser} FROM {stage} AS s JOIN {tombstones} AS ts ON {tombstone_of_s} \
         WHERE NOT {newer_than_tombstone} \
           AND NOT EXISTS (SELECT 1 FROM {qualified} AS d WHERE {same_key})",
        row_loser = record(
            "remote",
            "pg_catalog.to_jsonb(s)",
            "pg_catalog.to_jsonb(d)",
            (&field("d", VERSION_COLUMN), &field("d", ORIGIN_COLUMN))
        ),
        tomb_loser = record(
            "remote",
            "pg_catalog.to_jsonb(s)",
            "NULL",
            ("ts.version", "ts.origin")
        ),
        qualified = shape.qualified,
        s_contents = contents("s"),
        d_contents = contents("d"),
    );
    let updatable: Vec<&String> = shape
        .updatable_columns()
        .into_iter()
        .filter(|c| table.column(c).is_some())
        .collect();
    let update_winners = if updatable.is_empty() {
        // Only key columns: a row that wins has nothing the mesh's row lacks.
        "SELECT 1 WHERE false".to_string()
    } else {
        let targets: Vec<String> = updatable.iter().map(|c| quote_ident(c)).collect();
        let values: Vec<String> = updatable.iter().map(|c| field("s", c)).collect();
        format!(
            "UPDATE {qualified} AS d SET ({targets}) = ROW({values}) FROM {stage} AS s \
             WHERE {same_key} AND {row_newer}",
            qualified = shape.qualified,
            targets = targets.join(", "),
            values = values.join(", "),
        )
    };
    let overriding = if shape.always_identity.is_empty() {
        ""
    } else {
        " OVERRIDING SYSTEM VALUE"
    };
    // PostgreSQL computes generated columns on every node; an insert naming one fails.
    let written: Vec<&str> = table
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .filter(|c| !shape.generated.iter().any(|g| g == c))
        .collect();
    let insert_kept = format!(
        "INSERT INTO {qualified} ({columns}){overriding} SELECT {s_columns} FROM {stage} AS s \
         WHERE NOT EXISTS (SELECT 1 FROM {qualified} AS d WHERE {same_key}) \
           AND NOT EXISTS (SELECT 1 FROM {tombstones} AS ts WHERE {tombstone_of_s} \
                           AND NOT {newer_than_tombstone})",
        qualified = shape.qualified,
        columns = written
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        s_columns = written
            .iter()
            .map(|c| field("s", c))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let delete_winners = format!(
        "DELETE FROM {qualified} AS d USING {STAGED_TOMBSTONES} AS ts \
         WHERE ts.tbl = {lit} AND ts.pk = {key} AND {newer}",
        qualified = shape.qualified,
        lit = shape.key_literal,
        key = shape.key_json("d"),
        newer = stamp_greater(
            "ts.version",
            "ts.origin",
            &field("d", VERSION_COLUMN),
            &field("d", ORIGIN_COLUMN)
        ),
    );
    TableMergeSql {
        delete_winners,
        stage: vec![
            format!("LOCK TABLE {} IN EXCLUSIVE MODE", shape.qualified),
            format!(
                "CREATE TEMPORARY TABLE {stage} ON COMMIT DROP AS SELECT {staged} FROM {}",
                shape.qualified
            ),
            format!("DELETE FROM {}", shape.qualified),
        ],
        record_losers,
        update_winners,
        insert_kept,
    }
}
