//! The checked-in JSON Schemas under `schemas/` must match the types they describe: the
//! config (`pgconverge.schema.json`), the JSON plan (`plan.schema.json`), the status
//! document (`status.schema.json`) and the verify report (`verify.schema.json`). `UPDATE_SCHEMAS=1 cargo test --test schemas` rewrites them.

use pgconverge_tests::repo_root;

#[test]
fn every_json_schema_file_is_fresh() {
    let config = serde_json::to_string_pretty(&pgconverge_model::load::unified_json_schema())
        .expect("a schema serialises")
        + "\n";
    let files = [
        ("pgconverge.schema.json", config),
        (
            "plan.schema.json",
            pgconverge_plan::render::json::plan_view_schema(),
        ),
        (
            "status.schema.json",
            pgconverge_engine::operations::status::status_schema(),
        ),
        (
            "verify.schema.json",
            pgconverge_engine::operations::verify::verify_schema(),
        ),
    ];
    let update = std::env::var("UPDATE_SCHEMAS").as_deref() == Ok("1");
    let mut stale = Vec::new();
    for (name, generated) in files {
        let path = repo_root().join("schemas").join(name);
        if update {
            std::fs::write(&path, &generated).expect("schema file is writable");
        } else if std::fs::read_to_string(&path).unwrap_or_default() != generated {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "stale under schemas/: {stale:?}; regenerate with `UPDATE_SCHEMAS=1 cargo test --test schemas`"
    );
}
