//! Checks of enum and domain types (top-level `types`) and of tables' CHECK constraints:
//! names PostgreSQL accepts, exactly one kind per type, labels and check names given once.

use std::collections::HashSet;

use crate::checks::{domain_check_names, table_check_names};
use crate::config::{CheckConfig, TypeConfig};
use crate::naming::INTERNAL_SCHEMA;
use crate::source_map::{quoted, FieldPath};

use super::{identifier_problem, Findings, Layout, Parts};

pub(super) fn check(parts: &Parts<'_>, layout: &dyn Layout, findings: &mut Findings<'_>) {
    let file = layout.tables_file();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for (i, ty) in parts.types.iter().enumerate() {
        let path = FieldPath::root().key("types").index(i);
        let mut problems: Vec<(FieldPath, String)> = Vec::new();
        if let Some(p) = identifier_problem("type name", &ty.name) {
            problems.push((path.key("name"), p));
        } else if !seen.insert((&ty.schema, &ty.name)) {
            problems.push((
                path.key("name"),
                format!("type {} is listed twice", quoted(&display(ty))),
            ));
        } else if parts
            .tables
            .iter()
            .any(|(_, t)| t.schema == ty.schema && t.name == ty.name)
        {
            problems.push((
                path.key("name"),
                format!(
                    "{} is also a table; a table's row type already has that name",
                    quoted(&display(ty))
                ),
            ));
        }
        if let Some(p) = identifier_problem("schema name", &ty.schema) {
            problems.push((path.key("schema"), p));
        } else if ty.schema == INTERNAL_SCHEMA {
            problems.push((
                path.key("schema"),
                format!("schema {INTERNAL_SCHEMA} is reserved for pgconverge"),
            ));
        }
        match (&ty.enum_values, &ty.domain) {
            (Some(_), Some(_)) => problems.push((
                path.key("domain"),
                "a type is either an enum or a domain: give `enum` or `domain`, not both".into(),
            )),
            (None, None) => problems.push((
                path.clone(),
                "a type needs `enum` (its labels) or `domain` (its base type)".into(),
            )),
            (Some(labels), None) => enum_problems(&path, ty, labels, &mut problems),
            (None, Some(base)) => {
                if base.trim().is_empty() {
                    problems.push((path.key("domain"), "the base type is empty".into()));
                }
                let names = domain_check_names(ty);
                check_list(&path.key("checks"), &ty.checks, &names, &mut problems);
            }
        }
        for (path, problem) in problems {
            findings.error(file, &path, problem);
        }
    }
    check_dropped_types(parts, findings, file);
    for &(t, table) in &parts.tables {
        let mut problems = Vec::new();
        let names = table_check_names(table);
        check_list(
            &layout.table_field(t, "checks"),
            &table.checks,
            &names,
            &mut problems,
        );
        for (path, problem) in problems {
            findings.error(file, &path, problem);
        }
    }
}

/// A dropped type is configured nowhere else, and names a type once.
fn check_dropped_types(parts: &Parts<'_>, findings: &mut Findings<'_>, file: usize) {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (d, reference) in parts.dropped_types.iter().enumerate() {
        let (schema, name) = reference.split_once('.').unwrap_or(("public", reference));
        let problem = if parts
            .types
            .iter()
            .any(|t| t.schema == schema && t.name == name)
        {
            Some(format!(
                "{} is still in types; remove it there to drop it",
                quoted(reference)
            ))
        } else if seen.contains(&(schema, name)) {
            Some(format!("{} is listed twice", quoted(reference)))
        } else {
            identifier_problem("type name", name)
                .or_else(|| identifier_problem("schema name", schema))
        };
        seen.push((schema, name));
        if let Some(problem) = problem {
            let path = FieldPath::root().key("dropped_types").index(d);
            findings.error(file, &path, problem);
        }
    }
}

fn display(ty: &TypeConfig) -> String {
    format!("{}.{}", ty.schema, ty.name)
}

/// Labels: at least one, each 1 to 63 bytes, none twice; no domain settings.
fn enum_problems(
    path: &FieldPath,
    ty: &TypeConfig,
    labels: &[String],
    problems: &mut Vec<(FieldPath, String)>,
) {
    if labels.is_empty() {
        problems.push((path.key("enum"), "an enum needs at least one label".into()));
    }
    for (l, label) in labels.iter().enumerate() {
        let problem = if labels[..l].contains(label) {
            Some(format!("label {} is listed twice", quoted(label)))
        } else if label.is_empty() {
            Some("a label is empty".to_string())
        } else {
            identifier_problem("label", label)
        };
        if let Some(problem) = problem {
            problems.push((path.key("enum").index(l), problem));
        }
    }
    let domain_only = [
        ("nullable", !ty.nullable),
        ("default", ty.default.is_some()),
        ("checks", !ty.checks.is_empty()),
    ];
    for (field, set) in domain_only {
        if set {
            problems.push((
                path.key(field),
                format!("`{field}` applies to a domain, not to an enum"),
            ));
        }
    }
}

/// Checks of a table or domain: an expression each, names PostgreSQL accepts, none twice.
fn check_list(
    path: &FieldPath,
    checks: &[CheckConfig],
    names: &[String],
    problems: &mut Vec<(FieldPath, String)>,
) {
    for (c, (check, name)) in checks.iter().zip(names).enumerate() {
        let entry = path.index(c);
        if check.expression.trim().is_empty() {
            problems.push((entry.key("expression"), "the expression is empty".into()));
        }
        let name_path = if check.name.is_some() {
            entry.key("name")
        } else {
            entry.clone()
        };
        let problem = if names[..c].contains(name) {
            Some(format!("check name {} is used twice", quoted(name)))
        } else if check.name.is_none() && name.len() > crate::naming::MAX_IDENTIFIER_BYTES {
            Some(format!(
                "the derived name {} is longer than 63 bytes; give the check a `name`",
                quoted(name)
            ))
        } else {
            identifier_problem("check name", name)
        };
        if let Some(problem) = problem {
            problems.push((name_path, problem));
        }
    }
}
