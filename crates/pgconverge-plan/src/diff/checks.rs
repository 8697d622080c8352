//! Tables' CHECK constraints. A new table's checks are part of its CREATE TABLE (`tables`).
//! On an existing table, after a preflight look at the rows, a check is added in two steps:
//! `ADD … NOT VALID` (brief: it checks only rows written from then on), which on a table the
//! mesh replicates is gated like a new UNIQUE, since a row written on a node without the check
//! would fail to apply on a node that has it; then `VALIDATE CONSTRAINT` in a step of its own
//! after the gate, whose scan of the rows lets reads and writes go on. Checks are matched by
//! name, or by expression when a hand-made one has another name; one pgconverge created and
//! the config no longer has is dropped (gated too).

use pgconverge_model::catalog::{ConstraintCatalog, ConstraintKind, TableCatalog};

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::desired::{CheckSpec, DesiredTable};
use crate::diff::types::{checks_match, is_not_valid};
use crate::diff::NodeDiffInput;
use crate::hazard::{Hazard, HazardKind};
use crate::preflight::DataCheck;
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let mut out = Vec::new();
    for (table, live) in input.existing_tables() {
        for check in &table.checks {
            out.extend(
                desired_check(input, table, live, check)
                    .into_iter()
                    .flatten()
                    .flatten(),
            );
        }
        out.extend(unwanted_checks(input, table, live));
    }
    out
}

fn address(table: &DesiredTable, name: &str) -> ObjectAddress {
    ObjectAddress::Constraint {
        table: table.name.clone(),
        name: name.to_string(),
    }
}

fn live_checks(live: &TableCatalog) -> impl Iterator<Item = &ConstraintCatalog> {
    live.constraints
        .iter()
        .filter(|c| c.kind == ConstraintKind::Check)
}

/// The steps making `check` hold on a live table: none when it does, the validation alone when
/// an earlier apply added it and did not validate it, else adding it and validating it.
fn desired_check(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    live: &TableCatalog,
    check: &CheckSpec,
) -> Option<[Option<Change>; 2]> {
    let by_name = live_checks(live).find(|c| c.name == check.name);
    let same = by_name
        .filter(|c| checks_match(&check.expression, &c.definition))
        .or_else(|| live_checks(live).find(|c| checks_match(&check.expression, &c.definition)));
    if let Some(same) = same {
        // Left NOT VALID by an interrupted apply: only the validation is missing.
        return is_not_valid(&same.definition).then(|| {
            let mut c = validation(input, table, &same.name);
            c.reason = Some("not validated yet".into());
            c.data_checks.push(holds(table, check));
            [Some(c), None]
        });
    }
    let mut statements = Vec::new();
    let action = match by_name {
        Some(old) => {
            statements.push(Statement::sql(ddl::drop_check_sql(table, &old.name)));
            Action::Replace
        }
        None => Action::Create,
    };
    statements.push(Statement::sql(ddl::add_check_not_valid_sql(table, check)));
    let mut c = input.change(address(table, &check.name), action, statements);
    if let Some(old) = by_name {
        c.reason = Some(format!("{} → CHECK ({})", old.definition, check.expression));
    }
    c.hazards.push(Hazard::new(
        HazardKind::FailsOnExistingRows,
        "fails if existing rows break the check",
    ));
    c.gated = true;
    c.data_checks.push(holds(table, check));
    Some([Some(c), Some(validation(input, table, &check.name))])
}

/// `VALIDATE CONSTRAINT`, a step of its own after the one adding the check (see the rule
/// `check_added_before_validated`): its scan takes a lock that lets reads and writes go on.
fn validation(input: &NodeDiffInput<'_>, table: &DesiredTable, name: &str) -> Change {
    let mut c = input.change(
        address(table, name),
        Action::Update,
        vec![Statement::sql(ddl::validate_check_sql(table, name))],
    );
    c.reason = Some("validate the rows already there (reads and writes go on)".into());
    c
}

fn holds(table: &DesiredTable, check: &CheckSpec) -> DataCheck {
    DataCheck::ChecksHold {
        table: table.name.clone(),
        key: table.primary_key.columns.clone(),
        name: check.name.clone(),
        expression: check.expression.clone(),
    }
}

/// Checks pgconverge created that no desired check matches by name or expression.
fn unwanted_checks(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    live: &TableCatalog,
) -> Vec<Change> {
    live_checks(live)
        .filter(|c| {
            !table
                .checks
                .iter()
                .any(|d| d.name == c.name || checks_match(&d.expression, &c.definition))
        })
        .filter(|c| input.manages(&address(table, &c.name)))
        .map(|c| {
            let mut change = input.change(
                address(table, &c.name),
                Action::Delete,
                vec![Statement::sql(ddl::drop_check_sql(table, &c.name))],
            );
            change.reason = Some("no longer in the config".into());
            change.gated = true;
            change
        })
        .collect()
}

pub(super) mod ddl {
    use crate::desired::{CheckSpec, DesiredTable};
    use crate::diff::table_sql_name;
    use pgconverge_sql::quote_ident;

    /// `CONSTRAINT "name" CHECK (…)`, as in CREATE TABLE.
    pub fn check_clause(check: &CheckSpec) -> String {
        format!(
            "CONSTRAINT {} CHECK ({})",
            quote_ident(&check.name),
            check.expression
        )
    }

    /// Added `NOT VALID`: brief, only rows written from then on are checked.
    pub fn add_check_not_valid_sql(table: &DesiredTable, check: &CheckSpec) -> String {
        format!(
            "ALTER TABLE {} ADD {} NOT VALID",
            table_sql_name(&table.name),
            check_clause(check)
        )
    }

    pub fn validate_check_sql(table: &DesiredTable, name: &str) -> String {
        format!(
            "ALTER TABLE {} VALIDATE CONSTRAINT {}",
            table_sql_name(&table.name),
            quote_ident(name)
        )
    }

    pub fn drop_check_sql(table: &DesiredTable, name: &str) -> String {
        format!(
            "ALTER TABLE {} DROP CONSTRAINT {}",
            table_sql_name(&table.name),
            quote_ident(name)
        )
    }
}
