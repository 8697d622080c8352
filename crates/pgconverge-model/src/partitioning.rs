//! Partitioned tables' two spellings: a partition key as `pg_get_partkeydef` prints it
//! (`RANGE (created_at)`), and partition bounds compared after normalisation, so a bound
//! written by hand and the one PostgreSQL prints after creating it are the same bound.

use pgconverge_sql::quote_ident_list;

use crate::config::{PartitionBy, PartitionStrategy};
use crate::types::normalize_default;

/// The key as `pg_get_partkeydef` prints it: `RANGE (a, "B")`. Also the `PARTITION BY`
/// clause's text.
pub fn partition_key_sql(key: &PartitionBy) -> String {
    format!(
        "{} ({})",
        key.strategy.sql(),
        quote_ident_list(&key.columns)
    )
}

/// The key `pg_get_partkeydef` printed, when it is one the config can express: a strategy
/// and plain columns of `columns` (no expression, operator class or collation).
pub fn parse_partition_key(definition: &str, columns: &[String]) -> Option<PartitionBy> {
    let (word, rest) = definition.trim().split_once(' ')?;
    let strategy = match word {
        "RANGE" => PartitionStrategy::Range,
        "LIST" => PartitionStrategy::List,
        "HASH" => PartitionStrategy::Hash,
        _ => return None,
    };
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    let mut key_columns = Vec::new();
    for item in inner.split(',') {
        let item = item.trim();
        let name = columns
            .iter()
            .find(|c| quote_ident_list(std::slice::from_ref(*c)) == item)?;
        key_columns.push(name.clone());
    }
    let key = PartitionBy {
        strategy,
        columns: key_columns,
    };
    // Anything else (a comma in a quoted name, an operator class) is refused by the round trip.
    (partition_key_sql(&key) == definition.trim()).then_some(key)
}

/// A partition bound in one spelling: without a leading `FOR VALUES`, keywords lowercased,
/// literal casts and quotes around numbers dropped (see [`normalize_default`]), and a
/// timestamp at midnight written as its date, as PostgreSQL prints a `timestamp` bound
/// written as a date.
pub fn normalize_bound(bound: &str) -> String {
    let trimmed = bound.trim();
    let body = strip_keyword(trimmed, "for")
        .and_then(|rest| strip_keyword(rest, "values"))
        .unwrap_or(trimmed);
    let normalized = match list_values(body) {
        Some(values) => format!("in({})", normalize_default(values)),
        None => normalize_default(body),
    };
    drop_midnight(&normalized)
}

/// The values of a list partition's `IN (…)`: a list, not the SQL operator that
/// `normalize_default` spells as PostgreSQL stores it (`= ANY (ARRAY[…])`).
fn list_values(body: &str) -> Option<&str> {
    let rest = body
        .get(..2)
        .filter(|head| head.eq_ignore_ascii_case("in"))
        .map(|_| body[2..].trim_start())?;
    rest.strip_prefix('(')?.trim_end().strip_suffix(')')
}

/// Whether the bounds a config wrote are the bounds PostgreSQL printed for a live partition:
/// equal once normalised, or equal once each `timestamptz` literal PostgreSQL printed at
/// midnight (`'2026-01-01 00:00:00+01'`, in the session's time zone) is read as the date the
/// config wrote (`'2026-01-01'`, which PostgreSQL read in that same time zone).
pub fn bounds_match(configured: &str, printed: &str) -> bool {
    let configured = normalize_bound(configured);
    let printed = normalize_bound(printed);
    configured == printed || configured == drop_midnight_offsets(&printed)
}

/// `'2026-01-01 00:00:00+01'` (or `-05:30`) → `'2026-01-01'`, inside any string literal.
fn drop_midnight_offsets(text: &str) -> String {
    const MIDNIGHT: &str = " 00:00:00";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MIDNIGHT) {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        let tail = &after[MIDNIGHT.len()..];
        let offset_len = tail.find('\'').filter(|&end| is_utc_offset(&tail[..end]));
        match offset_len {
            Some(end) if is_date_literal_end(before) => {
                out.push('\'');
                rest = &tail[end + 1..];
            }
            _ => {
                out.push_str(MIDNIGHT);
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `+00`, `-05`, `+05:30`: an offset as PostgreSQL prints one.
fn is_utc_offset(text: &str) -> bool {
    let Some(digits) = text.strip_prefix(['+', '-']) else {
        return false;
    };
    let (hours, minutes) = digits.split_once(':').unwrap_or((digits, "00"));
    hours.len() == 2
        && minutes.len() == 2
        && hours
            .chars()
            .chain(minutes.chars())
            .all(|c| c.is_ascii_digit())
}

/// `text` without its leading word `keyword` (any case) and the space after it.
fn strip_keyword<'t>(text: &'t str, keyword: &str) -> Option<&'t str> {
    let head = text.get(..keyword.len())?;
    let rest = &text[keyword.len()..];
    (head.eq_ignore_ascii_case(keyword) && rest.starts_with(char::is_whitespace))
        .then(|| rest.trim_start())
}

/// `'2026-01-01 00:00:00'` → `'2026-01-01'`, inside any string literal of `text`.
fn drop_midnight(text: &str) -> String {
    const MIDNIGHT: &str = " 00:00:00'";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MIDNIGHT) {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        if is_date_literal_end(before) {
            out.push('\'');
        } else {
            out.push_str(MIDNIGHT);
        }
        rest = &after[MIDNIGHT.len()..];
    }
    out.push_str(rest);
    out
}

/// Whether `text` ends with `'YYYY-MM-DD`.
fn is_date_literal_end(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() < 11 {
        return false;
    }
    let tail = &bytes[bytes.len() - 11..];
    tail[0] == b'\''
        && tail[1..].iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) {
        assert_eq!(normalize_bound(a), normalize_bound(b), "{a:?} vs {b:?}");
    }

    #[test]
    fn a_bound_as_written_is_the_bound_postgresql_prints() {
        same(
            "FROM ('2026-01-01') TO ('2027-01-01')",
            "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        );
        same(
            "from ('2026-01-01'::date) to ('2027-01-01')",
            "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        );
        same(
            "FROM ('2026-01-01') TO ('2027-01-01')",
            "FOR VALUES FROM ('2026-01-01 00:00:00') TO ('2027-01-01 00:00:00')",
        );
        same("FROM (0) TO ('10')", "FOR VALUES FROM (0) TO (10)");
        same(
            "FROM (MINVALUE) TO (10)",
            "FOR VALUES FROM (MINVALUE) TO (10)",
        );
        same("IN ('eu','uk')", "FOR VALUES IN ('eu', 'uk')");
        same(
            "WITH (MODULUS 4, REMAINDER 0)",
            "FOR VALUES WITH (modulus 4, remainder 0)",
        );
        same("default", "DEFAULT");
    }

    #[test]
    fn a_date_written_for_a_timestamptz_bound_is_the_midnight_postgresql_prints() {
        let printed = "FOR VALUES FROM ('2026-01-01 00:00:00+01') TO ('2027-01-01 00:00:00-05:30')";
        assert!(bounds_match(
            "FROM ('2026-01-01') TO ('2027-01-01')",
            printed
        ));
        assert!(bounds_match(printed, printed));
        assert!(!bounds_match(
            "FROM ('2026-01-02') TO ('2027-01-01')",
            printed
        ));
        assert!(!bounds_match(
            "FROM ('2026-01-01 00:00:00+00') TO ('2027-01-01 00:00:00-05:30')",
            printed
        ));
        assert!(!bounds_match(
            "FROM ('2026-01-01') TO ('2027-01-01')",
            "FOR VALUES FROM ('2026-01-01 00:00:01+01') TO ('2027-01-01 00:00:00+01')"
        ));
    }

    #[test]
    fn different_bounds_stay_different() {
        let differ = |a: &str, b: &str| assert_ne!(normalize_bound(a), normalize_bound(b));
        differ("FROM (0) TO (10)", "FROM (0) TO (11)");
        differ("IN ('eu')", "IN ('uk')");
        differ(
            "WITH (MODULUS 4, REMAINDER 0)",
            "WITH (MODULUS 4, REMAINDER 1)",
        );
        differ(
            "FROM ('2026-01-01 00:00:01') TO ('x')",
            "FROM ('2026-01-01') TO ('x')",
        );
        differ("IN ('a 00:00:00')", "IN ('a')");
    }

    #[test]
    fn partition_keys_read_back_only_when_the_config_can_say_them() {
        let columns = ["id".to_string(), "Day".to_string()];
        let key = parse_partition_key("RANGE (\"Day\", id)", &columns).expect("plain columns");
        assert_eq!(key.strategy, PartitionStrategy::Range);
        assert_eq!(key.columns, ["Day", "id"]);
        assert_eq!(partition_key_sql(&key), "RANGE (\"Day\", id)");
        assert!(parse_partition_key("LIST (lower(\"Day\"))", &columns).is_none());
        assert!(parse_partition_key("HASH (id int8_ops)", &columns).is_none());
        assert!(parse_partition_key("RANGE (other)", &columns).is_none());
    }

    #[test]
    fn each_strategy_has_its_normalised_start() {
        assert_eq!(normalize_bound("FROM (0) TO (10)"), "from(0)to(10)");
        assert_eq!(normalize_bound("FOR VALUES IN ('a', 'b')"), "in('a','b')");
        assert_eq!(normalize_bound("in('a','b')"), "in('a','b')");
        assert_eq!(
            normalize_bound("WITH (MODULUS 4, REMAINDER 0)"),
            "with(modulus 4,remainder 0)"
        );
    }
}
