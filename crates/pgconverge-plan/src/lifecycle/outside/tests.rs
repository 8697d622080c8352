//! What a bootstrap carries, on hand-made catalogs: views in dependency order, objects the
//! joiner already has left alone, differing ones and missing roles refused, grants quoted.

use pgconverge_model::catalog::{
    GrantCatalog, NodeCatalog, PolicyDefinition, QualifiedName, RoutineDefinition, TableCatalog,
    TriggerCatalog, ViewDefinition,
};
use pgconverge_model::ClusterConfig;

use super::*;
use crate::desired::desired_cluster;

fn joiner_node() -> DesiredNode {
    let config: ClusterConfig = serde_json::from_value(serde_json::json!({
        "nodes": [{ "name": "n2", "host": "127.0.0.1", "port": 5502, "db": "app", "user": "pgc" }],
        "tables": [{
            "name": "items",
            "columns": [{ "name": "id", "type": "bigint" }],
            "primary_key": ["id"]
        }]
    }))
    .expect("config");
    desired_cluster(&config).remove(0)
}

fn items() -> QualifiedName {
    QualifiedName::new("public", "items")
}

fn view(name: &str, reads: &[&str]) -> ViewDefinition {
    ViewDefinition {
        name: QualifiedName::new("public", name),
        query: format!(" SELECT 1 FROM {};", reads.join(", ")),
        depends_on: reads
            .iter()
            .map(|r| QualifiedName::new("public", *r))
            .collect(),
        ..ViewDefinition::default()
    }
}

fn donor() -> NodeCatalog {
    let mut donor = NodeCatalog::default();
    donor.tables.insert(
        items(),
        TableCatalog {
            triggers: vec![
                TriggerCatalog {
                    name: "audit".into(),
                    function: QualifiedName::new("public", "audit"),
                    enabled: "A".into(),
                    definition: "CREATE TRIGGER audit AFTER INSERT ON public.items FOR EACH ROW \
                                 EXECUTE FUNCTION public.audit()"
                        .into(),
                },
                TriggerCatalog {
                    name: "elsewhere".into(),
                    function: QualifiedName::new("audit", "log"),
                    enabled: "O".into(),
                    definition: "CREATE TRIGGER elsewhere …".into(),
                },
                TriggerCatalog {
                    name: "_pgc_10_stamp".into(),
                    function: QualifiedName::new("_pgconverge", "stamp"),
                    enabled: "O".into(),
                    definition: "CREATE TRIGGER _pgc_10_stamp …".into(),
                },
            ],
            ..TableCatalog::default()
        },
    );
    donor.outside.routines = vec![RoutineDefinition {
        name: QualifiedName::new("public", "audit"),
        identity_arguments: String::new(),
        kind: "function".into(),
        definition: "CREATE OR REPLACE FUNCTION public.audit() …\n".into(),
    }];
    // Sorted by name, as introspection gives them: `a_total` reads `b_items`.
    donor.outside.views = vec![
        view("a_total", &["b_items"]),
        view("b_items", &["items"]),
        view("c_elsewhere", &["not_configured"]),
    ];
    donor.outside.policies = vec![PolicyDefinition {
        table: items(),
        name: "mine".into(),
        permissive: true,
        command: "SELECT".into(),
        roles: vec!["App User".into()],
        using: Some("true".into()),
        with_check: None,
    }];
    donor.outside.grants = vec![
        grant("TABLE", "items", "App User", "INSERT"),
        grant("TABLE", "items", "App User", "SELECT"),
        grant("TABLE", "c_elsewhere", "App User", "SELECT"),
    ];
    donor
}

fn grant(kind: &str, name: &str, grantee: &str, privilege: &str) -> GrantCatalog {
    GrantCatalog {
        object_kind: kind.into(),
        name: QualifiedName::new("public", name),
        grantee: grantee.into(),
        privilege: privilege.into(),
        ..GrantCatalog::default()
    }
}

fn joiner_with_role() -> NodeCatalog {
    let mut joiner = NodeCatalog::default();
    joiner.outside.roles = vec!["App User".into()];
    joiner
}

fn names(carried: &Carried) -> Vec<String> {
    carried
        .objects
        .iter()
        .map(|o| format!("{} {}", o.kind, o.name))
        .collect()
}

#[test]
fn everything_the_joiner_lacks_is_carried_views_after_what_they_read() {
    let carried =
        carried_objects(&joiner_node(), "n1", &donor(), &joiner_with_role()).expect("carried");
    assert_eq!(
        names(&carried),
        [
            "function public.audit()",
            "view public.b_items",
            "view public.a_total",
            "trigger audit on public.items",
            "policy mine on public.items",
            "grant INSERT, SELECT on table public.items to App User",
        ]
    );
    assert_eq!(
        carried.left_behind,
        [
            "view public.c_elsewhere (reads relations the config does not hold)",
            "trigger elsewhere on public.items (its function audit.log is outside the configured \
             schemas)"
        ]
    );
    assert_eq!(
        describe_carried(&carried.objects),
        "1 function, 2 views, 1 trigger, 1 policy, 1 grant"
    );
    let sql = carried_sql(&carried.objects);
    assert_eq!(sql[0], "SET LOCAL check_function_bodies = off");
    assert!(sql.contains(&"ALTER TABLE public.items ENABLE ALWAYS TRIGGER audit".to_string()));
    assert!(sql.contains(
        &"CREATE POLICY mine ON public.items AS PERMISSIVE FOR SELECT TO \"App User\" USING (true)"
            .to_string()
    ));
    assert!(sql.contains(&"GRANT INSERT, SELECT ON TABLE public.items TO \"App User\"".to_string()));
    assert!(sql.contains(&"CREATE VIEW public.b_items AS\nSELECT 1 FROM items".to_string()));
}

#[test]
fn objects_the_joiner_has_alike_are_not_created_again() {
    let donor = donor();
    let mut joiner = joiner_with_role();
    joiner.outside = donor.outside.clone();
    joiner.tables = donor.tables.clone();
    let carried = carried_objects(&joiner_node(), "n1", &donor, &joiner).expect("carried");
    assert_eq!(names(&carried), Vec::<String>::new());
}

#[test]
fn a_different_definition_on_the_joiner_blocks_the_join() {
    let donor = donor();
    let mut joiner = joiner_with_role();
    joiner.outside.views = vec![view("b_items", &["items", "other"])];
    joiner.outside.routines = donor.outside.routines.clone();
    joiner.outside.routines[0].definition = "CREATE OR REPLACE FUNCTION public.audit() x".into();
    let blocker = carried_objects(&joiner_node(), "n1", &donor, &joiner).expect_err("blocked");
    assert_eq!(blocker.setting, "objects outside the model");
    assert_eq!(
        blocker.current,
        "differ from n1's: function public.audit(), view public.b_items"
    );
}

#[test]
fn a_role_missing_on_the_joiner_blocks_the_join() {
    let blocker = carried_objects(&joiner_node(), "n1", &donor(), &NodeCatalog::default())
        .expect_err("blocked");
    assert_eq!(blocker.setting, "roles");
    assert_eq!(blocker.current, "missing: App User");
    assert!(blocker.fix.contains("pgconverge does not create roles"));
}

#[test]
fn materialized_views_are_filled_and_indexed_and_options_quoted() {
    let v = ViewDefinition {
        name: QualifiedName::new("Sales", "per day"),
        materialized: true,
        options: vec!["fillfactor=70".into()],
        query: " SELECT 1;".into(),
        indexes: vec!["CREATE INDEX i ON \"Sales\".\"per day\" USING btree (x)".into()],
        ..ViewDefinition::default()
    };
    assert_eq!(
        create_view_sql(&v),
        [
            "CREATE MATERIALIZED VIEW \"Sales\".\"per day\" WITH (fillfactor = '70') AS\n\
             SELECT 1\nWITH DATA",
            "CREATE INDEX i ON \"Sales\".\"per day\" USING btree (x)",
        ]
    );
}

#[test]
fn grants_name_routines_with_their_arguments_and_public_plainly() {
    let g = GrantCatalog {
        object_kind: "FUNCTION".into(),
        name: QualifiedName::new("public", "f"),
        arguments: "a integer".into(),
        grantee: String::new(),
        privilege: "EXECUTE".into(),
        grantable: false,
    };
    assert!(is_default(&g));
    let named = GrantCatalog {
        grantee: "app".into(),
        grantable: true,
        ..g
    };
    assert_eq!(
        grant_sql(&named, &["EXECUTE"]),
        Some((
            "GRANT EXECUTE ON FUNCTION public.f(a integer) TO app WITH GRANT OPTION".into(),
            "EXECUTE on function public.f(a integer) to app".into()
        ))
    );
    assert_eq!(grant_sql(&named, &["bogus; DROP"]), None);
}
