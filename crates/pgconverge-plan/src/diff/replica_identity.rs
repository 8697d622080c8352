//! Replica identity of existing tables: always the primary key (DEFAULT), which the
//! change log identifies rows by.

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::diff::NodeDiffInput;
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    input
        .existing_tables()
        .filter(|(_, live)| live.replica_identity != "d")
        .map(|(table, live)| {
            let mut c = input.change(
                ObjectAddress::ReplicaIdentity {
                    table: table.name.clone(),
                },
                Action::Update,
                vec![Statement::sql(ddl::replica_identity_default_sql(table))],
            );
            c.reason = Some(format!(
                "replica identity {} → primary key",
                describe(&live.replica_identity)
            ));
            c
        })
        .collect()
}

/// `pg_class.relreplident` in words.
fn describe(relreplident: &str) -> &str {
    match relreplident {
        "f" => "full",
        "i" => "index",
        "n" => "nothing",
        other => other,
    }
}

pub(super) mod ddl {
    use crate::desired::DesiredTable;
    use crate::diff::table_sql_name;

    pub fn replica_identity_default_sql(table: &DesiredTable) -> String {
        format!(
            "ALTER TABLE {} REPLICA IDENTITY DEFAULT",
            table_sql_name(&table.name)
        )
    }
}
