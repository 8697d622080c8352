//! The SQL text verify and repair run on each node, every name quoted through pgconverge-sql.
//! Parameters are passed as text (`($1::text)::json`) so the edge binds plain strings.

use pgconverge_model::naming::INTERNAL_SCHEMA;
use pgconverge_sql::{quote_ident, quote_literal, quote_qualified};

use super::{ForeignKeyCheck, VerifyTable};
use crate::conflict::naming::{
    CHANGES_TABLE, ORIGIN_COLUMN, RECORD_CONFLICT_FUNCTION, TOMBSTONES_TABLE, VERSION_COLUMN,
};

/// Session settings under which every node prints the same value as the same text, so row
/// hashes compare across nodes whatever each server's or role's defaults. `work_mem`: the
/// planner cannot know a bucket expression has few values and, under the default, would sort
/// the whole table (spilling to disk) instead of hashing into a few thousand groups; the
/// hash table actually built is small.
pub const SESSION_SETTINGS_SQL: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; \
     SET IntervalStyle = 'postgres'; SET bytea_output = 'hex'; SET extra_float_digits = 1; \
     SET statement_timeout = 0; SET work_mem = '64MB'";

/// The ledger kind of a repair.
pub const REPAIR_KIND: &str = "repair";

/// Rows per bucket the bucket count aims at: a differing bucket costs reading about this
/// many keys.
const ROWS_PER_BUCKET: i64 = 256;
const MIN_BUCKETS: i64 = 64;
const MAX_BUCKETS: i64 = 1 << 20;

/// Buckets for a table of about `rows` rows: a power of two, so a bucket is a mask of the
/// key's hash. Every node must use the same count for one table.
pub fn bucket_count(rows: i64) -> i64 {
    let wanted = (rows / ROWS_PER_BUCKET).clamp(MIN_BUCKETS, MAX_BUCKETS);
    let mut buckets = MIN_BUCKETS;
    while buckets < wanted {
        buckets *= 2;
    }
    buckets
}

/// Estimated rows of each table named in `$1` (quoted names, in order); 0 when unknown.
pub const ESTIMATED_ROWS_SQL: &str = "
SELECT r.ord::int8, GREATEST(COALESCE(c.reltuples, 0), 0)::int8
FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS r(name, ord)
LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(r.name)
ORDER BY r.ord";

fn field(rec: &str, column: &str) -> String {
    format!("{rec}.{}", quote_ident(column))
}

fn fields(rec: &str, columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| field(rec, c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_names(table: &VerifyTable) -> Vec<String> {
    table.key_columns.iter().map(|(c, _)| c.clone()).collect()
}

/// The bucket of record `rec`: its key's hash, masked to `buckets`.
fn bucket_expr(table: &VerifyTable, rec: &str, buckets: i64) -> String {
    format!("({} & {})", key_hash_expr(table, rec), buckets - 1)
}

/// A 64-bit hash of record `rec`'s primary key.
fn key_hash_expr(table: &VerifyTable, rec: &str) -> String {
    let columns: Vec<(String, String)> = table.key_columns.clone();
    record_hash(rec, &columns)
}

/// A 64-bit hash of record `rec`'s configured columns and stamp.
fn row_hash_expr(table: &VerifyTable, rec: &str) -> String {
    record_hash(rec, &table.hashed_columns)
}

/// `hash_record_extended` over the columns: each value hashed by its type's own hash
/// function, so no value is printed (several times faster than hashing the row's text),
/// and values the type calls equal hash alike on every node whatever the session's
/// settings. A column of a type without a hash function, or of a type not known here to
/// have one, is hashed as its text (verify's sessions print alike, see
/// [`SESSION_SETTINGS_SQL`]).
fn record_hash(rec: &str, columns: &[(String, String)]) -> String {
    let values: Vec<String> = columns
        .iter()
        .map(|(c, t)| {
            if hashable(t) {
                field(rec, c)
            } else {
                format!("{}::text", field(rec, c))
            }
        })
        .collect();
    format!(
        "pg_catalog.hash_record_extended(ROW({}), 0)",
        values.join(", ")
    )
}

/// Built-in types (and arrays of them) whose values have an extended hash function.
fn hashable(data_type: &str) -> bool {
    const HASHABLE: &[&str] = &[
        "smallint",
        "integer",
        "int",
        "bigint",
        "int2",
        "int4",
        "int8",
        "serial",
        "bigserial",
        "smallserial",
        "numeric",
        "decimal",
        "real",
        "double precision",
        "float4",
        "float8",
        "float",
        "text",
        "varchar",
        "character varying",
        "character",
        "char",
        "bpchar",
        "name",
        "uuid",
        "bytea",
        "boolean",
        "bool",
        "date",
        "time",
        "timetz",
        "timestamp",
        "timestamptz",
        "interval",
        "jsonb",
        "inet",
        "cidr",
        "macaddr",
        "macaddr8",
        "money",
        "oid",
        "time with time zone",
        "time without time zone",
        "timestamp with time zone",
        "timestamp without time zone",
    ];
    let t = data_type
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    let t = t.trim_end_matches("[]");
    // `numeric(12,2)`, `varchar(20)`, `timestamp(3) with time zone`: the type without its
    // modifier.
    let base = match (t.find('('), t.find(')')) {
        (Some(open), Some(close)) if open < close => format!("{}{}", &t[..open], &t[close + 1..]),
        _ => t.to_string(),
    };
    HASHABLE.contains(&base.trim())
}

/// `(a.k1, a.k2) = (b.k1, b.k2)` (or `a.k = b.k`): matches by primary key, so the key's
/// index is used.
fn key_match(table: &VerifyTable, a: &str, b: &str) -> String {
    let keys = key_names(table);
    if keys.len() == 1 {
        format!("{} = {}", field(a, &keys[0]), field(b, &keys[0]))
    } else {
        format!("({}) = ({})", fields(a, &keys), fields(b, &keys))
    }
}

/// The canonical key of `rec` as jsonb, spelled exactly as the conflict triggers spell the
/// keys of tombstones and of the ledger (`conflict/shape.rs`, `key_json`): types whose text
/// follows session settings are made canonical.
pub fn key_json(table: &VerifyTable, rec: &str) -> String {
    let parts: Vec<String> = table
        .key_columns
        .iter()
        .map(|(c, t)| {
            format!(
                "{}, {}",
                quote_literal(c),
                canonical_json(&field(rec, c), t)
            )
        })
        .collect();
    format!("pg_catalog.jsonb_build_object({})", parts.join(", "))
}

/// The key columns of `rec` in their ordinary spelling, which `json_populate_record` reads
/// back exactly (as the triggers log a delete's row).
pub fn key_row_json(table: &VerifyTable, rec: &str) -> String {
    let parts: Vec<String> = key_names(table)
        .iter()
        .map(|c| format!("{}, {}", quote_literal(c), field(rec, c)))
        .collect();
    format!("pg_catalog.json_build_object({})", parts.join(", "))
}

/// Mirrors `canonical_json` of the conflict triggers (`conflict/shape.rs`).
fn canonical_json(expr: &str, data_type: &str) -> String {
    let t = data_type
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    if t.ends_with("[]") {
        format!("pg_catalog.to_jsonb({expr})")
    } else if t == "timestamptz"
        || t.starts_with("timestamptz(")
        || (t.starts_with("timestamp") && t.ends_with("with time zone"))
    {
        format!("pg_catalog.to_jsonb({expr} AT TIME ZONE 'UTC')")
    } else if t == "bytea" {
        format!("pg_catalog.to_jsonb(pg_catalog.encode({expr}, 'hex'))")
    } else if t.starts_with("numeric") || t.starts_with("decimal") {
        format!("pg_catalog.to_jsonb(pg_catalog.trim_scale({expr}))")
    } else if t.starts_with("interval") {
        format!("pg_catalog.to_jsonb(EXTRACT(EPOCH FROM {expr}))")
    } else {
        format!("pg_catalog.to_jsonb({expr})")
    }
}

/// The whole table's row count and the XOR of its rows' hashes: one scan, no grouping. When
/// every node agrees on it, the table is identical and no bucket is read.
pub fn table_digest_sql(table: &VerifyTable) -> String {
    format!(
        "SELECT 0::int8, pg_catalog.count(*)::int8, COALESCE(pg_catalog.bit_xor({}), 0) FROM {} AS t",
        row_hash_expr(table, "t"),
        table.qualified
    )
}

/// Per bucket: its number, row count and the XOR of its rows' hashes. One scan of the table.
pub fn bucket_digests_sql(table: &VerifyTable, buckets: i64) -> String {
    format!(
        "SELECT s.b, pg_catalog.count(*)::int8, pg_catalog.bit_xor(s.h) \
         FROM (SELECT {} AS b, {} AS h FROM {} AS t) AS s GROUP BY s.b",
        bucket_expr(table, "t", buckets),
        row_hash_expr(table, "t"),
        table.qualified
    )
}

/// The rows of the buckets in `$1` (int8[]): canonical key, key row, stamp and row hash.
pub fn bucket_rows_sql(table: &VerifyTable, buckets: i64) -> String {
    format!(
        "SELECT {}::text, {}::text, t.{}, t.{}, {} FROM {} AS t WHERE {} = ANY ($1::int8[])",
        key_json(table, "t"),
        key_row_json(table, "t"),
        quote_ident(VERSION_COLUMN),
        quote_ident(ORIGIN_COLUMN),
        row_hash_expr(table, "t"),
        table.qualified,
        bucket_expr(table, "t", buckets)
    )
}

/// Each key of `$1` (a JSON array of key rows): canonical key, key row, then the row's stamp
/// and hash (null when absent) and the key's tombstone stamp (null when none).
pub fn key_reads_sql(table: &VerifyTable) -> String {
    format!(
        "SELECT {key}::text, {key_row}::text, t.{v}, t.{o}, {hash}, ts.version, ts.origin \
         FROM pg_catalog.json_array_elements(($1::text)::json) AS a(kr) \
         CROSS JOIN LATERAL pg_catalog.json_populate_record(NULL::{tbl}, a.kr) AS k \
         LEFT JOIN {tbl} AS t ON {matches} \
         LEFT JOIN {tombstones} AS ts ON ts.tbl = {lit} AND ts.pk = {key}",
        key = key_json(table, "k"),
        key_row = key_row_json(table, "k"),
        v = quote_ident(VERSION_COLUMN),
        o = quote_ident(ORIGIN_COLUMN),
        hash = row_hash_expr(table, "t"),
        tbl = table.qualified,
        matches = key_match(table, "t", "k"),
        tombstones = quote_qualified(INTERNAL_SCHEMA, TOMBSTONES_TABLE),
        lit = table.key_literal,
    )
}

/// Each key of `$1` (a JSON array of key rows) that has a row here: canonical key and the
/// whole row as JSON, as the triggers log it (`to_json`).
pub fn winner_rows_sql(table: &VerifyTable) -> String {
    format!(
        "SELECT {key}::text, pg_catalog.to_json(t)::text \
         FROM pg_catalog.json_array_elements(($1::text)::json) AS a(kr) \
         CROSS JOIN LATERAL pg_catalog.json_populate_record(NULL::{tbl}, a.kr) AS k \
         JOIN {tbl} AS t ON {matches}",
        key = key_json(table, "t"),
        tbl = table.qualified,
        matches = key_match(table, "t", "k"),
    )
}

/// What a repair transaction runs first: the apply triggers on the change log fire only for
/// sessions in replica mode, and a busy row fails the repair instead of blocking writers.
pub const REPAIR_PRELUDE_SQL: &str =
    "SET LOCAL session_replication_role = replica; SET LOCAL lock_timeout = '10s'";

/// The key's current register on this node, locked: `$1` key row (json text), `$2`
/// canonical key (jsonb text).
fn register_cte(table: &VerifyTable) -> String {
    format!(
        "WITH cur AS (SELECT d.* FROM {tbl} AS d \
           WHERE {matches_one} FOR UPDATE), \
         reg AS (SELECT (SELECT pg_catalog.to_jsonb(c) FROM cur AS c) AS local_row, \
           COALESCE((SELECT c.{v} FROM cur AS c), \
                    (SELECT ts.version FROM {tombstones} AS ts WHERE ts.tbl = {lit} AND ts.pk = ($2::text)::jsonb)) AS v, \
           COALESCE((SELECT c.{o} FROM cur AS c), \
                    (SELECT ts.origin FROM {tombstones} AS ts WHERE ts.tbl = {lit} AND ts.pk = ($2::text)::jsonb)) AS o, \
           EXISTS (SELECT 1 FROM cur) AS has_row)",
        tbl = table.qualified,
        matches_one = key_match_param(table),
        v = quote_ident(VERSION_COLUMN),
        o = quote_ident(ORIGIN_COLUMN),
        tombstones = quote_qualified(INTERNAL_SCHEMA, TOMBSTONES_TABLE),
        lit = table.key_literal,
    )
}

/// `d`'s key equals the key row in `$1`.
fn key_match_param(table: &VerifyTable) -> String {
    let keys = key_names(table);
    format!(
        "({}) = (SELECT {} FROM pg_catalog.json_populate_record(NULL::{}, ($1::text)::json) AS k)",
        fields("d", &keys),
        fields("k", &keys),
        table.qualified
    )
}

/// Records a repair in the ledger before it is made: `$1` key row, `$2` canonical key, `$3`
/// the winning row (json text, null for a delete), `$4`/`$5` the winning stamp. The local
/// row and stamp replaced are what the node held.
pub fn repair_ledger_sql(table: &VerifyTable) -> String {
    format!(
        "{cte} SELECT {record}({lit}, ($2::text)::jsonb, {kind}, 'remote', NULL, reg.local_row, \
         ($3::text)::jsonb, reg.v, reg.o, $4::int8, $5::text) FROM reg",
        cte = register_cte(table),
        record = quote_qualified(INTERNAL_SCHEMA, RECORD_CONFLICT_FUNCTION),
        lit = table.key_literal,
        kind = quote_literal(REPAIR_KIND),
    )
}

/// Re-sends the winning version to this node as an apply worker would receive it: a change
/// inserted into the change log in replica mode fires the table's apply trigger, which merges
/// it by the conflict rules and stores nothing in the log (so nothing is published). The
/// stamp it overwrites is the node's own, so the merge records no conflict of its own.
/// Parameters as [`repair_ledger_sql`].
pub fn repair_change_sql(table: &VerifyTable) -> String {
    format!(
        "{cte} INSERT INTO {changes} (tbl, op, pk, \"row\", version, origin, prev_version, prev_origin) \
         SELECT {lit}, CASE WHEN $3::text IS NULL THEN 'D' WHEN reg.has_row THEN 'U' ELSE 'I' END, \
         ($2::text)::jsonb, COALESCE(($3::text)::json, ($1::text)::json), $4::int8, $5::text, \
         COALESCE(reg.v, 0), COALESCE(reg.o, '') FROM reg",
        cte = register_cte(table),
        changes = quote_qualified(INTERNAL_SCHEMA, CHANGES_TABLE),
        lit = table.key_literal,
    )
}

/// The condition of a child row `c` breaking foreign key `fk`: every referencing column set
/// (a NULL never references, as with `MATCH SIMPLE`) and no parent row holds the values.
fn orphan_condition(fk: &ForeignKeyCheck) -> String {
    let set: Vec<String> = fk
        .columns
        .iter()
        .map(|c| format!("{} IS NOT NULL", field("c", c)))
        .collect();
    let matches: Vec<String> = fk
        .columns
        .iter()
        .zip(&fk.parent_columns)
        .map(|(c, p)| format!("{} = {}", field("p", p), field("c", c)))
        .collect();
    format!(
        "{} AND NOT EXISTS (SELECT 1 FROM {} AS p WHERE {})",
        set.join(" AND "),
        fk.parent_qualified,
        matches.join(" AND ")
    )
}

/// Up to `limit` rows of `table` breaking `fk`, with the total: canonical key of the child,
/// the missing parent key (as the parent's columns), and the count of all such rows.
pub fn orphans_sql(table: &VerifyTable, fk: &ForeignKeyCheck, limit: u32) -> String {
    let parent_key: Vec<String> = fk
        .columns
        .iter()
        .zip(&fk.parent_columns)
        .map(|(c, p)| format!("{}, {}", quote_literal(p), field("c", c)))
        .collect();
    format!(
        "SELECT {key}::text, pg_catalog.json_build_object({parent})::text, pg_catalog.count(*) OVER ()::int8 \
         FROM {tbl} AS c WHERE {cond} ORDER BY 1 LIMIT {limit}",
        key = key_json(table, "c"),
        parent = parent_key.join(", "),
        tbl = table.qualified,
        cond = orphan_condition(fk),
    )
}

/// How many rows of `table` break `fk`.
pub fn orphan_count_sql(table: &VerifyTable, fk: &ForeignKeyCheck) -> String {
    format!(
        "SELECT pg_catalog.count(*)::int8 FROM {} AS c WHERE {}",
        table.qualified,
        orphan_condition(fk)
    )
}
