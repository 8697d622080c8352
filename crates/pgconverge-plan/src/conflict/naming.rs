//! Names and lock numbers of the conflict-resolution objects, derived from table names only.

use pgconverge_model::catalog::QualifiedName;
use pgconverge_model::naming::{INTERNAL_SCHEMA, MAX_IDENTIFIER_BYTES};
use sha2::{Digest, Sha256};

/// Row version column: hybrid logical clock in microseconds since the Unix epoch.
pub const VERSION_COLUMN: &str = "_pgc_version";
/// Name of the node that made the row's latest write; breaks version ties.
pub const ORIGIN_COLUMN: &str = "_pgc_origin";
/// Forwarding write path only: the incarnation, the stamp of the INSERT that created the row.
pub const BIRTH_COLUMN: &str = "_pgc_birth";

/// BEFORE INSERT OR UPDATE trigger stamping local writes. Sorts before lowercase names, so
/// it runs before the application's own BEFORE triggers.
pub const STAMP_TRIGGER: &str = "_pgc_10_stamp";
/// AFTER INSERT OR UPDATE OR DELETE trigger recording local writes in the change log.
pub const LOG_TRIGGER: &str = "_pgc_90_log";
/// BEFORE TRUNCATE trigger refusing a TRUNCATE that no other node would see.
pub const TRUNCATE_TRIGGER: &str = "_pgc_95_truncate";
/// Prefix of the per-table REPLICA triggers on the change log that merge incoming changes.
pub const APPLY_TRIGGER_KIND: &str = "_pgc_apply";
/// Last REPLICA trigger on the change log (sorts after every `_pgc_apply_…`): refuses a
/// change no table trigger took.
pub const UNKNOWN_CHANGE_TRIGGER: &str = "_pgc_zz_unknown_table";

/// Forwarding write path: BEFORE INSERT OR UPDATE trigger stamping local writes.
pub const FORWARDING_STAMP_TRIGGER: &str = "_pgc_10_stamp";
/// Forwarding write path: AFTER DELETE trigger writing the deleted incarnation's tombstone.
pub const FORWARDING_DELETE_TRIGGER: &str = "_pgc_90_delete";
/// Forwarding write path: the REPLICA trigger merging incoming writes into the table.
pub const FORWARDING_APPLY_TRIGGER: &str = "_pgc_apply";

pub const CHANGES_TABLE: &str = "changes";
pub const TOMBSTONES_TABLE: &str = "tombstones";
pub const CLAIMS_TABLE: &str = "claims";
pub const CONFLICTS_TABLE: &str = "conflicts";
/// Forwarding write path: the newest deleted incarnation of each key.
pub const FORWARDING_TOMBSTONES_TABLE: &str = "incarnation_tombstones";

pub const NODE_NAME_FUNCTION: &str = "node_name";
pub const NOW_US_FUNCTION: &str = "now_us";
pub const PRUNE_FUNCTION: &str = "prune";
pub const BEGIN_APPLY_FUNCTION: &str = "begin_apply";
pub const LOCK_APPLY_STRIPES_FUNCTION: &str = "lock_apply_stripes";
pub const REFUSE_UNKNOWN_COLUMNS_FUNCTION: &str = "refuse_unknown_columns";
pub const REFUSE_TRUNCATE_FUNCTION: &str = "refuse_truncate";
pub const UNKNOWN_CHANGE_FUNCTION: &str = "refuse_unknown_change";
pub const MERGE_TOMBSTONE_FUNCTION: &str = "merge_tombstone";
pub const MERGE_CLAIM_FUNCTION: &str = "merge_claim";
pub const RECORD_CONFLICT_FUNCTION: &str = "record_conflict";
pub const FORWARDING_SESSION_FUNCTION: &str = "forwarding_apply_session";
pub const MERGE_INCARNATION_TOMBSTONE_FUNCTION: &str = "merge_incarnation_tombstone";

/// Every function of `_pgconverge` that is not generated per table. Per-table bodies call
/// some of them, so the plan creates these first (rule `shared_functions_before_table_functions`).
pub const SHARED_FUNCTIONS: &[&str] = &[
    NODE_NAME_FUNCTION,
    NOW_US_FUNCTION,
    PRUNE_FUNCTION,
    BEGIN_APPLY_FUNCTION,
    LOCK_APPLY_STRIPES_FUNCTION,
    REFUSE_UNKNOWN_COLUMNS_FUNCTION,
    REFUSE_TRUNCATE_FUNCTION,
    UNKNOWN_CHANGE_FUNCTION,
    MERGE_TOMBSTONE_FUNCTION,
    MERGE_CLAIM_FUNCTION,
    RECORD_CONFLICT_FUNCTION,
    FORWARDING_SESSION_FUNCTION,
    MERGE_INCARNATION_TOMBSTONE_FUNCTION,
];

/// Session setting (milliseconds) added to the wall clock, so tests can skew a node.
pub const CLOCK_OFFSET_SETTING: &str = "pgconverge.clock_offset_ms";
/// Transaction-local marker: the apply lock is already held by this transaction.
pub const APPLY_TXN_SETTING: &str = "pgconverge.apply_txn";

/// Number of advisory-lock stripes per table. Local writers take stripes in share mode, so a
/// bulk load holds at most this many locks per table whatever its row count.
pub const LOCK_STRIPES: u32 = 256;

pub fn internal(name: &str) -> QualifiedName {
    QualifiedName::new(INTERNAL_SCHEMA, name)
}

/// `_pgconverge.<kind>_<table>_<hash>`: unique per table (the hash covers schema and
/// name), readable, and never longer than PostgreSQL's identifier limit.
pub fn per_table_function(kind: &str, table: &QualifiedName) -> QualifiedName {
    let hash = hex_prefix(&digest(&format!("{}\u{0}{}", table.schema, table.name)), 8);
    let budget = MAX_IDENTIFIER_BYTES - kind.len() - hash.len() - 2;
    let stem = truncate_to_char_boundary(&table.name, budget);
    internal(&format!("{kind}_{stem}_{hash}"))
}

/// Class number of a table's advisory-lock stripes (first argument of the two-key
/// `pg_advisory_xact_lock`).
pub fn stripe_class(table: &QualifiedName) -> i32 {
    let d = digest(&format!(
        "pgconverge stripes\u{0}{}\u{0}{}",
        table.schema, table.name
    ));
    i32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Key of the node-wide lock every apply transaction holds (one-key form, so it never
/// collides with a stripe).
pub fn apply_lock_key() -> i64 {
    let d = digest("pgconverge apply");
    i64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

pub fn sha256_hex(text: &str) -> String {
    hex_prefix(&digest(text), 64)
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn hex_prefix(bytes: &[u8], chars: usize) -> String {
    let mut out = String::with_capacity(chars);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
        if out.len() >= chars {
            break;
        }
    }
    out.truncate(chars);
    out
}

fn truncate_to_char_boundary(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_fit_and_differ_for_lookalike_tables() {
        let a = per_table_function("apply", &QualifiedName::new("a_b", "c"));
        let b = per_table_function("apply", &QualifiedName::new("a", "b_c"));
        assert_ne!(a, b);
        let long = "é".repeat(60);
        let name = per_table_function("stamp", &QualifiedName::new("public", &long));
        assert!(name.name.len() <= MAX_IDENTIFIER_BYTES, "{}", name.name);
        assert!(name.name.starts_with("stamp_é"));
    }

    #[test]
    fn lock_numbers_are_stable() {
        let t = QualifiedName::new("public", "users");
        assert_eq!(stripe_class(&t), stripe_class(&t.clone()));
        assert_ne!(
            stripe_class(&t),
            stripe_class(&QualifiedName::new("public", "orders"))
        );
        assert_eq!(apply_lock_key(), apply_lock_key());
    }
}
