//! Partitions' changes, hazards, checks and blockers over one node with `public.events`
//! (`id`, `day`) partitioned by range of `day`, and the SQL they run.

use std::collections::{BTreeMap, BTreeSet};

use pgconverge_model::catalog::{NodeCatalog, PartitionCatalog, QualifiedName, TableCatalog};
use pgconverge_model::config::{PartitionBy, PartitionConfig, PartitionStrategy};

use super::ddl::{bound_predicate, create_partition_sql, truncate_trigger_sql};
use super::*;
use crate::desired::{ConstraintSpec, DesiredPublication};
use crate::diff::key_sequences::KeySlots;

fn events() -> QualifiedName {
    QualifiedName::new("public", "events")
}

fn partition(name: &str, bounds: &str) -> PartitionConfig {
    PartitionConfig {
        name: name.into(),
        bounds: bounds.into(),
    }
}

fn desired(partitions: Vec<PartitionConfig>, dropped: Vec<String>) -> DesiredNode {
    let table = DesiredTable {
        name: events(),
        columns: Vec::new(),
        primary_key: ConstraintSpec {
            name: "events_pkey".into(),
            columns: vec!["id".into(), "day".into()],
        },
        uniques: Vec::new(),
        foreign_keys: Vec::new(),
        indexes: Vec::new(),
        dropped_columns: Vec::new(),
        checks: Vec::new(),
        replica_identity: None,
        partitioning: Some(DesiredPartitioning {
            key: PartitionBy {
                strategy: PartitionStrategy::Range,
                columns: vec!["day".into()],
            },
            partitions,
            dropped,
        }),
    };
    DesiredNode {
        name: "a".into(),
        schemas: Vec::new(),
        internal_tables: Vec::new(),
        tables: vec![table],
        functions: Vec::new(),
        triggers: Vec::new(),
        publication: DesiredPublication {
            name: "pub".into(),
            tables: Vec::new(),
            publish: Vec::new(),
        },
        subscriptions: Vec::new(),
        dropped_tables: Vec::new(),
        types: Vec::new(),
        dropped_types: Vec::new(),
        sql_files: Vec::new(),
    }
}

fn live_partition(name: &str, bound: &str) -> PartitionCatalog {
    PartitionCatalog {
        schema: "public".into(),
        name: name.into(),
        bound: bound.into(),
        partitioned: false,
        triggers: vec![TRUNCATE_TRIGGER.into()],
    }
}

fn observed(key: Option<&str>, partitions: Vec<PartitionCatalog>) -> NodeCatalog {
    let table = TableCatalog {
        partitioned: key.is_some(),
        partition_key: key.map(str::to_string),
        partitions,
        ..TableCatalog::default()
    };
    NodeCatalog {
        tables: BTreeMap::from([(events(), table)]),
        ..NodeCatalog::default()
    }
}

fn changes(desired: &DesiredNode, observed: &NodeCatalog) -> Vec<Change> {
    let (cluster, managed, slots) = (BTreeMap::new(), BTreeSet::new(), BTreeSet::new());
    diff(&NodeDiffInput {
        desired,
        observed,
        cluster: &cluster,
        managed: &managed,
        desired_slots_here: &slots,
        key_slots: &KeySlots::default(),
    })
}

const Y2026: &str = "FROM ('2026-01-01') TO ('2027-01-01')";

#[test]
fn partitions_of_a_new_table_are_created_with_their_truncate_refusal() {
    let node = desired(vec![partition("events_2026", Y2026)], Vec::new());
    let found = changes(&node, &NodeCatalog::default());
    assert_eq!(found.len(), 1);
    let change = &found[0];
    assert_eq!(change.action, Action::Create);
    assert_eq!(change.phase, crate::dag::Phase::Triggers);
    assert!(change.hazards.is_empty(), "a new table holds no rows");
    let sql: Vec<String> = change.statements.iter().map(|s| s.redacted()).collect();
    assert_eq!(
        sql,
        [
            create_partition_sql(&events(), "events_2026", Y2026),
            truncate_trigger_sql("public", "events_2026"),
        ]
    );
}

#[test]
fn a_partition_added_to_a_live_table_is_gated_locks_and_checks_the_default_partition() {
    let node = desired(
        vec![
            partition("events_2026", Y2026),
            partition("events_rest", "DEFAULT"),
        ],
        Vec::new(),
    );
    let live = observed(
        Some("RANGE (day)"),
        vec![live_partition("events_rest", "DEFAULT")],
    );
    let found = changes(&node, &live);
    assert_eq!(found.len(), 1, "{found:#?}");
    let change = &found[0];
    assert!(change.gated);
    let kinds: Vec<HazardKind> = change.hazards.iter().map(|h| h.kind).collect();
    assert_eq!(kinds, [HazardKind::ExclusiveLock]);
    assert_eq!(
        change.data_checks,
        [DataCheck::NoRowsInPartitionRange {
            table: QualifiedName::new("public", "events_rest"),
            key: vec!["id".into(), "day".into()],
            partition: "events_2026".into(),
            predicate: "(ROW(day) >= ROW('2026-01-01') AND ROW(day) < ROW('2027-01-01'))".into(),
        }]
    );
    assert!(change.data_checks[0]
        .sql()
        .contains("FROM public.events_rest WHERE (ROW(day)"));
}

#[test]
fn a_partition_without_the_truncate_refusal_gets_it_and_nothing_else() {
    let node = desired(vec![partition("events_2026", Y2026)], Vec::new());
    let mut imported = live_partition(
        "events_2026",
        "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
    );
    imported.triggers.clear();
    let found = changes(
        &node,
        &observed(Some("RANGE (day)"), vec![imported.clone()]),
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].action, Action::Update);
    assert!(!found[0].gated);

    imported.triggers = vec![TRUNCATE_TRIGGER.into()];
    assert_eq!(
        changes(&node, &observed(Some("RANGE (day)"), vec![imported])),
        [],
        "PostgreSQL's spelling of the bound is the config's"
    );
}

#[test]
fn a_partition_is_dropped_only_when_listed_and_destructively() {
    let live = observed(
        Some("RANGE (day)"),
        vec![live_partition(
            "events_2025",
            "FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
        )],
    );
    assert_eq!(changes(&desired(Vec::new(), Vec::new()), &live), []);
    let found = changes(&desired(Vec::new(), vec!["events_2025".into()]), &live);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].action, Action::Delete);
    assert!(found[0].gated);
    assert_eq!(found[0].hazards[0].kind, HazardKind::Destructive);
}

#[test]
fn re_partitioning_and_moving_bounds_are_blockers() {
    let node = desired(vec![partition("events_2026", Y2026)], Vec::new());
    let plain = observed(None, Vec::new());
    let found = blockers(&node, &plain);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].current, "not partitioned");
    assert_eq!(found[0].required, "partitioned by RANGE (day)");
    assert_eq!(changes(&node, &plain), [], "no partition of a plain table");

    let other_key = observed(Some("LIST (day)"), Vec::new());
    assert_eq!(blockers(&node, &other_key).len(), 1);

    let moved = observed(
        Some("RANGE (day)"),
        vec![live_partition(
            "events_2026",
            "FOR VALUES FROM ('2026-01-01') TO ('2026-07-01')",
        )],
    );
    let found = blockers(&node, &moved);
    assert_eq!(found.len(), 1);
    assert!(found[0].setting.contains("events_2026"));
    assert_eq!(
        blockers(&node, &observed(Some("RANGE (day)"), Vec::new())),
        []
    );

    let mut taken = observed(Some("RANGE (day)"), Vec::new());
    taken.tables.insert(
        QualifiedName::new("public", "events_2026"),
        TableCatalog::default(),
    );
    let found = blockers(&node, &taken);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].current, "public.events_2026 is a table of its own");
}

#[test]
fn bounds_become_the_condition_of_the_rows_they_hold() {
    let cols = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        bound_predicate(&cols(&["k"]), "IN ('a', 'b,c', NULL)").as_deref(),
        Some("(k IN ('a', 'b,c') OR k IS NULL)")
    );
    assert_eq!(
        bound_predicate(
            &cols(&["a", "b"]),
            "FOR VALUES FROM (1, MINVALUE) TO (2, MAXVALUE)"
        )
        .as_deref(),
        Some("(ROW(a) >= ROW(1) AND ROW(a) <= ROW(2))")
    );
    assert_eq!(
        bound_predicate(&cols(&["a", "b"]), "FROM (MINVALUE, MINVALUE) TO (5, 0)").as_deref(),
        Some("(true AND ROW(a, b) < ROW(5, 0))")
    );
    assert_eq!(bound_predicate(&cols(&["a"]), "FROM (1) TO (2, 3)"), None);
    assert_eq!(
        bound_predicate(&cols(&["a"]), "WITH (MODULUS 2, REMAINDER 0)"),
        None
    );
    assert_eq!(
        create_partition_sql(&QualifiedName::new("s", "t"), "t_1", "for values IN (1)"),
        "CREATE TABLE s.t_1 PARTITION OF s.t FOR VALUES IN (1)"
    );
    assert_eq!(
        create_partition_sql(&QualifiedName::new("s", "t"), "t 1", " default "),
        "CREATE TABLE s.\"t 1\" PARTITION OF s.t DEFAULT"
    );
}
