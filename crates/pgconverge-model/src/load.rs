//! Reading configuration text into a validated [`crate::ClusterConfig`], collecting every
//! problem as a located [`crate::Diagnostic`]. Takes text, never touches the file system.
//!
//! Each file goes through three stages, and every stage reports all it finds:
//! 1. strict JSON parsing (a syntax error is the file's only diagnostic);
//! 2. structural validation against the JSON Schema generated from the config types
//!    (unknown, missing and mistyped fields);
//! 3. semantic checks ([`crate::validate`]) on every entry that could be read.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{ClusterConfig, NodeConfig, ReplicationConfig, TableConfig};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::schema_check::StructureChecker;
use crate::source_map::{self, Anchor, FieldPath, SourceFile};
use crate::validate::{self, Findings, Layout, Parts};

/// Rendering a loaded configuration as unified JSON, next to the loaders (`import`).
pub use crate::legacy::to_unified_json;

/// A configuration file's name (as the user gave it, used in diagnostics) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSource {
    pub path: String,
    pub text: String,
}

impl ConfigSource {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        ConfigSource {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// The JSON Schema of the unified format (`schemas/pgconverge.schema.json`), generated from
/// [`ClusterConfig`].
pub fn unified_json_schema() -> Value {
    schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<ClusterConfig>()
        .to_value()
}

/// Reads a unified `pgconverge.json`.
pub fn load_unified(src: &ConfigSource) -> Result<ClusterConfig, Diagnostics> {
    let parsed = source_map::parse(src).map_err(|d| Diagnostics(vec![d]))?;
    let structural = check_structure(unified_checker(), &parsed.file, &parsed.value);
    let mut unreadable = Vec::new();
    let root = &parsed.value;
    let reader = PartReader {
        file: &parsed.file,
        structural: &structural,
    };

    let nodes_path = FieldPath::root().key("nodes");
    let (nodes, node_entries) =
        reader.read_list::<NodeConfig>(root.get("nodes"), &nodes_path, &mut unreadable);
    let tables_path = FieldPath::root().key("tables");
    let (tables, table_entries) =
        reader.read_list::<TableConfig>(root.get("tables"), &tables_path, &mut unreadable);
    let replication = match root.get("replication") {
        None => Some(ReplicationConfig::default()),
        Some(v) => reader.read(v, &FieldPath::root().key("replication"), &mut unreadable),
    };
    let schema = match root.get("$schema") {
        None => Some(None),
        Some(v) => reader
            .read::<String>(v, &FieldPath::root().key("$schema"), &mut unreadable)
            .map(Some),
    };

    let parts = Parts {
        nodes: nodes.iter().map(|(i, n)| (*i, n)).collect(),
        node_entries,
        tables: tables.iter().map(|(i, t)| (*i, t)).collect(),
        unreadable_tables: unreadable_table_names(root.get("tables"), &tables, |v| {
            v.get("name").and_then(Value::as_str).map(str::to_string)
        }),
        replication: replication.as_ref(),
    };
    let mut findings = Findings::new(vec![&parsed.file]);
    validate::check(&parts, &UnifiedLayout, &mut findings);

    let diagnostics = merge(
        structural,
        parsed.duplicate_keys,
        unreadable,
        findings.diagnostics,
    );
    let complete = node_entries == Some(nodes.len()) && table_entries == Some(tables.len());
    match (diagnostics.is_empty(), complete, replication, schema) {
        (true, true, Some(replication), Some(schema)) => Ok(ClusterConfig {
            schema,
            nodes: nodes.into_iter().map(|(_, n)| n).collect(),
            tables: tables.into_iter().map(|(_, t)| t).collect(),
            replication,
        }),
        (true, ..) => Err(Diagnostics(vec![Diagnostic {
            file: src.path.clone(),
            line: 1,
            column: 1,
            field: String::new(),
            message: "the configuration could not be read".to_string(),
        }])),
        _ => Err(Diagnostics(diagnostics)),
    }
}

/// Reads the older two-file format and converts it (see [`crate::legacy`]).
pub fn load_legacy(
    nodes: &ConfigSource,
    schema: &ConfigSource,
) -> Result<ClusterConfig, Diagnostics> {
    crate::legacy::load(nodes, schema)
}

fn unified_checker() -> &'static Result<StructureChecker, String> {
    static CHECKER: OnceLock<Result<StructureChecker, String>> = OnceLock::new();
    CHECKER.get_or_init(|| StructureChecker::new(unified_json_schema()))
}

/// Structural diagnostics, or one saying the schema itself is broken (a bug, never input).
pub(crate) fn check_structure(
    checker: &Result<StructureChecker, String>,
    file: &SourceFile,
    value: &Value,
) -> Vec<Diagnostic> {
    match checker {
        Ok(checker) => checker.check(file, value),
        Err(e) => vec![file.diagnostic(
            &FieldPath::root(),
            Anchor::Value,
            format!("internal error: the configuration schema does not compile: {e}"),
        )],
    }
}

/// Deserialises entries one by one, so one bad entry does not hide the others' problems.
pub(crate) struct PartReader<'a> {
    pub(crate) file: &'a SourceFile,
    pub(crate) structural: &'a [Diagnostic],
}

impl PartReader<'_> {
    /// `value` as a `T`; when it is not one and no structural diagnostic already explains
    /// why, a diagnostic with serde's reason goes to `unreadable`.
    pub(crate) fn read<T: DeserializeOwned>(
        &self,
        value: &Value,
        path: &FieldPath,
        unreadable: &mut Vec<Diagnostic>,
    ) -> Option<T> {
        match T::deserialize(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let shown = path.to_string();
                let explained = self.structural.iter().any(|d| {
                    d.file == self.file.path
                        && (shown.is_empty()
                            || d.field == shown
                            || d.field.starts_with(&format!("{shown}."))
                            || d.field.starts_with(&format!("{shown}[")))
                });
                if !explained {
                    unreadable.push(self.file.diagnostic(
                        path,
                        Anchor::Value,
                        format!("could not be read: {e}"),
                    ));
                }
                None
            }
        }
    }

    /// Every readable entry of a JSON array, with its index, and the number of entries
    /// (`None` when `list` is not an array).
    pub(crate) fn read_list<T: DeserializeOwned>(
        &self,
        list: Option<&Value>,
        path: &FieldPath,
        unreadable: &mut Vec<Diagnostic>,
    ) -> (Vec<(usize, T)>, Option<usize>) {
        let Some(Value::Array(items)) = list else {
            return (Vec::new(), None);
        };
        let read = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.read(item, &path.index(i), unreadable).map(|v| (i, v)))
            .collect();
        (read, Some(items.len()))
    }
}

/// Names of the table entries of `list` that were not read.
pub(crate) fn unreadable_table_names<T>(
    list: Option<&Value>,
    read: &[(usize, T)],
    name_of: impl Fn(&Value) -> Option<String>,
) -> HashSet<String> {
    let read: HashSet<usize> = read.iter().map(|(i, _)| *i).collect();
    let entries: Vec<&Value> = match list {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(map)) => map.values().collect(),
        _ => Vec::new(),
    };
    entries
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !read.contains(i))
        .filter_map(|(_, v)| name_of(v))
        .collect()
}

/// All diagnostics of a load, sorted by file and position. A semantic diagnostic for a
/// field that already has a structural one is dropped: one problem, one message.
pub(crate) fn merge(
    structural: Vec<Diagnostic>,
    duplicate_keys: Vec<Diagnostic>,
    unreadable: Vec<Diagnostic>,
    semantic: Vec<Diagnostic>,
) -> Vec<Diagnostic> {
    let explained: HashSet<(String, String)> = structural
        .iter()
        .map(|d| (d.file.clone(), d.field.clone()))
        .collect();
    let mut all = structural;
    all.extend(duplicate_keys);
    all.extend(unreadable);
    all.extend(
        semantic
            .into_iter()
            .filter(|d| !explained.contains(&(d.file.clone(), d.field.clone()))),
    );
    sort_diagnostics(&mut all);
    all
}

pub(crate) fn sort_diagnostics(all: &mut Vec<Diagnostic>) {
    all.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.field, &a.message)
            .cmp(&(&b.file, b.line, b.column, &b.field, &b.message))
    });
    all.dedup();
}

/// Field paths of the unified format.
struct UnifiedLayout;

impl UnifiedLayout {
    fn table_path(t: usize) -> FieldPath {
        FieldPath::root().key("tables").index(t)
    }
}

impl Layout for UnifiedLayout {
    fn nodes_file(&self) -> usize {
        0
    }
    fn tables_file(&self) -> usize {
        0
    }
    fn nodes(&self) -> FieldPath {
        FieldPath::root().key("nodes")
    }
    fn node(&self, n: usize) -> FieldPath {
        self.nodes().index(n)
    }
    fn table(&self, t: usize) -> FieldPath {
        Self::table_path(t)
    }
    fn table_name(&self, t: usize) -> FieldPath {
        Self::table_path(t).key("name")
    }
    fn table_schema(&self, t: usize) -> FieldPath {
        Self::table_path(t).key("schema")
    }
    fn columns(&self, t: usize) -> FieldPath {
        Self::table_path(t).key("columns")
    }
    fn column(&self, t: usize, c: usize) -> FieldPath {
        self.columns(t).index(c)
    }
    fn column_name(&self, t: usize, c: usize) -> FieldPath {
        self.column(t, c).key("name")
    }
    fn column_type(&self, t: usize, c: usize) -> FieldPath {
        self.column(t, c).key("type")
    }
    fn column_default(&self, t: usize, c: usize) -> FieldPath {
        self.column(t, c).key("default")
    }
    fn primary_key(&self, t: usize) -> FieldPath {
        Self::table_path(t).key("primary_key")
    }
    fn unique(&self, t: usize, u: usize) -> FieldPath {
        Self::table_path(t).key("unique").index(u)
    }
    fn foreign_key(&self, t: usize, f: usize) -> FieldPath {
        Self::table_path(t).key("foreign_keys").index(f)
    }
    fn foreign_key_target_table(&self, t: usize, f: usize) -> FieldPath {
        self.foreign_key(t, f).key("references").key("table")
    }
    fn index_columns(&self, t: usize, i: usize) -> FieldPath {
        Self::table_path(t).key("indexes").index(i).key("columns")
    }
    fn index_name(&self, t: usize, i: usize) -> FieldPath {
        Self::table_path(t).key("indexes").index(i).key("name")
    }
    fn legacy_column(&self, t: usize, field: &str) -> FieldPath {
        Self::table_path(t).key("legacy_columns").key(field)
    }
    fn replication(&self) -> FieldPath {
        FieldPath::root().key("replication")
    }
    fn is_legacy(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConflictPolicy;

    fn unified(text: &str) -> Result<ClusterConfig, Diagnostics> {
        load_unified(&ConfigSource::new("pgconverge.json", text))
    }

    fn messages(result: Result<ClusterConfig, Diagnostics>) -> Vec<String> {
        match result {
            Ok(_) => Vec::new(),
            Err(d) => d.0.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config = unified(
            r#"{
              "nodes": [{ "name": "a", "host": "h", "db": "d", "user": "u" }],
              "tables": [{ "name": "t", "columns": [{ "name": "id", "type": "uuid" }], "primary_key": ["id"] }]
            }"#,
        )
        .map_err(|d| d.to_string())
        .expect("loads");
        assert_eq!(config.schema, None);
        assert_eq!(config.nodes[0].port(), 5432);
        assert_eq!(config.nodes[0].peer_host(), "h");
        let table = &config.tables[0];
        assert_eq!(table.schema, "public");
        assert!(table.columns[0].nullable);
        assert_eq!(table.conflict.policy, ConflictPolicy::Lww);
        assert!(table.legacy_columns.is_empty());
        assert_eq!(config.replication, ReplicationConfig::default());
    }

    #[test]
    fn every_problem_is_reported_in_file_order() {
        let found = messages(unified(
            r#"{
              "tables": [{ "name": "t", "columns": [{ "name": "id", "type": "serial" }], "primary_key": ["id", "nope"] }],
              "nodes": [{ "name": "A", "host": "h", "port": 0, "db": "d", "user": "u" }]
            }"#,
        ));
        assert_eq!(
            found,
            [
                "pgconverge.json:2:77: tables[0].columns[0].type: `serial` is not allowed: every node would draw numbers from its own sequence and the keys would collide; use `uuid` with DEFAULT gen_random_uuid(), or `bigint` with a node-unique default",
                "pgconverge.json:2:112: tables[0].primary_key[1]: column `nope` is not defined in table `t`",
                "pgconverge.json:3:35: nodes[0].name: node name `A` must start with a lowercase letter and contain only lowercase letters, digits and `_`: it becomes part of publication, subscription and replication slot names",
                "pgconverge.json:3:61: nodes[0].port: the number 0 is not a valid port: ports go from 1 to 65535 (leave the field out for the default 5432)",
            ]
        );
    }

    #[test]
    fn an_unreadable_table_is_not_also_reported_as_missing() {
        let found = messages(unified(
            r#"{
              "nodes": [{ "name": "a", "host": "h", "db": "d", "user": "u" }],
              "tables": [
                { "name": "users", "columns": [{ "name": "id", "type": 5 }], "primary_key": ["id"] },
                { "name": "orders", "columns": [{ "name": "id", "type": "uuid" }, { "name": "user_id", "type": "uuid" }],
                  "primary_key": ["id"],
                  "foreign_keys": [{ "columns": ["user_id"], "references": { "table": "users", "columns": ["id"] } }] }
              ]
            }"#,
        ));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains("tables[0].columns[0].type: expected a string"),
            "{found:#?}"
        );
    }

    #[test]
    fn numbers_out_of_range_are_located_at_the_field() {
        let found = messages(unified(
            r#"{"nodes": [{ "name": "a", "host": "h", "db": "d", "user": "u" }], "tables": [],
                "replication": { "conflict_retention_days": 5000000000 }}"#,
        ));
        assert_eq!(
            found,
            ["pgconverge.json:2:61: replication.conflict_retention_days: the number 5000000000 is too large: the maximum is 4294967295"]
        );
    }

    #[test]
    fn schema_is_draft_2020_12_and_describes_the_root() {
        let schema = unified_json_schema();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["required"], serde_json::json!(["nodes", "tables"]));
        assert!(unified_checker().is_ok());
    }
}
