//! Decoding of escape string literals (`E'…'`) into the standard literals PostgreSQL prints,
//! so an expression as written compares equal to the same expression as the server shows it.

/// An escape string literal (`E'a\nb'`, `e'…'`) as the standard literal PostgreSQL prints
/// for the same value (`'a` newline `b'`), quotes inside doubled.
///
/// Anything that is not a whole escape string is returned as it is. An escape string using
/// an escape this does not decode (`\x41`, `\u00e9`, octal) is returned as written, with a
/// capital `E`.
pub fn standard_string(literal: &str) -> String {
    let Some(body) = literal
        .strip_prefix(['e', 'E'])
        .and_then(|l| l.strip_prefix('\''))
        .and_then(|l| l.strip_suffix('\''))
    else {
        return literal.to_string();
    };
    let mut decoded = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        let plain = match c {
            '\'' => {
                // A doubled quote inside the literal is one quote character.
                chars.next_if_eq(&'\'');
                '\''
            }
            '\\' => match chars.next() {
                Some('n') => '\n',
                Some('t') => '\t',
                Some('r') => '\r',
                Some('b') => '\u{8}',
                Some('f') => '\u{c}',
                Some(q @ ('\\' | '\'')) => q,
                _ => return format!("E{}", &literal[1..]),
            },
            other => other,
        };
        // Quotes stay doubled, as in a standard string literal.
        if plain == '\'' {
            decoded.push('\'');
        }
        decoded.push(plain);
    }
    format!("'{decoded}'")
}

/// `sql` with every escape string literal in it rewritten by [`standard_string`]. Standard
/// literals, quoted identifiers and everything else are kept as they are.
pub fn standard_string_literals(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    let mut previous: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        // An `E` right after a name or a quoted identifier is part of it, not a prefix.
        let escape_string = matches!(c, 'e' | 'E')
            && rest[1..].starts_with('\'')
            && !previous.is_some_and(|p| p.is_alphanumeric() || "_$\"".contains(p));
        let token_len = match c {
            _ if escape_string => 1 + quoted_len(&rest[1..], '\'', true),
            '\'' | '"' => quoted_len(rest, c, false),
            _ => c.len_utf8(),
        };
        let (token, after) = rest.split_at(token_len);
        if escape_string {
            out.push_str(&standard_string(token));
        } else {
            out.push_str(token);
        }
        previous = token.chars().last();
        rest = after;
    }
    out
}

/// Byte length of the quoted token at the start of `text` (which opens with `quote`), its
/// closing quote included: a doubled quote stands for one, and with `backslash_escapes` a
/// backslash escapes the next character. A token never closed runs to the end of `text`.
fn quoted_len(text: &str, quote: char, backslash_escapes: bool) -> usize {
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((at, c)) = chars.next() {
        if backslash_escapes && c == '\\' {
            chars.next();
        } else if c == quote && chars.next_if(|&(_, next)| next == quote).is_none() {
            return at + quote.len_utf8();
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quote_literal;

    /// Each literal as written and as `standard_string` gives it back.
    const DECODED: &[(&str, &str)] = &[
        (r"E'a\nb'", "'a\nb'"),
        (r"e'it\'s'", "'it''s'"),
        ("E'it''s'", "'it''s'"),
        (r"E'a\\b'", r"'a\b'"),
        (r"E'\t\r\b\f'", "'\t\r\u{8}\u{c}'"),
        // Escapes not decoded, and anything but a whole escape string, stay as written.
        (r"e'\x41'", r"E'\x41'"),
        ("'plain'", "'plain'"),
        ("E'unterminated", "E'unterminated"),
        (r"e'\", r"e'\"),
    ];

    #[test]
    fn escape_strings_become_the_standard_literal_postgres_prints() {
        for (written, standard) in DECODED {
            assert_eq!(standard_string(written), *standard, "{written}");
        }
    }

    #[test]
    fn quote_literal_output_reads_back_as_the_standard_spelling() {
        for value in ["a\\b", "it's \\ here", "\"public\".\"a\\b\"", "plain"] {
            let quoted = quote_literal(value);
            assert_eq!(
                standard_string(&quoted),
                format!("'{}'", value.replace('\'', "''")),
                "{quoted}"
            );
        }
    }

    #[test]
    fn only_escape_strings_in_an_expression_are_rewritten() {
        assert_eq!(
            standard_string_literals("new.tbl = E'\"public\".\"a\\\\b\"'"),
            "new.tbl = '\"public\".\"a\\b\"'"
        );
        assert_eq!(
            standard_string_literals("x = E'it''s \\\\ here' OR y = E'\\n'"),
            "x = 'it''s \\ here' OR y = '\n'"
        );
        // An E ending a name, inside a standard literal or inside a quoted identifier stays.
        for kept in [
            "name'x'",
            "'it''s E''a\\\\b'''",
            "\"E'x\" = 1",
            "\"q\"E'x'",
            "E'unterminated \\\\",
        ] {
            assert_eq!(standard_string_literals(kept), kept);
        }
    }
}
