//! Reading configuration text into a validated [`crate::ClusterConfig`], collecting every
//! problem as a located [`crate::Diagnostic`]. Takes text, never touches the file system.
//!
//! Each file goes through three stages, and every stage reports all it finds:
//! 1. strict JSON parsing (a syntax error is the file's only diagnostic);
//! 2. structural validation against the JSON Schema generated from the config types
//!    (unknown, missing and mistyped fields);
//! 3. semantic checks ([`crate::validate`]) on every entry that could be read.
//!
//! A unified file is first read the cheap way ([`crate::quick_check`]): parsed once,
//! deserialised and checked semantically, without the position of every value and without
//! compiling the JSON Schema. Only when that finds a problem, or is not sure, do the stages
//! above run to locate and word every diagnostic, so errors read the same either way.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use crate::config::{
    ClusterConfig, NodeConfig, ReplicationConfig, TableConfig, TlsConfig, TypeConfig,
};
use crate::diagnostics::{merge, Diagnostic, Diagnostics};
use crate::entries::{unreadable_table_names, PartReader};
use crate::quick_check;
use crate::schema_check::{check_structure, StructureChecker};
use crate::source_map::{self, FieldPath, ParsedFile};
use crate::validate::{self, Findings, Layout, Parts};

/// A configuration file's name and text, what every loader takes.
pub use crate::source_map::ConfigSource;
/// Rendering a loaded configuration as unified JSON, next to the loaders (`import`).
pub use crate::unified_json::to_unified_json;

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
    let structure = match read_unified_quickly(src) {
        Some(Ok(config)) => return Ok(config),
        Some(Err(())) => Structure::KnownValid,
        None => Structure::Unknown,
    };
    load_unified_located(src, structure)
}

/// What is already known of a file's structure when its problems are located.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Structure {
    /// It certainly satisfies the JSON Schema: there are no structural diagnostics to find.
    KnownValid,
    /// The JSON Schema validator must look.
    Unknown,
}

/// The cheap read: `Some(Ok)` for a valid file; `Some(Err)` for one that certainly satisfies
/// the JSON Schema, has no repeated key and deserialises, but fails a semantic check; `None`
/// when the file is not known to be structurally sound.
fn read_unified_quickly(src: &ConfigSource) -> Option<Result<ClusterConfig, ()>> {
    let parsed = quick_check::parse(&src.text)?;
    let schema = unified_schema();
    if parsed.repeated_key || !quick_check::certainly_conforms(schema, &parsed.value) {
        return None;
    }
    // Read as `load_unified_located` reads it (`$schema` as a string, entries one by one),
    // so the two accept exactly the same files.
    let root = &parsed.value;
    let nodes = Vec::<NodeConfig>::deserialize(root.get("nodes")?).ok()?;
    let tables = Vec::<TableConfig>::deserialize(root.get("tables")?).ok()?;
    let replication = match root.get("replication") {
        None => ReplicationConfig::default(),
        Some(v) => ReplicationConfig::deserialize(v).ok()?,
    };
    let tls = match root.get("tls") {
        None => TlsConfig::default(),
        Some(v) => TlsConfig::deserialize(v).ok()?,
    };
    let dropped_tables = match root.get("dropped_tables") {
        None => Vec::new(),
        Some(v) => Vec::<String>::deserialize(v).ok()?,
    };
    let types = match root.get("types") {
        None => Vec::new(),
        Some(v) => Vec::<TypeConfig>::deserialize(v).ok()?,
    };
    let dropped_types = match root.get("dropped_types") {
        None => Vec::new(),
        Some(v) => Vec::<String>::deserialize(v).ok()?,
    };
    let sql_files = match root.get("sql_files") {
        None => Vec::new(),
        Some(v) => Vec::<String>::deserialize(v).ok()?,
    };
    let schema = match root.get("$schema") {
        None => None,
        Some(v) => Some(String::deserialize(v).ok()?),
    };
    let parts = Parts {
        nodes: nodes.iter().enumerate().collect(),
        node_entries: Some(nodes.len()),
        tables: tables.iter().enumerate().collect(),
        unreadable_tables: HashSet::new(),
        replication: Some(&replication),
        tls: Some(&tls),
        dropped_tables: &dropped_tables,
        types: &types,
        dropped_types: &dropped_types,
        sql_files: &sql_files,
    };
    // No positions: whether there is any problem is all this needs to know.
    let unlocated = ParsedFile::unparsed(&src.path);
    let mut findings = Findings::new(vec![&unlocated.file]);
    validate::check(&parts, &UnifiedLayout, &mut findings);
    if !findings.diagnostics.is_empty() {
        return Some(Err(()));
    }
    Some(Ok(ClusterConfig {
        schema,
        nodes,
        types,
        tables,
        replication,
        tls,
        dropped_tables,
        dropped_types,
        sql_files,
        sql_file_texts: Vec::new(),
    }
    .with_tls_defaults()))
}

/// Reads a unified file through every stage, locating each problem.
fn load_unified_located(
    src: &ConfigSource,
    structure: Structure,
) -> Result<ClusterConfig, Diagnostics> {
    let parsed = source_map::parse(src).map_err(|d| Diagnostics(vec![d]))?;
    let structural = match structure {
        Structure::KnownValid => Vec::new(),
        Structure::Unknown => check_structure(unified_checker(), &parsed.file, &parsed.value),
    };
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
    let tls = match root.get("tls") {
        None => Some(TlsConfig::default()),
        Some(v) => reader.read(v, &FieldPath::root().key("tls"), &mut unreadable),
    };
    let dropped_tables: Option<Vec<String>> = match root.get("dropped_tables") {
        None => Some(Vec::new()),
        Some(v) => reader.read(v, &FieldPath::root().key("dropped_tables"), &mut unreadable),
    };
    let types: Option<Vec<TypeConfig>> = match root.get("types") {
        None => Some(Vec::new()),
        Some(v) => reader.read(v, &FieldPath::root().key("types"), &mut unreadable),
    };
    let dropped_types: Option<Vec<String>> = match root.get("dropped_types") {
        None => Some(Vec::new()),
        Some(v) => reader.read(v, &FieldPath::root().key("dropped_types"), &mut unreadable),
    };
    let sql_files: Option<Vec<String>> = match root.get("sql_files") {
        None => Some(Vec::new()),
        Some(v) => reader.read(v, &FieldPath::root().key("sql_files"), &mut unreadable),
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
        tls: tls.as_ref(),
        dropped_tables: dropped_tables.as_deref().unwrap_or_default(),
        types: types.as_deref().unwrap_or_default(),
        dropped_types: dropped_types.as_deref().unwrap_or_default(),
        sql_files: sql_files.as_deref().unwrap_or_default(),
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
    match (
        diagnostics.is_empty(),
        complete,
        replication,
        schema,
        tls,
        dropped_tables,
        (types, dropped_types, sql_files),
    ) {
        (
            true,
            true,
            Some(replication),
            Some(schema),
            Some(tls),
            Some(dropped_tables),
            (Some(types), Some(dropped_types), Some(sql_files)),
        ) => Ok(ClusterConfig {
            schema,
            types,
            dropped_types,
            sql_files,
            sql_file_texts: Vec::new(),
            nodes: nodes.into_iter().map(|(_, n)| n).collect(),
            tables: tables.into_iter().map(|(_, t)| t).collect(),
            replication,
            tls,
            dropped_tables,
        }
        .with_tls_defaults()),
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

/// A problem with entry `index` of `sql_files` found after loading (a file that cannot be
/// read), located in `src` as any other problem.
pub fn sql_file_diagnostic(src: &ConfigSource, index: usize, message: String) -> Diagnostic {
    let path = FieldPath::root().key("sql_files").index(index);
    match source_map::parse(src) {
        Ok(parsed) => parsed
            .file
            .diagnostic(&path, source_map::Anchor::Value, message),
        Err(_) => Diagnostic {
            file: src.path.clone(),
            line: 0,
            column: 0,
            field: path.to_string(),
            message,
        },
    }
}

/// Reads the older two-file format and converts it (see [`crate::legacy`]).
pub fn load_legacy(
    nodes: &ConfigSource,
    schema: &ConfigSource,
) -> Result<ClusterConfig, Diagnostics> {
    crate::legacy::load(nodes, schema)
}

/// [`unified_json_schema`], generated once.
fn unified_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(unified_json_schema)
}

fn unified_checker() -> &'static Result<StructureChecker, String> {
    static CHECKER: OnceLock<Result<StructureChecker, String>> = OnceLock::new();
    CHECKER.get_or_init(|| StructureChecker::new(unified_schema().clone()))
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
    fn column_field(&self, t: usize, c: usize, field: &str) -> FieldPath {
        self.column(t, c).key(field)
    }
    fn table_field(&self, t: usize, field: &str) -> FieldPath {
        Self::table_path(t).key(field)
    }
    fn dropped_table(&self, d: usize) -> FieldPath {
        FieldPath::root().key("dropped_tables").index(d)
    }
    fn sql_file(&self, f: usize) -> FieldPath {
        FieldPath::root().key("sql_files").index(f)
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
    fn index_field(&self, t: usize, i: usize, field: &str) -> FieldPath {
        Self::table_path(t).key("indexes").index(i).key(field)
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
    use serde_json::json;

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
              "tables": [{ "name": "t", "columns": [{ "name": "id", "type": "text", "identity": "always" }], "primary_key": ["id", "nope"] }],
              "nodes": [{ "name": "A", "host": "h", "port": 0, "db": "d", "user": "u" }]
            }"#,
        ));
        assert_eq!(
            found,
            [
                "pgconverge.json:2:97: tables[0].columns[0].identity: an identity column must be `bigint`, `integer` or `smallint`, not `text`",
                "pgconverge.json:2:132: tables[0].primary_key[1]: column `nope` is not defined in table `t`",
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
    fn unified_json_is_stable_and_loads_back() {
        let nodes = r#"[{ "name": "a", "host": "h", "db": "d", "user": "u" }]"#;
        let mut config = load_legacy(
            &ConfigSource::new("nodes.json", nodes),
            &ConfigSource::new(
                "schema.json",
                r#"{ "t": { "name": "t", "columns": { "id": { "name": "id", "data_type": "uuid" } },
                            "constraints": { "primary": ["id"] } } }"#,
            ),
        )
        .map_err(|d| d.to_string())
        .expect("loads");
        let text = to_unified_json(&config);
        assert!(!text.contains("$schema"));
        assert!(text.ends_with("}\n"));
        assert_eq!(text, to_unified_json(&config));
        let back = unified(&text)
            .map_err(|d| d.to_string())
            .expect("loads back");
        assert_eq!(back, config);

        config.schema = Some("./schemas/pgconverge.schema.json".to_string());
        let text = to_unified_json(&config);
        assert!(
            text.starts_with("{\n  \"$schema\": \"./schemas/pgconverge.schema.json\",\n"),
            "{text}"
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

    /// Every unified fixture, valid and invalid, with its case name.
    fn unified_fixtures() -> Vec<(String, String)> {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let mut found = Vec::new();
        for kind in ["valid", "invalid"] {
            let Ok(entries) = std::fs::read_dir(root.join(kind)) else {
                continue;
            };
            for entry in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(entry.path().join("pgconverge.json")) {
                    found.push((
                        format!("{kind}/{}", entry.file_name().to_string_lossy()),
                        text,
                    ));
                }
            }
        }
        found.sort();
        found
    }

    /// Small deterministic generator (xorshift64*), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1) as u64) as usize
        }
    }

    /// Values that keep a document's shape valid as often as they break it.
    fn replacement(rng: &mut Rng) -> Value {
        let pool = [
            json!(0),
            json!(1),
            json!(5432),
            json!(65536),
            json!(-1),
            json!(1.5),
            json!(7.0),
            json!(4294967296u64),
            json!(""),
            json!(" "),
            json!("A"),
            json!("id"),
            json!("t"),
            json!("serial"),
            json!("bogus"),
            json!("prefer"),
            json!("cascade"),
            json!("lww"),
            json!("x".repeat(70)),
            json!(null),
            json!(true),
            json!([]),
            json!(["id"]),
            json!({}),
        ];
        pool[rng.below(pool.len())].clone()
    }

    /// Changes one value somewhere in `value`: replaces it, drops or adds an object member,
    /// or empties an array.
    fn mutate(value: &mut Value, rng: &mut Rng) {
        // Pick the place first, reading; then change it.
        let mut pointer = String::new();
        let mut at = &*value;
        while rng.below(4) != 0 {
            let step = match at {
                Value::Object(map) if !map.is_empty() => map
                    .iter()
                    .nth(rng.below(map.len()))
                    .map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v)),
                Value::Array(items) if !items.is_empty() => {
                    let i = rng.below(items.len());
                    items.get(i).map(|v| (i.to_string(), v))
                }
                _ => None,
            };
            let Some((key, next)) = step else { break };
            pointer.push('/');
            pointer.push_str(&key);
            at = next;
        }
        let Some(current) = value.pointer_mut(&pointer) else {
            return;
        };
        match (current, rng.below(4)) {
            (Value::Object(map), 0) if !map.is_empty() => {
                let key = map.keys().nth(rng.below(map.len())).cloned();
                if let Some(key) = key {
                    map.shift_remove(&key);
                }
            }
            (Value::Object(map), 1) => {
                map.insert("extra".to_string(), replacement(rng));
            }
            (Value::Array(items), 1) => items.clear(),
            (current, _) => {
                // Mostly a value of the same kind, which keeps the shape and tests the rest.
                let same_kind = rng.below(4) != 0;
                let mut new = replacement(rng);
                for _ in 0..64 {
                    if !same_kind || std::mem::discriminant(&new) == std::mem::discriminant(current)
                    {
                        break;
                    }
                    new = replacement(rng);
                }
                *current = new;
            }
        }
    }

    /// The cheap read never changes a result: on every fixture and on thousands of edits of
    /// them, `load_unified` gives exactly what the full located load gives, and whatever the
    /// quick check trusts, the JSON Schema validator accepts.
    #[test]
    fn quick_read_gives_the_same_result_as_the_full_load() {
        let fixtures = unified_fixtures();
        assert!(fixtures.len() >= 10, "{} fixtures", fixtures.len());
        let checker = unified_checker().as_ref().expect("schema compiles");
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut quick_ok, mut quick_semantic, mut full) = (0, 0, 0);
        let mut compare = |name: &str, text: String| {
            let src = ConfigSource::new("pgconverge.json", text);
            if let Some(parsed) = quick_check::parse(&src.text) {
                if quick_check::certainly_conforms(unified_schema(), &parsed.value) {
                    assert!(
                        checker.is_valid(&parsed.value),
                        "{name}: trusted but invalid:\n{}",
                        src.text
                    );
                }
            }
            match read_unified_quickly(&src) {
                Some(Ok(_)) => quick_ok += 1,
                Some(Err(())) => quick_semantic += 1,
                None => full += 1,
            }
            let expected = load_unified_located(&src, Structure::Unknown);
            assert_eq!(load_unified(&src), expected, "{name}:\n{}", src.text);
        };
        for (name, text) in &fixtures {
            compare(name, text.clone());
            if !text.contains('\u{feff}') {
                compare(name, format!("\u{feff}{text}"));
            }
            let Ok(value) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            for round in 0..200 {
                let mut edited = value.clone();
                for _ in 0..=rng.below(3) {
                    mutate(&mut edited, &mut rng);
                }
                let text = serde_json::to_string_pretty(&edited).expect("serialises");
                compare(&format!("{name} edit {round}"), text.clone());
                // The same member twice: only the text shows it.
                if let Some(at) = text.find("\"name\": ") {
                    let repeated = format!("{}\"name\": \"twice\", {}", &text[..at], &text[at..]);
                    compare(&format!("{name} edit {round}, repeated key"), repeated);
                }
            }
        }
        // Each way through was taken many times.
        assert!(quick_ok > 100, "{quick_ok} read quickly");
        assert!(
            quick_semantic > 100,
            "{quick_semantic} located without the validator"
        );
        assert!(full > 100, "{full} fully checked");
    }

    #[test]
    fn valid_fixtures_are_read_quickly() {
        for (name, text) in unified_fixtures() {
            if name.starts_with("valid/") {
                let src = ConfigSource::new("pgconverge.json", text);
                assert!(
                    matches!(read_unified_quickly(&src), Some(Ok(_))),
                    "{name} was not read the quick way"
                );
            }
        }
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
