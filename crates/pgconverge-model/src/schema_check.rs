//! Structural checks of a JSON document against the JSON Schema generated from the config
//! types: unknown and missing fields, wrong JSON types, values outside an enumeration or a
//! range. Library messages are rephrased for people.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, Validator};
use serde_json::Value;

use crate::diagnostics::Diagnostic;
use crate::source_map::{quoted, Anchor, FieldPath, Segment, SourceFile};

/// A compiled JSON Schema and the schema document itself (to list allowed fields).
pub(crate) struct StructureChecker {
    schema: Value,
    validator: Validator,
}

impl StructureChecker {
    pub(crate) fn new(schema: Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
        Ok(StructureChecker { schema, validator })
    }

    /// Whether `value` satisfies the schema, as the validator decides.
    #[cfg(test)]
    pub(crate) fn is_valid(&self, value: &Value) -> bool {
        self.validator.is_valid(value)
    }

    /// Every structural problem of `value`, located in `file`.
    pub(crate) fn check(&self, file: &SourceFile, value: &Value) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        // A missing field that an unknown field's "did you mean" already names is one
        // problem, not two: keep only the unknown field's diagnostic.
        let mut suggested: Vec<FieldPath> = Vec::new();
        let mut missing: Vec<(FieldPath, Diagnostic)> = Vec::new();
        for error in self.validator.iter_errors(value) {
            let path = FieldPath::from_pointer(error.instance_path.as_str(), value);
            let instance = error.instance.as_ref();
            match &error.kind {
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    let allowed = self.allowed_fields(value, &path);
                    for key in unexpected {
                        let suggestion = closest(key, &allowed);
                        if let Some(field) = suggestion {
                            suggested.push(path.key(field));
                        }
                        out.push(file.diagnostic(
                            &path.key(key),
                            Anchor::Key,
                            unknown_field_message(key, suggestion, &allowed),
                        ));
                    }
                }
                ValidationErrorKind::Required { property } => {
                    let name = property.as_str().unwrap_or_default();
                    let field = path.key(name);
                    let diagnostic = file.diagnostic(
                        &field,
                        Anchor::Value,
                        format!("missing required field {}", quoted(name)),
                    );
                    missing.push((field, diagnostic));
                }
                ValidationErrorKind::Type { kind } => {
                    out.push(file.diagnostic(
                        &path,
                        Anchor::Value,
                        format!(
                            "expected {}, found {}",
                            expected_types(kind),
                            describe(instance)
                        ),
                    ));
                }
                ValidationErrorKind::Enum { options } => {
                    out.push(file.diagnostic(
                        &path,
                        Anchor::Value,
                        enum_message(&path, instance, options),
                    ));
                }
                ValidationErrorKind::Minimum { limit } => {
                    out.push(file.diagnostic(
                        &path,
                        Anchor::Value,
                        minimum_message(&path, instance, limit),
                    ));
                }
                ValidationErrorKind::Maximum { limit } => {
                    let message = if is_port(&path) {
                        format!(
                            "{} is not a valid port: ports go from 1 to 65535",
                            describe(instance)
                        )
                    } else {
                        format!(
                            "{} is too large: the maximum is {limit}",
                            describe(instance)
                        )
                    };
                    out.push(file.diagnostic(&path, Anchor::Value, message));
                }
                ValidationErrorKind::MinItems { limit } => {
                    out.push(file.diagnostic(
                        &path,
                        Anchor::Value,
                        format!("needs at least {limit} item{}", plural(*limit)),
                    ));
                }
                ValidationErrorKind::MaxItems { limit } => {
                    out.push(file.diagnostic(
                        &path,
                        Anchor::Value,
                        format!("allows at most {limit} item{}", plural(*limit)),
                    ));
                }
                ValidationErrorKind::MinLength { limit } => {
                    out.push(file.diagnostic(
                        &path,
                        Anchor::Value,
                        format!("must be at least {limit} character{} long", plural(*limit)),
                    ));
                }
                ValidationErrorKind::MaxLength { limit } => {
                    out.push(file.diagnostic(
                        &path,
                        Anchor::Value,
                        format!("must be at most {limit} character{} long", plural(*limit)),
                    ));
                }
                ValidationErrorKind::AnyOf | ValidationErrorKind::OneOfNotValid => {
                    let expected = self
                        .schema_at(value, &path)
                        .map(|s| expected_from_schema(&self.schema, s))
                        .unwrap_or_else(|| "a different value".to_string());
                    out.push(file.diagnostic(
                        &path,
                        Anchor::Value,
                        format!("expected {expected}, found {}", describe(instance)),
                    ));
                }
                _ => {
                    out.push(file.diagnostic(&path, Anchor::Value, error.to_string()));
                }
            }
        }
        out.extend(
            missing
                .into_iter()
                .filter(|(field, _)| !suggested.contains(field))
                .map(|(_, d)| d),
        );
        out
    }

    /// Field names the schema allows for the object at `path`.
    fn allowed_fields(&self, value: &Value, path: &FieldPath) -> Vec<String> {
        self.schema_at(value, path)
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|props| props.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The (resolved) sub-schema that describes the value at `path`.
    fn schema_at(&self, value: &Value, path: &FieldPath) -> Option<&Value> {
        let mut schema = resolve(&self.schema, &self.schema);
        let mut current = value;
        for step in path.segments() {
            match step {
                Segment::Key(key) => {
                    current = current.get(key)?;
                    schema = schema
                        .get("properties")
                        .and_then(|p| p.get(key))
                        .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))?;
                }
                Segment::Index(i) => {
                    current = current.get(*i)?;
                    schema = schema.get("items")?;
                }
            }
            schema = resolve(&self.schema, schema);
        }
        Some(schema)
    }
}

/// Structural diagnostics, or one saying the schema itself is broken (a bug, never input).
pub(crate) fn check_structure(
    checker: &Result<StructureChecker, String>,
    file: &SourceFile,
    value: &Value,
) -> Vec<Diagnostic> {
    match checker {
        Ok(checker) => checker.check(file, value),
        Err(e) => vec![file.diagnostic(
            &FieldPath::root(),
            Anchor::Value,
            format!("internal error: the configuration schema does not compile: {e}"),
        )],
    }
}

/// Follows `$ref`s into `$defs`, and steps into the non-null branch of an `Option`'s
/// `anyOf`.
fn resolve<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..16 {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let Some(name) = reference.strip_prefix("#/$defs/") else {
                break;
            };
            match root.get("$defs").and_then(|d| d.get(name)) {
                Some(target) => schema = target,
                None => break,
            }
        } else if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
            let non_null: Vec<&Value> = branches
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            match non_null.as_slice() {
                [only] => schema = only,
                _ => break,
            }
        } else {
            break;
        }
    }
    schema
}

fn expected_from_schema(root: &Value, schema: &Value) -> String {
    let schema = resolve(root, schema);
    let names: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let described: Vec<&str> = names
        .iter()
        .filter(|n| **n != "null")
        .map(|n| type_name(n))
        .collect();
    if described.is_empty() {
        "a different value".to_string()
    } else {
        described.join(" or ")
    }
}

fn type_name(json_type: &str) -> &'static str {
    match json_type {
        "array" => "an array",
        "boolean" => "true or false",
        "integer" => "a whole number",
        "number" => "a number",
        "object" => "an object",
        "string" => "a string",
        _ => "null",
    }
}

fn json_type_name(t: JsonType) -> &'static str {
    match t {
        JsonType::Array => "an array",
        JsonType::Boolean => "true or false",
        JsonType::Integer => "a whole number",
        JsonType::Null => "null",
        JsonType::Number => "a number",
        JsonType::Object => "an object",
        JsonType::String => "a string",
    }
}

fn expected_types(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(t) => json_type_name(*t).to_string(),
        TypeKind::Multiple(set) => {
            let names: Vec<&str> = set
                .iter()
                .filter(|t| *t != JsonType::Null)
                .map(json_type_name)
                .collect();
            if names.is_empty() {
                "null".to_string()
            } else {
                names.join(" or ")
            }
        }
    }
}

/// A value as a message shows it: `null`, `true`, the number `5`, the string "x".
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "`null`".to_string(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let shown: String = s.chars().take(60).collect();
            let ellipsis = if shown.len() < s.len() { "…" } else { "" };
            let json = serde_json::to_string(&shown).unwrap_or_default();
            format!("the string {json}{ellipsis}")
        }
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

fn is_port(path: &FieldPath) -> bool {
    matches!(path.last_key(), Some("port") | Some("peer_port"))
}

fn minimum_message(path: &FieldPath, instance: &Value, limit: &Value) -> String {
    if is_port(path) {
        let hint = if path.last_key() == Some("port") {
            " (leave the field out for the default 5432)"
        } else {
            " (leave the field out to use `port`)"
        };
        format!(
            "{} is not a valid port: ports go from 1 to 65535{hint}",
            describe(instance)
        )
    } else {
        format!(
            "{} is too small: the minimum is {limit}",
            describe(instance)
        )
    }
}

fn enum_message(path: &FieldPath, instance: &Value, options: &Value) -> String {
    let choices: Vec<String> = options
        .as_array()
        .map(|opts| {
            opts.iter()
                .filter(|o| !o.is_null())
                .map(|o| match o {
                    Value::String(s) => format!("`{s}`"),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let what = match path.last_key() {
        Some("policy") => "conflict policy",
        Some("sslmode") => "sslmode",
        Some("on_delete") => "ON DELETE action",
        Some("identity") => "identity kind",
        _ => "value",
    };
    let shown = match instance {
        Value::String(s) => quoted(s),
        other => describe(other),
    };
    match choices.as_slice() {
        [one] => format!("unknown {what} {shown}; the only one supported is {one}"),
        _ => format!(
            "unknown {what} {shown}; expected one of {}",
            choices.join(", ")
        ),
    }
}

fn unknown_field_message(key: &str, suggestion: Option<&str>, allowed: &[String]) -> String {
    let mut message = format!("unknown field {}", quoted(key));
    if let Some(suggestion) = suggestion {
        message.push_str(&format!("; did you mean `{suggestion}`?"));
    } else if !allowed.is_empty() {
        let list: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
        message.push_str(&format!("; expected one of {}", list.join(", ")));
    }
    message
}

/// Names people write for a field from habit (other tools, the other config format).
const ALIASES: &[(&str, &str)] = &[
    ("database", "db"),
    ("dbname", "db"),
    ("username", "user"),
    ("role", "user"),
    ("pk", "primary_key"),
    ("primary", "primary_key"),
    ("primary_key", "primary"),
    ("data_type", "type"),
    ("type", "data_type"),
    ("not_null", "nullable"),
    ("null", "nullable"),
];

/// The allowed name a mistyped one most likely meant: a known alias, a close spelling, or
/// a name it abbreviates.
pub(crate) fn closest<'a>(typed: &str, allowed: &'a [String]) -> Option<&'a str> {
    let typed_lower = typed.to_lowercase();
    let find = |name: &str| {
        allowed
            .iter()
            .find(|a| a.as_str() == name)
            .map(String::as_str)
    };
    if let Some(alias) = ALIASES
        .iter()
        .filter(|(from, _)| *from == typed_lower)
        .find_map(|(_, to)| find(to))
    {
        return Some(alias);
    }
    let by_spelling = allowed
        .iter()
        .map(|a| (edit_distance(&typed_lower, a), a))
        .filter(|(d, a)| *d <= (a.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.as_str());
    by_spelling.or_else(|| {
        let mut prefixed = allowed
            .iter()
            .filter(|a| typed_lower.len() >= 3 && a.starts_with(typed_lower.as_str()));
        match (prefixed.next(), prefixed.next()) {
            (Some(only), None) => Some(only.as_str()),
            _ => None,
        }
    })
}

/// Edit distance counting an adjacent transposition (`nmae`) as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_suggestions() {
        let allowed: Vec<String> = ["name", "host", "port", "password_env"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(closest("nmae", &allowed), Some("name"));
        assert_eq!(closest("Host", &allowed), Some("host"));
        assert_eq!(closest("password_var", &allowed), Some("password_env"));
        assert_eq!(closest("colour", &allowed), None);
        assert_eq!(closest("database", &["db".to_string()]), Some("db"));
        assert_eq!(closest("pass", &allowed), Some("password_env"));
    }

    #[test]
    fn values_are_described_briefly() {
        assert_eq!(describe(&Value::Null), "`null`");
        assert_eq!(describe(&serde_json::json!("5432")), "the string \"5432\"");
        assert_eq!(describe(&serde_json::json!(12)), "the number 12");
        let long = "x".repeat(100);
        assert!(describe(&serde_json::json!(long)).ends_with('…'));
    }
}
