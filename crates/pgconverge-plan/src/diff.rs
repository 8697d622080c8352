//! Diff of one node's desired state against its live catalog: a list of typed changes.
//!
//! Objects are matched by what they are (a unique constraint by its columns, an index by its
//! columns), not only by name, so equivalent hand-made objects are accepted. Nothing is dropped
//! unless pgconverge created it (the state's `managed` set).

use std::collections::{BTreeMap, BTreeSet};

use pgconverge_model::catalog::{
    ConstraintKind, FunctionCatalog, NodeCatalog, QualifiedName, TableCatalog,
};
use pgconverge_model::naming::SESSION_LOCK_TIMEOUT;
use pgconverge_model::types::normalize_type;

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::conflict::{FunctionDef, TriggerDef};
use crate::dag::Phase;
use crate::desired::{
    defaults_match, DesiredColumn, DesiredNode, DesiredSubscription, DesiredTable, ForeignKeySpec,
};
use crate::hazard::{Hazard, HazardKind};
use crate::sql::{quote_ident, quote_ident_list, quote_literal, quote_qualified};
use crate::statement::{Segment, Statement};

/// Everything the diff of one node looks at.
pub struct NodeDiffInput<'a> {
    pub desired: &'a DesiredNode,
    pub observed: &'a NodeCatalog,
    /// Catalogs of every node by name (a subscription needs its publisher's slots).
    pub cluster: &'a BTreeMap<String, NodeCatalog>,
    /// Addresses pgconverge created on this node (from the state file).
    pub managed: &'a BTreeSet<String>,
    /// Slot names that some desired subscription in the cluster will use on this node.
    pub desired_slots_here: &'a BTreeSet<String>,
}

pub fn diff_node(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let mut out = Vec::new();
    let d = input.desired;
    let o = input.observed;
    let node = d.name.as_str();
    let change = |address: ObjectAddress, action: Action, statements: Vec<Statement>| Change {
        node: node.to_string(),
        phase: Phase::of(&address, action),
        address,
        action,
        statements,
        transactional: true,
        reason: None,
        body_diff: None,
        hazards: Vec::new(),
        drift: false,
    };

    for schema in &d.schemas {
        if !o.schemas.contains(schema) {
            out.push(change(
                ObjectAddress::Schema {
                    name: schema.clone(),
                },
                Action::Create,
                vec![Statement::sql(format!(
                    "CREATE SCHEMA IF NOT EXISTS {}",
                    quote_ident(schema)
                ))],
            ));
        }
    }

    for internal in &d.internal_tables {
        if !o.tables.contains_key(&internal.name) {
            out.push(change(
                ObjectAddress::Table {
                    table: internal.name.clone(),
                },
                Action::Create,
                internal.create_sql.iter().map(Statement::sql).collect(),
            ));
        }
    }

    for table in &d.tables {
        match o.tables.get(&table.name) {
            None => diff_new_table(table, &change, &mut out),
            Some(live) => diff_existing_table(table, live, &change, &mut out),
        }
    }

    diff_functions(d, o, input.managed, &change, &mut out);
    diff_triggers(d, o, input.managed, &change, &mut out);
    diff_publication(d, o, &change, &mut out);
    diff_subscriptions(input, &change, &mut out);
    diff_missing_slots(input, &change, &mut out);
    diff_orphan_slots(input, &change, &mut out);
    out
}

type ChangeFn<'a> = dyn Fn(ObjectAddress, Action, Vec<Statement>) -> Change + 'a;

fn column_sql(column: &DesiredColumn) -> String {
    let mut sql = format!("{} {}", quote_ident(&column.name), column.data_type);
    if column.not_null {
        sql.push_str(" NOT NULL");
    }
    if let Some(default) = &column.default {
        sql.push_str(&format!(" DEFAULT {default}"));
    }
    sql
}

fn table_sql_name(name: &QualifiedName) -> String {
    quote_qualified(&name.schema, &name.name)
}

fn diff_new_table(table: &DesiredTable, change: &ChangeFn<'_>, out: &mut Vec<Change>) {
    let mut items: Vec<String> = table.columns.iter().map(column_sql).collect();
    items.push(format!(
        "CONSTRAINT {} PRIMARY KEY ({})",
        quote_ident(&table.primary_key.name),
        quote_ident_list(&table.primary_key.columns)
    ));
    for unique in &table.uniques {
        items.push(format!(
            "CONSTRAINT {} UNIQUE ({})",
            quote_ident(&unique.name),
            quote_ident_list(&unique.columns)
        ));
    }
    let create = format!(
        "CREATE TABLE {} (\n    {}\n)",
        table_sql_name(&table.name),
        items.join(",\n    ")
    );
    out.push(change(
        ObjectAddress::Table {
            table: table.name.clone(),
        },
        Action::Create,
        vec![Statement::sql(create)],
    ));
    for fk in &table.foreign_keys {
        out.push(change(
            ObjectAddress::Constraint {
                table: table.name.clone(),
                name: fk.name.clone(),
            },
            Action::Create,
            vec![Statement::sql(add_foreign_key_sql(&table.name, fk))],
        ));
    }
    for index in &table.indexes {
        out.push(change(
            ObjectAddress::Index {
                table: table.name.clone(),
                name: index.name.clone(),
            },
            Action::Create,
            vec![Statement::sql(format!(
                "CREATE INDEX {} ON {} ({})",
                quote_ident(&index.name),
                table_sql_name(&table.name),
                quote_ident_list(&index.columns)
            ))],
        ));
    }
}

fn add_foreign_key_sql(table: &QualifiedName, fk: &ForeignKeySpec) -> String {
    let mut sql = format!(
        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
        table_sql_name(table),
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

fn diff_existing_table(
    table: &DesiredTable,
    live: &TableCatalog,
    change: &ChangeFn<'_>,
    out: &mut Vec<Change>,
) {
    let name = table_sql_name(&table.name);
    for column in &table.columns {
        let address = ObjectAddress::Column {
            table: table.name.clone(),
            column: column.name.clone(),
        };
        let Some(live_col) = live.column(&column.name) else {
            let mut c = change(
                address,
                Action::Create,
                vec![Statement::sql(format!(
                    "ALTER TABLE {name} ADD COLUMN {}",
                    column_sql(column)
                ))],
            );
            if column.not_null && column.default.is_none() {
                c.hazards.push(Hazard::new(
                    HazardKind::FailsOnExistingRows,
                    "NOT NULL without a default fails if the table has rows",
                ));
            }
            out.push(c);
            continue;
        };
        let col = quote_ident(&column.name);
        let mut statements = Vec::new();
        let mut reasons = Vec::new();
        let mut hazards = Vec::new();
        if normalize_type(&live_col.data_type) != column.data_type {
            statements.push(Statement::sql(format!(
                "ALTER TABLE {name} ALTER COLUMN {col} TYPE {ty} USING {col}::{ty}",
                ty = column.data_type
            )));
            reasons.push(format!(
                "type {} → {}",
                live_col.data_type, column.data_type
            ));
            hazards.push(Hazard::new(
                HazardKind::TableRewrite,
                "changing a column type rewrites the table under an exclusive lock",
            ));
        }
        if !defaults_match(column.default.as_deref(), live_col.default.as_deref()) {
            statements.push(Statement::sql(match &column.default {
                Some(expr) => format!("ALTER TABLE {name} ALTER COLUMN {col} SET DEFAULT {expr}"),
                None => format!("ALTER TABLE {name} ALTER COLUMN {col} DROP DEFAULT"),
            }));
            reasons.push(format!(
                "default {} → {}",
                live_col.default.as_deref().unwrap_or("none"),
                column.default.as_deref().unwrap_or("none")
            ));
        }
        if live_col.not_null != column.not_null {
            statements.push(Statement::sql(format!(
                "ALTER TABLE {name} ALTER COLUMN {col} {} NOT NULL",
                if column.not_null { "SET" } else { "DROP" }
            )));
            reasons.push(
                if column.not_null {
                    "NULL → NOT NULL"
                } else {
                    "NOT NULL → NULL"
                }
                .into(),
            );
            if column.not_null {
                hazards.push(Hazard::new(
                    HazardKind::FailsOnExistingRows,
                    "SET NOT NULL fails if any row holds NULL",
                ));
            }
        }
        if !statements.is_empty() {
            let mut c = change(address, Action::Update, statements);
            c.reason = Some(reasons.join(", "));
            c.hazards = hazards;
            out.push(c);
        }
    }

    let constraints_of =
        |kind: ConstraintKind| live.constraints.iter().filter(move |c| c.kind == kind);
    let has_pk =
        constraints_of(ConstraintKind::PrimaryKey).any(|c| c.columns == table.primary_key.columns);
    if !has_pk {
        let existing = constraints_of(ConstraintKind::PrimaryKey).next();
        let mut statements = Vec::new();
        if let Some(old) = existing {
            statements.push(Statement::sql(format!(
                "ALTER TABLE {name} DROP CONSTRAINT {}",
                quote_ident(&old.name)
            )));
        }
        statements.push(Statement::sql(format!(
            "ALTER TABLE {name} ADD CONSTRAINT {} PRIMARY KEY ({})",
            quote_ident(&table.primary_key.name),
            quote_ident_list(&table.primary_key.columns)
        )));
        let mut c = change(
            ObjectAddress::Constraint {
                table: table.name.clone(),
                name: table.primary_key.name.clone(),
            },
            if existing.is_some() {
                Action::Replace
            } else {
                Action::Create
            },
            statements,
        );
        if let Some(old) = existing {
            c.reason = Some(format!(
                "primary key ({}) → ({})",
                old.columns.join(", "),
                table.primary_key.columns.join(", ")
            ));
            c.hazards.push(Hazard::new(
                HazardKind::ExclusiveLock,
                "rebuilding the primary key locks the table; rows are identified by it on every node",
            ));
        }
        out.push(c);
    }
    for unique in &table.uniques {
        let present = constraints_of(ConstraintKind::Unique).any(|c| c.columns == unique.columns);
        if !present {
            let mut c = change(
                ObjectAddress::Constraint {
                    table: table.name.clone(),
                    name: unique.name.clone(),
                },
                Action::Create,
                vec![Statement::sql(format!(
                    "ALTER TABLE {name} ADD CONSTRAINT {} UNIQUE ({})",
                    quote_ident(&unique.name),
                    quote_ident_list(&unique.columns)
                ))],
            );
            c.hazards.push(Hazard::new(
                HazardKind::FailsOnExistingRows,
                "fails if existing rows hold duplicate values",
            ));
            out.push(c);
        }
    }
    for fk in &table.foreign_keys {
        let present = constraints_of(ConstraintKind::ForeignKey).any(|c| {
            c.columns == fk.columns
                && c.references
                    .as_ref()
                    .is_some_and(|(t, cols)| *t == fk.ref_table && *cols == fk.ref_columns)
        });
        if !present {
            out.push(change(
                ObjectAddress::Constraint {
                    table: table.name.clone(),
                    name: fk.name.clone(),
                },
                Action::Create,
                vec![Statement::sql(add_foreign_key_sql(&table.name, fk))],
            ));
        }
    }
    // The table may be in use: indexes are built concurrently, so writes go on meanwhile.
    // A build that was interrupted leaves an invalid index under the name, rebuilt here.
    // PostgreSQL builds no index of a partitioned table concurrently: those lock writes.
    let concurrently = !live.partitioned;
    for index in &table.indexes {
        let left_invalid = live.invalid_indexes.contains(&index.name);
        let present = live.indexes.iter().any(|ix| ix.columns == index.columns)
            || live.constraints.iter().any(|c| {
                matches!(c.kind, ConstraintKind::PrimaryKey | ConstraintKind::Unique)
                    && c.columns == index.columns
            });
        if present && !left_invalid {
            continue;
        }
        let how = if concurrently { " CONCURRENTLY" } else { "" };
        let mut statements = Vec::new();
        if left_invalid {
            statements.push(Statement::sql(format!(
                "DROP INDEX{how} IF EXISTS {}",
                quote_qualified(&table.name.schema, &index.name)
            )));
        }
        statements.push(Statement::sql(format!(
            "CREATE INDEX{how} {} ON {name} ({})",
            quote_ident(&index.name),
            quote_ident_list(&index.columns)
        )));
        let action = if left_invalid {
            Action::Replace
        } else {
            Action::Create
        };
        if concurrently {
            // A concurrent build waits for every transaction older than it, anywhere in the
            // database: the session's lock_timeout would cancel it behind any long query and
            // leave an invalid index. It may wait as long as it needs; the timeout comes back
            // for the steps after it.
            statements.insert(0, Statement::sql("SET lock_timeout = 0"));
            statements.push(Statement::sql(format!(
                "SET lock_timeout = {}",
                quote_literal(SESSION_LOCK_TIMEOUT)
            )));
        }
        let mut c = change(
            ObjectAddress::Index {
                table: table.name.clone(),
                name: index.name.clone(),
            },
            action,
            statements,
        );
        c.transactional = !concurrently;
        if left_invalid {
            c.reason = Some("left invalid by an interrupted build".into());
        }
        c.hazards.push(if concurrently {
            Hazard::new(
                HazardKind::WaitsForTransactions,
                "builds concurrently: writes continue, but the build waits for transactions \
                 already running",
            )
        } else {
            Hazard::new(
                HazardKind::BlocksWrites,
                "builds the index under a lock that blocks writes to the partitioned table",
            )
        });
        out.push(c);
    }
    if live.replica_identity != "d" {
        let mut c = change(
            ObjectAddress::ReplicaIdentity {
                table: table.name.clone(),
            },
            Action::Update,
            vec![Statement::sql(format!(
                "ALTER TABLE {name} REPLICA IDENTITY DEFAULT"
            ))],
        );
        c.reason = Some(format!(
            "replica identity {} → primary key",
            match live.replica_identity.as_str() {
                "f" => "full",
                "i" => "index",
                "n" => "nothing",
                other => other,
            }
        ));
        out.push(c);
    }
}

fn function_address(f: &FunctionDef) -> ObjectAddress {
    ObjectAddress::Function {
        function: f.name.clone(),
    }
}

/// The live body is the desired one: it carries the fingerprint the desired function was
/// generated from (checked without rendering the body), or it is the same text.
fn function_body_matches(live: &FunctionCatalog, desired: &FunctionDef) -> bool {
    (!live.fingerprint.is_empty() && live.fingerprint == desired.fingerprint)
        || live.body_sha256 == desired.body_sha256()
}

fn diff_functions(
    d: &DesiredNode,
    o: &NodeCatalog,
    managed: &BTreeSet<String>,
    change: &ChangeFn<'_>,
    out: &mut Vec<Change>,
) {
    for f in &d.functions {
        match o.functions.get(&f.name) {
            None => out.push(change(
                function_address(f),
                Action::Create,
                vec![
                    Statement::sql(f.create_sql()),
                    Statement::sql(f.comment_sql()),
                ],
            )),
            Some(live)
                if !function_body_matches(live, f)
                    || live.identity_arguments != f.identity_arguments =>
            {
                let mut statements = Vec::new();
                if live.identity_arguments != f.identity_arguments {
                    statements.push(Statement::sql(format!(
                        "DROP FUNCTION {}({})",
                        quote_qualified(&f.name.schema, &f.name.name),
                        live.identity_arguments
                    )));
                }
                statements.push(Statement::sql(f.create_sql()));
                statements.push(Statement::sql(f.comment_sql()));
                let mut c = change(function_address(f), Action::Update, statements);
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
                out.push(c);
            }
            Some(_) => {}
        }
    }
    let desired: BTreeSet<&QualifiedName> = d.functions.iter().map(|f| &f.name).collect();
    for (name, live) in &o.functions {
        let address = ObjectAddress::Function {
            function: name.clone(),
        };
        if !desired.contains(name) && managed.contains(&address.to_string()) {
            out.push(change(
                address,
                Action::Delete,
                vec![Statement::sql(format!(
                    "DROP FUNCTION IF EXISTS {}({})",
                    quote_qualified(&name.schema, &name.name),
                    live.identity_arguments
                ))],
            ));
        }
    }
}

fn unified_diff(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(2)
        .header("live", "planned")
        .to_string()
}

fn trigger_address(t: &TriggerDef) -> ObjectAddress {
    ObjectAddress::Trigger {
        table: t.table.clone(),
        name: t.name.clone(),
    }
}

fn diff_triggers(
    d: &DesiredNode,
    o: &NodeCatalog,
    managed: &BTreeSet<String>,
    change: &ChangeFn<'_>,
    out: &mut Vec<Change>,
) {
    for t in &d.triggers {
        let live = o
            .tables
            .get(&t.table)
            .and_then(|table| table.triggers.iter().find(|lt| lt.name == t.name));
        match live {
            None => out.push(change(
                trigger_address(t),
                Action::Create,
                t.create_sql.iter().map(Statement::sql).collect(),
            )),
            Some(lt)
                if lt.function != t.function
                    || lt.enabled != t.enabled.tgenabled()
                    || !trigger_definition_matches(&lt.definition, t) =>
            {
                let mut statements = vec![Statement::sql(&t.drop_sql)];
                statements.extend(t.create_sql.iter().map(Statement::sql));
                let mut c = change(trigger_address(t), Action::Replace, statements);
                c.reason = Some(if lt.enabled != t.enabled.tgenabled() {
                    format!("firing {} → {}", lt.enabled, t.enabled.tgenabled())
                } else {
                    "definition differs".into()
                });
                out.push(c);
            }
            Some(_) => {}
        }
    }
    let desired: BTreeSet<(&QualifiedName, &str)> = d
        .triggers
        .iter()
        .map(|t| (&t.table, t.name.as_str()))
        .collect();
    for (table, live) in &o.tables {
        for lt in &live.triggers {
            let address = ObjectAddress::Trigger {
                table: table.clone(),
                name: lt.name.clone(),
            };
            if !desired.contains(&(table, lt.name.as_str()))
                && managed.contains(&address.to_string())
            {
                out.push(change(
                    address,
                    Action::Delete,
                    vec![Statement::sql(format!(
                        "DROP TRIGGER IF EXISTS {} ON {}",
                        quote_ident(&lt.name),
                        table_sql_name(table)
                    ))],
                ));
            }
        }
    }
}

/// Compares the parts of `pg_get_triggerdef` that the planner controls: timing and events.
fn trigger_definition_matches(live: &str, desired: &TriggerDef) -> bool {
    let wanted = desired
        .create_sql
        .first()
        .map(|sql| trigger_shape(sql))
        .unwrap_or_default();
    trigger_shape(live) == wanted
        && live_trigger_condition(live).map(comparable_condition)
            == desired.when.as_deref().map(comparable_condition)
}

/// The `WHEN` condition of a `pg_get_triggerdef` definition: what follows `FOR EACH ROW WHEN`
/// up to the last `EXECUTE FUNCTION`.
fn live_trigger_condition(definition: &str) -> Option<&str> {
    let after_level = definition
        .find(" FOR EACH ROW ")
        .map(|at| &definition[at + " FOR EACH ROW ".len()..])?;
    let condition = after_level.strip_prefix("WHEN ")?;
    let end = condition.rfind(" EXECUTE FUNCTION ")?;
    Some(&condition[..end])
}

/// A condition without what the server adds when it prints one back: parentheses, spacing
/// and the `::text` cast of string literals compared with a text column. Escape-string
/// literals (`E'a\\b'`, as `quote_literal` writes a value with a backslash) are spelled
/// the standard way the server prints them (`'a\b'`).
fn comparable_condition(condition: &str) -> String {
    standard_string_literals(condition)
        .replace("::text", "")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '(' && *c != ')')
        .collect()
}

/// Rewrites `E'…'` literals whose only escapes are doubled backslashes and quotes (all that
/// `quote_literal` produces) as standard `'…'` literals.
fn standard_string_literals(condition: &str) -> String {
    let mut out = String::with_capacity(condition.len());
    let mut chars = condition.chars().peekable();
    let mut previous: Option<char> = None;
    while let Some(c) = chars.next() {
        let starts_escape_string = c == 'E'
            && chars.peek() == Some(&'\'')
            && !previous.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '"');
        if !starts_escape_string {
            out.push(c);
            previous = Some(c);
            if c == '\'' {
                // A standard literal: copy it whole, so an E inside is left alone.
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == '\'' {
                        break;
                    }
                }
                previous = Some('\'');
            }
            continue;
        }
        out.push(chars.next().unwrap_or('\''));
        while let Some(inner) = chars.next() {
            match inner {
                '\\' => {
                    out.push('\\');
                    if chars.peek() == Some(&'\\') {
                        chars.next();
                    }
                }
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    out.push_str("''");
                }
                '\'' => {
                    out.push('\'');
                    break;
                }
                other => out.push(other),
            }
        }
        previous = Some('\'');
    }
    out
}

/// Timing, events (in a fixed order: PostgreSQL prints them its own way) and level of a
/// trigger definition, without names.
fn trigger_shape(sql: &str) -> String {
    let upper = sql.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    let pick = |set: &[&str]| {
        let mut found: Vec<&str> = words.iter().copied().filter(|w| set.contains(w)).collect();
        found.sort_unstable();
        found.dedup();
        found.join(" ")
    };
    [
        pick(&["BEFORE", "AFTER", "INSTEAD"]),
        pick(&["INSERT", "UPDATE", "DELETE", "TRUNCATE"]),
        pick(&["ROW", "STATEMENT"]),
    ]
    .join(" ")
}

fn publication_tables_sql(tables: &[QualifiedName]) -> String {
    tables
        .iter()
        .map(table_sql_name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn diff_publication(
    d: &DesiredNode,
    o: &NodeCatalog,
    change: &ChangeFn<'_>,
    out: &mut Vec<Change>,
) {
    let p = &d.publication;
    let address = ObjectAddress::Publication {
        name: p.name.clone(),
    };
    let publish = p.publish.join(", ");
    let create = Statement::sql(format!(
        "CREATE PUBLICATION {} FOR TABLE {} WITH (publish = {})",
        quote_ident(&p.name),
        publication_tables_sql(&p.tables),
        quote_literal(&publish)
    ));
    match o.publications.get(&p.name) {
        None => out.push(change(address, Action::Create, vec![create])),
        Some(live) if live.all_tables => {
            let mut c = change(
                address,
                Action::Replace,
                vec![
                    Statement::sql(format!("DROP PUBLICATION {}", quote_ident(&p.name))),
                    create,
                ],
            );
            c.reason =
                Some("publishes all tables; pgconverge publishes only its change log".into());
            out.push(c);
        }
        Some(live) => {
            let mut statements = Vec::new();
            let mut reasons = Vec::new();
            let mut live_tables = live.tables.clone();
            live_tables.sort();
            let mut want_tables = p.tables.clone();
            want_tables.sort();
            if live_tables != want_tables {
                statements.push(Statement::sql(format!(
                    "ALTER PUBLICATION {} SET TABLE {}",
                    quote_ident(&p.name),
                    publication_tables_sql(&p.tables)
                )));
                reasons.push("tables differ".to_string());
            }
            let live_ops: BTreeSet<&String> = live.publish.iter().collect();
            let want_ops: BTreeSet<&String> = p.publish.iter().collect();
            if live_ops != want_ops {
                statements.push(Statement::sql(format!(
                    "ALTER PUBLICATION {} SET (publish = {})",
                    quote_ident(&p.name),
                    quote_literal(&publish)
                )));
                reasons.push(format!("publish {} → {}", live.publish.join(", "), publish));
            }
            if !statements.is_empty() {
                let mut c = change(address, Action::Update, statements);
                c.reason = Some(reasons.join(", "));
                out.push(c);
            }
        }
    }
}

/// Subscriptions never create their slot: two nodes subscribing to each other at once would
/// each wait, inside CREATE SUBSCRIPTION, for the other's transaction (slot creation waits for
/// running transactions on the publisher). The slot is a step of its own on the publisher.
fn create_subscription(sub: &DesiredSubscription) -> Statement {
    // streaming = on, not 18's default `parallel`: a parallel apply helper deadlocks with the
    // leader on the conflict triggers' locks under large transactions.
    let options = [
        "origin = none".to_string(),
        "copy_data = false".to_string(),
        "streaming = on".to_string(),
        "create_slot = false".to_string(),
        format!("slot_name = {}", quote_literal(&sub.name)),
    ];
    Statement {
        segments: vec![
            Segment::Sql(format!(
                "CREATE SUBSCRIPTION {} CONNECTION ",
                quote_ident(&sub.name)
            )),
            Segment::Conninfo(sub.conninfo.clone()),
            Segment::Sql(format!(
                " PUBLICATION {} WITH ({})",
                quote_ident(&sub.publication),
                options.join(", ")
            )),
        ],
    }
}

/// Statements that remove a subscription without touching its slot (the publisher's side is
/// handled on the publisher, which may be gone).
fn detach_and_drop_subscription(name: &str) -> Vec<Statement> {
    let q = quote_ident(name);
    vec![
        Statement::sql(format!("ALTER SUBSCRIPTION {q} DISABLE")),
        Statement::sql(format!("ALTER SUBSCRIPTION {q} SET (slot_name = NONE)")),
        Statement::sql(format!("DROP SUBSCRIPTION {q}")),
    ]
}

/// `key=value` pairs of a (redacted) libpq connection string.
fn conninfo_pairs(conninfo: &str) -> BTreeMap<String, String> {
    let mut pairs = BTreeMap::new();
    let mut chars = conninfo.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        pairs.insert(key, value);
    }
    pairs
}

fn conninfo_differences(sub: &DesiredSubscription, live: &str) -> Vec<String> {
    let pairs = conninfo_pairs(live);
    let port = sub.conninfo.port.to_string();
    let wanted = [
        ("host", sub.conninfo.host.as_str()),
        ("port", port.as_str()),
        ("dbname", sub.conninfo.dbname.as_str()),
        ("user", sub.conninfo.user.as_str()),
    ];
    wanted
        .iter()
        .filter(|(key, value)| pairs.get(*key).map(String::as_str) != Some(*value))
        .map(|(key, value)| {
            format!(
                "{key} {} → {value}",
                pairs.get(*key).map_or("unset", String::as_str)
            )
        })
        .collect()
}

fn diff_subscriptions(input: &NodeDiffInput<'_>, change: &ChangeFn<'_>, out: &mut Vec<Change>) {
    let d = input.desired;
    let o = input.observed;
    for sub in &d.subscriptions {
        let address = ObjectAddress::Subscription {
            name: sub.name.clone(),
        };
        let publisher_slots = input.cluster.get(&sub.publisher).map(|c| &c.slots);
        let slot_exists = publisher_slots.is_some_and(|slots| slots.contains_key(&sub.name));
        match o.subscriptions.get(&sub.name) {
            None => {
                let mut c = change(address, Action::Create, vec![create_subscription(sub)]);
                c.transactional = false;
                if slot_exists {
                    c.reason = Some(format!(
                        "reuses the existing slot {} on {}",
                        sub.name, sub.publisher
                    ));
                }
                out.push(c);
            }
            Some(live) => {
                let q = quote_ident(&sub.name);
                let mut statements = Vec::new();
                let mut reasons = Vec::new();
                // Without the privilege to read subconninfo it comes back empty: nothing to
                // compare, rather than a difference that could never go away.
                let differences = if live.conninfo_redacted.is_empty() {
                    Vec::new()
                } else {
                    conninfo_differences(sub, &live.conninfo_redacted)
                };
                if !differences.is_empty() {
                    statements.push(Statement {
                        segments: vec![
                            Segment::Sql(format!("ALTER SUBSCRIPTION {q} CONNECTION ")),
                            Segment::Conninfo(sub.conninfo.clone()),
                        ],
                    });
                    reasons.push(format!("connection: {}", differences.join(", ")));
                }
                if live.publications != [sub.publication.clone()] {
                    statements.push(Statement::sql(format!(
                        "ALTER SUBSCRIPTION {q} SET PUBLICATION {} WITH (refresh = false)",
                        quote_ident(&sub.publication)
                    )));
                    reasons.push(format!(
                        "publications {} → {}",
                        live.publications.join(", "),
                        sub.publication
                    ));
                }
                if live.origin != "none" {
                    statements.push(Statement::sql(format!(
                        "ALTER SUBSCRIPTION {q} SET (origin = none)"
                    )));
                    reasons.push(format!("origin {} → none", live.origin));
                }
                if !live.enabled {
                    statements.push(Statement::sql(format!("ALTER SUBSCRIPTION {q} ENABLE")));
                    reasons.push("disabled → enabled".into());
                }
                if !statements.is_empty() {
                    let mut c = change(address, Action::Update, statements);
                    c.reason = Some(reasons.join(", "));
                    out.push(c);
                }
            }
        }
    }
    let desired: BTreeSet<&str> = d.subscriptions.iter().map(|s| s.name.as_str()).collect();
    for name in o.subscriptions.keys() {
        let address = ObjectAddress::Subscription { name: name.clone() };
        if !desired.contains(name.as_str()) && input.managed.contains(&address.to_string()) {
            let mut c = change(address, Action::Delete, detach_and_drop_subscription(name));
            c.transactional = false;
            c.reason = Some("its publisher is no longer in the config".into());
            out.push(c);
        }
    }
}

/// Slots peers' subscriptions need on this node (the publisher) that do not exist yet.
fn diff_missing_slots(input: &NodeDiffInput<'_>, change: &ChangeFn<'_>, out: &mut Vec<Change>) {
    for name in input.desired_slots_here {
        if input.observed.slots.contains_key(name) {
            continue;
        }
        let mut c = change(
            ObjectAddress::Slot { name: name.clone() },
            Action::Create,
            vec![Statement::sql(format!(
                "SELECT pg_create_logical_replication_slot({}, 'pgoutput')",
                quote_literal(name)
            ))],
        );
        // Creating a logical slot is refused in a transaction that has written anything.
        c.transactional = false;
        let subscriber_has_it = input
            .cluster
            .values()
            .any(|catalog| catalog.subscriptions.contains_key(name));
        if subscriber_has_it {
            c.drift = true;
            c.reason = Some("its subscription exists but the slot is gone; the subscription resumes from the new slot".into());
            c.hazards.push(Hazard::new(
                HazardKind::ReplicationGap,
                format!(
                    "changes made on {} while the slot was missing are not replayed to the \
                     subscriber",
                    input.desired.name
                ),
            ));
        }
        out.push(c);
    }
}

/// Slots on this node that pgconverge created for subscriptions that no longer exist: they
/// would hold WAL until the disk fills.
fn diff_orphan_slots(input: &NodeDiffInput<'_>, change: &ChangeFn<'_>, out: &mut Vec<Change>) {
    for (name, slot) in &input.observed.slots {
        let address = ObjectAddress::Slot { name: name.clone() };
        if input.desired_slots_here.contains(name) || !input.managed.contains(&address.to_string())
        {
            continue;
        }
        let mut c = change(
            address,
            Action::Delete,
            vec![Statement::sql(format!(
                "SELECT pg_drop_replication_slot({})",
                quote_literal(name)
            ))],
        );
        c.transactional = false;
        c.reason = Some("no subscription uses it any more; it would retain WAL".into());
        if slot.active {
            c.hazards.push(Hazard::new(
                HazardKind::SlotActive,
                "the slot is active: dropping fails until its subscriber disconnects",
            ));
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_pairs_handle_quotes_and_escapes() {
        let pairs = conninfo_pairs(
            "host=10.0.0.1 port=5432 dbname='my db' user='o\\'brien' password=********",
        );
        assert_eq!(pairs["host"], "10.0.0.1");
        assert_eq!(pairs["dbname"], "my db");
        assert_eq!(pairs["user"], "o'brien");
        assert_eq!(pairs["password"], "********");
    }

    #[test]
    fn trigger_shapes_ignore_names_and_quoting() {
        assert_eq!(
            trigger_shape("CREATE TRIGGER x BEFORE INSERT OR UPDATE ON public.t FOR EACH ROW EXECUTE FUNCTION f()"),
            "BEFORE INSERT UPDATE ROW"
        );
        assert_eq!(
            trigger_shape("CREATE TRIGGER x AFTER INSERT OR DELETE OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()"),
            trigger_shape("CREATE TRIGGER x AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION f()"),
        );
    }

    #[test]
    fn trigger_conditions_compare_as_the_server_prints_them() {
        let printed = "CREATE TRIGGER \"_pgc_apply_t_1\" BEFORE INSERT ON _pgconverge.changes \
            FOR EACH ROW WHEN ((new.tbl = '\"public\".\"t\"'::text)) \
            EXECUTE FUNCTION _pgconverge.\"apply_t_1\"()";
        let condition = live_trigger_condition(printed);
        assert_eq!(condition, Some("((new.tbl = '\"public\".\"t\"'::text))"));
        assert_eq!(
            condition.map(comparable_condition),
            Some(comparable_condition("new.tbl = '\"public\".\"t\"'"))
        );
        assert_ne!(
            condition.map(comparable_condition),
            Some(comparable_condition("new.tbl = '\"public\".\"u\"'"))
        );
        let unconditional = "CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()";
        assert_eq!(live_trigger_condition(unconditional), None);
    }

    #[test]
    fn escape_string_conditions_compare_with_what_the_server_prints() {
        // quote_literal of `"public"."a\b"` and the server's printing of the same value.
        let desired = format!("new.tbl = {}", quote_literal("\"public\".\"a\\b\""));
        assert!(desired.contains("E'"), "{desired}");
        let printed = "CREATE TRIGGER x BEFORE INSERT ON _pgconverge.changes FOR EACH ROW \
            WHEN ((new.tbl = '\"public\".\"a\\b\"'::text)) EXECUTE FUNCTION f()";
        assert_eq!(
            live_trigger_condition(printed).map(comparable_condition),
            Some(comparable_condition(&desired))
        );
        // Doubled quotes inside stay doubled; a value that differs still differs.
        let quoted = format!("new.tbl = {}", quote_literal("it's \\ here"));
        assert_eq!(
            comparable_condition(&quoted),
            comparable_condition("new.tbl = 'it''s \\ here'::text")
        );
        assert_ne!(
            comparable_condition(&desired),
            comparable_condition("new.tbl = '\"public\".\"a\\\\b\"'::text")
        );
    }
}
