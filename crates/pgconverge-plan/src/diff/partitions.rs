//! Partitions of partitioned tables: created with `CREATE TABLE … PARTITION OF`, each with
//! the trigger refusing a TRUNCATE of it alone (statement triggers of the table are not
//! cloned to partitions, so a TRUNCATE of one partition would otherwise not be refused); a
//! partition is dropped only when its table lists it in `dropped_partitions`.
//!
//! Only the partitioned table is replicated: its row triggers are cloned to every partition,
//! and the apply functions write into the table, so each row reaches the partition its key
//! chooses on every node. A partition added to a live table is gated (it goes live on every
//! node together, so no node routes a row elsewhere meanwhile) and, where a DEFAULT partition
//! exists, checked first for rows of its range there, which PostgreSQL would refuse to move.
//!
//! What pgconverge does not change in place is a blocker: a table partitioned otherwise (or
//! not at all) than the config says, and a partition with other bounds.

use pgconverge_model::catalog::{NodeCatalog, PartitionCatalog, QualifiedName, TableCatalog};
use pgconverge_model::partitioning::{bounds_match, normalize_bound, partition_key_sql};

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::conflict::naming::TRUNCATE_TRIGGER;
use crate::desired::{DesiredNode, DesiredPartitioning, DesiredTable};
use crate::diff::NodeDiffInput;
use crate::hazard::{Hazard, HazardKind};
use crate::preflight::DataCheck;
use crate::prereq::Blocker;
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let mut changes = Vec::new();
    for table in &input.desired.tables {
        let Some(partitioning) = &table.partitioning else {
            continue;
        };
        match input.observed.tables.get(&table.name) {
            None => changes.extend(
                partitioning
                    .partitions
                    .iter()
                    .map(|p| created(input, table, &p.name, &p.bounds)),
            ),
            Some(live) if live.partition_key.is_some() => {
                changes.extend(existing_table(input, table, partitioning, live));
            }
            // A table partitioned otherwise is a blocker (`blockers`).
            Some(_) => {}
        }
    }
    changes
}

fn existing_table(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    partitioning: &DesiredPartitioning,
    live: &TableCatalog,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let default = live.partitions.iter().find(|p| is_default(&p.bound));
    for partition in &partitioning.partitions {
        match live.partitions.iter().find(|p| p.name == partition.name) {
            None => {
                let mut change = created(input, table, &partition.name, &partition.bounds);
                let scan = default
                    .map(|d| format!(", and its DEFAULT partition {} while it is searched for rows of the new range", d.name))
                    .unwrap_or_default();
                change.hazards.push(Hazard::new(
                    HazardKind::ExclusiveLock,
                    format!("locks the partitioned table against reads and writes while the partition is created{scan}"),
                ));
                if let Some(default) = default {
                    change.data_checks.push(DataCheck::NoRowsInPartitionRange {
                        table: QualifiedName::new(&default.schema, &default.name),
                        key: table.primary_key.columns.clone(),
                        partition: partition.name.clone(),
                        predicate: ddl::bound_predicate(
                            &partitioning.key.columns,
                            &partition.bounds,
                        )
                        .unwrap_or_else(|| "false".to_string()),
                    });
                }
                change.gated = true;
                changes.push(change);
            }
            Some(found) if !found.triggers.iter().any(|t| t == TRUNCATE_TRIGGER) => {
                let mut change = input.change(
                    partition_address(table, &partition.name),
                    Action::Update,
                    vec![Statement::sql(ddl::truncate_trigger_sql(
                        &table.name.schema,
                        &partition.name,
                    ))],
                );
                change.reason = Some("a TRUNCATE of the partition alone is refused".into());
                changes.push(change);
            }
            Some(_) => {}
        }
    }
    for dropped in &partitioning.dropped {
        if let Some(found) = live.partitions.iter().find(|p| &p.name == dropped) {
            changes.push(dropped_partition(input, table, found));
        }
    }
    changes
}

fn partition_address(table: &DesiredTable, name: &str) -> ObjectAddress {
    ObjectAddress::Partition {
        table: table.name.clone(),
        name: name.to_string(),
    }
}

fn created(input: &NodeDiffInput<'_>, table: &DesiredTable, name: &str, bounds: &str) -> Change {
    input.change(
        partition_address(table, name),
        Action::Create,
        vec![
            Statement::sql(ddl::create_partition_sql(&table.name, name, bounds)),
            Statement::sql(ddl::truncate_trigger_sql(&table.name.schema, name)),
        ],
    )
}

/// A partition the table lists in `dropped_partitions`: gated, so no node routes rows of its
/// range to a partition another node no longer has.
fn dropped_partition(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    found: &PartitionCatalog,
) -> Change {
    let mut change = input.change(
        partition_address(table, &found.name),
        Action::Delete,
        vec![Statement::sql(ddl::drop_partition_sql(
            &QualifiedName::new(&found.schema, &found.name),
        ))],
    );
    change.reason = Some("listed in dropped_partitions".into());
    change.hazards.push(Hazard::new(
        HazardKind::Destructive,
        "drops the partition and every row in it on this node",
    ));
    change.gated = true;
    change
}

fn is_default(bound: &str) -> bool {
    normalize_bound(bound) == "default"
}

/// What a plan cannot do to a node's partitioned tables: change how a live table is
/// partitioned, or a live partition's bounds.
pub fn blockers(node: &DesiredNode, observed: &NodeCatalog) -> Vec<Blocker> {
    let mut blockers = Vec::new();
    for table in &node.tables {
        let Some(live) = observed.tables.get(&table.name) else {
            continue;
        };
        let desired_key = table
            .partitioning
            .as_ref()
            .map(|p| partition_key_sql(&p.key));
        if desired_key != live.partition_key {
            let say = |key: &Option<String>| match key {
                Some(key) => format!("partitioned by {key}"),
                None => "not partitioned".to_string(),
            };
            blockers.push(Blocker {
                node: node.name.clone(),
                setting: format!("partitioning of table {}", table.name),
                current: say(&live.partition_key),
                required: say(&desired_key),
                fix: "pgconverge does not re-partition a live table; make the config say what the table is, or move its rows into a new table yourself".into(),
            });
            continue;
        }
        let Some(partitioning) = &table.partitioning else {
            continue;
        };
        for partition in &partitioning.partitions {
            let Some(found) = live.partitions.iter().find(|p| p.name == partition.name) else {
                let name = QualifiedName::new(&table.name.schema, &partition.name);
                if observed.tables.contains_key(&name) {
                    blockers.push(Blocker {
                        node: node.name.clone(),
                        setting: format!("partition {} of {}", partition.name, table.name),
                        current: format!("{name} is a table of its own"),
                        required: format!("a partition of {}", table.name),
                        fix: "rename the partition in the config, or attach the table yourself (ALTER TABLE … ATTACH PARTITION) if its rows belong there".into(),
                    });
                }
                continue;
            };
            if !bounds_match(&partition.bounds, &found.bound) {
                blockers.push(Blocker {
                    node: node.name.clone(),
                    setting: format!("bounds of partition {} of {}", partition.name, table.name),
                    current: found.bound.clone(),
                    required: partition.bounds.clone(),
                    fix: "pgconverge does not move a live partition's bounds; write the bounds PostgreSQL shows, or add a new partition and drop this one through dropped_partitions".into(),
                });
            }
        }
    }
    blockers
}

pub(crate) mod ddl {
    use pgconverge_model::catalog::QualifiedName;
    use pgconverge_sql::{quote_ident, quote_qualified};

    use crate::conflict::naming::{internal, REFUSE_TRUNCATE_FUNCTION, TRUNCATE_TRIGGER};
    use crate::diff::table_sql_name;

    /// `CREATE TABLE … PARTITION OF … FOR VALUES …` (or `DEFAULT`): the bounds are SQL the
    /// config wrote, in PostgreSQL's syntax.
    pub fn create_partition_sql(table: &QualifiedName, name: &str, bounds: &str) -> String {
        let bounds = bounds.trim();
        let bounds = strip_word(bounds, "for")
            .and_then(|rest| strip_word(rest, "values"))
            .unwrap_or(bounds);
        let clause = if bounds.eq_ignore_ascii_case("default") {
            "DEFAULT".to_string()
        } else {
            format!("FOR VALUES {bounds}")
        };
        format!(
            "CREATE TABLE {} PARTITION OF {} {clause}",
            quote_qualified(&table.schema, name),
            table_sql_name(table)
        )
    }

    /// The table's TRUNCATE refusal on one of its partitions.
    pub fn truncate_trigger_sql(schema: &str, partition: &str) -> String {
        let function = internal(REFUSE_TRUNCATE_FUNCTION);
        format!(
            "CREATE OR REPLACE TRIGGER {} BEFORE TRUNCATE ON {} FOR EACH STATEMENT EXECUTE FUNCTION {}",
            quote_ident(TRUNCATE_TRIGGER),
            quote_qualified(schema, partition),
            format_args!("{}()", quote_qualified(&function.schema, &function.name))
        )
    }

    /// Plain DROP TABLE: the partition is detached and its rows go with it.
    pub fn drop_partition_sql(partition: &QualifiedName) -> String {
        format!("DROP TABLE {}", table_sql_name(partition))
    }

    /// A condition true of the rows a partition of `bounds` would hold (for the preflight of
    /// a new partition next to a DEFAULT one), when the bounds are a range or a list.
    /// `FROM (a, MINVALUE) TO (b, c)` compares the columns before `MINVALUE`/`MAXVALUE`.
    pub fn bound_predicate(columns: &[String], bounds: &str) -> Option<String> {
        let text = bounds.trim();
        let text = strip_word(text, "for")
            .and_then(|t| strip_word(t, "values"))
            .unwrap_or(text);
        if let Some(rest) = strip_word(text, "in") {
            let values = split_list(rest.trim())?;
            let column = quote_ident(columns.first()?);
            let (nulls, others): (Vec<&String>, Vec<&String>) =
                values.iter().partition(|v| v.eq_ignore_ascii_case("null"));
            let mut parts = Vec::new();
            if !others.is_empty() {
                let list: Vec<&str> = others.iter().map(|v| v.as_str()).collect();
                parts.push(format!("{column} IN ({})", list.join(", ")));
            }
            if !nulls.is_empty() {
                parts.push(format!("{column} IS NULL"));
            }
            return Some(format!("({})", parts.join(" OR ")));
        }
        let rest = strip_word(text, "from")?;
        let (lower, after) = split_parenthesised(rest)?;
        let upper = strip_word(after.trim(), "to")?;
        let (upper, tail) = split_parenthesised(upper)?;
        if !tail.trim().is_empty() {
            return None;
        }
        let lower = range_side(columns, &split_list(&lower)?, true)?;
        let upper = range_side(columns, &split_list(&upper)?, false)?;
        Some(format!("({lower} AND {upper})"))
    }

    /// One side of a range: the columns before the first `MINVALUE`/`MAXVALUE` compared as a
    /// row; an unbounded side is `true`.
    fn range_side(columns: &[String], values: &[String], lower: bool) -> Option<String> {
        if values.len() != columns.len() {
            return None;
        }
        let cut = values
            .iter()
            .position(|v| v.eq_ignore_ascii_case("minvalue") || v.eq_ignore_ascii_case("maxvalue"));
        let len = cut.unwrap_or(values.len());
        if len == 0 {
            return Some("true".to_string());
        }
        let operator = match (
            lower,
            cut.map(|at| values[at].to_ascii_lowercase()).as_deref(),
        ) {
            (true, Some("maxvalue")) => ">",
            (true, _) => ">=",
            (false, Some("maxvalue")) => "<=",
            (false, _) => "<",
        };
        let cols: Vec<String> = columns[..len].iter().map(|c| quote_ident(c)).collect();
        Some(format!(
            "ROW({}) {operator} ROW({})",
            cols.join(", "),
            values[..len].join(", ")
        ))
    }

    /// `text` without its leading word `word` (any case).
    fn strip_word<'t>(text: &'t str, word: &str) -> Option<&'t str> {
        let head = text.get(..word.len())?;
        let rest = &text[word.len()..];
        let boundary = rest.starts_with(|c: char| c.is_whitespace() || c == '(');
        (head.eq_ignore_ascii_case(word) && boundary).then(|| rest.trim_start())
    }

    /// `(inner) rest` → (`inner`, `rest`), parentheses and quotes nested.
    fn split_parenthesised(text: &str) -> Option<(String, &str)> {
        let text = text.trim_start();
        if !text.starts_with('(') {
            return None;
        }
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        for (at, c) in text.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '(') => depth += 1,
                (None, ')') => {
                    depth -= 1;
                    if depth == 0 {
                        return Some((text[1..at].to_string(), &text[at + 1..]));
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// The items of `(a, b, …)` or of `a, b, …`, split at top-level commas.
    fn split_list(text: &str) -> Option<Vec<String>> {
        let inner = match split_parenthesised(text) {
            Some((inner, rest)) if rest.trim().is_empty() => inner,
            _ => text.to_string(),
        };
        let mut items = Vec::new();
        let mut current = String::new();
        let mut depth = 0i32;
        let mut quote: Option<char> = None;
        for c in inner.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '(') => depth += 1,
                (None, ')') => depth -= 1,
                (None, ',') if depth == 0 => {
                    items.push(current.trim().to_string());
                    current.clear();
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        items.push(current.trim().to_string());
        (!items.iter().any(String::is_empty)).then_some(items)
    }
}

#[cfg(test)]
mod tests;
