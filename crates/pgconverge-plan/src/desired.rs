//! What every node should look like, derived from the config alone: schemas, tables with the
//! reserved conflict columns, constraints, indexes, the conflict machinery, the publication
//! and one subscription per peer. Everything but the node's name, its publication and its
//! subscriptions is the same on every node, so it is derived once and shared.

use std::sync::Arc;

use pgconverge_model::catalog::QualifiedName;
use pgconverge_model::checks::table_check_names;
use pgconverge_model::config::{
    ClusterConfig, ColumnConfig, IdentityKind, NodeConfig, PartitionBy, PartitionConfig,
    SubscriptionAuth, TableConfig, TypeConfig, WritePath,
};
use pgconverge_model::key_blocks::{is_sequence_default, serial_integer_type};
use pgconverge_model::naming::{
    publication_name, subscription_name, INTERNAL_SCHEMA, MAX_IDENTIFIER_BYTES,
};
use pgconverge_model::types::{normalize_default, normalize_type};
use sha2::{Digest, Sha256};

pub use crate::conflict::SubscriptionOrigin;
use crate::conflict::{self, ConflictObjects, FunctionDef, InternalTable, TriggerDef};
use crate::diff::key_sequences::has_key_generators;
use crate::statement::ConninfoSpec;

#[derive(Debug, Clone)]
pub struct DesiredNode {
    pub name: String,
    /// Schemas that must exist, internal schema first.
    pub schemas: Vec<String>,
    pub internal_tables: Vec<InternalTable>,
    /// Enum and domain types, shared with the other nodes.
    pub types: Vec<DesiredType>,
    pub tables: Vec<DesiredTable>,
    /// Shared with the other nodes, except `node_name()`.
    pub functions: Vec<Arc<FunctionDef>>,
    /// Shared with the other nodes.
    pub triggers: Vec<Arc<TriggerDef>>,
    pub publication: DesiredPublication,
    pub subscriptions: Vec<DesiredSubscription>,
    /// Tables the config asks to drop.
    pub dropped_tables: Vec<QualifiedName>,
    /// Types the config asks to drop.
    pub dropped_types: Vec<QualifiedName>,
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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredTable {
    pub name: QualifiedName,
    pub columns: Vec<DesiredColumn>,
    pub primary_key: ConstraintSpec,
    pub uniques: Vec<ConstraintSpec>,
    pub foreign_keys: Vec<ForeignKeySpec>,
    pub indexes: Vec<IndexSpec>,
    /// CHECK constraints, named.
    pub checks: Vec<CheckSpec>,
    /// Columns the config asks to drop from the live table.
    pub dropped_columns: Vec<String>,
    /// The key and partitions of a partitioned table.
    pub partitioning: Option<DesiredPartitioning>,
    /// The unique constraint whose index is the replica identity; `None` for the primary
    /// key (`REPLICA IDENTITY DEFAULT`).
    pub replica_identity: Option<String>,
}

/// A partitioned table's key, its partitions and the partitions the config asks to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPartitioning {
    pub key: PartitionBy,
    pub partitions: Vec<PartitionConfig>,
    pub dropped: Vec<String>,
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
    /// A stored generated column's expression, as configured.
    pub generated: Option<String>,
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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConstraintSpec {
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForeignKeySpec {
    pub name: String,
    pub columns: Vec<String>,
    pub ref_table: QualifiedName,
    pub ref_columns: Vec<String>,
    /// Actions as the config spells them; `None` is `no action`.
    pub on_delete: Option<String>,
    pub on_update: Option<String>,
    pub deferrable: bool,
    pub initially_deferred: bool,
}

/// A named CHECK constraint of a table or domain, its expression as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub name: String,
    pub expression: String,
}

/// An enum or domain type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredType {
    pub name: QualifiedName,
    pub kind: DesiredTypeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DesiredTypeKind {
    Enum {
        labels: Vec<String>,
    },
    Domain {
        /// As `format_type` prints it (configured types qualified).
        base_type: String,
        not_null: bool,
        default: Option<String>,
        checks: Vec<CheckSpec>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    /// Key columns; empty when the keys are `expressions`.
    pub columns: Vec<String>,
    /// Keys as SQL expressions, as configured.
    pub expressions: Vec<String>,
    /// Access method, `btree` by default.
    pub method: String,
    pub include: Vec<String>,
    /// A partial index's condition, as configured.
    pub predicate: Option<String>,
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
    pub origin: SubscriptionOrigin,
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
    types: Vec<DesiredType>,
    tables: Vec<DesiredTable>,
    sql_files: Vec<Arc<DesiredSqlFile>>,
}

impl SharedObjects {
    fn new(config: &ClusterConfig) -> SharedObjects {
        let dropped = dropped_tables(config);
        let forwarding = config.replication.write_path == WritePath::Forwarding;
        let conflict = if forwarding {
            conflict::forwarding::cluster_objects(&tables_with_domain_base_types(config))
        } else {
            conflict::cluster_objects(
                &tables_with_domain_base_types(config),
                &config.replication,
                &dropped,
            )
        };
        let mut schemas = vec![INTERNAL_SCHEMA.to_string()];
        let type_schemas = config.types.iter().map(|t| &t.schema);
        for schema in type_schemas.chain(config.tables.iter().map(|t| &t.schema)) {
            if !schemas.contains(schema) {
                schemas.push(schema.clone());
            }
        }
        let tables = config
            .tables
            .iter()
            .map(|t| {
                let mut table = desired_table(t, &conflict.reserved_columns, &config.types);
                if forwarding {
                    with_incarnation_identity(&mut table);
                }
                table
            })
            .collect();
        SharedObjects {
            conflict,
            schemas,
            types: crate::diff::types::desired_types(&config.types),
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
            origin: shared.conflict.subscription_origin,
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
        types: shared.types.clone(),
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
        dropped_types: config
            .dropped_types
            .iter()
            .map(|t| parse_table_ref(t, "public"))
            .collect(),
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

/// The forwarding write path identifies a row by its primary key and incarnation: a unique
/// constraint over both is the table's replica identity.
fn with_incarnation_identity(table: &mut DesiredTable) {
    let name = object_name(&[&table.name.name], "pgc_identity");
    let mut columns = table.primary_key.columns.clone();
    columns.push(conflict::naming::BIRTH_COLUMN.to_string());
    table.uniques.push(ConstraintSpec {
        name: name.clone(),
        columns,
    });
    table.replica_identity = Some(name);
}

fn desired_table(
    table: &TableConfig,
    reserved: &[conflict::ReservedColumn],
    types: &[TypeConfig],
) -> DesiredTable {
    let name = QualifiedName::new(&table.schema, &table.name);
    let mut columns: Vec<DesiredColumn> = table
        .columns
        .iter()
        .map(|c| {
            let declared = resolve_configured_type(&normalize_type(&c.data_type), types);
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
                generated: c.generated.clone(),
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
        generated: None,
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
            on_update: fk.on_update.clone(),
            deferrable: fk.deferrable,
            initially_deferred: fk.initially_deferred,
        })
        .collect();
    let indexes = table
        .indexes
        .iter()
        .map(|ix| IndexSpec {
            name: ix.name.clone().unwrap_or_else(|| {
                let words: Vec<String> =
                    ix.expressions.iter().map(|e| expression_words(e)).collect();
                let keys = if ix.columns.is_empty() {
                    &words
                } else {
                    &ix.columns
                };
                object_name(&name_parts(&table.name, keys), "idx")
            }),
            columns: ix.columns.clone(),
            expressions: ix.expressions.clone(),
            method: ix.method().to_string(),
            include: ix.include.clone(),
            predicate: ix.predicate.clone(),
        })
        .collect();
    let checks = table
        .checks
        .iter()
        .zip(table_check_names(table))
        .map(|(check, name)| CheckSpec {
            name,
            expression: check.expression.clone(),
        })
        .collect();
    DesiredTable {
        name,
        columns,
        primary_key,
        uniques,
        foreign_keys,
        indexes,
        checks,
        dropped_columns: table.dropped_columns.clone(),
        partitioning: table.partition_by.as_ref().map(|key| DesiredPartitioning {
            key: key.clone(),
            partitions: table.partitions.clone(),
            dropped: table.dropped_partitions.clone(),
        }),
        replica_identity: None,
    }
}

/// A configured enum or domain type named by a column type (`mood`, `public.mood`,
/// `mood[]`) as `format_type` prints it under an empty `search_path`, which introspection
/// uses: schema-qualified, each part quoted if it needs it. Other types are left as they are.
pub fn resolve_configured_type(normalized: &str, types: &[TypeConfig]) -> String {
    let (element, array) = match normalized.strip_suffix("[]") {
        Some(element) => (element, "[]"),
        None => (normalized, ""),
    };
    let unquoted = |part: &str| -> String {
        part.strip_prefix('"')
            .and_then(|p| p.strip_suffix('"'))
            .map(|p| p.replace("\"\"", "\""))
            .unwrap_or_else(|| part.to_string())
    };
    let (schema, name) = match element.split_once('.') {
        Some((schema, name)) => (Some(unquoted(schema)), unquoted(name)),
        None => (None, unquoted(element)),
    };
    let found = types
        .iter()
        .find(|t| t.name == name && schema.as_ref().is_none_or(|s| *s == t.schema));
    match found {
        Some(t) => format!(
            "{}{array}",
            pgconverge_sql::quote_qualified(&t.schema, &t.name)
        ),
        None => normalized.to_string(),
    }
}

/// The configured tables with each column of a configured domain typed as the domain's base
/// type (through domains over domains): a value is made canonical by what it is underneath
/// (`to_jsonb` of a domain over `timestamptz` follows the session's TimeZone as the base
/// type does), for the conflict machinery's keys and verify's digests.
pub fn tables_with_domain_base_types(config: &ClusterConfig) -> Vec<TableConfig> {
    let base_of = |data_type: &str| -> Option<String> {
        let mut current = data_type.to_string();
        let mut changed = false;
        // Bounded: a cycle of domains is refused by PostgreSQL, not looped on here.
        for _ in 0..config.types.len() {
            let resolved = resolve_configured_type(&normalize_type(&current), &config.types);
            let domain = config.types.iter().find(|t| {
                t.domain.is_some()
                    && resolved.trim_end_matches("[]")
                        == pgconverge_sql::quote_qualified(&t.schema, &t.name)
            });
            match domain.and_then(|t| t.domain.clone()) {
                Some(base) => {
                    let array = if resolved.ends_with("[]") { "[]" } else { "" };
                    current = format!("{base}{array}");
                    changed = true;
                }
                None => break,
            }
        }
        changed.then_some(current)
    };
    config
        .tables
        .iter()
        .map(|table| {
            let mut table = table.clone();
            for column in &mut table.columns {
                if let Some(base) = base_of(&column.data_type) {
                    column.data_type = base;
                }
            }
            table
        })
        .collect()
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

/// An expression's words joined by `_` (`lower(email)` → `lower_email`), for a default name.
fn expression_words(expression: &str) -> String {
    expression
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("_")
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

    #[test]
    fn configured_types_are_qualified_and_domains_read_as_their_base_type() {
        let config: ClusterConfig = serde_json::from_value(serde_json::json!({
            "nodes": [],
            "types": [
                { "name": "mood", "enum": ["a"] },
                { "name": "stamp", "schema": "app", "domain": "timestamptz" },
                { "name": "late", "domain": "app.stamp" }
            ],
            "tables": [{
                "name": "t",
                "columns": [
                    { "name": "id", "type": "late" },
                    { "name": "m", "type": "mood[]" },
                    { "name": "n", "type": "Mood" }
                ],
                "primary_key": ["id"]
            }]
        }))
        .expect("config");
        assert_eq!(
            resolve_configured_type("mood[]", &config.types),
            "public.mood[]"
        );
        assert_eq!(
            resolve_configured_type("app.stamp", &config.types),
            "app.stamp"
        );
        assert_eq!(resolve_configured_type("text", &config.types), "text");
        let tables = tables_with_domain_base_types(&config);
        assert_eq!(tables[0].columns[0].data_type, "timestamptz");
        assert_eq!(tables[0].columns[1].data_type, "mood[]");
    }
}
