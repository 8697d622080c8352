//! `schemas/status.schema.json` must match the `status --json` document's types;
//! `UPDATE_SCHEMAS=1` rewrites it.

use std::path::Path;

use pgconverge_engine::operations::status::status_schema;

#[test]
fn status_json_schema_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/status.schema.json");
    let generated = status_schema();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &generated).expect("write schema");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} is stale: run `UPDATE_SCHEMAS=1 cargo test -p pgconverge-engine --test status_schema`",
        path.display()
    );
}
