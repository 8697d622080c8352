//! The checked-in JSON Schema (`schemas/pgconverge.schema.json`) must match the config
//! types; run with `UPDATE_SCHEMAS=1` to rewrite it after changing them.

use std::path::PathBuf;

use pgconverge_model::load::unified_json_schema;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/pgconverge.schema.json")
}

#[test]
fn json_schema_file_is_up_to_date() {
    let mut generated =
        serde_json::to_string_pretty(&unified_json_schema()).expect("a schema serialises");
    generated.push('\n');
    let path = schema_path();
    if std::env::var("UPDATE_SCHEMAS").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).expect("schema file is writable");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "{} is stale; regenerate it with `UPDATE_SCHEMAS=1 cargo test -p pgconverge-model --test schema`",
        path.display()
    );
}

#[test]
fn json_schema_file_is_a_valid_draft_2020_12_schema() {
    let text = std::fs::read_to_string(schema_path()).expect("schema file exists");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema file is JSON");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(jsonschema::meta::is_valid(&schema));
}
