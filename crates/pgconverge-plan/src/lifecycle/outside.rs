//! What a joining node's bootstrap carries from its donor besides rows: the routines, views,
//! materialized views, user triggers on configured tables, row-level security policies and
//! flags, and grants that the config does not describe.
//!
//! They are created in the joiner's copy transaction after the rows and before the
//! membership record: a failed join leaves none of them, triggers do not see the copied rows
//! (a trigger enabled `ALWAYS` would otherwise fire for each), `COPY FROM` runs before row
//! security is enabled, and a materialized view is filled from the copied rows. Routines come
//! first with `check_function_bodies` off (as a restore does), then views in dependency
//! order, then triggers, policies, row security and grants.
//!
//! An object the joiner already has with the donor's definition is not created again; one
//! with another definition, or a grant or policy naming a role the joiner's server lacks,
//! blocks the plan: pgconverge neither overwrites what it did not make nor creates roles.

use std::collections::BTreeSet;

use pgconverge_model::catalog::{
    GrantCatalog, NodeCatalog, PolicyDefinition, QualifiedName, RoutineDefinition, TriggerCatalog,
    ViewDefinition,
};
use pgconverge_model::naming::INTERNAL_SCHEMA;
use pgconverge_sql::{quote_ident, quote_literal, quote_qualified};
use serde::{Deserialize, Serialize};

use crate::desired::DesiredNode;
use crate::prereq::Blocker;

#[cfg(test)]
mod tests;

/// One object a bootstrap creates on the joining node, with its statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedObject {
    /// `function`, `procedure`, `view`, `materialized view`, `trigger`, `policy`,
    /// `row security` or `grant`.
    pub kind: String,
    /// e.g. `public.f(integer)`, `public.v`, `t_audit on public.t`,
    /// `SELECT, INSERT on table public.t to app`.
    pub name: String,
    pub sql: Vec<String>,
}

/// What the donor holds outside the model and the joiner will get.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carried {
    pub objects: Vec<CarriedObject>,
    /// Views the joiner cannot hold, with why: they read relations the config does not hold.
    pub left_behind: Vec<String>,
}

/// The statements, in order, the joiner runs after the copied rows.
pub fn carried_sql(objects: &[CarriedObject]) -> Vec<String> {
    if objects.is_empty() {
        return Vec::new();
    }
    // A SQL function's body may name a view created after it; the body is checked when it
    // runs, as in a restore.
    std::iter::once("SET LOCAL check_function_bodies = off".to_string())
        .chain(objects.iter().flat_map(|o| o.sql.iter().cloned()))
        .collect()
}

/// `3 views, 2 functions, 1 trigger, 1 policy, 4 grants` (kinds in creation order).
pub fn describe_carried(objects: &[CarriedObject]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for o in objects {
        match counts.iter_mut().find(|(k, _)| *k == o.kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((&o.kind, 1)),
        }
    }
    counts
        .iter()
        .map(|(kind, n)| format!("{n} {}", plural(kind, *n)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(kind: &str, n: usize) -> String {
    match (kind, n) {
        (_, 1) => kind.to_string(),
        ("policy", _) => "policies".into(),
        ("row security", _) => "row security settings".into(),
        _ => format!("{kind}s"),
    }
}

/// What `node` gets from `donor`, or a blocker when the joiner holds a different definition
/// of one of them or lacks a role they name.
pub fn carried_objects(
    node: &DesiredNode,
    donor_name: &str,
    donor: &NodeCatalog,
    joiner: &NodeCatalog,
) -> Result<Carried, Blocker> {
    let tables: BTreeSet<&QualifiedName> = node.tables.iter().map(|t| &t.name).collect();
    let mut carried = Carried::default();
    let mut differing = Vec::new();
    let routines = routines(donor, joiner, &mut carried, &mut differing);
    let views = views(&tables, donor, joiner, &mut carried, &mut differing);
    triggers(
        &tables,
        &routines,
        donor,
        joiner,
        &mut carried,
        &mut differing,
    );
    let policy_roles = policies(&tables, donor, joiner, &mut carried, &mut differing);
    row_security(&tables, donor, joiner, &mut carried);
    let sequences: BTreeSet<&QualifiedName> = tables
        .iter()
        .filter_map(|t| donor.tables.get(*t))
        .flat_map(|t| t.key_sequences.iter().map(|k| &k.sequence))
        .collect();
    let exists = |g: &GrantCatalog| match g.object_kind.as_str() {
        "SCHEMA" => node.schemas.contains(&g.name.name),
        "TABLE" => tables.contains(&g.name) || views.contains(&g.name),
        "SEQUENCE" => sequences.contains(&g.name),
        _ => routines.contains(&(g.name.clone(), g.arguments.clone())),
    };
    let grant_roles = grants(donor, joiner, exists, &mut carried);
    if !differing.is_empty() {
        return Err(Blocker {
            node: node.name.clone(),
            setting: "objects outside the model".into(),
            current: format!("differ from {donor_name}'s: {}", differing.join(", ")),
            required: format!("none of them, or {donor_name}'s definitions"),
            fix: format!(
                "drop them on {} or make them equal to {donor_name}'s, then plan again",
                node.name
            ),
        });
    }
    let missing: BTreeSet<&str> = policy_roles
        .into_iter()
        .chain(grant_roles)
        .filter(|r| !joiner.outside.roles.iter().any(|have| have == r))
        .collect();
    if !missing.is_empty() {
        let roles = missing.into_iter().collect::<Vec<_>>().join(", ");
        return Err(Blocker {
            node: node.name.clone(),
            setting: "roles".into(),
            current: format!("missing: {roles}"),
            required: format!(
                "the roles {donor_name}'s grants and policies name (roles are per server)"
            ),
            fix: format!(
                "create {roles} on {}'s server (pgconverge does not create roles), then plan \
                 again",
                node.name
            ),
        });
    }
    Ok(carried)
}

/// Carries the donor's routines the joiner lacks; returns every routine the joiner will have.
fn routines(
    donor: &NodeCatalog,
    joiner: &NodeCatalog,
    carried: &mut Carried,
    differing: &mut Vec<String>,
) -> BTreeSet<(QualifiedName, String)> {
    let key = |r: &RoutineDefinition| (r.name.clone(), r.identity_arguments.clone());
    let mut present: BTreeSet<_> = joiner.outside.routines.iter().map(key).collect();
    for routine in &donor.outside.routines {
        let name = format!("{}({})", routine.name, routine.identity_arguments);
        match joiner
            .outside
            .routines
            .iter()
            .find(|r| key(r) == key(routine))
        {
            Some(live) if live.definition == routine.definition => {}
            Some(_) => differing.push(format!("{} {name}", routine.kind)),
            None => {
                carried.objects.push(CarriedObject {
                    kind: routine.kind.clone(),
                    name,
                    sql: vec![routine.definition.trim_end().to_string()],
                });
                present.insert(key(routine));
            }
        }
    }
    present
}

/// Carries views in dependency order: a view goes once every relation it reads is a
/// configured table or a view already there. Returns every view the joiner will have.
fn views(
    tables: &BTreeSet<&QualifiedName>,
    donor: &NodeCatalog,
    joiner: &NodeCatalog,
    carried: &mut Carried,
    differing: &mut Vec<String>,
) -> BTreeSet<QualifiedName> {
    let mut present: BTreeSet<QualifiedName> = BTreeSet::new();
    let mut pending: Vec<&ViewDefinition> = Vec::new();
    for view in &donor.outside.views {
        match joiner.outside.views.iter().find(|v| v.name == view.name) {
            Some(live) if same_view(live, view) => {
                present.insert(view.name.clone());
            }
            Some(_) => differing.push(format!("{} {}", view_kind(view), view.name)),
            None => pending.push(view),
        }
    }
    loop {
        let (ready, waiting): (Vec<&ViewDefinition>, Vec<&ViewDefinition>) =
            pending.iter().partition(|v| {
                v.depends_on
                    .iter()
                    .all(|d| tables.contains(d) || present.contains(d))
            });
        if ready.is_empty() {
            for view in waiting {
                carried.left_behind.push(format!(
                    "{} {} (reads relations the config does not hold)",
                    view_kind(view),
                    view.name
                ));
            }
            return present;
        }
        for view in ready {
            present.insert(view.name.clone());
            carried.objects.push(CarriedObject {
                kind: view_kind(view).into(),
                name: view.name.to_string(),
                sql: create_view_sql(view),
            });
        }
        pending = waiting;
    }
}

fn same_view(a: &ViewDefinition, b: &ViewDefinition) -> bool {
    (a.materialized, &a.options, &a.query, &a.indexes)
        == (b.materialized, &b.options, &b.query, &b.indexes)
}

fn view_kind(view: &ViewDefinition) -> &'static str {
    if view.materialized {
        "materialized view"
    } else {
        "view"
    }
}

/// `CREATE [MATERIALIZED] VIEW … [WITH (…)] AS …`, a materialized view filled from the rows
/// already copied, then its indexes.
pub fn create_view_sql(view: &ViewDefinition) -> Vec<String> {
    let options = if view.options.is_empty() {
        String::new()
    } else {
        let list = view
            .options
            .iter()
            .map(|o| match o.split_once('=') {
                Some((name, value)) => format!("{} = {}", quote_ident(name), quote_literal(value)),
                None => quote_ident(o),
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(" WITH ({list})")
    };
    let query = view.query.trim().trim_end_matches(';').trim_end();
    let name = quote_qualified(&view.name.schema, &view.name.name);
    let mut sql = vec![if view.materialized {
        format!("CREATE MATERIALIZED VIEW {name}{options} AS\n{query}\nWITH DATA")
    } else {
        format!("CREATE VIEW {name}{options} AS\n{query}")
    }];
    sql.extend(view.indexes.iter().cloned());
    sql
}

/// User triggers (their function outside `_pgconverge`) on the configured tables; one whose
/// function the joiner will not have (outside the configured schemas) stays behind.
fn triggers(
    tables: &BTreeSet<&QualifiedName>,
    routines: &BTreeSet<(QualifiedName, String)>,
    donor: &NodeCatalog,
    joiner: &NodeCatalog,
    carried: &mut Carried,
    differing: &mut Vec<String>,
) {
    let user = |t: &&TriggerCatalog| t.function.schema != INTERNAL_SCHEMA;
    for table in tables {
        let Some(on_donor) = donor.tables.get(*table) else {
            continue;
        };
        let live = joiner.tables.get(*table);
        for trigger in on_donor.triggers.iter().filter(user) {
            let name = format!("{} on {table}", trigger.name);
            let function_there = trigger.function.schema == "pg_catalog"
                || routines.iter().any(|(f, _)| *f == trigger.function);
            match live.and_then(|t| t.triggers.iter().find(|l| l.name == trigger.name)) {
                Some(l) if l.definition == trigger.definition && l.enabled == trigger.enabled => {}
                Some(_) => differing.push(format!("trigger {name}")),
                None if !function_there => carried.left_behind.push(format!(
                    "trigger {name} (its function {} is outside the configured schemas)",
                    trigger.function
                )),
                None => carried.objects.push(CarriedObject {
                    kind: "trigger".into(),
                    name,
                    sql: create_trigger_sql(table, trigger),
                }),
            }
        }
    }
}

/// `pg_get_triggerdef`, then the firing mode when it is not the default.
pub fn create_trigger_sql(table: &QualifiedName, trigger: &TriggerCatalog) -> Vec<String> {
    let mode = match trigger.enabled.as_str() {
        "D" => Some("DISABLE TRIGGER"),
        "R" => Some("ENABLE REPLICA TRIGGER"),
        "A" => Some("ENABLE ALWAYS TRIGGER"),
        _ => None,
    };
    let mut sql = vec![trigger.definition.clone()];
    if let Some(mode) = mode {
        sql.push(format!(
            "ALTER TABLE {} {mode} {}",
            quote_qualified(&table.schema, &table.name),
            quote_ident(&trigger.name)
        ));
    }
    sql
}

/// Policies on configured tables; returns the roles they name.
fn policies<'d>(
    tables: &BTreeSet<&QualifiedName>,
    donor: &'d NodeCatalog,
    joiner: &NodeCatalog,
    carried: &mut Carried,
    differing: &mut Vec<String>,
) -> Vec<&'d str> {
    let mut roles = Vec::new();
    for policy in donor
        .outside
        .policies
        .iter()
        .filter(|p| tables.contains(&p.table))
    {
        let name = format!("{} on {}", policy.name, policy.table);
        let live = joiner
            .outside
            .policies
            .iter()
            .find(|p| p.table == policy.table && p.name == policy.name);
        match live {
            Some(l) if l == policy => {}
            Some(_) => differing.push(format!("policy {name}")),
            None => {
                roles.extend(policy.roles.iter().map(String::as_str));
                carried.objects.push(CarriedObject {
                    kind: "policy".into(),
                    name,
                    sql: vec![create_policy_sql(policy)],
                });
            }
        }
    }
    roles
}

pub fn create_policy_sql(policy: &PolicyDefinition) -> String {
    let roles = if policy.roles.is_empty() {
        "PUBLIC".to_string()
    } else {
        policy
            .roles
            .iter()
            .map(|r| quote_ident(r))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut sql = format!(
        "CREATE POLICY {} ON {} AS {} FOR {} TO {roles}",
        quote_ident(&policy.name),
        quote_qualified(&policy.table.schema, &policy.table.name),
        if policy.permissive {
            "PERMISSIVE"
        } else {
            "RESTRICTIVE"
        },
        command_keyword(&policy.command),
    );
    if let Some(using) = &policy.using {
        sql.push_str(&format!(" USING ({using})"));
    }
    if let Some(check) = &policy.with_check {
        sql.push_str(&format!(" WITH CHECK ({check})"));
    }
    sql
}

/// The command as a keyword; introspection only ever yields these.
fn command_keyword(command: &str) -> &'static str {
    match command {
        "SELECT" => "SELECT",
        "INSERT" => "INSERT",
        "UPDATE" => "UPDATE",
        "DELETE" => "DELETE",
        _ => "ALL",
    }
}

/// Row-level security enabled or forced on the donor's configured tables, where the joiner
/// does not have it yet.
fn row_security(
    tables: &BTreeSet<&QualifiedName>,
    donor: &NodeCatalog,
    joiner: &NodeCatalog,
    carried: &mut Carried,
) {
    for flags in donor
        .outside
        .row_security
        .iter()
        .filter(|r| tables.contains(&r.table))
    {
        let live = joiner
            .outside
            .row_security
            .iter()
            .find(|r| r.table == flags.table);
        let table = quote_qualified(&flags.table.schema, &flags.table.name);
        let mut sql = Vec::new();
        if flags.enabled && !live.is_some_and(|l| l.enabled) {
            sql.push(format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"));
        }
        if flags.forced && !live.is_some_and(|l| l.forced) {
            sql.push(format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY"));
        }
        if !sql.is_empty() {
            carried.objects.push(CarriedObject {
                kind: "row security".into(),
                name: flags.table.to_string(),
                sql,
            });
        }
    }
}

/// The donor's grants on objects the joiner will have and that the joiner lacks, one
/// statement per object, grantee and grant option; returns the roles they name.
fn grants<'d>(
    donor: &'d NodeCatalog,
    joiner: &NodeCatalog,
    exists: impl Fn(&GrantCatalog) -> bool,
    carried: &mut Carried,
) -> Vec<&'d str> {
    let missing: Vec<&GrantCatalog> = donor
        .outside
        .grants
        .iter()
        .filter(|g| exists(g) && !is_default(g) && !joiner.outside.grants.contains(g))
        .collect();
    let mut roles = Vec::new();
    let mut groups: Vec<(&GrantCatalog, Vec<&str>)> = Vec::new();
    for g in missing {
        let same = |(h, _): &&mut (&GrantCatalog, Vec<&str>)| {
            (
                &h.object_kind,
                &h.name,
                &h.arguments,
                &h.grantee,
                h.grantable,
            ) == (
                &g.object_kind,
                &g.name,
                &g.arguments,
                &g.grantee,
                g.grantable,
            )
        };
        match groups.iter_mut().find(same) {
            Some((_, privileges)) => privileges.push(&g.privilege),
            None => groups.push((g, vec![&g.privilege])),
        }
    }
    for (g, privileges) in groups {
        let Some((sql, name)) = grant_sql(g, &privileges) else {
            continue;
        };
        if !g.grantee.is_empty() {
            roles.push(g.grantee.as_str());
        }
        carried.objects.push(CarriedObject {
            kind: "grant".into(),
            name,
            sql: vec![sql],
        });
    }
    roles
}

/// What a new routine has without any grant: `EXECUTE` for `PUBLIC`.
fn is_default(g: &GrantCatalog) -> bool {
    matches!(g.object_kind.as_str(), "FUNCTION" | "PROCEDURE")
        && g.grantee.is_empty()
        && g.privilege == "EXECUTE"
        && !g.grantable
}

/// `GRANT SELECT, INSERT ON TABLE public.t TO app`, and how the plan names it; `None` when
/// no privilege is one PostgreSQL names.
pub fn grant_sql(g: &GrantCatalog, privileges: &[&str]) -> Option<(String, String)> {
    let privileges: Vec<&str> = privileges
        .iter()
        .filter_map(|p| privilege_keyword(p))
        .collect();
    if privileges.is_empty() {
        return None;
    }
    let (object, shown) = match g.object_kind.as_str() {
        "SCHEMA" => (
            format!("SCHEMA {}", quote_ident(&g.name.name)),
            format!("schema {}", g.name.name),
        ),
        kind @ ("FUNCTION" | "PROCEDURE") => (
            format!(
                "{kind} {}({})",
                quote_qualified(&g.name.schema, &g.name.name),
                g.arguments
            ),
            format!("{} {}({})", kind.to_lowercase(), g.name, g.arguments),
        ),
        "SEQUENCE" => (
            format!("SEQUENCE {}", quote_qualified(&g.name.schema, &g.name.name)),
            format!("sequence {}", g.name),
        ),
        _ => (
            format!("TABLE {}", quote_qualified(&g.name.schema, &g.name.name)),
            format!("table {}", g.name),
        ),
    };
    let grantee = if g.grantee.is_empty() {
        "PUBLIC".to_string()
    } else {
        quote_ident(&g.grantee)
    };
    let list = privileges.join(", ");
    let option = if g.grantable {
        " WITH GRANT OPTION"
    } else {
        ""
    };
    let shown_grantee = if g.grantee.is_empty() {
        "PUBLIC"
    } else {
        &g.grantee
    };
    Some((
        format!("GRANT {list} ON {object} TO {grantee}{option}"),
        format!("{list} on {shown} to {shown_grantee}"),
    ))
}

/// The privilege as a keyword; `aclexplode` only ever yields these.
fn privilege_keyword(privilege: &str) -> Option<&'static str> {
    [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "TRUNCATE",
        "REFERENCES",
        "TRIGGER",
        "USAGE",
        "CREATE",
        "EXECUTE",
        "MAINTAIN",
    ]
    .into_iter()
    .find(|k| *k == privilege)
}
