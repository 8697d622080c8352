//! Names pgconverge derives from node and table names: publications, subscriptions, slots,
//! the internal schema and the reserved column prefix. One place, so every crate agrees.

/// Schema holding pgconverge's functions, tombstones, claims, change log and conflict ledger.
pub const INTERNAL_SCHEMA: &str = "_pgconverge";
/// Table in [`INTERNAL_SCHEMA`] holding the node's membership record (see
/// `catalog::MembershipCatalog`).
pub const MEMBERSHIP_TABLE: &str = "membership";
/// Table in [`INTERNAL_SCHEMA`] recording the key slot of every node the mesh has had (see
/// `key_blocks`); rows are never deleted, so a slot is never handed out twice.
pub const KEY_SLOT_TABLE: &str = "key_slot";

/// Which of the config's SQL files ran on the node, with the sha256 of what ran.
pub const SQL_FILES_TABLE: &str = "sql_files";
/// Prefix reserved for columns pgconverge adds to replicated tables.
pub const RESERVED_COLUMN_PREFIX: &str = "_pgc_";
/// PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Publication every node exposes to its peers.
pub fn publication_name(node: &str) -> String {
    format!("pgc_pub_{node}")
}

/// Subscription on `subscriber` that receives changes from `publisher`. Also the slot name
/// on the publisher, so both must be valid slot names (lowercase, digits, `_`, ≤ 63 bytes).
pub fn subscription_name(subscriber: &str, publisher: &str) -> String {
    format!("pgc_{subscriber}_from_{publisher}")
}

/// Whether `name` is usable as a replication slot name: lowercase letters, digits and
/// underscores, 1..=63 bytes.
pub fn is_valid_slot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IDENTIFIER_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether `name` is acceptable as a node name: starts with a lowercase letter, then
/// lowercase letters, digits and `_`; short enough that every derived slot name fits.
pub fn node_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("node name is empty".into());
    }
    if !name.as_bytes()[0].is_ascii_lowercase()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Some(format!(
            "node name {name:?} must start with a lowercase letter and contain only lowercase letters, digits and '_' (it becomes part of replication slot names)"
        ));
    }
    None
}

/// The `lock_timeout` every applying session runs with (set when it connects), so DDL
/// waiting behind a long transaction fails instead of queueing every other session behind
/// it; restored after a step that lifts it.
pub const SESSION_LOCK_TIMEOUT: &str = "10s";

/// Prefix of the comment pgconverge puts on every function it creates:
/// `pgconverge:<fingerprint>:<xmin of the function's pg_proc row>`.
pub const FUNCTION_COMMENT_PREFIX: &str = "pgconverge:";
