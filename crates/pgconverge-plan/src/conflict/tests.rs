//! Unit tests of the rendered conflict-resolution SQL (its behaviour is tested against real
//! servers in tests/conflict_triggers.rs and tests/convergence.rs).

use super::naming::SHARED_FUNCTIONS;
use super::*;
use pgconverge_model::config::ColumnConfig;
use std::collections::BTreeSet;

fn column(name: &str, data_type: &str) -> ColumnConfig {
    ColumnConfig {
        name: name.to_string(),
        data_type: data_type.to_string(),
        nullable: true,
        default: None,
        renamed_from: None,
        identity: None,
        generated: None,
    }
}

fn table(schema: &str, name: &str) -> TableConfig {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "schema": schema,
        "columns": [],
        "primary_key": [],
    }))
    .unwrap_or_else(|e| panic!("test table: {e}"))
}

fn users() -> TableConfig {
    let mut t = table("public", "users");
    t.columns = vec![
        column("id", "uuid"),
        column("email", "text"),
        column("tenant", "int"),
        column("handle", "text"),
        column("created", "timestamptz"),
    ];
    t.primary_key = vec!["id".into()];
    t.unique = vec![
        vec!["email".into()],
        vec!["tenant".into(), "handle".into()],
        vec!["handle".into(), "tenant".into()],
        vec!["id".into(), "email".into()],
    ];
    t
}

fn objects(tables: &[TableConfig]) -> ConflictObjects {
    cluster_objects(tables, &ReplicationConfig::default(), &[])
}

#[test]
fn same_input_gives_identical_bytes() {
    assert_eq!(objects(&[users()]), objects(&[users()]));
}

#[test]
fn only_node_name_differs_between_nodes() {
    let objs = objects(&[users()]);
    let a = objs.node_functions("node_a");
    let b = objs.node_functions("node_b");
    assert_eq!(a.len(), objs.functions.len() + 1);
    assert_eq!(a[0].name, internal_name(naming::NODE_NAME_FUNCTION));
    assert!(a[0].body().contains("'node_a'"), "{}", a[0].body());
    assert!(b[0].body().contains("'node_b'"), "{}", b[0].body());
    for (fa, fb) in a[1..].iter().zip(&b[1..]) {
        assert!(Arc::ptr_eq(fa, fb), "{} is copied per node", fa.name.name);
        assert!(!fa.body().contains("node_a"), "{}", fa.body());
    }
    // Each per-table body asks for the name where it needs it.
    for f in &objs.functions {
        if f.name.name.starts_with("stamp_")
            || f.name.name.starts_with("log_")
            || f.name.name.starts_with("apply_")
        {
            assert!(f.body().contains("_pgconverge.node_name()"), "{}", f.body());
        }
    }
}

#[test]
fn create_sql_holds_the_body_verbatim_and_its_fingerprint() {
    for f in objects(&[users()]).node_functions("n1") {
        let create_sql = f.create_sql();
        assert!(
            create_sql.contains(&format!("$pgc${}$pgc$", f.body())),
            "{create_sql}"
        );
        assert!(create_sql.contains("SET search_path = ''"));
        assert_eq!(f.body_sha256(), naming::sha256_hex(f.body()));
        assert_eq!(f.body_sha256().len(), 64);
    }
}

#[test]
fn redundant_unique_constraints_are_not_claimed() {
    let objs = objects(&[users()]);
    let apply = objs
        .functions
        .iter()
        .find(|f| f.name.name.starts_with("apply_users_"))
        .unwrap_or_else(|| panic!("no apply function"));
    // email, and (tenant, handle) once: the reversed duplicate and the one covering the key
    // are dropped.
    assert!(apply.body().contains("_pgc_value_1 jsonb"));
    assert!(!apply.body().contains("_pgc_value_2"));
    assert!(apply.body().contains("'tenant, handle'"));
}

#[test]
fn user_names_are_quoted_and_cannot_end_the_body() {
    let mut t = table("My Schema", "Order$pgc$");
    t.columns = vec![column("row", "int"), column("it's", "bytea")];
    t.primary_key = vec!["row".into()];
    t.unique = vec![vec!["it's".into()]];
    let objs = objects(&[t]);
    for f in &objs.functions {
        if f.body().contains("$pgc$") {
            assert!(f.create_sql().contains("$pgc_1$"), "{}", f.create_sql());
        }
    }
    let stamp = objs
        .functions
        .iter()
        .find(|f| f.name.name.starts_with("stamp_"))
        .unwrap_or_else(|| panic!("no stamp function"));
    assert!(stamp.body().contains("\"My Schema\".\"Order$pgc$\""));
    assert!(stamp.body().contains("NEW.\"row\""));
    assert!(stamp.body().contains("NEW.\"it's\""));
    assert!(stamp.body().contains("'\"My Schema\".\"Order$pgc$\"'"));
    assert!(stamp
        .body()
        .contains("pg_catalog.encode(NEW.\"it's\", 'hex')"));
}

#[test]
fn change_log_is_the_only_published_table_and_its_trigger_fires_in_apply_workers() {
    let objs = objects(&[users()]);
    assert_eq!(
        objs.published_tables,
        vec![QualifiedName::new("_pgconverge", "changes")]
    );
    assert_eq!(objs.publish_operations, vec!["insert".to_string()]);
    let on_changes: Vec<&Arc<TriggerDef>> = objs
        .triggers
        .iter()
        .filter(|t| t.table.name == "changes")
        .collect();
    assert_eq!(on_changes.len(), 2);
    assert!(on_changes.iter().all(|t| t.enabled.tgenabled() == "R"));
    let apply = on_changes[0];
    assert!(
        apply.name.starts_with("_pgc_apply_users_"),
        "{}",
        apply.name
    );
    assert!(
        apply.create_sql[0].contains("WHEN (new.tbl = 'public.users')"),
        "{}",
        apply.create_sql[0]
    );
    assert_eq!(
        apply.create_sql[1],
        format!(
            "ALTER TABLE _pgconverge.changes ENABLE REPLICA TRIGGER {}",
            apply.name
        )
    );
    // The guard fires last: trigger names sort.
    assert_eq!(on_changes[1].name, UNKNOWN_CHANGE_TRIGGER);
    assert!(on_changes[0].name < on_changes[1].name);
    let local: Vec<&Arc<TriggerDef>> = objs
        .triggers
        .iter()
        .filter(|t| t.table.name == "users")
        .collect();
    assert_eq!(local.len(), 3);
    assert!(local.iter().all(|t| t.enabled == TriggerFiring::Local));
}

#[test]
fn timestamptz_keys_are_compared_in_utc() {
    let objs = objects(&[users()]);
    let mut t = users();
    t.primary_key = vec!["created".into()];
    let objs_ts = objects(&[t]);
    let stamp = |o: &ConflictObjects| {
        o.functions
            .iter()
            .find(|f| f.name.name.starts_with("stamp_"))
            .map(|f| f.body().to_string())
            .unwrap_or_default()
    };
    assert!(!stamp(&objs).contains("AT TIME ZONE 'UTC'"));
    assert!(stamp(&objs_ts).contains("pg_catalog.to_jsonb(NEW.created AT TIME ZONE 'UTC')"));
}

#[test]
fn conflict_only_paths_call_the_shared_merges_and_common_paths_stay_inline() {
    let objs = objects(&[users()]);
    let body = |prefix: &str| {
        objs.functions
            .iter()
            .find(|f| f.name.name.starts_with(prefix))
            .map(|f| f.body().to_string())
            .unwrap_or_else(|| panic!("no {prefix} function"))
    };
    let apply = body("apply_users_");
    assert!(apply.contains("PERFORM _pgconverge.record_conflict('public.users', "));
    assert!(apply.contains("PERFORM _pgconverge.merge_claim('public.users', 'email', "));
    assert!(apply.contains("PERFORM _pgconverge.merge_tombstone('public.users', "));
    assert!(!apply.contains("INSERT INTO _pgconverge.conflicts"));
    // A replicated delete writes its tombstone without a call.
    assert!(apply.contains("INSERT INTO _pgconverge.tombstones"));
    assert!(!body("log_users_").contains("PERFORM _pgconverge.merge_"));
    for name in ["merge_tombstone", "merge_claim", "record_conflict"] {
        let f = body(name);
        assert!(f.contains("INSERT INTO _pgconverge."), "{f}");
    }
}

#[test]
fn table_functions_render_on_demand_what_the_generators_give() {
    let shapes = vec![Arc::new(TableShape::new(&users()))];
    let node_name = internal::node_name_call();
    let lazy = table_functions(&shapes);
    let eager = [
        local_writes::stamp_function(&shapes[0], &node_name),
        local_writes::log_function(&shapes[0], &node_name),
        remote_apply::apply_function(&shapes[0], &node_name),
    ];
    assert_eq!(lazy.len(), eager.len());
    for (lazy, eager) in lazy.iter().zip(&eager) {
        assert_eq!(lazy.name, eager.name);
        assert!(
            lazy.rendered.get().is_none(),
            "{} rendered early",
            lazy.name
        );
        assert_eq!(lazy.create_sql(), eager.create_sql());
        assert_eq!(lazy.body_sha256(), eager.body_sha256());
        assert!(lazy.comment_sql().contains(&lazy.fingerprint));
    }
}

#[test]
fn fingerprints_follow_what_a_body_is_generated_from() {
    let fingerprints = |table: &TableConfig| -> Vec<String> {
        objects(std::slice::from_ref(table))
            .functions
            .iter()
            .map(|f| f.fingerprint.clone())
            .collect()
    };
    let before = fingerprints(&users());
    assert_eq!(before, fingerprints(&users()), "not deterministic");
    let unique: BTreeSet<&String> = before.iter().collect();
    assert_eq!(
        unique.len(),
        before.len(),
        "two functions share a fingerprint"
    );

    let mut retyped = users();
    retyped.columns[1].data_type = "varchar(200)".into();
    let after = fingerprints(&retyped);
    let changed: Vec<bool> = before.iter().zip(&after).map(|(b, a)| b != a).collect();
    // The shared functions stay; every per-table function of the retyped table changes.
    let shared = objects(&[]).functions.len();
    assert!(changed[..shared].iter().all(|c| !c), "{changed:?}");
    assert!(changed[shared..].iter().all(|c| *c), "{changed:?}");
}

#[test]
fn shared_functions_are_listed_for_the_plan_order() {
    // Both write paths' shared functions: the rule orders whichever the config chose.
    let mut generated: Vec<String> = objects(&[])
        .node_functions("n1")
        .iter()
        .chain(forwarding::cluster_objects(&[]).node_functions("n1").iter())
        .map(|f| f.name.name.clone())
        .collect();
    generated.sort();
    generated.dedup();
    let mut listed: Vec<String> = SHARED_FUNCTIONS.iter().map(|n| n.to_string()).collect();
    listed.sort();
    assert_eq!(generated, listed);
}

/// Files of this directory that shape no generated SQL.
const NOT_GENERATOR_SOURCES: &[&str] = &[
    // These unit tests: they only read what the generators give.
    "tests.rs",
    // Statements a merging joiner runs once, in its bootstrap: no function body.
    "merge.rs",
];

/// Modules of pgconverge-model the generators use whose code writes no generated text: the
/// values they give (names, table definitions, settings) reach each per-table fingerprint
/// through the table's shape and each other function's through its body's hash.
const DATA_ONLY_MODEL_MODULES: &[&str] = &["catalog", "config", "naming"];

/// The first path segment of every `<prefix>…` path in `text`, `<prefix>{a, b::c}` included.
fn used_modules(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        let rest = &text[at + prefix.len()..];
        let paths: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())]
                .split(',')
                .collect(),
            None => vec![rest],
        };
        for path in paths {
            let path = path.trim();
            let end = path
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(path.len());
            found.insert(path[..end].to_string());
        }
    }
    found
}

/// Every `.rs` file below `dir`, as a path from it.
fn rust_files(dir: &std::path::Path, from: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("source directory is readable")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path, from));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(from).expect("below the directory");
            files.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    files
}

/// The pgconverge-sql source defining `item` (a function or a module), as a path from
/// `conflict/`.
fn sql_crate_file_defining(manifest: &std::path::Path, item: &str) -> String {
    let src = manifest.join("../pgconverge-sql/src");
    let module = src.join(format!("{item}.rs"));
    if module.is_file() {
        return format!("../../../pgconverge-sql/src/{item}.rs");
    }
    for file in rust_files(&src, &src) {
        let text = std::fs::read_to_string(src.join(&file)).expect("pgconverge-sql source");
        if text.contains(&format!("pub fn {item}(")) || text.contains(&format!("pub fn {item}<")) {
            return format!("../../../pgconverge-sql/src/{file}");
        }
    }
    panic!("pgconverge_sql::{item} is defined in no pgconverge-sql source file")
}

fn fingerprinted(path: &str) -> bool {
    GENERATOR_SOURCES.iter().any(|(p, _)| *p == path)
}

#[test]
fn every_generator_source_is_in_the_fingerprint() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let here = manifest.join("src/conflict");
    // Each entry's text is the file it names, so the names below can be trusted.
    for (path, text) in GENERATOR_SOURCES {
        let on_disk = std::fs::read_to_string(here.join(path)).expect("listed file exists");
        assert!(
            on_disk == *text,
            "GENERATOR_SOURCES: {path} holds another file's text"
        );
    }
    for file in rust_files(&here, &here) {
        assert!(
            fingerprinted(&file) || NOT_GENERATOR_SOURCES.contains(&file.as_str()),
            "conflict/{file} is not among GENERATOR_SOURCES in conflict/mod.rs (nor listed as generating nothing)"
        );
    }
    let model = manifest.join("../pgconverge-model/src");
    for (path, text) in GENERATOR_SOURCES {
        for module in used_modules(text, "crate::") {
            let file = ["", "/mod"]
                .iter()
                .map(|tail| format!("../{module}{tail}.rs"))
                .find(|f| here.join(f).is_file());
            if let Some(file) = file.filter(|_| module != "conflict") {
                assert!(
                    fingerprinted(&file),
                    "{path} uses crate::{module}, but {file} is not among GENERATOR_SOURCES"
                );
            }
        }
        for item in used_modules(text, "pgconverge_sql::") {
            let file = sql_crate_file_defining(manifest, &item);
            assert!(
                fingerprinted(&file),
                "{path} uses pgconverge_sql::{item}, but {file} is not among GENERATOR_SOURCES"
            );
        }
        for module in used_modules(text, "pgconverge_model::") {
            if model.join(format!("{module}.rs")).is_file() {
                assert!(
                    DATA_ONLY_MODEL_MODULES.contains(&module.as_str()),
                    "{path} uses pgconverge_model::{module}: fingerprint its source or list it as data only"
                );
            }
        }
    }
}

#[test]
fn incoming_rows_keep_the_values_of_always_identity_columns() {
    let mut t = table("public", "orders");
    let mut id = column("id", "bigint");
    id.identity = Some(pgconverge_model::config::IdentityKind::Always);
    let mut number = column("number", "integer");
    number.identity = Some(pgconverge_model::config::IdentityKind::Always);
    t.columns = vec![id, number, column("note", "text")];
    t.primary_key = vec!["id".into()];
    let shape = TableShape::new(&t);
    let apply = remote_apply::apply_function(&shape, &internal::node_name_call());
    let body = apply.body();
    assert_eq!(
        body.matches("INSERT INTO public.orders OVERRIDING SYSTEM VALUE VALUES")
            .count(),
        2,
        "{body}"
    );
    // An update may set an always-identity column only to a new default: it is left alone.
    assert_eq!(
        body.matches("SET (note, _pgc_version, _pgc_origin)")
            .count(),
        2,
        "{body}"
    );
    assert!(!body.contains("number"), "{body}");

    let plain = TableShape::new(&users());
    let apply = remote_apply::apply_function(&plain, &internal::node_name_call());
    assert!(!apply.body().contains("OVERRIDING"), "{}", apply.body());
}

#[test]
fn incoming_rows_never_write_generated_columns() {
    let mut t = table("public", "lines");
    let mut total = column("total", "numeric");
    total.generated = Some("price * quantity".into());
    t.columns = vec![
        column("id", "uuid"),
        column("price", "numeric"),
        column("quantity", "integer"),
        total,
    ];
    t.primary_key = vec!["id".into()];
    let shape = TableShape::new(&t);
    let apply = remote_apply::apply_function(&shape, &internal::node_name_call());
    let body = apply.body();
    // PostgreSQL refuses any value for a generated column, NULL included: inserts name the
    // other columns, updates leave it out.
    assert_eq!(
        body.matches("INSERT INTO public.lines (id, price, quantity, _pgc_version, _pgc_origin) VALUES (_pgc_in.id, _pgc_in.price, _pgc_in.quantity, _pgc_in._pgc_version, _pgc_in._pgc_origin)")
            .count(),
        2,
        "{body}"
    );
    assert_eq!(
        body.matches("SET (price, quantity, _pgc_version, _pgc_origin)")
            .count(),
        2,
        "{body}"
    );
    assert!(!body.contains("total ="), "{body}");
}
