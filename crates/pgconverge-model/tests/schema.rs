//! The checked-in JSON Schema of the config (`schemas/pgconverge.schema.json`) is a valid
//! draft 2020-12 schema; the root package's `tests/schemas.rs` holds it equal to the types.

use std::path::PathBuf;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/pgconverge.schema.json")
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
