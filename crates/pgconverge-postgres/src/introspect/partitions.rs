//! Decoding partitions (`PARTITIONS_SQL`) into their partitioned tables, sorted by name.

use std::collections::BTreeMap;

use pgconverge_model::catalog::{PartitionCatalog, QualifiedName, TableCatalog};
use tokio_postgres::Row;

use super::{get, IntrospectError};

pub(super) fn attach_partitions(
    tables: &mut BTreeMap<QualifiedName, TableCatalog>,
    rows: &[Row],
) -> Result<(), IntrospectError> {
    const WHAT: &str = "partitions";
    for row in rows {
        let table = QualifiedName::new(get::<String>(row, 0, WHAT)?, get::<String>(row, 1, WHAT)?);
        let partition = PartitionCatalog {
            schema: get(row, 2, WHAT)?,
            name: get(row, 3, WHAT)?,
            bound: get(row, 4, WHAT)?,
            partitioned: get(row, 5, WHAT)?,
            triggers: get(row, 6, WHAT)?,
        };
        if let Some(table) = tables.get_mut(&table) {
            table.partitions.push(partition);
        }
    }
    for table in tables.values_mut() {
        table
            .partitions
            .sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    }
    Ok(())
}
