//! The cheap first pass over a configuration: one strict parse that notices repeated keys,
//! and a walk of the generated JSON Schema's few keywords that says whether the document
//! certainly satisfies it.
//!
//! Locating problems costs far more than finding none (a syntax tree with the position of
//! every value, a compiled JSON Schema validator), so a valid file is read without either.
//! This pass only ever answers "certainly fine" or "not sure": any doubt (a keyword it does
//! not know, a number it would have to compare inexactly) sends the load down the full path,
//! which produces the diagnostics exactly as before.

use std::cmp::Ordering;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON document parsed as `serde_json::from_str::<Value>` parses it, and whether any of
/// its objects repeats a key (the later value wins in `value`, as there).
pub(crate) struct CheckedValue {
    pub(crate) value: Value,
    pub(crate) repeated_key: bool,
}

impl CheckedValue {
    fn plain(value: Value) -> Self {
        CheckedValue {
            value,
            repeated_key: false,
        }
    }
}

/// `text` as JSON, or `None` when it is not strict JSON (the full path says why).
pub(crate) fn parse(text: &str) -> Option<CheckedValue> {
    // A UTF-8 byte order mark is not JSON, but editors write it (see `source_map::parse`).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    serde_json::from_str(text).ok()
}

impl<'de> Deserialize<'de> for CheckedValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedValueVisitor)
    }
}

/// Builds the same `Value` as serde_json's own visitor does, noting repeated keys.
struct CheckedValueVisitor;

impl<'de> Visitor<'de> for CheckedValueVisitor {
    type Value = CheckedValue;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<CheckedValue, E> {
        Ok(CheckedValue::plain(Value::Bool(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<CheckedValue, E> {
        Ok(CheckedValue::plain(Value::Number(value.into())))
    }

    fn visit_u64<E>(self, value: u64) -> Result<CheckedValue, E> {
        Ok(CheckedValue::plain(Value::Number(value.into())))
    }

    fn visit_f64<E>(self, value: f64) -> Result<CheckedValue, E> {
        Ok(CheckedValue::plain(
            Number::from_f64(value).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, value: &str) -> Result<CheckedValue, E> {
        Ok(CheckedValue::plain(Value::String(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<CheckedValue, E> {
        Ok(CheckedValue::plain(Value::String(value)))
    }

    fn visit_unit<E>(self) -> Result<CheckedValue, E> {
        Ok(CheckedValue::plain(Value::Null))
    }

    fn visit_none<E>(self) -> Result<CheckedValue, E> {
        Ok(CheckedValue::plain(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<CheckedValue, D::Error> {
        CheckedValue::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CheckedValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut repeated_key = false;
        while let Some(item) = seq.next_element::<CheckedValue>()? {
            repeated_key |= item.repeated_key;
            items.push(item.value);
        }
        Ok(CheckedValue {
            value: Value::Array(items),
            repeated_key,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CheckedValue, A::Error> {
        let mut members = Map::new();
        let mut repeated_key = false;
        while let Some(key) = map.next_key::<String>()? {
            let member: CheckedValue = map.next_value()?;
            repeated_key |= member.repeated_key;
            repeated_key |= members.insert(key, member.value).is_some();
        }
        Ok(CheckedValue {
            value: Value::Object(members),
            repeated_key,
        })
    }
}

/// Deeper than any document serde_json parses (128 levels) plus the schema's own `$ref`s; a
/// schema that refers to itself without descending is "not sure", never a hang.
const MAX_DEPTH: usize = 512;

/// Whether `value` certainly satisfies `schema` (a draft 2020-12 document such as the one
/// `load::unified_json_schema` generates). `false` means "not sure", not "invalid".
pub(crate) fn certainly_conforms(schema: &Value, value: &Value) -> bool {
    conforms(schema, schema, value, 0)
}

fn conforms(root: &Value, schema: &Value, value: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let keywords = match schema {
        Value::Object(keywords) => keywords,
        Value::Bool(accepts) => return *accepts,
        _ => return false,
    };
    keywords
        .iter()
        .all(|(keyword, argument)| match keyword.as_str() {
            // Annotations: the validator does not check them (formats are annotations in
            // draft 2020-12 unless asked for, and `uint16`/`uint32` are not formats it knows).
            "$schema" | "$defs" | "title" | "description" | "default" | "examples" | "format"
            | "deprecated" | "readOnly" | "writeOnly" => true,
            "type" => has_type(argument, value),
            "$ref" => argument
                .as_str()
                .and_then(|reference| resolve(root, reference))
                .is_some_and(|target| conforms(root, target, value, depth + 1)),
            "properties" => match (value, argument) {
                (Value::Object(members), Value::Object(properties)) => {
                    members.iter().all(|(name, member)| {
                        properties
                            .get(name)
                            .is_none_or(|property| conforms(root, property, member, depth + 1))
                    })
                }
                (Value::Object(_), _) => false,
                _ => true,
            },
            "additionalProperties" => match (value, argument) {
                (Value::Object(_), Value::Bool(true)) => true,
                (Value::Object(members), Value::Bool(false)) => {
                    let properties = keywords.get("properties").and_then(Value::as_object);
                    !keywords.contains_key("patternProperties")
                        && members
                            .keys()
                            .all(|name| properties.is_some_and(|p| p.contains_key(name)))
                }
                (Value::Object(_), _) => false,
                _ => true,
            },
            "required" => match (value, argument) {
                (Value::Object(members), Value::Array(names)) => names
                    .iter()
                    .all(|name| name.as_str().is_some_and(|n| members.contains_key(n))),
                (Value::Object(_), _) => false,
                _ => true,
            },
            "items" => match value {
                Value::Array(items) => items
                    .iter()
                    .all(|item| conforms(root, argument, item, depth + 1)),
                _ => true,
            },
            "enum" => argument
                .as_array()
                .is_some_and(|options| options.contains(value)),
            "minimum" => bound_holds(value, argument, |order| order != Ordering::Less),
            "maximum" => bound_holds(value, argument, |order| order != Ordering::Greater),
            // A keyword this walk does not implement: the validator decides.
            _ => false,
        })
}

/// `#/$defs/Name` inside `root`.
fn resolve<'s>(root: &'s Value, reference: &str) -> Option<&'s Value> {
    let name = reference.strip_prefix("#/$defs/")?;
    root.get("$defs")?.get(name)
}

fn has_type(argument: &Value, value: &Value) -> bool {
    let is = |name: &Value| match name.as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("boolean") => value.is_boolean(),
        Some("null") => value.is_null(),
        Some("number") => value.is_number(),
        // Stricter than the validator, which also takes `5.0`: such a file goes the full way.
        Some("integer") => value.is_i64() || value.is_u64(),
        _ => false,
    };
    match argument {
        Value::Array(names) => names.iter().any(is),
        name => is(name),
    }
}

/// Whether a number `value` compares to `limit` as `holds` wants; only exact integer
/// comparisons are trusted. Bounds do not apply to other values.
fn bound_holds(value: &Value, limit: &Value, holds: impl Fn(Ordering) -> bool) -> bool {
    let Value::Number(number) = value else {
        return true;
    };
    match (as_integer(number), limit.as_number().and_then(as_integer)) {
        (Some(number), Some(limit)) => holds(number.cmp(&limit)),
        _ => false,
    }
}

fn as_integer(number: &Number) -> Option<i128> {
    number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_like_serde_json_and_notices_repeated_keys() {
        let text = r#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c": {"d": 1, "d": 2}}"#;
        let checked = parse(text).expect("JSON");
        let plain: Value = serde_json::from_str(text).expect("JSON");
        assert_eq!(checked.value, plain);
        assert!(checked.repeated_key);
        assert!(
            !parse(r#"{"a": {"b": 1}, "b": [{"a": 1}]}"#)
                .expect("JSON")
                .repeated_key
        );
        assert!(parse("{\"a\": 1,}").is_none());
        assert!(parse("\u{feff}{}").is_some());
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["port"],
            "properties": {
                "port": { "type": ["integer", "null"], "minimum": 1, "maximum": 65535 },
                "mode": { "type": "string", "enum": ["a", "b"] },
                "items": { "type": "array", "items": { "$ref": "#/$defs/Item" } }
            },
            "$defs": { "Item": { "type": "object", "properties": { "n": { "type": "boolean" } } } }
        })
    }

    #[test]
    fn accepts_only_what_certainly_conforms() {
        let schema = schema();
        let fine = [
            json!({"port": 1}),
            json!({"port": 65535, "mode": "b"}),
            json!({"port": null, "items": [{"n": true}, {"other": 1}]}),
        ];
        for value in fine {
            assert!(certainly_conforms(&schema, &value), "{value}");
        }
        let doubtful = [
            json!({}),
            json!({"port": 0}),
            json!({"port": 65536}),
            json!({"port": 80.0}),
            json!({"port": "80"}),
            json!({"port": 80, "extra": 1}),
            json!({"port": 80, "mode": "c"}),
            json!({"port": 80, "items": [{"n": 1}]}),
            json!({"port": 80, "items": {}}),
            json!([]),
        ];
        for value in doubtful {
            assert!(!certainly_conforms(&schema, &value), "{value}");
        }
    }

    #[test]
    fn unknown_keywords_and_references_are_not_trusted() {
        let value = json!("x");
        assert!(!certainly_conforms(&json!({"pattern": "^y"}), &value));
        assert!(!certainly_conforms(
            &json!({"$ref": "#/$defs/Missing"}),
            &value
        ));
        assert!(!certainly_conforms(&json!({"$ref": "#"}), &value));
        assert!(certainly_conforms(&json!({"description": "any"}), &value));
    }
}
