//! One test per ordering rule: a handful of changes, the rule alone, the edge it must add.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pgconverge_model::catalog::QualifiedName;
use pgconverge_model::naming::INTERNAL_SCHEMA;

use super::*;

fn change(node: &str, address: ObjectAddress, action: Action) -> Change {
    Change::new(node, address, action, Vec::new())
}

fn create(node: &str, address: ObjectAddress) -> Change {
    change(node, address, Action::Create)
}

fn drop(node: &str, address: ObjectAddress) -> Change {
    change(node, address, Action::Delete)
}

fn name(schema: &str, name: &str) -> QualifiedName {
    QualifiedName {
        schema: schema.to_string(),
        name: name.to_string(),
    }
}

fn schema(name: &str) -> ObjectAddress {
    ObjectAddress::Schema {
        name: name.to_string(),
    }
}

fn table(schema: &str, table: &str) -> ObjectAddress {
    ObjectAddress::Table {
        table: name(schema, table),
    }
}

fn constraint(table: &str, constraint: &str) -> ObjectAddress {
    ObjectAddress::Constraint {
        table: name("public", table),
        name: constraint.to_string(),
    }
}

fn function(schema: &str, function: &str) -> ObjectAddress {
    ObjectAddress::Function {
        function: name(schema, function),
    }
}

fn trigger(schema: &str, table: &str, trigger: &str) -> ObjectAddress {
    ObjectAddress::Trigger {
        table: name(schema, table),
        name: trigger.to_string(),
    }
}

fn publication() -> ObjectAddress {
    ObjectAddress::Publication {
        name: "pub".to_string(),
    }
}

fn subscription(name: &str) -> ObjectAddress {
    ObjectAddress::Subscription {
        name: name.to_string(),
    }
}

/// Owned facts for a `GraphContext`.
#[derive(Default)]
struct Facts {
    node_order: Vec<String>,
    subscription_publishers: BTreeMap<String, BTreeMap<String, String>>,
    foreign_key_targets: HashMap<(String, ObjectAddress), ObjectAddress>,
    trigger_functions: HashMap<ObjectAddress, ObjectAddress>,
}

impl Facts {
    /// `subscriber` receives `sub` from `publisher`.
    fn subscribes(mut self, subscriber: &str, sub: &str, publisher: &str) -> Facts {
        self.subscription_publishers
            .entry(subscriber.to_string())
            .or_default()
            .insert(sub.to_string(), publisher.to_string());
        self
    }

    fn calls(mut self, trigger: ObjectAddress, function: ObjectAddress) -> Facts {
        self.trigger_functions.insert(trigger, function);
        self
    }
}

/// The edges `rule` alone adds over `changes`.
fn edges_of(
    rule: fn(&RuleInput<'_>, &mut Edges),
    changes: &[Change],
    facts: &Facts,
) -> BTreeSet<(usize, usize)> {
    let ctx = GraphContext {
        node_order: &facts.node_order,
        subscription_publishers: &facts.subscription_publishers,
        foreign_key_targets: &facts.foreign_key_targets,
        trigger_functions: &facts.trigger_functions,
    };
    let input = RuleInput::new(changes, &ctx);
    let mut edges = Edges::default();
    rule(&input, &mut edges);
    edges.0
}

fn set(edges: &[(usize, usize)]) -> BTreeSet<(usize, usize)> {
    edges.iter().copied().collect()
}

#[test]
fn rule_names_are_unique() {
    let names: BTreeSet<&str> = RULES.iter().map(|r| r.name).collect();
    assert_eq!(names.len(), RULES.len());
}

#[test]
fn schema_comes_before_its_tables_and_their_parts() {
    let changes = [
        create("a", schema("app")),
        create("a", table("app", "t")),
        create("a", trigger("app", "t", "tr")),
        create("b", table("app", "t")),
    ];
    let edges = edges_of(schema_before_its_tables, &changes, &Facts::default());
    assert_eq!(edges, set(&[(0, 1), (0, 2)]));
}

#[test]
fn schema_comes_before_its_functions() {
    let changes = [
        create("a", schema("app")),
        create("a", function("app", "f")),
    ];
    let edges = edges_of(schema_before_its_functions, &changes, &Facts::default());
    assert_eq!(edges, set(&[(0, 1)]));
}

#[test]
fn table_comes_before_its_parts() {
    let changes = [
        create("a", table("public", "t")),
        create("a", constraint("t", "t_pkey")),
        create("a", constraint("u", "u_pkey")),
    ];
    let edges = edges_of(table_before_its_parts, &changes, &Facts::default());
    assert_eq!(edges, set(&[(0, 1)]));
}

#[test]
fn tables_and_columns_come_before_the_key_slot_of_their_node() {
    let column = ObjectAddress::Column {
        table: name("public", "orders"),
        column: "id".to_string(),
    };
    let key_slot = |node: &str| ObjectAddress::KeySlot {
        node: node.to_string(),
    };
    let changes = [
        create("a", table(INTERNAL_SCHEMA, "key_slot")),
        create("a", table("public", "t")),
        create("a", column),
        create("a", key_slot("a")),
        create("b", table("public", "t")),
        create("b", key_slot("b")),
        create("a", function(INTERNAL_SCHEMA, "apply")),
    ];
    let edges = edges_of(
        tables_and_columns_before_key_slot,
        &changes,
        &Facts::default(),
    );
    assert_eq!(edges, set(&[(0, 3), (1, 3), (2, 3), (4, 5)]));
}

#[test]
fn internal_tables_come_before_functions() {
    let changes = [
        create("a", table(INTERNAL_SCHEMA, "changes")),
        create("a", table("public", "t")),
        create("a", function(INTERNAL_SCHEMA, "apply")),
    ];
    let edges = edges_of(
        internal_tables_before_functions,
        &changes,
        &Facts::default(),
    );
    assert_eq!(edges, set(&[(0, 2)]));
}

#[test]
fn shared_functions_come_before_table_functions() {
    let changes = [
        create("a", function(INTERNAL_SCHEMA, "apply_t_0123abcd")),
        create("a", function(INTERNAL_SCHEMA, "begin_apply")),
        create("a", function(INTERNAL_SCHEMA, "record_conflict")),
        create("b", function(INTERNAL_SCHEMA, "log_t_0123abcd")),
        create("a", function("public", "user_helper")),
        drop("a", function(INTERNAL_SCHEMA, "merge_claim")),
    ];
    let edges = edges_of(
        shared_functions_before_table_functions,
        &changes,
        &Facts::default(),
    );
    assert_eq!(edges, set(&[(1, 0), (2, 0)]));
}

#[test]
fn constraints_come_before_the_replica_identity_of_their_table() {
    let identity = |t: &str| ObjectAddress::ReplicaIdentity {
        table: name("public", t),
    };
    let changes = [
        create("a", identity("t")),
        create("a", constraint("t", "t_pgc_identity")),
        create("a", constraint("u", "u_pgc_identity")),
        create("b", constraint("t", "t_pgc_identity")),
    ];
    let edges = edges_of(
        constraints_before_replica_identity,
        &changes,
        &Facts::default(),
    );
    assert_eq!(edges, set(&[(1, 0)]));
}

#[test]
fn referenced_table_and_key_come_before_foreign_key() {
    let changes = [
        create("a", table("public", "parent")),
        create("a", constraint("parent", "parent_pkey")),
        create("a", constraint("child", "child_parent_fkey")),
    ];
    let mut facts = Facts::default();
    facts.foreign_key_targets.insert(
        ("a".to_string(), constraint("child", "child_parent_fkey")),
        table("public", "parent"),
    );
    let edges = edges_of(
        referenced_table_and_key_before_foreign_key,
        &changes,
        &facts,
    );
    assert_eq!(edges, set(&[(0, 2), (1, 2)]));
}

#[test]
fn function_comes_before_trigger() {
    let changes = [
        create("a", function("public", "f")),
        create("a", trigger("public", "t", "tr")),
    ];
    let facts = Facts::default().calls(trigger("public", "t", "tr"), function("public", "f"));
    let edges = edges_of(function_before_trigger, &changes, &facts);
    assert_eq!(edges, set(&[(0, 1)]));
}

#[test]
fn change_log_comes_before_publication() {
    let changes = [
        create("a", table(INTERNAL_SCHEMA, "changes")),
        create("a", publication()),
        create("b", publication()),
    ];
    let edges = edges_of(change_log_before_publication, &changes, &Facts::default());
    assert_eq!(edges, set(&[(0, 1)]));
}

#[test]
fn apply_machinery_comes_before_subscription() {
    let changes = [
        create("a", table(INTERNAL_SCHEMA, "changes")),
        create("a", function(INTERNAL_SCHEMA, "apply")),
        create("a", trigger(INTERNAL_SCHEMA, "changes", "apply")),
        create("a", subscription("a_from_b")),
    ];
    let facts = Facts::default().calls(
        trigger(INTERNAL_SCHEMA, "changes", "apply"),
        function(INTERNAL_SCHEMA, "apply"),
    );
    let edges = edges_of(apply_machinery_before_subscription, &changes, &facts);
    assert_eq!(edges, set(&[(0, 3), (1, 3), (2, 3)]));
}

#[test]
fn publisher_slot_comes_before_subscription() {
    let slot = ObjectAddress::Slot {
        name: "a_from_b".to_string(),
    };
    let changes = [create("b", slot), create("a", subscription("a_from_b"))];
    let facts = Facts::default().subscribes("a", "a_from_b", "b");
    let edges = edges_of(publisher_slot_before_subscription, &changes, &facts);
    assert_eq!(edges, set(&[(0, 1)]));
}

#[test]
fn publication_comes_before_peer_subscriptions() {
    let changes = [
        create("b", publication()),
        create("a", publication()),
        create("a", subscription("a_from_b")),
    ];
    let facts = Facts::default().subscribes("a", "a_from_b", "b");
    let edges = edges_of(publication_before_peer_subscriptions, &changes, &facts);
    assert_eq!(edges, set(&[(0, 2)]));
}

#[test]
fn drops_come_after_everything_else_on_their_node() {
    let changes = [
        create("a", table("public", "t")),
        create("b", table("public", "t")),
        drop("a", function("public", "old")),
        drop("a", subscription("a_from_c")),
    ];
    let edges = edges_of(drops_after_everything_else, &changes, &Facts::default());
    assert_eq!(edges, set(&[(0, 2), (0, 3)]));
}

#[test]
fn triggers_are_dropped_before_their_function() {
    let changes = [
        drop("a", trigger("public", "t", "tr")),
        drop("a", function("public", "f")),
    ];
    let facts = Facts::default().calls(trigger("public", "t", "tr"), function("public", "f"));
    let edges = edges_of(triggers_dropped_before_their_function, &changes, &facts);
    assert_eq!(edges, set(&[(0, 1)]));
}

#[test]
fn subscriptions_are_dropped_before_publication() {
    let changes = [
        drop("a", subscription("a_from_b")),
        drop("b", publication()),
        drop("c", subscription("c_from_a")),
    ];
    let facts = Facts::default()
        .subscribes("a", "a_from_b", "b")
        .subscribes("c", "c_from_a", "a");
    let edges = edges_of(subscriptions_dropped_before_publication, &changes, &facts);
    assert_eq!(edges, set(&[(0, 1)]));
}

fn slot(name: &str) -> ObjectAddress {
    ObjectAddress::Slot {
        name: name.to_string(),
    }
}

fn membership(node: &str) -> ObjectAddress {
    ObjectAddress::Membership {
        node: node.to_string(),
    }
}

/// `joiner` bootstrapping from `donor`, the other members being `others`.
fn bootstrap(joiner: &str, donor: &str, others: &[&str]) -> Change {
    use crate::lifecycle::{BootstrapSpec, CatchUpWait, LifecycleStep};
    let mut c = create(joiner, membership(joiner));
    c.lifecycle = Some(LifecycleStep::Bootstrap(BootstrapSpec {
        donor: donor.to_string(),
        donor_choice: String::new(),
        donor_slot: format!("pgc_{joiner}_from_{donor}"),
        catch_up: others
            .iter()
            .map(|p| CatchUpWait {
                publisher: p.to_string(),
                joiner_slot: format!("pgc_{joiner}_from_{p}"),
                donor_slot: format!("pgc_{donor}_from_{p}"),
            })
            .collect(),
        tables: Vec::new(),
        joiner_setup_sql: Vec::new(),
        joiner_finish_sql: Vec::new(),
        outside_objects: Vec::new(),
        estimated_rows: Some(0),
        estimated_bytes: 0,
        merge: None,
    }));
    c
}

fn drain(leaving: &str) -> Change {
    use crate::lifecycle::{DrainSpec, LifecycleStep};
    let mut c = drop(leaving, membership(leaving));
    c.lifecycle = Some(LifecycleStep::Drain(DrainSpec { waits: Vec::new() }));
    c
}

#[test]
fn joiner_slots_come_before_its_bootstrap() {
    let changes = [
        create("n1", slot("pgc_n4_from_n1")),
        create("n2", slot("pgc_n4_from_n2")),
        create("n2", slot("pgc_n1_from_n2")),
        bootstrap("n4", "n1", &["n2"]),
    ];
    let edges = edges_of(joiner_slots_before_bootstrap, &changes, &Facts::default());
    assert_eq!(edges, set(&[(0, 3), (1, 3)]));
}

#[test]
fn donor_changes_come_before_the_copy() {
    let changes = [
        create("n1", table("public", "t")),
        create("n2", table("public", "t")),
        create("n1", membership("n1")),
        bootstrap("n4", "n1", &[]),
    ];
    let edges = edges_of(donor_changes_before_bootstrap, &changes, &Facts::default());
    assert_eq!(edges, set(&[(0, 3)]));
}

#[test]
fn bootstrap_comes_before_the_joiner_subscribes() {
    let changes = [
        bootstrap("n4", "n1", &[]),
        create("n4", subscription("pgc_n4_from_n1")),
        create("n1", subscription("pgc_n1_from_n4")),
    ];
    let edges = edges_of(
        bootstrap_before_joiner_subscribes,
        &changes,
        &Facts::default(),
    );
    assert_eq!(edges, set(&[(0, 1)]));
}

#[test]
fn drain_comes_before_peers_unsubscribe() {
    let changes = [
        drain("n3"),
        drop("n1", subscription("pgc_n1_from_n3")),
        drop("n1", subscription("pgc_n1_from_n2")),
    ];
    let edges = edges_of(drain_before_peers_unsubscribe, &changes, &Facts::default());
    assert_eq!(edges, set(&[(0, 1)]));
}

#[test]
fn drain_comes_before_the_slots_the_leaving_node_used() {
    let changes = [
        drain("n3"),
        drop("n1", slot("pgc_n3_from_n1")),
        drop("n1", slot("pgc_n2_from_n1")),
    ];
    let edges = edges_of(
        drain_before_departing_slots_drop,
        &changes,
        &Facts::default(),
    );
    assert_eq!(edges, set(&[(0, 1)]));
}

#[test]
fn drain_comes_before_the_leaving_nodes_own_drops() {
    let changes = [
        drain("n3"),
        drop("n3", publication()),
        drop("n1", publication()),
    ];
    let edges = edges_of(
        drain_before_departing_node_drops,
        &changes,
        &Facts::default(),
    );
    assert_eq!(edges, set(&[(0, 1)]));
}

#[test]
fn peers_unsubscribe_before_the_leaving_nodes_publication_and_slots() {
    let changes = [
        drop("n1", subscription("pgc_n1_from_n3")),
        drop("n3", slot("pgc_n1_from_n3")),
        drop("n3", publication()),
        drop("n3", slot("pgc_n2_from_n3")),
    ];
    let edges = edges_of(
        peers_unsubscribe_before_departing_publication_and_slots,
        &changes,
        &Facts::default(),
    );
    assert_eq!(edges, set(&[(0, 1), (0, 2)]));
}

fn type_address(schema: &str, ty: &str) -> ObjectAddress {
    ObjectAddress::Type {
        name: name(schema, ty),
    }
}

fn with_sql(mut change: Change, sql: &str) -> Change {
    change.statements = vec![crate::statement::Statement::sql(sql)];
    change
}

#[test]
fn types_wait_for_their_schema_and_come_before_tables_and_columns() {
    let changes = [
        create("a", schema("app")),
        create("a", type_address("app", "mood")),
        create("a", table("app", "t")),
        create(
            "a",
            ObjectAddress::Column {
                table: name("app", "u"),
                column: "m".into(),
            },
        ),
        create("b", table("app", "t")),
    ];
    let facts = Facts::default();
    assert_eq!(
        edges_of(schema_before_its_types, &changes, &facts),
        set(&[(0, 1)])
    );
    assert_eq!(
        edges_of(types_before_tables_and_columns, &changes, &facts),
        set(&[(1, 2), (1, 3)])
    );
}

#[test]
fn enum_types_come_before_domains() {
    let changes = [
        with_sql(
            create("a", type_address("public", "a_domain")),
            "CREATE DOMAIN public.a_domain AS public.z_enum",
        ),
        with_sql(
            create("a", type_address("public", "z_enum")),
            "CREATE TYPE public.z_enum AS ENUM ('x')",
        ),
    ];
    assert_eq!(
        edges_of(enum_types_before_domains, &changes, &Facts::default()),
        set(&[(1, 0)])
    );
}

#[test]
fn a_check_is_added_before_it_is_validated() {
    let check = constraint("t", "t_id_check");
    let changes = [
        change("a", check.clone(), Action::Update),
        create("a", check.clone()),
        create("b", check),
    ];
    assert_eq!(
        edges_of(check_added_before_validated, &changes, &Facts::default()),
        set(&[(1, 0)])
    );
}

#[test]
fn types_are_dropped_after_the_tables_and_columns_using_them() {
    let changes = [
        drop("a", type_address("public", "mood")),
        drop("a", table("public", "t")),
        drop(
            "a",
            ObjectAddress::Column {
                table: name("public", "u"),
                column: "m".into(),
            },
        ),
        drop("b", table("public", "t")),
    ];
    assert_eq!(
        edges_of(
            tables_and_columns_dropped_before_types,
            &changes,
            &Facts::default()
        ),
        set(&[(1, 0), (2, 0)])
    );
}

#[test]
fn sql_files_run_last_on_their_node_in_config_order() {
    let file = |name: &str| ObjectAddress::SqlFile {
        name: name.to_string(),
    };
    let changes = [
        create("a", table("public", "t")),
        create("a", file("b.sql")),
        create("a", file("a.sql")),
        create("a", membership("a")),
        create("b", file("b.sql")),
    ];
    let edges = edges_of(sql_files_last_in_config_order, &changes, &Facts::default());
    assert_eq!(edges, set(&[(0, 1), (3, 1), (1, 2)]));
}
