//! The unified configuration (`pgconverge.json`): nodes, tables, replication settings.
//!
//! These types are the single source of the JSON Schema in `schemas/` (via schemars) and of
//! everything the planner builds. Field names are part of the user-facing contract.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole cluster as the user describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Optional link to the JSON Schema, for editors. Ignored by pgconverge.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Every node of the mesh. Each publishes its tables and subscribes to every other node.
    pub nodes: Vec<NodeConfig>,
    /// Enum and domain types, created on every node before the tables that use them. A type
    /// only left out of this list is kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<TypeConfig>,
    /// Replicated tables, created on every node.
    pub tables: Vec<TableConfig>,
    /// Cluster-wide replication and conflict settings.
    #[serde(default)]
    pub replication: ReplicationConfig,
    /// TLS defaults for every node; a node's own fields override them one by one.
    #[serde(default, skip_serializing_if = "TlsConfig::is_empty")]
    pub tls: TlsConfig,
    /// Tables to drop on every node, as `schema.table` or `table` (in `public`); their rows
    /// are lost. A table only left out of `tables` is kept: pgconverge drops nothing it is
    /// not told to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_tables: Vec<String>,
    /// Enum and domain types to drop on every node, as `schema.type` or `type` (in
    /// `public`); a column still using one makes the drop fail. A type only left out of
    /// `types` is kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_types: Vec<String>,
    /// SQL files for what the config does not describe (views, functions, triggers,
    /// policies, grants), paths relative to this file. Each is run on every node, in this
    /// order, in one transaction, and again whenever its contents change; a joining node
    /// runs them all. Write them to be run again: `CREATE OR REPLACE`, `IF NOT EXISTS`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sql_files: Vec<String>,
    /// The contents of `sql_files`, in the same order, read beside the config by the
    /// command that loaded it; not part of the JSON.
    #[serde(skip)]
    #[schemars(skip)]
    pub sql_file_texts: Vec<SqlFileText>,
}

/// One of `sql_files` as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqlFileText {
    /// As the config names it.
    pub name: String,
    pub text: String,
}

/// One PostgreSQL server (one database on it) taking part in the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Node name: lowercase letters, digits and `_`, starting with a letter. Used in
    /// publication, subscription and slot names.
    pub name: String,
    /// Address pgconverge connects to.
    pub host: String,
    /// Port pgconverge connects to (default 5432).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// Address peers use in their subscriptions to this node (default: `host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_host: Option<String>,
    /// Port peers use in their subscriptions to this node (default: `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub peer_port: Option<u16>,
    /// Database name.
    pub db: String,
    /// Role pgconverge and the peers' subscriptions log in as.
    pub user: String,
    /// Password in clear text. Prefer `password_env`, `PGCONVERGE_<NODE>_PASSWORD`,
    /// `PGPASSWORD` or `.pgpass`; a password here is never printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Name of an environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Command (argv) whose standard output is the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_command: Option<Vec<String>>,
    /// libpq `sslmode` for connections to this node (default `prefer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full", null]))]
    pub sslmode: Option<String>,
    /// CA certificate(s) pgconverge checks this node's server certificate against (PEM file,
    /// read where pgconverge runs). Needed by `verify-ca` and `verify-full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslrootcert: Option<String>,
    /// Client certificate pgconverge presents to this node (PEM file, read where pgconverge
    /// runs); its CN must be `user` when the server asks for certificate authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslcert: Option<String>,
    /// Private key of `sslcert` (PEM file, read where pgconverge runs; keep it mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslkey: Option<String>,
    /// TLS and authentication of this node's subscriptions to its peers. The paths are read by
    /// this node's PostgreSQL server, on its machine, not by pgconverge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_tls: Option<SubscriptionTlsConfig>,
    /// Managed elsewhere: pgconverge plans for it but `sandbox` never starts it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// The node this one copies its rows from when it joins a mesh that holds data (default:
    /// the first node, in config order, that receives from every other member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub donor: Option<String>,
    /// Merge the rows this node holds into the mesh when it joins, instead of refusing a
    /// join into tables that hold rows: rows the mesh has no version of are kept and
    /// replicated, a key both hold keeps the newer version (the mesh's when neither was
    /// written since adoption) and the other goes to the conflict ledger. See
    /// docs/adopting.md, "Merging databases that hold rows".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub merge_rows: bool,
}

impl NodeConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(5432)
    }
    pub fn peer_host(&self) -> &str {
        self.peer_host.as_deref().unwrap_or(&self.host)
    }
    pub fn peer_port(&self) -> u16 {
        self.peer_port.unwrap_or_else(|| self.port())
    }
}

/// A replicated table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Table name (unqualified).
    pub name: String,
    /// Schema the table lives in (default `public`).
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Columns in order. Columns with the reserved prefix `_pgc_` are not allowed.
    pub columns: Vec<ColumnConfig>,
    /// Primary key columns (required: replication identifies rows by it).
    pub primary_key: Vec<String>,
    /// UNIQUE constraints, each a list of columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique: Vec<Vec<String>>,
    /// Foreign keys to other configured tables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKeyConfig>,
    /// Plain (non-unique) indexes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexConfig>,
    /// CHECK constraints. One added to a table that holds rows is checked against them
    /// before anything changes, and added on every node at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckConfig>,
    /// How conflicting writes to this table are resolved.
    #[serde(default)]
    pub conflict: ConflictConfig,
    /// Compatibility columns maintained on local writes (for applications written against
    /// the older tool): `updated_at` set to the write time, `origin_node` to the node name.
    #[serde(default, skip_serializing_if = "LegacyColumns::is_empty")]
    pub legacy_columns: LegacyColumns,
    /// Columns to drop from the live table on every node; their data is lost. A column only
    /// left out of `columns` is kept: pgconverge drops nothing it is not told to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_columns: Vec<String>,
    /// Makes the table a partitioned table (`PARTITION BY`): rows are stored in its
    /// `partitions`, chosen by the key columns. The primary key and every UNIQUE constraint
    /// must include every key column (PostgreSQL enforces uniqueness per partition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_by: Option<PartitionBy>,
    /// The partitions of a partitioned table, created in the table's schema. Only the table
    /// itself is replicated: a row written on any node reaches the partition its key
    /// chooses on every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionConfig>,
    /// Partitions to drop from the live table on every node, by name; their rows are lost.
    /// A partition only left out of `partitions` is kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_partitions: Vec<String>,
}

/// How a partitioned table chooses the partition of a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionBy {
    /// `range`, `list` or `hash`.
    pub strategy: PartitionStrategy,
    /// Key columns, in order (`list` takes exactly one).
    pub columns: Vec<String>,
}

/// PostgreSQL's partitioning strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartitionStrategy {
    Range,
    List,
    Hash,
}

impl PartitionStrategy {
    /// As in `PARTITION BY <strategy> (…)`, and as `pg_get_partkeydef` prints it.
    pub fn sql(self) -> &'static str {
        match self {
            PartitionStrategy::Range => "RANGE",
            PartitionStrategy::List => "LIST",
            PartitionStrategy::Hash => "HASH",
        }
    }
}

/// One partition of a partitioned table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionConfig {
    /// Partition name (a table in the partitioned table's schema).
    pub name: String,
    /// Its bound, as after `FOR VALUES` in PostgreSQL: `FROM ('2026-01-01') TO
    /// ('2027-01-01')`, `IN ('eu', 'uk')`, `WITH (MODULUS 4, REMAINDER 0)`, or `DEFAULT`
    /// for the partition taking every row no other one takes.
    pub bounds: String,
}

pub fn default_schema() -> String {
    "public".to_string()
}

impl TableConfig {
    pub fn column(&self, name: &str) -> Option<&ColumnConfig> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    pub name: String,
    /// PostgreSQL type, e.g. `text`, `bigint`, `numeric(12,2)`, `timestamptz`, `jsonb`,
    /// `text[]`. `serial`, `bigserial` and `smallserial` are accepted: like identity columns
    /// and defaults drawing from a sequence, each node hands out values only from its own
    /// block (see docs/adopting.md, "Integer keys").
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether NULL is allowed (default true; primary key columns are always NOT NULL).
    #[serde(default = "default_true")]
    pub nullable: bool,
    /// Default expression, as SQL (e.g. `now()`, `gen_random_uuid()`, `'draft'`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The column's previous name: a live column of that name is renamed to this one, keeping
    /// its data. Renames are never guessed from a column missing and another one new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// An identity column (`GENERATED ALWAYS` or `BY DEFAULT AS IDENTITY`) of an integer
    /// type; its values are node-unique. Identity columns are NOT NULL and take no default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", extend("enum" = ["always", "by default", null]))]
    pub identity: Option<IdentityKind>,
    /// A generated column: its value is this SQL expression over the row's other columns,
    /// computed and stored by PostgreSQL on every node (`GENERATED ALWAYS AS (…) STORED`),
    /// e.g. `price * quantity`. Takes no default or identity, is never part of the primary
    /// key, and is never written by replication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
}

/// How an identity column accepts explicit values: `always` (`GENERATED ALWAYS AS
/// IDENTITY`, an explicit value needs `OVERRIDING SYSTEM VALUE`) or `by default` (`GENERATED
/// BY DEFAULT AS IDENTITY`, an explicit value is taken as given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum IdentityKind {
    #[serde(rename = "always")]
    Always,
    #[serde(rename = "by default")]
    ByDefault,
}

impl IdentityKind {
    /// As in `GENERATED <kind> AS IDENTITY`.
    pub fn sql(self) -> &'static str {
        match self {
            IdentityKind::Always => "ALWAYS",
            IdentityKind::ByDefault => "BY DEFAULT",
        }
    }

    /// `pg_attribute.attidentity` of a column of this kind.
    pub fn catalog_code(self) -> &'static str {
        match self {
            IdentityKind::Always => "a",
            IdentityKind::ByDefault => "d",
        }
    }
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForeignKeyConfig {
    pub columns: Vec<String>,
    pub references: ForeignKeyTarget,
    /// `ON DELETE` action: `no action` (default), `restrict`, `cascade`, `set null`,
    /// `set default`. The action runs on the node where the row is deleted; what it does to
    /// other rows replicates as their own changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["no action", "restrict", "cascade", "set null", "set default", null]))]
    pub on_delete: Option<String>,
    /// `ON UPDATE` action: `no action` (default), `restrict`, `cascade`, `set null`,
    /// `set default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["no action", "restrict", "cascade", "set null", "set default", null]))]
    pub on_update: Option<String>,
    /// `DEFERRABLE`: the check may be deferred to commit (`SET CONSTRAINTS … DEFERRED`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deferrable: bool,
    /// `INITIALLY DEFERRED`: checked at commit unless a transaction says otherwise; needs
    /// `deferrable`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub initially_deferred: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForeignKeyTarget {
    /// Referenced table name; `schema.table` when not in `public`.
    pub table: String,
    pub columns: Vec<String>,
}

/// A non-unique index. Its keys are either `columns` or `expressions`, one of the two.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexConfig {
    /// Key columns, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Keys as SQL expressions, in order, e.g. `lower(email)`; a key may also be a plain
    /// column name, so `["tenant_id", "lower(email)"]` mixes the two.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expressions: Vec<String>,
    /// Index name (default `<table>_<col>_..._idx`, shortened to 63 bytes; for expression
    /// keys, the words of the expressions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Access method: `btree` (default), `hash`, `gin`, `gist`, `brin` or `spgist`, each key
    /// with its type's default operator class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["btree", "hash", "gin", "gist", "brin", "spgist", null]))]
    pub method: Option<String>,
    /// Columns stored in the index without being keys (`INCLUDE`; btree, gist and spgist).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Partial index: only rows for which this SQL condition holds, e.g. `status = 'open'`.
    #[serde(rename = "where", default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<String>,
}

/// Index access methods the config may name.
pub const INDEX_METHODS: &[&str] = &["btree", "hash", "gin", "gist", "brin", "spgist"];

/// Foreign key actions, as the config spells them.
pub const FOREIGN_KEY_ACTIONS: &[&str] = &[
    "no action",
    "restrict",
    "cascade",
    "set null",
    "set default",
];

impl IndexConfig {
    /// The access method, `btree` when none is given.
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("btree")
    }
}

/// A CHECK constraint of a table or a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Constraint name (default `<table>_<column>_check` for a table check naming one
    /// column, `<table>_check` otherwise, `<domain>_check` for a domain; at most 63 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Boolean SQL expression, e.g. `price >= 0`; in a domain, the value is `VALUE`.
    pub expression: String,
}

/// An enum or domain type: exactly one of `enum` and `domain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TypeConfig {
    /// Type name (unqualified); columns name it as `name` or `schema.name`.
    pub name: String,
    /// Schema the type lives in (default `public`).
    #[serde(default = "default_schema")]
    pub schema: String,
    /// An enum type's labels in order. Labels can be added anywhere later; PostgreSQL
    /// cannot remove or reorder existing ones.
    #[serde(rename = "enum", default, skip_serializing_if = "Option::is_none")]
    pub enum_values: Option<Vec<String>>,
    /// A domain's base type, e.g. `integer`, `text`, `numeric(12,2)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Whether a domain allows NULL (default true).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub nullable: bool,
    /// A domain's default expression, as SQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// A domain's CHECK constraints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckConfig>,
}

fn is_true(value: &bool) -> bool {
    *value
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConflictConfig {
    #[serde(default)]
    pub policy: ConflictPolicy,
}

/// Conflict policy. `lww`: per-row hybrid-logical-clock last-write-wins with versioned
/// tombstones and deterministic UNIQUE collision resolution (see docs/conflicts.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    #[default]
    Lww,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyColumns {
    /// Name of a `timestamp` column set to the time of every local write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Name of a `text` column set to the writing node's name on every local write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_node: Option<String>,
}

impl LegacyColumns {
    pub fn is_empty(&self) -> bool {
        self.updated_at.is_none() && self.origin_node.is_none()
    }
}

/// Cluster-wide replication settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicationConfig {
    /// Days resolved conflicts are kept in each node's conflict ledger (default 7).
    #[serde(default = "default_retention_days")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub conflict_retention_days: u32,
    /// Days tombstones of deleted rows are kept (default 7). A node offline for longer
    /// must be rejoined.
    #[serde(default = "default_retention_days")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub tombstone_retention_days: u32,
    /// How changes travel between nodes (default `change_log`). `forwarding` is an
    /// evaluated prototype without a change record per write: base tables are published, every
    /// node forwards what it applies, and rows carry their incarnation. It takes no UNIQUE
    /// constraint besides the primary key, no partitioned table and no change of primary key,
    /// and a cluster's write path cannot change once it is in the mesh (docs/conflicts.md).
    #[serde(default, skip_serializing_if = "WritePath::is_default")]
    pub write_path: WritePath,
}

/// How changes travel between nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WritePath {
    /// Every local write is recorded in `_pgconverge.changes`, the only published table;
    /// each node applies the records of its peers.
    #[default]
    ChangeLog,
    /// Base tables are published and every node forwards what it applies (`origin = any`);
    /// no second row per write.
    Forwarding,
}

impl WritePath {
    pub fn is_default(&self) -> bool {
        *self == WritePath::ChangeLog
    }

    /// As the config spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            WritePath::ChangeLog => "change_log",
            WritePath::Forwarding => "forwarding",
        }
    }
}

fn default_retention_days() -> u32 {
    7
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            conflict_retention_days: default_retention_days(),
            tombstone_retention_days: default_retention_days(),
            write_path: WritePath::ChangeLog,
        }
    }
}

// ---- TLS settings --------------------------------------------------------------------------

/// Cluster-wide TLS defaults (`"tls"` at the top level).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Default `sslmode` of pgconverge's connections to the nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full", null]))]
    pub sslmode: Option<String>,
    /// Default CA file for pgconverge's connections (read where pgconverge runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslrootcert: Option<String>,
    /// Default client certificate for pgconverge's connections (read where pgconverge runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslcert: Option<String>,
    /// Default private key of `sslcert` (read where pgconverge runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslkey: Option<String>,
    /// Defaults for every node's subscriptions (paths read by each subscriber's server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionTlsConfig>,
}

impl TlsConfig {
    pub fn is_empty(&self) -> bool {
        self == &TlsConfig::default()
    }
}

/// How a node's subscriptions reach their publishers. Every path is read by the subscribing
/// node's PostgreSQL server (its libpq walreceiver), so it names a file on that server.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionTlsConfig {
    /// `sslmode` of the subscription's connection (default: the publisher's `sslmode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full", null]))]
    pub sslmode: Option<String>,
    /// CA file on the subscriber's server, checked against the publisher's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslrootcert: Option<String>,
    /// Client certificate file on the subscriber's server; its CN is the publisher's `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslcert: Option<String>,
    /// Private key of `sslcert` on the subscriber's server (owned by the server's OS user,
    /// mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslkey: Option<String>,
    /// `password` (default): the publisher's password is written into the subscription's
    /// connection string, which PostgreSQL 16–18 require when the subscription's owner is not
    /// a superuser. `certificate`: no password; the client certificate authenticates, which
    /// needs a superuser to own the subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SubscriptionAuth>,
}

/// How a subscription authenticates to its publisher.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionAuth {
    Password,
    Certificate,
}

impl SubscriptionTlsConfig {
    /// Each field of `self`, else of `defaults`.
    pub fn or(&self, defaults: &SubscriptionTlsConfig) -> SubscriptionTlsConfig {
        SubscriptionTlsConfig {
            sslmode: self.sslmode.clone().or_else(|| defaults.sslmode.clone()),
            sslrootcert: self
                .sslrootcert
                .clone()
                .or_else(|| defaults.sslrootcert.clone()),
            sslcert: self.sslcert.clone().or_else(|| defaults.sslcert.clone()),
            sslkey: self.sslkey.clone().or_else(|| defaults.sslkey.clone()),
            auth: self.auth.or(defaults.auth),
        }
    }

    pub fn auth(&self) -> SubscriptionAuth {
        self.auth.unwrap_or(SubscriptionAuth::Password)
    }
}

impl NodeConfig {
    /// This node with the cluster's TLS defaults filled into the fields it leaves unset.
    pub fn with_tls_defaults(&self, tls: &TlsConfig) -> NodeConfig {
        let mut node = self.clone();
        node.sslmode = node.sslmode.or_else(|| tls.sslmode.clone());
        node.sslrootcert = node.sslrootcert.or_else(|| tls.sslrootcert.clone());
        node.sslcert = node.sslcert.or_else(|| tls.sslcert.clone());
        node.sslkey = node.sslkey.or_else(|| tls.sslkey.clone());
        node.subscription_tls = match (&node.subscription_tls, &tls.subscription) {
            (Some(own), Some(defaults)) => Some(own.or(defaults)),
            (own, defaults) => own.clone().or_else(|| defaults.clone()),
        };
        node
    }

    /// The subscription settings this node uses (all unset when the config gives none).
    pub fn subscription_tls(&self) -> SubscriptionTlsConfig {
        self.subscription_tls.clone().unwrap_or_default()
    }
}

impl ClusterConfig {
    /// The config with [`TlsConfig`] defaults applied to every node, so whoever reads a node
    /// sees the settings that apply to it.
    pub fn with_tls_defaults(mut self) -> ClusterConfig {
        let tls = self.tls.clone();
        for node in &mut self.nodes {
            *node = node.with_tls_defaults(&tls);
        }
        self
    }
}
