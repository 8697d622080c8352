//! Functions of the conflict machinery: created when missing, replaced when their body or
//! arguments differ, dropped when pgconverge created them and they are no longer wanted.

use std::collections::BTreeSet;

use pgconverge_model::catalog::{FunctionCatalog, QualifiedName};
use pgconverge_model::types::normalize_type;

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
    let vouched = !live.fingerprint.is_empty();
    let body_read = !live.body_sha256.is_empty();
    // A comment naming the live row vouches that pgconverge wrote this body and nobody
    // replaced it since; its body was read because it was generated from inputs no node
    // has now: the desired body moved, nothing drifted. A vouched body left unread carries
    // what another node's body carries today (a server that changed roles): drift.
    c.applied_as_is = vouched && body_read;
    c.reason = Some(match (vouched, body_read) {
        (true, true) => regenerated_reason(input, f),
        (true, false) => "generated for other inputs".into(),
        (false, _) => "body differs".into(),
    });
    if body_read {
        // Introspection stores the body as PostgreSQL keeps it (prosrc). Shown for drift,
        // and on request for a function regenerated (`plan --diff`).
        let live_body = live.definition.as_str();
        c.body_diff = Some(unified_diff(live_body.trim(), f.body().trim()));
    }
    Some(c)
}

/// What moved under a regenerated function, in a line: the columns its table gains, loses
/// or retypes on this node, or that it comes from other inputs.
fn regenerated_reason(input: &NodeDiffInput<'_>, f: &FunctionDef) -> String {
    let table = f.table().and_then(|name| {
        let desired = input.desired.tables.iter().find(|t| &t.name == name)?;
        Some((desired, input.observed.tables.get(name)?))
    });
    let Some((desired, live)) = table else {
        return "regenerated: generated from other inputs (settings, keys or pgconverge's \
                version)"
            .into();
    };
    let gained: Vec<&str> = desired
        .columns
        .iter()
        .filter(|c| live.column(&c.name).is_none())
        .map(|c| c.name.as_str())
        .collect();
    let lost: Vec<&str> = live
        .columns
        .iter()
        .filter(|lc| !desired.columns.iter().any(|c| c.name == lc.name))
        .map(|lc| lc.name.as_str())
        .collect();
    let retyped: Vec<String> = desired
        .columns
        .iter()
        .filter_map(|c| {
            let lc = live.column(&c.name)?;
            (normalize_type(&lc.data_type) != c.data_type)
                .then(|| format!("{} {} → {}", c.name, lc.data_type, c.data_type))
        })
        .collect();
    let mut parts = Vec::new();
    if !gained.is_empty() {
        parts.push(format!("gained columns {}", gained.join(", ")));
    }
    if !lost.is_empty() {
        parts.push(format!("lost columns {}", lost.join(", ")));
    }
    if !retyped.is_empty() {
        parts.push(format!("column types {}", retyped.join(", ")));
    }
    if parts.is_empty() {
        format!("regenerated: {} is generated from other inputs (keys, conflict settings or pgconverge's version)", desired.name)
    } else {
        format!("regenerated: {} {}", desired.name, parts.join("; "))
    }
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
