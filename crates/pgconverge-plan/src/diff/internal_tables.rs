//! pgconverge's own tables (the change log among them): created when missing. Their SQL is
//! generated with the conflict machinery, so this kind has no builders of its own.

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::diff::NodeDiffInput;
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    input
        .desired
        .internal_tables
        .iter()
        .filter(|internal| !input.observed.tables.contains_key(&internal.name))
        .map(|internal| {
            input.change(
                ObjectAddress::Table {
                    table: internal.name.clone(),
                },
                Action::Create,
                internal.create_sql.iter().map(Statement::sql).collect(),
            )
        })
        .collect()
}
