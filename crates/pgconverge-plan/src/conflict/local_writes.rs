//! Trigger functions for local writes: stamping (BEFORE) and logging (AFTER).
//!
//! The stamp function never returns NULL, so a local UPDATE always reports the rows it
//! matched. A new stamp is above the wall clock, the version it overwrites, the tombstone of a
//! key it re-creates and the claims on unique values it takes; the log function records the
//! write in the change log together with the version it overwrote.

use super::internal::{claim_upsert, internal_table, now_us_expression, tombstone_upsert};
use super::naming::{CHANGES_TABLE, CLAIMS_TABLE, TOMBSTONES_TABLE};
use super::shape::{field, stamp_greater, TableShape, UniqueKey};
use super::FunctionDef;
use pgconverge_sql::quote_literal;

/// Accumulates the lines of a PL/pgSQL body with two-space indentation.
pub struct Body {
    text: String,
}

impl Body {
    pub fn new() -> Body {
        Body {
            text: String::from("\n"),
        }
    }

    pub fn line(&mut self, depth: usize, line: impl AsRef<str>) {
        for _ in 0..depth {
            self.text.push_str("  ");
        }
        self.text.push_str(line.as_ref());
        self.text.push('\n');
    }

    /// Adds a multi-line statement, each line indented by `depth` more.
    pub fn block(&mut self, depth: usize, lines: &str) {
        for l in lines.lines() {
            self.line(depth, l);
        }
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// Locks `_pgc_stripes` (an `integer[]` variable) in share mode, in ascending order, inline:
/// a local write's path calls no function. Ascending everywhere (the apply path's exclusive
/// locks are `lock_apply_stripes()`), so two writers never wait for each other's stripes in a
/// cycle.
fn lock_stripes_shared(body: &mut Body, depth: usize, shape: &TableShape) {
    body.line(depth, "IF pg_catalog.cardinality(_pgc_stripes) = 1 THEN");
    body.line(
        depth + 1,
        format!(
            "PERFORM pg_catalog.pg_advisory_xact_lock_shared({}, _pgc_stripes[1]);",
            shape.stripe_class
        ),
    );
    body.line(depth, "ELSIF pg_catalog.cardinality(_pgc_stripes) > 1 THEN");
    body.line(
        depth + 1,
        "FOREACH _pgc_stripe IN ARRAY (SELECT pg_catalog.array_agg(DISTINCT s ORDER BY s) FROM pg_catalog.unnest(_pgc_stripes) AS s) LOOP",
    );
    body.line(
        depth + 2,
        format!(
            "PERFORM pg_catalog.pg_advisory_xact_lock_shared({}, _pgc_stripe);",
            shape.stripe_class
        ),
    );
    body.line(depth + 1, "END LOOP;");
    body.line(depth, "END IF;");
}

/// Condition of the common case: an UPDATE keeping its primary key and unique values.
///
/// PL/pgSQL prepares each expression it evaluates once per transaction, so in short
/// transactions the cost of a trigger grows with the number of expressions it runs; the
/// common case gets a path of its own with as few as possible.
fn same_key_and_values(shape: &TableShape) -> String {
    let mut condition = format!(
        "TG_OP = 'UPDATE' AND {} IS NOT DISTINCT FROM {}",
        shape.key_tuple("NEW"),
        shape.key_tuple("OLD")
    );
    for u in &shape.uniques {
        condition.push_str(&format!(
            " AND {} IS NOT DISTINCT FROM {}",
            shape.unique_tuple(u, "NEW"),
            shape.unique_tuple(u, "OLD")
        ));
    }
    condition
}

fn stamp_columns(b: &mut Body, depth: usize, shape: &TableShape, version: &str, node_name: &str) {
    b.line(
        depth,
        format!(
            "{} := {version};",
            field("NEW", super::naming::VERSION_COLUMN)
        ),
    );
    b.line(
        depth,
        format!(
            "{} := {node_name};",
            field("NEW", super::naming::ORIGIN_COLUMN)
        ),
    );
    if let Some(column) = &shape.legacy_updated_at {
        b.line(
            depth,
            format!("{} := pg_catalog.now();", field("NEW", column)),
        );
    }
    if let Some(column) = &shape.legacy_origin_node {
        b.line(depth, format!("{} := {node_name};", field("NEW", column)));
    }
    b.line(depth, "RETURN NEW;");
}

/// The version just above the tombstone of key `key` (a jsonb expression), NULL without one.
fn tombstone_successor(shape: &TableShape, key: &str) -> String {
    format!(
        "(SELECT t.version + 1 FROM {} AS t WHERE t.tbl = {} AND t.pk = {key})",
        internal_table(TOMBSTONES_TABLE),
        shape.key_literal
    )
}

/// BEFORE INSERT OR UPDATE: stamps `_pgc_version` / `_pgc_origin` (and legacy columns).
pub fn stamp_function(shape: &TableShape, node_name: &str) -> FunctionDef {
    let claims = internal_table(CLAIMS_TABLE);
    let mut b = Body::new();
    b.line(0, "DECLARE");
    b.line(1, "_pgc_stamp bigint;");
    b.line(1, "_pgc_key jsonb;");
    for (i, _) in shape.uniques.iter().enumerate() {
        b.line(1, format!("_pgc_value_{i} jsonb;"));
    }
    b.line(1, "_pgc_stripes integer[];");
    b.line(1, "_pgc_stripe integer;");
    b.line(0, "BEGIN");
    b.line(1, format!("IF {} THEN", same_key_and_values(shape)));
    stamp_columns(
        &mut b,
        2,
        shape,
        &format!(
            "GREATEST({}, {} + 1)",
            now_us_expression(),
            field("OLD", super::naming::VERSION_COLUMN)
        ),
        node_name,
    );
    b.line(1, "END IF;");
    if shape.uniques.is_empty() {
        // Short path of an INSERT into a table without unique constraints: one stripe, one
        // lookup. The lookup is a statement of its own after the lock, so that its snapshot
        // sees a tombstone an apply worker committed while this write waited for the stripe.
        b.line(1, "IF TG_OP = 'INSERT' THEN");
        b.line(2, format!("_pgc_key := {};", shape.key_json("NEW")));
        b.line(
            2,
            format!(
                "PERFORM pg_catalog.pg_advisory_xact_lock_shared({}, {});",
                shape.stripe_class,
                shape.stripe(shape.key_tag(), "_pgc_key")
            ),
        );
        stamp_columns(
            &mut b,
            2,
            shape,
            &format!(
                "GREATEST({}, {})",
                now_us_expression(),
                tombstone_successor(shape, "_pgc_key")
            ),
            node_name,
        );
        b.line(1, "END IF;");
    }
    b.line(1, format!("_pgc_stamp := {};", now_us_expression()));
    b.line(1, "_pgc_stripes := '{}';");

    // Which keys / values this write takes: the new key and every unique value on INSERT;
    // on UPDATE only those that change (the row already holds the others).
    let take_key = |b: &mut Body, depth: usize| {
        b.line(depth, format!("_pgc_key := {};", shape.key_json("NEW")));
        b.line(
            depth,
            format!(
                "_pgc_stripes := _pgc_stripes || {};",
                shape.stripe(shape.key_tag(), "_pgc_key")
            ),
        );
    };
    let take_value = |b: &mut Body, depth: usize, i: usize, u: &UniqueKey| {
        b.line(
            depth,
            format!("_pgc_value_{i} := {};", shape.unique_json(u, "NEW")),
        );
        b.line(
            depth,
            format!(
                "_pgc_stripes := _pgc_stripes || {};",
                shape.stripe(&shape.unique_tag(u), &format!("_pgc_value_{i}"))
            ),
        );
    };

    // Without uniques, every INSERT took the short path above: only an UPDATE gets here.
    if !shape.uniques.is_empty() {
        b.line(1, "IF TG_OP = 'INSERT' THEN");
        take_key(&mut b, 2);
        for (i, u) in shape.uniques.iter().enumerate() {
            b.line(2, format!("IF {} THEN", shape.unique_present(u, "NEW")));
            take_value(&mut b, 3, i, u);
            b.line(2, "END IF;");
        }
        b.line(1, "ELSE");
    }
    let d = if shape.uniques.is_empty() { 1 } else { 2 };
    b.line(
        d,
        format!(
            "_pgc_stamp := GREATEST(_pgc_stamp, {} + 1);",
            field("OLD", super::naming::VERSION_COLUMN)
        ),
    );
    b.line(
        d,
        format!(
            "IF {} IS DISTINCT FROM {} THEN",
            shape.key_tuple("NEW"),
            shape.key_tuple("OLD")
        ),
    );
    take_key(&mut b, d + 1);
    b.line(d, "END IF;");
    for (i, u) in shape.uniques.iter().enumerate() {
        b.line(
            d,
            format!(
                "IF {} AND {} IS DISTINCT FROM {} THEN",
                shape.unique_present(u, "NEW"),
                shape.unique_tuple(u, "NEW"),
                shape.unique_tuple(u, "OLD")
            ),
        );
        take_value(&mut b, d + 1, i, u);
        b.line(d, "END IF;");
    }
    if !shape.uniques.is_empty() {
        b.line(1, "END IF;");
    }

    b.line(
        1,
        "-- Share mode: local writers never wait for each other here; the apply path takes",
    );
    b.line(
        1,
        "-- a stripe exclusively before it records a tombstone or claim no locked row guards.",
    );
    lock_stripes_shared(&mut b, 1, shape);

    // GREATEST ignores the NULL of a missing tombstone or claim: one statement per lookup.
    b.line(1, "IF _pgc_key IS NOT NULL THEN");
    b.line(
        2,
        format!(
            "_pgc_stamp := GREATEST(_pgc_stamp, {});",
            tombstone_successor(shape, "_pgc_key")
        ),
    );
    b.line(1, "END IF;");
    for (i, u) in shape.uniques.iter().enumerate() {
        b.line(1, format!("IF _pgc_value_{i} IS NOT NULL THEN"));
        b.line(
            2,
            format!(
                "_pgc_stamp := GREATEST(_pgc_stamp, (SELECT c.version + 1 FROM {claims} AS c WHERE c.tbl = {} AND c.unique_columns = {} AND c.value = _pgc_value_{i}));",
                shape.key_literal,
                quote_literal(&u.label)
            ),
        );
        b.line(1, "END IF;");
    }

    stamp_columns(&mut b, 1, shape, "_pgc_stamp", node_name);
    b.line(0, "END");

    FunctionDef::plpgsql(shape.stamp_function.clone(), "", "trigger", b.finish())
}

/// Raises a serialization failure (the client retries) when a replicated write committed a
/// tombstone or claim at or above this write's stamp after the stamp was taken.
fn raise_concurrent(b: &mut Body, depth: usize, shape: &TableShape, what: &str, key: &str) {
    b.line(depth, "RAISE EXCEPTION USING");
    b.line(depth + 1, "ERRCODE = 'serialization_failure',");
    b.line(
        depth + 1,
        format!(
            "MESSAGE = pg_catalog.format('pgconverge: %s %s of %s was written concurrently by a replicated change', {}, {key}, {}),",
            quote_literal(what),
            shape.key_literal
        ),
    );
    b.line(depth + 1, "HINT = 'Retry the transaction.';");
}

/// Under REPEATABLE READ or SERIALIZABLE the statement's snapshot may predate a tombstone or
/// claim a replicated change committed meanwhile, which DELETE would not see. Inserting a
/// placeholder with ON CONFLICT DO NOTHING makes PostgreSQL raise a serialization failure
/// exactly then; otherwise the placeholder (version -1) is removed by the DELETE that follows.
fn probe_under_snapshot(b: &mut Body, depth: usize, insert: &str) {
    b.line(
        depth,
        "IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN",
    );
    b.block(depth + 1, insert);
    b.line(depth, "END IF;");
}

/// The new row takes over its key: the tombstone it supersedes goes.
fn take_over_key(b: &mut Body, depth: usize, shape: &TableShape) {
    let tombstones = internal_table(TOMBSTONES_TABLE);
    probe_under_snapshot(
        b,
        depth,
        &format!(
            "INSERT INTO {tombstones} (tbl, pk, version, origin) VALUES ({}, {}, -1, '')\n  \
             ON CONFLICT DO NOTHING;",
            shape.key_literal,
            shape.key_json("NEW")
        ),
    );
    b.block(
        depth,
        &format!(
            "DELETE FROM {tombstones} AS t WHERE t.tbl = {} AND t.pk = {}\n  \
             RETURNING t.version, t.origin INTO _pgc_seen_version, _pgc_seen_origin;",
            shape.key_literal,
            shape.key_json("NEW")
        ),
    );
    b.line(depth, "IF FOUND AND _pgc_seen_version >= 0 THEN");
    b.line(
        depth + 1,
        format!(
            "IF NOT {} THEN",
            stamp_greater(
                &field("NEW", super::naming::VERSION_COLUMN),
                &field("NEW", super::naming::ORIGIN_COLUMN),
                "_pgc_seen_version",
                "_pgc_seen_origin"
            )
        ),
    );
    raise_concurrent(b, depth + 2, shape, "key", &shape.key_json("NEW"));
    b.line(depth + 1, "END IF;");
    b.line(depth + 1, "_pgc_prev_version := _pgc_seen_version;");
    b.line(depth + 1, "_pgc_prev_origin := _pgc_seen_origin;");
    b.line(depth, "END IF;");
}

/// The new row takes over a unique value: the claim it supersedes goes.
fn take_over_value(b: &mut Body, depth: usize, shape: &TableShape, u: &UniqueKey) {
    let claims = internal_table(CLAIMS_TABLE);
    let value = shape.unique_json(u, "NEW");
    probe_under_snapshot(
        b,
        depth,
        &format!(
            "INSERT INTO {claims} (tbl, unique_columns, value, version, origin, owner_pk)\n\
             VALUES ({}, {}, {value}, -1, '', {})\n  \
             ON CONFLICT DO NOTHING;",
            shape.key_literal,
            quote_literal(&u.label),
            shape.key_json("NEW")
        ),
    );
    b.block(
        depth,
        &format!(
            "DELETE FROM {claims} AS c WHERE c.tbl = {} AND c.unique_columns = {} AND c.value = {value}\n  \
             RETURNING c.version, c.origin INTO _pgc_seen_version, _pgc_seen_origin;",
            shape.key_literal,
            quote_literal(&u.label)
        ),
    );
    b.line(
        depth,
        format!(
            "IF FOUND AND _pgc_seen_version >= 0 AND NOT {} THEN",
            stamp_greater(
                &field("NEW", super::naming::VERSION_COLUMN),
                &field("NEW", super::naming::ORIGIN_COLUMN),
                "_pgc_seen_version",
                "_pgc_seen_origin"
            )
        ),
    );
    raise_concurrent(b, depth + 1, shape, "unique value", &value);
    b.line(depth, "END IF;");
}

/// The old row gives up a unique value: its claim is kept at the old row's stamp.
fn give_up_value(b: &mut Body, depth: usize, shape: &TableShape, u: &UniqueKey) {
    b.block(
        depth,
        &claim_upsert(
            shape,
            u,
            &shape.unique_json(u, "OLD"),
            &field("OLD", super::naming::VERSION_COLUMN),
            &field("OLD", super::naming::ORIGIN_COLUMN),
            &shape.key_json("OLD"),
        ),
    );
}

#[allow(clippy::too_many_arguments)]
fn log_change(
    b: &mut Body,
    depth: usize,
    shape: &TableShape,
    op: &str,
    key: &str,
    row: &str,
    version: &str,
    origin: &str,
) {
    log_change_over(
        b,
        depth,
        shape,
        [op, key, row, version, origin],
        ("_pgc_prev_version", "_pgc_prev_origin"),
    );
}

/// Records a write in the change log: `[op, key, row, version, origin]` (SQL expressions)
/// and the stamp it overwrote. The row is deleted again at once: its insert is what replication sends.
///
/// The delete names the row by a one-row ctid *range*: a TID range scan reads the page the
/// way a scan does, so PostgreSQL prunes the dead rows of earlier writes on it once it is
/// nearly full, and this backend's next insert finds room there. An exact `ctid =` fetch never
/// prunes, so the change log would grow by every write until vacuum.
fn log_change_over(
    b: &mut Body,
    depth: usize,
    shape: &TableShape,
    [op, key, row, version, origin]: [&str; 5],
    (prev_version, prev_origin): (&str, &str),
) {
    let changes = internal_table(CHANGES_TABLE);
    b.block(
        depth,
        &format!(
            "INSERT INTO {changes} (tbl, op, pk, \"row\", version, origin, prev_version, prev_origin)\n\
             VALUES ({}, {op}, {key}, {row}, {version}, {origin}, {prev_version}, {prev_origin})\n\
             RETURNING ctid INTO _pgc_logged;",
            shape.key_literal
        ),
    );
    b.line(
        depth,
        format!(
            "DELETE FROM {changes} AS l WHERE l.ctid >= _pgc_logged AND l.ctid <= _pgc_logged;"
        ),
    );
}

fn version(rec: &str) -> String {
    field(rec, super::naming::VERSION_COLUMN)
}

fn origin(rec: &str) -> String {
    field(rec, super::naming::ORIGIN_COLUMN)
}

/// AFTER INSERT OR UPDATE OR DELETE: tombstones, claims, and the change-log record. The body,
/// section by section: the common UPDATE; the old key's delete (a DELETE, or an UPDATE giving
/// its row a new key); the new key and unique values an INSERT or UPDATE takes; the record.
pub fn log_function(shape: &TableShape, node_name: &str) -> FunctionDef {
    let mut b = Body::new();
    b.line(0, "DECLARE");
    for declaration in [
        "_pgc_prev_version bigint;",
        "_pgc_prev_origin text;",
        "_pgc_seen_version bigint;",
        "_pgc_seen_origin text;",
        "_pgc_stamp bigint;",
        "_pgc_stamp_origin text;",
        "_pgc_logged tid;",
        "_pgc_op \"char\";",
    ] {
        b.line(1, declaration);
    }
    b.line(0, "BEGIN");
    log_common_update(&mut b, shape);
    b.line(1, "_pgc_prev_version := 0;");
    b.line(1, "_pgc_prev_origin := '';");
    // INSERT, or UPDATE: one path for both below, so that each take-over and give-up is
    // written once. A new primary key is a delete of the old key and an insert of the new one.
    b.line(1, "_pgc_op := 'I';");
    log_old_key_deleted(&mut b, shape, node_name);
    log_new_key_and_values(&mut b, shape);
    log_change(
        &mut b,
        1,
        shape,
        "_pgc_op",
        &shape.key_json("NEW"),
        "pg_catalog.to_json(NEW)",
        &version("NEW"),
        &origin("NEW"),
    );
    b.line(1, "RETURN NULL;");
    b.line(0, "END");

    FunctionDef::plpgsql(shape.log_function.clone(), "", "trigger", b.finish())
}

/// The common case, an UPDATE keeping its key and unique values: only the record.
fn log_common_update(b: &mut Body, shape: &TableShape) {
    b.line(1, format!("IF {} THEN", same_key_and_values(shape)));
    log_change_over(
        b,
        2,
        shape,
        [
            "'U'",
            &shape.key_json("NEW"),
            "pg_catalog.to_json(NEW)",
            &version("NEW"),
            &origin("NEW"),
        ],
        (&version("OLD"), &origin("OLD")),
    );
    b.line(2, "RETURN NULL;");
    b.line(1, "END IF;");
}

/// A DELETE, or an UPDATE giving its row a new primary key: the old key is deleted by this
/// write. One block for both, so the tombstone and the logged delete are written once; a
/// DELETE stamps above the deleted version, and its row's unique values stay claimed at that
/// version. An UPDATE keeping its key records the stamp it overwrote.
fn log_old_key_deleted(b: &mut Body, shape: &TableShape, node_name: &str) {
    b.line(
        1,
        format!(
            "IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND {} IS DISTINCT FROM {}) THEN",
            shape.key_tuple("NEW"),
            shape.key_tuple("OLD")
        ),
    );
    b.line(2, "IF TG_OP = 'DELETE' THEN");
    b.line(
        3,
        format!(
            "_pgc_stamp := GREATEST({}, {} + 1);",
            now_us_expression(),
            version("OLD")
        ),
    );
    b.line(3, format!("_pgc_stamp_origin := {node_name};"));
    for u in &shape.uniques {
        b.line(3, format!("IF {} THEN", shape.unique_present(u, "OLD")));
        give_up_value(b, 4, shape, u);
        b.line(3, "END IF;");
    }
    b.line(2, "ELSE");
    b.line(3, format!("_pgc_stamp := {};", version("NEW")));
    b.line(3, format!("_pgc_stamp_origin := {};", origin("NEW")));
    b.line(2, "END IF;");
    b.block(
        2,
        &tombstone_upsert(
            shape,
            &shape.key_json("OLD"),
            "_pgc_stamp",
            "_pgc_stamp_origin",
        ),
    );
    b.line(2, format!("_pgc_prev_version := {};", version("OLD")));
    b.line(2, format!("_pgc_prev_origin := {};", origin("OLD")));
    log_change(
        b,
        2,
        shape,
        "'D'",
        &shape.key_json("OLD"),
        &shape.key_row_json("OLD"),
        "_pgc_stamp",
        "_pgc_stamp_origin",
    );
    b.line(2, "IF TG_OP = 'DELETE' THEN");
    b.line(3, "RETURN NULL;");
    b.line(2, "END IF;");
    b.line(2, "_pgc_prev_version := 0;");
    b.line(2, "_pgc_prev_origin := '';");
    b.line(1, "ELSIF TG_OP = 'UPDATE' THEN");
    b.line(2, "_pgc_op := 'U';");
    b.line(2, format!("_pgc_prev_version := {};", version("OLD")));
    b.line(2, format!("_pgc_prev_origin := {};", origin("OLD")));
    b.line(1, "END IF;");
}

/// A new key is taken over; an INSERT takes every unique value it has, an UPDATE gives up
/// and takes only those it changes (OLD reads as NULL in an INSERT).
fn log_new_key_and_values(b: &mut Body, shape: &TableShape) {
    b.line(1, "IF _pgc_op = 'I' THEN");
    take_over_key(b, 2, shape);
    b.line(1, "END IF;");
    for u in &shape.uniques {
        b.line(
            1,
            format!(
                "IF TG_OP = 'INSERT' OR {} IS DISTINCT FROM {} THEN",
                shape.unique_tuple(u, "NEW"),
                shape.unique_tuple(u, "OLD")
            ),
        );
        b.line(
            2,
            format!(
                "IF TG_OP = 'UPDATE' AND {} THEN",
                shape.unique_present(u, "OLD")
            ),
        );
        give_up_value(b, 3, shape, u);
        b.line(2, "END IF;");
        b.line(2, format!("IF {} THEN", shape.unique_present(u, "NEW")));
        take_over_value(b, 3, shape, u);
        b.line(2, "END IF;");
        b.line(1, "END IF;");
    }
}
