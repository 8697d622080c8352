//! Slot assignment, sequence bounds and key columns over hand-made catalogs.

use std::collections::{BTreeMap, BTreeSet};

use pgconverge_model::catalog::{ColumnCatalog, NodeCatalog, TableCatalog};
use pgconverge_model::load::{load_unified, ConfigSource};

use super::*;
use crate::desired::desired_cluster;
use crate::diff::{diff_node, NodeDiffInput};

const BLOCK: i64 = 1 << 48;

fn config(key_type: &str) -> ClusterConfig {
    let text = serde_json::json!({
        "nodes": [
            {"name": "a", "host": "h1", "db": "d", "user": "u"},
            {"name": "b", "host": "h2", "db": "d", "user": "u"},
            {"name": "c", "host": "h3", "db": "d", "user": "u"}
        ],
        "tables": [{
            "name": "t",
            "columns": [{"name": "id", "type": key_type}, {"name": "v", "type": "text"}],
            "primary_key": ["id"]
        }]
    })
    .to_string();
    load_unified(&ConfigSource::new("pgconverge.json", text))
        .unwrap_or_else(|d| panic!("test config: {d}"))
}

fn with_register(slots: &[(&str, i64)]) -> NodeCatalog {
    NodeCatalog {
        key_slots: slots.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
        ..NodeCatalog::default()
    }
}

#[test]
fn own_records_win_left_nodes_keep_their_slots_and_new_ones_come_above_all() {
    let observed = BTreeMap::from([
        ("a".to_string(), with_register(&[("a", 1), ("gone", 4)])),
        ("b".to_string(), with_register(&[("a", 1), ("b", 2)])),
        ("c".to_string(), NodeCatalog::default()),
    ]);
    let slots = assign_key_slots(&config("bigserial"), &observed);
    assert_eq!(
        slots.by_node,
        BTreeMap::from([
            ("a".to_string(), 1),
            ("b".to_string(), 2),
            ("c".to_string(), 5),
            ("gone".to_string(), 4)
        ])
    );
    assert!(slots.blockers.is_empty(), "{:?}", slots.blockers);
}

#[test]
fn registers_that_disagree_or_share_a_slot_block_the_plan() {
    let observed = BTreeMap::from([
        ("a".to_string(), with_register(&[("a", 1), ("b", 3)])),
        ("b".to_string(), with_register(&[("b", 2), ("c", 1)])),
    ]);
    let slots = assign_key_slots(&config("bigserial"), &observed);
    let settings: Vec<&str> = slots.blockers.iter().map(|b| b.current.as_str()).collect();
    assert_eq!(
        settings,
        ["b has slot 3", "slot 1 is recorded for both a and c"],
        "{:?}",
        slots.blockers
    );
}

#[test]
fn a_narrow_key_has_room_for_few_slots() {
    let config = config("smallserial");
    let desired = desired_cluster(&config);
    let slots = KeySlots {
        by_node: BTreeMap::from([
            ("a".to_string(), 1),
            ("b".to_string(), 63),
            ("c".to_string(), 64),
        ]),
        blockers: Vec::new(),
    };
    let blockers = slot_blockers(&desired, &slots);
    let blocked: Vec<&str> = blockers.iter().map(|b| b.node.as_str()).collect();
    assert_eq!(blocked, ["c"]);
}

/// Node `a` (slot 1) with table `t` whose `id` sequence is `live`, and `t`'s values in
/// slot 1's block on node `b` up to `b_max`.
fn bound_change(live: KeySequenceCatalog, b_max: Option<i64>) -> Option<Change> {
    let config = config("bigserial");
    let desired = desired_cluster(&config);
    let table = |sequence: KeySequenceCatalog| TableCatalog {
        columns: vec![ColumnCatalog {
            name: "id".into(),
            data_type: "bigint".into(),
            not_null: true,
            default: Some("nextval('public.t_id_seq'::regclass)".into()),
            identity: None,
            generated: None,
        }],
        key_sequences: vec![sequence],
        ..TableCatalog::default()
    };
    let register = [("a", 1), ("b", 2), ("c", 3)];
    let mut a = with_register(&register);
    a.tables
        .insert(QualifiedName::new("public", "t"), table(live.clone()));
    let mut b = with_register(&register);
    let mut on_b = live;
    on_b.block_maxima = b_max.map(|m| BTreeMap::from([(1, m)])).unwrap_or_default();
    b.tables
        .insert(QualifiedName::new("public", "t"), table(on_b));
    let cluster = BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]);
    let slots = assign_key_slots(&config, &cluster);
    let changes = diff_node(&NodeDiffInput {
        desired: &desired[0],
        observed: &cluster["a"],
        cluster: &cluster,
        managed: &BTreeSet::new(),
        desired_slots_here: &BTreeSet::new(),
        key_slots: &slots,
    });
    changes
        .into_iter()
        .find(|c| matches!(c.address, ObjectAddress::KeySlot { .. }))
}

fn sequence(min: i64, max: i64, next: i64) -> KeySequenceCatalog {
    KeySequenceCatalog {
        column: "id".into(),
        sequence: QualifiedName::new("public", "t_id_seq"),
        min_value: min,
        max_value: max,
        start_value: min,
        increment: 1,
        next_value: next,
        owned: true,
        block_maxima: BTreeMap::new(),
    }
}

fn statements(change: &Change) -> Vec<String> {
    change.statements.iter().map(|s| s.redacted()).collect()
}

#[test]
fn an_unbounded_sequence_is_bounded_above_every_value_of_its_block() {
    let change = bound_change(sequence(1, i64::MAX, 501), Some(BLOCK + 41))
        .unwrap_or_else(|| panic!("no key slot change"));
    let sql = statements(&change).join("\n");
    let expected = format!(
        "ALTER SEQUENCE public.t_id_seq MINVALUE {BLOCK} MAXVALUE {} START WITH {} RESTART WITH {} NO CYCLE",
        2 * BLOCK - 1,
        BLOCK + 42,
        BLOCK + 42
    );
    assert!(sql.contains(&expected), "{sql}");
}

#[test]
fn a_bounded_sequence_is_raised_but_never_lowered() {
    let bounded = |next| sequence(BLOCK, 2 * BLOCK - 1, next);
    assert!(bound_change(bounded(BLOCK + 100), Some(BLOCK + 41)).is_none());
    let change = bound_change(bounded(BLOCK + 10), Some(BLOCK + 41))
        .unwrap_or_else(|| panic!("a sequence behind the values of its block is not raised"));
    let sql = statements(&change).join("\n");
    assert!(
        sql.contains(&format!("RESTART WITH {}", BLOCK + 42)),
        "{sql}"
    );
    assert!(change
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("raised from")));
}

#[test]
fn a_block_nearly_used_up_is_warned_about() {
    let config = config("bigserial");
    let desired = desired_cluster(&config);
    let mut a = with_register(&[("a", 1), ("b", 2), ("c", 3)]);
    let live = sequence(BLOCK, 2 * BLOCK - 1, BLOCK + BLOCK * 9 / 10 + 1);
    a.tables.insert(
        QualifiedName::new("public", "t"),
        TableCatalog {
            key_sequences: vec![live],
            ..TableCatalog::default()
        },
    );
    let observed = BTreeMap::from([("a".to_string(), a)]);
    let slots = assign_key_slots(&config, &observed);
    let warnings = key_warnings(&desired, &observed, &slots);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("has used 90% of its key block"),
        "{warnings:?}"
    );
}

#[test]
fn a_column_becomes_an_identity_column_after_its_default_goes_and_serials_keep_theirs() {
    let text = serde_json::json!({
        "nodes": [{"name": "a", "host": "h1", "db": "d", "user": "u"}],
        "tables": [{
            "name": "t",
            "columns": [
                {"name": "id", "type": "bigint", "identity": "by default"},
                {"name": "n", "type": "serial"}
            ],
            "primary_key": ["id"]
        }]
    })
    .to_string();
    let config = load_unified(&ConfigSource::new("pgconverge.json", text))
        .unwrap_or_else(|d| panic!("test config: {d}"));
    let desired = desired_cluster(&config);
    let column = |name: &str, default: &str| ColumnCatalog {
        name: name.into(),
        data_type: if name == "id" { "bigint" } else { "integer" }.into(),
        not_null: true,
        default: Some(default.into()),
        identity: None,
        generated: None,
    };
    let mut observed = NodeCatalog::default();
    observed.tables.insert(
        QualifiedName::new("public", "t"),
        TableCatalog {
            columns: vec![
                column("id", "nextval('public.t_id_seq'::regclass)"),
                column("n", "nextval('public.other_name'::regclass)"),
            ],
            ..TableCatalog::default()
        },
    );
    let cluster = BTreeMap::from([("a".to_string(), observed)]);
    let changes = diff_node(&NodeDiffInput {
        desired: &desired[0],
        observed: &cluster["a"],
        cluster: &cluster,
        managed: &BTreeSet::new(),
        desired_slots_here: &BTreeSet::new(),
        key_slots: &KeySlots::default(),
    });
    let columns: Vec<(String, Vec<String>)> = changes
        .iter()
        .filter_map(|c| match &c.address {
            ObjectAddress::Column { column, .. } if !column.starts_with("_pgc_") => {
                Some((column.clone(), statements(c)))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        columns,
        [(
            "id".to_string(),
            vec![
                "ALTER TABLE public.t ALTER COLUMN id DROP DEFAULT".to_string(),
                "ALTER TABLE public.t ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY"
                    .to_string()
            ]
        )]
    );
}
