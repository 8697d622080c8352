//! Every configuration under `fixtures/invalid/<case>/` must be refused with exactly the
//! diagnostics in its snapshot; every one under `fixtures/valid/<case>/` must load cleanly.
//! A case holds `pgconverge.json` (unified format) or `nodes.json` + `schema.json` (older
//! format). Diagnostics name files relative to the case directory.

use std::path::{Path, PathBuf};

use pgconverge_model::{
    load_legacy, load_unified, to_unified_json, ClusterConfig, ConfigSource, Diagnostics,
};

fn fixtures_dir(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(kind)
}

fn cases(kind: &str) -> Vec<(String, PathBuf)> {
    let mut cases: Vec<(String, PathBuf)> = std::fs::read_dir(fixtures_dir(kind))
        .expect("fixtures directory exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_dir())
        .map(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("case names are UTF-8")
                .to_string();
            (name, path)
        })
        .collect();
    cases.sort();
    cases
}

fn source(dir: &Path, file: &str) -> ConfigSource {
    let text = std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()));
    ConfigSource::new(file, text)
}

fn load_case(dir: &Path) -> Result<ClusterConfig, Diagnostics> {
    if dir.join("pgconverge.json").exists() {
        load_unified(&source(dir, "pgconverge.json"))
    } else {
        load_legacy(&source(dir, "nodes.json"), &source(dir, "schema.json"))
    }
}

#[test]
fn invalid_configurations_are_refused_with_located_diagnostics() {
    let cases = cases("invalid");
    assert!(cases.len() >= 15, "expected at least 15 invalid cases");
    for (name, dir) in cases {
        match load_case(&dir) {
            Ok(_) => panic!("fixtures/invalid/{name} loaded without a diagnostic"),
            Err(diagnostics) => {
                assert!(
                    diagnostics.0.iter().all(|d| d.line >= 1 && d.column >= 1),
                    "{name}: every diagnostic has a position:\n{diagnostics}"
                );
                insta::assert_snapshot!(format!("invalid__{name}"), diagnostics.to_string());
            }
        }
    }
}

#[test]
fn valid_configurations_load_without_diagnostics() {
    let cases = cases("valid");
    assert!(!cases.is_empty());
    for (name, dir) in cases {
        if let Err(diagnostics) = load_case(&dir) {
            panic!("fixtures/valid/{name} was refused:\n{diagnostics}");
        }
    }
}

#[test]
fn unified_output_of_every_valid_case_loads_back_unchanged() {
    for (name, dir) in cases("valid") {
        let config = load_case(&dir).expect("valid case loads");
        let text = to_unified_json(&config);
        let reloaded = load_unified(&ConfigSource::new("pgconverge.json", text.clone()))
            .unwrap_or_else(|d| panic!("{name}: the converted config is refused:\n{d}\n{text}"));
        assert_eq!(reloaded, config, "{name}");
    }
}

#[test]
fn legacy_import_output() {
    let dir = fixtures_dir("valid").join("legacy-two-file");
    let config = load_case(&dir).expect("valid case loads");
    insta::assert_snapshot!("legacy_two_file_imported", to_unified_json(&config));
}
