//! Tables' CHECK constraints. A new table's checks are part of its CREATE TABLE (`tables`).
//! On an existing table a check is added `NOT VALID` and then validated (the scan of the rows
//! does not hold the lock that adding takes), after a preflight look at the rows; on a table
//! the mesh replicates it is gated like a new UNIQUE, since a row written on a node without
//! the check would fail to apply on a node that has it. Checks are matched by name, or by
//! expression when a hand-made one has another name; one pgconverge created and the config no
//! longer has is dropped (gated too).

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
            out.extend(desired_check(input, table, live, check));
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

fn desired_check(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    live: &TableCatalog,
    check: &CheckSpec,
) -> Option<Change> {
    let by_name = live_checks(live).find(|c| c.name == check.name);
    let same = by_name
        .filter(|c| checks_match(&check.expression, &c.definition))
        .or_else(|| live_checks(live).find(|c| checks_match(&check.expression, &c.definition)));
    if let Some(same) = same {
        // Left NOT VALID by an interrupted apply: only the validation is missing.
        return is_not_valid(&same.definition).then(|| {
            let mut c = input.change(
                address(table, &same.name),
                Action::Update,
                vec![Statement::sql(ddl::validate_check_sql(table, &same.name))],
            );
            c.reason = Some("not validated yet".into());
            c
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
    statements.extend(ddl::add_check_sql(table, check).map(Statement::sql));
    let mut c = input.change(address(table, &check.name), action, statements);
    if let Some(old) = by_name {
        c.reason = Some(format!("{} → CHECK ({})", old.definition, check.expression));
    }
    c.hazards.push(Hazard::new(
        HazardKind::FailsOnExistingRows,
        "fails if existing rows break the check",
    ));
    c.gated = true;
    c.data_checks.push(DataCheck::ChecksHold {
        table: table.name.clone(),
        key: table.primary_key.columns.clone(),
        name: check.name.clone(),
        expression: check.expression.clone(),
    });
    Some(c)
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

    /// Added `NOT VALID` (brief: only new rows are checked), then validated, which scans the
    /// rows under a lock that lets writes go on when it runs on its own.
    pub fn add_check_sql(table: &DesiredTable, check: &CheckSpec) -> [String; 2] {
        [
            format!(
                "ALTER TABLE {} ADD {} NOT VALID",
                table_sql_name(&table.name),
                check_clause(check)
            ),
            validate_check_sql(table, &check.name),
        ]
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
