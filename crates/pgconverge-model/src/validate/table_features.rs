//! Checks of generated columns, index features (method, expression keys, INCLUDE, partial
//! predicate) and foreign key rules (actions, deferrability): each problem located at the
//! field that causes it.

use super::{backticked, display_table, is_serial_type, Findings, Layout};
use crate::config::{TableConfig, FOREIGN_KEY_ACTIONS, INDEX_METHODS};
use crate::source_map::quoted;

/// Methods that can store INCLUDE columns.
const METHODS_WITH_INCLUDE: &[&str] = &["btree", "gist", "spgist"];

/// A generated column has an expression, and no default, identity or serial type; it is
/// not part of the primary key (replication names rows by values it ships) nor a
/// compatibility column (pgconverge writes those).
pub(super) fn check_generated_column(
    t: usize,
    c: usize,
    table: &TableConfig,
    layout: &dyn Layout,
    findings: &mut Findings<'_>,
) {
    let file = layout.tables_file();
    let Some(column) = table.columns.get(c) else {
        return;
    };
    let Some(expression) = &column.generated else {
        return;
    };
    let at = layout.column_field(t, c, "generated");
    if expression.trim().is_empty() {
        findings.error(
            file,
            &at,
            "generated expression is empty; leave the field out for an ordinary column",
        );
    }
    if column.default.is_some() {
        findings.error(
            file,
            &layout.column_default(t, c),
            "a generated column's value is its expression: remove the default",
        );
    }
    if column.identity.is_some() {
        findings.error(
            file,
            &layout.column_field(t, c, "identity"),
            "a column is either generated or an identity column, not both",
        );
    }
    if is_serial_type(&column.data_type) {
        findings.error(
            file,
            &layout.column_type(t, c),
            format!(
                "{} draws its values from a sequence; a generated column is declared with the type of its expression",
                quoted(&column.data_type)
            ),
        );
    }
    if table.primary_key.contains(&column.name) {
        findings.error(
            file,
            &at,
            format!(
                "{} is in the primary key of {}; a key column cannot be generated",
                quoted(&column.name),
                quoted(&display_table(table))
            ),
        );
    }
    let legacy = [
        table.legacy_columns.updated_at.as_deref(),
        table.legacy_columns.origin_node.as_deref(),
    ];
    if legacy.contains(&Some(column.name.as_str())) {
        findings.error(
            file,
            &at,
            format!(
                "{} is a legacy column, which pgconverge writes on every local write; it cannot be generated",
                quoted(&column.name)
            ),
        );
    }
}

/// An index's keys are `columns` or `expressions` (not both), its method is known, INCLUDE
/// is given only to methods that store it, and no expression or predicate is empty.
pub(super) fn check_index(
    t: usize,
    i: usize,
    table: &TableConfig,
    layout: &dyn Layout,
    findings: &mut Findings<'_>,
) {
    let file = layout.tables_file();
    let Some(index) = table.indexes.get(i) else {
        return;
    };
    let expressions_at = layout.index_field(t, i, "expressions");
    if !index.columns.is_empty() && !index.expressions.is_empty() {
        findings.error(
            file,
            &expressions_at,
            "give the keys as `columns` or as `expressions`, not both (an expression may be a plain column name)",
        );
    }
    for (k, expression) in index.expressions.iter().enumerate() {
        if expression.trim().is_empty() {
            findings.error(file, &expressions_at.index(k), "index expression is empty");
        }
    }
    let method = index.method();
    if !INDEX_METHODS.contains(&method) {
        findings.error(
            file,
            &layout.index_field(t, i, "method"),
            format!(
                "unknown index method {}; expected one of {}",
                quoted(method),
                backticked(INDEX_METHODS)
            ),
        );
    } else if method == "hash" && index.columns.len() + index.expressions.len() > 1 {
        findings.error(
            file,
            &layout.index_field(t, i, "method"),
            "a hash index has exactly one key",
        );
    }
    if !index.include.is_empty() && !METHODS_WITH_INCLUDE.contains(&method) {
        findings.error(
            file,
            &layout.index_field(t, i, "include"),
            format!(
                "a {} index cannot store INCLUDE columns; only {} can",
                quoted(method),
                backticked(METHODS_WITH_INCLUDE)
            ),
        );
    }
    if index
        .predicate
        .as_deref()
        .is_some_and(|p| p.trim().is_empty())
    {
        findings.error(
            file,
            &layout.index_field(t, i, "where"),
            "index predicate is empty; leave `where` out for an index of every row",
        );
    }
}

/// Known actions; `set null` only on columns that may hold NULL; no action but `no action`
/// or `restrict` touching a generated column on update; `initially_deferred` only with
/// `deferrable`.
pub(super) fn check_foreign_key_rules(
    t: usize,
    table: &TableConfig,
    f: usize,
    layout: &dyn Layout,
    findings: &mut Findings<'_>,
) {
    let file = layout.tables_file();
    let Some(fk) = table.foreign_keys.get(f) else {
        return;
    };
    let at = layout.foreign_key(t, f);
    for (field, clause, action) in [
        ("on_delete", "ON DELETE", &fk.on_delete),
        ("on_update", "ON UPDATE", &fk.on_update),
    ] {
        let Some(action) = action else {
            continue;
        };
        if !FOREIGN_KEY_ACTIONS.contains(&action.as_str()) {
            findings.error(
                file,
                &at.key(field),
                format!(
                    "unknown {clause} action {}; expected one of {}",
                    quoted(action),
                    backticked(FOREIGN_KEY_ACTIONS)
                ),
            );
            continue;
        }
        for name in &fk.columns {
            let Some(column) = table.column(name) else {
                continue;
            };
            let problem =
                if action == "set null" && (table.primary_key.contains(name) || !column.nullable) {
                    Some(format!(
                        "{clause} set null would set {} to NULL, but it is {}",
                        quoted(name),
                        if table.primary_key.contains(name) {
                            "part of the primary key"
                        } else {
                            "NOT NULL"
                        }
                    ))
                } else if column.generated.is_some()
                    && (field == "on_update" && action != "no action" && action != "restrict"
                        || action.starts_with("set "))
                {
                    Some(format!(
                        "{clause} {action} would write {}, but it is a generated column",
                        quoted(name)
                    ))
                } else {
                    None
                };
            if let Some(problem) = problem {
                findings.error(file, &at.key(field), problem);
            }
        }
    }
    if fk.initially_deferred && !fk.deferrable {
        findings.error(
            file,
            &at.key("initially_deferred"),
            "only a deferrable foreign key can be initially deferred: add `\"deferrable\": true`",
        );
    }
}
