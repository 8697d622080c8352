//! The `_pgconverge` tables (change log, tombstones, claims, conflict ledger) and the
//! node-wide helper functions (node name, clock, pruning, TRUNCATE guard).

use pgconverge_model::config::ReplicationConfig;
use pgconverge_model::naming::INTERNAL_SCHEMA;

use super::naming::{
    internal, CHANGES_TABLE, CLAIMS_TABLE, CLOCK_OFFSET_SETTING, CONFLICTS_TABLE,
    MERGE_CLAIM_FUNCTION, MERGE_TOMBSTONE_FUNCTION, NODE_NAME_FUNCTION, NOW_US_FUNCTION,
    PRUNE_FUNCTION, RECORD_CONFLICT_FUNCTION, REFUSE_TRUNCATE_FUNCTION, TOMBSTONES_TABLE,
};
use super::shape::{stamp_greater, TableShape, UniqueKey};
use super::{FunctionDef, InternalTable};
use pgconverge_sql::{quote_ident, quote_literal};

/// Rows the prune function removes per table and call, so one call stays short.
const PRUNE_BATCH: u32 = 10_000;

pub fn schema_sql() -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        quote_ident(INTERNAL_SCHEMA)
    )
}

/// `_pgconverge.<name>`, quoted: an internal table or function as the bodies spell it.
pub fn internal_table(name: &str) -> String {
    format!("{}.{}", quote_ident(INTERNAL_SCHEMA), quote_ident(name))
}

fn columns(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

pub fn internal_tables() -> Vec<InternalTable> {
    let changes = internal_table(CHANGES_TABLE);
    let tombstones = internal_table(TOMBSTONES_TABLE);
    let claims = internal_table(CLAIMS_TABLE);
    let conflicts = internal_table(CONFLICTS_TABLE);
    vec![
        InternalTable {
            name: internal(CHANGES_TABLE),
            // The only published table. The origin inserts and at once deletes each row (the
            // insert is decoded from WAL, the delete is not published); receivers' REPLICA
            // trigger returns NULL. So it holds no rows and needs no key or sequence.
            create_sql: vec![format!(
                "CREATE TABLE IF NOT EXISTS {changes} (\n  \
                 tbl text NOT NULL,\n  \
                 op \"char\" NOT NULL,\n  \
                 pk jsonb NOT NULL,\n  \
                 \"row\" json NOT NULL,\n  \
                 version bigint NOT NULL,\n  \
                 origin text NOT NULL,\n  \
                 prev_version bigint NOT NULL,\n  \
                 prev_origin text NOT NULL\n)"
            )],
            columns: columns(&[
                ("tbl", "text"),
                ("op", "\"char\""),
                ("pk", "jsonb"),
                ("row", "json"),
                ("version", "bigint"),
                ("origin", "text"),
                ("prev_version", "bigint"),
                ("prev_origin", "text"),
            ]),
        },
        InternalTable {
            name: internal(TOMBSTONES_TABLE),
            create_sql: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {tombstones} (\n  \
                     tbl text NOT NULL,\n  \
                     pk jsonb NOT NULL,\n  \
                     version bigint NOT NULL,\n  \
                     origin text NOT NULL,\n  \
                     recorded_at timestamptz NOT NULL DEFAULT now(),\n  \
                     PRIMARY KEY (tbl, pk)\n)"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS tombstones_recorded_at_idx ON {tombstones} (recorded_at)"
                ),
            ],
            columns: columns(&[
                ("tbl", "text"),
                ("pk", "jsonb"),
                ("version", "bigint"),
                ("origin", "text"),
                ("recorded_at", "timestamp with time zone"),
            ]),
        },
        InternalTable {
            name: internal(CLAIMS_TABLE),
            create_sql: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {claims} (\n  \
                     tbl text NOT NULL,\n  \
                     unique_columns text NOT NULL,\n  \
                     value jsonb NOT NULL,\n  \
                     version bigint NOT NULL,\n  \
                     origin text NOT NULL,\n  \
                     owner_pk jsonb NOT NULL,\n  \
                     recorded_at timestamptz NOT NULL DEFAULT now(),\n  \
                     PRIMARY KEY (tbl, unique_columns, value)\n)"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS claims_recorded_at_idx ON {claims} (recorded_at)"
                ),
            ],
            columns: columns(&[
                ("tbl", "text"),
                ("unique_columns", "text"),
                ("value", "jsonb"),
                ("version", "bigint"),
                ("origin", "text"),
                ("owner_pk", "jsonb"),
                ("recorded_at", "timestamp with time zone"),
            ]),
        },
        InternalTable {
            name: internal(CONFLICTS_TABLE),
            // Written only when a resolution discards a write, so an identity is no hot spot.
            create_sql: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {conflicts} (\n  \
                     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n  \
                     at timestamptz NOT NULL DEFAULT now(),\n  \
                     tbl text NOT NULL,\n  \
                     pk jsonb NOT NULL,\n  \
                     kind text NOT NULL,\n  \
                     winner text NOT NULL,\n  \
                     unique_columns text,\n  \
                     local_row jsonb,\n  \
                     remote_row jsonb,\n  \
                     local_version bigint,\n  \
                     local_origin text,\n  \
                     remote_version bigint,\n  \
                     remote_origin text\n)"
                ),
                format!("CREATE INDEX IF NOT EXISTS conflicts_at_idx ON {conflicts} (at)"),
            ],
            columns: columns(&[
                ("id", "bigint"),
                ("at", "timestamp with time zone"),
                ("tbl", "text"),
                ("pk", "jsonb"),
                ("kind", "text"),
                ("winner", "text"),
                ("unique_columns", "text"),
                ("local_row", "jsonb"),
                ("remote_row", "jsonb"),
                ("local_version", "bigint"),
                ("local_origin", "text"),
                ("remote_version", "bigint"),
                ("remote_origin", "text"),
            ]),
        },
    ]
}

/// Wall clock in microseconds plus the `pgconverge.clock_offset_ms` setting. The same text
/// is inlined into the stamp functions (a SQL function with a SET clause cannot be inlined).
pub fn now_us_expression() -> String {
    format!(
        "(EXTRACT(EPOCH FROM pg_catalog.clock_timestamp()) * 1000000)::bigint + \
         COALESCE(NULLIF(pg_catalog.current_setting({}, true), ''), '0')::bigint * 1000",
        quote_literal(CLOCK_OFFSET_SETTING)
    )
}

/// `_pgconverge.node_name()`, as the other bodies call it. It is IMMUTABLE and takes no
/// arguments, so the planner folds each call to a constant when it plans the statement; a
/// new node name invalidates those plans.
pub fn node_name_call() -> String {
    format!(
        "{}.{}()",
        quote_ident(INTERNAL_SCHEMA),
        quote_ident(NODE_NAME_FUNCTION)
    )
}

pub fn node_name_function(node_name: &str) -> FunctionDef {
    FunctionDef::new(
        internal(NODE_NAME_FUNCTION),
        "",
        "text",
        "sql",
        "IMMUTABLE PARALLEL SAFE",
        format!("\nSELECT {}::text\n", quote_literal(node_name)),
    )
}

pub fn now_us_function() -> FunctionDef {
    FunctionDef::new(
        internal(NOW_US_FUNCTION),
        "",
        "bigint",
        "sql",
        "VOLATILE PARALLEL SAFE",
        format!("\nSELECT {}\n", now_us_expression()),
    )
}

pub fn refuse_truncate_function() -> FunctionDef {
    let body = "
BEGIN
  RAISE EXCEPTION USING
    ERRCODE = 'feature_not_supported',
    MESSAGE = pg_catalog.format('pgconverge: TRUNCATE of %I.%I would not reach the other nodes', TG_TABLE_SCHEMA, TG_TABLE_NAME),
    HINT = 'Use DELETE, which every node replays. To empty this node only, disable trigger _pgc_95_truncate for the statement.';
END
";
    FunctionDef::plpgsql(
        internal(REFUSE_TRUNCATE_FUNCTION),
        "",
        "trigger",
        body.to_string(),
    )
}

/// `_pgconverge.prune()`: removes ledger rows older than the conflict retention and
/// tombstones / claims older than the tombstone retention, at most [`PRUNE_BATCH`] per table
/// and call. Returns the number of rows removed. A retention of 0 days keeps rows forever.
pub fn prune_function(replication: &ReplicationConfig) -> FunctionDef {
    let mut body =
        String::from("\nDECLARE\n  _pgc_removed bigint := 0;\n  _pgc_count bigint;\nBEGIN\n");
    let batches = [
        (
            CONFLICTS_TABLE,
            "id",
            "at",
            replication.conflict_retention_days,
        ),
        (
            TOMBSTONES_TABLE,
            "tbl, pk",
            "recorded_at",
            replication.tombstone_retention_days,
        ),
        (
            CLAIMS_TABLE,
            "tbl, unique_columns, value",
            "recorded_at",
            replication.tombstone_retention_days,
        ),
    ];
    for (table, key, time_column, days) in batches {
        if days == 0 {
            continue;
        }
        let t = internal_table(table);
        let interval = quote_literal(&format!("{days} days"));
        body.push_str(&format!(
            "  DELETE FROM {t} WHERE ({key}) IN (\n    \
             SELECT {key} FROM {t}\n    \
             WHERE {time_column} < pg_catalog.now() - {interval}::interval\n    \
             ORDER BY {time_column}\n    \
             LIMIT {PRUNE_BATCH}\n  );\n  \
             GET DIAGNOSTICS _pgc_count = ROW_COUNT;\n  \
             _pgc_removed := _pgc_removed + _pgc_count;\n"
        ));
    }
    body.push_str("  RETURN _pgc_removed;\nEND\n");
    FunctionDef::plpgsql(internal(PRUNE_FUNCTION), "", "bigint", body)
}

/// Parameters of the shared functions are named `_pgc_…`: bare column names in their
/// statements (`ON CONFLICT (tbl, pk)`) would be ambiguous with same-named parameters.
fn shared_function(name: &str, arguments: &[(&str, &str)], statement: &str) -> FunctionDef {
    let identity_arguments = arguments
        .iter()
        .map(|(n, t)| format!("_pgc_{n} {t}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut body = String::from("\nBEGIN\n");
    for line in statement.lines() {
        body.push_str("  ");
        body.push_str(line);
        body.push('\n');
    }
    body.push_str("END\n");
    FunctionDef::plpgsql(internal(name), &identity_arguments, "void", body)
}

/// `INSERT … ON CONFLICT DO UPDATE … WHERE newer` for table key expression `tbl`: the
/// tombstone register keeps the greatest stamp.
pub fn tombstone_upsert_sql(tbl: &str, key: &str, version: &str, origin: &str) -> String {
    format!(
        "INSERT INTO {t} AS t (tbl, pk, version, origin, recorded_at)\n\
         VALUES ({tbl}, {key}, {version}, {origin}, pg_catalog.now())\n\
         ON CONFLICT (tbl, pk) DO UPDATE\n  \
         SET version = excluded.version, origin = excluded.origin, recorded_at = excluded.recorded_at\n  \
         WHERE {newer};",
        t = internal_table(TOMBSTONES_TABLE),
        newer = stamp_greater("excluded.version", "excluded.origin", "t.version", "t.origin"),
    )
}

/// Merges a claim on unique value `value` of the constraint labelled `label` for table key
/// `tbl` (a max-register per value).
pub fn claim_upsert_sql(
    tbl: &str,
    label: &str,
    value: &str,
    version: &str,
    origin: &str,
    owner: &str,
) -> String {
    format!(
        "INSERT INTO {c} AS c (tbl, unique_columns, value, version, origin, owner_pk, recorded_at)\n\
         VALUES ({tbl}, {label}, {value}, {version}, {origin}, {owner}, pg_catalog.now())\n\
         ON CONFLICT (tbl, unique_columns, value) DO UPDATE\n  \
         SET version = excluded.version, origin = excluded.origin, owner_pk = excluded.owner_pk, recorded_at = excluded.recorded_at\n  \
         WHERE {newer};",
        c = internal_table(CLAIMS_TABLE),
        newer = stamp_greater("excluded.version", "excluded.origin", "c.version", "c.origin"),
    )
}

/// [`tombstone_upsert_sql`] for this table.
pub fn tombstone_upsert(shape: &TableShape, key: &str, version: &str, origin: &str) -> String {
    tombstone_upsert_sql(&shape.key_literal, key, version, origin)
}

/// [`tombstone_upsert`] as a call of the shared `_pgconverge.merge_tombstone()`: shorter,
/// for paths that run only when changes conflict.
pub fn tombstone_merge_call(shape: &TableShape, key: &str, version: &str, origin: &str) -> String {
    format!(
        "PERFORM {}({}, {key}, {version}, {origin});",
        internal_table(MERGE_TOMBSTONE_FUNCTION),
        shape.key_literal
    )
}

/// [`claim_upsert_sql`] for constraint `u` of this table.
pub fn claim_upsert(
    shape: &TableShape,
    u: &UniqueKey,
    value: &str,
    version: &str,
    origin: &str,
    owner: &str,
) -> String {
    claim_upsert_sql(
        &shape.key_literal,
        &quote_literal(&u.label),
        value,
        version,
        origin,
        owner,
    )
}

/// [`claim_upsert`] as a call of the shared `_pgconverge.merge_claim()`: shorter, for paths
/// that run only when changes conflict.
pub fn claim_merge_call(
    shape: &TableShape,
    u: &UniqueKey,
    value: &str,
    version: &str,
    origin: &str,
    owner: &str,
) -> String {
    format!(
        "PERFORM {}({}, {}, {value}, {version}, {origin}, {owner});",
        internal_table(MERGE_CLAIM_FUNCTION),
        shape.key_literal,
        quote_literal(&u.label)
    )
}

/// `_pgconverge.merge_tombstone(tbl, pk, version, origin)`: the tombstone upsert of the
/// per-table functions, shared by their paths that run only when changes conflict (the common
/// paths keep the statement inline and skip a call).
pub fn merge_tombstone_function() -> FunctionDef {
    shared_function(
        MERGE_TOMBSTONE_FUNCTION,
        &[
            ("tbl", "text"),
            ("pk", "jsonb"),
            ("version", "bigint"),
            ("origin", "text"),
        ],
        &tombstone_upsert_sql("_pgc_tbl", "_pgc_pk", "_pgc_version", "_pgc_origin"),
    )
}

/// `_pgconverge.merge_claim(tbl, unique_columns, value, version, origin, owner_pk)`: the
/// claim upsert, shared like [`merge_tombstone_function`].
pub fn merge_claim_function() -> FunctionDef {
    shared_function(
        MERGE_CLAIM_FUNCTION,
        &[
            ("tbl", "text"),
            ("unique_columns", "text"),
            ("value", "jsonb"),
            ("version", "bigint"),
            ("origin", "text"),
            ("owner_pk", "jsonb"),
        ],
        &claim_upsert_sql(
            "_pgc_tbl",
            "_pgc_unique_columns",
            "_pgc_value",
            "_pgc_version",
            "_pgc_origin",
            "_pgc_owner_pk",
        ),
    )
}

/// Columns of a conflict-ledger row as the apply functions write them.
const CONFLICT_COLUMNS: [(&str, &str); 11] = [
    ("tbl", "text"),
    ("pk", "jsonb"),
    ("kind", "text"),
    ("winner", "text"),
    ("unique_columns", "text"),
    ("local_row", "jsonb"),
    ("remote_row", "jsonb"),
    ("local_version", "bigint"),
    ("local_origin", "text"),
    ("remote_version", "bigint"),
    ("remote_origin", "text"),
];

/// `_pgconverge.record_conflict(…)`: inserts one ledger row. Only resolutions that discard a
/// write call it, so the apply functions share it instead of each spelling the INSERT.
pub fn record_conflict_function() -> FunctionDef {
    let columns: Vec<&str> = CONFLICT_COLUMNS.iter().map(|(n, _)| *n).collect();
    let values: Vec<String> = columns.iter().map(|n| format!("_pgc_{n}")).collect();
    shared_function(
        RECORD_CONFLICT_FUNCTION,
        &CONFLICT_COLUMNS,
        &format!(
            "INSERT INTO {} ({})\nVALUES ({});",
            internal_table(CONFLICTS_TABLE),
            columns.join(", "),
            values.join(", ")
        ),
    )
}
