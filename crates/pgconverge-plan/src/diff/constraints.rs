//! Table constraints: the primary key, unique constraints and foreign keys. A new table's
//! primary key and unique constraints are part of its CREATE TABLE (`tables`); its foreign
//! keys are steps of their own, so they can wait for the tables they reference. A unique
//! constraint or foreign key pgconverge created and the config no longer has is dropped.

use pgconverge_model::catalog::{ConstraintCatalog, ConstraintKind, TableCatalog};

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::desired::{DesiredTable, ForeignKeySpec};
use crate::diff::NodeDiffInput;
use crate::hazard::{Hazard, HazardKind};
use crate::preflight::DataCheck;
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let mut out = Vec::new();
    for table in &input.desired.tables {
        match input.observed.tables.get(&table.name) {
            None => out.extend(
                table
                    .foreign_keys
                    .iter()
                    .map(|fk| add_foreign_key(input, table, fk)),
            ),
            Some(live) => {
                out.extend(primary_key(input, table, live));
                out.extend(missing_uniques(input, table, live));
                out.extend(missing_foreign_keys(input, table, live));
                out.extend(unwanted_constraints(input, table, live));
            }
        }
    }
    out
}

fn address(table: &DesiredTable, name: &str) -> ObjectAddress {
    ObjectAddress::Constraint {
        table: table.name.clone(),
        name: name.to_string(),
    }
}

fn live_of_kind(
    live: &TableCatalog,
    kind: ConstraintKind,
) -> impl Iterator<Item = &ConstraintCatalog> {
    live.constraints.iter().filter(move |c| c.kind == kind)
}

/// Adds the primary key, or rebuilds it when the live one is on other columns.
fn primary_key(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    live: &TableCatalog,
) -> Option<Change> {
    let wanted = &table.primary_key;
    if live_of_kind(live, ConstraintKind::PrimaryKey).any(|c| c.columns == wanted.columns) {
        return None;
    }
    let existing = live_of_kind(live, ConstraintKind::PrimaryKey).next();
    let mut statements = Vec::new();
    if let Some(old) = existing {
        statements.push(Statement::sql(ddl::drop_constraint_sql(table, &old.name)));
    }
    statements.push(Statement::sql(ddl::add_primary_key_sql(table)));
    let action = if existing.is_some() {
        Action::Replace
    } else {
        Action::Create
    };
    let mut c = input.change(address(table, &wanted.name), action, statements);
    if let Some(old) = existing {
        c.reason = Some(format!(
            "primary key ({}) → ({})",
            old.columns.join(", "),
            wanted.columns.join(", ")
        ));
        c.hazards.push(Hazard::new(
            HazardKind::ExclusiveLock,
            "rebuilding the primary key locks the table; rows are identified by it on every node",
        ));
    }
    Some(c)
}

/// Unique constraints with no live unique constraint on the same columns.
fn missing_uniques(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    live: &TableCatalog,
) -> Vec<Change> {
    table
        .uniques
        .iter()
        .filter(|unique| {
            !live_of_kind(live, ConstraintKind::Unique).any(|c| c.columns == unique.columns)
        })
        .map(|unique| {
            let mut c = input.change(
                address(table, &unique.name),
                Action::Create,
                vec![Statement::sql(ddl::add_unique_sql(table, unique))],
            );
            c.hazards.push(Hazard::new(
                HazardKind::FailsOnExistingRows,
                "fails if existing rows hold duplicate values",
            ));
            // Values must not collide with changes in flight under the old rule (see `gate`).
            c.gated = true;
            c.data_checks.push(DataCheck::NoDuplicates {
                table: table.name.clone(),
                key: table.primary_key.columns.clone(),
                columns: unique.columns.clone(),
            });
            c
        })
        .collect()
}

/// Foreign keys with no live foreign key on the same columns to the same key.
fn missing_foreign_keys(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    live: &TableCatalog,
) -> Vec<Change> {
    table
        .foreign_keys
        .iter()
        .filter(|fk| {
            !live_of_kind(live, ConstraintKind::ForeignKey).any(|c| {
                c.columns == fk.columns
                    && c.references
                        .as_ref()
                        .is_some_and(|(t, cols)| *t == fk.ref_table && *cols == fk.ref_columns)
            })
        })
        .map(|fk| add_foreign_key(input, table, fk))
        .collect()
}

/// Unique constraints and foreign keys pgconverge created that no desired one matches. A
/// dropped UNIQUE is gated like an added one: a node without it must not accept values that
/// a node still holding it would resolve as a collision.
fn unwanted_constraints(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    live: &TableCatalog,
) -> Vec<Change> {
    let wanted = |c: &ConstraintCatalog| match c.kind {
        ConstraintKind::Unique => table.uniques.iter().any(|u| u.columns == c.columns),
        ConstraintKind::ForeignKey => table.foreign_keys.iter().any(|fk| {
            fk.columns == c.columns
                && c.references
                    .as_ref()
                    .is_some_and(|(t, cols)| *t == fk.ref_table && *cols == fk.ref_columns)
        }),
        _ => true,
    };
    live.constraints
        .iter()
        .filter(|c| !wanted(c) && input.managed.contains(&address(table, &c.name)))
        .map(|c| {
            let mut change = input.change(
                address(table, &c.name),
                Action::Delete,
                vec![Statement::sql(ddl::drop_constraint_sql(table, &c.name))],
            );
            change.reason = Some("no longer in the config".into());
            change.gated = c.kind == ConstraintKind::Unique;
            change
        })
        .collect()
}

fn add_foreign_key(input: &NodeDiffInput<'_>, table: &DesiredTable, fk: &ForeignKeySpec) -> Change {
    input.change(
        address(table, &fk.name),
        Action::Create,
        vec![Statement::sql(ddl::add_foreign_key_sql(table, fk))],
    )
}

pub(super) mod ddl {
    use crate::desired::{ConstraintSpec, DesiredTable, ForeignKeySpec};
    use crate::diff::table_sql_name;
    use pgconverge_sql::{quote_ident, quote_ident_list};

    /// `CONSTRAINT "name" PRIMARY KEY (…)`, as in CREATE TABLE and ADD.
    pub fn primary_key_clause(key: &ConstraintSpec) -> String {
        format!(
            "CONSTRAINT {} PRIMARY KEY ({})",
            quote_ident(&key.name),
            quote_ident_list(&key.columns)
        )
    }

    /// `CONSTRAINT "name" UNIQUE (…)`, as in CREATE TABLE and ADD.
    pub fn unique_clause(unique: &ConstraintSpec) -> String {
        format!(
            "CONSTRAINT {} UNIQUE ({})",
            quote_ident(&unique.name),
            quote_ident_list(&unique.columns)
        )
    }

    pub fn add_primary_key_sql(table: &DesiredTable) -> String {
        format!(
            "ALTER TABLE {} ADD {}",
            table_sql_name(&table.name),
            primary_key_clause(&table.primary_key)
        )
    }

    pub fn add_unique_sql(table: &DesiredTable, unique: &ConstraintSpec) -> String {
        format!(
            "ALTER TABLE {} ADD {}",
            table_sql_name(&table.name),
            unique_clause(unique)
        )
    }

    pub fn drop_constraint_sql(table: &DesiredTable, constraint: &str) -> String {
        format!(
            "ALTER TABLE {} DROP CONSTRAINT {}",
            table_sql_name(&table.name),
            quote_ident(constraint)
        )
    }

    pub fn add_foreign_key_sql(table: &DesiredTable, fk: &ForeignKeySpec) -> String {
        let mut sql = format!(
            "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
            table_sql_name(&table.name),
            quote_ident(&fk.name),
            quote_ident_list(&fk.columns),
            table_sql_name(&fk.ref_table),
            quote_ident_list(&fk.ref_columns)
        );
        if let Some(action) = &fk.on_delete {
            sql.push_str(&format!(" ON DELETE {}", on_delete_sql(action)));
        }
        sql
    }

    /// Validated config spelling → SQL keywords.
    fn on_delete_sql(action: &str) -> &'static str {
        match action.to_ascii_lowercase().as_str() {
            "cascade" => "CASCADE",
            "set null" => "SET NULL",
            "set default" => "SET DEFAULT",
            "restrict" => "RESTRICT",
            _ => "NO ACTION",
        }
    }
}
