//! Loading never panics, whatever the input: truncated fixtures, random edits of their
//! text, random changes to their JSON values, random bytes and absurd nesting. Every
//! refusal carries at least one diagnostic.

use std::path::PathBuf;

use pgconverge_model::{load_legacy, load_unified, ConfigSource};
use serde_json::{json, Value};

/// Small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Every fixture file's text, grouped as loadable cases: (unified text) or (nodes, schema).
fn fixture_texts() -> Vec<Vec<(String, String)>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let mut cases = Vec::new();
    for kind in ["valid", "invalid"] {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join(kind))
            .expect("fixtures exist")
            .map(|e| e.expect("entry").path())
            .collect();
        dirs.sort();
        for dir in dirs {
            let mut files = Vec::new();
            for name in ["pgconverge.json", "nodes.json", "schema.json"] {
                if let Ok(text) = std::fs::read_to_string(dir.join(name)) {
                    files.push((name.to_string(), text));
                }
            }
            cases.push(files);
        }
    }
    cases
}

fn load(files: &[(String, String)]) {
    let result = match files {
        [(name, text)] => load_unified(&ConfigSource::new(name.clone(), text.clone())),
        [(n, nodes), (s, schema)] => load_legacy(
            &ConfigSource::new(n.clone(), nodes.clone()),
            &ConfigSource::new(s.clone(), schema.clone()),
        ),
        _ => return,
    };
    if let Err(diagnostics) = result {
        assert!(!diagnostics.0.is_empty(), "a refusal without a diagnostic");
    }
}

/// Also feeds each text to the other format, where its shape is all wrong.
fn load_everywhere(text: &str) {
    let _ = load_unified(&ConfigSource::new("pgconverge.json", text));
    let _ = load_legacy(
        &ConfigSource::new("nodes.json", text),
        &ConfigSource::new("schema.json", text),
    );
}

fn char_boundaries(text: &str) -> Vec<usize> {
    text.char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect()
}

#[test]
fn truncated_fixtures_do_not_panic() {
    for case in fixture_texts() {
        for (i, (_, text)) in case.iter().enumerate() {
            let bounds = char_boundaries(text);
            for cut in bounds.iter().step_by(5) {
                let mut files = case.clone();
                files[i].1 = text[..*cut].to_string();
                load(&files);
            }
        }
    }
}

#[test]
fn randomly_edited_text_does_not_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let pieces = [
        "{", "}", "[", "]", "\"", ":", ",", "0", "-1", "1e999", "null", "true", " ", "\n", "\\",
        "\\u00e9", "é", "\u{feff}", "//", "/*", "'", "nodes", "serial", "_pgc_", "\"\"",
    ];
    for case in fixture_texts() {
        for _ in 0..12 {
            let mut files = case.clone();
            let i = rng.below(files.len());
            let text = &files[i].1;
            let bounds = char_boundaries(text);
            let at = bounds[rng.below(bounds.len())];
            let end = bounds
                .iter()
                .copied()
                .find(|b| *b >= at + rng.below(4))
                .unwrap_or(text.len());
            let piece = pieces[rng.below(pieces.len())];
            files[i].1 = format!("{}{}{}", &text[..at], piece, &text[end..]);
            load(&files);
        }
    }
}

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.below(70_000) as i64 - 5),
        3 => json!(""),
        4 => json!(
            [
                "id",
                "serial",
                "users",
                "node_a",
                &"x".repeat(70),
                "Node A",
                "_pgc_x",
                "int"
            ][rng.below(8)]
        ),
        5 => json!(1.5),
        6 => Value::Array(
            (0..rng.below(3))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let keys = [
                "name",
                "type",
                "columns",
                "primary_key",
                "table",
                "port",
                "data_type",
            ];
            let mut map = serde_json::Map::new();
            for _ in 0..rng.below(3) {
                map.insert(
                    keys[rng.below(keys.len())].to_string(),
                    random_value(rng, depth + 1),
                );
            }
            Value::Object(map)
        }
    }
}

/// Replaces, removes or duplicates one randomly chosen part of `value`.
fn mutate(value: &mut Value, rng: &mut Rng, depth: usize) {
    let descend = depth < 6 && rng.below(4) != 0;
    match value {
        Value::Object(map) if descend && !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = &keys[rng.below(keys.len())];
            match rng.below(6) {
                0 => {
                    map.remove(key);
                }
                1 => {
                    let v = random_value(rng, depth);
                    map.insert(key.clone(), v);
                }
                _ => {
                    if let Some(child) = map.get_mut(key) {
                        mutate(child, rng, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) if descend && !items.is_empty() => {
            let i = rng.below(items.len());
            match rng.below(6) {
                0 => {
                    items.remove(i);
                }
                1 => {
                    let copy = items[i].clone();
                    items.push(copy);
                }
                _ => mutate(&mut items[i], rng, depth + 1),
            }
        }
        other => *other = random_value(rng, depth),
    }
}

#[test]
fn randomly_changed_values_do_not_panic() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for case in fixture_texts() {
        let Ok(values) = case
            .iter()
            .map(|(_, text)| serde_json::from_str::<Value>(text))
            .collect::<Result<Vec<_>, _>>()
        else {
            continue;
        };
        for _ in 0..40 {
            let mut files = case.clone();
            let i = rng.below(files.len());
            let mut value = values[i].clone();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut value, &mut rng, 0);
            }
            files[i].1 = serde_json::to_string_pretty(&value).expect("serialises");
            load(&files);
        }
    }
}

#[test]
fn random_bytes_and_deep_nesting_do_not_panic() {
    let mut rng = Rng(42);
    for _ in 0..300 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
        load_everywhere(&String::from_utf8_lossy(&bytes));
    }
    load_everywhere(&"[".repeat(100_000));
    load_everywhere(&format!("{}{}", "[".repeat(127), "]".repeat(127)));
    load_everywhere(&format!("{}1{}", "{\"a\":".repeat(120), "}".repeat(120)));
    load_everywhere("");
    load_everywhere("   \n\t ");
    load_everywhere("\u{feff}");
    load_everywhere("null");
    load_everywhere("\"\\ud800\"");
    load_everywhere("{\"nodes\": [{\"name\": \"a\", \"host\": \"h\", \"db\": \"d\", \"user\": \"u\", \"port\": 5432.0}], \"tables\": []}");
}
