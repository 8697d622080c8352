//! Enum and domain types and tables' CHECK constraints: what the diff plans, and what it
//! refuses, over one node.

use std::collections::{BTreeMap, BTreeSet};

use pgconverge_model::catalog::{
    CheckCatalog, ConstraintCatalog, ConstraintKind, DomainCatalog, NodeCatalog, QualifiedName,
    TypeCatalog,
};

use super::tests::{desired_table, live_table, node, t};
use super::*;
use crate::desired::{CheckSpec, DesiredType, DesiredTypeKind};
use crate::preflight::DataCheck;

fn mood() -> QualifiedName {
    QualifiedName::new("public", "mood")
}

fn enum_type(labels: &[&str]) -> DesiredType {
    DesiredType {
        name: mood(),
        kind: DesiredTypeKind::Enum {
            labels: labels.iter().map(|l| l.to_string()).collect(),
        },
    }
}

fn live_enum(labels: &[&str]) -> TypeCatalog {
    TypeCatalog::Enum {
        labels: labels.iter().map(|l| l.to_string()).collect(),
    }
}

fn check(name: &str, expression: &str) -> CheckSpec {
    CheckSpec {
        name: name.into(),
        expression: expression.into(),
    }
}

fn diff_of(
    desired: &DesiredNode,
    observed: &NodeCatalog,
    managed: &[ObjectAddress],
) -> Vec<Change> {
    let managed: BTreeSet<ObjectAddress> = managed.iter().cloned().collect();
    diff_node(&NodeDiffInput {
        desired,
        observed,
        cluster: &BTreeMap::new(),
        managed: &managed,
        desired_slots_here: &BTreeSet::new(),
        key_slots: &key_sequences::KeySlots::default(),
    })
    .into_iter()
    .filter(|c| {
        matches!(
            c.address,
            ObjectAddress::Type { .. }
                | ObjectAddress::Constraint { .. }
                | ObjectAddress::Table { .. }
        )
    })
    .collect()
}

fn sql_of(change: &Change) -> Vec<String> {
    change.statements.iter().map(|s| s.redacted()).collect()
}

fn with_types(
    types: Vec<DesiredType>,
    live: Vec<(QualifiedName, TypeCatalog)>,
) -> (DesiredNode, NodeCatalog) {
    let mut desired = node(Vec::new());
    desired.types = types;
    let observed = NodeCatalog {
        types: live.into_iter().collect(),
        ..NodeCatalog::default()
    };
    (desired, observed)
}

#[test]
fn a_missing_enum_is_created_and_new_labels_go_in_their_place() {
    let (desired, observed) = with_types(vec![enum_type(&["sad", "ok", "happy"])], Vec::new());
    let changes = diff_of(&desired, &observed, &[]);
    assert_eq!(
        sql_of(&changes[0]),
        ["CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy')"]
    );
    assert_eq!(changes[0].phase, crate::dag::Phase::Types);

    let (desired, observed) = with_types(
        vec![enum_type(&["meh", "sad", "ok", "fine", "happy", "great"])],
        vec![(mood(), live_enum(&["sad", "ok", "happy"]))],
    );
    let changes = diff_of(&desired, &observed, &[]);
    assert_eq!(changes[0].action, Action::Update);
    assert!(changes[0].gated, "a new label is gated");
    assert_eq!(
        sql_of(&changes[0]),
        [
            "ALTER TYPE public.mood ADD VALUE IF NOT EXISTS 'meh' BEFORE 'sad'",
            "ALTER TYPE public.mood ADD VALUE IF NOT EXISTS 'fine' AFTER 'ok'",
            "ALTER TYPE public.mood ADD VALUE IF NOT EXISTS 'great' AFTER 'happy'",
        ]
    );
}

#[test]
fn removed_or_reordered_labels_are_blockers_not_changes() {
    for labels in [&["sad", "happy"][..], &["ok", "sad", "happy"][..]] {
        let (desired, observed) = with_types(
            vec![enum_type(labels)],
            vec![(mood(), live_enum(&["sad", "ok", "happy"]))],
        );
        assert!(diff_of(&desired, &observed, &[]).is_empty(), "{labels:?}");
        let blockers = types::blockers(&desired, &observed);
        assert_eq!(blockers.len(), 1, "{labels:?}");
        assert_eq!(blockers[0].setting, "type public.mood");
        assert!(
            blockers[0].fix.contains("PostgreSQL cannot"),
            "{}",
            blockers[0].fix
        );
    }
}

#[test]
fn a_domain_follows_its_default_not_null_and_checks() {
    let desired_domain = DesiredType {
        name: QualifiedName::new("public", "positive_int"),
        kind: DesiredTypeKind::Domain {
            base_type: "integer".into(),
            not_null: true,
            default: Some("1".into()),
            checks: vec![check("positive_int_check", "VALUE > 0")],
        },
    };
    let (desired, observed) = with_types(vec![desired_domain.clone()], Vec::new());
    assert_eq!(
        sql_of(&diff_of(&desired, &observed, &[])[0]),
        [
            "CREATE DOMAIN public.positive_int AS integer DEFAULT 1 NOT NULL \
          CONSTRAINT positive_int_check CHECK (VALUE > 0)"
        ]
    );

    let live = |checks: Vec<CheckCatalog>| {
        TypeCatalog::Domain(DomainCatalog {
            base_type: "integer".into(),
            not_null: true,
            default: Some("1".into()),
            checks,
        })
    };
    let same = live(vec![CheckCatalog {
        name: "positive_int_check".into(),
        definition: "CHECK ((VALUE > 0))".into(),
    }]);
    let (desired, observed) = with_types(
        vec![desired_domain.clone()],
        vec![(desired_domain.name.clone(), same)],
    );
    assert!(diff_of(&desired, &observed, &[]).is_empty());

    let other = live(vec![CheckCatalog {
        name: "old_check".into(),
        definition: "CHECK ((VALUE < 100))".into(),
    }]);
    let address = ObjectAddress::Type {
        name: desired_domain.name.clone(),
    };
    let (desired, observed) = with_types(
        vec![desired_domain.clone()],
        vec![(desired_domain.name.clone(), other)],
    );
    assert_eq!(
        sql_of(&diff_of(&desired, &observed, &[address])[0]),
        [
            "ALTER DOMAIN public.positive_int ADD CONSTRAINT positive_int_check CHECK (VALUE > 0) NOT VALID",
            "ALTER DOMAIN public.positive_int VALIDATE CONSTRAINT positive_int_check",
            "ALTER DOMAIN public.positive_int DROP CONSTRAINT old_check",
        ]
    );
    // Not created by pgconverge: the other check stays.
    assert_eq!(sql_of(&diff_of(&desired, &observed, &[])[0]).len(), 2);
}

fn live_check(name: &str, definition: &str) -> ConstraintCatalog {
    ConstraintCatalog {
        name: name.into(),
        kind: ConstraintKind::Check,
        columns: Vec::new(),
        definition: definition.into(),
        references: None,
        foreign_key: None,
    }
}

fn check_address(name: &str) -> ObjectAddress {
    ObjectAddress::Constraint {
        table: t(),
        name: name.into(),
    }
}

#[test]
fn a_new_check_on_a_live_table_is_gated_checked_and_added_not_valid() {
    let mut table = desired_table();
    table.checks = vec![check("t_id_check", "id > 0")];
    let observed = NodeCatalog {
        tables: BTreeMap::from([(t(), live_table())]),
        ..NodeCatalog::default()
    };
    let changes = diff_of(&node(vec![table.clone()]), &observed, &[]);
    let steps: Vec<&Change> = changes
        .iter()
        .filter(|c| c.address == check_address("t_id_check"))
        .collect();
    assert_eq!(steps.len(), 2, "{changes:#?}");
    let (change, validation) = (steps[0], steps[1]);
    assert!(change.gated);
    assert_eq!(
        sql_of(change),
        ["ALTER TABLE public.t ADD CONSTRAINT t_id_check CHECK (id > 0) NOT VALID"]
    );
    // Validated after the gate, in a step whose scan lets writes go on.
    assert!(!validation.gated);
    assert_eq!(validation.action, Action::Update);
    assert_eq!(
        sql_of(validation),
        ["ALTER TABLE public.t VALIDATE CONSTRAINT t_id_check"]
    );
    assert_eq!(
        change.data_checks,
        [DataCheck::ChecksHold {
            table: t(),
            key: vec!["id".into()],
            name: "t_id_check".into(),
            expression: "id > 0".into(),
        }]
    );

    // Deparsed by PostgreSQL, under its name or another: no change.
    for live_name in ["t_id_check", "hand_made"] {
        let mut live = live_table();
        live.constraints
            .push(live_check(live_name, "CHECK ((id > (0)::bigint))"));
        let observed = NodeCatalog {
            tables: BTreeMap::from([(t(), live)]),
            ..NodeCatalog::default()
        };
        assert!(diff_of(&node(vec![table.clone()]), &observed, &[]).is_empty());
    }
}

#[test]
fn checks_pgconverge_made_go_when_they_leave_the_config_and_others_stay() {
    let mut live = live_table();
    live.constraints
        .push(live_check("t_id_check", "CHECK ((id > 0))"));
    let observed = NodeCatalog {
        tables: BTreeMap::from([(t(), live)]),
        ..NodeCatalog::default()
    };
    let desired = node(vec![desired_table()]);
    assert!(diff_of(&desired, &observed, &[]).is_empty());
    let changes = diff_of(&desired, &observed, &[check_address("t_id_check")]);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].action, Action::Delete);
    assert!(changes[0].gated);
    assert_eq!(
        sql_of(&changes[0]),
        ["ALTER TABLE public.t DROP CONSTRAINT t_id_check"]
    );
}

#[test]
fn a_new_tables_checks_are_in_its_create_table() {
    let mut table = desired_table();
    table.checks = vec![check("t_id_check", "id > 0")];
    let changes = diff_of(&node(vec![table]), &NodeCatalog::default(), &[]);
    let create = sql_of(&changes[0]).join("\n");
    assert!(
        create.contains("CONSTRAINT t_id_check CHECK (id > 0)"),
        "{create}"
    );
}

#[test]
fn a_type_is_dropped_only_when_listed_in_dropped_types() {
    let (mut desired, observed) = with_types(Vec::new(), vec![(mood(), live_enum(&["a"]))]);
    assert!(
        diff_of(&desired, &observed, &[]).is_empty(),
        "left out is kept"
    );
    desired.dropped_types = vec![mood()];
    let changes = diff_of(&desired, &observed, &[]);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].action, Action::Delete);
    assert_eq!(sql_of(&changes[0]), ["DROP TYPE public.mood"]);
    assert_eq!(
        changes[0].hazards[0].kind,
        crate::hazard::HazardKind::Destructive
    );
}

#[test]
fn a_domains_new_check_and_not_null_look_at_the_columns_of_the_domain_first() {
    let domain = DesiredType {
        name: QualifiedName::new("public", "qty"),
        kind: DesiredTypeKind::Domain {
            base_type: "integer".into(),
            not_null: true,
            default: None,
            checks: vec![check("qty_check", "VALUE > 0")],
        },
    };
    let mut table = desired_table();
    let mut column = table.columns[0].clone();
    column.name = "amount".into();
    column.data_type = "public.qty".into();
    table.columns.push(column);
    let mut desired = node(vec![table]);
    desired.types = vec![domain];
    let mut live = live_table();
    live.columns.push(pgconverge_model::catalog::ColumnCatalog {
        name: "amount".into(),
        data_type: "public.qty".into(),
        not_null: false,
        default: None,
        identity: None,
        generated: None,
    });
    let observed = NodeCatalog {
        tables: BTreeMap::from([(t(), live)]),
        types: BTreeMap::from([(
            QualifiedName::new("public", "qty"),
            TypeCatalog::Domain(DomainCatalog {
                base_type: "integer".into(),
                ..DomainCatalog::default()
            }),
        )]),
        ..NodeCatalog::default()
    };
    let changes = diff_of(&desired, &observed, &[]);
    let change = changes
        .iter()
        .find(|c| matches!(c.address, ObjectAddress::Type { .. }))
        .expect("the domain's change");
    assert_eq!(
        change.data_checks,
        [
            DataCheck::NoNulls {
                table: t(),
                key: vec!["id".into()],
                column: "amount".into(),
            },
            DataCheck::DomainChecksHold {
                table: t(),
                key: vec!["id".into()],
                column: "amount".into(),
                base_type: "integer".into(),
                name: "qty_check".into(),
                expression: "VALUE > 0".into(),
            },
        ]
    );
    assert_eq!(
        change.data_checks[1].sql(),
        "SELECT s.key_text, pg_catalog.count(*) OVER ()::int8 FROM \
         (SELECT ROW(id)::text AS key_text, amount::integer AS value FROM public.t) AS s \
         WHERE NOT (VALUE > 0) LIMIT 1"
    );
}

#[test]
fn a_check_matches_the_servers_spelling_with_its_casts_and_parentheses() {
    use crate::diff::types::checks_match;
    for (configured, live) in [
        ("price >= 0", "CHECK ((price >= (0)::numeric))"),
        ("VALUE > 0", "CHECK ((VALUE > 0)) NOT VALID"),
        (
            "created_at::date <= updated_at::date",
            "CHECK (((created_at)::date <= (updated_at)::date))",
        ),
        (
            "status IN ('open', 'paid')",
            "CHECK ((status = ANY (ARRAY['open'::text, 'paid'::text])))",
        ),
        (
            "code::text ~ '^[A-Z]+$'",
            "CHECK (((code)::text ~ '^[A-Z]+$'::text))",
        ),
    ] {
        assert!(checks_match(configured, live), "{configured:?} vs {live:?}");
    }
    assert!(!checks_match(
        "price > 0",
        "CHECK ((price >= (0)::numeric))"
    ));
    assert!(!checks_match("a < b", "CHECK ((b < a))"));
}
