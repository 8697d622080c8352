//! Comparing the replicated tables of every node without copying them, and deciding what a
//! repair re-sends. Pure: the SQL each node runs (`sql`), how per-node summaries compare and
//! which buckets or keys to look at more closely (`compare`), and which version of a
//! differing key wins by the conflict rules (`winner`). The engine runs the queries.
//!
//! A table is summarised per node by its row count and the XOR of a 64-bit hash of every
//! row; only when that differs between nodes is it summarised by buckets of primary-key
//! hashes (each with its count and XOR), and only buckets whose summary differs are read key
//! by key. What is hashed is what every node holds identically
//! once converged: the configured columns and the row's stamp (`_pgc_version`,
//! `_pgc_origin`), which replication copies as they are.

pub mod compare;
pub mod sql;
pub mod winner;

use pgconverge_model::catalog::QualifiedName;
use pgconverge_model::config::{ClusterConfig, TableConfig, WritePath};
use pgconverge_sql::{quote_literal, quote_qualified};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conflict::naming::{BIRTH_COLUMN, ORIGIN_COLUMN, VERSION_COLUMN};
use crate::desired::parse_table_ref;

/// A row's version as the conflict rules order them: by `version`, then by `origin`
/// compared bytewise (what `COLLATE "C"` does; Rust orders `String` by its bytes).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct Stamp {
    /// `_pgc_version`: microseconds of the writer's hybrid logical clock.
    pub version: i64,
    /// `_pgc_origin`: the node that wrote it (`''` for rows older than the triggers).
    pub origin: String,
}

/// A replicated table as verify reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyTable {
    pub name: QualifiedName,
    /// `schema.table`, unquoted, as reports name it.
    pub label: String,
    /// `schema.table`, quoted.
    pub qualified: String,
    /// The quoted name as a literal: the table's key in the tombstones and the ledger.
    pub key_literal: String,
    /// Primary-key columns with their configured types.
    pub key_columns: Vec<(String, String)>,
    /// Configured columns, then the stamp columns, with their configured types: what a
    /// row's hash covers.
    pub hashed_columns: Vec<(String, String)>,
    /// The declared foreign keys, for the orphan check.
    pub foreign_keys: Vec<ForeignKeyCheck>,
}

/// A declared foreign key: `columns` of this table must match `parent_columns` of `parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKeyCheck {
    pub columns: Vec<String>,
    pub parent: QualifiedName,
    /// `schema.table`, quoted.
    pub parent_qualified: String,
    pub parent_columns: Vec<String>,
}

impl VerifyTable {
    pub fn new(table: &TableConfig) -> VerifyTable {
        let name = QualifiedName::new(table.schema.clone(), table.name.clone());
        let qualified = quote_qualified(&table.schema, &table.name);
        let key_columns = table
            .primary_key
            .iter()
            .map(|c| {
                let data_type = table.column(c).map(|c| c.data_type.clone());
                (c.clone(), data_type.unwrap_or_default())
            })
            .collect();
        let mut hashed_columns: Vec<(String, String)> = table
            .columns
            .iter()
            .filter(|c| c.name != VERSION_COLUMN && c.name != ORIGIN_COLUMN)
            .map(|c| (c.name.clone(), c.data_type.clone()))
            .collect();
        hashed_columns.push((VERSION_COLUMN.to_string(), "bigint".to_string()));
        hashed_columns.push((ORIGIN_COLUMN.to_string(), "text".to_string()));
        let foreign_keys = table
            .foreign_keys
            .iter()
            .map(|fk| {
                let parent = parse_table_ref(&fk.references.table, "public");
                ForeignKeyCheck {
                    columns: fk.columns.clone(),
                    parent_qualified: quote_qualified(&parent.schema, &parent.name),
                    parent,
                    parent_columns: fk.references.columns.clone(),
                }
            })
            .collect();
        VerifyTable {
            label: format!("{}.{}", table.schema, table.name),
            key_literal: quote_literal(&qualified),
            qualified,
            name,
            key_columns,
            hashed_columns,
            foreign_keys,
        }
    }
}

/// The configured tables to verify: all of them, or those `only` names (`table` or
/// `schema.table`). An unknown name is an error naming it.
pub fn verify_tables(config: &ClusterConfig, only: &[String]) -> Result<Vec<VerifyTable>, String> {
    for wanted in only {
        if !config.tables.iter().any(|t| names_table(t, wanted)) {
            let known: Vec<String> = config
                .tables
                .iter()
                .map(|t| format!("{}.{}", t.schema, t.name))
                .collect();
            return Err(format!(
                "--table {wanted}: no such table in the configuration (tables: {})",
                known.join(", ")
            ));
        }
    }
    Ok(crate::desired::tables_with_domain_base_types(config)
        .iter()
        .filter(|t| only.is_empty() || only.iter().any(|w| names_table(t, w)))
        .filter(|t| !t.primary_key.is_empty())
        .map(|t| {
            let mut table = VerifyTable::new(t);
            // On the forwarding write path nodes must also agree on each row's incarnation.
            if config.replication.write_path == WritePath::Forwarding {
                table
                    .hashed_columns
                    .push((BIRTH_COLUMN.to_string(), "bigint".to_string()));
            }
            table
        })
        .collect())
}

fn names_table(table: &TableConfig, wanted: &str) -> bool {
    wanted == table.name || wanted == format!("{}.{}", table.schema, table.name)
}

#[cfg(test)]
mod tests;
