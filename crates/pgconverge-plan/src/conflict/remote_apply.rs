//! Functions run by apply workers: per table, a REPLICA trigger on `_pgconverge.changes` that
//! merges one incoming change into the table (its WHEN clause picks the table, so no
//! dispatcher runs), and a last trigger refusing changes for tables this node does not know.
//!
//! The merge is state-based. Per key, the write with the greatest `(version, origin)` wins
//! and a delete leaves a tombstone; per unique value, the claim is the greatest stamp of any
//! write that ever held it; a row is live when its latest write is not a delete and it holds
//! the greatest claim on each of its unique values. Every incoming change only raises these
//! maxima, so the result does not depend on the order changes arrive in.

use super::internal::{
    claim_merge_call, claim_upsert, internal_table, tombstone_merge_call, tombstone_upsert,
};
use super::local_writes::Body;
use super::naming::{
    apply_lock_key, internal, APPLY_TXN_SETTING, BEGIN_APPLY_FUNCTION, CLAIMS_TABLE,
    LOCK_APPLY_STRIPES_FUNCTION, ORIGIN_COLUMN, PRUNE_FUNCTION, RECORD_CONFLICT_FUNCTION,
    REFUSE_UNKNOWN_COLUMNS_FUNCTION, TOMBSTONES_TABLE, UNKNOWN_CHANGE_FUNCTION, VERSION_COLUMN,
};
use super::shape::{field, stamp_greater, TableShape};
use super::FunctionDef;
use pgconverge_model::catalog::QualifiedName;
use pgconverge_sql::{quote_ident, quote_literal, quote_qualified};

/// Passes after which a change that keeps meeting a concurrent conflicting row is reported
/// as an error instead of looping.
const MAX_PASSES: u32 = 10;

/// How long an apply transaction waits on a lock before it checks for deadlock. Longer than
/// any sensible session setting, so in a deadlock between a local transaction and an apply
/// worker the local transaction is the one that detects it and aborts.
const APPLY_DEADLOCK_TIMEOUT: &str = "10s";

/// Chance per apply transaction of running `_pgconverge.prune()`.
const PRUNE_PROBABILITY: &str = "0.001";

const IN: &str = "_pgc_in";
const CUR: &str = "_pgc_cur";

fn incoming_stamp_greater(version: &str, origin: &str) -> String {
    stamp_greater("_pgc_stamp_version", "_pgc_stamp_origin", version, origin)
}

fn holder(i: usize) -> String {
    format!("_pgc_holder_{i}")
}

struct Ledger<'a> {
    kind: &'a str,
    winner: &'a str,
    unique_columns: Option<&'a str>,
    local_row: &'a str,
    remote_row: &'a str,
    local_version: &'a str,
    local_origin: &'a str,
}

/// Records a resolution in the ledger through the shared `_pgconverge.record_conflict()`:
/// only conflicting changes get here, so a call is shorter than the statement and costs
/// nothing on the common paths.
fn ledger_insert(b: &mut Body, depth: usize, shape: &TableShape, key: &str, entry: Ledger) {
    let unique = entry
        .unique_columns
        .map(quote_literal)
        .unwrap_or_else(|| "NULL".to_string());
    b.line(
        depth,
        format!(
            "PERFORM {}({}, {key}, {}, {}, {unique}, {}, {}, {}, {}, _pgc_stamp_version, _pgc_stamp_origin);",
            internal_table(RECORD_CONFLICT_FUNCTION),
            shape.key_literal,
            entry.kind,
            quote_literal(entry.winner),
            entry.local_row,
            entry.remote_row,
            entry.local_version,
            entry.local_origin,
        ),
    );
}

/// The row in `rec` loses every claim and its key: deleted, tombstoned at its own stamp, its
/// unique values kept as claims at that stamp. Its row lock guards these writes.
fn retire_row(b: &mut Body, depth: usize, shape: &TableShape, rec: &str) {
    let version = field(rec, VERSION_COLUMN);
    let origin = field(rec, ORIGIN_COLUMN);
    b.block(
        depth,
        &tombstone_merge_call(shape, &shape.key_json(rec), &version, &origin),
    );
    for u in &shape.uniques {
        b.line(depth, format!("IF {} THEN", shape.unique_present(u, rec)));
        b.block(
            depth + 1,
            &claim_merge_call(
                shape,
                u,
                &shape.unique_json(u, rec),
                &version,
                &origin,
                &shape.key_json(rec),
            ),
        );
        b.line(depth, "END IF;");
    }
}

fn delete_row(b: &mut Body, depth: usize, shape: &TableShape, rec: &str) {
    b.line(
        depth,
        format!(
            "DELETE FROM {} AS d WHERE {} = {};",
            shape.qualified,
            shape.key_tuple("d"),
            shape.key_tuple(rec)
        ),
    );
}

/// Kills live holder `i` of an incoming unique value, which the incoming write outranks.
fn kill_holder(b: &mut Body, depth: usize, shape: &TableShape, i: usize, remote_row: &str) {
    let h = holder(i);
    delete_row(b, depth, shape, &h);
    b.line(depth, "GET DIAGNOSTICS _pgc_count = ROW_COUNT;");
    b.line(depth, "IF _pgc_count > 0 THEN");
    retire_row(b, depth + 1, shape, &h);
    let local_row = format!("pg_catalog.to_jsonb({h})");
    let local_version = field(&h, VERSION_COLUMN);
    let local_origin = field(&h, ORIGIN_COLUMN);
    ledger_insert(
        b,
        depth + 1,
        shape,
        &shape.key_json(&h),
        Ledger {
            kind: "'unique_collision'",
            winner: "remote",
            unique_columns: Some(&shape.uniques[i].label),
            local_row: &local_row,
            remote_row,
            local_version: &local_version,
            local_origin: &local_origin,
        },
    );
    b.line(depth, "END IF;");
}

/// Adds the incoming write's claims on its unique values, whether or not it is live, where
/// they outrank both the recorded claim and the live holder (which
/// `kill_outranked_holders` has removed). With `cur_is_live`, the key's own live row (newer
/// than the incoming write) outranks the claim on any value it shares.
fn merge_incoming_claims(b: &mut Body, depth: usize, shape: &TableShape, cur_is_live: bool) {
    for (i, u) in shape.uniques.iter().enumerate() {
        let h = holder(i);
        b.line(
            depth,
            format!(
                "IF _pgc_value_{i} IS NOT NULL AND {}",
                incoming_claim_outranks(shape, i, cur_is_live)
            ),
        );
        b.line(
            depth + 1,
            format!(
                "AND (NOT _pgc_has_holder_{i} OR {}) THEN",
                incoming_stamp_greater(&field(&h, VERSION_COLUMN), &field(&h, ORIGIN_COLUMN))
            ),
        );
        b.block(
            depth + 1,
            &claim_merge_call(
                shape,
                u,
                &format!("_pgc_value_{i}"),
                "_pgc_stamp_version",
                "_pgc_stamp_origin",
                "_pgc_key",
            ),
        );
        b.line(depth, "END IF;");
    }
}

/// Whether the incoming write's claim on unique `i` outranks the recorded claim, and, with
/// `cur_is_live`, is not held by the key's own newer row.
fn incoming_claim_outranks(shape: &TableShape, i: usize, cur_is_live: bool) -> String {
    let over_claim = format!(
        "(NOT _pgc_has_claim_{i} OR {})",
        incoming_stamp_greater(
            &format!("_pgc_claim_version_{i}"),
            &format!("_pgc_claim_origin_{i}")
        )
    );
    if cur_is_live {
        format!("{over_claim} AND {}", not_held_by_cur(shape, i))
    } else {
        over_claim
    }
}

/// The stored row of the incoming key does not hold the incoming value of unique `i`.
fn not_held_by_cur(shape: &TableShape, i: usize) -> String {
    let u = &shape.uniques[i];
    format!(
        "NOT (_pgc_has_cur AND {} IS NOT DISTINCT FROM {})",
        shape.unique_tuple(u, CUR),
        shape.unique_tuple(u, IN)
    )
}

/// Step 4, first: each live holder of an incoming value that the incoming write outranks
/// goes, whichever of 4a-4c follows, so the kill is written once per unique. A live newest
/// write (4c) outranks every holder; otherwise the write must outrank the value's claim and
/// its holder, and an older write (4a) never takes a value from its key's own newer row.
fn kill_outranked_holders(b: &mut Body, a: &ApplyContext) {
    let shape = a.shape;
    for i in 0..shape.uniques.len() {
        let h = holder(i);
        b.line(
            2,
            format!("IF _pgc_has_holder_{i} AND ((_pgc_newest AND _pgc_lost IS NULL)"),
        );
        b.line(
            3,
            format!(
                "OR ({} AND {}",
                incoming_claim_outranks(shape, i, false),
                incoming_stamp_greater(&field(&h, VERSION_COLUMN), &field(&h, ORIGIN_COLUMN))
            ),
        );
        b.line(
            4,
            format!("AND (_pgc_newest OR {}))) THEN", not_held_by_cur(shape, i)),
        );
        kill_holder(b, 3, shape, i, &a.remote_row);
        b.line(2, "END IF;");
    }
}

/// What every apply trigger does first in a transaction: unless this transaction already
/// did, call `_pgconverge.begin_apply()`. The check is inline (one expression per change);
/// the work, the same for every table, is in the shared function, once per transaction.
fn apply_transaction_prelude(b: &mut Body, depth: usize) {
    let begin = internal(BEGIN_APPLY_FUNCTION);
    b.line(
        depth,
        format!(
            "IF pg_catalog.current_setting({}, true) IS DISTINCT FROM '1' THEN",
            quote_literal(APPLY_TXN_SETTING)
        ),
    );
    b.line(
        depth + 1,
        format!(
            "PERFORM {}.{}();",
            quote_ident(&begin.schema),
            quote_ident(&begin.name)
        ),
    );
    b.line(depth, "END IF;");
}

/// `_pgconverge.begin_apply()`: run by the first apply trigger of each apply transaction.
/// Takes the node's apply lock, marks the transaction, biases deadlock detection and now
/// and then prunes old ledger rows, tombstones and claims; refuses an isolation level above
/// READ COMMITTED.
pub fn begin_apply_function() -> FunctionDef {
    let mut b = Body::new();
    b.line(0, "BEGIN");
    b.line(
        1,
        "-- One apply transaction at a time on this node: apply workers never wait for each",
    );
    b.line(1, "-- other's row locks and stripes in opposite orders.");
    // One statement (each PERFORM is an executor run): the lock, the marker, the bias, and
    // now and then the pruning.
    let prune = internal(PRUNE_FUNCTION);
    b.block(
        1,
        &format!(
            "PERFORM pg_catalog.pg_advisory_xact_lock({}),\n  \
             pg_catalog.set_config({}, '1', true),\n  \
             CASE WHEN pg_catalog.has_parameter_privilege('deadlock_timeout', 'SET')\n    \
             THEN pg_catalog.set_config('deadlock_timeout', {}, true) END,\n  \
             CASE WHEN pg_catalog.random() < {PRUNE_PROBABILITY} THEN {}.{}() END;",
            apply_lock_key(),
            quote_literal(APPLY_TXN_SETTING),
            quote_literal(APPLY_DEADLOCK_TIMEOUT),
            quote_ident(&prune.schema),
            quote_ident(&prune.name)
        ),
    );
    // Every re-read after a wait must see what committed meanwhile: a snapshot held for the
    // whole transaction (a database or role default isolation level above READ COMMITTED,
    // which apply workers inherit) would merge against stale registers. Refuse rather than
    // diverge; the apply worker retries once the setting is removed.
    b.line(
        1,
        "IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN",
    );
    b.line(2, "RAISE EXCEPTION USING");
    b.line(
        3,
        "MESSAGE = 'pgconverge: replicated changes must be applied at READ COMMITTED, not ' || pg_catalog.current_setting('transaction_isolation'),",
    );
    b.line(
        3,
        "HINT = 'Remove default_transaction_isolation from the settings of this database and of the subscription owner role.';",
    );
    b.line(1, "END IF;");
    b.line(0, "END");
    FunctionDef::plpgsql(internal(BEGIN_APPLY_FUNCTION), "", "void", b.finish())
}

/// Locks, in exclusive mode and ascending order, the stripes of `_pgc_stripes` that
/// `_pgc_held` lacks, and adds them to `_pgc_held`; the caller then reads everything again.
fn lock_new_stripes(b: &mut Body, depth: usize, shape: &TableShape) {
    let lock = internal(LOCK_APPLY_STRIPES_FUNCTION);
    b.line(
        depth,
        format!(
            "_pgc_held := {}.{}({}, _pgc_stripes, _pgc_held);",
            quote_ident(&lock.schema),
            quote_ident(&lock.name),
            shape.stripe_class
        ),
    );
}

/// `_pgconverge.lock_apply_stripes(class, stripes, held)`: the apply path's stripe lock, run
/// only when a change needs a stripe it does not hold yet. Exclusive, in ascending order
/// everywhere, so two apply passes never wait for each other's stripes in a cycle; returns
/// the stripes now held.
pub fn lock_apply_stripes_function() -> FunctionDef {
    let body = "
DECLARE
  _pgc_new integer[];
  _pgc_stripe integer;
BEGIN
  _pgc_new := ARRAY(SELECT DISTINCT s FROM pg_catalog.unnest(_pgc_stripes) AS s WHERE NOT (s = ANY (_pgc_held)) ORDER BY s);
  FOREACH _pgc_stripe IN ARRAY _pgc_new LOOP
    PERFORM pg_catalog.pg_advisory_xact_lock(_pgc_class, _pgc_stripe);
  END LOOP;
  RETURN _pgc_held || _pgc_new;
END
";
    FunctionDef::plpgsql(
        internal(LOCK_APPLY_STRIPES_FUNCTION),
        "_pgc_class integer, _pgc_stripes integer[], _pgc_held integer[]",
        "integer[]",
        body.to_string(),
    )
}

/// `_pgconverge.refuse_unknown_columns(tbl, row, retired)`: refuses a change naming a
/// column table `tbl` does not have (names in `retired`, dropped by the config, excepted).
/// Called only for a change whose column count differs from the table's.
pub fn refuse_unknown_columns_function() -> FunctionDef {
    let body = "
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.json_object_keys(_pgc_row) AS k(name) WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute AS a WHERE a.attrelid = _pgc_tbl::pg_catalog.regclass AND a.attname = k.name AND a.attnum > 0 AND NOT a.attisdropped) AND k.name <> ALL (_pgc_retired)) THEN
    RAISE EXCEPTION 'pgconverge: a change to % names columns this node does not have yet; it is retried until the config is applied here', _pgc_tbl;
  END IF;
END
";
    FunctionDef::plpgsql(
        internal(REFUSE_UNKNOWN_COLUMNS_FUNCTION),
        "_pgc_tbl text, _pgc_row json, _pgc_retired text[]",
        "void",
        body.to_string(),
    )
}

/// `_pgconverge.apply_<table>_<hash>()`: REPLICA trigger function on the change log for one
/// table. Merges the change into the table and returns NULL, so the receiver stores nothing
/// in the log. The body, section by section: the exact fast paths first, then a loop that
/// reads the registers, takes the stripes it needs and merges, reading again after any wait.
pub fn apply_function(shape: &TableShape, node_name: &str) -> FunctionDef {
    let a = ApplyContext::new(shape, node_name);
    let mut b = Body::new();
    declarations(&mut b, shape);
    b.line(0, "BEGIN");
    apply_transaction_prelude(&mut b, 1);
    read_incoming_row(&mut b, &a);
    fast_paths(&mut b, &a);
    start_resolve_loop(&mut b, &a);
    read_key_register(&mut b, &a);
    merge_delete(&mut b, &a);
    read_unique_registers(&mut b, &a);
    find_lost_value(&mut b, &a);
    lock_stripes_to_write(&mut b, &a);
    kill_outranked_holders(&mut b, &a);
    merge_older_write(&mut b, &a);
    merge_write_dead_by_claim(&mut b, &a);
    store_newest_write(&mut b, &a);
    drop_outranked_claims(&mut b, &a);
    b.line(2, "RETURN NULL;");
    b.line(1, "END LOOP;");
    b.line(0, "END");

    FunctionDef::plpgsql(shape.apply_function.clone(), "", "trigger", b.finish())
}

/// The table and node an apply body is for, and the expressions its sections share.
struct ApplyContext<'a> {
    shape: &'a TableShape,
    /// How the body calls for this node's name.
    node_name: &'a str,
    /// The stored row's stamp.
    cur_version: String,
    cur_origin: String,
    /// The incoming and the stored row as `jsonb`, as the ledger records them.
    remote_row: String,
    cur_row: String,
}

impl ApplyContext<'_> {
    fn new<'a>(shape: &'a TableShape, node_name: &'a str) -> ApplyContext<'a> {
        ApplyContext {
            shape,
            node_name,
            cur_version: field(CUR, VERSION_COLUMN),
            cur_origin: field(CUR, ORIGIN_COLUMN),
            remote_row: format!("pg_catalog.to_jsonb({IN})"),
            cur_row: format!("pg_catalog.to_jsonb({CUR})"),
        }
    }
}

/// The DECLARE section: the change, both rows, the key register and, per unique constraint,
/// its holder and claim.
fn declarations(b: &mut Body, shape: &TableShape) {
    b.line(0, "DECLARE");
    b.line(1, "_pgc_op \"char\";");
    b.line(1, "_pgc_stamp_version bigint;");
    b.line(1, "_pgc_stamp_origin text;");
    b.line(1, "_pgc_prev_version bigint;");
    b.line(1, "_pgc_prev_origin text;");
    b.line(1, format!("{IN} {};", shape.qualified));
    b.line(1, format!("{CUR} {};", shape.qualified));
    b.line(1, "_pgc_key jsonb;");
    b.line(1, "_pgc_has_cur boolean;");
    b.line(1, "_pgc_has_reg boolean;");
    b.line(1, "_pgc_reg_version bigint;");
    b.line(1, "_pgc_reg_origin text;");
    b.line(1, "_pgc_newest boolean;");
    if !shape.uniques.is_empty() {
        b.line(1, "_pgc_lost integer;");
    }
    for (i, _) in shape.uniques.iter().enumerate() {
        b.line(1, format!("{} {};", holder(i), shape.qualified));
        b.line(1, format!("_pgc_has_holder_{i} boolean;"));
        b.line(1, format!("_pgc_value_{i} jsonb;"));
        b.line(1, format!("_pgc_has_claim_{i} boolean;"));
        b.line(1, format!("_pgc_claim_version_{i} bigint;"));
        b.line(1, format!("_pgc_claim_origin_{i} text;"));
    }
    b.line(1, "_pgc_stripes integer[];");
    b.line(1, "_pgc_held integer[];");
    b.line(1, "_pgc_pass integer;");
    b.line(1, "_pgc_count bigint;");
}

/// A change this node wrote is already merged; any other is read into the table's row type.
fn read_incoming_row(b: &mut Body, a: &ApplyContext) {
    b.line(1, format!("IF NEW.origin = {} THEN", a.node_name));
    b.line(2, "RETURN NULL; -- written here: already merged");
    b.line(1, "END IF;");
    b.line(
        1,
        format!(
            "{IN} := pg_catalog.json_populate_record(NULL::{}, NEW.\"row\");",
            a.shape.qualified
        ),
    );
    columns_of_another_schema(b, a.shape);
}

/// A change written while the nodes' schemas differ (during a schema change) names other
/// columns than this table has. A column this node does not have yet would be dropped
/// silently, so the change is refused and retried until the config reaches this node. A
/// column the change does not name did not exist on its node when it was written; there it
/// holds its default now (ADD COLUMN filled it), so it takes the default here too. Only a
/// change whose column count differs pays for these checks. Columns the config dropped are
/// left out; a column's previous name fills the renamed column.
fn columns_of_another_schema(b: &mut Body, shape: &TableShape) {
    let retired = if shape.retired.is_empty() {
        "'{}'::text[]".to_string()
    } else {
        let names: Vec<String> = shape.retired.iter().map(|n| quote_literal(n)).collect();
        format!("ARRAY[{}]::text[]", names.join(", "))
    };
    // A retired name can stand in for a new one and leave the count as it is.
    let names_retired: String = shape
        .retired
        .iter()
        .map(|n| format!(" OR NEW.\"row\" -> {} IS NOT NULL", quote_literal(n)))
        .collect();
    b.line(
        1,
        format!(
            "IF NEW.op <> 'D' AND ((SELECT pg_catalog.count(*) FROM pg_catalog.json_object_keys(NEW.\"row\")) <> {}{names_retired}) THEN",
            shape.columns.len()
        ),
    );
    let refuse = internal(REFUSE_UNKNOWN_COLUMNS_FUNCTION);
    b.line(
        2,
        format!(
            "PERFORM {}.{}({}, NEW.\"row\", {retired});",
            quote_ident(&refuse.schema),
            quote_ident(&refuse.name),
            shape.key_literal
        ),
    );
    for (column, default) in &shape.defaults {
        b.line(
            2,
            format!(
                "IF NEW.\"row\" -> {} IS NULL THEN {IN}.{} := {default}; END IF;",
                quote_literal(column),
                quote_ident(column)
            ),
        );
    }
    for (old, new) in &shape.renamed {
        b.line(
            2,
            format!(
                "IF NEW.\"row\" -> {new_lit} IS NULL AND NEW.\"row\" -> {old_lit} IS NOT NULL THEN {IN}.{new_id} := (pg_catalog.json_populate_record(NULL::{table}, pg_catalog.json_build_object({new_lit}, NEW.\"row\" -> {old_lit}))).{new_id}; END IF;",
                new_lit = quote_literal(new),
                old_lit = quote_literal(old),
                new_id = quote_ident(new),
                table = shape.qualified,
            ),
        );
    }
    b.line(1, "END IF;");
}

/// The exact shortcuts for an update and an insert; a change neither takes goes on to the
/// general path.
fn fast_paths(b: &mut Body, a: &ApplyContext) {
    b.line(1, "IF NEW.op = 'U' THEN");
    update_fast_path(b, a);
    b.line(1, "ELSIF NEW.op = 'I' THEN");
    insert_fast_path(b, a);
    b.line(1, "END IF;");
}

/// Fast path, exact: an update of the very version stored here, keeping its unique values,
/// outranks it and holds the greatest claims on them (the stored row held them), so the
/// merge is the plain UPDATE. Anything else takes the full path below. (PL/pgSQL prepares
/// each expression once per transaction: the fewer on this path, the cheaper a change.)
fn update_fast_path(b: &mut Body, a: &ApplyContext) {
    let shape = a.shape;
    let (targets, sources) = update_lists(shape);
    let mut same_values = String::new();
    for u in &shape.uniques {
        same_values.push_str(&format!(
            " AND {} IS NOT DISTINCT FROM {}",
            shape.unique_tuple(u, "d"),
            shape.unique_tuple(u, IN)
        ));
    }
    b.line(
        2,
        format!(
            "UPDATE {} AS d SET ({targets}) = ROW({sources}) WHERE {} = {} AND d.{} = NEW.prev_version AND d.{} = NEW.prev_origin{same_values};",
            shape.qualified,
            shape.key_tuple("d"),
            shape.key_tuple(IN),
            quote_ident(VERSION_COLUMN),
            quote_ident(ORIGIN_COLUMN),
        ),
    );
    b.line(2, "IF FOUND THEN");
    b.line(3, "RETURN NULL;");
    b.line(2, "END IF;");
}

/// Fast path, exact: an insert of a key with no row, no tombstone, and no holder of or claim
/// on its unique values. The general path would find nothing to merge against, take no
/// stripe and store the row the same way; ON CONFLICT DO NOTHING leaves a key or value held
/// by a committed row to the general path. But the insert may also have waited for a local
/// transaction that deleted the key's row, or a holder of one of its values, and committed
/// the tombstone or claim this check could not see yet: so the check is made again after
/// the insert (a new snapshot), and if it fails the row is taken out and the general path
/// decides.
fn insert_fast_path(b: &mut Body, a: &ApplyContext) {
    let shape = a.shape;
    let claims = internal_table(CLAIMS_TABLE);
    let mut nothing_recorded = format!(
        "NOT EXISTS (SELECT FROM {} AS t WHERE t.tbl = {} AND t.pk = {})",
        internal_table(TOMBSTONES_TABLE),
        shape.key_literal,
        shape.key_json(IN)
    );
    for u in &shape.uniques {
        nothing_recorded.push_str(&format!(
            "\n    AND NOT (({}) AND EXISTS (SELECT FROM {claims} AS c WHERE c.tbl = {} AND c.unique_columns = {} AND c.value = {}))",
            shape.unique_present(u, IN),
            shape.key_literal,
            quote_literal(&u.label),
            shape.unique_json(u, IN)
        ));
    }
    b.block(2, &format!("IF {nothing_recorded} THEN"));
    b.line(3, format!("{} := NEW.version;", field(IN, VERSION_COLUMN)));
    b.line(3, format!("{} := NEW.origin;", field(IN, ORIGIN_COLUMN)));
    b.line(3, shape.insert_row_sql(IN));
    b.line(3, "IF FOUND THEN");
    b.block(4, &format!("IF {nothing_recorded} THEN"));
    b.line(5, "RETURN NULL;");
    b.line(4, "END IF;");
    b.line(
        4,
        format!(
            "DELETE FROM {} AS d WHERE {} = {};",
            shape.qualified,
            shape.key_tuple("d"),
            shape.key_tuple(IN)
        ),
    );
    b.line(3, "END IF;");
    b.line(2, "END IF;");
}

/// The general path: the change's stamp on the incoming row, then the loop that merges it,
/// each pass starting with no stripe to take and giving up after [`MAX_PASSES`].
fn start_resolve_loop(b: &mut Body, a: &ApplyContext) {
    b.line(1, "_pgc_op := NEW.op;");
    b.line(1, "_pgc_stamp_version := NEW.version;");
    b.line(1, "_pgc_stamp_origin := NEW.origin;");
    b.line(1, "_pgc_prev_version := NEW.prev_version;");
    b.line(1, "_pgc_prev_origin := NEW.prev_origin;");
    b.line(1, "_pgc_held := '{}';");
    b.line(1, "_pgc_pass := 0;");
    b.line(
        1,
        format!("{} := _pgc_stamp_version;", field(IN, VERSION_COLUMN)),
    );
    b.line(
        1,
        format!("{} := _pgc_stamp_origin;", field(IN, ORIGIN_COLUMN)),
    );
    b.line(1, format!("_pgc_key := {};", a.shape.key_json(IN)));
    b.line(1, "<<resolve>>");
    b.line(1, "LOOP");
    b.line(2, "_pgc_pass := _pgc_pass + 1;");
    b.line(2, format!("IF _pgc_pass > {MAX_PASSES} THEN"));
    b.line(3, "RAISE EXCEPTION USING");
    b.line(
        4,
        format!(
            "MESSAGE = pg_catalog.format('pgconverge: change to %s key %s keeps colliding with a row', {}, _pgc_key),",
            a.shape.key_literal
        ),
    );
    b.line(
        4,
        "HINT = 'A unique index that pgconverge does not manage rejects it; declare the constraint in the configuration.';",
    );
    b.line(2, "END IF;");
    b.line(2, "_pgc_stripes := '{}';");
}

/// Step 1, the key register: the live row (locked) or the tombstone; whether the incoming
/// write is the newest of its key.
fn read_key_register(b: &mut Body, a: &ApplyContext) {
    let shape = a.shape;
    b.line(
        2,
        format!(
            "SELECT d.* INTO {CUR} FROM {} AS d WHERE {} = {} FOR UPDATE;",
            shape.qualified,
            shape.key_tuple("d"),
            shape.key_tuple(IN)
        ),
    );
    b.line(2, "_pgc_has_cur := FOUND;");
    b.line(2, "IF _pgc_has_cur THEN");
    b.line(3, "_pgc_has_reg := true;");
    b.line(3, format!("_pgc_reg_version := {};", a.cur_version));
    b.line(3, format!("_pgc_reg_origin := {};", a.cur_origin));
    b.line(2, "ELSE");
    b.line(
        3,
        format!(
            "SELECT t.version, t.origin INTO _pgc_reg_version, _pgc_reg_origin FROM {} AS t WHERE t.tbl = {} AND t.pk = _pgc_key;",
            internal_table(TOMBSTONES_TABLE),
            shape.key_literal
        ),
    );
    b.line(3, "_pgc_has_reg := FOUND;");
    b.line(2, "END IF;");
    b.line(
        2,
        "IF _pgc_has_reg AND _pgc_reg_version = _pgc_stamp_version AND _pgc_reg_origin = _pgc_stamp_origin THEN",
    );
    b.line(3, "RETURN NULL; -- this very write is already merged");
    b.line(2, "END IF;");
    b.line(
        2,
        format!(
            "_pgc_newest := NOT _pgc_has_reg OR {};",
            incoming_stamp_greater("_pgc_reg_version", "_pgc_reg_origin")
        ),
    );
}

/// Step 2, deletes: an older one is recorded when it lost to a local write; a newest one
/// deletes the stored row (or, with none, first excludes local inserts of the key) and
/// leaves its tombstone.
fn merge_delete(b: &mut Body, a: &ApplyContext) {
    let shape = a.shape;
    b.line(2, "IF _pgc_op = 'D' THEN");
    b.line(3, "IF NOT _pgc_newest THEN");
    b.line(
        4,
        format!("IF _pgc_has_cur AND _pgc_reg_origin = {} THEN", a.node_name),
    );
    ledger_insert(
        b,
        5,
        shape,
        "_pgc_key",
        Ledger {
            kind: "'delete_update'",
            winner: "local",
            unique_columns: None,
            local_row: &a.cur_row,
            remote_row: "NULL",
            local_version: &a.cur_version,
            local_origin: &a.cur_origin,
        },
    );
    b.line(4, "END IF;");
    b.line(4, "RETURN NULL;");
    b.line(3, "END IF;");
    b.line(3, "IF NOT _pgc_has_cur THEN");
    b.line(
        4,
        "-- A tombstone for a key with no row: exclude local inserts of the key first.",
    );
    b.line(
        4,
        format!(
            "_pgc_stripes := ARRAY[{}];",
            shape.stripe(shape.key_tag(), "_pgc_key")
        ),
    );
    b.line(4, "IF NOT (_pgc_stripes <@ _pgc_held) THEN");
    lock_new_stripes(b, 5, shape);
    b.line(5, "CONTINUE resolve;");
    b.line(4, "END IF;");
    b.line(3, "ELSE");
    delete_stored_row(b, a);
    b.line(3, "END IF;");
    b.block(
        3,
        &tombstone_upsert(shape, "_pgc_key", "_pgc_stamp_version", "_pgc_stamp_origin"),
    );
    b.line(3, "RETURN NULL;");
    b.line(2, "END IF;");
}

/// A newest delete of a stored row: the row goes, its unique values stay claimed at its
/// stamp, and a local write the delete did not see is recorded as overwritten.
fn delete_stored_row(b: &mut Body, a: &ApplyContext) {
    let shape = a.shape;
    delete_row(b, 4, shape, CUR);
    for u in &shape.uniques {
        b.line(4, format!("IF {} THEN", shape.unique_present(u, CUR)));
        b.block(
            5,
            &claim_upsert(
                shape,
                u,
                &shape.unique_json(u, CUR),
                &a.cur_version,
                &a.cur_origin,
                "_pgc_key",
            ),
        );
        b.line(4, "END IF;");
    }
    b.line(
        4,
        format!(
            "IF {} <> _pgc_prev_version OR {} <> _pgc_prev_origin THEN",
            a.cur_version, a.cur_origin
        ),
    );
    ledger_insert(
        b,
        5,
        shape,
        "_pgc_key",
        Ledger {
            kind: "'delete_update'",
            winner: "remote",
            unique_columns: None,
            local_row: &a.cur_row,
            remote_row: "NULL",
            local_version: &a.cur_version,
            local_origin: &a.cur_origin,
        },
    );
    b.line(4, "END IF;");
}

/// Step 3, upserts: live holders of the incoming unique values under other keys (locked),
/// and the recorded claims on those values.
fn read_unique_registers(b: &mut Body, a: &ApplyContext) {
    let shape = a.shape;
    let claims = internal_table(CLAIMS_TABLE);
    for (i, u) in shape.uniques.iter().enumerate() {
        b.line(2, format!("IF {} THEN", shape.unique_present(u, IN)));
        b.line(
            3,
            format!("_pgc_value_{i} := {};", shape.unique_json(u, IN)),
        );
        b.line(
            3,
            format!(
                "SELECT d.* INTO {} FROM {} AS d WHERE {} = {} AND {} <> {} FOR UPDATE;",
                holder(i),
                shape.qualified,
                shape.unique_tuple(u, "d"),
                shape.unique_tuple(u, IN),
                shape.key_tuple("d"),
                shape.key_tuple(IN)
            ),
        );
        b.line(3, format!("_pgc_has_holder_{i} := FOUND;"));
        b.line(
            3,
            format!(
                "SELECT c.version, c.origin INTO _pgc_claim_version_{i}, _pgc_claim_origin_{i} FROM {claims} AS c WHERE c.tbl = {} AND c.unique_columns = {} AND c.value = _pgc_value_{i};",
                shape.key_literal,
                quote_literal(&u.label)
            ),
        );
        b.line(3, format!("_pgc_has_claim_{i} := FOUND;"));
        b.line(2, "ELSE");
        b.line(3, format!("_pgc_value_{i} := NULL;"));
        b.line(3, format!("_pgc_has_holder_{i} := false;"));
        b.line(3, format!("_pgc_has_claim_{i} := false;"));
        b.line(2, "END IF;");
    }
}

/// Does a greater claim make the incoming write dead? `_pgc_lost` names the first unique
/// constraint whose value is held or claimed higher. Only a unique value can, so a table
/// without uniques has no such section.
fn find_lost_value(b: &mut Body, a: &ApplyContext) {
    if a.shape.uniques.is_empty() {
        return;
    }
    b.line(2, "_pgc_lost := NULL;");
    b.line(2, "IF _pgc_newest THEN");
    for (i, _) in a.shape.uniques.iter().enumerate().rev() {
        let h = holder(i);
        b.line(
            3,
            format!(
                "IF (_pgc_has_holder_{i} AND {}) OR (_pgc_has_claim_{i} AND {}) THEN",
                stamp_greater(
                    &field(&h, VERSION_COLUMN),
                    &field(&h, ORIGIN_COLUMN),
                    "_pgc_stamp_version",
                    "_pgc_stamp_origin"
                ),
                stamp_greater(
                    &format!("_pgc_claim_version_{i}"),
                    &format!("_pgc_claim_origin_{i}"),
                    "_pgc_stamp_version",
                    "_pgc_stamp_origin"
                )
            ),
        );
        b.line(4, format!("_pgc_lost := {i};"));
        b.line(3, "END IF;");
    }
    b.line(2, "END IF;");
}

/// Stripes to hold exclusively before writing, where no row lock or unique index makes a
/// concurrent local writer wait: the key of a tombstone written with no row (only a dead
/// write leaves one here, so only with uniques), and each value this pass records a claim
/// on, takes by UPDATE, or frees by killing its holder. New stripes are locked and the pass
/// starts again, reading everything under them.
fn lock_stripes_to_write(b: &mut Body, a: &ApplyContext) {
    let shape = a.shape;
    if !shape.uniques.is_empty() {
        b.line(
            2,
            "IF _pgc_newest AND NOT _pgc_has_cur AND _pgc_lost IS NOT NULL THEN",
        );
        b.line(
            3,
            format!(
                "_pgc_stripes := _pgc_stripes || {};",
                shape.stripe(shape.key_tag(), "_pgc_key")
            ),
        );
        b.line(2, "END IF;");
    }
    for (i, u) in shape.uniques.iter().enumerate() {
        let h = holder(i);
        b.line(
            2,
            format!(
                "IF _pgc_value_{i} IS NOT NULL AND (CASE WHEN _pgc_newest AND _pgc_lost IS NULL \
                 THEN _pgc_has_holder_{i} OR (_pgc_has_cur AND {} IS DISTINCT FROM {}) \
                 ELSE (NOT _pgc_has_claim_{i} OR {}) AND (NOT _pgc_has_holder_{i} OR {}) END) THEN",
                shape.unique_tuple(u, CUR),
                shape.unique_tuple(u, IN),
                incoming_stamp_greater(
                    &format!("_pgc_claim_version_{i}"),
                    &format!("_pgc_claim_origin_{i}")
                ),
                incoming_stamp_greater(&field(&h, VERSION_COLUMN), &field(&h, ORIGIN_COLUMN))
            ),
        );
        b.line(
            3,
            format!(
                "_pgc_stripes := _pgc_stripes || {};",
                shape.stripe(&shape.unique_tag(u), &format!("_pgc_value_{i}"))
            ),
        );
        b.line(2, "END IF;");
    }
    b.line(2, "IF NOT (_pgc_stripes <@ _pgc_held) THEN");
    lock_new_stripes(b, 3, shape);
    b.line(
        3,
        "CONTINUE resolve; -- read everything again under the stripes",
    );
    b.line(2, "END IF;");
}

/// Step 4a, an older write of its key: only its claims count; losing to a local write is
/// recorded.
fn merge_older_write(b: &mut Body, a: &ApplyContext) {
    let shape = a.shape;
    b.line(2, "IF NOT _pgc_newest THEN");
    merge_incoming_claims(b, 3, shape, true);
    b.line(3, format!("IF _pgc_reg_origin = {} THEN", a.node_name));
    b.line(4, "IF _pgc_has_cur THEN");
    ledger_insert(
        b,
        5,
        shape,
        "_pgc_key",
        Ledger {
            kind: "CASE WHEN _pgc_op = 'I' THEN 'insert_exists' ELSE 'update_update' END",
            winner: "local",
            unique_columns: None,
            local_row: &a.cur_row,
            remote_row: &a.remote_row,
            local_version: &a.cur_version,
            local_origin: &a.cur_origin,
        },
    );
    b.line(4, "ELSE");
    ledger_insert(
        b,
        5,
        shape,
        "_pgc_key",
        Ledger {
            kind: "'update_deleted'",
            winner: "local",
            unique_columns: None,
            local_row: "NULL",
            remote_row: &a.remote_row,
            local_version: "_pgc_reg_version",
            local_origin: "_pgc_reg_origin",
        },
    );
    b.line(4, "END IF;");
    b.line(3, "END IF;");
    b.line(3, "RETURN NULL;");
    b.line(2, "END IF;");
}

/// Step 4b, the newest write of its key, but a unique value it holds is claimed higher: the
/// key is dead at this write's stamp. Only a table with uniques has this section.
fn merge_write_dead_by_claim(b: &mut Body, a: &ApplyContext) {
    let shape = a.shape;
    if shape.uniques.is_empty() {
        return;
    }
    b.line(2, "IF _pgc_lost IS NOT NULL THEN");
    b.line(3, "IF _pgc_has_cur THEN");
    delete_row(b, 4, shape, CUR);
    for u in &shape.uniques {
        b.line(4, format!("IF {} THEN", shape.unique_present(u, CUR)));
        b.block(
            5,
            &claim_merge_call(
                shape,
                u,
                &shape.unique_json(u, CUR),
                &a.cur_version,
                &a.cur_origin,
                "_pgc_key",
            ),
        );
        b.line(4, "END IF;");
    }
    b.line(3, "END IF;");
    b.block(
        3,
        &tombstone_merge_call(shape, "_pgc_key", "_pgc_stamp_version", "_pgc_stamp_origin"),
    );
    merge_incoming_claims(b, 3, shape, false);
    b.line(3, "CASE _pgc_lost");
    for (i, u) in shape.uniques.iter().enumerate() {
        let h = holder(i);
        b.line(4, format!("WHEN {i} THEN"));
        let local_row = format!("pg_catalog.to_jsonb({h})");
        let local_version = format!(
            "CASE WHEN _pgc_has_holder_{i} THEN {} ELSE _pgc_claim_version_{i} END",
            field(&h, VERSION_COLUMN)
        );
        let local_origin = format!(
            "CASE WHEN _pgc_has_holder_{i} THEN {} ELSE _pgc_claim_origin_{i} END",
            field(&h, ORIGIN_COLUMN)
        );
        ledger_insert(
            b,
            5,
            shape,
            "_pgc_key",
            Ledger {
                kind: "'unique_collision'",
                winner: "local",
                unique_columns: Some(&u.label),
                local_row: &format!("CASE WHEN _pgc_has_holder_{i} THEN {local_row} END"),
                remote_row: &a.remote_row,
                local_version: &local_version,
                local_origin: &local_origin,
            },
        );
    }
    b.line(3, "END CASE;");
    b.line(3, "RETURN NULL;");
    b.line(2, "END IF;");
}

/// Step 4c, the newest write of its key and live (the holders it outranks are gone): it is
/// stored over the stored row or as a new one.
fn store_newest_write(b: &mut Body, a: &ApplyContext) {
    b.line(2, "IF _pgc_has_cur THEN");
    update_stored_row(b, a);
    b.line(2, "ELSE");
    insert_new_row(b, a);
    b.line(2, "END IF;");
}

/// The incoming write replaces the stored row: values the row gives up stay claimed at its
/// stamp, and a local write the change did not see is recorded as overwritten.
fn update_stored_row(b: &mut Body, a: &ApplyContext) {
    let shape = a.shape;
    for u in &shape.uniques {
        b.line(
            3,
            format!(
                "IF {} AND {} IS DISTINCT FROM {} THEN",
                shape.unique_present(u, CUR),
                shape.unique_tuple(u, CUR),
                shape.unique_tuple(u, IN)
            ),
        );
        b.block(
            4,
            &claim_upsert(
                shape,
                u,
                &shape.unique_json(u, CUR),
                &a.cur_version,
                &a.cur_origin,
                "_pgc_key",
            ),
        );
        b.line(3, "END IF;");
    }
    let (targets, sources) = update_lists(shape);
    b.line(
        3,
        format!(
            "UPDATE {} AS d SET ({targets}) = ROW({sources}) WHERE {} = {};",
            shape.qualified,
            shape.key_tuple("d"),
            shape.key_tuple(CUR)
        ),
    );
    b.line(
        3,
        format!(
            "IF {} <> _pgc_prev_version OR {} <> _pgc_prev_origin THEN",
            a.cur_version, a.cur_origin
        ),
    );
    ledger_insert(
        b,
        4,
        shape,
        "_pgc_key",
        Ledger {
            kind: "CASE WHEN _pgc_op = 'I' THEN 'insert_exists' ELSE 'update_update' END",
            winner: "remote",
            unique_columns: None,
            local_row: &a.cur_row,
            remote_row: &a.remote_row,
            local_version: &a.cur_version,
            local_origin: &a.cur_origin,
        },
    );
    b.line(3, "END IF;");
}

/// The incoming write is inserted: a row committed meanwhile sends the pass round again; a
/// tombstone it outranks goes, recorded when it was a delete the change did not see.
fn insert_new_row(b: &mut Body, a: &ApplyContext) {
    let shape = a.shape;
    b.line(3, shape.insert_row_sql(IN));
    b.line(3, "GET DIAGNOSTICS _pgc_count = ROW_COUNT;");
    b.line(3, "IF _pgc_count = 0 THEN");
    b.line(
        4,
        "CONTINUE resolve; -- a row committed meanwhile: merge against it",
    );
    b.line(3, "END IF;");
    b.line(3, "IF _pgc_has_reg THEN");
    b.line(
        4,
        format!(
            "DELETE FROM {} AS t WHERE t.tbl = {} AND t.pk = _pgc_key;",
            internal_table(TOMBSTONES_TABLE),
            shape.key_literal
        ),
    );
    b.line(
        4,
        "IF _pgc_reg_version <> _pgc_prev_version OR _pgc_reg_origin <> _pgc_prev_origin THEN",
    );
    ledger_insert(
        b,
        5,
        shape,
        "_pgc_key",
        Ledger {
            kind: "'update_deleted'",
            winner: "remote",
            unique_columns: None,
            local_row: "NULL",
            remote_row: &a.remote_row,
            local_version: "_pgc_reg_version",
            local_origin: "_pgc_reg_origin",
        },
    );
    b.line(4, "END IF;");
    b.line(3, "END IF;");
}

/// Claims on the values the stored row now holds are outranked by it (including those just
/// recorded for killed holders): drop them, as a local write taking a value does.
fn drop_outranked_claims(b: &mut Body, a: &ApplyContext) {
    let claims = internal_table(CLAIMS_TABLE);
    for (i, u) in a.shape.uniques.iter().enumerate() {
        b.line(2, format!("IF _pgc_value_{i} IS NOT NULL THEN"));
        b.line(
            3,
            format!(
                "DELETE FROM {claims} AS c WHERE c.tbl = {} AND c.unique_columns = {} AND c.value = _pgc_value_{i};",
                a.shape.key_literal,
                quote_literal(&u.label)
            ),
        );
        b.line(2, "END IF;");
    }
}

/// `SET (columns) = ROW(values)` lists storing the incoming row; its stamp comes from the
/// change itself.
fn update_lists(shape: &TableShape) -> (String, String) {
    let columns = shape.updatable_columns();
    let targets: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let sources: Vec<String> = columns
        .iter()
        .map(|c| match c.as_str() {
            VERSION_COLUMN => "NEW.version".to_string(),
            ORIGIN_COLUMN => "NEW.origin".to_string(),
            _ => field(IN, c),
        })
        .collect();
    (targets.join(", "), sources.join(", "))
}

/// `_pgconverge.refuse_unknown_change()`: the last REPLICA trigger on the change log. Every
/// change for a replicated table was merged (and dropped) by that table's trigger before it;
/// one reaching this trigger names a table this node does not replicate yet.
/// Changes to a table the config dropped (`dropped_tables`) are let go: they were written
/// before the table was dropped everywhere and have nowhere to land.
pub fn unknown_change_function(dropped_tables: &[QualifiedName]) -> FunctionDef {
    let let_go = if dropped_tables.is_empty() {
        String::new()
    } else {
        let keys: Vec<String> = dropped_tables
            .iter()
            .map(|t| quote_literal(&quote_qualified(&t.schema, &t.name)))
            .collect();
        format!(
            "  IF NEW.tbl IN ({}) THEN\n    RETURN NULL; -- a dropped table\n  END IF;\n",
            keys.join(", ")
        )
    };
    let body = format!(
        "
BEGIN
{let_go}  RAISE EXCEPTION USING
    MESSAGE = pg_catalog.format('pgconverge: change for table %s, which this node does not replicate', NEW.tbl),
    HINT = 'Apply the configuration to this node; the change is retried until then.';
END
"
    );
    FunctionDef::plpgsql(internal(UNKNOWN_CHANGE_FUNCTION), "", "trigger", body)
}
