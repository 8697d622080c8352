//! The node's publication of its change log: created when missing, replaced when it
//! publishes all tables, altered when its tables or operations differ.

use std::collections::BTreeSet;

use pgconverge_model::catalog::PublicationCatalog;

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::desired::DesiredPublication;
use crate::diff::NodeDiffInput;
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let p = &input.desired.publication;
    let address = ObjectAddress::Publication {
        name: p.name.clone(),
    };
    let create = Statement::sql(ddl::create_publication_sql(p));
    let change = match input.observed.publications.get(&p.name) {
        None => Some(input.change(address, Action::Create, vec![create])),
        Some(live) if live.all_tables => {
            let drop = Statement::sql(ddl::drop_publication_sql(&p.name));
            let mut c = input.change(address, Action::Replace, vec![drop, create]);
            c.reason =
                Some("publishes all tables; pgconverge publishes only its change log".into());
            Some(c)
        }
        Some(live) => altered(input, address, p, live),
    };
    change.into_iter().collect()
}

/// The update bringing a live publication's tables and operations to the desired ones.
fn altered(
    input: &NodeDiffInput<'_>,
    address: ObjectAddress,
    p: &DesiredPublication,
    live: &PublicationCatalog,
) -> Option<Change> {
    let mut statements = Vec::new();
    let mut reasons = Vec::new();
    let mut live_tables = live.tables.clone();
    live_tables.sort();
    let mut want_tables = p.tables.clone();
    want_tables.sort();
    if live_tables != want_tables {
        statements.push(Statement::sql(ddl::set_tables_sql(p)));
        reasons.push("tables differ".to_string());
    }
    let live_ops: BTreeSet<&String> = live.publish.iter().collect();
    let want_ops: BTreeSet<&String> = p.publish.iter().collect();
    if live_ops != want_ops {
        statements.push(Statement::sql(ddl::set_publish_sql(p)));
        reasons.push(format!(
            "publish {} → {}",
            live.publish.join(", "),
            p.publish.join(", ")
        ));
    }
    if statements.is_empty() {
        return None;
    }
    let mut c = input.change(address, Action::Update, statements);
    c.reason = Some(reasons.join(", "));
    Some(c)
}

pub(crate) mod ddl {
    use pgconverge_model::catalog::QualifiedName;

    use crate::desired::DesiredPublication;
    use crate::diff::table_sql_name;
    use pgconverge_sql::{quote_ident, quote_literal};

    fn tables_sql(tables: &[QualifiedName]) -> String {
        tables
            .iter()
            .map(table_sql_name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The `publish` option's value: the operations, comma-separated.
    fn publish_sql(p: &DesiredPublication) -> String {
        quote_literal(&p.publish.join(", "))
    }

    pub fn create_publication_sql(p: &DesiredPublication) -> String {
        format!(
            "CREATE PUBLICATION {} FOR TABLE {} WITH (publish = {})",
            quote_ident(&p.name),
            tables_sql(&p.tables),
            publish_sql(p)
        )
    }

    pub fn drop_publication_sql(name: &str) -> String {
        format!("DROP PUBLICATION {}", quote_ident(name))
    }

    pub fn set_tables_sql(p: &DesiredPublication) -> String {
        format!(
            "ALTER PUBLICATION {} SET TABLE {}",
            quote_ident(&p.name),
            tables_sql(&p.tables)
        )
    }

    pub fn set_publish_sql(p: &DesiredPublication) -> String {
        format!(
            "ALTER PUBLICATION {} SET (publish = {})",
            quote_ident(&p.name),
            publish_sql(p)
        )
    }
}
