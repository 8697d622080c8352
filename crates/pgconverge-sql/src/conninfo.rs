//! libpq keyword/value connection strings (`host=h dbname='my db'`): quoting a value, reading
//! the pairs back, and the tokenizer that both of those and redaction are built on.

use std::collections::BTreeMap;

/// Quotes a value for a libpq `keyword=value` connection string: bare when it is made only of
/// characters that never need quoting, otherwise in single quotes with `\` and `'`
/// backslash-escaped.
pub fn quote_conninfo_value(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c));
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// A SQL expression quoting, on the server, the text value of `expression` exactly as
/// [`quote_conninfo_value`] does: for a value only a client knows (a password a psql script
/// reads from a variable), so it never has to be written down. NULL stays NULL.
pub fn quote_conninfo_value_sql(expression: &str) -> String {
    // E'\\' is one backslash, E'\\\\' two, E'\\''' a backslash and a quote.
    format!(
        r#"CASE WHEN ({expression}) ~ '^[0-9A-Za-z._/:-]+$' THEN ({expression}) ELSE '''' || replace(replace(({expression}), E'\\', E'\\\\'), '''', E'\\''') || '''' END"#
    )
}

/// The `keyword=value` pairs of a connection string, values unquoted and unescaped.
///
/// Reading stops at the first thing that is not a pair and keeps the pairs before it: the
/// strings read are the server's own (a subscription's stored conninfo), and a partial answer
/// serves a comparison better than none.
pub fn conninfo_pairs(conninfo: &str) -> BTreeMap<String, String> {
    let bytes = conninfo.as_bytes();
    let mut pairs = BTreeMap::new();
    let mut pos = skip_spaces(bytes, 0);
    while pos < bytes.len() {
        let key_start = pos;
        while pos < bytes.len() && bytes[pos] != b'=' && !bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if pos == key_start {
            break;
        }
        let Some(value_start) = value_start(bytes, pos) else {
            break;
        };
        let value_end = value_end(bytes, value_start, b"'");
        pairs.insert(
            conninfo[key_start..pos].to_string(),
            unescape_value(&conninfo[value_start..value_end]),
        );
        pos = skip_spaces(bytes, value_end);
    }
    pairs
}

pub(crate) fn skip_spaces(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
        pos += 1;
    }
    pos
}

/// Where the value of the keyword ending at `key_end` starts: past `=` and the spaces libpq
/// allows around it. `None` when no `=` follows the keyword.
pub(crate) fn value_start(bytes: &[u8], key_end: usize) -> Option<usize> {
    let equals = skip_spaces(bytes, key_end);
    (bytes.get(equals) == Some(&b'=')).then(|| skip_spaces(bytes, equals + 1))
}

/// End (exclusive) of the value starting at `start`, following libpq's rules: a value opening
/// with `quote` ends just past the first `quote` not escaped by a backslash, an unquoted value
/// at the first whitespace; a backslash escapes the next byte. `quote` is `'`, or `''` for a
/// connection string written inside an SQL literal. When the closing quote is missing the
/// value runs to the end of the text.
pub(crate) fn value_end(bytes: &[u8], start: usize, quote: &[u8]) -> usize {
    if bytes[start..].starts_with(quote) {
        let mut pos = start + quote.len();
        while pos < bytes.len() {
            if bytes[pos] == b'\\' {
                pos += 2;
            } else if bytes[pos..].starts_with(quote) {
                return pos + quote.len();
            } else {
                pos += 1;
            }
        }
        bytes.len()
    } else {
        let mut pos = start;
        while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
            pos += if bytes[pos] == b'\\' { 2 } else { 1 };
        }
        pos.min(bytes.len())
    }
}

/// The value a raw (possibly quoted) conninfo value stands for: quotes removed, each
/// backslash escape replaced by the character it escapes.
fn unescape_value(raw: &str) -> String {
    let (body, quoted) = match raw.strip_prefix('\'') {
        Some(body) => (body, true),
        None => (raw, false),
    };
    let mut value = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.extend(chars.next()),
            '\'' if quoted => break,
            c => value.push(c),
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_only_when_needed() {
        for (value, quoted) in [
            ("10.0.0.2", "10.0.0.2"),
            ("/run/pg:x_y-z", "/run/pg:x_y-z"),
            ("", "''"),
            ("app db", "'app db'"),
            ("it's \\", r"'it\'s \\'"),
        ] {
            assert_eq!(quote_conninfo_value(value), quoted, "{value}");
        }
    }

    #[test]
    fn pairs_are_read_unquoted_and_unescaped() {
        let pairs =
            conninfo_pairs(r"host=10.0.0.1 dbname='my db' user='o\'brien' password=********");
        let expected = [
            ("dbname", "my db"),
            ("host", "10.0.0.1"),
            ("password", "********"),
            ("user", "o'brien"),
        ];
        assert_eq!(
            pairs,
            BTreeMap::from(expected.map(|(k, v)| (k.into(), v.into())))
        );
    }

    #[test]
    fn backslash_escapes_in_unquoted_values_too() {
        // As libpq reads them: `a\ b` is one value holding a space.
        let pairs = conninfo_pairs(r"password=a\ b host=h");
        assert_eq!(pairs["password"], "a b");
        assert_eq!(pairs["host"], "h");
    }

    #[test]
    fn quoted_values_read_back_as_written() {
        for value in ["plain", "", "app db", "it's \\ here", "ünï cødé"] {
            let conninfo = format!("dbname={} user=u", quote_conninfo_value(value));
            let pairs = conninfo_pairs(&conninfo);
            assert_eq!(pairs["dbname"], value, "{conninfo}");
            assert_eq!(pairs["user"], "u", "{conninfo}");
        }
    }

    #[test]
    fn pairs_allow_spaces_around_equals_and_stop_at_garbage() {
        let pairs = conninfo_pairs("  host = h  port= 1 oops user=u");
        assert_eq!(pairs.len(), 2, "{pairs:?}");
        assert_eq!(pairs["host"], "h");
        assert_eq!(pairs["port"], "1");
        assert_eq!(conninfo_pairs("password=")["password"], "");
        assert!(conninfo_pairs("=x").is_empty());
        assert_eq!(
            conninfo_pairs("a='unterminated b=c")["a"],
            "unterminated b=c"
        );
    }
}
