//! Trigger definitions against a real server: the plain shapes pgconverge creates are
//! printed client-side (the query leaves their server definition out) and equal
//! `pg_get_triggerdef`; every other shape is left to the server.

use std::collections::{BTreeMap, BTreeSet};

use pgconverge_tests::TestCluster;

use super::*;

const TABLES: [&str; 3] = [
    "public.\"Mixed Case\"",
    "\"Odd Schema\".\"select\"",
    "public.parted",
];

const FUNCTIONS: [&str; 2] = ["_pgconverge.touch", "\"Odd Schema\".\"Touch \"\"Me\"\"\""];

/// Every BEFORE/AFTER, FOR EACH ROW/STATEMENT trigger with a non-empty set of events, each
/// set written in a different order than the server prints it; TRUNCATE only per statement.
/// Each as (quoted name, table, CREATE statement).
fn plain_triggers() -> Vec<(String, &'static str, String)> {
    let events = ["UPDATE", "TRUNCATE", "DELETE", "INSERT"];
    let mut triggers = Vec::new();
    let mut n = 0;
    for timing in ["BEFORE", "AFTER"] {
        for level in ["ROW", "STATEMENT"] {
            for mask in 1..16u32 {
                let chosen: Vec<&str> = events
                    .iter()
                    .enumerate()
                    .filter(|(bit, _)| mask & (1 << bit) != 0)
                    .map(|(_, event)| *event)
                    .collect();
                if level == "ROW" && chosen.contains(&"TRUNCATE") {
                    continue;
                }
                let table = TABLES[n % TABLES.len()];
                let function = FUNCTIONS[n % FUNCTIONS.len()];
                // Plain, quoted and keyword names.
                let name = match (n / 3) % 3 {
                    0 => format!("plain_{n}"),
                    1 => format!("\"Plain \"\"{n}\"\"\""),
                    _ => format!("\"select_{n}\""),
                };
                triggers.push((
                    name.clone(),
                    table,
                    format!(
                        "CREATE TRIGGER {name} {timing} {} ON {table} FOR EACH {level} \
                         EXECUTE FUNCTION {function}()",
                        chosen.join(" OR ")
                    ),
                ));
                n += 1;
            }
        }
    }
    triggers
}

/// Shapes only the server prints: WHEN, arguments, UPDATE OF, a constraint trigger,
/// transition tables, a function in pg_catalog (printed unqualified).
const UNUSUAL_TRIGGERS: &str = r#"
CREATE TRIGGER unusual_when BEFORE UPDATE ON public."Mixed Case"
    FOR EACH ROW WHEN (NEW.note IS DISTINCT FROM OLD.note) EXECUTE FUNCTION _pgconverge.touch();
CREATE TRIGGER unusual_arguments AFTER INSERT ON public."Mixed Case"
    FOR EACH ROW EXECUTE FUNCTION _pgconverge.touch('a', 'it''s');
CREATE TRIGGER unusual_update_of BEFORE UPDATE OF note, id ON public."Mixed Case"
    FOR EACH ROW EXECUTE FUNCTION _pgconverge.touch();
CREATE CONSTRAINT TRIGGER unusual_constraint AFTER INSERT ON public."Mixed Case"
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION _pgconverge.touch();
CREATE TRIGGER unusual_transition AFTER INSERT ON public."Mixed Case"
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION _pgconverge.touch();
CREATE TRIGGER unusual_catalog_function BEFORE UPDATE ON public."Mixed Case"
    FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
"#;

const SCHEMA: &str = r#"
CREATE SCHEMA _pgconverge;
CREATE SCHEMA "Odd Schema";
CREATE TABLE public."Mixed Case" (id int PRIMARY KEY, note text);
CREATE TABLE "Odd Schema"."select" (id int);
CREATE TABLE public.parted (id int, k int) PARTITION BY RANGE (k);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (10);
CREATE FUNCTION _pgconverge.touch() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN RETURN NEW; END $$;
CREATE FUNCTION "Odd Schema"."Touch ""Me""" () RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN RETURN NEW; END $$;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_trigger_definitions_are_printed_here_and_equal_pg_get_triggerdef() {
    let cluster = TestCluster::start(1);
    let client = cluster.client(0).await;
    let plain = plain_triggers();
    let mut sql = SCHEMA.to_string();
    for (_, _, create) in &plain {
        sql.push_str(create);
        sql.push_str(";\n");
    }
    sql.push_str(UNUSUAL_TRIGGERS);
    // Firing states are not part of the definition.
    for ((name, table, _), state) in
        plain
            .iter()
            .zip(["ENABLE REPLICA", "ENABLE ALWAYS", "DISABLE"])
    {
        sql.push_str(&format!("ALTER TABLE {table} {state} TRIGGER {name};\n"));
    }
    client.batch_execute(&sql).await.expect("triggers created");

    let scope = IntrospectScope {
        schemas: vec![
            "public".to_string(),
            "_pgconverge".to_string(),
            "Odd Schema".to_string(),
        ],
        ..Default::default()
    };
    let catalog = introspect(&client, &scope).await.expect("introspection");
    let introspected: BTreeMap<(String, String), (String, String)> = catalog
        .tables
        .iter()
        .flat_map(|(table, t)| {
            t.triggers.iter().map(move |trigger| {
                (
                    (table.to_string(), trigger.name.clone()),
                    (trigger.definition.clone(), trigger.enabled.clone()),
                )
            })
        })
        .collect();

    client
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL search_path = ''",
        )
        .await
        .expect("snapshot");
    let expected: BTreeMap<(String, String), (String, String)> = client
        .query(
            "SELECT n.nspname::text || '.' || c.relname::text, t.tgname::text,
                    pg_catalog.pg_get_triggerdef(t.oid), t.tgenabled::text
             FROM pg_catalog.pg_trigger t
             JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE NOT t.tgisinternal AND NOT c.relispartition",
            &[],
        )
        .await
        .expect("server definitions")
        .iter()
        .map(|row| ((row.get(0), row.get(1)), (row.get(2), row.get(3))))
        .collect();
    let schemas: Vec<String> = scope.schemas.clone();
    let printed_by_server: BTreeSet<String> = client
        .query_typed(TRIGGERS_SQL, &[(&schemas, Type::TEXT_ARRAY)])
        .await
        .expect("trigger query")
        .iter()
        .filter(|row| row.get::<_, Option<String>>(6).is_some())
        .map(|row| row.get::<_, String>(2))
        .collect();
    client.batch_execute("COMMIT").await.expect("commit");

    // Row triggers on public.parted are cloned onto its partition, which is a part of its
    // table: the clones are not listed again.
    assert!(
        introspected.len() > plain.len() + 5,
        "{} triggers",
        introspected.len()
    );
    assert_eq!(introspected, expected);
    let states: BTreeSet<&str> = introspected.values().map(|(_, s)| s.as_str()).collect();
    assert_eq!(states, BTreeSet::from(["A", "D", "O", "R"]));
    assert_eq!(
        printed_by_server,
        [
            "unusual_arguments",
            "unusual_catalog_function",
            "unusual_constraint",
            "unusual_transition",
            "unusual_update_of",
            "unusual_when",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        "every plain trigger is printed client-side, nothing else is"
    );
}
