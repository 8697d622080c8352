//! The unified format written as JSON text, as `import` and `sandbox` write
//! `pgconverge.json`.

use serde_json::Value;

use crate::config::ClusterConfig;

/// The unified configuration as JSON for `import`: two-space indentation, fields in a
/// stable order, short lists and small objects (a column, a node) kept on one line, a
/// final newline; `$schema` only when the config sets it.
pub fn to_unified_json(config: &ClusterConfig) -> String {
    // Serialising these plain structs (string keys only) cannot fail.
    let value = serde_json::to_value(config).expect("a ClusterConfig always serialises to JSON");
    let mut out = String::new();
    write_json(&value, 0, &mut out);
    out.push('\n');
    out
}

/// Widest line an object or list is kept on, indentation included.
const INLINE_WIDTH: usize = 120;

fn write_json(value: &Value, indent: usize, out: &mut String) {
    if let Some(inline) = inline_json(value) {
        if indent + inline.len() <= INLINE_WIDTH {
            out.push_str(&inline);
            return;
        }
    }
    let pad = "  ".repeat(indent + 1);
    match value {
        Value::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad);
                write_json(item, indent + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&"  ".repeat(indent));
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("{\n");
            for (i, (key, item)) in map.iter().enumerate() {
                out.push_str(&pad);
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                write_json(item, indent + 1, out);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            out.push_str(&"  ".repeat(indent));
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// One-line form of scalars, lists of scalars, and objects holding only those.
fn inline_json(value: &Value) -> Option<String> {
    match value {
        Value::Array(items) if items.iter().all(is_scalar) => {
            let parts: Vec<String> = items.iter().map(Value::to_string).collect();
            Some(format!("[{}]", parts.join(", ")))
        }
        Value::Array(items) if items.iter().all(|i| matches!(i, Value::Array(_))) => {
            let parts: Option<Vec<String>> = items.iter().map(inline_json).collect();
            parts.map(|p| format!("[{}]", p.join(", ")))
        }
        Value::Object(map) if map.is_empty() => Some("{}".to_string()),
        Value::Object(map) => {
            let parts: Option<Vec<String>> = map
                .iter()
                .map(|(k, v)| {
                    let inner = match v {
                        Value::Object(_) => None,
                        Value::Array(items) if !items.iter().all(is_scalar) => None,
                        other => inline_json(other),
                    }?;
                    Some(format!("{}: {inner}", Value::String(k.clone())))
                })
                .collect();
            parts.map(|p| format!("{{ {} }}", p.join(", ")))
        }
        Value::Array(_) => None,
        scalar => Some(scalar.to_string()),
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}
