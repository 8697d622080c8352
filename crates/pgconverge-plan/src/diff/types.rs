//! Enum and domain types. A missing type is created (before the tables that use it); an
//! enum gains new labels in their configured place (`ADD VALUE … BEFORE/AFTER`); a domain's
//! default, NOT NULL and checks follow the config (a check is added `NOT VALID`, then
//! validated). What PostgreSQL cannot do in place (remove or reorder labels, change a
//! domain's base type, turn an enum into a domain) is a blocker, never a silent drop. A type
//! left out of the config is kept; one listed in `dropped_types` is dropped.

use pgconverge_model::catalog::{DomainCatalog, NodeCatalog, TypeCatalog};
use pgconverge_model::config::TypeConfig;
use pgconverge_model::types::{expressions_match, normalize_default, normalize_type};

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::desired::{
    resolve_configured_type, CheckSpec, DesiredNode, DesiredType, DesiredTypeKind,
};
use crate::diff::NodeDiffInput;
use crate::hazard::{Hazard, HazardKind};
use crate::preflight::DataCheck;
use crate::prereq::Blocker;
use crate::statement::Statement;
use pgconverge_model::catalog::QualifiedName;
use pgconverge_model::checks::domain_check_names;

/// The configured types as every node should have them.
pub fn desired_types(types: &[TypeConfig]) -> Vec<DesiredType> {
    types
        .iter()
        .map(|t| DesiredType {
            name: QualifiedName::new(&t.schema, &t.name),
            kind: match (&t.enum_values, &t.domain) {
                (Some(labels), _) => DesiredTypeKind::Enum {
                    labels: labels.clone(),
                },
                (None, base) => DesiredTypeKind::Domain {
                    base_type: resolve_configured_type(
                        &normalize_type(base.as_deref().unwrap_or_default()),
                        types,
                    ),
                    not_null: !t.nullable,
                    default: t.default.clone().filter(|d| normalize_default(d) != "null"),
                    checks: t
                        .checks
                        .iter()
                        .zip(domain_check_names(t))
                        .map(|(c, name)| CheckSpec {
                            name,
                            expression: c.expression.clone(),
                        })
                        .collect(),
                },
            },
        })
        .collect()
}

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let dropped = input.desired.dropped_types.iter().filter_map(|name| {
        let live = input.observed.types.get(name)?;
        Some(dropped_type(input, name, live))
    });
    let wanted = input.desired.types.iter().filter_map(|ty| {
        let address = ObjectAddress::Type {
            name: ty.name.clone(),
        };
        let (action, statements, hazards) = match input.observed.types.get(&ty.name) {
            None => (Action::Create, vec![ddl::create_type_sql(ty)], Vec::new()),
            Some(live) => {
                let managed = input.manages(&address);
                let (statements, hazards) = alter_statements(ty, live, managed)?;
                (Action::Update, statements, hazards)
            }
        };
        let mut change = input.change(
            address,
            action,
            statements.into_iter().map(Statement::sql).collect(),
        );
        change.hazards = hazards;
        if let Some(TypeCatalog::Domain(live)) = input.observed.types.get(&ty.name) {
            change.data_checks = domain_data_checks(input, ty, live);
        }
        // A row using a new label, or written without a new check, must not reach a
        // node that does not have it yet (see `gate`).
        change.gated = action == Action::Update;
        Some(change)
    });
    wanted.chain(dropped).collect()
}

/// A type the config lists in `dropped_types`, with a plain DROP (see `ddl::drop_type_sql`).
fn dropped_type(input: &NodeDiffInput<'_>, name: &QualifiedName, live: &TypeCatalog) -> Change {
    let mut change = input.change(
        ObjectAddress::Type { name: name.clone() },
        Action::Delete,
        vec![Statement::sql(ddl::drop_type_sql(name, live))],
    );
    change.reason = Some("listed in dropped_types".into());
    change.hazards.push(Hazard::new(
        HazardKind::Destructive,
        "drops the type on this node; fails while a column still uses it",
    ));
    change
}

/// The statements bringing a live type to the desired one, `None` when nothing changes or
/// the change is not possible in place (a blocker says so).
fn alter_statements(
    ty: &DesiredType,
    live: &TypeCatalog,
    managed: bool,
) -> Option<(Vec<String>, Vec<Hazard>)> {
    let (statements, hazards) = match (&ty.kind, live) {
        (DesiredTypeKind::Enum { labels }, TypeCatalog::Enum { labels: live }) => {
            if enum_problem(labels, live).is_some() {
                return None;
            }
            (ddl::add_labels_sql(&ty.name, labels, live), Vec::new())
        }
        (
            DesiredTypeKind::Domain {
                base_type,
                not_null,
                default,
                checks,
            },
            TypeCatalog::Domain(live),
        ) => {
            if normalize_type(&live.base_type) != *base_type {
                return None;
            }
            domain_statements(
                &ty.name,
                *not_null,
                default.as_deref(),
                checks,
                live,
                managed,
            )
        }
        _ => return None,
    };
    (!statements.is_empty()).then_some((statements, hazards))
}

fn domain_statements(
    name: &QualifiedName,
    not_null: bool,
    default: Option<&str>,
    checks: &[CheckSpec],
    live: &DomainCatalog,
    managed: bool,
) -> (Vec<String>, Vec<Hazard>) {
    let mut statements = Vec::new();
    let mut hazards = Vec::new();
    if !crate::desired::defaults_match(default, live.default.as_deref()) {
        statements.push(ddl::domain_default_sql(name, default));
    }
    if not_null != live.not_null {
        statements.push(ddl::domain_not_null_sql(name, not_null));
        if not_null {
            hazards.push(Hazard::new(
                HazardKind::FailsOnExistingRows,
                "fails if a column of this domain holds NULL",
            ));
        }
    }
    for check in checks {
        let same = live.checks.iter().find(|c| c.name == check.name);
        match same {
            Some(c) if checks_match(&check.expression, &c.definition) => {
                if is_not_valid(&c.definition) {
                    statements.push(ddl::validate_domain_check_sql(name, &check.name));
                }
            }
            Some(_) => {
                statements.push(ddl::drop_domain_check_sql(name, &check.name));
                statements.extend(ddl::add_domain_check_sql(name, check));
            }
            None => statements.extend(ddl::add_domain_check_sql(name, check)),
        }
        if !same.is_some_and(|c| checks_match(&check.expression, &c.definition)) {
            hazards.push(Hazard::new(
                HazardKind::FailsOnExistingRows,
                format!(
                    "check {} fails if a column of this domain holds a value it refuses",
                    check.name
                ),
            ));
        }
    }
    // A check the config no longer has goes only from a domain pgconverge manages.
    if managed {
        for c in &live.checks {
            if !checks.iter().any(|d| d.name == c.name) {
                statements.push(ddl::drop_domain_check_sql(name, &c.name));
            }
        }
    }
    (statements, hazards)
}

/// What the rows must meet for a domain's new NOT NULL and new checks: checked in every
/// column of the domain in the configured tables, before anything changes.
fn domain_data_checks(
    input: &NodeDiffInput<'_>,
    ty: &DesiredType,
    live: &DomainCatalog,
) -> Vec<DataCheck> {
    let DesiredTypeKind::Domain {
        base_type,
        not_null,
        checks,
        ..
    } = &ty.kind
    else {
        return Vec::new();
    };
    let domain = pgconverge_sql::quote_qualified(&ty.name.schema, &ty.name.name);
    let new_checks: Vec<&CheckSpec> = checks
        .iter()
        .filter(|check| {
            !live.checks.iter().any(|c| {
                c.name == check.name
                    && checks_match(&check.expression, &c.definition)
                    && !is_not_valid(&c.definition)
            })
        })
        .collect();
    let mut out = Vec::new();
    for (table, _) in input.existing_tables() {
        let key = &table.primary_key.columns;
        for column in table.columns.iter().filter(|c| c.data_type == domain) {
            if *not_null && !live.not_null {
                out.push(DataCheck::NoNulls {
                    table: table.name.clone(),
                    key: key.clone(),
                    column: column.name.clone(),
                });
            }
            out.extend(new_checks.iter().map(|check| DataCheck::DomainChecksHold {
                table: table.name.clone(),
                key: key.clone(),
                column: column.name.clone(),
                base_type: base_type.clone(),
                name: check.name.clone(),
                expression: check.expression.clone(),
            }));
        }
    }
    out
}

/// `CHECK ((VALUE > 0)) NOT VALID` → `(VALUE > 0)`.
pub fn check_expression(definition: &str) -> &str {
    let text = definition.trim();
    let text = text.strip_suffix(" NOT VALID").unwrap_or(text);
    let text = text.strip_suffix(" NO INHERIT").unwrap_or(text);
    text.strip_prefix("CHECK ").unwrap_or(text)
}

pub fn is_not_valid(definition: &str) -> bool {
    definition.trim_end().ends_with(" NOT VALID")
}

/// Whether a configured expression and a live definition mean the same check: compared as
/// index and generated expressions are (`expressions_match`: casts and grouping parentheses
/// the server adds are not a difference).
pub fn checks_match(expression: &str, definition: &str) -> bool {
    expressions_match(expression, check_expression(definition))
}

/// Why a live enum cannot become the desired one, if it cannot: a label the config dropped,
/// or labels in another order (PostgreSQL can only add labels).
fn enum_problem(desired: &[String], live: &[String]) -> Option<String> {
    let missing: Vec<&String> = live.iter().filter(|l| !desired.contains(l)).collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|l| format!("'{l}'")).collect();
        return Some(format!(
            "labels {} are not in the config; PostgreSQL cannot remove an enum label",
            list.join(", ")
        ));
    }
    let kept: Vec<&String> = desired.iter().filter(|l| live.contains(l)).collect();
    if kept.iter().copied().ne(live.iter()) {
        return Some(
            "the config orders existing labels differently; PostgreSQL cannot reorder enum labels"
                .to_string(),
        );
    }
    None
}

/// Types whose live form cannot be brought to the config's in place, one blocker each.
pub fn blockers(node: &DesiredNode, observed: &NodeCatalog) -> Vec<Blocker> {
    node.types
        .iter()
        .filter_map(|ty| {
            let live = observed.types.get(&ty.name)?;
            let (current, required, fix) = match (&ty.kind, live) {
                (DesiredTypeKind::Enum { labels }, TypeCatalog::Enum { labels: live }) => {
                    let problem = enum_problem(labels, live)?;
                    (
                        format!("labels {}", live.join(", ")),
                        format!("labels {}", labels.join(", ")),
                        format!(
                            "{problem}: keep every existing label in its order and add new ones \
                             anywhere, or migrate to a new type by hand"
                        ),
                    )
                }
                (DesiredTypeKind::Domain { base_type, .. }, TypeCatalog::Domain(live))
                    if normalize_type(&live.base_type) != *base_type =>
                {
                    (
                        format!("domain over {}", live.base_type),
                        format!("domain over {base_type}"),
                        "PostgreSQL cannot change a domain's base type: keep it, or create a \
                         domain of another name and move the columns to it"
                            .to_string(),
                    )
                }
                (DesiredTypeKind::Enum { .. }, TypeCatalog::Domain(_))
                | (DesiredTypeKind::Domain { .. }, TypeCatalog::Enum { .. }) => (
                    kind_word(live).to_string(),
                    desired_kind_word(&ty.kind).to_string(),
                    "a type cannot change kind in place: give the new type another name"
                        .to_string(),
                ),
                _ => return None,
            };
            Some(Blocker {
                node: node.name.clone(),
                setting: format!("type {}", ty.name),
                current,
                required,
                fix,
            })
        })
        .collect()
}

fn kind_word(live: &TypeCatalog) -> &'static str {
    match live {
        TypeCatalog::Enum { .. } => "an enum",
        TypeCatalog::Domain(_) => "a domain",
    }
}

fn desired_kind_word(kind: &DesiredTypeKind) -> &'static str {
    match kind {
        DesiredTypeKind::Enum { .. } => "an enum",
        DesiredTypeKind::Domain { .. } => "a domain",
    }
}

pub(crate) mod ddl {
    use pgconverge_model::catalog::{QualifiedName, TypeCatalog};
    use pgconverge_sql::{quote_ident, quote_literal, quote_qualified};

    use crate::desired::{CheckSpec, DesiredType, DesiredTypeKind};

    fn name_sql(name: &QualifiedName) -> String {
        quote_qualified(&name.schema, &name.name)
    }

    pub fn create_type_sql(ty: &DesiredType) -> String {
        match &ty.kind {
            DesiredTypeKind::Enum { labels } => {
                let labels: Vec<String> = labels.iter().map(|l| quote_literal(l)).collect();
                format!(
                    "CREATE TYPE {} AS ENUM ({})",
                    name_sql(&ty.name),
                    labels.join(", ")
                )
            }
            DesiredTypeKind::Domain {
                base_type,
                not_null,
                default,
                checks,
            } => {
                let mut sql = format!("CREATE DOMAIN {} AS {base_type}", name_sql(&ty.name));
                if let Some(default) = default {
                    sql.push_str(&format!(" DEFAULT {default}"));
                }
                if *not_null {
                    sql.push_str(" NOT NULL");
                }
                for check in checks {
                    sql.push_str(&format!(
                        " CONSTRAINT {} CHECK ({})",
                        quote_ident(&check.name),
                        check.expression
                    ));
                }
                sql
            }
        }
    }

    /// One `ADD VALUE` per label the live enum lacks, placed after the label before it in
    /// the config (or before the first existing one when it comes first).
    pub fn add_labels_sql(
        name: &QualifiedName,
        desired: &[String],
        live: &[String],
    ) -> Vec<String> {
        let mut present: Vec<&String> = live.iter().collect();
        let mut out = Vec::new();
        for (i, label) in desired.iter().enumerate() {
            if present.contains(&label) {
                continue;
            }
            let place = match desired[..i].iter().rev().find(|l| present.contains(l)) {
                Some(previous) => format!(" AFTER {}", quote_literal(previous)),
                None => match desired[i + 1..].iter().find(|l| present.contains(l)) {
                    Some(next) => format!(" BEFORE {}", quote_literal(next)),
                    None => String::new(),
                },
            };
            out.push(format!(
                "ALTER TYPE {} ADD VALUE IF NOT EXISTS {}{place}",
                name_sql(name),
                quote_literal(label)
            ));
            present.push(label);
        }
        out
    }

    /// Plain DROP: a column still of the type makes it fail rather than cascade.
    pub fn drop_type_sql(name: &QualifiedName, live: &TypeCatalog) -> String {
        let kind = match live {
            TypeCatalog::Enum { .. } => "TYPE",
            TypeCatalog::Domain(_) => "DOMAIN",
        };
        format!("DROP {kind} {}", name_sql(name))
    }

    pub fn domain_default_sql(name: &QualifiedName, default: Option<&str>) -> String {
        match default {
            Some(default) => format!("ALTER DOMAIN {} SET DEFAULT {default}", name_sql(name)),
            None => format!("ALTER DOMAIN {} DROP DEFAULT", name_sql(name)),
        }
    }

    pub fn domain_not_null_sql(name: &QualifiedName, not_null: bool) -> String {
        let verb = if not_null { "SET" } else { "DROP" };
        format!("ALTER DOMAIN {} {verb} NOT NULL", name_sql(name))
    }

    /// Added `NOT VALID` (only new values are checked, briefly), then validated.
    pub fn add_domain_check_sql(name: &QualifiedName, check: &CheckSpec) -> [String; 2] {
        [
            format!(
                "ALTER DOMAIN {} ADD CONSTRAINT {} CHECK ({}) NOT VALID",
                name_sql(name),
                quote_ident(&check.name),
                check.expression
            ),
            validate_domain_check_sql(name, &check.name),
        ]
    }

    pub fn validate_domain_check_sql(name: &QualifiedName, check: &str) -> String {
        format!(
            "ALTER DOMAIN {} VALIDATE CONSTRAINT {}",
            name_sql(name),
            quote_ident(check)
        )
    }

    pub fn drop_domain_check_sql(name: &QualifiedName, check: &str) -> String {
        format!(
            "ALTER DOMAIN {} DROP CONSTRAINT {}",
            name_sql(name),
            quote_ident(check)
        )
    }
}
