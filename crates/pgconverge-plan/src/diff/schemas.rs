//! Schemas: created when missing, never dropped.

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::diff::NodeDiffInput;
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    input
        .desired
        .schemas
        .iter()
        .filter(|schema| !input.observed.schemas.contains(schema))
        .map(|schema| {
            input.change(
                ObjectAddress::Schema {
                    name: schema.clone(),
                },
                Action::Create,
                vec![Statement::sql(ddl::create_schema_sql(schema))],
            )
        })
        .collect()
}

pub(super) mod ddl {
    use pgconverge_sql::quote_ident;

    pub fn create_schema_sql(schema: &str) -> String {
        format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema))
    }
}
