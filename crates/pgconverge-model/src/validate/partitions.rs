//! Checks of partitioned tables: a key of the table's columns, keys PostgreSQL accepts on a
//! partitioned table (each includes every key column), partitions named once across the
//! schema, bounds of the key's strategy, and dropped partitions configured nowhere else.

use std::collections::HashMap;

use crate::config::{PartitionStrategy, TableConfig};
use crate::partitioning::normalize_bound;
use crate::source_map::{quoted, FieldPath};

use super::{check_column_list, display_table, identifier_problem, Findings, Layout, Parts};

/// Runs the checks of every table's partitioning.
pub(super) fn check(parts: &Parts<'_>, layout: &dyn Layout, findings: &mut Findings<'_>) {
    // Every relation name of a schema: configured tables first, then partitions.
    let mut relations: HashMap<(&str, &str), FieldPath> = parts
        .tables
        .iter()
        .map(|&(t, table)| {
            (
                (table.schema.as_str(), table.name.as_str()),
                layout.table(t),
            )
        })
        .collect();
    for &(t, table) in &parts.tables {
        check_key(t, table, layout, findings);
        check_partitions(t, table, &mut relations, layout, findings);
        check_dropped_partitions(t, table, layout, findings);
    }
}

fn check_key(t: usize, table: &TableConfig, layout: &dyn Layout, findings: &mut Findings<'_>) {
    let file = layout.tables_file();
    let Some(key) = &table.partition_by else {
        return;
    };
    let at = layout.table_field(t, "partition_by").key("columns");
    if key.columns.is_empty() {
        findings.error(file, &at, "a partition key needs at least one column");
        return;
    }
    if key.strategy == PartitionStrategy::List && key.columns.len() > 1 {
        findings.error(
            file,
            &at,
            "a list partition key has exactly one column; use `range` for several",
        );
    }
    check_column_list(table, &key.columns, &at, file, findings);
    let missing = |columns: &[String]| -> Vec<String> {
        key.columns
            .iter()
            .filter(|c| !columns.contains(c) && table.column(c).is_some())
            .map(|c| quoted(c))
            .collect()
    };
    let lacking = missing(&table.primary_key);
    if !table.primary_key.is_empty() && !lacking.is_empty() {
        findings.error(
            file,
            &layout.primary_key(t),
            format!(
                "the primary key of a partitioned table must include every partition key column (PostgreSQL enforces it in each partition alone); add {}",
                lacking.join(", ")
            ),
        );
    }
    for (u, columns) in table.unique.iter().enumerate() {
        let lacking = missing(columns);
        if !columns.is_empty() && !lacking.is_empty() {
            findings.error(
                file,
                &layout.unique(t, u),
                format!(
                    "a UNIQUE constraint of a partitioned table must include every partition key column (PostgreSQL enforces it in each partition alone); add {}",
                    lacking.join(", ")
                ),
            );
        }
    }
}

fn check_partitions<'a>(
    t: usize,
    table: &'a TableConfig,
    relations: &mut HashMap<(&'a str, &'a str), FieldPath>,
    layout: &dyn Layout,
    findings: &mut Findings<'_>,
) {
    let file = layout.tables_file();
    let list = layout.table_field(t, "partitions");
    let Some(key) = &table.partition_by else {
        if !table.partitions.is_empty() {
            findings.error(
                file,
                &list,
                format!(
                    "table {} has partitions but no `partition_by`; say how rows choose their partition",
                    quoted(&display_table(table))
                ),
            );
        }
        return;
    };
    let mut default_at: Option<FieldPath> = None;
    for (p, partition) in table.partitions.iter().enumerate() {
        let entry = list.index(p);
        let name_at = entry.key("name");
        if let Some(problem) = identifier_problem("partition name", &partition.name) {
            findings.error(file, &name_at, problem);
        } else if let Some(first) = relations.get(&(table.schema.as_str(), partition.name.as_str()))
        {
            findings.error(
                file,
                &name_at,
                format!(
                    "{} is already used at {first}; a partition is a table of the schema, so its name must be unused there",
                    quoted(&partition.name)
                ),
            );
        } else {
            relations.insert((&table.schema, &partition.name), name_at.clone());
        }
        let bounds_at = entry.key("bounds");
        let bound = normalize_bound(&partition.bounds);
        if partition.bounds.trim().is_empty() {
            findings.error(file, &bounds_at, "bounds are empty");
        } else if bound == "default" {
            if key.strategy == PartitionStrategy::Hash {
                findings.error(
                    file,
                    &bounds_at,
                    "a hash-partitioned table has no DEFAULT partition",
                );
            } else if let Some(first) = &default_at {
                findings.error(
                    file,
                    &bounds_at,
                    format!("a table has one DEFAULT partition; another is at {first}"),
                );
            } else {
                default_at = Some(bounds_at);
            }
        } else if !bound.starts_with(expected_bound_start(key.strategy)) {
            findings.error(file, &bounds_at, bound_advice(key.strategy));
        }
    }
}

/// How a bound of `strategy` starts once normalised.
fn expected_bound_start(strategy: PartitionStrategy) -> &'static str {
    match strategy {
        PartitionStrategy::Range => "from(",
        PartitionStrategy::List => "in(",
        PartitionStrategy::Hash => "with(",
    }
}

fn bound_advice(strategy: PartitionStrategy) -> &'static str {
    match strategy {
        PartitionStrategy::Range => {
            "a range partition's bounds are `FROM (…) TO (…)` or `DEFAULT`, e.g. `FROM ('2026-01-01') TO ('2027-01-01')`"
        }
        PartitionStrategy::List => {
            "a list partition's bounds are `IN (…)` or `DEFAULT`, e.g. `IN ('eu', 'uk')`"
        }
        PartitionStrategy::Hash => {
            "a hash partition's bounds are `WITH (MODULUS m, REMAINDER r)`"
        }
    }
}

/// A dropped partition is configured nowhere else, and named once.
fn check_dropped_partitions(
    t: usize,
    table: &TableConfig,
    layout: &dyn Layout,
    findings: &mut Findings<'_>,
) {
    let file = layout.tables_file();
    for (d, dropped) in table.dropped_partitions.iter().enumerate() {
        let problem = if table.partitions.iter().any(|p| &p.name == dropped) {
            Some(format!(
                "{} is still in partitions; remove it there to drop it",
                quoted(dropped)
            ))
        } else if table.dropped_partitions[..d].contains(dropped) {
            Some(format!("{} is listed twice", quoted(dropped)))
        } else if table.partition_by.is_none() {
            Some("the table has no `partition_by`, so no partitions to drop".to_string())
        } else {
            identifier_problem("dropped partition", dropped)
        };
        if let Some(problem) = problem {
            findings.error(
                file,
                &layout.table_field(t, "dropped_partitions").index(d),
                problem,
            );
        }
    }
}
