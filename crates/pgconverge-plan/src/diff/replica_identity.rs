//! Replica identity of existing tables: the primary key (DEFAULT), which the change log
//! identifies rows by, or on the forwarding write path the unique constraint over the primary
//! key and the incarnation. A table the plan creates gets a step of its own when it needs an
//! index (rule `constraints_before_replica_identity` puts it after the constraint).

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::desired::DesiredTable;
use crate::diff::NodeDiffInput;
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let existing = input
        .existing_tables()
        .filter(|(table, live)| {
            !matches_live(
                table,
                &live.replica_identity,
                live.replica_identity_index.as_deref(),
            )
        })
        .map(|(table, live)| {
            let mut c = change(input, table);
            c.reason = Some(format!(
                "replica identity {} → {}",
                describe(
                    &live.replica_identity,
                    live.replica_identity_index.as_deref()
                ),
                describe_desired(table)
            ));
            c
        });
    let created = input
        .desired
        .tables
        .iter()
        .filter(|t| t.replica_identity.is_some() && !input.observed.tables.contains_key(&t.name))
        .map(|table| {
            let mut c = change(input, table);
            c.reason = Some(format!("→ {}", describe_desired(table)));
            c
        });
    existing.chain(created).collect()
}

fn change(input: &NodeDiffInput<'_>, table: &DesiredTable) -> Change {
    input.change(
        ObjectAddress::ReplicaIdentity {
            table: table.name.clone(),
        },
        Action::Update,
        vec![Statement::sql(ddl::replica_identity_sql(table))],
    )
}

fn matches_live(table: &DesiredTable, relreplident: &str, index: Option<&str>) -> bool {
    match &table.replica_identity {
        None => relreplident == "d",
        Some(wanted) => relreplident == "i" && index == Some(wanted.as_str()),
    }
}

/// `pg_class.relreplident` in words.
fn describe(relreplident: &str, index: Option<&str>) -> String {
    match relreplident {
        "d" => "primary key".to_string(),
        "f" => "full".to_string(),
        "i" => format!("index {}", index.unwrap_or("?")),
        "n" => "nothing".to_string(),
        other => other.to_string(),
    }
}

fn describe_desired(table: &DesiredTable) -> String {
    match &table.replica_identity {
        None => "primary key".to_string(),
        Some(index) => format!("index {index}"),
    }
}

pub(super) mod ddl {
    use crate::desired::DesiredTable;
    use crate::diff::table_sql_name;
    use pgconverge_sql::quote_ident;

    pub fn replica_identity_sql(table: &DesiredTable) -> String {
        match &table.replica_identity {
            None => format!(
                "ALTER TABLE {} REPLICA IDENTITY DEFAULT",
                table_sql_name(&table.name)
            ),
            Some(index) => format!(
                "ALTER TABLE {} REPLICA IDENTITY USING INDEX {}",
                table_sql_name(&table.name),
                quote_ident(index)
            ),
        }
    }
}
