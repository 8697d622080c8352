//! The config's SQL files on a node: each one whose contents the node has not run yet (new,
//! or changed since it ran) is run, in config order, in one transaction that also records
//! its sha256 in `_pgconverge.sql_files`. A file is never "dropped": taking it out of the
//! config leaves what it made, and its row, in place.

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::diff::NodeDiffInput;
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    input
        .desired
        .sql_files
        .iter()
        .filter_map(|file| {
            let (action, reason) = match input.observed.sql_files.get(&file.name) {
                Some(ran) if *ran == file.sha256 => return None,
                Some(ran) => (
                    Action::Update,
                    format!(
                        "changed since it ran (sha256 {} → {})",
                        short(ran),
                        short(&file.sha256)
                    ),
                ),
                None => (Action::Create, "not run on this node yet".to_string()),
            };
            let statements = vec![
                Statement::sql(ddl::create_register_sql()),
                Statement::sql(file.text.clone()),
                Statement::sql(ddl::record_sql(&file.name, &file.sha256)),
            ];
            let address = ObjectAddress::SqlFile {
                name: file.name.clone(),
            };
            let mut change = input.change(address, action, statements);
            change.reason = Some(reason);
            Some(change)
        })
        .collect()
}

fn short(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

/// Index of the statement holding the file's own text in a SQL file change.
pub const FILE_STATEMENT_INDEX: usize = 1;

pub(crate) mod ddl {
    use pgconverge_model::naming::{INTERNAL_SCHEMA, SQL_FILES_TABLE};
    use pgconverge_sql::{quote_literal, quote_qualified};

    fn table() -> String {
        quote_qualified(INTERNAL_SCHEMA, SQL_FILES_TABLE)
    }

    /// The register, made by the first file that runs on the node.
    pub fn create_register_sql() -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, sha256 text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now())",
            table()
        )
    }

    pub fn record_sql(name: &str, sha256: &str) -> String {
        format!(
            "INSERT INTO {} (name, sha256) VALUES ({}, {}) ON CONFLICT (name) DO UPDATE \
             SET sha256 = excluded.sha256, applied_at = now()",
            table(),
            quote_literal(name),
            quote_literal(sha256)
        )
    }
}
