//! Turns the table, constraint, index and trigger rows into [`TableCatalog`]s.
//!
//! Key columns arrive as attribute numbers and are named here from the tables' own columns;
//! the definitions of plain btree indexes, of plain key and foreign key constraints and of
//! plain triggers are printed here too, exactly as the server prints them (see
//! [`plain_index_definition`], `CONSTRAINTS_SQL` and [`plain_trigger_definition`]). All of
//! them replace per-row catalog work on the server that dominated introspection of large
//! schemas.

use std::collections::{BTreeMap, HashMap};

use pgconverge_model::catalog::{
    ColumnCatalog, ConstraintCatalog, ConstraintKind, ForeignKeyRules, IndexCatalog,
    KeySequenceCatalog, QualifiedName, TableCatalog, TriggerCatalog,
};
use tokio_postgres::Row;

use super::{get, inconsistent, IntrospectError};

/// What naming and printing keys needs to know of a table column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyColumn {
    pub name: String,
    /// `quote_ident(attname)`, as the server quotes it.
    pub quoted: String,
    pub type_oid: u32,
    pub collation: u32,
}

/// Every table's columns by attribute number.
pub(super) type TableColumns = HashMap<QualifiedName, HashMap<i16, KeyColumn>>;

pub(super) fn decode_tables(
    rows: &[Row],
) -> Result<(BTreeMap<QualifiedName, TableCatalog>, TableColumns), IntrospectError> {
    const WHAT: &str = "tables";
    let mut tables = BTreeMap::new();
    let mut table_columns = HashMap::with_capacity(rows.len());
    for row in rows {
        let name = row_table(row, WHAT)?;
        let names: Vec<String> = get::<Option<_>>(row, 4, WHAT)?.unwrap_or_default();
        let types: Vec<String> = get::<Option<_>>(row, 5, WHAT)?.unwrap_or_default();
        let not_nulls: Vec<bool> = get::<Option<_>>(row, 6, WHAT)?.unwrap_or_default();
        let defaults: Vec<Option<String>> = get::<Option<_>>(row, 7, WHAT)?.unwrap_or_default();
        let attnums: Vec<i16> = get::<Option<_>>(row, 8, WHAT)?.unwrap_or_default();
        let quoted: Vec<String> = get::<Option<_>>(row, 9, WHAT)?.unwrap_or_default();
        let type_oids: Vec<u32> = get::<Option<_>>(row, 10, WHAT)?.unwrap_or_default();
        let collations: Vec<u32> = get::<Option<_>>(row, 11, WHAT)?.unwrap_or_default();
        let identities: Vec<String> = get::<Option<_>>(row, 14, WHAT)?.unwrap_or_default();
        let generated: Vec<Option<String>> = get::<Option<_>>(row, 15, WHAT)?.unwrap_or_default();
        if [
            types.len(),
            not_nulls.len(),
            defaults.len(),
            attnums.len(),
            quoted.len(),
        ]
        .iter()
        .chain(
            [
                type_oids.len(),
                collations.len(),
                identities.len(),
                generated.len(),
            ]
            .iter(),
        )
        .any(|len| *len != names.len())
        {
            return Err(inconsistent(
                WHAT,
                format!("column arrays of {name} differ in length"),
            ));
        }
        let by_attnum = attnums
            .iter()
            .copied()
            .zip(names.iter().cloned())
            .zip(quoted)
            .zip(type_oids.into_iter().zip(collations))
            .map(|(((attnum, name), quoted), (type_oid, collation))| {
                (
                    attnum,
                    KeyColumn {
                        name,
                        quoted,
                        type_oid,
                        collation,
                    },
                )
            })
            .collect();
        table_columns.insert(name.clone(), by_attnum);
        let mut columns: Vec<(i16, ColumnCatalog)> = attnums
            .into_iter()
            .zip(names)
            .zip(types)
            .zip(not_nulls.into_iter().zip(defaults))
            .zip(identities.into_iter().zip(generated))
            .map(
                |((((attnum, name), data_type), (not_null, default)), (identity, generated))| {
                    (
                        attnum,
                        ColumnCatalog {
                            name,
                            data_type,
                            not_null,
                            default,
                            identity: (!identity.is_empty()).then_some(identity),
                            generated,
                        },
                    )
                },
            )
            .collect();
        columns.sort_by_key(|(attnum, _)| *attnum);
        let columns = columns.into_iter().map(|(_, column)| column).collect();
        let reltuples: f64 = get(row, 3, WHAT)?;
        tables.insert(
            name,
            TableCatalog {
                columns,
                replica_identity: get(row, 2, WHAT)?,
                partitioned: get(row, 12, WHAT)?,
                partition_key: get(row, 16, WHAT)?,
                replica_identity_index: get(row, 17, WHAT)?,
                // `as` saturates; reltuples is a float estimate, -1 when never analysed.
                estimated_rows: reltuples as i64,
                estimated_bytes: get(row, 13, WHAT)?,
                ..TableCatalog::default()
            },
        );
    }
    Ok((tables, table_columns))
}

/// The column `attnum` of `table`. Keys always name live columns of their own table, so a
/// miss means the snapshot is inconsistent and is reported, not papered over.
fn key_column<'c>(
    table_columns: &'c TableColumns,
    table: &QualifiedName,
    attnum: i16,
    what: &'static str,
) -> Result<&'c KeyColumn, IntrospectError> {
    table_columns
        .get(table)
        .and_then(|columns| columns.get(&attnum))
        .ok_or_else(|| inconsistent(what, format!("{table} has no column number {attnum}")))
}

fn key_names(
    table_columns: &TableColumns,
    table: &QualifiedName,
    attnums: &[i16],
    what: &'static str,
) -> Result<Vec<String>, IntrospectError> {
    attnums
        .iter()
        .map(|attnum| {
            Ok(key_column(table_columns, table, *attnum, what)?
                .name
                .clone())
        })
        .collect()
}

/// `a, b` with each column quoted as the server quotes it.
fn quoted_key_list(
    table_columns: &TableColumns,
    table: &QualifiedName,
    attnums: &[i16],
    what: &'static str,
) -> Result<String, IntrospectError> {
    let quoted: Vec<&str> = attnums
        .iter()
        .map(|attnum| {
            Ok(key_column(table_columns, table, *attnum, what)?
                .quoted
                .as_str())
        })
        .collect::<Result<_, IntrospectError>>()?;
    Ok(quoted.join(", "))
}

/// The words `pg_get_constraintdef` prints for `confupdtype`/`confdeltype`; nothing for the
/// default NO ACTION.
fn foreign_key_action(code: &str) -> Option<&'static str> {
    match code {
        "r" => Some("RESTRICT"),
        "c" => Some("CASCADE"),
        "n" => Some("SET NULL"),
        "d" => Some("SET DEFAULT"),
        _ => None,
    }
}

pub(super) fn constraint_kind(contype: &str) -> Option<ConstraintKind> {
    match contype {
        "p" => Some(ConstraintKind::PrimaryKey),
        "u" => Some(ConstraintKind::Unique),
        "f" => Some(ConstraintKind::ForeignKey),
        "c" => Some(ConstraintKind::Check),
        "x" => Some(ConstraintKind::Exclusion),
        _ => None,
    }
}

/// The table a row belongs to (its first two columns). Rows of a table missing from the map
/// (impossible inside one snapshot) are dropped rather than invented.
fn row_table(row: &Row, what: &'static str) -> Result<QualifiedName, IntrospectError> {
    Ok(QualifiedName::new(
        get::<String>(row, 0, what)?,
        get::<String>(row, 1, what)?,
    ))
}

pub(super) fn attach_constraints(
    tables: &mut BTreeMap<QualifiedName, TableCatalog>,
    table_columns: &TableColumns,
    rows: &[Row],
) -> Result<(), IntrospectError> {
    const WHAT: &str = "constraints";
    for row in rows {
        let contype: String = get(row, 3, WHAT)?;
        let Some(kind) = constraint_kind(&contype) else {
            continue;
        };
        let table_name = row_table(row, WHAT)?;
        let conkey: Vec<i16> = get::<Option<_>>(row, 4, WHAT)?.unwrap_or_default();
        // Exclusion keys on expressions have attnum 0 and no column: left out.
        let conkey: Vec<i16> = conkey.into_iter().filter(|attnum| *attnum != 0).collect();
        let references = match (
            get::<Option<String>>(row, 6, WHAT)?,
            get::<Option<String>>(row, 7, WHAT)?,
        ) {
            (Some(schema), Some(name)) if kind == ConstraintKind::ForeignKey => {
                let referenced = QualifiedName::new(schema, name);
                let confkey: Vec<i16> = get::<Option<_>>(row, 8, WHAT)?.unwrap_or_default();
                let columns = match get::<Option<Vec<String>>>(row, 9, WHAT)? {
                    Some(outside_scope) => outside_scope,
                    None => key_names(table_columns, &referenced, &confkey, WHAT)?,
                };
                Some((referenced, confkey, columns))
            }
            _ => None,
        };
        let definition = match get::<Option<String>>(row, 5, WHAT)? {
            Some(printed_by_server) => printed_by_server,
            None => {
                let quoted_keys = quoted_key_list(table_columns, &table_name, &conkey, WHAT)?;
                match (kind, &references) {
                    (ConstraintKind::PrimaryKey, _) => format!("PRIMARY KEY ({quoted_keys})"),
                    (ConstraintKind::Unique, _) => format!("UNIQUE ({quoted_keys})"),
                    (ConstraintKind::ForeignKey, Some((referenced, confkey, _))) => {
                        let quoted_schema: String = get(row, 12, WHAT)?;
                        let quoted_table: String = get(row, 13, WHAT)?;
                        let referenced_keys =
                            quoted_key_list(table_columns, referenced, confkey, WHAT)?;
                        let on_update = foreign_key_action(&get::<String>(row, 10, WHAT)?)
                            .map(|action| format!(" ON UPDATE {action}"))
                            .unwrap_or_default();
                        let on_delete = foreign_key_action(&get::<String>(row, 11, WHAT)?)
                            .map(|action| format!(" ON DELETE {action}"))
                            .unwrap_or_default();
                        format!(
                            "FOREIGN KEY ({quoted_keys}) REFERENCES \
                             {quoted_schema}.{quoted_table}({referenced_keys}){on_update}{on_delete}"
                        )
                    }
                    _ => {
                        return Err(inconsistent(
                            WHAT,
                            format!("no definition for constraint of {table_name}"),
                        ))
                    }
                }
            }
        };
        let foreign_key = if kind == ConstraintKind::ForeignKey {
            Some(ForeignKeyRules {
                on_update: get(row, 10, WHAT)?,
                on_delete: get(row, 11, WHAT)?,
                deferrable: get(row, 14, WHAT)?,
                initially_deferred: get(row, 15, WHAT)?,
            })
        } else {
            None
        };
        let constraint = ConstraintCatalog {
            name: get(row, 2, WHAT)?,
            kind,
            columns: key_names(table_columns, &table_name, &conkey, WHAT)?,
            definition,
            references: references.map(|(table, _, columns)| (table, columns)),
            foreign_key,
        };
        if let Some(table) = tables.get_mut(&table_name) {
            table.constraints.push(constraint);
        }
    }
    for table in tables.values_mut() {
        table.constraints.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(())
}

/// An index read, its definition possibly still to be fetched.
pub(super) struct PendingIndex {
    pub table: QualifiedName,
    pub index_oid: u32,
    pub index: IndexCatalog,
}

/// The index rows, decoded.
pub(super) struct DecodedIndexes {
    pub valid: Vec<PendingIndex>,
    /// Oids of valid indexes whose definition only the server can print.
    pub needing_server_definition: Vec<u32>,
    /// Indexes left invalid by an interrupted `CREATE INDEX CONCURRENTLY`: table and name.
    pub invalid: Vec<(QualifiedName, String)>,
}

/// Decodes the index rows. Plain btree indexes get their definition printed here; the others
/// come back with an empty definition and are listed in `needing_server_definition`, to be
/// filled by [`attach_indexes`] from `pg_get_indexdef`. Invalid indexes are only named.
pub(super) fn decode_indexes(
    table_columns: &TableColumns,
    default_btree_opclasses: &HashMap<u32, u32>,
    rows: &[Row],
) -> Result<DecodedIndexes, IntrospectError> {
    const WHAT: &str = "indexes";
    let mut indexes = Vec::with_capacity(rows.len());
    let mut needing_server_definition = Vec::new();
    let mut invalid = Vec::new();
    for row in rows {
        let table = row_table(row, WHAT)?;
        if !get::<bool>(row, 17, WHAT)? {
            invalid.push((table, get(row, 2, WHAT)?));
            continue;
        }
        let shape = IndexShape {
            quoted_schema: get(row, 8, WHAT)?,
            quoted_table: get(row, 9, WHAT)?,
            quoted_name: get(row, 10, WHAT)?,
            table_kind: get(row, 11, WHAT)?,
            access_method: get(row, 12, WHAT)?,
            unique: get(row, 3, WHAT)?,
            indkey: get(row, 4, WHAT)?,
            key_count: usize::try_from(get::<i16>(row, 5, WHAT)?).unwrap_or(0),
            opclasses: get(row, 13, WHAT)?,
            collations: get(row, 14, WHAT)?,
            options: get(row, 15, WHAT)?,
            no_expressions_predicate_or_storage_options: get(row, 16, WHAT)?,
        };
        let expressions: Option<Vec<String>> = get(row, 6, WHAT)?;
        let expression_keys = shape.indkey.iter().take(shape.key_count).any(|a| *a == 0);
        let mut columns = Vec::with_capacity(shape.key_count);
        for (position, attnum) in shape.indkey.iter().take(shape.key_count).enumerate() {
            // With an expression among the keys, every key is the server's text for it.
            let column = match (*attnum, &expressions) {
                (_, Some(expressions)) => expressions.get(position).cloned().ok_or_else(|| {
                    inconsistent(
                        WHAT,
                        format!("an index of {table} lacks expression {position}"),
                    )
                })?,
                (0, None) => {
                    return Err(inconsistent(
                        WHAT,
                        format!("an index of {table} has an expression but no text for it"),
                    ))
                }
                (attnum, None) => key_column(table_columns, &table, attnum, WHAT)?
                    .name
                    .clone(),
            };
            columns.push(column);
        }
        let include = key_names(
            table_columns,
            &table,
            shape.indkey.get(shape.key_count..).unwrap_or_default(),
            WHAT,
        )?;
        let storage_options: bool = get(row, 19, WHAT)?;
        let default_opclasses: Option<bool> = get(row, 20, WHAT)?;
        let unmodelled = table_columns.get(&table).and_then(|columns| {
            unmodelled_index_parts(
                &shape,
                columns,
                default_btree_opclasses,
                storage_options,
                default_opclasses,
            )
        });
        let predicate: Option<String> = get(row, 18, WHAT)?;
        let index_oid: u32 = get(row, 7, WHAT)?;
        let definition = match table_columns
            .get(&table)
            .and_then(|columns| plain_index_definition(&shape, columns, default_btree_opclasses))
        {
            Some(definition) => definition,
            None => {
                needing_server_definition.push(index_oid);
                String::new()
            }
        };
        indexes.push(PendingIndex {
            table,
            index_oid,
            index: IndexCatalog {
                name: get(row, 2, WHAT)?,
                columns,
                unique: shape.unique,
                definition,
                method: shape.access_method.clone(),
                expression_keys,
                include,
                predicate,
                unmodelled,
            },
        });
    }
    Ok(DecodedIndexes {
        valid: indexes,
        needing_server_definition,
        invalid,
    })
}

/// Sets the definitions fetched from the server (rows of `oid, pg_get_indexdef(oid)`) and adds
/// the indexes to their tables, sorted by name.
pub(super) fn attach_indexes(
    tables: &mut BTreeMap<QualifiedName, TableCatalog>,
    mut indexes: Vec<PendingIndex>,
    definition_rows: &[Row],
) -> Result<(), IntrospectError> {
    const WHAT: &str = "index definitions";
    let mut definitions = HashMap::with_capacity(definition_rows.len());
    for row in definition_rows {
        definitions.insert(get::<u32>(row, 0, WHAT)?, get::<String>(row, 1, WHAT)?);
    }
    for pending in &mut indexes {
        if pending.index.definition.is_empty() {
            pending.index.definition = definitions.remove(&pending.index_oid).ok_or_else(|| {
                inconsistent(
                    WHAT,
                    format!("no definition for index {}", pending.index.name),
                )
            })?;
        }
    }
    for pending in indexes {
        if let Some(table) = tables.get_mut(&pending.table) {
            table.indexes.push(pending.index);
        }
    }
    for table in tables.values_mut() {
        table.indexes.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(())
}

/// What [`plain_index_definition`] needs of an index row.
pub(super) struct IndexShape {
    pub quoted_schema: String,
    pub quoted_table: String,
    pub quoted_name: String,
    /// `relkind` of the indexed table.
    pub table_kind: String,
    pub access_method: String,
    pub unique: bool,
    /// `indkey`: key columns then INCLUDE columns; 0 for an expression.
    pub indkey: Vec<i16>,
    pub key_count: usize,
    /// `indclass`, `indcollation`, `indoption`: one per key column.
    pub opclasses: Vec<u32>,
    pub collations: Vec<u32>,
    pub options: Vec<i16>,
    /// No `indexprs`, no `indpred`, no `reloptions`, not `NULLS NOT DISTINCT`.
    pub no_expressions_predicate_or_storage_options: bool,
}

/// The text `pg_get_indexdef` prints for a plain btree index, or `None` when the index is not
/// plain and only the server can print it.
///
/// `pg_get_indexdef` looks up the default operator class of every key column with a catalog
/// scan, which made it most of the cost of introspecting a large schema. For an index whose
/// keys are all plain columns with their type's own default btree operator class, their own
/// collation and default ordering, on an ordinary table, without predicate or storage
/// options, it prints exactly
/// `CREATE [UNIQUE ]INDEX name ON schema.table USING btree (a, b)[ INCLUDE (c)]`
/// with every identifier quoted by `quote_ident`: that is what this builds. Anything else
/// (expressions, DESC, COLLATE, an operator class the server would name, partitioned tables,
/// other access methods) is left to the server. A test compares the two on many shapes.
pub(super) fn plain_index_definition(
    shape: &IndexShape,
    columns: &HashMap<i16, KeyColumn>,
    default_btree_opclasses: &HashMap<u32, u32>,
) -> Option<String> {
    if !shape.no_expressions_predicate_or_storage_options
        || shape.table_kind != "r"
        || shape.access_method != "btree"
        || shape.key_count == 0
        || shape.key_count > shape.indkey.len()
        || shape.opclasses.len() < shape.key_count
        || shape.collations.len() < shape.key_count
        || shape.options.len() < shape.key_count
    {
        return None;
    }
    let (keys, included) = shape.indkey.split_at(shape.key_count);
    let mut key_list = Vec::with_capacity(keys.len());
    for (position, attnum) in keys.iter().enumerate() {
        let column = columns.get(attnum)?;
        let opclass_type = default_btree_opclasses.get(&shape.opclasses[position])?;
        if *opclass_type != column.type_oid
            || shape.collations[position] != column.collation
            || shape.options[position] != 0
        {
            return None;
        }
        key_list.push(column.quoted.as_str());
    }
    let mut definition = format!(
        "CREATE {}INDEX {} ON {}.{} USING btree ({})",
        if shape.unique { "UNIQUE " } else { "" },
        shape.quoted_name,
        shape.quoted_schema,
        shape.quoted_table,
        key_list.join(", ")
    );
    if !included.is_empty() {
        let included: Option<Vec<&str>> = included
            .iter()
            .map(|attnum| columns.get(attnum).map(|c| c.quoted.as_str()))
            .collect();
        definition.push_str(&format!(" INCLUDE ({})", included?.join(", ")));
    }
    Some(definition)
}

/// What of an index's definition the config cannot state, if anything: an operator class
/// other than its key's default (`default_opclasses`: the server's answer for indexes of
/// another method or with expressions; btree column keys are checked here), a collation other
/// than its column's, an ordering (DESC, NULLS FIRST), storage parameters or NULLS NOT
/// DISTINCT (`storage_options`).
fn unmodelled_index_parts(
    shape: &IndexShape,
    columns: &HashMap<i16, KeyColumn>,
    default_btree_opclasses: &HashMap<u32, u32>,
    storage_options: bool,
    default_opclasses: Option<bool>,
) -> Option<String> {
    let mut parts = Vec::new();
    if storage_options {
        parts.push("storage parameters or NULLS NOT DISTINCT");
    }
    if shape.options.iter().take(shape.key_count).any(|o| *o != 0) {
        parts.push("a key ordering");
    }
    let keys = shape.indkey.iter().take(shape.key_count).enumerate();
    let mut opclass_default = default_opclasses.unwrap_or(true);
    let mut collation_default = true;
    for (position, attnum) in keys {
        let Some(column) = columns.get(attnum) else {
            continue;
        };
        if shape.collations.get(position) != Some(&column.collation) {
            collation_default = false;
        }
        // A default operator class of another type is the one the server picks for a
        // binary-coercible column (`text_ops` on `varchar`) and prints no name for.
        if default_opclasses.is_none()
            && !shape
                .opclasses
                .get(position)
                .is_some_and(|opclass| default_btree_opclasses.contains_key(opclass))
        {
            opclass_default = false;
        }
    }
    if !opclass_default {
        parts.push("an operator class other than the default");
    }
    if !collation_default {
        parts.push("a collation other than the column's");
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Adds the trigger rows to their tables, sorted by name. Definitions the server printed (for
/// triggers that are not plain, see `TRIGGERS_SQL`) are kept; the others are printed here.
pub(super) fn attach_triggers(
    tables: &mut BTreeMap<QualifiedName, TableCatalog>,
    rows: &[Row],
) -> Result<(), IntrospectError> {
    const WHAT: &str = "triggers";
    for row in rows {
        let table_name = row_table(row, WHAT)?;
        let name: String = get(row, 2, WHAT)?;
        let definition = match get::<Option<String>>(row, 6, WHAT)? {
            Some(printed_by_server) => printed_by_server,
            None => {
                let shape = TriggerShape {
                    trigger_type: get(row, 7, WHAT)?,
                    quoted_name: get(row, 8, WHAT)?,
                    quoted_schema: get(row, 9, WHAT)?,
                    quoted_table: get(row, 10, WHAT)?,
                    quoted_function_schema: get(row, 11, WHAT)?,
                    quoted_function: get(row, 12, WHAT)?,
                };
                plain_trigger_definition(&shape).ok_or_else(|| {
                    inconsistent(
                        WHAT,
                        format!("no definition for trigger {name} of {table_name}"),
                    )
                })?
            }
        };
        let trigger = TriggerCatalog {
            name,
            function: QualifiedName::new(
                get::<String>(row, 3, WHAT)?,
                get::<String>(row, 4, WHAT)?,
            ),
            enabled: get(row, 5, WHAT)?,
            definition,
        };
        if let Some(table) = tables.get_mut(&table_name) {
            table.triggers.push(trigger);
        }
    }
    for table in tables.values_mut() {
        table.triggers.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(())
}

/// Adds the names of invalid indexes to their tables, sorted.
pub(super) fn attach_invalid_indexes(
    tables: &mut BTreeMap<QualifiedName, TableCatalog>,
    invalid: Vec<(QualifiedName, String)>,
) {
    for (table_name, name) in invalid {
        if let Some(table) = tables.get_mut(&table_name) {
            table.invalid_indexes.push(name);
        }
    }
    for table in tables.values_mut() {
        table.invalid_indexes.sort();
    }
}

/// What [`plain_trigger_definition`] needs of a trigger row; names as `quote_ident` prints
/// them.
pub(super) struct TriggerShape {
    /// `tgtype`: the `TRIGGER_TYPE_*` bits of PostgreSQL's `pg_trigger.h`.
    pub trigger_type: i32,
    pub quoted_name: String,
    pub quoted_schema: String,
    pub quoted_table: String,
    pub quoted_function_schema: String,
    pub quoted_function: String,
}

const TRIGGER_TYPE_ROW: i32 = 1 << 0;
const TRIGGER_TYPE_BEFORE: i32 = 1 << 1;
const TRIGGER_TYPE_INSERT: i32 = 1 << 2;
const TRIGGER_TYPE_DELETE: i32 = 1 << 3;
const TRIGGER_TYPE_UPDATE: i32 = 1 << 4;
const TRIGGER_TYPE_TRUNCATE: i32 = 1 << 5;
const TRIGGER_TYPE_INSTEAD: i32 = 1 << 6;

/// The text `pg_get_triggerdef` prints for a plain trigger (as `TRIGGERS_SQL` decides), or
/// `None` for a type it would not print this way.
///
/// For a BEFORE or AFTER trigger without constraint, transition tables, WHEN condition,
/// arguments or `UPDATE OF` columns, calling a function the server schema-qualifies, it
/// prints exactly
/// `CREATE TRIGGER name {BEFORE|AFTER} ev[ OR ev…] ON schema.table FOR EACH {ROW|STATEMENT}
/// EXECUTE FUNCTION schema.function()`, the events in the order INSERT, DELETE, UPDATE,
/// TRUNCATE: that is what this builds. A test compares the two on every shape.
pub(super) fn plain_trigger_definition(shape: &TriggerShape) -> Option<String> {
    let trigger_type = shape.trigger_type;
    if trigger_type & TRIGGER_TYPE_INSTEAD != 0 {
        return None;
    }
    let timing = if trigger_type & TRIGGER_TYPE_BEFORE != 0 {
        "BEFORE"
    } else {
        "AFTER"
    };
    let events: Vec<&str> = [
        (TRIGGER_TYPE_INSERT, "INSERT"),
        (TRIGGER_TYPE_DELETE, "DELETE"),
        (TRIGGER_TYPE_UPDATE, "UPDATE"),
        (TRIGGER_TYPE_TRUNCATE, "TRUNCATE"),
    ]
    .into_iter()
    .filter(|(bit, _)| trigger_type & bit != 0)
    .map(|(_, event)| event)
    .collect();
    if events.is_empty() {
        return None;
    }
    let level = if trigger_type & TRIGGER_TYPE_ROW != 0 {
        "ROW"
    } else {
        "STATEMENT"
    };
    Some(format!(
        "CREATE TRIGGER {} {timing} {} ON {}.{} FOR EACH {level} EXECUTE FUNCTION {}.{}()",
        shape.quoted_name,
        events.join(" OR "),
        shape.quoted_schema,
        shape.quoted_table,
        shape.quoted_function_schema,
        shape.quoted_function,
    ))
}

/// Attaches each table's key sequences, sorted by column then sequence.
pub(super) fn attach_key_sequences(
    tables: &mut BTreeMap<QualifiedName, TableCatalog>,
    rows: &[Row],
) -> Result<(), IntrospectError> {
    const WHAT: &str = "key sequences";
    for row in rows {
        let name = row_table(row, WHAT)?;
        let Some(table) = tables.get_mut(&name) else {
            continue;
        };
        table.key_sequences.push(KeySequenceCatalog {
            column: get(row, 2, WHAT)?,
            sequence: QualifiedName::new(
                get::<String>(row, 3, WHAT)?,
                get::<String>(row, 4, WHAT)?,
            ),
            min_value: get(row, 5, WHAT)?,
            max_value: get(row, 6, WHAT)?,
            start_value: get(row, 7, WHAT)?,
            increment: get(row, 8, WHAT)?,
            next_value: 0,
            owned: get(row, 9, WHAT)?,
            block_maxima: BTreeMap::new(),
        });
    }
    for table in tables.values_mut() {
        table
            .key_sequences
            .sort_by(|a, b| (&a.column, &a.sequence).cmp(&(&b.column, &b.sequence)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INT4: u32 = 23;
    const TEXT: u32 = 25;
    const VARCHAR: u32 = 1043;
    const INT4_OPS: u32 = 1978;
    const TEXT_OPS: u32 = 3126;
    const DEFAULT_COLLATION: u32 = 100;

    fn columns() -> HashMap<i16, KeyColumn> {
        let column = |name: &str, quoted: &str, type_oid, collation| KeyColumn {
            name: name.into(),
            quoted: quoted.into(),
            type_oid,
            collation,
        };
        HashMap::from([
            (1, column("id", "id", INT4, 0)),
            (2, column("Label", "\"Label\"", TEXT, DEFAULT_COLLATION)),
            (3, column("code", "code", VARCHAR, DEFAULT_COLLATION)),
        ])
    }

    fn opclasses() -> HashMap<u32, u32> {
        HashMap::from([(INT4_OPS, INT4), (TEXT_OPS, TEXT)])
    }

    fn shape(
        indkey: Vec<i16>,
        key_count: usize,
        opclasses: Vec<u32>,
        collations: Vec<u32>,
    ) -> IndexShape {
        let options = vec![0; opclasses.len()];
        IndexShape {
            quoted_schema: "public".into(),
            quoted_table: "\"Items\"".into(),
            quoted_name: "items_idx".into(),
            table_kind: "r".into(),
            access_method: "btree".into(),
            unique: false,
            indkey,
            key_count,
            opclasses,
            collations,
            options,
            no_expressions_predicate_or_storage_options: true,
        }
    }

    fn trigger(trigger_type: i32) -> TriggerShape {
        TriggerShape {
            trigger_type,
            quoted_name: "\"Touch\"".into(),
            quoted_schema: "public".into(),
            quoted_table: "\"Items\"".into(),
            quoted_function_schema: "_pgconverge".into(),
            quoted_function: "touch".into(),
        }
    }

    #[test]
    fn prints_plain_triggers_with_events_in_server_order() {
        let row_before_all = TRIGGER_TYPE_ROW
            | TRIGGER_TYPE_BEFORE
            | TRIGGER_TYPE_UPDATE
            | TRIGGER_TYPE_DELETE
            | TRIGGER_TYPE_INSERT;
        assert_eq!(
            plain_trigger_definition(&trigger(row_before_all)).as_deref(),
            Some("CREATE TRIGGER \"Touch\" BEFORE INSERT OR DELETE OR UPDATE ON public.\"Items\" FOR EACH ROW EXECUTE FUNCTION _pgconverge.touch()")
        );
        assert_eq!(
            plain_trigger_definition(&trigger(TRIGGER_TYPE_TRUNCATE)).as_deref(),
            Some("CREATE TRIGGER \"Touch\" AFTER TRUNCATE ON public.\"Items\" FOR EACH STATEMENT EXECUTE FUNCTION _pgconverge.touch()")
        );
    }

    #[test]
    fn leaves_instead_of_and_eventless_triggers_to_the_server() {
        assert_eq!(
            plain_trigger_definition(&trigger(
                TRIGGER_TYPE_ROW | TRIGGER_TYPE_INSTEAD | TRIGGER_TYPE_INSERT
            )),
            None
        );
        assert_eq!(plain_trigger_definition(&trigger(TRIGGER_TYPE_ROW)), None);
    }

    #[test]
    fn constraint_kinds_map_and_not_null_is_skipped() {
        assert_eq!(constraint_kind("p"), Some(ConstraintKind::PrimaryKey));
        assert_eq!(constraint_kind("x"), Some(ConstraintKind::Exclusion));
        assert_eq!(constraint_kind("n"), None);
    }

    #[test]
    fn prints_plain_btree_index_with_include() {
        let shape = shape(
            vec![2, 1, 3],
            2,
            vec![TEXT_OPS, INT4_OPS],
            vec![DEFAULT_COLLATION, 0],
        );
        assert_eq!(
            plain_index_definition(&shape, &columns(), &opclasses()).as_deref(),
            Some("CREATE INDEX items_idx ON public.\"Items\" USING btree (\"Label\", id) INCLUDE (code)")
        );
    }

    #[test]
    fn prints_unique() {
        let mut shape = shape(vec![1], 1, vec![INT4_OPS], vec![0]);
        shape.unique = true;
        assert_eq!(
            plain_index_definition(&shape, &columns(), &opclasses()).as_deref(),
            Some("CREATE UNIQUE INDEX items_idx ON public.\"Items\" USING btree (id)")
        );
    }

    #[test]
    fn leaves_everything_else_to_the_server() {
        let plain = || shape(vec![1], 1, vec![INT4_OPS], vec![0]);
        let cases: Vec<(&str, IndexShape)> = vec![
            (
                "varchar column: the server resolves text_ops by coercion",
                { shape(vec![3], 1, vec![TEXT_OPS], vec![DEFAULT_COLLATION]) },
            ),
            (
                "non-default collation",
                shape(vec![2], 1, vec![TEXT_OPS], vec![950]),
            ),
            (
                "unknown operator class",
                shape(vec![1], 1, vec![9999], vec![0]),
            ),
            ("DESC", {
                let mut s = plain();
                s.options = vec![3];
                s
            }),
            ("expression", shape(vec![0], 1, vec![INT4_OPS], vec![0])),
            ("partitioned table", {
                let mut s = plain();
                s.table_kind = "p".into();
                s
            }),
            ("hash", {
                let mut s = plain();
                s.access_method = "hash".into();
                s
            }),
            ("predicate or options", {
                let mut s = plain();
                s.no_expressions_predicate_or_storage_options = false;
                s
            }),
            ("short arrays", shape(vec![1], 1, vec![], vec![])),
        ];
        for (case, shape) in cases {
            assert_eq!(
                plain_index_definition(&shape, &columns(), &opclasses()),
                None,
                "{case}"
            );
        }
    }
}
