//! Normalisation of PostgreSQL type names and default expressions, so config spellings
//! (`int`, `varchar(20)`, `timestamptz`) compare equal to what `format_type` prints.
//!
//! Both functions are total: unknown input is lowercased (outside double quotes) and passed
//! through with its whitespace collapsed, never rejected. Deciding what is valid is the
//! server's job; these only decide what is *equal*.

use pgconverge_sql::standard_string;

mod expressions;
pub use expressions::{expressions_match, loose_expression};

/// The spelling `format_type(atttypid, atttypmod)` prints for a config type name.
///
/// Case-insensitive and whitespace-insensitive; double-quoted names keep their case. Array
/// spellings (`text[]`, `text[][]`, `text ARRAY`, `_text`) all become `text[]`, as PostgreSQL
/// does not record array dimensions.
pub fn normalize_type(t: &str) -> String {
    let tokens = type_tokens(t);
    let (element, is_array) = split_array(&tokens);
    let mut base = normalize_scalar(element);
    if is_array {
        base.push_str("[]");
    }
    base
}

/// One piece of a type name: a word (lowercased), a double-quoted identifier (verbatim), or
/// one punctuation character.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TypeToken {
    Word(String),
    Quoted(String),
    Punct(char),
}

fn type_tokens(t: &str) -> Vec<TypeToken> {
    let mut tokens = Vec::new();
    let mut chars = t.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            let mut quoted = String::from('"');
            chars.next();
            while let Some(q) = chars.next() {
                quoted.push(q);
                if q == '"' {
                    // `""` inside a quoted identifier is an escaped quote.
                    if chars.peek() == Some(&'"') {
                        quoted.push('"');
                        chars.next();
                    } else {
                        break;
                    }
                }
            }
            tokens.push(TypeToken::Quoted(quoted));
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut word = String::new();
            while let Some(&w) = chars.peek() {
                if w.is_alphanumeric() || w == '_' || w == '$' {
                    word.extend(w.to_lowercase());
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(TypeToken::Word(word));
        } else {
            tokens.push(TypeToken::Punct(c));
            chars.next();
        }
    }
    tokens
}

/// Element type of an array spelling, and whether it was one.
fn split_array(tokens: &[TypeToken]) -> (Vec<TypeToken>, bool) {
    let mut end = tokens.len();
    let mut is_array = false;
    loop {
        // Trailing `[]` or `[n]`.
        if end >= 2 && tokens[end - 1] == TypeToken::Punct(']') {
            if let Some(open) = tokens[..end - 1]
                .iter()
                .rposition(|t| *t == TypeToken::Punct('['))
            {
                if tokens[open + 1..end - 1]
                    .iter()
                    .all(|t| matches!(t, TypeToken::Word(_)))
                {
                    end = open;
                    is_array = true;
                    continue;
                }
            }
        }
        // Trailing SQL-standard `ARRAY`.
        if end >= 2 && tokens[end - 1] == TypeToken::Word("array".into()) {
            end -= 1;
            is_array = true;
            continue;
        }
        break;
    }
    let mut element: Vec<TypeToken> = tokens[..end].to_vec();
    if !is_array && element.len() == 1 {
        // Internal array type names: `_int4` is `integer[]`.
        if let TypeToken::Word(w) = &element[0] {
            if let Some(inner) = w.strip_prefix('_') {
                if INTERNAL_ARRAY_ELEMENTS.contains(&inner) {
                    element = vec![TypeToken::Word(inner.to_string())];
                    is_array = true;
                }
            }
        }
    }
    (element, is_array)
}

/// Built-in types whose `_name` array spelling is recognised.
const INTERNAL_ARRAY_ELEMENTS: &[&str] = &[
    "bool",
    "bpchar",
    "bytea",
    "cidr",
    "date",
    "float4",
    "float8",
    "inet",
    "int2",
    "int4",
    "int8",
    "interval",
    "json",
    "jsonb",
    "macaddr",
    "numeric",
    "oid",
    "text",
    "time",
    "timestamp",
    "timestamptz",
    "timetz",
    "uuid",
    "varbit",
    "varchar",
];

fn normalize_scalar(mut tokens: Vec<TypeToken>) -> String {
    // `pg_catalog.int4` is `integer`: format_type never qualifies built-in types.
    if tokens.len() > 2
        && tokens[0] == TypeToken::Word("pg_catalog".into())
        && tokens[1] == TypeToken::Punct('.')
    {
        tokens.drain(..2);
    }

    // Split into words before a parenthesised modifier, the modifier, and words after it.
    let open = tokens.iter().position(|t| *t == TypeToken::Punct('('));
    let close = tokens.iter().rposition(|t| *t == TypeToken::Punct(')'));
    let (head, args, tail) = match (open, close) {
        (Some(o), Some(c)) if o < c => (&tokens[..o], Some(&tokens[o + 1..c]), &tokens[c + 1..]),
        _ => (&tokens[..], None, &[][..]),
    };
    let simple_words = |ts: &[TypeToken]| -> Option<String> {
        let words: Option<Vec<&str>> = ts
            .iter()
            .map(|t| match t {
                TypeToken::Word(w) => Some(w.as_str()),
                _ => None,
            })
            .collect();
        words.map(|w| w.join(" "))
    };
    let (Some(head_words), Some(tail_words)) = (simple_words(head), simple_words(tail)) else {
        return render_tokens(&tokens);
    };
    let arg_numbers: Option<Vec<u32>> = match args {
        None => Some(Vec::new()),
        Some(a) => a
            .iter()
            .filter(|t| **t != TypeToken::Punct(','))
            .map(|t| match t {
                TypeToken::Word(w) => w.parse().ok(),
                _ => None,
            })
            .collect(),
    };
    let Some(numbers) = arg_numbers else {
        return render_tokens(&tokens);
    };
    let modifier = |n: &[u32]| -> String {
        if n.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = n.iter().map(u32::to_string).collect();
            format!("({})", parts.join(","))
        }
    };
    let one_arg = numbers.len() <= 1;
    let time_zone = match tail_words.as_str() {
        "" => None,
        "with time zone" => Some(true),
        "without time zone" => Some(false),
        _ => return render_tokens(&tokens),
    };
    let no_modifier = numbers.is_empty() && time_zone.is_none();

    let normalized = match head_words.as_str() {
        "int" | "int4" | "integer" if no_modifier => "integer".to_string(),
        "int8" | "bigint" if no_modifier => "bigint".to_string(),
        "int2" | "smallint" if no_modifier => "smallint".to_string(),
        "bool" | "boolean" if no_modifier => "boolean".to_string(),
        "float8" | "double precision" if no_modifier => "double precision".to_string(),
        "float4" | "real" if no_modifier => "real".to_string(),
        "float" if time_zone.is_none() && one_arg => match numbers.first() {
            Some(p) if *p <= 24 => "real".to_string(),
            _ => "double precision".to_string(),
        },
        "varchar" | "character varying" | "char varying" if time_zone.is_none() && one_arg => {
            format!("character varying{}", modifier(&numbers))
        }
        "char" | "character" if time_zone.is_none() && one_arg => match numbers.first() {
            Some(n) => format!("character({n})"),
            None => "character(1)".to_string(),
        },
        "decimal" | "numeric" if time_zone.is_none() => match numbers.as_slice() {
            [] => "numeric".to_string(),
            [p] => format!("numeric({p},0)"),
            [p, s] => format!("numeric({p},{s})"),
            _ => return render_tokens(&tokens),
        },
        "timestamp" if one_arg => {
            let zone = if time_zone == Some(true) {
                "with"
            } else {
                "without"
            };
            format!("timestamp{} {zone} time zone", modifier(&numbers))
        }
        "timestamptz" if one_arg && time_zone.is_none() => {
            format!("timestamp{} with time zone", modifier(&numbers))
        }
        "time" if one_arg => {
            let zone = if time_zone == Some(true) {
                "with"
            } else {
                "without"
            };
            format!("time{} {zone} time zone", modifier(&numbers))
        }
        "timetz" if one_arg && time_zone.is_none() => {
            format!("time{} with time zone", modifier(&numbers))
        }
        "bit" if time_zone.is_none() && one_arg => match numbers.first() {
            Some(n) => format!("bit({n})"),
            None => "bit(1)".to_string(),
        },
        "varbit" | "bit varying" if time_zone.is_none() && one_arg => {
            format!("bit varying{}", modifier(&numbers))
        }
        "interval" if time_zone.is_none() && one_arg => format!("interval{}", modifier(&numbers)),
        _ => render_tokens(&tokens),
    };
    normalized
}

/// Tokens joined back with single spaces between words and none around punctuation.
fn render_tokens(tokens: &[TypeToken]) -> String {
    let mut out = String::new();
    let mut previous_wordish = false;
    for token in tokens {
        match token {
            TypeToken::Word(w) | TypeToken::Quoted(w) => {
                if previous_wordish {
                    out.push(' ');
                }
                out.push_str(w);
                previous_wordish = true;
            }
            TypeToken::Punct(c) => {
                out.push(*c);
                previous_wordish = false;
            }
        }
    }
    out
}

/// A default expression in a canonical form, so that a config default and the server's
/// `pg_get_expr` output for the same default compare equal.
///
/// The result is for comparison and display, not for execution: casts on literals are
/// dropped (`'draft'::text` → `'draft'`, `'-1'::integer` → `-1`), as are typed literals'
/// type names (`interval '1 day'` → `'1 day'`) and redundant parentheses; keywords and
/// function names are lowercased except the SQL value functions PostgreSQL prints in
/// capitals (`CURRENT_TIMESTAMP`, `CURRENT_USER`, …); whitespace is kept only where two words
/// would otherwise merge.
pub fn normalize_default(expr: &str) -> String {
    let mut tokens = expression_tokens(expr);
    loop {
        let before = tokens.len();
        strip_outer_parentheses(&mut tokens);
        rewrite_cast_calls(&mut tokens);
        strip_typed_literal_prefixes(&mut tokens);
        strip_literal_casts(&mut tokens);
        unwrap_parenthesised_literals(&mut tokens);
        collapse_double_parentheses(&mut tokens);
        unwrap_boolean_operands(&mut tokens);
        rewrite_in_lists(&mut tokens);
        if tokens.len() == before {
            break;
        }
    }
    unquote_numeric_strings(&mut tokens);
    render_expression(&tokens)
}

/// The names an expression mentions outside function calls, as PostgreSQL reads them
/// (unquoted words lowercased, quoted ones verbatim), in order of first mention: what a CHECK
/// constraint's default name is derived from. Keywords are included; callers keep the names
/// they know to be columns.
pub fn expression_names(expr: &str) -> Vec<String> {
    let tokens = expression_tokens(expr);
    let mut names: Vec<String> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let calls = tokens.get(i + 1) == Some(&ExprToken::Punct('('));
        let name = match token {
            ExprToken::Word(word) if !calls => word.clone(),
            ExprToken::Quoted(quoted) if !calls => quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or(quoted)
                .replace("\"\"", "\""),
            _ => continue,
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ExprToken {
    /// A string literal, quotes (and any `E` prefix) included.
    Str(String),
    /// A double-quoted identifier, quotes included.
    Quoted(String),
    Number(String),
    /// An unquoted word, already lowercased.
    Word(String),
    /// `::`
    Cast,
    /// An operator such as `+`, `||`, `<=`.
    Operator(String),
    /// `(`, `)`, `,`, `[`, `]`, `.`, `;`
    Punct(char),
}

impl ExprToken {
    fn is_literal(&self) -> bool {
        matches!(self, ExprToken::Str(_) | ExprToken::Number(_))
            || *self == ExprToken::Word("null".into())
    }
}

/// SQL value functions PostgreSQL prints in capitals (`ruleutils.c`).
const SQL_VALUE_FUNCTIONS: &[&str] = &[
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "localtime",
    "localtimestamp",
    "session_user",
    "user",
];

/// Type names that may prefix a string literal (`DATE '2024-01-01'`).
const TYPED_LITERAL_PREFIXES: &[&str] = &[
    "bigint",
    "bool",
    "boolean",
    "date",
    "float4",
    "float8",
    "int",
    "int2",
    "int4",
    "int8",
    "integer",
    "interval",
    "json",
    "jsonb",
    "numeric",
    "real",
    "smallint",
    "text",
    "time",
    "timestamp",
    "timestamptz",
    "timetz",
    "uuid",
    "varchar",
];

const OPERATOR_CHARS: &str = "+-*/<>=~!@#%^&|`?";

fn expression_tokens(expr: &str) -> Vec<ExprToken> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || ((c == 'e' || c == 'E') && chars.get(i + 1) == Some(&'\'')) {
            let start = i;
            if c != '\'' {
                i += 1;
            }
            let escapes = c != '\'';
            i += 1;
            while i < chars.len() {
                if escapes && chars[i] == '\\' {
                    i += 2;
                    continue;
                }
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            let end = i.min(chars.len());
            let literal: String = chars[start..end].iter().collect();
            tokens.push(ExprToken::Str(standard_string(&literal)));
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() {
                if chars[i] == '"' {
                    if chars.get(i + 1) == Some(&'"') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            let end = i.min(chars.len());
            tokens.push(ExprToken::Quoted(chars[start..end].iter().collect()));
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let number: String = chars[start..i].iter().collect();
            tokens.push(ExprToken::Number(number.to_lowercase()));
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            tokens.push(ExprToken::Word(word));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push(ExprToken::Cast);
            i += 2;
        } else if OPERATOR_CHARS.contains(c) {
            let start = i;
            while i < chars.len() && OPERATOR_CHARS.contains(chars[i]) {
                i += 1;
            }
            tokens.push(ExprToken::Operator(chars[start..i].iter().collect()));
        } else {
            tokens.push(ExprToken::Punct(c));
            i += 1;
        }
    }
    tokens
}

/// Index just past the closing parenthesis matching the `(` at `open`, if any.
fn matching_close(tokens: &[ExprToken], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token {
            ExprToken::Punct('(') => depth += 1,
            ExprToken::Punct(')') => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

fn strip_outer_parentheses(tokens: &mut Vec<ExprToken>) {
    while tokens.first() == Some(&ExprToken::Punct('('))
        && matching_close(tokens, 0) == Some(tokens.len())
    {
        tokens.pop();
        tokens.remove(0);
    }
}

/// Length of the type name starting at `start` (after a `::` or `AS`): words, multi-word
/// names such as `character varying` and `timestamp with time zone`, a modifier in
/// parentheses, and array brackets.
fn type_name_len(tokens: &[ExprToken], start: usize) -> usize {
    let word = |i: usize| match tokens.get(i) {
        Some(ExprToken::Word(w)) => Some(w.as_str()),
        _ => None,
    };
    let mut i = start;
    match tokens.get(i) {
        Some(ExprToken::Word(_)) | Some(ExprToken::Quoted(_)) => i += 1,
        _ => return 0,
    }
    // Schema-qualified names.
    while tokens.get(i) == Some(&ExprToken::Punct('.'))
        && matches!(
            tokens.get(i + 1),
            Some(ExprToken::Word(_)) | Some(ExprToken::Quoted(_))
        )
    {
        i += 2;
    }
    let first = word(start).unwrap_or("");
    match first {
        "character" | "char" | "national" | "bit" if word(i) == Some("varying") => i += 1,
        "double" if word(i) == Some("precision") => i += 1,
        _ => {}
    }
    if tokens.get(i) == Some(&ExprToken::Punct('(')) {
        if let Some(end) = matching_close(tokens, i) {
            i = end;
        }
    }
    if matches!(first, "time" | "timestamp")
        && matches!(word(i), Some("with") | Some("without"))
        && word(i + 1) == Some("time")
        && word(i + 2) == Some("zone")
    {
        i += 3;
    }
    while tokens.get(i) == Some(&ExprToken::Punct('['))
        && tokens.get(i + 1) == Some(&ExprToken::Punct(']'))
    {
        i += 2;
    }
    i - start
}

fn strip_literal_casts(tokens: &mut Vec<ExprToken>) {
    let mut i = 0;
    while i + 1 < tokens.len() {
        if tokens[i].is_literal() && tokens[i + 1] == ExprToken::Cast {
            let len = type_name_len(tokens, i + 2);
            if len > 0 {
                tokens.drain(i + 1..i + 2 + len);
                continue;
            }
        }
        i += 1;
    }
}

/// `CAST(literal AS type)` → `literal`.
fn rewrite_cast_calls(tokens: &mut Vec<ExprToken>) {
    let mut i = 0;
    while i + 4 < tokens.len() {
        if tokens[i] == ExprToken::Word("cast".into())
            && tokens[i + 1] == ExprToken::Punct('(')
            && tokens[i + 2].is_literal()
            && tokens[i + 3] == ExprToken::Word("as".into())
        {
            let len = type_name_len(tokens, i + 4);
            if len > 0 && tokens.get(i + 4 + len) == Some(&ExprToken::Punct(')')) {
                let literal = tokens[i + 2].clone();
                tokens.splice(i..i + 5 + len, [literal]);
            }
        }
        i += 1;
    }
}

fn strip_typed_literal_prefixes(tokens: &mut Vec<ExprToken>) {
    let mut i = 0;
    while i + 1 < tokens.len() {
        let is_prefix = matches!(&tokens[i], ExprToken::Word(w) if TYPED_LITERAL_PREFIXES.contains(&w.as_str()));
        let after_cast = i > 0 && tokens[i - 1] == ExprToken::Cast;
        if is_prefix && !after_cast && matches!(tokens[i + 1], ExprToken::Str(_)) {
            tokens.remove(i);
        }
        i += 1;
    }
}

/// `('x')` → `'x'`, unless the parentheses are a function call's.
fn unwrap_parenthesised_literals(tokens: &mut Vec<ExprToken>) {
    let mut i = 0;
    while i + 2 < tokens.len() {
        let call = i > 0 && matches!(tokens[i - 1], ExprToken::Word(_) | ExprToken::Quoted(_));
        if !call
            && tokens[i] == ExprToken::Punct('(')
            && tokens[i + 1].is_literal()
            && tokens[i + 2] == ExprToken::Punct(')')
        {
            tokens.remove(i + 2);
            tokens.remove(i);
        }
        i += 1;
    }
}

/// `(a > 0) AND (b < 1)` → `a > 0 AND b < 1`: PostgreSQL parenthesises every operand of
/// `AND`, `OR` and `NOT`, and everything else binds more tightly than they do, so a group
/// between them (or the ends) with no `AND` or `OR` of its own needs no parentheses.
fn unwrap_boolean_operands(tokens: &mut Vec<ExprToken>) {
    let is_word = |t: Option<&ExprToken>, words: &[&str]| matches!(t, Some(ExprToken::Word(w)) if words.contains(&w.as_str()));
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] != ExprToken::Punct('(') {
            i += 1;
            continue;
        }
        let Some(end) = matching_close(tokens, i) else {
            return;
        };
        let before = if i == 0 { None } else { tokens.get(i - 1) };
        let opens = before.is_none() || is_word(before, &["and", "or", "not"]);
        let closes = end == tokens.len() || is_word(tokens.get(end), &["and", "or"]);
        let mut depth = 0usize;
        let mut inner_boolean = false;
        for token in &tokens[i + 1..end - 1] {
            match token {
                ExprToken::Punct('(') => depth += 1,
                ExprToken::Punct(')') => depth = depth.saturating_sub(1),
                ExprToken::Word(w) if depth == 0 && (w == "and" || w == "or") => {
                    inner_boolean = true
                }
                _ => {}
            }
        }
        if opens && closes && !inner_boolean && end - i > 2 {
            tokens.remove(end - 1);
            tokens.remove(i);
        } else {
            i += 1;
        }
    }
}

/// `x IN ('a', 'b')` → `x = ANY (ARRAY['a', 'b'])` and `x NOT IN (…)` → `x <> ALL
/// (ARRAY[…])`, as PostgreSQL stores a list of constants (the casts on them are gone by then).
fn rewrite_in_lists(tokens: &mut Vec<ExprToken>) {
    let mut i = 0;
    while i + 1 < tokens.len() {
        let is_in =
            tokens[i] == ExprToken::Word("in".into()) && tokens[i + 1] == ExprToken::Punct('(');
        let end = if is_in {
            matching_close(tokens, i + 1)
        } else {
            None
        };
        let Some(end) = end else {
            i += 1;
            continue;
        };
        let items = &tokens[i + 2..end - 1];
        let constants = !items.is_empty()
            && items.iter().enumerate().all(|(k, t)| {
                if k % 2 == 0 {
                    t.is_literal() || matches!(t, ExprToken::Operator(o) if o == "-")
                } else {
                    *t == ExprToken::Punct(',')
                }
            });
        if !constants || items.iter().any(|t| matches!(t, ExprToken::Operator(_))) {
            i += 1;
            continue;
        }
        let negated = i > 0 && tokens[i - 1] == ExprToken::Word("not".into());
        let (operator, quantifier) = if negated { ("<>", "all") } else { ("=", "any") };
        let mut replacement = vec![
            ExprToken::Operator(operator.into()),
            ExprToken::Word(quantifier.into()),
            ExprToken::Punct('('),
            ExprToken::Word("array".into()),
            ExprToken::Punct('['),
        ];
        replacement.extend(items.iter().cloned());
        replacement.extend([ExprToken::Punct(']'), ExprToken::Punct(')')]);
        let start = if negated { i - 1 } else { i };
        tokens.splice(start..end, replacement);
        i = start + 1;
    }
}

/// `((x))` → `(x)`: PostgreSQL wraps a cast's operand in a second pair.
fn collapse_double_parentheses(tokens: &mut Vec<ExprToken>) {
    let mut i = 0;
    while i + 1 < tokens.len() {
        if tokens[i] == ExprToken::Punct('(') && tokens[i + 1] == ExprToken::Punct('(') {
            if let (Some(outer_end), Some(inner_end)) =
                (matching_close(tokens, i), matching_close(tokens, i + 1))
            {
                if outer_end == inner_end + 1 {
                    tokens.remove(outer_end - 1);
                    tokens.remove(i);
                    continue;
                }
            }
        }
        i += 1;
    }
}

/// `'-1'` → `-1`: PostgreSQL quotes negative and float constants and casts them; once the
/// cast is gone, the quotes are noise.
fn unquote_numeric_strings(tokens: &mut [ExprToken]) {
    for token in tokens.iter_mut() {
        if let ExprToken::Str(s) = token {
            if let Some(inner) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
                if is_numeric_literal(inner) {
                    *token = ExprToken::Number(inner.to_lowercase());
                }
            }
        }
    }
}

fn is_numeric_literal(s: &str) -> bool {
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(p) => (&unsigned[..p], Some(&unsigned[p + 1..])),
        None => (unsigned, None),
    };
    let mut parts = mantissa.splitn(2, '.');
    let int_part = parts.next().unwrap_or("");
    let frac_part = parts.next();
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int_part)
        && frac_part.is_none_or(digits)
        && (!int_part.is_empty() || frac_part.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

fn render_expression(tokens: &[ExprToken]) -> String {
    let mut out = String::new();
    let mut previous_wordish = false;
    for token in tokens {
        let (text, wordish) = match token {
            ExprToken::Word(w) if SQL_VALUE_FUNCTIONS.contains(&w.as_str()) => {
                (w.to_uppercase(), true)
            }
            ExprToken::Word(w) | ExprToken::Number(w) | ExprToken::Quoted(w) => (w.clone(), true),
            ExprToken::Str(s) => (s.clone(), true),
            ExprToken::Cast => ("::".to_string(), false),
            ExprToken::Operator(o) => (o.clone(), false),
            ExprToken::Punct(c) => (c.to_string(), false),
        };
        if wordish && previous_wordish {
            out.push(' ');
        }
        out.push_str(&text);
        previous_wordish = wordish;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_spellings() {
        for t in ["int", "INT4", "integer", " Integer ", "pg_catalog.int4"] {
            assert_eq!(normalize_type(t), "integer", "{t}");
        }
        assert_eq!(normalize_type("int8"), "bigint");
        assert_eq!(normalize_type("BIGINT"), "bigint");
        assert_eq!(normalize_type("int2"), "smallint");
        assert_eq!(normalize_type("smallint"), "smallint");
    }

    #[test]
    fn character_types() {
        assert_eq!(normalize_type("varchar(20)"), "character varying(20)");
        assert_eq!(normalize_type("VARCHAR ( 20 )"), "character varying(20)");
        assert_eq!(
            normalize_type("character   varying(20)"),
            "character varying(20)"
        );
        assert_eq!(normalize_type("varchar"), "character varying");
        assert_eq!(normalize_type("char(3)"), "character(3)");
        assert_eq!(normalize_type("character(3)"), "character(3)");
        assert_eq!(normalize_type("char"), "character(1)");
        assert_eq!(normalize_type("text"), "text");
    }

    #[test]
    fn numeric_types() {
        assert_eq!(normalize_type("decimal(12, 2)"), "numeric(12,2)");
        assert_eq!(normalize_type("numeric(10)"), "numeric(10,0)");
        assert_eq!(normalize_type("NUMERIC"), "numeric");
        assert_eq!(normalize_type("float8"), "double precision");
        assert_eq!(normalize_type("double   precision"), "double precision");
        assert_eq!(normalize_type("float"), "double precision");
        assert_eq!(normalize_type("float(10)"), "real");
        assert_eq!(normalize_type("float(30)"), "double precision");
        assert_eq!(normalize_type("float4"), "real");
        assert_eq!(normalize_type("real"), "real");
        assert_eq!(normalize_type("bool"), "boolean");
    }

    #[test]
    fn time_types() {
        assert_eq!(normalize_type("timestamp"), "timestamp without time zone");
        assert_eq!(normalize_type("TIMESTAMPTZ"), "timestamp with time zone");
        assert_eq!(
            normalize_type("timestamptz(3)"),
            "timestamp(3) with time zone"
        );
        assert_eq!(
            normalize_type("timestamp(6) without time zone"),
            "timestamp(6) without time zone"
        );
        assert_eq!(
            normalize_type("timestamp with time zone"),
            "timestamp with time zone"
        );
        assert_eq!(normalize_type("time"), "time without time zone");
        assert_eq!(normalize_type("timetz"), "time with time zone");
        assert_eq!(
            normalize_type("time(2) with time zone"),
            "time(2) with time zone"
        );
        assert_eq!(normalize_type("date"), "date");
        assert_eq!(normalize_type("interval"), "interval");
    }

    #[test]
    fn bit_types() {
        assert_eq!(normalize_type("bit"), "bit(1)");
        assert_eq!(normalize_type("varbit(8)"), "bit varying(8)");
        assert_eq!(normalize_type("bit varying"), "bit varying");
    }

    #[test]
    fn arrays() {
        assert_eq!(normalize_type("text[]"), "text[]");
        assert_eq!(normalize_type("_text"), "text[]");
        assert_eq!(normalize_type("int[]"), "integer[]");
        assert_eq!(normalize_type("_int4"), "integer[]");
        assert_eq!(normalize_type("integer[][]"), "integer[]");
        assert_eq!(normalize_type("int[3]"), "integer[]");
        assert_eq!(normalize_type("varchar(20)[]"), "character varying(20)[]");
        assert_eq!(normalize_type("text ARRAY"), "text[]");
        assert_eq!(
            normalize_type("timestamptz []"),
            "timestamp with time zone[]"
        );
    }

    #[test]
    fn unknown_types_pass_through_lowercased() {
        assert_eq!(normalize_type("JSONB"), "jsonb");
        assert_eq!(normalize_type("uuid"), "uuid");
        assert_eq!(normalize_type("Public.My_Type"), "public.my_type");
        assert_eq!(normalize_type("\"MyType\""), "\"MyType\"");
        assert_eq!(
            normalize_type("  geometry ( Point , 4326 ) "),
            "geometry(point,4326)"
        );
        assert_eq!(normalize_type("_my_type"), "_my_type");
        assert_eq!(normalize_type("serial"), "serial");
        assert_eq!(normalize_type(""), "");
    }

    #[test]
    fn defaults_lowercase_functions_and_keep_value_functions_capitalised() {
        assert_eq!(normalize_default("NOW()"), "now()");
        assert_eq!(normalize_default("now( )"), "now()");
        assert_eq!(normalize_default("current_timestamp"), "CURRENT_TIMESTAMP");
        assert_eq!(normalize_default("CURRENT_TIMESTAMP"), "CURRENT_TIMESTAMP");
        assert_eq!(
            normalize_default("current_timestamp(3)"),
            "CURRENT_TIMESTAMP(3)"
        );
        assert_eq!(normalize_default("Gen_Random_Uuid()"), "gen_random_uuid()");
        assert_eq!(normalize_default("TRUE"), "true");
    }

    #[test]
    fn defaults_drop_casts_on_literals() {
        assert_eq!(normalize_default("'draft'::text"), "'draft'");
        assert_eq!(normalize_default("'draft'"), "'draft'");
        assert_eq!(normalize_default("'x'::character varying"), "'x'");
        assert_eq!(normalize_default("'x'::character varying(20)"), "'x'");
        assert_eq!(normalize_default("'{}'::jsonb"), "'{}'");
        assert_eq!(normalize_default("'-1'::integer"), "-1");
        assert_eq!(normalize_default("-1"), "-1");
        assert_eq!(normalize_default("'0'::double precision"), "0");
        assert_eq!(normalize_default("0"), "0");
        assert_eq!(normalize_default("1.50"), "1.50");
        assert_eq!(normalize_default("'1.50'::numeric"), "1.50");
        assert_eq!(
            normalize_default("'2024-01-01 00:00:00'::timestamp without time zone"),
            "'2024-01-01 00:00:00'"
        );
        assert_eq!(normalize_default("NULL::text"), "null");
        assert_eq!(normalize_default("CAST('a' AS text)"), "'a'");
        assert_eq!(normalize_default("nextval('s'::regclass)"), "nextval('s')");
        assert_eq!(normalize_default("'it''s'::text"), "'it''s'");
    }

    #[test]
    fn defaults_drop_typed_literal_prefixes_and_parentheses() {
        assert_eq!(normalize_default("interval '1 day'"), "'1 day'");
        assert_eq!(normalize_default("'1 day'::interval"), "'1 day'");
        assert_eq!(normalize_default("(now())"), "now()");
        assert_eq!(normalize_default("((now()))"), "now()");
        assert_eq!(
            normalize_default("(now() + '1 day'::interval)"),
            "now()+'1 day'"
        );
        assert_eq!(
            normalize_default("now()  +  interval '1 day'"),
            "now()+'1 day'"
        );
        assert_eq!(normalize_default("('now'::text)::date"), "'now'");
        assert_eq!(normalize_default("(a) + (b)"), "(a)+(b)");
        assert_eq!(
            normalize_default("((EXTRACT(epoch FROM now()) * (1000)::numeric))::bigint"),
            normalize_default("(extract(epoch from now()) * 1000)::bigint")
        );
    }

    #[test]
    fn escape_strings_compare_as_the_plain_strings_postgres_prints() {
        assert_eq!(normalize_default("E'a\\nb'"), "'a\nb'");
        assert_eq!(normalize_default("'a\nb'::text"), "'a\nb'");
        assert_eq!(normalize_default("e'it\\'s'"), "'it''s'");
        assert_eq!(normalize_default("E'\\x41'"), "E'\\x41'");
        assert_eq!(normalize_default("E'it''s'"), "'it''s'");
    }

    #[test]
    fn defaults_never_panic_on_broken_input() {
        for input in [
            "'unterminated",
            "\"quoted",
            "((",
            "))",
            "::",
            "e'\\",
            "CAST(",
            "'a'::",
            "",
        ] {
            let _ = normalize_default(input);
            let _ = normalize_type(input);
        }
        assert_eq!(normalize_default("'unterminated"), "'unterminated");
    }
}

#[cfg(test)]
mod check_expression_tests {
    use super::*;

    #[test]
    fn hand_spelled_checks_compare_equal_to_what_postgres_prints() {
        for (hand, deparsed) in [
            ("price >= 0", "(price >= (0)::numeric)"),
            ("VALUE > 0", "(VALUE > 0)"),
            ("qty > 0 AND qty < 100", "((qty > 0) AND (qty < 100))"),
            ("length(name) <= 40", "(length(name) <= 40)"),
            ("status <> 'x'", "(status <> 'x'::text)"),
            ("price >= 0.5", "(price >= 0.5)"),
            (
                "status IN ('a', 'b')",
                "(status = ANY (ARRAY['a'::text, 'b'::text]))",
            ),
            ("status NOT IN ('a')", "(status <> ALL (ARRAY['a'::text]))"),
            (
                "qty in (1, 2) and qty > 0",
                "((qty = ANY (ARRAY[1, 2])) AND (qty > 0))",
            ),
        ] {
            assert_eq!(
                normalize_default(hand),
                normalize_default(deparsed),
                "{hand} vs {deparsed}"
            );
        }
        assert_ne!(
            normalize_default("price >= 0"),
            normalize_default("price > 0")
        );
    }

    #[test]
    fn expression_names_skip_function_calls() {
        assert_eq!(
            expression_names("length(name) <= 40 AND \"Qty\" > qty"),
            ["name", "and", "Qty", "qty"]
        );
    }
}
