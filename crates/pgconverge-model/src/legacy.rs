//! The older two-file format (`nodes.json` + `schema.json`) and its conversion to
//! [`crate::ClusterConfig`].
//!
//! `nodes.json` is an array of nodes; `schema.json` maps a key to each table. Tables and
//! columns keep their file order (the older tool emitted them in random map order, so
//! foreign keys sometimes failed). The conversion:
//! - a `serial`, `bigserial` or `smallserial` primary key column becomes `uuid DEFAULT
//!   gen_random_uuid()`, because each writable node would hand out the same numbers; a
//!   foreign key column referencing it becomes `uuid` too when declared with a serial type
//!   or `uuid`, and any other declared type (e.g. `int`) is reported;
//! - every table gets `updated_at timestamp DEFAULT now()` and `origin_node text`, unless it
//!   declares them, maintained on local writes through `legacy_columns`;
//! - every table uses the `lww` conflict policy, whether or not `crdt.enabled` is set.
//!
//! Node passwords may also come from `PGCONVERGE_<NODENAME>_PASSWORD`; resolving that is
//! the connecting side's job, the conversion keeps `password` as written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::config::{
    ClusterConfig, ColumnConfig, ConflictConfig, ForeignKeyConfig, ForeignKeyTarget, IndexConfig,
    LegacyColumns, NodeConfig, ReplicationConfig, TableConfig,
};
use crate::diagnostics::{merge, Diagnostic, Diagnostics};
use crate::entries::{unreadable_table_names, PartReader};
use crate::schema_check::{check_structure, StructureChecker};
use crate::source_map::{self, quoted, ConfigSource, FieldPath, ParsedFile};
use crate::types::normalize_type;
use crate::validate::{self, is_serial_type, Findings, Layout, Parts};

/// One entry of `nodes.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyNode {
    /// Node name: lowercase letters, digits and `_`, starting with a letter.
    pub name: String,
    pub host: String,
    /// Port (default 5432).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// Database name.
    pub db: String,
    pub user: String,
    /// Password in clear text; `PGCONVERGE_<NODENAME>_PASSWORD` takes precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Managed elsewhere: never started by `sandbox`.
    #[serde(default)]
    pub external: bool,
}

/// One entry of `schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyTable {
    /// Table name (in schema `public`); must equal the entry's key.
    pub name: String,
    /// Columns by name, in file order.
    #[schemars(with = "BTreeMap<String, LegacyColumn>")]
    pub columns: OrderedMap<LegacyColumn>,
    #[serde(default)]
    pub constraints: LegacyConstraints,
    /// Plain indexes, each a list of columns.
    #[serde(default)]
    pub indexes: Vec<Vec<String>>,
    /// Conflict handling switch of the older tool. Both settings converge with the `lww`
    /// policy here, so `enabled` and the per-column `columns` strategies (`lww_field`,
    /// `pn_counter`, which the older tool ignored as well) are accepted and ignored.
    #[serde(default)]
    pub crdt: LegacyCrdt,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyColumn {
    /// Column name; must equal the entry's key.
    pub name: String,
    /// PostgreSQL type; `serial` types are allowed only for the primary key.
    pub data_type: String,
    /// Default expression as SQL; an empty string means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyConstraints {
    /// Primary key columns.
    #[serde(default)]
    pub primary: Vec<String>,
    /// UNIQUE constraints, each a list of columns.
    #[serde(default)]
    pub unique: Vec<Vec<String>>,
    #[serde(default)]
    pub foreign_keys: Vec<LegacyForeignKey>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyForeignKey {
    pub columns: Vec<String>,
    pub references: LegacyReference,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyReference {
    /// The referenced table, as a one-element list (`["users"]`).
    pub table: Vec<String>,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyCrdt {
    #[serde(default)]
    pub enabled: bool,
    /// Per-column strategies; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<BTreeMap<String, LegacyCrdtColumn>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyCrdtColumn {
    /// `lww_field` or `pn_counter`; ignored.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
}

/// A JSON object read as `(key, value)` pairs in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderedMap<T>(pub Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OrderedMap<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OrderedVisitor<T> {
            type Value = OrderedMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, T>()? {
                    entries.push((key, value));
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(std::marker::PhantomData))
    }
}

impl<T: Serialize> Serialize for OrderedMap<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Reads both files, reporting every problem of both: a file that is not JSON yields its
/// syntax error, and the other file is still checked on its own.
pub(crate) fn load(
    nodes_src: &ConfigSource,
    schema_src: &ConfigSource,
) -> Result<ClusterConfig, Diagnostics> {
    let mut syntax_errors = Vec::new();
    let mut parse_or_placeholder = |src: &ConfigSource| match source_map::parse(src) {
        Ok(parsed) => (parsed, true),
        Err(d) => {
            syntax_errors.push(d);
            (ParsedFile::unparsed(&src.path), false)
        }
    };
    let nodes = parse_or_placeholder(nodes_src);
    let schema = parse_or_placeholder(schema_src);
    load_parsed(nodes, schema, syntax_errors)
}

fn load_parsed(
    (nodes_file, nodes_parsed): (ParsedFile, bool),
    (schema_file, schema_parsed): (ParsedFile, bool),
    syntax_errors: Vec<Diagnostic>,
) -> Result<ClusterConfig, Diagnostics> {
    let mut structural = syntax_errors;
    if nodes_parsed {
        structural.extend(check_structure(
            nodes_checker(),
            &nodes_file.file,
            &nodes_file.value,
        ));
    }
    if schema_parsed {
        structural.extend(check_structure(
            tables_checker(),
            &schema_file.file,
            &schema_file.value,
        ));
    }
    let mut unreadable = Vec::new();
    let mut findings = Findings::new(vec![&nodes_file.file, &schema_file.file]);

    let node_reader = PartReader {
        file: &nodes_file.file,
        structural: &structural,
    };
    let (legacy_nodes, node_entries) = node_reader.read_list::<LegacyNode>(
        Some(&nodes_file.value),
        &FieldPath::root(),
        &mut unreadable,
    );
    let nodes: Vec<(usize, NodeConfig)> = legacy_nodes
        .into_iter()
        .map(|(i, n)| (i, convert_node(n)))
        .collect();

    let table_reader = PartReader {
        file: &schema_file.file,
        structural: &structural,
    };
    let mut table_keys = Vec::new();
    let mut legacy_tables = Vec::new();
    let table_entries = match &schema_file.value {
        Value::Object(map) => {
            for (t, (key, value)) in map.iter().enumerate() {
                table_keys.push(key.clone());
                if let Some(table) = table_reader.read::<LegacyTable>(
                    value,
                    &FieldPath::root().key(key),
                    &mut unreadable,
                ) {
                    legacy_tables.push((t, table));
                }
            }
            Some(map.len())
        }
        _ => None,
    };
    let layout_keys = LegacyLayout {
        table_keys,
        column_keys: HashMap::new(),
    };
    let (tables, column_keys) = convert_tables(&legacy_tables, &layout_keys, &mut findings);
    let layout = LegacyLayout {
        column_keys,
        ..layout_keys
    };

    let replication = ReplicationConfig::default();
    let parts = Parts {
        nodes: nodes.iter().map(|(i, n)| (*i, n)).collect(),
        node_entries,
        tables: tables.iter().map(|(i, t)| (*i, t)).collect(),
        // Foreign keys name tables by `name`, which may differ from the key when invalid.
        unreadable_tables: unreadable_table_names(Some(&schema_file.value), &legacy_tables, |v| {
            v.get("name").and_then(Value::as_str).map(str::to_string)
        }),
        replication: Some(&replication),
        tls: None,
        dropped_tables: &[],
        types: &[],
        dropped_types: &[],
        sql_files: &[],
    };
    validate::check(&parts, &layout, &mut findings);
    let semantic = findings.diagnostics;

    let mut duplicate_keys = nodes_file.duplicate_keys;
    duplicate_keys.extend(schema_file.duplicate_keys);
    let diagnostics = merge(structural, duplicate_keys, unreadable, semantic);
    let complete = node_entries == Some(nodes.len()) && table_entries == Some(tables.len());
    if diagnostics.is_empty() && complete {
        Ok(ClusterConfig {
            schema: None,
            nodes: nodes.into_iter().map(|(_, n)| n).collect(),
            tables: tables.into_iter().map(|(_, t)| t).collect(),
            replication,
            tls: Default::default(),
            dropped_tables: Vec::new(),
            types: Vec::new(),
            dropped_types: Vec::new(),
            sql_files: Vec::new(),
            sql_file_texts: Vec::new(),
        })
    } else {
        Err(Diagnostics(diagnostics))
    }
}

fn nodes_checker() -> &'static Result<StructureChecker, String> {
    static CHECKER: OnceLock<Result<StructureChecker, String>> = OnceLock::new();
    CHECKER.get_or_init(|| {
        let schema = schemars::generate::SchemaSettings::draft2020_12()
            .into_generator()
            .into_root_schema_for::<Vec<LegacyNode>>()
            .to_value();
        StructureChecker::new(schema)
    })
}

fn tables_checker() -> &'static Result<StructureChecker, String> {
    static CHECKER: OnceLock<Result<StructureChecker, String>> = OnceLock::new();
    CHECKER.get_or_init(|| {
        let schema = schemars::generate::SchemaSettings::draft2020_12()
            .into_generator()
            .into_root_schema_for::<BTreeMap<String, LegacyTable>>()
            .to_value();
        StructureChecker::new(schema)
    })
}

fn convert_node(node: LegacyNode) -> NodeConfig {
    NodeConfig {
        name: node.name,
        host: node.host,
        port: node.port,
        peer_host: None,
        peer_port: None,
        db: node.db,
        user: node.user,
        password: node.password,
        password_env: None,
        password_command: None,
        sslmode: None,
        sslrootcert: None,
        sslcert: None,
        sslkey: None,
        subscription_tls: None,
        external: node.external,
        donor: None,
        merge_rows: false,
    }
}

const UPDATED_AT: &str = "updated_at";
const ORIGIN_NODE: &str = "origin_node";

/// Converts every readable table; returns them with, per table, the `schema.json` key of
/// each converted column (`None` for the columns the conversion adds).
#[allow(clippy::type_complexity)]
fn convert_tables(
    legacy: &[(usize, LegacyTable)],
    layout: &LegacyLayout,
    findings: &mut Findings<'_>,
) -> (
    Vec<(usize, TableConfig)>,
    HashMap<usize, Vec<Option<String>>>,
) {
    let file = layout.tables_file();
    // Serial primary key columns, by (table name, column name): they become uuid.
    let serial_keys: HashSet<(&str, &str)> = legacy
        .iter()
        .flat_map(|(_, table)| {
            table.columns.0.iter().filter_map(move |(_, column)| {
                (is_serial_type(&column.data_type)
                    && table.constraints.primary.contains(&column.name))
                .then_some((table.name.as_str(), column.name.as_str()))
            })
        })
        .collect();

    let mut tables = Vec::new();
    let mut column_keys = HashMap::new();
    for (t, table) in legacy {
        let t = *t;
        let key = layout
            .table_keys
            .get(t)
            .map(String::as_str)
            .unwrap_or_default();
        let table_at = layout.table(t);
        if table.name != key {
            findings.error(
                file,
                &table_at.key("name"),
                format!(
                    "table name {} differs from its key {}; use the same name for both",
                    quoted(&table.name),
                    quoted(key)
                ),
            );
        }
        for (f, fk) in table.constraints.foreign_keys.iter().enumerate() {
            if fk.references.table.len() != 1 {
                findings.error(
                    file,
                    &table_at
                        .key("constraints")
                        .key("foreign_keys")
                        .index(f)
                        .key("references")
                        .key("table"),
                    format!(
                        "must name exactly one table, e.g. [\"users\"], but names {}",
                        fk.references.table.len()
                    ),
                );
            }
        }

        // Which serial key each foreign key column references, if any.
        let mut references_serial: HashMap<&str, (&str, &str)> = HashMap::new();
        for fk in &table.constraints.foreign_keys {
            let Some(target) = fk.references.table.first() else {
                continue;
            };
            for (local, remote) in fk.columns.iter().zip(&fk.references.columns) {
                if serial_keys.contains(&(target.as_str(), remote.as_str())) {
                    references_serial.insert(local, (target, remote));
                }
            }
        }

        let mut columns = Vec::new();
        let mut keys = Vec::new();
        for (column_key, column) in &table.columns.0 {
            let column_at = table_at.key("columns").key(column_key);
            if &column.name != column_key {
                findings.error(
                    file,
                    &column_at.key("name"),
                    format!(
                        "column name {} differs from its key {}; use the same name for both",
                        quoted(&column.name),
                        quoted(column_key)
                    ),
                );
            }
            let declared_default = column.default.clone().filter(|d| !d.is_empty());
            let serial = is_serial_type(&column.data_type);
            let in_primary_key = table.constraints.primary.contains(&column.name);
            let (data_type, default) = if let Some((target, remote)) =
                references_serial.get(column.name.as_str())
            {
                let declared = normalize_type(&column.data_type);
                if !(serial || declared == "uuid") {
                    findings.error(
                        file,
                        &column_at.key("data_type"),
                        format!(
                            "{} is declared {} but references {}, a serial primary key that becomes `uuid` (each node's sequence would hand out the same numbers); declare {} as `uuid`",
                            quoted(&column.name),
                            quoted(&column.data_type),
                            quoted(&format!("{target}.{remote}")),
                            quoted(&column.name)
                        ),
                    );
                }
                let default = if serial && in_primary_key {
                    Some("gen_random_uuid()".to_string())
                } else if serial {
                    None
                } else {
                    declared_default
                };
                ("uuid".to_string(), default)
            } else if serial && in_primary_key {
                ("uuid".to_string(), Some("gen_random_uuid()".to_string()))
            } else {
                (column.data_type.clone(), declared_default)
            };
            columns.push(ColumnConfig {
                name: column.name.clone(),
                data_type,
                nullable: true,
                default,
                renamed_from: None,
                identity: None,
                generated: None,
            });
            keys.push(Some(column_key.clone()));
        }
        if !columns.iter().any(|c| c.name == UPDATED_AT) {
            columns.push(ColumnConfig {
                name: UPDATED_AT.to_string(),
                data_type: "timestamp".to_string(),
                nullable: true,
                default: Some("now()".to_string()),
                renamed_from: None,
                identity: None,
                generated: None,
            });
            keys.push(None);
        }
        if !columns.iter().any(|c| c.name == ORIGIN_NODE) {
            columns.push(ColumnConfig {
                name: ORIGIN_NODE.to_string(),
                data_type: "text".to_string(),
                nullable: true,
                default: None,
                renamed_from: None,
                identity: None,
                generated: None,
            });
            keys.push(None);
        }

        tables.push((
            t,
            TableConfig {
                name: table.name.clone(),
                schema: crate::config::default_schema(),
                columns,
                primary_key: table.constraints.primary.clone(),
                unique: table.constraints.unique.clone(),
                foreign_keys: table
                    .constraints
                    .foreign_keys
                    .iter()
                    .map(|fk| ForeignKeyConfig {
                        columns: fk.columns.clone(),
                        references: ForeignKeyTarget {
                            table: fk.references.table.first().cloned().unwrap_or_default(),
                            columns: fk.references.columns.clone(),
                        },
                        on_delete: None,
                        on_update: None,
                        deferrable: false,
                        initially_deferred: false,
                    })
                    .collect(),
                indexes: table
                    .indexes
                    .iter()
                    .map(|cols| IndexConfig {
                        columns: cols.clone(),
                        ..IndexConfig::default()
                    })
                    .collect(),
                checks: Vec::new(),
                conflict: ConflictConfig::default(),
                legacy_columns: LegacyColumns {
                    updated_at: Some(UPDATED_AT.to_string()),
                    origin_node: Some(ORIGIN_NODE.to_string()),
                },
                dropped_columns: Vec::new(),
                partition_by: None,
                partitions: Vec::new(),
                dropped_partitions: Vec::new(),
            },
        ));
        column_keys.insert(t, keys);
    }
    (tables, column_keys)
}

/// Field paths of the two-file format: `[1].port` in `nodes.json`,
/// `users.columns.email.data_type` in `schema.json`.
struct LegacyLayout {
    /// Every `schema.json` key in file order, read or not.
    table_keys: Vec<String>,
    /// Per read table, the key of each converted column (`None` for added columns).
    column_keys: HashMap<usize, Vec<Option<String>>>,
}

impl LegacyLayout {
    fn column_key(&self, t: usize, c: usize) -> Option<&str> {
        self.column_keys.get(&t)?.get(c)?.as_deref()
    }
}

impl Layout for LegacyLayout {
    fn nodes_file(&self) -> usize {
        0
    }
    fn tables_file(&self) -> usize {
        1
    }
    fn nodes(&self) -> FieldPath {
        FieldPath::root()
    }
    fn node(&self, n: usize) -> FieldPath {
        FieldPath::root().index(n)
    }
    fn table(&self, t: usize) -> FieldPath {
        match self.table_keys.get(t) {
            Some(key) => FieldPath::root().key(key),
            None => FieldPath::root(),
        }
    }
    fn table_name(&self, t: usize) -> FieldPath {
        self.table(t).key("name")
    }
    fn table_schema(&self, t: usize) -> FieldPath {
        self.table(t)
    }
    fn columns(&self, t: usize) -> FieldPath {
        self.table(t).key("columns")
    }
    fn column(&self, t: usize, c: usize) -> FieldPath {
        match self.column_key(t, c) {
            Some(key) => self.columns(t).key(key),
            None => self.table(t),
        }
    }
    fn column_name(&self, t: usize, c: usize) -> FieldPath {
        match self.column_key(t, c) {
            Some(_) => self.column(t, c).key("name"),
            None => self.table(t),
        }
    }
    fn column_type(&self, t: usize, c: usize) -> FieldPath {
        match self.column_key(t, c) {
            Some(_) => self.column(t, c).key("data_type"),
            None => self.table(t),
        }
    }
    fn column_field(&self, t: usize, c: usize, _field: &str) -> FieldPath {
        self.column(t, c)
    }
    fn table_field(&self, t: usize, _field: &str) -> FieldPath {
        self.table(t)
    }
    fn dropped_table(&self, _d: usize) -> FieldPath {
        FieldPath::root()
    }
    fn column_default(&self, t: usize, c: usize) -> FieldPath {
        match self.column_key(t, c) {
            Some(_) => self.column(t, c).key("default"),
            None => self.table(t),
        }
    }
    fn primary_key(&self, t: usize) -> FieldPath {
        self.table(t).key("constraints").key("primary")
    }
    fn unique(&self, t: usize, u: usize) -> FieldPath {
        self.table(t).key("constraints").key("unique").index(u)
    }
    fn foreign_key(&self, t: usize, f: usize) -> FieldPath {
        self.table(t)
            .key("constraints")
            .key("foreign_keys")
            .index(f)
    }
    fn foreign_key_target_table(&self, t: usize, f: usize) -> FieldPath {
        self.foreign_key(t, f)
            .key("references")
            .key("table")
            .index(0)
    }
    fn index_columns(&self, t: usize, i: usize) -> FieldPath {
        self.table(t).key("indexes").index(i)
    }
    fn index_name(&self, t: usize, i: usize) -> FieldPath {
        self.index_columns(t, i)
    }
    fn index_field(&self, t: usize, i: usize, _field: &str) -> FieldPath {
        self.index_columns(t, i)
    }
    fn legacy_column(&self, t: usize, field: &str) -> FieldPath {
        // The compatibility columns are always the ones named `updated_at`/`origin_node`:
        // point at the declaration when the table has one.
        let declared = self
            .column_keys
            .get(&t)
            .and_then(|keys| keys.iter().flatten().find(|k| k.as_str() == field));
        match declared {
            Some(key) => self.columns(t).key(key).key("data_type"),
            None => self.table(t),
        }
    }
    fn replication(&self) -> FieldPath {
        FieldPath::root()
    }
    fn is_legacy(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = r#"[
      { "name": "node_a", "host": "10.0.0.1", "db": "store", "user": "postgres", "password": "pw" },
      { "name": "node_b", "host": "10.0.0.2", "port": 5433, "db": "store", "user": "postgres", "external": true }
    ]"#;

    fn legacy(schema: &str) -> Result<ClusterConfig, Diagnostics> {
        load(
            &ConfigSource::new("nodes.json", NODES),
            &ConfigSource::new("schema.json", schema),
        )
    }

    #[test]
    fn conversion_keeps_file_order_and_turns_serial_keys_into_uuid() {
        let config = legacy(
            r#"{
              "orders": {
                "name": "orders",
                "columns": {
                  "id": { "name": "id", "data_type": "serial" },
                  "user_id": { "name": "user_id", "data_type": "serial" },
                  "note": { "name": "note", "data_type": "text", "default": "" }
                },
                "constraints": {
                  "primary": ["id"],
                  "foreign_keys": [{ "columns": ["user_id"], "references": { "table": ["users"], "columns": ["id"] } }]
                },
                "crdt": { "enabled": true, "columns": { "note": { "type": "lww_field" } } }
              },
              "users": {
                "name": "users",
                "columns": {
                  "id": { "name": "id", "data_type": "BIGSERIAL" },
                  "updated_at": { "name": "updated_at", "data_type": "timestamptz", "default": "now()" }
                },
                "constraints": { "primary": ["id"] }
              }
            }"#,
        )
        .map_err(|d| d.to_string())
        .expect("loads");

        let names: Vec<&str> = config.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["orders", "users"]);

        let orders = &config.tables[0];
        let column = |name: &str| orders.column(name).expect("column exists");
        assert_eq!(column("id").data_type, "uuid");
        assert_eq!(column("id").default.as_deref(), Some("gen_random_uuid()"));
        // A reference to a serial key takes the key's new type, not its default.
        assert_eq!(column("user_id").data_type, "uuid");
        assert_eq!(column("user_id").default, None);
        assert_eq!(column("note").default, None);
        assert_eq!(column("updated_at").data_type, "timestamp");
        assert_eq!(column("updated_at").default.as_deref(), Some("now()"));
        assert_eq!(column("origin_node").data_type, "text");
        assert_eq!(
            orders.legacy_columns.updated_at.as_deref(),
            Some("updated_at")
        );
        assert_eq!(
            orders.legacy_columns.origin_node.as_deref(),
            Some("origin_node")
        );
        assert_eq!(orders.foreign_keys[0].references.table, "users");

        // A declared compatibility column is kept as declared, not added twice.
        let users = &config.tables[1];
        let declared: Vec<&str> = users.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(declared, ["id", "updated_at", "origin_node"]);
        assert_eq!(users.columns[1].data_type, "timestamptz");

        assert_eq!(config.nodes[0].password.as_deref(), Some("pw"));
        assert_eq!(config.nodes[1].port(), 5433);
        assert!(config.nodes[1].external);
    }

    #[test]
    fn an_int_reference_to_a_serial_key_is_explained() {
        let Err(diagnostics) = legacy(
            r#"{
              "users": { "name": "users", "columns": { "id": { "name": "id", "data_type": "serial" } },
                         "constraints": { "primary": ["id"] } },
              "orders": { "name": "orders",
                          "columns": { "id": { "name": "id", "data_type": "uuid" },
                                       "user_id": { "name": "user_id", "data_type": "int" } },
                          "constraints": { "primary": ["id"],
                            "foreign_keys": [{ "columns": ["user_id"], "references": { "table": ["users"], "columns": ["id"] } }] } }
            }"#,
        ) else {
            panic!("an int foreign key to a serial key loaded");
        };
        assert_eq!(diagnostics.0.len(), 1, "{diagnostics}");
        let d = &diagnostics.0[0];
        assert_eq!(d.field, "orders.columns.user_id.data_type");
        assert!(d.message.contains("becomes `uuid`"), "{}", d.message);
    }

    #[test]
    fn diagnostics_of_both_files_are_sorted_by_file() {
        let Err(diagnostics) = load(
            &ConfigSource::new(
                "nodes.json",
                r#"[{ "name": "a", "host": "h", "db": "d", "user": "u", "port": 0 }]"#,
            ),
            &ConfigSource::new("schema.json", r#"{ "t": { "name": "t", "columns": {} } }"#),
        ) else {
            panic!("loaded");
        };
        let files: Vec<&str> = diagnostics.0.iter().map(|d| d.file.as_str()).collect();
        assert_eq!(files, ["nodes.json", "schema.json"], "{diagnostics}");
    }
}
