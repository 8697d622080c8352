//! Whether two spellings of a SQL expression (a generated column's, an index key's or
//! predicate) are the same expression: the configured one and the one the server prints.
//!
//! The server prints expressions with every cast it inferred (`(quantity)::numeric`) and
//! every operation parenthesised (`(a + (b * c))`); people write them without. Beyond
//! [`normalize_default`](super::normalize_default), the comparison drops casts on anything
//! and parentheses that only group, so both spellings meet. A change that only moves
//! parentheses or casts is therefore not seen: such an edit must also change the text
//! otherwise (documented in the README).

use super::normalize_default;

/// Whether `configured` and `live` spell the same expression (see the module doc).
pub fn expressions_match(configured: &str, live: &str) -> bool {
    let (a, b) = (normalize_default(configured), normalize_default(live));
    a == b || loose_expression(&a) == loose_expression(&b)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Literal(String),
    Cast,
    Symbol(char),
    Operator(String),
}

/// Keywords after which a parenthesis groups rather than calls.
const GROUPING_KEYWORDS: &[&str] = &[
    "and", "or", "not", "is", "when", "then", "else", "case", "like", "ilike", "between",
];

/// Type-name words that continue a multi-word type after a cast.
const TYPE_CONTINUATIONS: &[&str] = &["varying", "precision", "with", "without", "time", "zone"];

/// The expression with casts and grouping parentheses dropped and simple quoted
/// identifiers unquoted, words separated by one space.
pub fn loose_expression(expr: &str) -> String {
    let tokens = tokens(expr);
    let tokens = drop_casts(tokens);
    let tokens = between_as_comparisons(tokens);
    let tokens = in_lists_as_arrays(tokens);
    let tokens = drop_grouping_parentheses(tokens);
    let mut out = String::new();
    let mut previous_word = false;
    for token in &tokens {
        let (text, word) = match token {
            Token::Word(w) | Token::Literal(w) => (w.as_str(), true),
            Token::Operator(o) => (o.as_str(), false),
            Token::Cast => ("::", false),
            Token::Symbol(c) => {
                out.push(*c);
                previous_word = false;
                continue;
            }
        };
        if word && previous_word {
            out.push(' ');
        }
        out.push_str(text);
        previous_word = word;
    }
    out
}

fn tokens(expr: &str) -> Vec<Token> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() {
                if chars[i] == c {
                    if chars.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            let text: String = chars[start..i.min(chars.len())].iter().collect();
            out.push(if c == '"' {
                Token::Word(unquoted(&text))
            } else {
                Token::Literal(text)
            });
        } else if c.is_alphanumeric() || c == '_' || c == '.' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '$' | '.'))
            {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token::Cast);
            i += 2;
        } else if "+-*/<>=~!@#%^&|`?".contains(c) {
            let start = i;
            while i < chars.len() && "+-*/<>=~!@#%^&|`?".contains(chars[i]) {
                i += 1;
            }
            out.push(Token::Operator(chars[start..i].iter().collect()));
        } else {
            out.push(Token::Symbol(c));
            i += 1;
        }
    }
    out
}

/// `"name"` as `name` when that is how the server would print it unquoted.
fn unquoted(quoted: &str) -> String {
    let inner = quoted
        .strip_prefix('"')
        .map(|rest| rest.strip_suffix('"').unwrap_or(rest))
        .unwrap_or(quoted);
    let simple = inner.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && inner
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if simple {
        inner.to_string()
    } else {
        quoted.to_string()
    }
}

/// Removes every `::type` (a type name of one or more words, a modifier, array brackets).
fn drop_casts(tokens: Vec<Token>) -> Vec<Token> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] != Token::Cast {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        }
        i += 1;
        if matches!(tokens.get(i), Some(Token::Word(_))) {
            i += 1;
        }
        while let Some(Token::Word(w)) = tokens.get(i) {
            if !TYPE_CONTINUATIONS.contains(&w.as_str()) {
                break;
            }
            i += 1;
        }
        if tokens.get(i) == Some(&Token::Symbol('(')) {
            while i < tokens.len() && tokens[i] != Token::Symbol(')') {
                i += 1;
            }
            i += 1;
        }
        while tokens.get(i) == Some(&Token::Symbol('['))
            && tokens.get(i + 1) == Some(&Token::Symbol(']'))
        {
            i += 2;
        }
    }
    out
}

/// `x BETWEEN a AND b` as the server stores it, `x >= a AND x <= b`; `NOT BETWEEN` as
/// `x < a OR x > b`. Only where `x`, `a` and `b` are single names or literals (a longer operand
/// would need the grammar to delimit); other spellings stay as they are.
fn between_as_comparisons(tokens: Vec<Token>) -> Vec<Token> {
    let simple = |t: Option<&Token>| -> Option<Token> {
        match t {
            Some(Token::Word(w)) if !["and", "or", "not", "between"].contains(&w.as_str()) => {
                Some(Token::Word(w.clone()))
            }
            Some(Token::Literal(l)) => Some(Token::Literal(l.clone())),
            _ => None,
        }
    };
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] != Token::Word("between".into()) {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        }
        let negated = out.last() == Some(&Token::Word("not".into()));
        let operand_at = out.len().saturating_sub(if negated { 2 } else { 1 });
        // Arithmetic binds tighter than BETWEEN: `a + b BETWEEN …` or `… AND 2 * c` have a
        // longer operand, so only a bound by an edge, a comma or a keyword is taken.
        let bound_before = operand_at == 0 || delimits(&out[operand_at - 1]);
        let bound_after = tokens.get(i + 4).is_none_or(delimits);
        let parts = (
            simple(out.get(operand_at)).filter(|_| !out.is_empty() && bound_before && bound_after),
            simple(tokens.get(i + 1)),
            tokens.get(i + 2) == Some(&Token::Word("and".into())),
            simple(tokens.get(i + 3)),
        );
        let (Some(operand), Some(low), true, Some(high)) = parts else {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        };
        out.truncate(operand_at);
        let (below, joiner, above) = if negated {
            ("<", "or", ">")
        } else {
            (">=", "and", "<=")
        };
        out.extend([
            operand.clone(),
            Token::Operator(below.into()),
            low,
            Token::Word(joiner.into()),
            operand,
            Token::Operator(above.into()),
            high,
        ]);
        i += 4;
    }
    out
}

/// Whether `token` ends an operand of `BETWEEN` on its side.
fn delimits(token: &Token) -> bool {
    match token {
        Token::Symbol(c) => matches!(c, '(' | ')' | ','),
        Token::Word(w) => [
            "and", "or", "not", "when", "then", "else", "end", "case", "is",
        ]
        .contains(&w.as_str()),
        _ => false,
    }
}

/// `x IN (a, b)` as the server prints it, `x = ANY (ARRAY[a, b])`; `NOT IN` as `<> ALL`.
/// A subquery (`IN (SELECT …)`) is left as it is.
fn in_lists_as_arrays(tokens: Vec<Token>) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let is_list = tokens[i] == Token::Word("in".into())
            && tokens.get(i + 1) == Some(&Token::Symbol('('))
            && tokens.get(i + 2) != Some(&Token::Word("select".into()));
        if !is_list {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        }
        let negated = out.last() == Some(&Token::Word("not".into()));
        if negated {
            out.pop();
        }
        let (operator, quantifier) = if negated { ("<>", "all") } else { ("=", "any") };
        out.extend([
            Token::Operator(operator.into()),
            Token::Word(quantifier.into()),
            Token::Symbol('('),
            Token::Word("array".into()),
            Token::Symbol('['),
        ]);
        let mut depth = 0usize;
        let mut j = i + 2;
        while j < tokens.len() {
            match &tokens[j] {
                Token::Symbol('(') => depth += 1,
                Token::Symbol(')') if depth == 0 => break,
                Token::Symbol(')') => depth -= 1,
                _ => {}
            }
            out.push(tokens[j].clone());
            j += 1;
        }
        out.extend([Token::Symbol(']'), Token::Symbol(')')]);
        i = j + 1;
    }
    out
}

/// Removes parentheses that group (not those of a call or an `ARRAY[...]`-like form).
fn drop_grouping_parentheses(tokens: Vec<Token>) -> Vec<Token> {
    let mut keep = vec![true; tokens.len()];
    let mut stack: Vec<(usize, bool)> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Symbol('(') => {
                let call = match i.checked_sub(1).map(|p| &tokens[p]) {
                    Some(Token::Word(w)) => !GROUPING_KEYWORDS.contains(&w.as_str()),
                    _ => false,
                };
                stack.push((i, call));
            }
            Token::Symbol(')') => {
                if let Some((open, false)) = stack.pop() {
                    keep[open] = false;
                    keep[i] = false;
                }
            }
            _ => {}
        }
    }
    tokens
        .into_iter()
        .zip(keep)
        .filter_map(|(token, kept)| kept.then_some(token))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_meets_the_comparisons_the_server_stores() {
        for (configured, live) in [
            ("qty BETWEEN 1 AND 100", "((qty >= 1) AND (qty <= 100))"),
            (
                "at BETWEEN '2026-01-01' AND '2027-01-01' AND kind <> 'x'",
                "(((at >= '2026-01-01'::date) AND (at <= '2027-01-01'::date)) AND (kind <> 'x'::text))",
            ),
            ("qty NOT BETWEEN 1 AND 100", "((qty < 1) OR (qty > 100))"),
        ] {
            assert!(expressions_match(configured, live), "{configured:?} vs {live:?}");
        }
        assert!(!expressions_match(
            "qty BETWEEN 1 AND 100",
            "((qty >= 1) AND (qty <= 10))"
        ));
        assert!(!expressions_match(
            "qty NOT BETWEEN 1 AND 100",
            "((qty >= 1) AND (qty <= 100))"
        ));
        // A longer operand is left as written, never misread.
        assert!(!expressions_match(
            "a + b BETWEEN 1 AND 2",
            "(((a + b) >= 1) AND (b <= 2))"
        ));
        assert!(!expressions_match(
            "b BETWEEN 1 AND 2 * c",
            "((b >= 1) AND (b <= 2)) * c"
        ));
    }

    #[test]
    fn an_unterminated_quoted_name_is_compared_not_a_panic() {
        for text in ["\"é", "\"", "lower(\"ü", "\"a\" = \"é"] {
            assert!(expressions_match(text, text), "{text:?}");
            assert!(!expressions_match(text, "lower(email)"), "{text:?}");
        }
    }

    #[test]
    fn server_spellings_meet_hand_spellings() {
        for (configured, live) in [
            ("price * quantity", "(price * (quantity)::numeric)"),
            ("lower(email)", "lower(email)"),
            ("lower(\"email\")", "lower(email)"),
            ("status = 'open'", "(status = 'open'::text)"),
            ("status = 'open'", "status = 'open'::text"),
            ("a + b * c", "(a + (b * c))"),
            ("deleted_at IS NULL", "(deleted_at IS NULL)"),
            (
                "total > 0 AND NOT archived",
                "((total > (0)::numeric) AND (NOT archived))",
            ),
            ("created_at::date", "(created_at)::date"),
            ("x::timestamp with time zone", "x"),
            ("coalesce(a, 0) + 1", "(COALESCE(a, 0) + 1)"),
            ("\"Mixed\" || 'x'", "(\"Mixed\" || 'x'::text)"),
            (
                "status IN ('open', 'held')",
                "(status = ANY (ARRAY['open'::text, 'held'::text]))",
            ),
            (
                "status NOT IN ('closed')",
                "(status <> ALL (ARRAY['closed'::text]))",
            ),
        ] {
            assert!(
                expressions_match(configured, live),
                "{configured} vs {live}: {} / {}",
                loose_expression(&normalize_default(configured)),
                loose_expression(&normalize_default(live))
            );
        }
    }

    #[test]
    fn different_expressions_differ() {
        for (a, b) in [
            ("price * quantity", "price + quantity"),
            ("lower(email)", "upper(email)"),
            ("status = 'open'", "status = 'closed'"),
            ("\"Mixed\"", "mixed"),
            ("a > 1", "a >= 1"),
            ("f(a, b)", "f(b, a)"),
            ("status IN ('a')", "status = ANY (ARRAY['b'::text])"),
            ("status NOT IN ('a')", "status = ANY (ARRAY['a'::text])"),
        ] {
            assert!(!expressions_match(a, b), "{a} vs {b}");
        }
    }
}
