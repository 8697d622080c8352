//! Removes passwords from connection strings and from any text that may quote one.
//!
//! Subscription conninfo is stored with the password in clear, and a failing
//! `CREATE SUBSCRIPTION … CONNECTION '…'` can echo it back in an error. One function serves
//! both: it parses libpq keyword/value syntax exactly and over-redacts rather than leaks when
//! the text is not a well-formed connection string (for instance a conninfo embedded in an SQL
//! literal, where its quotes are doubled).

use crate::conninfo::{value_end, value_start};

/// What a redacted value is replaced with.
pub const REDACTED: &str = "********";

/// Returns `text` with the value of every `…password=` keyword (`password`, `sslpassword`, in
/// any case) and the password part of every `scheme://user:password@host` URI replaced by
/// [`REDACTED`]. Everything else is kept byte for byte.
pub fn redact_conninfo(text: &str) -> String {
    let with_keywords_redacted = redact_password_keywords(text);
    redact_uri_userinfo(&with_keywords_redacted)
}

fn redact_password_keywords(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    // `copied` is the end of the part of `text` already written to `out`.
    let mut copied = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        if !is_keyword_byte(bytes[pos]) {
            pos += 1;
            continue;
        }
        let word_start = pos;
        while pos < bytes.len() && is_keyword_byte(bytes[pos]) {
            pos += 1;
        }
        let word = &text[word_start..pos];
        if !word.to_ascii_lowercase().ends_with("password") {
            continue;
        }
        let Some(after) = value_start(bytes, pos) else {
            continue;
        };
        // A quote doubled SQL-style opens a conninfo written inside a string literal; its
        // value runs to the next doubled quote.
        let quote: &[u8] = if bytes[after..].starts_with(b"''") {
            b"''"
        } else {
            b"'"
        };
        let value_end = value_end(bytes, after, quote);
        if value_end == after {
            // `password=` with nothing after it: nothing to hide.
            continue;
        }
        out.push_str(&text[copied..after]);
        out.push_str(REDACTED);
        copied = value_end;
        pos = value_end;
    }
    out.push_str(&text[copied..]);
    out
}

fn is_keyword_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Redacts `secret` in `postgres://user:secret@host…` and `postgresql://…` URIs.
fn redact_uri_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = find_uri_start(rest) {
        let (before, from_scheme) = rest.split_at(found);
        out.push_str(before);
        let scheme_len = from_scheme.find("://").map_or(0, |i| i + 3);
        let (scheme, authority_and_rest) = from_scheme.split_at(scheme_len);
        out.push_str(scheme);
        // The authority ends at the path, the query or the end of the URI.
        let authority_end = authority_and_rest
            .find(|c: char| c == '/' || c == '?' || c.is_whitespace() || c == '\'')
            .unwrap_or(authority_and_rest.len());
        let authority = &authority_and_rest[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..=colon]);
                        out.push_str(REDACTED);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &authority_and_rest[authority_end..];
    }
    out.push_str(rest);
    out
}

fn find_uri_start(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    ["postgresql://", "postgres://"]
        .iter()
        .filter_map(|scheme| lower.find(scheme))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_unquoted_password() {
        assert_eq!(
            redact_conninfo("host=a port=5432 password=s3cret dbname=app"),
            "host=a port=5432 password=******** dbname=app"
        );
    }

    #[test]
    fn redacts_quoted_password_with_spaces_and_escaped_quotes() {
        assert_eq!(
            redact_conninfo(r"host=a password='it\'s a secret' user=u"),
            "host=a password=******** user=u"
        );
    }

    #[test]
    fn redacts_with_spaces_around_equals_and_any_case() {
        assert_eq!(
            redact_conninfo("PASSWORD = x user=u"),
            "PASSWORD = ******** user=u"
        );
    }

    #[test]
    fn redacts_sslpassword_too() {
        assert_eq!(
            redact_conninfo("sslpassword=k host=h"),
            "sslpassword=******** host=h"
        );
    }

    #[test]
    fn redacts_escaped_space_in_unquoted_value() {
        assert_eq!(
            redact_conninfo(r"password=a\ b host=h"),
            "password=******** host=h"
        );
    }

    #[test]
    fn keeps_text_without_password() {
        let text = "host=a port=5432 dbname=app passfile=/x user=u";
        assert_eq!(redact_conninfo(text), text);
    }

    #[test]
    fn keeps_the_word_password_when_not_a_keyword() {
        let text = "password authentication failed for user \"u\"";
        assert_eq!(redact_conninfo(text), text);
    }

    #[test]
    fn redacts_conninfo_inside_sql_literal() {
        let sql = "CREATE SUBSCRIPTION s CONNECTION 'host=h password=''a b\\''c'' dbname=d' \
                   PUBLICATION p";
        let redacted = redact_conninfo(sql);
        assert_eq!(
            redacted,
            "CREATE SUBSCRIPTION s CONNECTION 'host=h password=******** dbname=d' PUBLICATION p"
        );
    }

    #[test]
    fn redacts_unquoted_password_inside_sql_literal() {
        let sql = "CONNECTION 'host=h password=pw' PUBLICATION p";
        let redacted = redact_conninfo(sql);
        assert!(!redacted.contains("pw'"), "{redacted}");
        assert!(redacted.ends_with("PUBLICATION p"));
    }

    #[test]
    fn unterminated_quote_redacts_to_the_end() {
        assert_eq!(redact_conninfo("password='abc def"), "password=********");
    }

    #[test]
    fn redacts_uri_userinfo() {
        assert_eq!(
            redact_conninfo("postgresql://alice:pw@db.example:5432/app?sslmode=require"),
            "postgresql://alice:********@db.example:5432/app?sslmode=require"
        );
        assert_eq!(
            redact_conninfo("postgres://alice@db/app"),
            "postgres://alice@db/app"
        );
    }

    #[test]
    fn redacts_uri_query_password() {
        assert_eq!(
            redact_conninfo("postgresql://db/app?password=pw"),
            "postgresql://db/app?password=********"
        );
    }

    #[test]
    fn survives_non_ascii_and_trailing_backslash() {
        assert_eq!(redact_conninfo("password=é\\"), "password=********");
        assert_eq!(redact_conninfo("hôte=é password"), "hôte=é password");
    }
}
