//! Functions of the conflict machinery: created when missing, replaced when their body or
//! arguments differ, dropped when pgconverge created them and they are no longer wanted.

use std::collections::BTreeSet;

use pgconverge_model::catalog::{FunctionCatalog, QualifiedName};

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::conflict::FunctionDef;
use crate::diff::NodeDiffInput;
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let mut out: Vec<Change> = input
        .desired
        .functions
        .iter()
        .filter_map(|f| match input.observed.functions.get(&f.name) {
            None => Some(input.change(
                address(&f.name),
                Action::Create,
                vec![
                    Statement::sql(f.create_sql()),
                    Statement::sql(f.comment_sql()),
                ],
            )),
            Some(live) => replaced(input, f, live),
        })
        .collect();
    out.extend(dropped(input));
    out
}

fn address(name: &QualifiedName) -> ObjectAddress {
    ObjectAddress::Function {
        function: name.clone(),
    }
}

/// The live body is the desired one: it carries the fingerprint the desired function was
/// generated from (checked without rendering the body), or it is the same text.
fn function_body_matches(live: &FunctionCatalog, desired: &FunctionDef) -> bool {
    (!live.fingerprint.is_empty() && live.fingerprint == desired.fingerprint)
        || live.body_sha256 == desired.body_sha256()
}

/// The update replacing a live function whose body or arguments differ.
fn replaced(input: &NodeDiffInput<'_>, f: &FunctionDef, live: &FunctionCatalog) -> Option<Change> {
    if function_body_matches(live, f) && live.identity_arguments == f.identity_arguments {
        return None;
    }
    let mut statements = Vec::new();
    if live.identity_arguments != f.identity_arguments {
        // With other arguments CREATE OR REPLACE would add an overload: the old one goes.
        statements.push(Statement::sql(ddl::drop_function_sql(
            &f.name,
            &live.identity_arguments,
        )));
    }
    statements.push(Statement::sql(f.create_sql()));
    statements.push(Statement::sql(f.comment_sql()));
    let mut c = input.change(address(&f.name), Action::Update, statements);
    if live.body_sha256.is_empty() {
        // Not read: its comment vouched for a body generated from other inputs
        // (another node's name, when a server changed roles).
        c.reason = Some("generated for other inputs".into());
    } else {
        c.reason = Some("body differs".into());
        // Introspection stores the body as PostgreSQL keeps it (prosrc).
        let live_body = live.definition.as_str();
        c.body_diff = Some(unified_diff(live_body.trim(), f.body().trim()));
    }
    Some(c)
}

/// Functions pgconverge created that are no longer wanted.
fn dropped(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let desired: BTreeSet<&QualifiedName> =
        input.desired.functions.iter().map(|f| &f.name).collect();
    input
        .observed
        .functions
        .iter()
        .filter(|(name, _)| !desired.contains(name) && input.manages(&address(name)))
        .map(|(name, live)| {
            input.change(
                address(name),
                Action::Delete,
                vec![Statement::sql(ddl::drop_function_if_exists_sql(
                    name,
                    &live.identity_arguments,
                ))],
            )
        })
        .collect()
}

fn unified_diff(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(2)
        .header("live", "planned")
        .to_string()
}

pub(super) mod ddl {
    use pgconverge_model::catalog::QualifiedName;

    use pgconverge_sql::quote_qualified;

    /// `identity_arguments` is the live `pg_get_function_identity_arguments` text.
    pub fn drop_function_sql(name: &QualifiedName, identity_arguments: &str) -> String {
        format!(
            "DROP FUNCTION {}({identity_arguments})",
            quote_qualified(&name.schema, &name.name)
        )
    }

    /// `identity_arguments` is the live `pg_get_function_identity_arguments` text.
    pub fn drop_function_if_exists_sql(name: &QualifiedName, identity_arguments: &str) -> String {
        format!(
            "DROP FUNCTION IF EXISTS {}({identity_arguments})",
            quote_qualified(&name.schema, &name.name)
        )
    }
}
