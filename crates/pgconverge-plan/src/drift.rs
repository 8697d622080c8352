//! Drift means drift: a managed object counts as changed outside pgconverge only when its live
//! definition differs from the one recorded after pgconverge last applied it, never because
//! the desired definition moved. Each object's definition is fingerprinted from the parts of
//! the catalog that define it (a column's type, default and nullability; a trigger's
//! definition and enabled state; a subscription's connection, publications and options…),
//! leaving out what changes on its own (a slot's position, a table's size).
//!
//! Generated functions are left to their own proof (the comment naming their fingerprint,
//! `Change::applied_as_is`), since their bodies are not read when they are as expected.

use pgconverge_model::catalog::NodeCatalog;
use pgconverge_model::ObjectAddress;

use crate::plan::json_sha256;

/// The fingerprint of `address`'s live definition on a node, or `None` when the object is
/// absent there or its kind is not fingerprinted (functions).
pub fn definition_fingerprint(catalog: &NodeCatalog, address: &ObjectAddress) -> Option<String> {
    let table = |name| catalog.tables.get(name);
    let fingerprint = match address {
        ObjectAddress::Schema { name } => {
            catalog.schemas.contains(name).then(|| json_sha256(&name))?
        }
        ObjectAddress::Table { table: name } => json_sha256(&(name, table(name)?.partitioned)),
        ObjectAddress::Type { name } => json_sha256(catalog.types.get(name)?),
        ObjectAddress::Column {
            table: name,
            column,
        } => {
            let c = table(name)?.column(column)?;
            match &c.generated {
                // Only a generated column's fingerprint names its expression, so the recorded
                // fingerprints of every other column stay as they were.
                Some(expression) => json_sha256(&(&c.data_type, c.not_null, expression)),
                None => json_sha256(&(&c.data_type, c.not_null, &c.default)),
            }
        }
        ObjectAddress::Constraint {
            table: name,
            name: constraint,
        } => {
            let c = table(name)?
                .constraints
                .iter()
                .find(|c| &c.name == constraint)?;
            json_sha256(&c.definition)
        }
        ObjectAddress::Index {
            table: name,
            name: index,
        } => {
            let i = table(name)?.indexes.iter().find(|i| &i.name == index)?;
            json_sha256(&i.definition)
        }
        ObjectAddress::ReplicaIdentity { table: name } => {
            let live = table(name)?;
            match &live.replica_identity_index {
                None => json_sha256(&live.replica_identity),
                Some(index) => json_sha256(&(&live.replica_identity, index)),
            }
        }
        ObjectAddress::Partition {
            table: name,
            name: partition,
        } => {
            let p = table(name)?
                .partitions
                .iter()
                .find(|p| &p.name == partition)?;
            json_sha256(&(&p.bound, &p.triggers))
        }
        ObjectAddress::Trigger {
            table: name,
            name: trigger,
        } => {
            let t = table(name)?.triggers.iter().find(|t| &t.name == trigger)?;
            json_sha256(&(&t.definition, &t.enabled))
        }
        ObjectAddress::Publication { name } => json_sha256(catalog.publications.get(name)?),
        ObjectAddress::Subscription { name } => {
            let s = catalog.subscriptions.get(name)?;
            json_sha256(&(
                &s.conninfo_sha256,
                &s.publications,
                s.enabled,
                &s.origin,
                &s.slot_name,
            ))
        }
        ObjectAddress::Slot { name } => {
            let s = catalog.slots.get(name)?;
            json_sha256(&(&s.plugin, &s.slot_type, &s.database))
        }
        ObjectAddress::Membership { .. } => {
            let m = catalog.membership.as_ref()?;
            json_sha256(&(&m.node, &m.donor))
        }
        // The register rows and sequence bounds are re-derived from every node on each plan
        // (a join moves them on every member); raising a sequence is upkeep, not drift.
        ObjectAddress::KeySlot { .. } => json_sha256(&"key slot"),
        // What ran is the config's to say: a changed file is run again, never drift.
        ObjectAddress::SqlFile { name } => catalog.sql_files.get(name)?.clone(),
        ObjectAddress::Function { .. } => return None,
    };
    Some(fingerprint)
}

/// Whether a change to a managed object is drift, given the fingerprint recorded after the
/// last apply (`None` for a state written before fingerprints were recorded, which counts
/// any difference as drift, as before).
pub fn is_drift(catalog: &NodeCatalog, address: &ObjectAddress, recorded: Option<&String>) -> bool {
    match recorded {
        None => true,
        Some(recorded) => definition_fingerprint(catalog, address).as_ref() != Some(recorded),
    }
}

#[cfg(test)]
mod tests {
    use pgconverge_model::catalog::{ColumnCatalog, QualifiedName, TableCatalog};

    use super::*;

    fn catalog_with_column(data_type: &str) -> (NodeCatalog, ObjectAddress) {
        let name = QualifiedName {
            schema: "public".into(),
            name: "users".into(),
        };
        let mut catalog = NodeCatalog::default();
        catalog.tables.insert(
            name.clone(),
            TableCatalog {
                columns: vec![ColumnCatalog {
                    name: "score".into(),
                    data_type: data_type.into(),
                    not_null: false,
                    default: None,
                    identity: None,
                    generated: None,
                }],
                ..TableCatalog::default()
            },
        );
        let address = ObjectAddress::Column {
            table: name,
            column: "score".into(),
        };
        (catalog, address)
    }

    #[test]
    fn only_a_live_definition_unlike_the_recorded_one_is_drift() {
        let (applied, address) = catalog_with_column("integer");
        let recorded = definition_fingerprint(&applied, &address).expect("column");
        assert!(!is_drift(&applied, &address, Some(&recorded)));
        let (changed_outside, _) = catalog_with_column("bigint");
        assert!(is_drift(&changed_outside, &address, Some(&recorded)));
        let dropped_outside = NodeCatalog::default();
        assert!(is_drift(&dropped_outside, &address, Some(&recorded)));
        assert!(is_drift(&applied, &address, None), "no record: as before");
    }
}
