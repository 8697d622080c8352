//! New tables: one CREATE TABLE with their columns, primary key and unique constraints (and
//! `PARTITION BY` for a partitioned table, whose partitions are `partitions`' steps).
//! Their foreign keys and indexes are steps of their own (`constraints`, `indexes`); the
//! columns and keys of existing tables are compared there and in `columns`. A table is
//! dropped only when the config lists it in `dropped_tables`.

use pgconverge_model::catalog::QualifiedName;

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::diff::NodeDiffInput;
use crate::hazard::{Hazard, HazardKind};
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let created = input.new_tables().map(|table| {
        input.change(
            ObjectAddress::Table {
                table: table.name.clone(),
            },
            Action::Create,
            vec![Statement::sql(ddl::create_table_sql(table))],
        )
    });
    let dropped = input
        .desired
        .dropped_tables
        .iter()
        .filter(|t| input.observed.tables.contains_key(*t))
        .map(|table| dropped_table(input, table));
    created.chain(dropped).collect()
}

/// A table the config lists in `dropped_tables`. Gated (see `gate`): its triggers and
/// functions go in the same step, and changes to it still in flight are let go by every
/// node's unknown-change function, regenerated with it.
fn dropped_table(input: &NodeDiffInput<'_>, table: &QualifiedName) -> Change {
    let mut change = input.change(
        ObjectAddress::Table {
            table: table.clone(),
        },
        Action::Delete,
        vec![Statement::sql(ddl::drop_table_sql(table))],
    );
    change.reason = Some("listed in dropped_tables".into());
    change.hazards.push(Hazard::new(
        HazardKind::Destructive,
        "drops the table and every row in it on this node",
    ));
    change.gated = true;
    change
}

pub(super) mod ddl {
    use crate::desired::DesiredTable;
    use crate::diff::checks::ddl::check_clause;
    use crate::diff::columns::ddl::column_definition_sql;
    use crate::diff::constraints::ddl::{primary_key_clause, unique_clause};
    use crate::diff::table_sql_name;
    use pgconverge_model::catalog::QualifiedName;
    use pgconverge_model::partitioning::partition_key_sql;

    /// Plain DROP TABLE: a foreign key from another table makes it fail rather than cascade.
    pub fn drop_table_sql(table: &QualifiedName) -> String {
        format!("DROP TABLE {}", table_sql_name(table))
    }

    pub fn create_table_sql(table: &DesiredTable) -> String {
        let mut items: Vec<String> = table.columns.iter().map(column_definition_sql).collect();
        items.push(primary_key_clause(&table.primary_key));
        items.extend(table.uniques.iter().map(unique_clause));
        let partition_by = table
            .partitioning
            .as_ref()
            .map(|p| format!(" PARTITION BY {}", partition_key_sql(&p.key)))
            .unwrap_or_default();
        items.extend(table.checks.iter().map(check_clause));
        format!(
            "CREATE TABLE {} (\n    {}\n){partition_by}",
            table_sql_name(&table.name),
            items.join(",\n    ")
        )
    }
}
