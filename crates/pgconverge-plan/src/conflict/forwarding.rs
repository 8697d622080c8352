//! The forwarding write path (`"write_path": "forwarding"`): no change record per write. Base
//! tables are published, every node subscribes to every other with `origin = any` and so
//! forwards what it applies, and each row carries its incarnation (`_pgc_birth`, the stamp of
//! the INSERT that created it). The replica identity is the primary key plus the incarnation,
//! so an incoming UPDATE or DELETE only touches the incarnation it was made on. Order:
//! incarnation first, then version; a delete wins within an incarnation. docs/conflicts.md
//! ("A write path without a second row") gives the argument and its four conditions.
//!
//! Per table: one local function (BEFORE INSERT OR UPDATE stamps, AFTER DELETE writes the
//! tombstone) and one apply function (REPLICA, BEFORE INSERT OR UPDATE OR DELETE merges).

use std::sync::Arc;

use pgconverge_model::TableConfig;
use pgconverge_sql::quote_ident;

use super::internal::{
    internal_table, now_us_expression, now_us_function, refuse_truncate_function, schema_sql,
};
use super::naming::{
    internal, per_table_function, BIRTH_COLUMN, FORWARDING_APPLY_TRIGGER,
    FORWARDING_DELETE_TRIGGER, FORWARDING_SESSION_FUNCTION, FORWARDING_STAMP_TRIGGER,
    FORWARDING_TOMBSTONES_TABLE, MERGE_INCARNATION_TOMBSTONE_FUNCTION, ORIGIN_COLUMN,
    REFUSE_TRUNCATE_FUNCTION, TRUNCATE_TRIGGER, VERSION_COLUMN,
};
use super::shape::{field, stamp_greater, TableShape};
use super::{
    ConflictObjects, FunctionDef, InternalTable, ReservedColumn, SubscriptionOrigin, TriggerDef,
    TriggerFiring,
};

/// Values at least this large may be stored out of line: a local UPDATE that leaves one
/// alone would send it as "unchanged", and a receiver would keep its own, maybe of another
/// version. Such values are rebuilt so that they are stored and sent again.
const OUT_OF_LINE_BYTES: u32 = 1800;

/// Types PostgreSQL always stores inline, in every spelling a config may use, without a
/// precision: their values never need rebuilding. Spelled out here rather than through the
/// model's `normalize_type`, so the generated SQL depends only on fingerprinted sources.
const FIXED_WIDTH_TYPES: &[&str] = &[
    "smallint",
    "int2",
    "smallserial",
    "serial2",
    "integer",
    "int",
    "int4",
    "serial",
    "serial4",
    "bigint",
    "int8",
    "bigserial",
    "serial8",
    "boolean",
    "bool",
    "real",
    "float4",
    "double precision",
    "float8",
    "date",
    "time",
    "time without time zone",
    "timestamp",
    "timestamp without time zone",
    "timestamptz",
    "timestamp with time zone",
    "uuid",
    "money",
    "oid",
];

/// Whether a column of `data_type` (as configured) is always stored inline.
fn stored_inline(data_type: &str) -> bool {
    let lower = data_type.to_ascii_lowercase();
    // `timestamp(3) with time zone` is as wide as `timestamp with time zone`.
    let without_precision = match (lower.find('('), lower.find(')')) {
        (Some(open), Some(close)) if open < close => {
            format!("{} {}", &lower[..open], &lower[close + 1..])
        }
        _ => lower,
    };
    let words: Vec<&str> = without_precision.split_whitespace().collect();
    FIXED_WIDTH_TYPES.contains(&words.join(" ").as_str())
}

/// The reserved columns of a table on the forwarding path: the latest write's stamp and the
/// incarnation. Rows that existed before get the defaults, identical on every node.
pub fn reserved_columns() -> Vec<ReservedColumn> {
    let mut columns = super::reserved_columns();
    columns.push(ReservedColumn {
        name: BIRTH_COLUMN.to_string(),
        data_type: "bigint".to_string(),
        not_null: true,
        default: Some("0".to_string()),
    });
    columns
}

/// The forwarding path's objects of every node for `tables`.
pub fn cluster_objects(tables: &[TableConfig]) -> ConflictObjects {
    let shapes: Vec<Arc<TableShape>> = tables
        .iter()
        .map(|table| {
            let mut shape = TableShape::new(table);
            shape.columns.push(BIRTH_COLUMN.to_string());
            Arc::new(shape)
        })
        .collect();
    let mut functions = vec![
        now_us_function(),
        refuse_truncate_function(),
        session_function(),
        merge_tombstone_function(),
    ];
    let mut triggers = Vec::new();
    for shape in &shapes {
        let local = per_table_function("fwd_local", &shape.name);
        let apply = per_table_function("fwd_apply", &shape.name);
        functions.push(FunctionDef::for_table(
            local.clone(),
            "fwd_local",
            shape,
            local_function,
        ));
        functions.push(FunctionDef::for_table(
            apply.clone(),
            "fwd_apply",
            shape,
            apply_function,
        ));
        let on = &shape.name;
        triggers.extend([
            TriggerDef::new(
                on,
                FORWARDING_STAMP_TRIGGER,
                "BEFORE INSERT OR UPDATE",
                "ROW",
                None,
                local.clone(),
                TriggerFiring::Local,
            ),
            TriggerDef::new(
                on,
                FORWARDING_DELETE_TRIGGER,
                "AFTER DELETE",
                "ROW",
                None,
                local,
                TriggerFiring::Local,
            ),
            TriggerDef::new(
                on,
                TRUNCATE_TRIGGER,
                "BEFORE TRUNCATE",
                "STATEMENT",
                None,
                internal(REFUSE_TRUNCATE_FUNCTION),
                TriggerFiring::Local,
            ),
            TriggerDef::new(
                on,
                FORWARDING_APPLY_TRIGGER,
                "BEFORE INSERT OR UPDATE OR DELETE",
                "ROW",
                None,
                apply,
                TriggerFiring::Replica,
            ),
        ]);
    }
    ConflictObjects {
        schema_sql: schema_sql(),
        internal_tables: vec![tombstones_table()],
        functions: functions.into_iter().map(Arc::new).collect(),
        triggers: triggers.into_iter().map(Arc::new).collect(),
        reserved_columns: reserved_columns(),
        published_tables: shapes.iter().map(|s| s.name.clone()).collect(),
        subscription_origin: SubscriptionOrigin::Any,
        publish_operations: ["insert", "update", "delete"].map(String::from).to_vec(),
    }
}

/// One row per key that lost an incarnation: the newest deleted one (a max-register). An
/// INSERT of that incarnation or an older one is dropped; a local re-insert is born above it.
fn tombstones_table() -> InternalTable {
    let table = internal_table(FORWARDING_TOMBSTONES_TABLE);
    InternalTable {
        name: internal(FORWARDING_TOMBSTONES_TABLE),
        create_sql: vec![format!(
            "CREATE TABLE IF NOT EXISTS {table} (\n  \
             tbl text NOT NULL,\n  \
             pk jsonb NOT NULL,\n  \
             birth bigint NOT NULL,\n  \
             recorded_at timestamptz NOT NULL DEFAULT now(),\n  \
             PRIMARY KEY (tbl, pk)\n)"
        )],
        columns: [
            ("tbl", "text"),
            ("pk", "jsonb"),
            ("birth", "bigint"),
            ("recorded_at", "timestamp with time zone"),
        ]
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect(),
    }
}

/// Makes a local transaction, not the apply worker, the victim of a deadlock between them.
/// No node-wide apply lock can serialise apply workers here: PostgreSQL locks the row an
/// incoming UPDATE or DELETE names before any trigger runs, so a worker would wait for that
/// lock while holding a row another worker needs.
fn session_function() -> FunctionDef {
    FunctionDef::new(
        internal(FORWARDING_SESSION_FUNCTION),
        "",
        "void",
        "sql",
        "",
        "\nSELECT pg_catalog.set_config('deadlock_timeout', '10s', true)\n".to_string(),
    )
}

fn merge_tombstone_function() -> FunctionDef {
    let table = internal_table(FORWARDING_TOMBSTONES_TABLE);
    FunctionDef::new(
        internal(MERGE_INCARNATION_TOMBSTONE_FUNCTION),
        "p_tbl text, p_pk jsonb, p_birth bigint",
        "void",
        "sql",
        "",
        format!(
            "\nINSERT INTO {table} AS t (tbl, pk, birth) VALUES (p_tbl, p_pk, p_birth)\n\
             ON CONFLICT (tbl, pk) DO UPDATE SET birth = excluded.birth, recorded_at = now()\n\
             WHERE t.birth < excluded.birth\n"
        ),
    )
}

/// `a = NEW.a AND b = NEW.b`: the key of `rec`, as a condition on the table's rows.
fn key_match(shape: &TableShape, rec: &str) -> String {
    shape
        .primary_key
        .iter()
        .map(|k| format!("{} = {}", quote_ident(&k.name), field(rec, &k.name)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// `SELECT birth INTO _pgc_dead …`: the key's deleted incarnation, NULL when there is none.
fn read_tombstone(shape: &TableShape, rec: &str) -> String {
    format!(
        "SELECT birth INTO _pgc_dead FROM {} WHERE tbl = {} AND pk = {};",
        internal_table(FORWARDING_TOMBSTONES_TABLE),
        shape.key_literal,
        shape.key_json(rec)
    )
}

fn merge_tombstone_call(shape: &TableShape) -> String {
    format!(
        "PERFORM {}({}, {}, OLD.{});",
        internal_table(MERGE_INCARNATION_TOMBSTONE_FUNCTION),
        shape.key_literal,
        shape.key_json("OLD"),
        quote_ident(BIRTH_COLUMN)
    )
}

/// Statements rebuilding each value an UPDATE could leave out of line.
fn resend_out_of_line_values(table: &TableShape, config_types: &[(String, String)]) -> String {
    config_types
        .iter()
        .filter(|(name, data_type)| {
            !table.primary_key.iter().any(|k| &k.name == name)
                && !table.generated.contains(name)
                && !stored_inline(data_type)
        })
        .map(|(name, _)| {
            let f = field("NEW", name);
            format!(
                "\n    IF pg_catalog.pg_column_size({f}) > {OUT_OF_LINE_BYTES} THEN {f} := (ARRAY[{f}])[1]; END IF;"
            )
        })
        .collect()
}

/// Local writes: an INSERT gets a new incarnation above the key's tombstone, an UPDATE a new
/// version of the same incarnation (its key cannot change), a DELETE writes the tombstone.
fn local_function(shape: &TableShape, node_name: &str) -> FunctionDef {
    let birth = quote_ident(BIRTH_COLUMN);
    let version = quote_ident(VERSION_COLUMN);
    let origin = quote_ident(ORIGIN_COLUMN);
    let key_changed = shape
        .primary_key
        .iter()
        .map(|k| {
            format!(
                "{} IS DISTINCT FROM {}",
                field("NEW", &k.name),
                field("OLD", &k.name)
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    let typed: Vec<(String, String)> = shape
        .typed_columns
        .iter()
        .map(|c| (c.name.clone(), c.data_type.clone()))
        .collect();
    let body = format!(
        "
DECLARE
  _pgc_v bigint;
  _pgc_dead bigint;
BEGIN
  IF TG_OP = 'DELETE' THEN
    -- The incarnation is dead on this node; the register makes it dead for good.
    {merge_tombstone}
    RETURN OLD;
  END IF;
  _pgc_v := {now_us};
  IF TG_OP = 'INSERT' THEN
    -- A live row of the key makes this insert fail, unless a transaction is deleting it:
    -- then wait for it, so that its tombstone is read below.
    PERFORM 1 FROM {table} WHERE {key_match} FOR KEY SHARE;
    {read_tombstone}
    IF _pgc_dead >= _pgc_v THEN _pgc_v := _pgc_dead + 1; END IF;
    NEW.{birth} := _pgc_v;
  ELSE
    IF {key_changed} OR NEW.{birth} IS DISTINCT FROM OLD.{birth} THEN
      RAISE EXCEPTION USING
        ERRCODE = 'feature_not_supported',
        MESSAGE = pg_catalog.format('pgconverge: the primary key of %s cannot change on the forwarding write path', {key_literal}),
        HINT = 'Delete the row and insert the new one.';
    END IF;
    _pgc_v := GREATEST(_pgc_v, OLD.{version} + 1);{resend}
  END IF;
  NEW.{version} := _pgc_v;
  NEW.{origin} := {node_name};
  RETURN NEW;
END
",
        merge_tombstone = merge_tombstone_call(shape),
        now_us = now_us_expression(),
        table = shape.qualified,
        key_match = key_match(shape, "NEW"),
        read_tombstone = read_tombstone(shape, "NEW"),
        key_literal = shape.key_literal,
        resend = resend_out_of_line_values(shape, &typed),
    );
    FunctionDef::plpgsql(
        per_table_function("fwd_local", &shape.name),
        "",
        "trigger",
        body,
    )
}

/// Incoming writes (apply workers only). An INSERT is merged with whatever this node holds
/// for the key and written by the function itself, so a local insert racing it is never an
/// apply error. An UPDATE found this node's row of the incarnation it names: within it the
/// greater version wins; a forwarded replacement by a newer incarnation is taken unless that
/// one is dead here. A DELETE names this node's incarnation and so wins over any version.
fn apply_function(shape: &TableShape, _node_name: &str) -> FunctionDef {
    let birth = quote_ident(BIRTH_COLUMN);
    let version = quote_ident(VERSION_COLUMN);
    let origin = quote_ident(ORIGIN_COLUMN);
    let stamp = |rec: &str| {
        format!(
            "({rec}.{birth}, {rec}.{version}, {rec}.{origin} COLLATE \"C\")",
            rec = rec
        )
    };
    let set_list = shape
        .updatable_columns()
        .iter()
        .map(|c| format!("{} = {}", quote_ident(c), field("NEW", c)))
        .collect::<Vec<_>>()
        .join(", ");
    let body = format!(
        "
DECLARE
  _pgc_cur record;
  _pgc_dead bigint;
BEGIN
  -- This function's own writes below fire it again.
  IF pg_catalog.pg_trigger_depth() > 1 THEN
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
  END IF;
  PERFORM {session}();
  IF TG_OP = 'DELETE' THEN
    {merge_tombstone}
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NEW.{birth} = OLD.{birth} THEN
      IF {newer_version} THEN RETURN NEW; END IF;
      RETURN NULL;
    END IF;
    IF NEW.{birth} < OLD.{birth} THEN RETURN NULL; END IF;
    {read_tombstone}
    IF _pgc_dead >= NEW.{birth} THEN RETURN NULL; END IF;
    RETURN NEW;
  END IF;
  {read_tombstone}
  IF _pgc_dead >= NEW.{birth} THEN RETURN NULL; END IF;
  LOOP
    SELECT {birth}, {version}, {origin} INTO _pgc_cur FROM {table} WHERE {key_match} FOR UPDATE;
    IF NOT FOUND THEN
      -- The row may have gone while this waited for its lock: its delete's tombstone, which
      -- the check above could not see yet, decides.
      {read_tombstone}
      IF _pgc_dead >= NEW.{birth} THEN RETURN NULL; END IF;
      {insert}
      IF FOUND THEN RETURN NULL; END IF;
      CONTINUE;
    END IF;
    IF {new_stamp} > {cur_stamp} THEN
      UPDATE {table} SET {set_list} WHERE {key_match};
    END IF;
    RETURN NULL;
  END LOOP;
END
",
        session = internal_table(FORWARDING_SESSION_FUNCTION),
        merge_tombstone = merge_tombstone_call(shape),
        newer_version = stamp_greater(
            &format!("NEW.{version}"),
            &format!("NEW.{origin}"),
            &format!("OLD.{version}"),
            &format!("OLD.{origin}")
        ),
        read_tombstone = read_tombstone(shape, "NEW"),
        table = shape.qualified,
        key_match = key_match(shape, "NEW"),
        insert = shape.insert_row_sql("NEW"),
        new_stamp = stamp("NEW"),
        cur_stamp = stamp("_pgc_cur"),
    );
    FunctionDef::plpgsql(
        per_table_function("fwd_apply", &shape.name),
        "",
        "trigger",
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::stored_inline;

    #[test]
    fn fixed_width_types_are_known_by_any_spelling() {
        for inline in [
            "int",
            "INT4",
            "bigserial",
            "timestamptz",
            "timestamp(3) with time zone",
            "bool",
            "uuid",
        ] {
            assert!(stored_inline(inline), "{inline}");
        }
        for varlena in [
            "text",
            "varchar(20)",
            "numeric(12,2)",
            "int[]",
            "jsonb",
            "bytea",
        ] {
            assert!(!stored_inline(varlena), "{varlena}");
        }
    }
}
