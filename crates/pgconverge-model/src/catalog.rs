//! Snapshot of one node's live catalogs, as introspected from `pg_catalog`.
//!
//! Plain data: the postgres crate fills it, the planner diffs against it. Collections are
//! ordered maps so that the same catalogs always produce the same plan and fingerprint.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod outside;
pub use outside::{
    GrantCatalog, OutsideCatalog, PolicyDefinition, RoutineDefinition, RowSecurity, ViewDefinition,
};

/// `schema.name`, both unquoted.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        QualifiedName {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeCatalog {
    /// `server_version_num`, e.g. 180001.
    pub server_version_num: u32,
    /// Human version string, e.g. `18.1`.
    pub server_version: String,
    /// Server settings that gate replication: `wal_level`, `max_replication_slots`,
    /// `max_wal_senders`, `max_logical_replication_workers`, `max_worker_processes`,
    /// `max_sync_workers_per_subscription`.
    pub settings: BTreeMap<String, String>,
    /// Database-level settings (`ALTER DATABASE … SET`), name → value.
    pub database_settings: BTreeMap<String, String>,
    /// Whether the connected role may create subscriptions (superuser or
    /// `pg_create_subscription`) and has REPLICATION.
    pub role: RoleInfo,
    /// Non-system schemas.
    pub schemas: Vec<String>,
    #[serde(with = "entries")]
    pub tables: BTreeMap<QualifiedName, TableCatalog>,
    /// Enum and domain types in the scope's schemas.
    #[serde(with = "entries", skip_serializing_if = "BTreeMap::is_empty")]
    pub types: BTreeMap<QualifiedName, TypeCatalog>,
    /// Functions in schemas pgconverge manages (`_pgconverge` and the table schemas' managed
    /// functions), keyed by `schema.name`; overloads are not used by pgconverge.
    #[serde(with = "entries")]
    pub functions: BTreeMap<QualifiedName, FunctionCatalog>,
    pub publications: BTreeMap<String, PublicationCatalog>,
    pub subscriptions: BTreeMap<String, SubscriptionCatalog>,
    /// Replication slots on this server (all databases), by name.
    pub slots: BTreeMap<String, SlotCatalog>,
    /// The node's record of having joined the mesh (`_pgconverge.membership`), written in the
    /// same transaction as the copy that bootstrapped it, or when the node first joined a mesh
    /// with nothing to copy. `None`: never joined.
    pub membership: Option<MembershipCatalog>,
    /// The key slot register (`_pgconverge.key_slot`): every node the mesh has had, by name,
    /// with the slot whose block its key sequences draw from. Empty when the table is absent.
    pub key_slots: BTreeMap<String, i64>,
    /// Routines, views, policies and grants the config does not describe, which a joining
    /// node's bootstrap carries from its donor.
    pub outside: OutsideCatalog,
    /// The config's SQL files last run on the node (`_pgconverge.sql_files`): name → sha256
    /// of the contents run. Empty when the table is absent.
    pub sql_files: BTreeMap<String, String>,
}

/// An enum or domain type as PostgreSQL has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeCatalog {
    /// Labels in their sort order (`enumsortorder`).
    Enum {
        labels: Vec<String>,
    },
    Domain(DomainCatalog),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DomainCatalog {
    /// `format_type(typbasetype, typtypmod)`.
    pub base_type: String,
    pub not_null: bool,
    /// `typdefault`, as `pg_get_expr` prints it.
    pub default: Option<String>,
    /// CHECK constraints, sorted by name.
    pub checks: Vec<CheckCatalog>,
}

/// A CHECK constraint of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCatalog {
    pub name: String,
    /// `pg_get_constraintdef`: `CHECK (…)`, with ` NOT VALID` when not validated.
    pub definition: String,
}

/// A node's membership record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MembershipCatalog {
    pub node: String,
    /// The node its rows were copied from; `None` when it joined with nothing to copy.
    pub donor: Option<String>,
    /// When it joined, as PostgreSQL prints a `timestamptz`.
    pub joined_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoleInfo {
    pub name: String,
    pub superuser: bool,
    pub replication: bool,
    pub create_subscription: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TableCatalog {
    pub columns: Vec<ColumnCatalog>,
    pub constraints: Vec<ConstraintCatalog>,
    /// Indexes that do not back a constraint.
    pub indexes: Vec<IndexCatalog>,
    /// Names of indexes left invalid by a `CREATE INDEX CONCURRENTLY` that did not finish
    /// (not in `indexes`: they are not used and do not enforce anything), sorted.
    pub invalid_indexes: Vec<String>,
    /// `relreplident`: `d` default (primary key), `f` full, `i` index, `n` nothing.
    pub replica_identity: String,
    /// The index that is the replica identity when `replica_identity` is `i`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_identity_index: Option<String>,
    /// A partitioned table (`relkind = 'p'`): its indexes cannot be built concurrently.
    pub partitioned: bool,
    /// A partitioned table's key as `pg_get_partkeydef` prints it (`RANGE (created_at)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// A partitioned table's partitions, sorted by name. Partitions are parts of their
    /// table, never tables of the snapshot themselves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionCatalog>,
    /// Non-internal triggers.
    pub triggers: Vec<TriggerCatalog>,
    /// Estimated row count (`reltuples`, -1 when never analysed).
    pub estimated_rows: i64,
    /// Estimated size of the table's rows in bytes (`relpages` × block size, as of the last
    /// VACUUM or ANALYZE; 0 before either).
    pub estimated_bytes: i64,
    /// Sequences feeding integer columns (identity, serial, or a default calling `nextval`),
    /// sorted by column.
    pub key_sequences: Vec<KeySequenceCatalog>,
    /// Whether the table holds any row; read only on a node that is not a member of the mesh
    /// yet (`None` otherwise), to tell a database being brought in from an empty one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_rows: Option<bool>,
}

/// One partition of a partitioned table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PartitionCatalog {
    /// Its schema (the partitioned table's, when pgconverge made it).
    pub schema: String,
    pub name: String,
    /// `pg_get_expr(relpartbound, oid)`: `FOR VALUES FROM (…) TO (…)`, `DEFAULT`, ….
    pub bound: String,
    /// Itself partitioned (sub-partitioning, which the config cannot describe).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partitioned: bool,
    /// Names of its own triggers (not those cloned from its table's row triggers), sorted:
    /// pgconverge's refusal of a TRUNCATE of it alone is one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<String>,
}

/// A sequence that hands out a column's values, with the values already in use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeySequenceCatalog {
    pub column: String,
    pub sequence: QualifiedName,
    pub min_value: i64,
    pub max_value: i64,
    pub start_value: i64,
    pub increment: i64,
    /// The value the next `nextval` returns (read from the sequence itself: after a
    /// `RESTART` it is the restart value, which no catalog shows).
    pub next_value: i64,
    /// Owned by the column (a serial or identity column's own sequence), not merely called
    /// by its default.
    pub owned: bool,
    /// The greatest value of the column in the block of each slot the node's register
    /// knows, by slot (slots whose block holds no value are left out).
    pub block_maxima: BTreeMap<i64, i64>,
}

impl TableCatalog {
    pub fn column(&self, name: &str) -> Option<&ColumnCatalog> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnCatalog {
    pub name: String,
    /// `format_type(atttypid, atttypmod)`, e.g. `character varying(20)`.
    pub data_type: String,
    pub not_null: bool,
    /// `pg_get_expr(adbin, adrelid)`.
    pub default: Option<String>,
    /// `attidentity`: `a` generated always, `d` by default; `None` for other columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// A stored generated column's expression (`pg_get_expr(adbin, attrelid)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstraintCatalog {
    pub name: String,
    pub kind: ConstraintKind,
    /// Constrained columns, in key order.
    pub columns: Vec<String>,
    /// `pg_get_constraintdef`.
    pub definition: String,
    /// For foreign keys: referenced table and columns.
    pub references: Option<(QualifiedName, Vec<String>)>,
    /// For foreign keys: their actions and deferrability (`None` reads as the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign_key: Option<ForeignKeyRules>,
}

/// What a foreign key does besides pointing: its actions and when it is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForeignKeyRules {
    /// `confupdtype`: `a` no action, `r` restrict, `c` cascade, `n` set null, `d` set default.
    pub on_update: String,
    /// `confdeltype`, in the same codes.
    pub on_delete: String,
    pub deferrable: bool,
    pub initially_deferred: bool,
}

impl ForeignKeyRules {
    /// The config's spelling of an action code (`no action` for an unknown one).
    pub fn action_name(code: &str) -> &'static str {
        match code {
            "r" => "restrict",
            "c" => "cascade",
            "n" => "set null",
            "d" => "set default",
            _ => "no action",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    ForeignKey,
    Check,
    Exclusion,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexCatalog {
    pub name: String,
    /// Key columns by name; when any key is an expression (`expression_keys`), every key as
    /// `pg_get_indexdef(oid, k, true)` prints it.
    pub columns: Vec<String>,
    pub unique: bool,
    /// `pg_get_indexdef`.
    pub definition: String,
    /// Access method (`pg_am.amname`); empty in snapshots older than the field (btree).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// Whether any key is an expression.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expression_keys: bool,
    /// INCLUDE columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// A partial index's predicate (`pg_get_expr(indpred, indrelid, true)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<String>,
    /// What of the definition the config cannot state (an operator class or collation other
    /// than the key's default, an ordering, storage parameters), when anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmodelled: Option<String>,
}

impl IndexCatalog {
    /// The access method, `btree` when the snapshot does not say.
    pub fn method(&self) -> &str {
        if self.method.is_empty() {
            "btree"
        } else {
            &self.method
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerCatalog {
    pub name: String,
    /// Function called, schema-qualified.
    pub function: QualifiedName,
    /// `tgenabled`: `O` origin/local, `D` disabled, `R` replica, `A` always.
    pub enabled: String,
    /// `pg_get_triggerdef`.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCatalog {
    /// The body as stored in `pg_proc.prosrc`; empty when introspection was told the
    /// function's expected fingerprint and the function carries it (the body is then known
    /// and is not read).
    pub definition: String,
    /// Hex sha256 of the body (`prosrc`); empty when the body was not read.
    pub body_sha256: String,
    /// Arguments as `pg_get_function_identity_arguments` prints them.
    pub identity_arguments: String,
    /// The fingerprint pgconverge recorded in the function's comment when it created it, if
    /// the comment names the `xmin` of the live catalog row (empty otherwise: no comment, a
    /// foreign one, or a function replaced since).
    #[serde(default)]
    pub fingerprint: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PublicationCatalog {
    pub all_tables: bool,
    /// Operations published: subset of insert, update, delete, truncate.
    pub publish: Vec<String>,
    pub tables: Vec<QualifiedName>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionCatalog {
    /// Connection string with `password=` values replaced by `********`.
    pub conninfo_redacted: String,
    /// sha256 of the full conninfo, so a changed password is still detected.
    pub conninfo_sha256: String,
    pub publications: Vec<String>,
    pub enabled: bool,
    /// `none` or `any`.
    pub origin: String,
    pub slot_name: Option<String>,
    /// Owner role of the subscription.
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotCatalog {
    pub plugin: Option<String>,
    /// `logical` or `physical`.
    pub slot_type: String,
    /// Database of a logical slot.
    pub database: Option<String>,
    pub active: bool,
    /// `reserved`, `extended`, `unreserved`, `lost` (NULL when never used).
    pub wal_status: Option<String>,
    pub confirmed_flush_lsn: Option<String>,
}

/// An object in the database that the config cannot describe, or a fact that keeps a table
/// out of the config; read for `import`, which lists each one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OutsideObject {
    /// `view`, `function`, `policy`, `enum type`, `partition`, `generated column`, …
    pub kind: String,
    /// Empty for objects outside any schema (extensions).
    pub schema: String,
    /// The object's name; for a policy, a partition, a generated column or an extension
    /// table, the table's.
    pub name: String,
    /// The policy's or column's name, a partition's parent, an enum's labels, a domain's
    /// base type, a routine's arguments, an extension's version.
    pub detail: String,
}

/// JSON objects need string keys: maps keyed by [`QualifiedName`] are written as a list of
/// `[key, value]` pairs instead.
mod entries {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::QualifiedName;

    pub fn serialize<S: Serializer, V: Serialize>(
        map: &BTreeMap<QualifiedName, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<QualifiedName, V>, D::Error> {
        let pairs: Vec<(QualifiedName, V)> = Vec::deserialize(deserializer)?;
        Ok(pairs.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogs_round_trip_through_json() {
        let mut catalog = NodeCatalog::default();
        catalog
            .tables
            .insert(QualifiedName::new("public", "t"), TableCatalog::default());
        let text = serde_json::to_string(&catalog).expect("serialises");
        let back: NodeCatalog = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, catalog);
    }
}
