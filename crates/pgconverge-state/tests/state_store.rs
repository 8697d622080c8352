//! Loading and saving the state file: round trip, serial, backup, refusals, error messages.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use common::ScratchDir;
use pgconverge_model::catalog::QualifiedName;
use pgconverge_model::ObjectAddress;
use pgconverge_state::{
    ApplyRecord, NodeState, StateError, StateFile, StateStore, STATE_FORMAT_VERSION,
};

fn populated_state() -> StateFile {
    let mut state = StateStore::new_state();
    state.config_fingerprint = Some("sha256:abc".to_owned());
    state.nodes.insert(
        "n1".to_owned(),
        NodeState {
            managed: BTreeSet::from([
                ObjectAddress::Table {
                    table: QualifiedName::new("public", "users"),
                },
                ObjectAddress::Subscription {
                    name: "pgc_n1_from_n2".to_owned(),
                },
            ]),
            catalog_fingerprint: Some("sha256:def".to_owned()),
            applied_definitions: BTreeMap::from([(
                "subscription pgc_n1_from_n2".to_owned(),
                "0123abcd".to_owned(),
            )]),
            connection: None,
        },
    );
    state.nodes.insert("n2".to_owned(), NodeState::default());
    state.last_apply = Some(ApplyRecord {
        finished_at: "2024-05-01T12:00:00Z".to_owned(),
        steps_applied: 7,
        plan_fingerprint: Some("sha256:123".to_owned()),
        outcome: "succeeded".to_owned(),
    });
    state
}

#[test]
fn new_state_starts_at_serial_zero_with_a_fresh_lineage() {
    let first = StateStore::new_state();
    let second = StateStore::new_state();
    assert_eq!(first.serial, 0);
    assert_eq!(first.format_version, STATE_FORMAT_VERSION);
    assert_eq!(first.pgconverge_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(first.lineage.len(), 36);
    assert_ne!(first.lineage, second.lineage);
    assert!(first.nodes.is_empty() && first.last_apply.is_none());
}

#[test]
fn load_returns_none_when_the_file_is_absent() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    assert_eq!(store.load().expect("load"), None);
}

#[test]
fn saved_state_loads_back_unchanged() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    let mut state = populated_state();
    store.save(&mut state).expect("save");
    assert_eq!(store.load().expect("load"), Some(state));
}

#[test]
fn each_save_increments_the_serial_and_keeps_the_lineage() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    let mut state = StateStore::new_state();
    let lineage = state.lineage.clone();
    store.save(&mut state).expect("first save");
    assert_eq!(state.serial, 1);
    store.save(&mut state).expect("second save");
    assert_eq!(state.serial, 2);
    let loaded = store.load().expect("load").expect("state present");
    assert_eq!((loaded.serial, loaded.lineage), (2, lineage));
}

#[test]
fn save_keeps_the_previous_file_as_backup() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    let mut state = StateStore::new_state();
    store.save(&mut state).expect("first save");
    assert!(!store.backup_path().exists(), "nothing to back up yet");
    let first_bytes = fs::read(store.path()).expect("read first");

    state.config_fingerprint = Some("changed".to_owned());
    store.save(&mut state).expect("second save");
    assert_eq!(
        fs::read(store.backup_path()).expect("read backup"),
        first_bytes
    );
    let backup: StateFile = serde_json::from_slice(&first_bytes).expect("backup is a state");
    assert_eq!((backup.serial, backup.config_fingerprint), (1, None));
    assert!(
        !scratch.path().join("state.json.tmp").exists(),
        "no staging file left behind"
    );
}

#[test]
fn save_creates_missing_parent_directories() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("a/b/state.json"));
    store
        .save(&mut StateStore::new_state())
        .expect("save into new directories");
    assert!(store.load().expect("load").is_some());
}

#[cfg(unix)]
#[test]
fn state_and_backup_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    let mut state = StateStore::new_state();
    store.save(&mut state).expect("first save");
    store.save(&mut state).expect("second save");
    for path in [store.path().to_owned(), store.backup_path()] {
        let mode = fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
}

#[test]
fn file_uses_the_documented_field_names() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    store.save(&mut populated_state()).expect("save");
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(store.path()).expect("read")).expect("json");
    let keys: BTreeSet<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "format_version",
            "lineage",
            "serial",
            "pgconverge_version",
            "config_fingerprint",
            "nodes",
            "last_apply",
        ])
    );
    assert_eq!(json["serial"], 1);
    assert_eq!(
        json["nodes"]["n1"]["managed"][0],
        "subscription pgc_n1_from_n2"
    );
    assert_eq!(json["last_apply"]["steps_applied"], 7);
}

/// A state file as pgconverge wrote it while managed addresses were plain strings.
const STATE_WITH_TEXT_ADDRESSES: &str = r#"{
  "format_version": 1,
  "lineage": "0b9f5a57-0e4b-4d35-9a1b-6f7f2b1c9e01",
  "serial": 3,
  "pgconverge_version": "0.1.0",
  "config_fingerprint": "5d41402abc4b2a76b9719d911017c592",
  "nodes": {
    "n1": {
      "managed": [
        "constraint public.users.users_pkey",
        "function _pgconverge.node_name()",
        "index public.users.users_email_idx",
        "publication pgc_n1",
        "slot pgc_n2_from_n1",
        "subscription pgc_n1_from_n2",
        "table _pgconverge.changes",
        "table public.users",
        "trigger public.users.pgc_log_users"
      ],
      "catalog_fingerprint": "7d793037a0760186574b0282f2f435e7"
    }
  },
  "last_apply": {
    "finished_at": "2024-05-01T12:00:00Z",
    "steps_applied": 12,
    "plan_fingerprint": "5d41402abc4b2a76b9719d911017c592",
    "outcome": "succeeded"
  }
}
"#;

#[test]
fn a_state_written_with_text_addresses_loads_typed_and_saves_the_same_text() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    fs::write(store.path(), STATE_WITH_TEXT_ADDRESSES).expect("write old state");
    let mut state = store.load().expect("load").expect("state present");
    let managed = &state.nodes["n1"].managed;
    assert!(managed.contains(&ObjectAddress::Slot {
        name: "pgc_n2_from_n1".to_owned()
    }));
    assert!(managed.contains(&ObjectAddress::Function {
        function: QualifiedName::new("_pgconverge", "node_name"),
    }));
    assert_eq!(managed.len(), 9);

    store.save(&mut state).expect("save");
    let old: serde_json::Value = serde_json::from_str(STATE_WITH_TEXT_ADDRESSES).expect("json");
    let new: serde_json::Value =
        serde_json::from_slice(&fs::read(store.path()).expect("read")).expect("json");
    assert_eq!(new["nodes"], old["nodes"]);
}

#[test]
fn an_unreadable_address_is_reported_with_its_location() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    fs::write(
        store.path(),
        STATE_WITH_TEXT_ADDRESSES.replace("table public.users\"", "tabel public.users\""),
    )
    .expect("write");
    let err = store.load().expect_err("refused");
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("tabel public.users"), "{err}");
}

#[test]
fn corrupt_file_error_names_the_path_line_and_column() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    fs::write(
        store.path(),
        "{\n  \"format_version\": 1,\n  \"lineage\": \"x\",\n  \"serial\": oops\n}\n",
    )
    .expect("write corrupt file");
    let error = store.load().expect_err("corrupt file must not load");
    assert!(
        matches!(
            error,
            StateError::Corrupt {
                line: 4,
                column: 13,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&store.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("line 4, column 13"), "{message}");
    assert!(!message.contains(".backup"), "no backup exists: {message}");
    assert_eq!(
        message.matches("line 4").count(),
        1,
        "location stated once: {message}"
    );
}

#[test]
fn corrupt_file_error_points_to_the_backup_when_there_is_one() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    let mut state = StateStore::new_state();
    store.save(&mut state).expect("first save");
    store.save(&mut state).expect("second save");
    fs::write(store.path(), "").expect("truncate");
    let message = store.load().expect_err("empty file").to_string();
    assert!(
        message.contains(&store.backup_path().display().to_string()),
        "{message}"
    );
}

#[test]
fn unknown_fields_are_rejected_with_their_location() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    let mut state = StateStore::new_state();
    store.save(&mut state).expect("save");
    let text = fs::read_to_string(store.path()).expect("read");
    fs::write(
        store.path(),
        text.replacen("\"serial\"", "\"serail\": 3,\n  \"serial\"", 1),
    )
    .expect("write");
    let message = store.load().expect_err("unknown field").to_string();
    assert!(message.contains("serail"), "{message}");
    assert!(message.contains("line "), "{message}");
}

#[test]
fn newer_format_is_refused_with_an_upgrade_hint() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    let newer = format!(
        "{{\"format_version\": {}, \"pgconverge_version\": \"9.9.9\", \"resources\": []}}",
        STATE_FORMAT_VERSION + 1
    );
    fs::write(store.path(), &newer).expect("write");
    let error = store.load().expect_err("newer format");
    assert!(
        matches!(error, StateError::FormatTooNew { found, .. } if found == STATE_FORMAT_VERSION + 1),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("9.9.9"), "{message}");
    assert!(message.contains("upgrade pgconverge"), "{message}");

    // Saving must not clobber a file a newer pgconverge wrote.
    let save_error = store
        .save(&mut StateStore::new_state())
        .expect_err("save over newer format");
    assert!(
        matches!(save_error, StateError::FormatTooNew { .. }),
        "{save_error:?}"
    );
    assert_eq!(fs::read_to_string(store.path()).expect("read"), newer);
}

#[test]
fn format_version_zero_is_refused() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    fs::write(store.path(), "{\"format_version\": 0}").expect("write");
    let error = store.load().expect_err("version 0");
    assert!(
        matches!(error, StateError::FormatUnknown { found: 0, .. }),
        "{error:?}"
    );
}

#[test]
fn save_refuses_a_state_of_another_lineage() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    store
        .save(&mut StateStore::new_state())
        .expect("first cluster");
    let mut other = StateStore::new_state();
    let error = store.save(&mut other).expect_err("other lineage");
    assert!(
        matches!(error, StateError::LineageMismatch { .. }),
        "{error:?}"
    );
    assert_eq!(other.serial, 0, "a refused save leaves the state unchanged");
    assert!(
        !store.backup_path().exists(),
        "a refused save writes nothing"
    );
}

#[test]
fn save_refuses_to_overwrite_a_newer_serial() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    let mut state = StateStore::new_state();
    store.save(&mut state).expect("save");
    let mut stale = store.load().expect("load").expect("present");
    let mut current = stale.clone();
    store.save(&mut current).expect("another run saves first");
    let error = store.save(&mut stale).expect_err("stale copy");
    assert!(
        matches!(
            error,
            StateError::StaleSerial {
                on_disk: 2,
                saving: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(store.load().expect("load"), Some(current));
}

#[test]
fn a_node_is_remembered_without_its_password() {
    let scratch = ScratchDir::new();
    let store = StateStore::new(scratch.path().join("state.json"));
    let mut state = StateStore::new_state();
    let node: pgconverge_model::NodeConfig = serde_json::from_value(serde_json::json!({
        "name": "n3", "host": "10.0.0.3", "port": 5433, "db": "app", "user": "repl",
        "password": "hunter2-secret", "password_env": "N3_PASSWORD"
    }))
    .expect("node config");
    state
        .nodes
        .entry("n3".to_owned())
        .or_default()
        .remember_connection(&node);
    store.save(&mut state).expect("save");
    let text = fs::read_to_string(scratch.path().join("state.json")).expect("read");
    assert!(!text.contains("hunter2-secret"), "{text}");
    let loaded = store.load().expect("load").expect("a state");
    let connection = loaded.nodes["n3"].connection.as_ref().expect("connection");
    assert_eq!(connection.host, "10.0.0.3");
    assert_eq!(connection.port, Some(5433));
    assert_eq!(connection.password, None);
    assert_eq!(connection.password_env.as_deref(), Some("N3_PASSWORD"));
}
