//! Table constraints: the primary key, unique constraints and foreign keys. A new table's
//! primary key and unique constraints are part of its CREATE TABLE (`tables`); its foreign
//! keys are steps of their own, so they can wait for the tables they reference. A unique
//! constraint or foreign key pgconverge created and the config no longer has is dropped.

use pgconverge_model::catalog::{ConstraintCatalog, ConstraintKind, ForeignKeyRules, TableCatalog};

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
                out.extend(changed_foreign_keys(input, table, live));
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

/// The live foreign key on the same columns to the same key, if any.
fn live_foreign_key<'a>(
    live: &'a TableCatalog,
    fk: &ForeignKeySpec,
) -> Option<&'a ConstraintCatalog> {
    live_of_kind(live, ConstraintKind::ForeignKey).find(|c| {
        c.columns == fk.columns
            && c.references
                .as_ref()
                .is_some_and(|(t, cols)| *t == fk.ref_table && *cols == fk.ref_columns)
    })
}

/// Foreign keys whose actions or deferrability differ from the config, or that a re-add
/// left unvalidated. Deferrability alone is altered in place; other actions are re-added
/// `NOT VALID` (a moment's lock on both tables) and validated in a second statement, during
/// which writes go on.
fn changed_foreign_keys(
    input: &NodeDiffInput<'_>,
    table: &DesiredTable,
    live: &TableCatalog,
) -> Vec<Change> {
    let mut out = Vec::new();
    for fk in &table.foreign_keys {
        let Some(current) = live_foreign_key(live, fk) else {
            continue;
        };
        let rules = current.foreign_key.clone().unwrap_or_default();
        let wanted = ddl::rules_of(fk);
        let name = |code: &str| ForeignKeyRules::action_name(code);
        let actions_differ = name(&rules.on_update) != name(&wanted.on_update)
            || name(&rules.on_delete) != name(&wanted.on_delete);
        let timing_differs = rules.deferrable != wanted.deferrable
            || rules.initially_deferred != wanted.initially_deferred;
        let unvalidated = current.definition.ends_with(" NOT VALID");
        let mut statements = Vec::new();
        let mut reasons = Vec::new();
        if actions_differ {
            statements.push(ddl::readd_foreign_key_sql(table, &current.name, fk));
            statements.push(ddl::validate_constraint_sql(table, &fk.name));
            reasons.push(format!(
                "ON UPDATE {} ON DELETE {} → ON UPDATE {} ON DELETE {}",
                name(&rules.on_update),
                name(&rules.on_delete),
                name(&wanted.on_update),
                name(&wanted.on_delete)
            ));
        } else if timing_differs {
            statements.push(ddl::alter_deferrable_sql(table, &current.name, fk));
        } else if unvalidated {
            statements.push(ddl::validate_constraint_sql(table, &current.name));
            reasons.push("not validated yet".to_string());
        }
        if timing_differs {
            reasons.push(format!(
                "{} → {}",
                ddl::timing_words(rules.deferrable, rules.initially_deferred),
                ddl::timing_words(wanted.deferrable, wanted.initially_deferred)
            ));
        }
        if statements.is_empty() {
            continue;
        }
        let mut change = input.change(
            address(table, &fk.name),
            Action::Update,
            statements.into_iter().map(Statement::sql).collect(),
        );
        change.reason = Some(reasons.join(", "));
        if actions_differ {
            change.transactional = false;
            change.hazards.push(Hazard::new(
                HazardKind::BlocksWrites,
                "re-adding the foreign key blocks writes to both tables for a moment; existing rows are checked afterwards while writes go on",
            ));
        }
        out.push(change);
    }
    out
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
    use pgconverge_model::catalog::ForeignKeyRules;
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

    /// `CONSTRAINT "name" FOREIGN KEY (…) REFERENCES … (…)` with its actions and timing.
    fn foreign_key_clause(fk: &ForeignKeySpec) -> String {
        let mut sql = format!(
            "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
            quote_ident(&fk.name),
            quote_ident_list(&fk.columns),
            table_sql_name(&fk.ref_table),
            quote_ident_list(&fk.ref_columns)
        );
        if let Some(action) = &fk.on_update {
            sql.push_str(&format!(" ON UPDATE {}", action_sql(action)));
        }
        if let Some(action) = &fk.on_delete {
            sql.push_str(&format!(" ON DELETE {}", action_sql(action)));
        }
        if fk.deferrable {
            sql.push_str(" DEFERRABLE");
        }
        if fk.initially_deferred {
            sql.push_str(" INITIALLY DEFERRED");
        }
        sql
    }

    pub fn add_foreign_key_sql(table: &DesiredTable, fk: &ForeignKeySpec) -> String {
        format!(
            "ALTER TABLE {} ADD {}",
            table_sql_name(&table.name),
            foreign_key_clause(fk)
        )
    }

    /// Drops the live foreign key and adds the configured one unvalidated, in one statement.
    pub fn readd_foreign_key_sql(
        table: &DesiredTable,
        live_name: &str,
        fk: &ForeignKeySpec,
    ) -> String {
        format!(
            "ALTER TABLE {} DROP CONSTRAINT {}, ADD {} NOT VALID",
            table_sql_name(&table.name),
            quote_ident(live_name),
            foreign_key_clause(fk)
        )
    }

    pub fn validate_constraint_sql(table: &DesiredTable, name: &str) -> String {
        format!(
            "ALTER TABLE {} VALIDATE CONSTRAINT {}",
            table_sql_name(&table.name),
            quote_ident(name)
        )
    }

    /// Sets a foreign key's deferrability in place.
    pub fn alter_deferrable_sql(
        table: &DesiredTable,
        live_name: &str,
        fk: &ForeignKeySpec,
    ) -> String {
        format!(
            "ALTER TABLE {} ALTER CONSTRAINT {} {}",
            table_sql_name(&table.name),
            quote_ident(live_name),
            timing_words(fk.deferrable, fk.initially_deferred)
        )
    }

    /// `NOT DEFERRABLE`, `DEFERRABLE INITIALLY IMMEDIATE` or `DEFERRABLE INITIALLY DEFERRED`.
    pub fn timing_words(deferrable: bool, initially_deferred: bool) -> &'static str {
        match (deferrable, initially_deferred) {
            (false, _) => "NOT DEFERRABLE",
            (true, false) => "DEFERRABLE INITIALLY IMMEDIATE",
            (true, true) => "DEFERRABLE INITIALLY DEFERRED",
        }
    }

    /// The configured rules in catalog codes, to compare with the live ones.
    pub fn rules_of(fk: &ForeignKeySpec) -> ForeignKeyRules {
        ForeignKeyRules {
            on_update: action_code(fk.on_update.as_deref()).to_string(),
            on_delete: action_code(fk.on_delete.as_deref()).to_string(),
            deferrable: fk.deferrable,
            initially_deferred: fk.initially_deferred,
        }
    }

    fn action_code(action: Option<&str>) -> &'static str {
        match action {
            Some("restrict") => "r",
            Some("cascade") => "c",
            Some("set null") => "n",
            Some("set default") => "d",
            _ => "a",
        }
    }

    /// Validated config spelling → SQL keywords.
    fn action_sql(action: &str) -> &'static str {
        match action.to_ascii_lowercase().as_str() {
            "cascade" => "CASCADE",
            "set null" => "SET NULL",
            "set default" => "SET DEFAULT",
            "restrict" => "RESTRICT",
            _ => "NO ACTION",
        }
    }
}
