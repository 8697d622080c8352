//! JSON text parsed twice: strictly into a `serde_json::Value`, and into a syntax tree that
//! remembers where every key and value starts, so each problem can name its line and column.

use std::collections::HashMap;
use std::fmt;

use jsonc_parser::ast::{ObjectPropName, Value as AstValue};
use jsonc_parser::{CollectOptions, ParseOptions};
use serde_json::Value;

use crate::diagnostics::Diagnostic;

/// A configuration file's name (as the user gave it, used in diagnostics) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSource {
    pub path: String,
    pub text: String,
}

impl ConfigSource {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        ConfigSource {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// Where a value sits in a JSON document, e.g. `tables[2].columns[0].type`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FieldPath(Vec<Segment>);

impl FieldPath {
    pub(crate) fn root() -> Self {
        FieldPath(Vec::new())
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_string()));
        FieldPath(segments)
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        FieldPath(segments)
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub(crate) fn parent(&self) -> Option<Self> {
        let (_, rest) = self.0.split_last()?;
        Some(FieldPath(rest.to_vec()))
    }

    pub(crate) fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// RFC 6901 JSON pointer, the key of [`SourceFile`]'s position table.
    pub(crate) fn pointer(&self) -> String {
        let mut out = String::new();
        for segment in &self.0 {
            out.push('/');
            match segment {
                Segment::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
                Segment::Index(i) => out.push_str(&i.to_string()),
            }
        }
        out
    }

    /// The path a JSON pointer names inside `value`; numeric steps are array indexes only
    /// where the value there is an array (an object key may be `"0"`).
    pub(crate) fn from_pointer(pointer: &str, value: &Value) -> Self {
        let mut segments = Vec::new();
        let mut current = Some(value);
        for raw in pointer.split('/').skip(1) {
            let step = raw.replace("~1", "/").replace("~0", "~");
            match current {
                Some(Value::Array(items)) => match step.parse::<usize>() {
                    Ok(i) => {
                        current = items.get(i);
                        segments.push(Segment::Index(i));
                    }
                    Err(_) => {
                        current = None;
                        segments.push(Segment::Key(step));
                    }
                },
                Some(Value::Object(map)) => {
                    current = map.get(&step);
                    segments.push(Segment::Key(step));
                }
                _ => {
                    current = None;
                    segments.push(Segment::Key(step));
                }
            }
        }
        FieldPath(segments)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Segment::Key(k) => {
                    let quoted = serde_json::to_string(k).map_err(|_| fmt::Error)?;
                    write!(f, "[{quoted}]")?;
                }
            }
        }
        Ok(())
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// Where a key and its value start, as byte offsets into the text.
#[derive(Debug, Clone, Copy)]
struct Position {
    value: usize,
    key: Option<usize>,
}

/// Which part of a member a diagnostic points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// The value (or, for a missing field, the object that should hold it).
    Value,
    /// The key of an object member, e.g. an unknown field's name.
    Key,
}

/// A parsed configuration file: its name, text and the position of every JSON value.
#[derive(Debug)]
pub(crate) struct SourceFile {
    pub(crate) path: String,
    text: String,
    line_starts: Vec<usize>,
    positions: HashMap<String, Position>,
}

/// Result of reading one file.
pub(crate) struct ParsedFile {
    pub(crate) file: SourceFile,
    pub(crate) value: Value,
    /// Keys repeated within one object; the later value wins in `value`.
    pub(crate) duplicate_keys: Vec<Diagnostic>,
}

impl ParsedFile {
    /// Stands in for a file that is not valid JSON: no value, no positions.
    pub(crate) fn unparsed(path: &str) -> Self {
        ParsedFile {
            file: SourceFile {
                path: path.to_string(),
                text: String::new(),
                line_starts: vec![0],
                positions: HashMap::new(),
            },
            value: Value::Null,
            duplicate_keys: Vec::new(),
        }
    }
}

/// Parses `source` as strict JSON. A syntax error yields the one diagnostic worth showing.
pub(crate) fn parse(source: &ConfigSource) -> Result<ParsedFile, Diagnostic> {
    // A UTF-8 byte order mark is not JSON, but editors write it; a space keeps columns.
    let text = match source.text.strip_prefix('\u{feff}') {
        Some(rest) => format!(" {rest}"),
        None => source.text.clone(),
    };
    let mut file = SourceFile {
        path: source.path.clone(),
        line_starts: line_starts(&text),
        text,
        positions: HashMap::new(),
    };
    let value: Value = match serde_json::from_str(&file.text) {
        Ok(v) => v,
        Err(e) => return Err(syntax_diagnostic(&file, &e)),
    };
    let mut duplicate_keys = Vec::new();
    let strict = ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
    };
    // serde_json accepted the text, so this strict parse succeeds too; if it ever did not,
    // diagnostics would only lose their positions.
    if let Ok(parsed) = jsonc_parser::parse_to_ast(&file.text, &CollectOptions::default(), &strict)
    {
        if let Some(root) = &parsed.value {
            let mut positions = HashMap::new();
            index_value(
                root,
                &FieldPath::root(),
                None,
                &mut positions,
                &file,
                &mut duplicate_keys,
            );
            file.positions = positions;
        }
    }
    Ok(ParsedFile {
        file,
        value,
        duplicate_keys,
    })
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

fn index_value(
    value: &AstValue<'_>,
    path: &FieldPath,
    key: Option<usize>,
    positions: &mut HashMap<String, Position>,
    file: &SourceFile,
    duplicates: &mut Vec<Diagnostic>,
) {
    let start = match value {
        AstValue::StringLit(v) => v.range.start,
        AstValue::NumberLit(v) => v.range.start,
        AstValue::BooleanLit(v) => v.range.start,
        AstValue::NullKeyword(v) => v.range.start,
        AstValue::Object(v) => v.range.start,
        AstValue::Array(v) => v.range.start,
    };
    positions.insert(path.pointer(), Position { value: start, key });
    match value {
        AstValue::Object(object) => {
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for prop in &object.properties {
                let (name, key_start) = match &prop.name {
                    ObjectPropName::String(s) => (s.value.as_ref(), s.range.start),
                    ObjectPropName::Word(w) => (w.value, w.range.start),
                };
                if let Some(first) = seen.insert(name, key_start) {
                    let (first_line, _) = file.line_col(first);
                    duplicates.push(file.diagnostic_at(
                        key_start,
                        &path.key(name),
                        format!(
                            "duplicate key {}: it already appears on line {first_line}, and only the last value would be used",
                            quoted(name)
                        ),
                    ));
                }
                index_value(
                    &prop.value,
                    &path.key(name),
                    Some(key_start),
                    positions,
                    file,
                    duplicates,
                );
            }
        }
        AstValue::Array(array) => {
            for (i, element) in array.elements.iter().enumerate() {
                index_value(element, &path.index(i), None, positions, file, duplicates);
            }
        }
        _ => {}
    }
}

impl SourceFile {
    /// 1-based line and column (in characters) of a byte offset.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line_index = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let line_start = self.line_starts.get(line_index).copied().unwrap_or(0);
        let column = self
            .text
            .get(line_start..offset)
            .map_or(0, |prefix| prefix.chars().count());
        (line_index + 1, column + 1)
    }

    fn diagnostic_at(&self, offset: usize, field: &FieldPath, message: String) -> Diagnostic {
        let (line, column) = self.line_col(offset);
        Diagnostic {
            file: self.path.clone(),
            line,
            column,
            field: field.to_string(),
            message,
        }
    }

    /// A diagnostic for `field`, placed at its key or value; a field that is not in the
    /// file (missing, or added by a conversion) is placed at its nearest enclosing value.
    pub(crate) fn diagnostic(
        &self,
        field: &FieldPath,
        anchor: Anchor,
        message: String,
    ) -> Diagnostic {
        let mut probe = Some(field.clone());
        let mut exact = true;
        while let Some(path) = probe {
            if let Some(position) = self.positions.get(&path.pointer()) {
                let offset = match (anchor, position.key, exact) {
                    (Anchor::Key, Some(key), true) => key,
                    _ => position.value,
                };
                return self.diagnostic_at(offset, field, message);
            }
            probe = path.parent();
            exact = false;
        }
        Diagnostic {
            file: self.path.clone(),
            line: 0,
            column: 0,
            field: field.to_string(),
            message,
        }
    }
}

/// `name` in backticks for messages; control characters and backticks escaped.
pub(crate) fn quoted(name: &str) -> String {
    if name
        .chars()
        .all(|c| !c.is_control() && c != '`' && c != '\u{feff}')
        && !name.is_empty()
    {
        format!("`{name}`")
    } else {
        serde_json::to_string(name).unwrap_or_else(|_| format!("{name:?}"))
    }
}

/// A serde_json syntax error, rephrased, at serde_json's line and column.
fn syntax_diagnostic(file: &SourceFile, error: &serde_json::Error) -> Diagnostic {
    let line = error.line().max(1);
    // serde_json counts columns in bytes; convert to characters like every other position.
    let line_start = file.line_starts.get(line - 1).copied().unwrap_or(0);
    let line_text = file.text.get(line_start..).unwrap_or("");
    let line_text = line_text.split('\n').next().unwrap_or("");
    let byte_column = error.column().min(line_text.len());
    let mut boundary = byte_column;
    while !line_text.is_char_boundary(boundary) {
        boundary -= 1;
    }
    let column = line_text[..boundary].chars().count().max(1);
    let offending = line_text[..boundary].chars().last();
    let raw = error.to_string();
    let message = raw
        .rsplit_once(" at line ")
        .map_or(raw.as_str(), |(m, _)| m);
    let whole_file_blank = file.text.trim().is_empty();
    let text = match message {
        _ if whole_file_blank => "the file is empty; it must contain a JSON document".to_string(),
        _ if offending == Some('/') => "comments are not allowed in JSON".to_string(),
        "EOF while parsing a value" => "the file ends where a value was expected".to_string(),
        "EOF while parsing an object" => {
            "the file ends inside an object: a closing `}` is missing".to_string()
        }
        "EOF while parsing a list" => "the file ends inside an array: a closing `]` is missing".to_string(),
        "EOF while parsing a string" => {
            "the file ends inside a string: a closing `\"` is missing".to_string()
        }
        "expected value" if offending == Some('\'') => {
            "strings must be in double quotes (\"…\"), not single quotes".to_string()
        }
        "expected value" => {
            "expected a JSON value (a string, number, object, array, true, false or null)".to_string()
        }
        "key must be a string" => "object keys must be strings in double quotes".to_string(),
        "expected `,` or `}`" => "expected `,` or `}` after this object member".to_string(),
        "expected `,` or `]`" => "expected `,` or `]` after this array element".to_string(),
        "expected `:`" => "expected `:` after the object key".to_string(),
        "trailing comma" => "trailing commas are not allowed in JSON".to_string(),
        "trailing characters" => "unexpected text after the end of the JSON document".to_string(),
        "expected ident" => "unknown word: expected `true`, `false` or `null`".to_string(),
        "invalid number" => "invalid number".to_string(),
        "number out of range" => "number is out of range".to_string(),
        "invalid escape" => "invalid escape sequence in string".to_string(),
        "invalid unicode code point"
        | "lone leading surrogate in hex escape"
        | "unexpected end of hex escape" => "invalid \\u escape in string".to_string(),
        "recursion limit exceeded" => "the JSON is nested too deeply (more than 128 levels)".to_string(),
        m if m.starts_with("control character") => {
            "strings must not contain raw control characters such as line breaks or tabs; write them as \\n or \\t".to_string()
        }
        m => format!("invalid JSON: {m}"),
    };
    Diagnostic {
        file: file.path.clone(),
        line,
        column,
        field: String::new(),
        message: text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> ConfigSource {
        ConfigSource {
            path: "c.json".into(),
            text: text.into(),
        }
    }

    #[test]
    fn paths_render_like_field_accessors() {
        let p = FieldPath::root()
            .key("tables")
            .index(2)
            .key("columns")
            .index(0)
            .key("type");
        assert_eq!(p.to_string(), "tables[2].columns[0].type");
        assert_eq!(p.pointer(), "/tables/2/columns/0/type");
        let legacy = FieldPath::root().index(1).key("port");
        assert_eq!(legacy.to_string(), "[1].port");
        let odd = FieldPath::root().key("order-items").key("a/b");
        assert_eq!(odd.to_string(), "[\"order-items\"][\"a/b\"]");
        assert_eq!(odd.pointer(), "/order-items/a~1b");
    }

    #[test]
    fn pointers_resolve_against_the_value() {
        let value: Value = serde_json::from_str(r#"{"0": [{"a/b": 1}]}"#).expect("json");
        let p = FieldPath::from_pointer("/0/0/a~1b", &value);
        assert_eq!(p, FieldPath::root().key("0").index(0).key("a/b"));
    }

    #[test]
    fn positions_of_values_and_keys() {
        let parsed = parse(&source(
            "{\n  \"nodes\": [\n    {\"name\": \"é\", \"port\": 0}\n  ]\n}",
        ))
        .map_err(|d| d.to_string())
        .expect("parses");
        let port = FieldPath::root().key("nodes").index(0).key("port");
        let d = parsed.file.diagnostic(&port, Anchor::Value, "m".into());
        assert_eq!((d.line, d.column), (3, 27));
        let d = parsed.file.diagnostic(&port, Anchor::Key, "m".into());
        assert_eq!((d.line, d.column), (3, 19));
        // A missing field is placed at the object that should hold it.
        let host = FieldPath::root().key("nodes").index(0).key("host");
        let d = parsed.file.diagnostic(&host, Anchor::Key, "m".into());
        assert_eq!((d.line, d.column), (3, 5));
        assert_eq!(d.field, "nodes[0].host");
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let parsed = parse(&source("{\"a\": 1,\n \"a\": 2}"))
            .map_err(|d| d.to_string())
            .expect("parses");
        assert_eq!(parsed.duplicate_keys.len(), 1);
        let d = &parsed.duplicate_keys[0];
        assert_eq!((d.line, d.column), (2, 2));
        assert!(d.message.contains("line 1"), "{}", d.message);
    }

    #[test]
    fn syntax_errors_are_rephrased() {
        let cases = [
            ("", "the file is empty; it must contain a JSON document"),
            ("{\"a\": 1,}", "trailing commas are not allowed in JSON"),
            ("{\"a\": 1 // x\n}", "comments are not allowed in JSON"),
            (
                "{\"a\": 1 \"b\": 2}",
                "expected `,` or `}` after this object member",
            ),
            ("[1, // x\n2]", "comments are not allowed in JSON"),
            ("{'a': 1}", "object keys must be strings in double quotes"),
            (
                "[1",
                "the file ends inside an array: a closing `]` is missing",
            ),
            ("{} x", "unexpected text after the end of the JSON document"),
        ];
        for (text, expected) in cases {
            let Err(d) = parse(&source(text)) else {
                panic!("{text:?} parsed");
            };
            assert_eq!(d.message, expected, "{text:?}");
            assert!(d.line >= 1 && d.column >= 1, "{text:?}: {d}");
        }
    }

    #[test]
    fn syntax_error_columns_count_characters() {
        let Err(d) = parse(&source("{\"é\": tru}")) else {
            panic!("parsed");
        };
        assert_eq!((d.line, d.column), (1, 10));
    }

    #[test]
    fn byte_order_mark_is_tolerated() {
        let parsed = parse(&source("\u{feff}{\"a\": 1}"))
            .map_err(|d| d.to_string())
            .expect("parses");
        let d = parsed
            .file
            .diagnostic(&FieldPath::root().key("a"), Anchor::Value, "m".into());
        assert_eq!((d.line, d.column), (1, 8));
    }
}
