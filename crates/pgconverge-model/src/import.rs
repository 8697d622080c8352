//! `import --from`: the tables of a live database, as read from its catalogs, turned into
//! table configs, and everything the config cannot describe listed in a report (never
//! silently dropped). Pure: the caller introspects.
//!
//! A table comes in only as the config can describe it whole, so that a plan against the
//! same database proposes no change to what exists: a part the model cannot express (an
//! exclusion constraint, an index with an operator class of its own, a foreign key
//! with MATCH FULL) is left out of the config and listed; a table the model cannot hold at
//! all (no primary key, a partition key on expressions, sub-partitions, a virtual generated
//! column) is left out with its reason. A partitioned table comes in with its key and its
//! partitions' bounds as PostgreSQL prints them; enum and domain types and CHECK constraints
//! come in with the names and expressions PostgreSQL prints.

use std::collections::{BTreeMap, BTreeSet};

use pgconverge_sql::{quote_ident, quote_ident_list};

use crate::catalog::{
    ConstraintCatalog, ConstraintKind, ForeignKeyRules, IndexCatalog, NodeCatalog, OutsideObject,
    QualifiedName, TableCatalog, TypeCatalog,
};
use crate::config::{
    default_schema, CheckConfig, ColumnConfig, ConflictConfig, ForeignKeyConfig, ForeignKeyTarget,
    IdentityKind, IndexConfig, LegacyColumns, PartitionBy, PartitionConfig, TableConfig,
    TypeConfig, INDEX_METHODS,
};
use crate::key_blocks::{is_sequence_default, KeyWidth};
use crate::naming::RESERVED_COLUMN_PREFIX;
use crate::partitioning::parse_partition_key;
use crate::types::normalize_type;

/// The tables that could be imported and what could not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Import {
    /// Enum and domain types.
    pub types: Vec<TypeConfig>,
    pub tables: Vec<TableConfig>,
    pub report: Vec<NotImported>,
}

/// One object, or one part of a table, that is not in the imported config, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NotImported {
    /// What it is, e.g. `view public.order_totals`, `CHECK constraint orders_total_check on
    /// public.orders`.
    pub object: String,
    pub reason: String,
}

impl std::fmt::Display for NotImported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.reason)
    }
}

/// The triggers pgconverge adds to replicated tables start with this: they are not the
/// application's, and a database imported again after adoption does not list them.
const OWN_TRIGGER_PREFIX: &str = "_pgc_";

/// Converts every table of `catalog` the config can describe; lists the rest.
pub fn import_tables(catalog: &NodeCatalog, outside: &[OutsideObject]) -> Import {
    let mut report = Vec::new();
    let excluded = excluded_tables(catalog, outside);
    let imported: BTreeSet<&QualifiedName> = catalog
        .tables
        .keys()
        .filter(|name| !excluded.contains_key(*name))
        .collect();
    let mut tables = Vec::new();
    for (name, table) in &catalog.tables {
        if let Some(reason) = excluded.get(name) {
            report.push(NotImported {
                object: format!("table {name}"),
                reason: reason.clone(),
            });
            continue;
        }
        tables.push(table_config(
            name,
            table,
            &imported,
            &catalog.tables,
            &mut report,
        ));
    }
    for object in outside {
        if let Some(entry) = outside_entry(object) {
            report.push(entry);
        }
    }
    report.sort();
    report.dedup();
    Import {
        types: catalog.types.iter().map(type_config).collect(),
        tables,
        report,
    }
}

/// Tables that cannot be in the config at all, with the reason.
fn excluded_tables(
    catalog: &NodeCatalog,
    outside: &[OutsideObject],
) -> BTreeMap<QualifiedName, String> {
    let mut excluded = BTreeMap::new();
    for object in outside {
        let name = QualifiedName::new(&object.schema, &object.name);
        let reason = match object.kind.as_str() {
            "generated column" => format!(
                "its column {} is a virtual generated column, which the model cannot describe (it holds stored ones); the table is not replicated",
                quote_ident(&object.detail)
            ),
            "extension table" => format!(
                "belongs to extension {}, which manages it on every node",
                object.detail
            ),
            _ => continue,
        };
        excluded.entry(name).or_insert(reason);
    }
    for (name, table) in &catalog.tables {
        let reason = if let Some(reason) = partitioning_problem(name, table) {
            reason
        } else if !table
            .constraints
            .iter()
            .any(|c| c.kind == ConstraintKind::PrimaryKey)
        {
            "has no primary key, which replication identifies rows by; add one and import again"
                .to_string()
        } else {
            continue;
        };
        excluded.entry(name.clone()).or_insert(reason);
    }
    excluded
}

/// Why a partitioned table cannot be in the config, if it cannot.
fn partitioning_problem(name: &QualifiedName, table: &TableCatalog) -> Option<String> {
    if !table.partitioned {
        return None;
    }
    let key = table.partition_key.as_deref().unwrap_or_default();
    if import_partition_key(table).is_none() {
        return Some(format!(
            "a partitioned table whose key ({key}) is not plain columns, which the model cannot describe; its rows are not replicated"
        ));
    }
    if let Some(sub) = table.partitions.iter().find(|p| p.partitioned) {
        return Some(format!(
            "its partition {} is partitioned itself, which the model cannot describe; its rows are not replicated",
            sub.name
        ));
    }
    if let Some(away) = table.partitions.iter().find(|p| p.schema != name.schema) {
        return Some(format!(
            "its partition {}.{} is in another schema; the model keeps partitions in their table's schema, so its rows are not replicated",
            away.schema, away.name
        ));
    }
    None
}

fn import_partition_key(table: &TableCatalog) -> Option<PartitionBy> {
    let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    parse_partition_key(table.partition_key.as_deref()?, &names)
}

/// The partitions of a table as the config writes them: bounds as PostgreSQL prints them,
/// without `FOR VALUES`.
fn partition_configs(table: &TableCatalog) -> Vec<PartitionConfig> {
    table
        .partitions
        .iter()
        .map(|p| PartitionConfig {
            name: p.name.clone(),
            bounds: p
                .bound
                .strip_prefix("FOR VALUES ")
                .unwrap_or(&p.bound)
                .to_string(),
        })
        .collect()
}

fn table_config(
    name: &QualifiedName,
    table: &TableCatalog,
    imported: &BTreeSet<&QualifiedName>,
    all: &BTreeMap<QualifiedName, TableCatalog>,
    report: &mut Vec<NotImported>,
) -> TableConfig {
    let columns = table
        .columns
        .iter()
        .filter(|c| !c.name.starts_with(RESERVED_COLUMN_PREFIX))
        .map(|c| column_config(table, c))
        .collect();
    let mut config = TableConfig {
        name: name.name.clone(),
        schema: if name.schema.is_empty() {
            default_schema()
        } else {
            name.schema.clone()
        },
        columns,
        primary_key: Vec::new(),
        unique: Vec::new(),
        foreign_keys: Vec::new(),
        indexes: Vec::new(),
        checks: Vec::new(),
        conflict: ConflictConfig::default(),
        legacy_columns: LegacyColumns::default(),
        dropped_columns: Vec::new(),
        partition_by: import_partition_key(table),
        partitions: partition_configs(table),
        dropped_partitions: Vec::new(),
    };
    for constraint in &table.constraints {
        add_constraint(&mut config, name, constraint, imported, all, report);
    }
    for index in &table.indexes {
        match index_config(index) {
            Ok(imported) => config.indexes.push(imported),
            Err(why) => report.push(NotImported {
                object: format!("index {} on {name}", index.name),
                reason: format!(
                    "not managed ({why}); it stays here, add it on the other nodes yourself: {}",
                    index.definition
                ),
            }),
        }
    }
    for trigger in &table.triggers {
        if !trigger.name.starts_with(OWN_TRIGGER_PREFIX) {
            report.push(NotImported {
                object: format!("trigger {} on {name}", trigger.name),
                reason: format!(
                    "triggers are outside the model; {CARRIED}; it fires for writes made on the node it is on, never for replicated changes: {}",
                    trigger.definition
                ),
            });
        }
    }
    let own_identity = table.replica_identity_index.as_ref().is_some_and(|index| {
        table
            .constraints
            .iter()
            .any(|c| &c.name == index && is_own_constraint(c))
    });
    if table.replica_identity != "d" && !own_identity {
        report.push(NotImported {
            object: format!("replica identity of {name}"),
            reason:
                "pgconverge sets it to the primary key, which its change log identifies rows by"
                    .into(),
        });
    }
    config
}

/// A live column as configured: a serial column (a sequence it owns and a `nextval`
/// default) as its serial type, so that nodes creating the table make the sequence too.
fn column_config(table: &TableCatalog, column: &crate::catalog::ColumnCatalog) -> ColumnConfig {
    let identity = match column.identity.as_deref() {
        Some("a") => Some(IdentityKind::Always),
        Some("d") => Some(IdentityKind::ByDefault),
        _ => None,
    };
    let owned_sequence = table
        .key_sequences
        .iter()
        .any(|s| s.column == column.name && s.owned);
    let serial_type = match KeyWidth::of_type(&column.data_type) {
        Some(KeyWidth::Small) => "smallserial",
        Some(KeyWidth::Int) => "serial",
        Some(KeyWidth::Big) => "bigserial",
        None => "",
    };
    let is_serial = identity.is_none()
        && owned_sequence
        && column.not_null
        && !serial_type.is_empty()
        && column.default.as_deref().is_some_and(is_sequence_default);
    ColumnConfig {
        name: column.name.clone(),
        data_type: if is_serial {
            serial_type.to_string()
        } else {
            column.data_type.clone()
        },
        nullable: !column.not_null,
        default: if is_serial {
            None
        } else {
            column.default.clone()
        },
        renamed_from: None,
        identity,
        generated: column.generated.clone(),
    }
}

/// A live enum or domain as configured; names of checks as they are.
fn type_config((name, ty): (&QualifiedName, &TypeCatalog)) -> TypeConfig {
    let mut config = TypeConfig {
        name: name.name.clone(),
        schema: name.schema.clone(),
        enum_values: None,
        domain: None,
        nullable: true,
        default: None,
        checks: Vec::new(),
    };
    match ty {
        TypeCatalog::Enum { labels } => config.enum_values = Some(labels.clone()),
        TypeCatalog::Domain(domain) => {
            config.domain = Some(domain.base_type.clone());
            config.nullable = !domain.not_null;
            config.default = domain.default.clone();
            config.checks = domain
                .checks
                .iter()
                .map(|c| check_config(&c.name, &c.definition))
                .collect();
        }
    }
    config
}

/// `CHECK ((price >= (0)::numeric)) NOT VALID` as a named check of `price >= (0)::numeric`
/// (PostgreSQL's own spelling, which plans compare equal to the live one).
fn check_config(name: &str, definition: &str) -> CheckConfig {
    let text = definition.trim();
    let text = text.strip_suffix(" NOT VALID").unwrap_or(text);
    let text = text.strip_prefix("CHECK ").unwrap_or(text);
    let text = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .filter(|inner| balanced(inner))
        .unwrap_or(text);
    CheckConfig {
        name: Some(name.to_string()),
        expression: text.to_string(),
    }
}

/// Whether parentheses outside string literals and quoted names balance in `text`.
fn balanced(text: &str) -> bool {
    let mut depth = 0i64;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

/// A constraint over a reserved column: pgconverge's own (the forwarding write path's
/// identity on the primary key and `_pgc_birth`), made again from the setting, not the config.
fn is_own_constraint(constraint: &ConstraintCatalog) -> bool {
    constraint
        .columns
        .iter()
        .any(|c| c.starts_with(RESERVED_COLUMN_PREFIX))
}

fn add_constraint(
    config: &mut TableConfig,
    table: &QualifiedName,
    constraint: &ConstraintCatalog,
    imported: &BTreeSet<&QualifiedName>,
    all: &BTreeMap<QualifiedName, TableCatalog>,
    report: &mut Vec<NotImported>,
) {
    if is_own_constraint(constraint) {
        return;
    }
    let list = quote_ident_list(&constraint.columns);
    let mut not_managed = |what: &str, why: &str| {
        report.push(NotImported {
            object: format!("{what} {} on {table}", constraint.name),
            reason: format!(
                "{why}; it stays here, add it on the other nodes yourself: {}",
                constraint.definition
            ),
        })
    };
    match constraint.kind {
        ConstraintKind::PrimaryKey => {
            config.primary_key = constraint.columns.clone();
            if constraint.definition != format!("PRIMARY KEY ({list})") {
                not_managed(
                    "primary key",
                    "its columns are imported, the rest of its definition is not in the model",
                );
            }
        }
        ConstraintKind::Unique if constraint.definition == format!("UNIQUE ({list})") => {
            config.unique.push(constraint.columns.clone());
        }
        ConstraintKind::Unique => not_managed(
            "UNIQUE constraint",
            "the model holds plain UNIQUE constraints on columns",
        ),
        ConstraintKind::Check => config
            .checks
            .push(check_config(&constraint.name, &constraint.definition)),
        ConstraintKind::Exclusion => not_managed(
            "exclusion constraint",
            "exclusion constraints are outside the model",
        ),
        ConstraintKind::ForeignKey => match foreign_key(constraint, imported, all, config) {
            Ok(fk) => config.foreign_keys.push(fk),
            Err(why) => not_managed("foreign key", &why),
        },
    }
}

/// A live foreign key as configured, or why the config cannot hold it.
fn foreign_key(
    constraint: &ConstraintCatalog,
    imported: &BTreeSet<&QualifiedName>,
    all: &BTreeMap<QualifiedName, TableCatalog>,
    config: &TableConfig,
) -> Result<ForeignKeyConfig, String> {
    let Some((target, target_columns)) = &constraint.references else {
        return Err("its referenced table was not read".into());
    };
    if !imported.contains(target) {
        return Err(format!("it references {target}, which is not imported"));
    }
    let prefix = format!(
        "FOREIGN KEY ({}) REFERENCES {}.{}({})",
        quote_ident_list(&constraint.columns),
        quote_ident(&target.schema),
        quote_ident(&target.name),
        quote_ident_list(target_columns)
    );
    let rules = constraint.foreign_key.clone().unwrap_or_default();
    if constraint.definition != format!("{prefix}{}", foreign_key_rules_sql(&rules)) {
        return Err(
            "the model holds foreign keys with MATCH SIMPLE, validated, and actions without \
             column lists"
                .into(),
        );
    }
    let action = |code: &str| {
        let name = ForeignKeyRules::action_name(code);
        (name != "no action").then(|| name.to_string())
    };
    let target_table = all.get(target);
    for (local, remote) in constraint.columns.iter().zip(target_columns) {
        let local_type = config.column(local).map(|c| integer_type_of(&c.data_type));
        let remote_type = target_table
            .and_then(|t| t.column(remote))
            .map(|c| normalize_type(&c.data_type));
        if local_type != remote_type {
            return Err(format!(
                "{local} and {target}.{remote} have different types, which the model refuses"
            ));
        }
    }
    Ok(ForeignKeyConfig {
        columns: constraint.columns.clone(),
        references: ForeignKeyTarget {
            table: if target.schema == "public" {
                target.name.clone()
            } else {
                format!("{}.{}", target.schema, target.name)
            },
            columns: target_columns.clone(),
        },
        on_delete: action(&rules.on_delete),
        on_update: action(&rules.on_update),
        deferrable: rules.deferrable,
        initially_deferred: rules.initially_deferred,
    })
}

/// What `pg_get_constraintdef` prints after a foreign key's `REFERENCES t(c)` for these
/// rules (nothing for the defaults).
fn foreign_key_rules_sql(rules: &ForeignKeyRules) -> String {
    let mut sql = String::new();
    for (clause, code) in [
        ("ON UPDATE", &rules.on_update),
        ("ON DELETE", &rules.on_delete),
    ] {
        let name = ForeignKeyRules::action_name(code);
        if name != "no action" {
            sql.push_str(&format!(" {clause} {}", name.to_ascii_uppercase()));
        }
    }
    if rules.deferrable {
        sql.push_str(" DEFERRABLE");
    }
    if rules.initially_deferred {
        sql.push_str(" INITIALLY DEFERRED");
    }
    sql
}

/// A live non-unique index as configured, or why the config cannot hold it.
fn index_config(index: &IndexCatalog) -> Result<IndexConfig, String> {
    if index.unique {
        return Err("a unique index that is not a constraint".into());
    }
    if let Some(parts) = &index.unmodelled {
        return Err(format!("the config cannot state its {parts}"));
    }
    if !INDEX_METHODS.contains(&index.method()) {
        return Err(format!("access method {}", index.method()));
    }
    let (columns, expressions) = if index.expression_keys {
        (Vec::new(), index.columns.clone())
    } else {
        (index.columns.clone(), Vec::new())
    };
    Ok(IndexConfig {
        columns,
        expressions,
        name: Some(index.name.clone()),
        method: (index.method() != "btree").then(|| index.method().to_string()),
        include: index.include.clone(),
        predicate: index.predicate.clone(),
    })
}

/// A configured type as the column's live type: a serial type is its integer type.
fn integer_type_of(data_type: &str) -> String {
    let normalized = normalize_type(data_type);
    crate::key_blocks::serial_integer_type(&normalized)
        .map(str::to_string)
        .unwrap_or(normalized)
}

/// What becomes of an object outside the model that a bootstrap carries.
const CARRIED: &str = "it stays here, nodes bootstrapped from this one get it, and sql_files \
     carry later changes of it to every node";

/// The report line of an object outside every table, if it is one.
fn outside_entry(object: &OutsideObject) -> Option<NotImported> {
    let qualified = if object.schema.is_empty() {
        object.name.clone()
    } else {
        format!("{}.{}", object.schema, object.name)
    };
    let (what, reason) = match object.kind.as_str() {
        "generated column" | "extension table" => return None,
        "policy" => (
            format!("policy {} on {qualified}", object.detail),
            format!("row-level security policies are outside the model; {CARRIED}"),
        ),
        "extension" => (
            format!("extension {qualified} {}", object.detail),
            "install it on every node before apply".to_string(),
        ),
        "sequence" => (
            format!("sequence {qualified}"),
            "a sequence no column owns is outside the model; create it on every node before \
             apply (a default that calls it is bounded to each node's key block)"
                .to_string(),
        ),
        kind @ ("function" | "procedure") => (
            format!("{kind} {qualified}({})", object.detail),
            format!("routines are outside the model; {CARRIED}"),
        ),
        kind @ ("view" | "materialized view") => (
            format!("{kind} {qualified}"),
            format!("{kind}s are outside the model; {CARRIED}"),
        ),
        kind @ ("aggregate" | "window function") => (
            format!("{kind} {qualified}({})", object.detail),
            format!("{kind}s are outside the model; it stays here: create it on the other nodes, e.g. in one of sql_files"),
        ),
        kind => (
            format!("{kind} {qualified}"),
            format!("{kind}s are outside the model; it stays here: create it on the other nodes, e.g. in one of sql_files"),
        ),
    };
    Some(NotImported {
        object: what,
        reason,
    })
}

#[cfg(test)]
mod tests;
