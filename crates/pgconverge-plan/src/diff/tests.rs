//! The hazard kinds each kind's changes carry, over one node with one table `public.t`.

use std::collections::{BTreeMap, BTreeSet};

use pgconverge_model::catalog::{
    ColumnCatalog, ConstraintCatalog, ConstraintKind, NodeCatalog, QualifiedName, SlotCatalog,
    SubscriptionCatalog, TableCatalog,
};

use super::*;
use crate::desired::{ConstraintSpec, DesiredColumn, DesiredPublication, IndexSpec};
use crate::hazard::HazardKind;

pub(super) fn t() -> QualifiedName {
    QualifiedName {
        schema: "public".to_string(),
        name: "t".to_string(),
    }
}

fn column(name: &str, data_type: &str, not_null: bool) -> DesiredColumn {
    DesiredColumn {
        name: name.to_string(),
        data_type: data_type.to_string(),
        not_null,
        default: None,
        reserved: false,
        renamed_from: None,
        generator: None,
        generated: None,
    }
}

fn live_column(name: &str, data_type: &str, not_null: bool) -> ColumnCatalog {
    ColumnCatalog {
        name: name.to_string(),
        data_type: data_type.to_string(),
        not_null,
        default: None,
        identity: None,
        generated: None,
    }
}

fn key(name: &str, column: &str) -> ConstraintSpec {
    ConstraintSpec {
        name: name.to_string(),
        columns: vec![column.to_string()],
    }
}

fn live_key(name: &str, kind: ConstraintKind, column: &str) -> ConstraintCatalog {
    ConstraintCatalog {
        name: name.to_string(),
        kind,
        columns: vec![column.to_string()],
        definition: String::new(),
        references: None,
        foreign_key: None,
    }
}

/// `public.t (id bigint primary key)` as desired.
pub(super) fn desired_table() -> DesiredTable {
    DesiredTable {
        name: t(),
        columns: vec![column("id", "bigint", true)],
        primary_key: key("t_pkey", "id"),
        uniques: Vec::new(),
        foreign_keys: Vec::new(),
        indexes: Vec::new(),
        checks: Vec::new(),
        dropped_columns: Vec::new(),
        partitioning: None,
        replica_identity: None,
    }
}

/// The same table as it is live.
pub(super) fn live_table() -> TableCatalog {
    TableCatalog {
        columns: vec![live_column("id", "bigint", true)],
        constraints: vec![live_key("t_pkey", ConstraintKind::PrimaryKey, "id")],
        replica_identity: "d".to_string(),
        ..TableCatalog::default()
    }
}

pub(super) fn node(tables: Vec<DesiredTable>) -> DesiredNode {
    DesiredNode {
        name: "a".to_string(),
        schemas: Vec::new(),
        internal_tables: Vec::new(),
        types: Vec::new(),
        tables,
        functions: Vec::new(),
        triggers: Vec::new(),
        publication: DesiredPublication {
            name: "pub".to_string(),
            tables: Vec::new(),
            publish: Vec::new(),
        },
        subscriptions: Vec::new(),
        dropped_tables: Vec::new(),
        dropped_types: Vec::new(),
        sql_files: Vec::new(),
    }
}

/// Everything `diff_node` needs besides the node's desired state and live catalog.
#[derive(Default)]
struct Surroundings {
    cluster: BTreeMap<String, NodeCatalog>,
    managed: BTreeSet<ObjectAddress>,
    desired_slots_here: BTreeSet<String>,
    key_slots: key_sequences::KeySlots,
}

/// Hazard kinds of the change to `address` in the node's diff.
fn hazards_of(
    address: &ObjectAddress,
    desired: &DesiredNode,
    observed: &NodeCatalog,
    around: &Surroundings,
) -> Vec<HazardKind> {
    let changes = diff_node(&NodeDiffInput {
        desired,
        observed,
        cluster: &around.cluster,
        managed: &around.managed,
        desired_slots_here: &around.desired_slots_here,
        key_slots: &around.key_slots,
    });
    let change = changes
        .iter()
        .find(|c| c.address == *address)
        .unwrap_or_else(|| panic!("no change to {address} in {changes:#?}"));
    change.hazards.iter().map(|h| h.kind).collect()
}

/// Hazard kinds of the change to `address` when `table` is desired and `live` exists.
fn table_hazards(
    address: ObjectAddress,
    table: DesiredTable,
    live: TableCatalog,
) -> Vec<HazardKind> {
    let observed = NodeCatalog {
        tables: BTreeMap::from([(t(), live)]),
        ..NodeCatalog::default()
    };
    hazards_of(
        &address,
        &node(vec![table]),
        &observed,
        &Surroundings::default(),
    )
}

fn column_address(name: &str) -> ObjectAddress {
    ObjectAddress::Column {
        table: t(),
        column: name.to_string(),
    }
}

#[test]
fn column_type_change_rewrites_the_table() {
    let mut live = live_table();
    live.columns[0] = live_column("id", "integer", true);
    let kinds = table_hazards(column_address("id"), desired_table(), live);
    assert_eq!(kinds, [HazardKind::TableRewrite]);
}

#[test]
fn setting_not_null_fails_on_existing_rows() {
    let mut live = live_table();
    live.columns[0] = live_column("id", "bigint", false);
    let kinds = table_hazards(column_address("id"), desired_table(), live);
    assert_eq!(kinds, [HazardKind::FailsOnExistingRows]);
}

#[test]
fn adding_a_not_null_column_without_default_fails_on_existing_rows() {
    let mut table = desired_table();
    table.columns.push(column("v", "text", true));
    let kinds = table_hazards(column_address("v"), table, live_table());
    assert_eq!(kinds, [HazardKind::FailsOnExistingRows]);
}

#[test]
fn adding_a_unique_constraint_fails_on_existing_rows() {
    let mut table = desired_table();
    table.uniques.push(key("t_id_key", "id"));
    let address = ObjectAddress::Constraint {
        table: t(),
        name: "t_id_key".to_string(),
    };
    let kinds = table_hazards(address, table, live_table());
    assert_eq!(kinds, [HazardKind::FailsOnExistingRows]);
}

#[test]
fn rebuilding_the_primary_key_takes_an_exclusive_lock() {
    let mut live = live_table();
    live.columns.push(live_column("other", "bigint", true));
    live.constraints = vec![live_key("t_pkey", ConstraintKind::PrimaryKey, "other")];
    let address = ObjectAddress::Constraint {
        table: t(),
        name: "t_pkey".to_string(),
    };
    let kinds = table_hazards(address, desired_table(), live);
    assert_eq!(kinds, [HazardKind::ExclusiveLock]);
}

fn with_index() -> (DesiredTable, ObjectAddress) {
    let mut table = desired_table();
    table.columns.push(column("v", "text", false));
    table.indexes.push(IndexSpec {
        name: "t_v_idx".to_string(),
        columns: vec!["v".to_string()],
        method: "btree".to_string(),
        ..IndexSpec::default()
    });
    let address = ObjectAddress::Index {
        table: t(),
        name: "t_v_idx".to_string(),
    };
    (table, address)
}

#[test]
fn concurrent_index_build_waits_for_transactions() {
    let (table, address) = with_index();
    let mut live = live_table();
    live.columns.push(live_column("v", "text", false));
    let kinds = table_hazards(address, table, live);
    assert_eq!(kinds, [HazardKind::WaitsForTransactions]);
}

#[test]
fn partitioned_index_build_blocks_writes() {
    let (table, address) = with_index();
    let mut live = live_table();
    live.columns.push(live_column("v", "text", false));
    live.partitioned = true;
    let kinds = table_hazards(address, table, live);
    assert_eq!(kinds, [HazardKind::BlocksWrites]);
}

fn slot(name: &str) -> ObjectAddress {
    ObjectAddress::Slot {
        name: name.to_string(),
    }
}

#[test]
fn recreated_slot_leaves_a_replication_gap() {
    let subscription = SubscriptionCatalog {
        conninfo_redacted: String::new(),
        conninfo_sha256: String::new(),
        publications: vec!["pub".to_string()],
        enabled: true,
        origin: "none".to_string(),
        slot_name: Some("b_from_a".to_string()),
        owner: "app".to_string(),
    };
    let subscriber = NodeCatalog {
        subscriptions: BTreeMap::from([("b_from_a".to_string(), subscription)]),
        ..NodeCatalog::default()
    };
    let around = Surroundings {
        cluster: BTreeMap::from([("b".to_string(), subscriber)]),
        desired_slots_here: BTreeSet::from(["b_from_a".to_string()]),
        ..Surroundings::default()
    };
    let observed = NodeCatalog::default();
    let kinds = hazards_of(&slot("b_from_a"), &node(Vec::new()), &observed, &around);
    assert_eq!(kinds, [HazardKind::ReplicationGap]);
}

#[test]
fn dropping_an_active_orphan_slot_waits_for_its_subscriber() {
    let live = SlotCatalog {
        plugin: Some("pgoutput".to_string()),
        slot_type: "logical".to_string(),
        database: Some("app".to_string()),
        active: true,
        wal_status: Some("reserved".to_string()),
        confirmed_flush_lsn: None,
    };
    let observed = NodeCatalog {
        slots: BTreeMap::from([("gone".to_string(), live)]),
        ..NodeCatalog::default()
    };
    let around = Surroundings {
        managed: BTreeSet::from([slot("gone")]),
        ..Surroundings::default()
    };
    let kinds = hazards_of(&slot("gone"), &node(Vec::new()), &observed, &around);
    assert_eq!(kinds, [HazardKind::SlotActive]);
}

mod table_features;
#[test]
fn sql_files_run_when_new_or_changed_in_config_order() {
    use crate::desired::DesiredSqlFile;
    use std::sync::Arc;
    let file = |name: &str, text: &str| {
        Arc::new(DesiredSqlFile {
            name: name.into(),
            text: text.into(),
            sha256: crate::conflict::naming::sha256_hex(text),
        })
    };
    let mut desired = node(Vec::new());
    desired.sql_files = vec![
        file("sql/2.sql", "SELECT 2"),
        file("sql/1.sql", "SELECT 1"),
        file("sql/3.sql", "SELECT 3"),
    ];
    let mut observed = NodeCatalog::default();
    observed.sql_files.insert(
        "sql/1.sql".into(),
        crate::conflict::naming::sha256_hex("SELECT 1"),
    );
    observed
        .sql_files
        .insert("sql/3.sql".into(), "an older sha256".into());
    let around = Surroundings::default();
    let changes = diff_node(&NodeDiffInput {
        desired: &desired,
        observed: &observed,
        cluster: &around.cluster,
        managed: &around.managed,
        desired_slots_here: &around.desired_slots_here,
        key_slots: &around.key_slots,
    });
    let files: Vec<(String, Action, Option<String>)> = changes
        .iter()
        .filter(|c| matches!(c.address, ObjectAddress::SqlFile { .. }))
        .map(|c| (c.address.to_string(), c.action, c.reason.clone()))
        .collect();
    let changed = format!(
        "changed since it ran (sha256 an older sha → {})",
        &crate::conflict::naming::sha256_hex("SELECT 3")[..12]
    );
    assert_eq!(
        files,
        [
            (
                "sql file sql/2.sql".to_string(),
                Action::Create,
                Some("not run on this node yet".to_string())
            ),
            (
                "sql file sql/3.sql".to_string(),
                Action::Update,
                Some(changed)
            ),
        ]
    );
    let first = changes
        .iter()
        .find(|c| matches!(c.address, ObjectAddress::SqlFile { .. }))
        .expect("a file");
    let statements: Vec<String> = first
        .statements
        .iter()
        .map(|s| s.render(&|_| None))
        .collect();
    assert_eq!(
        statements[crate::diff::sql_files::FILE_STATEMENT_INDEX],
        "SELECT 2"
    );
    assert!(statements[2]
        .starts_with("INSERT INTO _pgconverge.sql_files (name, sha256) VALUES ('sql/2.sql', "));
}
