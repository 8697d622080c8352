//! Generated columns, index features and foreign key rules: what the diff does when the live
//! object differs, and that the server's spelling of the same thing is no change.

use pgconverge_model::catalog::{ForeignKeyRules, IndexCatalog};

use super::*;
use crate::desired::ForeignKeySpec;

fn changes(table: DesiredTable, live: TableCatalog, version: u32) -> Vec<Change> {
    let observed = NodeCatalog {
        server_version_num: version,
        tables: BTreeMap::from([(t(), live)]),
        ..NodeCatalog::default()
    };
    let around = Surroundings::default();
    let all = diff_node(&NodeDiffInput {
        desired: &node(vec![table]),
        observed: &observed,
        cluster: &around.cluster,
        managed: &around.managed,
        desired_slots_here: &around.desired_slots_here,
        key_slots: &around.key_slots,
    });
    // The node's publication and the like are not what these tests look at.
    all.into_iter()
        .filter(|c| {
            matches!(
                c.address,
                ObjectAddress::Column { .. }
                    | ObjectAddress::Index { .. }
                    | ObjectAddress::Constraint { .. }
            )
        })
        .collect()
}

fn sql_of(change: &Change) -> Vec<String> {
    change.statements.iter().map(|s| s.redacted()).collect()
}

/// `t` with `total numeric GENERATED ALWAYS AS (<desired>)`, live as `<live>`.
fn generated(desired: &str, live: &str) -> (DesiredTable, TableCatalog) {
    let mut table = desired_table();
    let mut total = column("total", "numeric", false);
    total.generated = Some(desired.to_string());
    table.columns.push(total);
    let mut live_table = live_table();
    let mut live_total = live_column("total", "numeric", false);
    live_total.generated = Some(live.to_string());
    live_table.columns.push(live_total);
    (table, live_table)
}

#[test]
fn the_servers_spelling_of_a_generated_expression_is_no_change() {
    let (table, live) = generated("id * 2", "((id)::numeric * (2)::numeric)");
    assert!(changes(table, live, 180000).is_empty());
}

#[test]
fn a_new_generated_expression_is_set_in_place_from_postgresql_17() {
    let (table, live) = generated("id * 3", "(id * 2)");
    let all = changes(table.clone(), live.clone(), 170000);
    let change = all
        .iter()
        .find(|c| c.address == column_address("total"))
        .expect("a change to total");
    assert_eq!(
        sql_of(change),
        ["ALTER TABLE public.t ALTER COLUMN total SET EXPRESSION AS (id * 3)"]
    );
    assert_eq!(
        change.hazards.iter().map(|h| h.kind).collect::<Vec<_>>(),
        [HazardKind::TableRewrite]
    );
    let observed = NodeCatalog {
        server_version_num: 160004,
        server_version: "16.4".into(),
        tables: BTreeMap::from([(t(), live)]),
        ..NodeCatalog::default()
    };
    assert!(changes(table.clone(), observed.tables[&t()].clone(), 160004).is_empty());
    let blockers = crate::diff::generated::blockers(&node(vec![table]), &observed);
    assert_eq!(blockers.len(), 1, "{blockers:?}");
    assert!(blockers[0].fix.contains("PostgreSQL 17"), "{}", blockers[0]);
}

#[test]
fn an_ordinary_column_cannot_become_generated_in_place() {
    let (table, mut live) = generated("id * 2", "");
    live.columns[1].generated = None;
    let observed = NodeCatalog {
        server_version_num: 180000,
        tables: BTreeMap::from([(t(), live)]),
        ..NodeCatalog::default()
    };
    let blockers = crate::diff::generated::blockers(&node(vec![table]), &observed);
    assert_eq!(blockers.len(), 1);
    assert!(
        blockers[0].fix.contains("dropped_columns"),
        "{}",
        blockers[0]
    );
}

fn partial_index(predicate: &str) -> (DesiredTable, TableCatalog) {
    let mut table = desired_table();
    table.columns.push(column("email", "text", false));
    table.indexes.push(IndexSpec {
        name: "t_open_idx".into(),
        expressions: vec!["lower(email)".into()],
        method: "btree".into(),
        predicate: Some(predicate.into()),
        ..IndexSpec::default()
    });
    let mut live = live_table();
    live.columns.push(live_column("email", "text", false));
    live.indexes.push(IndexCatalog {
        name: "t_open_idx".into(),
        columns: vec!["lower(email)".into()],
        unique: false,
        definition: String::new(),
        method: "btree".into(),
        expression_keys: true,
        include: Vec::new(),
        predicate: Some("email <> ''::text".into()),
        unmodelled: None,
    });
    (table, live)
}

#[test]
fn the_servers_spelling_of_an_index_is_no_change() {
    let (table, live) = partial_index("email <> ''");
    assert!(changes(table, live, 180000).is_empty());
}

#[test]
fn a_changed_index_is_dropped_and_built_again_concurrently() {
    let (table, live) = partial_index("email LIKE '%@example.com'");
    let all = changes(table, live, 180000);
    let [change] = all.as_slice() else {
        panic!("one change expected: {all:#?}")
    };
    assert_eq!(change.action, Action::Replace);
    assert!(!change.transactional);
    assert!(
        change
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("WHERE")),
        "{:?}",
        change.reason
    );
    let sql = sql_of(change);
    assert!(
        sql.iter()
            .any(|s| s == "DROP INDEX CONCURRENTLY IF EXISTS public.t_open_idx"),
        "{sql:?}"
    );
    assert!(
        sql.iter().any(|s| s
            == "CREATE INDEX CONCURRENTLY t_open_idx ON public.t ((lower(email))) WHERE email LIKE '%@example.com'"),
        "{sql:?}"
    );
    assert_eq!(
        change.hazards.iter().map(|h| h.kind).collect::<Vec<_>>(),
        [HazardKind::WaitsForTransactions]
    );
}

#[test]
fn index_sql_names_method_include_and_predicate() {
    let table = desired_table();
    let index = IndexSpec {
        name: "t_tags_idx".into(),
        columns: vec!["tags".into()],
        method: "gin".into(),
        ..IndexSpec::default()
    };
    assert_eq!(
        indexes::ddl::create_index_sql(&table, &index, false),
        "CREATE INDEX t_tags_idx ON public.t USING gin (tags)"
    );
    let covering = IndexSpec {
        name: "t_cover_idx".into(),
        columns: vec!["a".into(), "b".into()],
        method: "btree".into(),
        include: vec!["c".into()],
        predicate: Some("a > 0".into()),
        ..IndexSpec::default()
    };
    assert_eq!(
        indexes::ddl::create_index_sql(&table, &covering, true),
        "CREATE INDEX CONCURRENTLY t_cover_idx ON public.t (a, b) INCLUDE (c) WHERE a > 0"
    );
}

fn with_foreign_key(
    on_delete: Option<&str>,
    deferrable: bool,
    live_rules: ForeignKeyRules,
) -> (DesiredTable, TableCatalog) {
    let mut table = desired_table();
    table.columns.push(column("parent", "bigint", false));
    table.foreign_keys.push(ForeignKeySpec {
        name: "t_parent_fkey".into(),
        columns: vec!["parent".into()],
        ref_table: t(),
        ref_columns: vec!["id".into()],
        on_delete: on_delete.map(str::to_string),
        on_update: None,
        deferrable,
        initially_deferred: false,
    });
    let mut live = live_table();
    live.columns.push(live_column("parent", "bigint", false));
    let mut fk = live_key("t_parent_fkey", ConstraintKind::ForeignKey, "parent");
    fk.references = Some((t(), vec!["id".into()]));
    fk.definition = "FOREIGN KEY (parent) REFERENCES public.t(id)".into();
    fk.foreign_key = Some(live_rules);
    live.constraints.push(fk);
    (table, live)
}

fn rules(on_delete: &str, deferrable: bool) -> ForeignKeyRules {
    ForeignKeyRules {
        on_update: "a".into(),
        on_delete: on_delete.into(),
        deferrable,
        initially_deferred: false,
    }
}

#[test]
fn the_same_foreign_key_rules_are_no_change() {
    let (table, live) = with_foreign_key(Some("cascade"), true, rules("c", true));
    assert!(changes(table, live, 180000).is_empty());
    let (table, live) = with_foreign_key(Some("no action"), false, rules("a", false));
    assert!(changes(table, live, 180000).is_empty());
}

#[test]
fn a_new_action_re_adds_the_foreign_key_not_valid_then_validates_it() {
    let (table, live) = with_foreign_key(Some("set null"), false, rules("a", false));
    let all = changes(table, live, 180000);
    let [change] = all.as_slice() else {
        panic!("one change expected: {all:#?}")
    };
    assert!(
        !change.transactional,
        "the validation must not hold the re-add's lock"
    );
    assert_eq!(
        sql_of(change),
        [
            "ALTER TABLE public.t DROP CONSTRAINT t_parent_fkey, ADD CONSTRAINT t_parent_fkey FOREIGN KEY (parent) REFERENCES public.t (id) ON DELETE SET NULL NOT VALID",
            "ALTER TABLE public.t VALIDATE CONSTRAINT t_parent_fkey",
        ]
    );
    assert_eq!(
        change.hazards.iter().map(|h| h.kind).collect::<Vec<_>>(),
        [HazardKind::BlocksWrites]
    );
}

#[test]
fn deferrability_alone_is_altered_in_place() {
    let (table, live) = with_foreign_key(None, true, rules("a", false));
    let all = changes(table, live, 180000);
    let [change] = all.as_slice() else {
        panic!("one change expected: {all:#?}")
    };
    assert!(change.transactional);
    assert_eq!(
        sql_of(change),
        ["ALTER TABLE public.t ALTER CONSTRAINT t_parent_fkey DEFERRABLE INITIALLY IMMEDIATE"]
    );
}
