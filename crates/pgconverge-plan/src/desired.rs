//! What every node should look like, derived from the config alone: schemas, tables with the
//! reserved conflict columns, constraints, indexes, the conflict machinery, the publication
//! and one subscription per peer. Everything but the node's name, its publication and its
//! subscriptions is the same on every node, so it is derived once and shared.

use std::sync::Arc;

use pgconverge_model::catalog::QualifiedName;
use pgconverge_model::config::{
    ClusterConfig, ColumnConfig, IdentityKind, NodeConfig, SubscriptionAuth, TableConfig,
};
use pgconverge_model::key_blocks::{is_sequence_default, serial_integer_type};
use pgconverge_model::naming::{
    publication_name, subscription_name, INTERNAL_SCHEMA, MAX_IDENTIFIER_BYTES,
};
use pgconverge_model::types::{normalize_default, normalize_type};
use sha2::{Digest, Sha256};

use crate::conflict::{self, ConflictObjects, FunctionDef, InternalTable, TriggerDef};
use crate::diff::key_sequences::has_key_generators;
use crate::statement::ConninfoSpec;

#[derive(Debug, Clone)]
pub struct DesiredNode {
    pub name: String,
    /// Schemas that must exist, internal schema first.
    pub schemas: Vec<String>,
    pub internal_tables: Vec<InternalTable>,
    pub tables: Vec<DesiredTable>,
    /// Shared with the other nodes, except `node_name()`.
    pub functions: Vec<Arc<FunctionDef>>,
    /// Shared with the other nodes.
    pub triggers: Vec<Arc<TriggerDef>>,
    pub publication: DesiredPublication,
    pub subscriptions: Vec<DesiredSubscription>,
    /// Tables the config asks to drop.
    pub dropped_tables: Vec<QualifiedName>,
    /// The config's SQL files, in order, shared with the other nodes.
    pub sql_files: Vec<Arc<DesiredSqlFile>>,
}

/// One of the config's SQL files, as every node must have run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredSqlFile {
    /// As the config names it.
    pub name: String,
    pub text: String,
    /// Hex sha256 of `text`, recorded on the node once it ran.
    pub sha256: String,
}

/// The config's SQL files with their fingerprints.
pub fn desired_sql_files(config: &ClusterConfig) -> Vec<Arc<DesiredSqlFile>> {
    config
        .sql_file_texts
        .iter()
        .map(|f| {
            Arc::new(DesiredSqlFile {
                name: f.name.clone(),
                text: f.text.clone(),
                sha256: crate::conflict::naming::sha256_hex(&f.text),
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredTable {
    pub name: QualifiedName,
    pub columns: Vec<DesiredColumn>,
    pub primary_key: ConstraintSpec,
    pub uniques: Vec<ConstraintSpec>,
    pub foreign_keys: Vec<ForeignKeySpec>,
    pub indexes: Vec<IndexSpec>,
    /// Columns the config asks to drop from the live table.
    pub dropped_columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredColumn {
    pub name: String,
    /// As `format_type` prints it.
    pub data_type: String,
    pub not_null: bool,
    /// SQL expression as configured (compared after normalisation).
    pub default: Option<String>,
    /// Added by pgconverge for conflict resolution.
    pub reserved: bool,
    /// The live column of this name is renamed to this one.
    pub renamed_from: Option<String>,
    /// Where the column's values come from when an insert leaves it out, if a sequence.
    pub generator: Option<KeyGenerator>,
}

/// A sequence handing out a column's values; pgconverge keeps it inside its node's key block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyGenerator {
    /// `GENERATED … AS IDENTITY`.
    Identity(IdentityKind),
    /// A `serial` type (its name as configured, normalised, e.g. `bigserial`): a sequence
    /// owned by the column and a `nextval` default.
    Serial { serial_type: String },
    /// A configured default calling `nextval` on a sequence that exists by itself.
    SequenceDefault,
}

impl DesiredColumn {
    /// Whether the column's live default is what the config asks for. A serial column's
    /// default is the `nextval` of whatever sequence PostgreSQL named for it.
    pub fn default_matches(&self, live: Option<&str>) -> bool {
        match &self.generator {
            Some(KeyGenerator::Serial { .. }) => live.is_some_and(is_sequence_default),
            Some(KeyGenerator::Identity(_)) => live.is_none(),
            _ => defaults_match(self.default.as_deref(), live),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintSpec {
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKeySpec {
    pub name: String,
    pub columns: Vec<String>,
    pub ref_table: QualifiedName,
    pub ref_columns: Vec<String>,
    pub on_delete: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPublication {
    pub name: String,
    pub tables: Vec<QualifiedName>,
    pub publish: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredSubscription {
    pub name: String,
    /// Node this subscription receives from (and whose slot it uses).
    pub publisher: String,
    pub publication: String,
    pub conninfo: ConninfoSpec,
}

/// Desired state of every node, in config order.
pub fn desired_cluster(config: &ClusterConfig) -> Vec<DesiredNode> {
    let shared = SharedObjects::new(config);
    config
        .nodes
        .iter()
        .map(|node| desired_node(config, node, &shared))
        .collect()
}

/// The node-independent part of every node's desired state, derived once per cluster.
struct SharedObjects {
    conflict: ConflictObjects,
    schemas: Vec<String>,
    tables: Vec<DesiredTable>,
    sql_files: Vec<Arc<DesiredSqlFile>>,
}

impl SharedObjects {
    fn new(config: &ClusterConfig) -> SharedObjects {
        let dropped = dropped_tables(config);
        let conflict = conflict::cluster_objects(&config.tables, &config.replication, &dropped);
        let mut schemas = vec![INTERNAL_SCHEMA.to_string()];
        for table in &config.tables {
            if !schemas.contains(&table.schema) {
                schemas.push(table.schema.clone());
            }
        }
        let tables = config
            .tables
            .iter()
            .map(|t| desired_table(t, &conflict.reserved_columns))
            .collect();
        SharedObjects {
            conflict,
            schemas,
            tables,
            sql_files: desired_sql_files(config),
        }
    }
}

fn desired_node(config: &ClusterConfig, node: &NodeConfig, shared: &SharedObjects) -> DesiredNode {
    let subscriptions = config
        .nodes
        .iter()
        .filter(|peer| peer.name != node.name)
        .map(|peer| DesiredSubscription {
            name: subscription_name(&node.name, &peer.name),
            publisher: peer.name.clone(),
            publication: publication_name(&peer.name),
            conninfo: subscription_conninfo(node, peer),
        })
        .collect();
    let conflict = &shared.conflict;
    DesiredNode {
        name: node.name.clone(),
        schemas: shared.schemas.clone(),
        internal_tables: conflict
            .internal_tables
            .iter()
            .cloned()
            .chain([crate::lifecycle::membership_table()])
            .chain(
                has_key_generators(&shared.tables).then(crate::diff::key_sequences::key_slot_table),
            )
            .collect(),
        tables: shared.tables.clone(),
        functions: conflict.node_functions(&node.name),
        triggers: conflict.triggers.clone(),
        publication: DesiredPublication {
            name: publication_name(&node.name),
            tables: conflict.published_tables.clone(),
            publish: conflict.publish_operations.clone(),
        },
        subscriptions,
        dropped_tables: dropped_tables(config),
        sql_files: shared.sql_files.clone(),
    }
}

/// How `node`'s subscription reaches `peer`: the peer's address and role, TLS as `node`'s
/// `subscription_tls` says (its files are on `node`'s server; the mode defaults to the one
/// pgconverge uses for the peer), and the peer's password unless certificates authenticate.
fn subscription_conninfo(node: &NodeConfig, peer: &NodeConfig) -> ConninfoSpec {
    let tls = node.subscription_tls();
    let password_of = match tls.auth() {
        SubscriptionAuth::Password => Some(peer.name.clone()),
        SubscriptionAuth::Certificate => None,
    };
    ConninfoSpec {
        host: peer.peer_host().to_string(),
        port: peer.peer_port(),
        dbname: peer.db.clone(),
        user: peer.user.clone(),
        sslmode: tls.sslmode.or_else(|| peer.sslmode.clone()),
        sslrootcert: tls.sslrootcert,
        sslcert: tls.sslcert,
        sslkey: tls.sslkey,
        password_of,
    }
}

fn desired_table(table: &TableConfig, reserved: &[conflict::ReservedColumn]) -> DesiredTable {
    let name = QualifiedName::new(&table.schema, &table.name);
    let mut columns: Vec<DesiredColumn> = table
        .columns
        .iter()
        .map(|c| {
            let declared = normalize_type(&c.data_type);
            let generator = key_generator(c, &declared);
            DesiredColumn {
                name: c.name.clone(),
                data_type: serial_integer_type(&declared)
                    .map(str::to_string)
                    .unwrap_or(declared),
                // Identity and serial columns are NOT NULL whatever the config says.
                not_null: !c.nullable
                    || table.primary_key.contains(&c.name)
                    || matches!(
                        generator,
                        Some(KeyGenerator::Identity(_) | KeyGenerator::Serial { .. })
                    ),
                // PostgreSQL stores no default for `DEFAULT NULL`; treat it as none.
                default: c.default.clone().filter(|d| normalize_default(d) != "null"),
                reserved: false,
                renamed_from: c.renamed_from.clone(),
                generator,
            }
        })
        .collect();
    columns.extend(reserved.iter().map(|r| DesiredColumn {
        name: r.name.clone(),
        data_type: r.data_type.clone(),
        not_null: r.not_null,
        default: r.default.clone(),
        reserved: true,
        renamed_from: None,
        generator: None,
    }));
    let primary_key = ConstraintSpec {
        name: object_name(&[&table.name], "pkey"),
        columns: table.primary_key.clone(),
    };
    let uniques = table
        .unique
        .iter()
        .map(|cols| ConstraintSpec {
            name: object_name(&name_parts(&table.name, cols), "key"),
            columns: cols.clone(),
        })
        .collect();
    let foreign_keys = table
        .foreign_keys
        .iter()
        .map(|fk| ForeignKeySpec {
            name: object_name(&name_parts(&table.name, &fk.columns), "fkey"),
            columns: fk.columns.clone(),
            ref_table: parse_table_ref(&fk.references.table, "public"),
            ref_columns: fk.references.columns.clone(),
            on_delete: fk.on_delete.clone(),
        })
        .collect();
    let indexes = table
        .indexes
        .iter()
        .map(|ix| IndexSpec {
            name: ix
                .name
                .clone()
                .unwrap_or_else(|| object_name(&name_parts(&table.name, &ix.columns), "idx")),
            columns: ix.columns.clone(),
        })
        .collect();
    DesiredTable {
        name,
        columns,
        primary_key,
        uniques,
        foreign_keys,
        indexes,
        dropped_columns: table.dropped_columns.clone(),
    }
}

/// The sequence feeding a configured column, if one does.
fn key_generator(column: &ColumnConfig, declared_type: &str) -> Option<KeyGenerator> {
    if let Some(kind) = column.identity {
        Some(KeyGenerator::Identity(kind))
    } else if serial_integer_type(declared_type).is_some() {
        Some(KeyGenerator::Serial {
            serial_type: declared_type.to_string(),
        })
    } else if column.default.as_deref().is_some_and(is_sequence_default) {
        Some(KeyGenerator::SequenceDefault)
    } else {
        None
    }
}

fn name_parts<'a>(table: &'a str, columns: &'a [String]) -> Vec<&'a str> {
    std::iter::once(table)
        .chain(columns.iter().map(String::as_str))
        .collect()
}

/// `schema.table` or a bare table name (in `default_schema`).
/// The config's `dropped_tables`, qualified.
fn dropped_tables(config: &ClusterConfig) -> Vec<QualifiedName> {
    config
        .dropped_tables
        .iter()
        .map(|t| parse_table_ref(t, "public"))
        .collect()
}

pub fn parse_table_ref(reference: &str, default_schema: &str) -> QualifiedName {
    match reference.split_once('.') {
        Some((schema, name)) => QualifiedName::new(schema, name),
        None => QualifiedName::new(default_schema, reference),
    }
}

/// PostgreSQL-style object name `<parts>_<suffix>`; names that would exceed 63 bytes are cut
/// and given a short hash so they stay unique and stable.
pub fn object_name(parts: &[&str], suffix: &str) -> String {
    let full = format!("{}_{suffix}", parts.join("_"));
    if full.len() <= MAX_IDENTIFIER_BYTES {
        return full;
    }
    let hash = Sha256::digest(full.as_bytes());
    let tag: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let keep = MAX_IDENTIFIER_BYTES - tag.len() - suffix.len() - 2;
    let mut cut = keep;
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{tag}_{suffix}", &full[..cut])
}

/// Whether a configured default and a live default (`pg_get_expr`) mean the same.
pub fn defaults_match(desired: Option<&str>, live: Option<&str>) -> bool {
    match (desired, live) {
        (None, None) => true,
        (Some(d), Some(l)) => normalize_default(d) == normalize_default(l),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_object_names_are_cut_with_a_stable_hash() {
        let long = "a".repeat(80);
        let name = object_name(&[&long, "b"], "key");
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with("_key"));
        assert_eq!(name, object_name(&[&long, "b"], "key"));
        assert_ne!(name, object_name(&[&long, "c"], "key"));
        assert_eq!(object_name(&["users", "email"], "key"), "users_email_key");
    }
}
