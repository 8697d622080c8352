//! New tables: one CREATE TABLE with their columns, primary key and unique constraints.
//! Their foreign keys and indexes are steps of their own (`constraints`, `indexes`); the
//! columns and keys of existing tables are compared there and in `columns`.

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::diff::NodeDiffInput;
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    input
        .new_tables()
        .map(|table| {
            input.change(
                ObjectAddress::Table {
                    table: table.name.clone(),
                },
                Action::Create,
                vec![Statement::sql(ddl::create_table_sql(table))],
            )
        })
        .collect()
}

pub(super) mod ddl {
    use crate::desired::DesiredTable;
    use crate::diff::columns::ddl::column_definition_sql;
    use crate::diff::constraints::ddl::{primary_key_clause, unique_clause};
    use crate::diff::table_sql_name;

    pub fn create_table_sql(table: &DesiredTable) -> String {
        let mut items: Vec<String> = table.columns.iter().map(column_definition_sql).collect();
        items.push(primary_key_clause(&table.primary_key));
        items.extend(table.uniques.iter().map(unique_clause));
        format!(
            "CREATE TABLE {} (\n    {}\n)",
            table_sql_name(&table.name),
            items.join(",\n    ")
        )
    }
}
