//! Introspection and statement execution against real servers (the test support's
//! `TestCluster`): every kind of object lands in the snapshot as PostgreSQL has it, a
//! subscription's password never does, an unchanged database gives an equal snapshot, and
//! failures name the node and the statement.

use pgconverge_model::catalog::{ConstraintKind, QualifiedName};
use pgconverge_model::{NodeCatalog, NodeConfig};
use pgconverge_postgres::{
    advisory_unlock, connect, execute_statements, introspect, introspect_nodes, try_advisory_lock,
    IntrospectScope, NodeError,
};
use pgconverge_sql::quote_conninfo_value;
use pgconverge_tests::TestCluster;

/// Contains a space and single quotes, the hard cases for conninfo quoting and redaction.
const SUBSCRIPTION_PASSWORD: &str = "s3cr3t 'quoted' pw";

fn scope() -> IntrospectScope {
    IntrospectScope {
        schemas: vec!["public".to_string(), "_pgconverge".to_string()],
        ..Default::default()
    }
}

fn node_config(name: &str, port: u16, db: &str, user: &str) -> NodeConfig {
    NodeConfig {
        name: name.to_string(),
        host: "127.0.0.1".to_string(),
        port: Some(port),
        peer_host: None,
        peer_port: None,
        db: db.to_string(),
        user: user.to_string(),
        password: None,
        password_env: None,
        password_command: None,
        sslmode: Some("prefer".to_string()),
        sslrootcert: None,
        sslcert: None,
        sslkey: None,
        subscription_tls: None,
        external: false,
        donor: None,
        merge_rows: false,
    }
}

fn table<'a>(catalog: &'a NodeCatalog, name: &str) -> &'a pgconverge_model::catalog::TableCatalog {
    catalog
        .tables
        .get(&QualifiedName::new("public", name))
        .unwrap_or_else(|| panic!("table public.{name} in snapshot"))
}

/// A conninfo for `CREATE SUBSCRIPTION … CONNECTION`, as an SQL literal. The literal is a
/// standard one with its quotes doubled, spelled out here rather than by `quote_literal`
/// (which writes an `E''` literal for a value holding a backslash), because that is the form
/// redaction must see through.
fn subscription_connection_literal() -> String {
    let conninfo = format!(
        "host=127.0.0.1 port=1 dbname=nowhere user=nobody password={}",
        quote_conninfo_value(SUBSCRIPTION_PASSWORD)
    );
    format!("'{}'", conninfo.replace('\'', "''"))
}

fn schema_sql() -> String {
    format!(
        r#"
CREATE SCHEMA _pgconverge;
CREATE SCHEMA outside_scope;
CREATE TABLE public.accounts (
    tenant int NOT NULL,
    id bigint NOT NULL,
    dropped_later text,
    email varchar(200) NOT NULL,
    balance numeric(12,2) DEFAULT 0,
    created timestamptz NOT NULL DEFAULT now(),
    doubled int GENERATED ALWAYS AS (tenant * 2) STORED,
    PRIMARY KEY (id, tenant),
    CONSTRAINT accounts_email_key UNIQUE (email),
    CONSTRAINT accounts_balance_check CHECK (balance >= 0)
);
ALTER TABLE public.accounts DROP COLUMN dropped_later;
CREATE TABLE public.orders (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant int,
    account bigint,
    note text,
    FOREIGN KEY (account, tenant) REFERENCES public.accounts (id, tenant) ON DELETE CASCADE
);
CREATE INDEX orders_note_idx ON public.orders (note);
CREATE UNIQUE INDEX orders_lower_note_idx ON public.orders (lower(note), tenant) INCLUDE (account);
ALTER TABLE public.orders REPLICA IDENTITY FULL;
CREATE TABLE outside_scope.hidden (id int PRIMARY KEY);
CREATE FUNCTION _pgconverge.orders_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NEW;
END
$$;
CREATE TRIGGER orders_touch BEFORE INSERT OR UPDATE ON public.orders
    FOR EACH ROW EXECUTE FUNCTION _pgconverge.orders_touch();
ALTER TABLE public.orders ENABLE REPLICA TRIGGER orders_touch;
CREATE FUNCTION _pgconverge.label(n int, prefix text DEFAULT 'x', OUT label text)
    LANGUAGE sql AS $$ SELECT prefix || n $$;
CREATE FUNCTION _pgconverge.pair(OUT a int, OUT b int) LANGUAGE sql AS $$ SELECT 1, 2 $$;
CREATE AGGREGATE _pgconverge.total(int) (sfunc = int4pl, stype = int);
CREATE PROCEDURE _pgconverge.noop() LANGUAGE sql AS $$ SELECT 1 $$;
INSERT INTO public.accounts (tenant, id, email) VALUES (1, 1, 'a@x'), (1, 2, 'b@x'), (2, 1, 'c@x');
ANALYZE public.accounts;
CREATE PUBLICATION pgc_n1 FOR TABLE public.orders, public.accounts
    WITH (publish = 'insert, update, delete');
CREATE SUBSCRIPTION pgc_n1_from_n2 CONNECTION {connection} PUBLICATION pgc_n2, pgc_extra
    WITH (connect = false, enabled = false, slot_name = NONE, origin = none);
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET work_mem = %L', current_database(), '8MB');
END $$;
"#,
        connection = subscription_connection_literal()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_is_idempotent_and_holds_every_kind_of_object_but_no_password() {
    let cluster = TestCluster::start(1);
    let node = &cluster.nodes[0];
    let client = cluster.client(0).await;
    client
        .batch_execute(&schema_sql())
        .await
        .expect("schema created");
    // Not in the batch above: a slot cannot be created in a transaction that wrote.
    client
        .batch_execute("SELECT pg_create_logical_replication_slot('pgc_test_slot', 'pgoutput')")
        .await
        .expect("slot created");

    let catalog = introspect(&client, &scope()).await.expect("introspection");

    assert!(
        catalog.server_version_num >= 160000,
        "{}",
        catalog.server_version_num
    );
    assert!(!catalog.server_version.is_empty());
    for setting in [
        "max_logical_replication_workers",
        "max_replication_slots",
        "max_sync_workers_per_subscription",
        "max_wal_senders",
        "max_worker_processes",
    ] {
        assert!(
            catalog.settings.contains_key(setting),
            "{setting} in {:?}",
            catalog.settings
        );
    }
    assert_eq!(
        catalog.settings.get("wal_level").map(String::as_str),
        Some("logical")
    );
    assert_eq!(
        catalog
            .database_settings
            .get("work_mem")
            .map(String::as_str),
        Some("8MB")
    );

    let superuser: bool = client
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .expect("role row")
        .get(0);
    assert_eq!(catalog.role.name, node.user);
    assert_eq!(catalog.role.superuser, superuser);
    assert!(
        superuser,
        "the test role is a superuser: it reads subconninfo"
    );
    assert!(
        catalog.role.create_subscription,
        "the test role created a subscription"
    );

    assert!(catalog.schemas.contains(&"_pgconverge".to_string()));
    assert!(catalog.schemas.contains(&"public".to_string()));
    assert!(catalog.schemas.contains(&"outside_scope".to_string()));
    assert!(catalog
        .schemas
        .iter()
        .all(|s| !s.starts_with("pg_") && s != "information_schema"));

    // Only the scope's tables.
    let table_names: Vec<String> = catalog.tables.keys().map(|name| name.to_string()).collect();
    assert_eq!(table_names, ["public.accounts", "public.orders"]);

    let accounts = table(&catalog, "accounts");
    let columns: Vec<(&str, &str, bool, Option<&str>)> = accounts
        .columns
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.data_type.as_str(),
                c.not_null,
                c.default.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("tenant", "integer", true, None),
            ("id", "bigint", true, None),
            ("email", "character varying(200)", true, None),
            ("balance", "numeric(12,2)", false, Some("0")),
            ("created", "timestamp with time zone", true, Some("now()")),
            ("doubled", "integer", false, None),
        ]
    );
    let constraints: Vec<(&str, ConstraintKind, Vec<&str>)> = accounts
        .constraints
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.kind,
                c.columns.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        constraints,
        [
            (
                "accounts_balance_check",
                ConstraintKind::Check,
                vec!["balance"]
            ),
            ("accounts_email_key", ConstraintKind::Unique, vec!["email"]),
            (
                "accounts_pkey",
                ConstraintKind::PrimaryKey,
                vec!["id", "tenant"]
            ),
        ]
    );
    let primary_key = &accounts.constraints[2];
    assert_eq!(primary_key.definition, "PRIMARY KEY (id, tenant)");
    assert_eq!(primary_key.references, None);
    assert!(
        accounts.indexes.is_empty(),
        "constraint indexes are not listed: {:?}",
        accounts.indexes
    );
    assert_eq!(accounts.replica_identity, "d");
    assert!(accounts.triggers.is_empty());
    assert_eq!(accounts.estimated_rows, 3);

    let orders = table(&catalog, "orders");
    assert_eq!(
        orders.column("id").and_then(|c| c.default.as_deref()),
        Some("gen_random_uuid()")
    );
    let foreign_key = orders
        .constraints
        .iter()
        .find(|c| c.kind == ConstraintKind::ForeignKey)
        .expect("foreign key");
    assert_eq!(foreign_key.name, "orders_account_tenant_fkey");
    assert_eq!(foreign_key.columns, ["account", "tenant"]);
    assert_eq!(
        foreign_key.references,
        Some((
            QualifiedName::new("public", "accounts"),
            vec!["id".to_string(), "tenant".to_string()]
        ))
    );
    // Printed with an empty search_path: the referenced table is schema-qualified.
    assert_eq!(
        foreign_key.definition,
        "FOREIGN KEY (account, tenant) REFERENCES public.accounts(id, tenant) ON DELETE CASCADE"
    );
    let indexes: Vec<(&str, Vec<&str>, bool)> = orders
        .indexes
        .iter()
        .map(|i| {
            (
                i.name.as_str(),
                i.columns.iter().map(String::as_str).collect(),
                i.unique,
            )
        })
        .collect();
    assert_eq!(
        indexes,
        [
            ("orders_lower_note_idx", vec!["lower(note)", "tenant"], true),
            ("orders_note_idx", vec!["note"], false),
        ]
    );
    assert_eq!(
        orders.indexes[1].definition,
        "CREATE INDEX orders_note_idx ON public.orders USING btree (note)"
    );
    assert_eq!(orders.replica_identity, "f");
    assert_eq!(orders.estimated_rows, -1, "never analysed");
    assert_eq!(orders.triggers.len(), 1);
    let trigger = &orders.triggers[0];
    assert_eq!(trigger.name, "orders_touch");
    assert_eq!(
        trigger.function,
        QualifiedName::new("_pgconverge", "orders_touch")
    );
    assert_eq!(trigger.enabled, "R");
    assert!(trigger
        .definition
        .starts_with("CREATE TRIGGER orders_touch BEFORE INSERT OR UPDATE"));

    // The aggregate and the procedure are skipped; a function's body is read as stored.
    let function_names: Vec<String> = catalog.functions.keys().map(|n| n.to_string()).collect();
    assert_eq!(
        function_names,
        [
            "_pgconverge.label",
            "_pgconverge.orders_touch",
            "_pgconverge.pair"
        ]
    );
    let function = &catalog.functions[&QualifiedName::new("_pgconverge", "orders_touch")];
    assert_eq!(function.definition, "\nBEGIN\n    RETURN NEW;\nEND\n");
    assert_eq!(function.identity_arguments, "");
    // sha256 of the body as stored, computed by the server.
    assert_eq!(
        function.body_sha256,
        "8aed189ecdb86e93c2a132069c1948c38ac6418010d1797f469ec8f638701ef3"
    );
    // No comment, so no recorded fingerprint.
    assert_eq!(function.fingerprint, "");
    let label = &catalog.functions[&QualifiedName::new("_pgconverge", "label")];
    assert_eq!(label.definition, " SELECT prefix || n ");
    assert_eq!(
        label.identity_arguments,
        "n integer, prefix text, OUT label text"
    );
    // Output arguments are part of the identity as the server prints it, even alone.
    let pair = &catalog.functions[&QualifiedName::new("_pgconverge", "pair")];
    assert_eq!(pair.identity_arguments, "OUT a integer, OUT b integer");

    // A body is not read when the function carries the fingerprint it is expected to have,
    // naming its live catalog row; a function replaced since, or carrying another
    // fingerprint, is read.
    let xmin = |function: &'static str| {
        let client = &client;
        async move {
            let row = client
                .query_one(
                    "SELECT xmin::text FROM pg_proc WHERE oid = $1::text::regprocedure",
                    &[&function],
                )
                .await
                .expect("xmin read");
            row.get::<_, String>(0)
        }
    };
    let touch_xmin = xmin("_pgconverge.orders_touch()").await;
    let pair_xmin = xmin("_pgconverge.pair()").await;
    client
        .batch_execute(&format!(
            "COMMENT ON FUNCTION _pgconverge.orders_touch() IS 'pgconverge:fp-touch:{touch_xmin}';
             COMMENT ON FUNCTION _pgconverge.label(int, text) IS 'pgconverge:fp-label:1';
             COMMENT ON FUNCTION _pgconverge.pair() IS 'pgconverge:fp-pair:{pair_xmin}';"
        ))
        .await
        .expect("comments set");
    let mut expecting = scope();
    for (name, fingerprint) in [
        ("orders_touch", "fp-touch"),
        ("label", "fp-label"),
        ("pair", "fp-other"),
    ] {
        expecting
            .expected_function_fingerprints
            .insert(QualifiedName::new("_pgconverge", name), fingerprint.into());
    }
    let expected = introspect(&client, &expecting)
        .await
        .expect("introspection");
    let read = |name: &str| &expected.functions[&QualifiedName::new("_pgconverge", name)];
    assert_eq!(read("orders_touch").definition, "");
    assert_eq!(read("orders_touch").body_sha256, "");
    assert_eq!(read("orders_touch").fingerprint, "fp-touch");
    // The comment names another row than the live one: as if replaced after it was set.
    assert_eq!(read("label").definition, " SELECT prefix || n ");
    assert_eq!(read("label").fingerprint, "");
    // A valid comment with another fingerprint than expected.
    assert_eq!(read("pair").definition, " SELECT 1, 2 ");
    assert_eq!(read("pair").fingerprint, "fp-pair");
    client
        .batch_execute(
            "COMMENT ON FUNCTION _pgconverge.orders_touch() IS NULL;
             COMMENT ON FUNCTION _pgconverge.label(int, text) IS NULL;
             COMMENT ON FUNCTION _pgconverge.pair() IS NULL;",
        )
        .await
        .expect("comments removed");

    let publication = &catalog.publications["pgc_n1"];
    assert!(!publication.all_tables);
    assert_eq!(publication.publish, ["insert", "update", "delete"]);
    assert_eq!(
        publication.tables,
        [
            QualifiedName::new("public", "accounts"),
            QualifiedName::new("public", "orders")
        ]
    );

    let subscription = &catalog.subscriptions["pgc_n1_from_n2"];
    assert_eq!(
        subscription.conninfo_redacted,
        "host=127.0.0.1 port=1 dbname=nowhere user=nobody password=********"
    );
    assert_eq!(subscription.conninfo_sha256.len(), 64);
    assert_eq!(subscription.publications, ["pgc_extra", "pgc_n2"]);
    assert!(!subscription.enabled);
    assert_eq!(subscription.origin, "none");
    assert_eq!(subscription.slot_name, None);
    assert_eq!(subscription.owner, node.user);

    let slot = &catalog.slots["pgc_test_slot"];
    assert_eq!(slot.plugin.as_deref(), Some("pgoutput"));
    assert_eq!(slot.slot_type, "logical");
    assert_eq!(slot.database.as_deref(), Some(node.db.as_str()));
    assert!(!slot.active);
    assert!(slot.confirmed_flush_lsn.is_some());

    let serialized = serde_json::to_string(&catalog).expect("snapshot serialises");
    assert!(
        !serialized.contains(SUBSCRIPTION_PASSWORD),
        "password in snapshot"
    );
    assert!(
        !serialized.contains("s3cr3t"),
        "part of the password in snapshot"
    );

    let again = introspect(&client, &scope())
        .await
        .expect("second introspection");
    assert_eq!(
        catalog, again,
        "an unchanged database gives an equal snapshot"
    );

    client
        .batch_execute("ALTER TABLE public.orders ENABLE ALWAYS TRIGGER orders_touch")
        .await
        .expect("trigger altered");
    let changed = introspect(&client, &scope())
        .await
        .expect("third introspection");
    assert_eq!(table(&changed, "orders").triggers[0].enabled, "A");

    // A role that is not a superuser may not read subconninfo: the subscription is still
    // listed, its connection string left empty.
    client
        .batch_execute("CREATE ROLE reader LOGIN; GRANT pg_create_subscription TO reader")
        .await
        .expect("reader role");
    let reader_node = node_config(&node.name, node.port, &node.db, "reader");
    let reader = connect(&reader_node, None).await.expect("reader connects");
    let seen_by_reader = introspect(&reader, &scope())
        .await
        .expect("reader introspection");
    assert_eq!(seen_by_reader.role.name, "reader");
    assert!(!seen_by_reader.role.superuser);
    assert!(!seen_by_reader.role.replication);
    assert!(
        seen_by_reader.role.create_subscription,
        "member of pg_create_subscription"
    );
    let hidden = &seen_by_reader.subscriptions["pgc_n1_from_n2"];
    assert_eq!(hidden.conninfo_redacted, "");
    assert_eq!(hidden.conninfo_sha256, "");
    assert_eq!(hidden.publications, subscription.publications);
    // Whether a table holds rows needs SELECT on it: unknown to the reader, known to the
    // owner; everything else reads the same by any role.
    assert!(seen_by_reader.tables.values().all(|t| t.has_rows.is_none()));
    assert!(changed.tables.values().all(|t| t.has_rows.is_some()));
    let without_rows =
        |tables: &std::collections::BTreeMap<_, pgconverge_model::catalog::TableCatalog>| {
            let mut tables = tables.clone();
            tables.values_mut().for_each(|t| t.has_rows = None);
            tables
        };
    assert_eq!(
        without_rows(&seen_by_reader.tables),
        without_rows(&changed.tables),
        "tables read the same by any role"
    );

    client
        .batch_execute("SELECT pg_drop_replication_slot('pgc_test_slot')")
        .await
        .expect("slot dropped");
}

/// Index definitions of plain btree indexes are printed without `pg_get_indexdef`; on every
/// shape here they must equal what the server prints, and the others come from the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_definitions_equal_pg_get_indexdef() {
    let cluster = TestCluster::start(1);
    let client = cluster.client(0).await;
    client
        .batch_execute(
            r#"
CREATE TYPE public.mood AS ENUM ('sad', 'happy');
CREATE DOMAIN public.positive AS int CHECK (VALUE > 0);
CREATE TABLE public."Mixed Case" (
    id bigint PRIMARY KEY,
    "select" text,
    "user" int,
    "quote""d" text,
    "Upper" varchar(20),
    plain_text text,
    at timestamptz,
    amount numeric(10,2),
    flag boolean,
    uid uuid,
    tags text[],
    doc jsonb,
    mood public.mood,
    small public.positive,
    letter "char"
);
CREATE INDEX "Mixed Case_select_idx" ON public."Mixed Case" ("select");
CREATE INDEX mixed_user_idx ON public."Mixed Case" ("user", "quote""d");
CREATE UNIQUE INDEX mixed_unique_idx ON public."Mixed Case" (uid) INCLUDE ("user", flag);
CREATE INDEX mixed_varchar_idx ON public."Mixed Case" ("Upper");
CREATE INDEX mixed_collate_idx ON public."Mixed Case" (plain_text COLLATE "C");
CREATE INDEX mixed_desc_idx ON public."Mixed Case" (at DESC, amount NULLS FIRST);
CREATE INDEX mixed_pattern_idx ON public."Mixed Case" (plain_text text_pattern_ops);
CREATE INDEX mixed_partial_idx ON public."Mixed Case" (amount) WHERE flag;
CREATE INDEX mixed_expression_idx ON public."Mixed Case" (lower(plain_text), id);
CREATE INDEX mixed_hash_idx ON public."Mixed Case" USING hash (plain_text);
CREATE INDEX mixed_gin_idx ON public."Mixed Case" USING gin (doc);
CREATE INDEX mixed_array_idx ON public."Mixed Case" (tags);
CREATE INDEX mixed_enum_idx ON public."Mixed Case" (mood);
CREATE INDEX mixed_domain_idx ON public."Mixed Case" (small);
CREATE INDEX mixed_char_idx ON public."Mixed Case" (letter, flag, at, amount);
CREATE INDEX mixed_fillfactor_idx ON public."Mixed Case" (id) WITH (fillfactor = 70);
CREATE UNIQUE INDEX mixed_nulls_idx ON public."Mixed Case" ("user") NULLS NOT DISTINCT;
CREATE TABLE public.parted (id int, k int) PARTITION BY RANGE (k);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (10);
CREATE INDEX parted_k_idx ON public.parted (k);
"#,
        )
        .await
        .expect("indexes created");

    let catalog = introspect(&client, &scope()).await.expect("introspection");
    client
        .batch_execute("SET search_path = ''")
        .await
        .expect("search_path");
    let expected: std::collections::BTreeMap<String, String> = client
        .query(
            "SELECT c.relname::text, pg_catalog.pg_get_indexdef(c.oid)
             FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid IN ('public.\"Mixed Case\"'::pg_catalog.regclass,
                                  'public.parted'::pg_catalog.regclass)
               AND NOT i.indisprimary",
            &[],
        )
        .await
        .expect("server definitions")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let introspected: std::collections::BTreeMap<String, String> = catalog
        .tables
        .values()
        .flat_map(|table| table.indexes.iter())
        .map(|index| (index.name.clone(), index.definition.clone()))
        .collect();
    // A partition's indexes are its table's, built by PostgreSQL: the partition is a part of
    // its table, not a table of the snapshot.
    assert_eq!(introspected.len(), 18, "{introspected:#?}");
    assert_eq!(introspected, expected);

    let mixed = table(&catalog, "Mixed Case");
    let columns_of = |name: &str| {
        mixed
            .indexes
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.columns.clone())
            .unwrap_or_default()
    };
    assert_eq!(columns_of("mixed_user_idx"), ["user", "quote\"d"]);
    assert_eq!(
        columns_of("mixed_unique_idx"),
        ["uid"],
        "INCLUDE columns are not keys"
    );
    assert_eq!(
        columns_of("mixed_expression_idx"),
        ["lower(plain_text)", "id"]
    );

    // The parts the config states, and what of a definition it cannot.
    let index = |name: &str| {
        mixed
            .indexes
            .iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("index {name}"))
    };
    assert_eq!(index("mixed_unique_idx").include, ["user", "flag"]);
    assert_eq!(
        index("mixed_partial_idx").predicate.as_deref(),
        Some("flag")
    );
    assert!(index("mixed_expression_idx").expression_keys);
    assert!(!index("mixed_user_idx").expression_keys);
    assert_eq!(index("mixed_hash_idx").method, "hash");
    assert_eq!(index("mixed_gin_idx").method, "gin");
    assert_eq!(index("mixed_user_idx").method, "btree");
    for stated in [
        "mixed_user_idx",
        "mixed_varchar_idx",
        "mixed_partial_idx",
        "mixed_expression_idx",
        "mixed_hash_idx",
        "mixed_gin_idx",
        "mixed_array_idx",
        "mixed_enum_idx",
        "mixed_domain_idx",
        "mixed_char_idx",
    ] {
        assert_eq!(index(stated).unmodelled, None, "{stated}");
    }
    for (unstated, part) in [
        ("mixed_collate_idx", "collation"),
        ("mixed_desc_idx", "ordering"),
        ("mixed_pattern_idx", "operator class"),
        ("mixed_fillfactor_idx", "storage parameters"),
        ("mixed_nulls_idx", "NULLS NOT DISTINCT"),
    ] {
        let what = index(unstated).unmodelled.clone().unwrap_or_default();
        assert!(what.contains(part), "{unstated}: {what:?}");
    }
}

/// A stored generated column's expression and a foreign key's actions and deferrability land
/// in the snapshot as the server has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_and_foreign_key_rule_definitions_are_read() {
    let cluster = TestCluster::start(1);
    let client = cluster.client(0).await;
    client
        .batch_execute(
            "CREATE TABLE public.parents (region text, id bigint, PRIMARY KEY (region, id));
             CREATE TABLE public.lines (
                 id bigint PRIMARY KEY,
                 region text,
                 parent bigint,
                 price numeric,
                 quantity integer,
                 total numeric GENERATED ALWAYS AS (price * quantity) STORED,
                 FOREIGN KEY (region, parent) REFERENCES public.parents (region, id)
                     ON UPDATE CASCADE ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED);",
        )
        .await
        .expect("tables created");
    let catalog = introspect(&client, &scope()).await.expect("introspection");
    let lines = table(&catalog, "lines");
    let total = lines.column("total").expect("column total");
    assert_eq!(
        total.generated.as_deref(),
        Some("(price * (quantity)::numeric)")
    );
    assert_eq!(total.default, None);
    assert_eq!(
        lines.column("price").and_then(|c| c.generated.clone()),
        None
    );
    let fk = lines
        .constraints
        .iter()
        .find(|c| c.kind == ConstraintKind::ForeignKey)
        .expect("the foreign key");
    let rules = fk.foreign_key.clone().expect("foreign key rules");
    assert_eq!(
        (
            rules.on_update.as_str(),
            rules.on_delete.as_str(),
            rules.deferrable,
            rules.initially_deferred
        ),
        ("c", "n", true, true)
    );
    assert_eq!(introspect(&client, &scope()).await.expect("again"), catalog);
}

/// Plain key and foreign key definitions are printed without `pg_get_constraintdef`; on every
/// shape here they must equal what the server prints, and the others come from the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraint_definitions_equal_pg_get_constraintdef() {
    let cluster = TestCluster::start(1);
    let client = cluster.client(0).await;
    client
        .batch_execute(
            r#"
CREATE SCHEMA "Outside";
CREATE TABLE "Outside".target (id int PRIMARY KEY);
CREATE TABLE public."Parent Table" (
    "Id" int,
    "select" text,
    k int,
    PRIMARY KEY ("Id", "select"),
    CONSTRAINT parent_k_key UNIQUE (k),
    CONSTRAINT parent_k_select_key UNIQUE NULLS NOT DISTINCT ("select", k),
    CONSTRAINT parent_include_key UNIQUE (k, "Id") INCLUDE ("select"),
    CONSTRAINT parent_deferrable_key UNIQUE ("Id", k) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT parent_check CHECK (k > 0 AND "select" <> ''),
    CONSTRAINT parent_ranges EXCLUDE USING gist (int4range(k, k, '[]') WITH &&)
);
CREATE TABLE public.child (
    id bigint PRIMARY KEY,
    parent_id int,
    parent_select text,
    parent_k int,
    other int,
    self_ref bigint REFERENCES public.child (id) ON DELETE SET NULL,
    CONSTRAINT child_parent_fkey FOREIGN KEY (parent_id, parent_select)
        REFERENCES public."Parent Table" ("Id", "select") ON UPDATE CASCADE ON DELETE RESTRICT,
    CONSTRAINT child_k_fkey FOREIGN KEY (parent_k) REFERENCES public."Parent Table" (k)
        ON DELETE SET DEFAULT,
    CONSTRAINT child_full_fkey FOREIGN KEY (parent_id, parent_select)
        REFERENCES public."Parent Table" ("Id", "select") MATCH FULL,
    CONSTRAINT child_deferred_fkey FOREIGN KEY (parent_k) REFERENCES public."Parent Table" (k)
        DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT child_outside_fkey FOREIGN KEY (other) REFERENCES "Outside".target (id),
    CONSTRAINT child_set_null_cols_fkey FOREIGN KEY (parent_id, parent_select)
        REFERENCES public."Parent Table" ("Id", "select") ON DELETE SET NULL (parent_select)
);
ALTER TABLE public.child ADD CONSTRAINT child_not_valid_fkey FOREIGN KEY (parent_k)
    REFERENCES public."Parent Table" (k) NOT VALID;
CREATE TABLE public.parted (id int, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (10);
CREATE TABLE public.parted_child (id int, k int, FOREIGN KEY (id, k) REFERENCES public.parted);
"#,
        )
        .await
        .expect("constraints created");
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .expect("version")
        .get(0);
    if version >= 180000 {
        client
            .batch_execute(
                "ALTER TABLE public.child ADD CONSTRAINT child_not_enforced_fkey \
                 FOREIGN KEY (parent_k) REFERENCES public.\"Parent Table\" (k) NOT ENFORCED",
            )
            .await
            .expect("not enforced foreign key");
    }

    let catalog = introspect(&client, &scope()).await.expect("introspection");
    client
        .batch_execute("SET search_path = ''")
        .await
        .expect("search_path");
    let expected: std::collections::BTreeMap<String, String> = client
        .query(
            "SELECT k.conname::text, pg_catalog.pg_get_constraintdef(k.oid)
             FROM pg_catalog.pg_constraint k
             JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
             WHERE c.relnamespace = 'public'::pg_catalog.regnamespace
               AND NOT c.relispartition AND k.conparentid = 0
               AND k.contype IN ('p', 'u', 'f', 'c', 'x')",
            &[],
        )
        .await
        .expect("server definitions")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let introspected: std::collections::BTreeMap<String, String> = catalog
        .tables
        .values()
        .flat_map(|table| table.constraints.iter())
        .map(|constraint| (constraint.name.clone(), constraint.definition.clone()))
        .collect();
    // Partitions' keys are their table's, and so are the foreign keys PostgreSQL adds for
    // each partition of a referenced partitioned table.
    let expected_count = if version >= 180000 { 19 } else { 18 };
    assert_eq!(introspected.len(), expected_count, "{introspected:#?}");
    assert_eq!(introspected, expected);

    let child = table(&catalog, "child");
    let outside = child
        .constraints
        .iter()
        .find(|c| c.name == "child_outside_fkey")
        .expect("foreign key out of scope");
    assert_eq!(
        outside.references,
        Some((
            QualifiedName::new("Outside", "target"),
            vec!["id".to_string()]
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_introspected_concurrently_and_failures_name_the_node() {
    let cluster = TestCluster::start(2);
    let mut nodes: Vec<(NodeConfig, Option<pgconverge_postgres::Secret>)> = cluster
        .nodes
        .iter()
        .map(|n| (node_config(&n.name, n.port, &n.db, &n.user), None))
        .collect();
    // Nothing listens on port 1.
    nodes.push((node_config("unreachable", 1, "postgres", "postgres"), None));

    let results = introspect_nodes(&nodes, &scope()).await;
    assert_eq!(results.len(), 3);
    for result in &results[..2] {
        let catalog = result.as_ref().expect("reachable node introspected");
        assert!(catalog.server_version_num >= 160000);
    }
    let error = results[2].as_ref().expect_err("unreachable node fails");
    assert!(matches!(error, NodeError::Connect(_)), "{error}");
    assert_eq!(error.node(), "unreachable");
    let message = error.to_string();
    assert!(
        message.contains("unreachable") && message.contains("127.0.0.1:1"),
        "{message}"
    );

    let first = &cluster.nodes[0];
    let mut disabled = node_config(&first.name, first.port, &first.db, &first.user);
    disabled.sslmode = Some("disable".to_string());
    let client = connect(&disabled, None)
        .await
        .expect("connects without TLS");
    let application: String = client
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .expect("setting")
        .get(0);
    assert_eq!(application, "pgconverge");

    // Verification without a CA to verify against is refused before any packet is sent.
    let mut without_ca = disabled.clone();
    without_ca.sslmode = Some("verify-full".to_string());
    let error = connect(&without_ca, None)
        .await
        .expect_err("verify-full without sslrootcert refused");
    assert!(error.to_string().contains("sslrootcert"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_run_in_one_transaction_or_alone_and_errors_are_redacted() {
    let cluster = TestCluster::start(1);
    let mut client = cluster.client(0).await;
    pgconverge_postgres::set_session_defaults(&client)
        .await
        .expect("session defaults");
    let lock_timeout: String = client
        .query_one("SHOW lock_timeout", &[])
        .await
        .expect("setting")
        .get(0);
    assert_eq!(lock_timeout, "10s");

    // A failure rolls the whole transaction back and names the statement.
    let statements = vec![
        "CREATE TABLE public.kept_only_if_all_succeed (id int PRIMARY KEY)".to_string(),
        "CREATE TABLE public.kept_only_if_all_succeed (id int PRIMARY KEY)".to_string(),
    ];
    let error = execute_statements(&mut client, &statements, true)
        .await
        .expect_err("duplicate table");
    assert_eq!(error.statement_index, Some(1));
    assert_eq!(error.sqlstate(), Some("42P07"));
    assert!(error.to_string().contains("statement 2 failed"), "{error}");
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('public.kept_only_if_all_succeed') IS NOT NULL",
            &[],
        )
        .await
        .expect("lookup")
        .get(0);
    assert!(!exists, "the first statement was rolled back");

    // Outside a transaction: CREATE INDEX CONCURRENTLY is accepted; earlier statements stay.
    let statements = vec![
        "CREATE TABLE public.items (id int PRIMARY KEY, label text)".to_string(),
        "CREATE INDEX CONCURRENTLY items_label_idx ON public.items (label)".to_string(),
    ];
    execute_statements(&mut client, &statements, false)
        .await
        .expect("concurrent index");
    let catalog = introspect(&client, &scope()).await.expect("introspection");
    assert_eq!(table(&catalog, "items").indexes[0].name, "items_label_idx");

    // The same statement inside a transaction is refused by the server.
    let statements =
        vec!["CREATE INDEX CONCURRENTLY items_id_label ON public.items (id, label)".to_string()];
    let error = execute_statements(&mut client, &statements, true)
        .await
        .expect_err("concurrently inside a transaction");
    assert_eq!(error.sqlstate(), Some("25001"));

    // A failing statement carrying a password: the error must not show it.
    let statements = vec![format!(
        "CREATE SUBSCRIPTION broken CONNECTION {} PUBLICATION p WITH (no_such_option = true)",
        subscription_connection_literal()
    )];
    let error = execute_statements(&mut client, &statements, false)
        .await
        .expect_err("bad option");
    let text = format!("{error} {error:?}");
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(error.sqlstate().is_some());

    // Advisory locks are polled, not waited for.
    let other = cluster.client(0).await;
    assert!(try_advisory_lock(&client, 4242).await.expect("lock"));
    assert!(!try_advisory_lock(&other, 4242).await.expect("lock attempt"));
    assert!(advisory_unlock(&client, 4242).await.expect("unlock"));
    assert!(try_advisory_lock(&other, 4242)
        .await
        .expect("lock after release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_sequences_land_with_their_position_and_the_values_of_each_block() {
    let cluster = TestCluster::start(1);
    let client = cluster.client(0).await;
    let block = 1i64 << 48;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA _pgconverge;
             CREATE TABLE _pgconverge.key_slot (node text PRIMARY KEY, slot int8 NOT NULL UNIQUE);
             INSERT INTO _pgconverge.key_slot VALUES ('n1', 1), ('gone', 2);
             CREATE SEQUENCE public.shared;
             CREATE TABLE public.keyed (
                 id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 serial_no bigserial,
                 ref bigint DEFAULT nextval('public.shared'),
                 plain int);
             INSERT INTO public.keyed (plain) VALUES (1), (2), (3);
             INSERT INTO public.keyed (id, ref) OVERRIDING SYSTEM VALUE
                 VALUES ({}, 4), ({}, 5), ({}, 6);
             ALTER SEQUENCE public.keyed_serial_no_seq RESTART WITH 40;",
            block + 7,
            2 * block + 9,
            3 * block
        ))
        .await
        .expect("schema created");

    let catalog = introspect(&client, &scope()).await.expect("introspection");
    assert_eq!(
        catalog.key_slots,
        std::collections::BTreeMap::from([("gone".to_string(), 2), ("n1".to_string(), 1)])
    );
    let keyed = table(&catalog, "keyed");
    assert_eq!(
        keyed.column("id").and_then(|c| c.identity.as_deref()),
        Some("a")
    );
    assert_eq!(
        keyed.column("plain").and_then(|c| c.identity.as_deref()),
        None
    );
    let sequences: Vec<(&str, &str, bool, i64)> = keyed
        .key_sequences
        .iter()
        .map(|s| {
            (
                s.column.as_str(),
                s.sequence.name.as_str(),
                s.owned,
                s.next_value,
            )
        })
        .collect();
    // Six rows: the identity handed out 1..3 (the last three carried their own ids); the
    // serial was restarted and has not been called since; `shared` was called three times.
    assert_eq!(
        sequences,
        [
            ("id", "keyed_id_seq", true, 4),
            ("ref", "shared", false, 4),
            ("serial_no", "keyed_serial_no_seq", true, 40),
        ]
    );
    let id = &keyed.key_sequences[0];
    assert_eq!((id.min_value, id.increment, id.start_value), (1, 1, 1));
    // Per recorded slot, the greatest value of its block: slot 3's value is no one's.
    assert_eq!(
        id.block_maxima,
        std::collections::BTreeMap::from([(1, block + 7), (2, 2 * block + 9)])
    );
    let unchanged = introspect(&client, &scope()).await.expect("introspection");
    assert_eq!(unchanged, catalog);
}

/// A partitioned table lands with its key, its partitions' bounds as PostgreSQL prints them
/// and its partitions' own triggers; partitions are parts of it, not tables of the snapshot,
/// and its estimates are its partitions'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_tables_land_with_their_key_and_partitions() {
    let cluster = TestCluster::start(1);
    let client = cluster.client(0).await;
    client
        .batch_execute(
            r#"
CREATE TABLE public.events (id bigint, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE public.events_2026 PARTITION OF public.events
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.events_rest PARTITION OF public.events DEFAULT;
CREATE TABLE public."By Region" ("Region" text, id int, PRIMARY KEY ("Region", id))
    PARTITION BY LIST ("Region");
CREATE TABLE public.by_region_eu PARTITION OF public."By Region" FOR VALUES IN ('eu', 'uk');
CREATE TABLE public.by_region_sub PARTITION OF public."By Region" FOR VALUES IN ('us')
    PARTITION BY HASH (id);
CREATE FUNCTION public.no_truncate() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
CREATE TRIGGER _pgc_95_truncate BEFORE TRUNCATE ON public.events_2026
    FOR EACH STATEMENT EXECUTE FUNCTION public.no_truncate();
CREATE TRIGGER row_trigger AFTER INSERT ON public.events
    FOR EACH ROW EXECUTE FUNCTION public.no_truncate();
INSERT INTO public.events SELECT g, DATE '2026-01-01' + g % 700 FROM generate_series(1, 1000) g;
ANALYZE public.events;
"#,
        )
        .await
        .expect("partitioned tables created");
    let catalog = introspect(&client, &scope()).await.expect("introspection");
    for partition in [
        "events_2026",
        "events_rest",
        "by_region_eu",
        "by_region_sub",
    ] {
        assert!(
            !catalog
                .tables
                .contains_key(&QualifiedName::new("public", partition)),
            "{partition} is a part of its table"
        );
    }
    let events = table(&catalog, "events");
    assert!(events.partitioned);
    assert_eq!(events.partition_key.as_deref(), Some("RANGE (day)"));
    let parts: Vec<(&str, &str, &[String])> = events
        .partitions
        .iter()
        .map(|p| (p.name.as_str(), p.bound.as_str(), p.triggers.as_slice()))
        .collect();
    assert_eq!(
        parts,
        [
            (
                "events_2026",
                "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
                &["_pgc_95_truncate".to_string()][..]
            ),
            ("events_rest", "DEFAULT", &[][..]),
        ],
        "the row trigger's clones are the table's, not the partitions' own"
    );
    assert_eq!(events.estimated_rows, 1000, "the partitions' rows");
    assert!(events.estimated_bytes > 0);
    assert_eq!(events.triggers.len(), 1);

    let by_region = table(&catalog, "By Region");
    assert_eq!(
        by_region.partition_key.as_deref(),
        Some("LIST (\"Region\")")
    );
    let sub = &by_region.partitions[1];
    assert_eq!(
        (sub.name.as_str(), sub.bound.as_str(), sub.partitioned),
        ("by_region_sub", "FOR VALUES IN ('us')", true)
    );
    assert_eq!(by_region.partitions[0].bound, "FOR VALUES IN ('eu', 'uk')");

    let again = introspect(&client, &scope()).await.expect("introspection");
    assert_eq!(
        again.tables, catalog.tables,
        "an unchanged database, an equal snapshot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspect_enum_and_domain_types_and_checks_as_postgres_has_them() {
    use pgconverge_model::catalog::{CheckCatalog, DomainCatalog, TypeCatalog};
    let cluster = TestCluster::start(1);
    let client = cluster.client(0).await;
    client
        .batch_execute(
            "CREATE TYPE public.mood AS ENUM ('sad', 'happy');
             ALTER TYPE public.mood ADD VALUE 'ok' BEFORE 'happy';
             CREATE DOMAIN public.qty AS integer NOT NULL DEFAULT 1
                 CONSTRAINT qty_positive CHECK (VALUE > 0);
             ALTER DOMAIN public.qty ADD CONSTRAINT qty_cap CHECK (VALUE < 1000) NOT VALID;
             CREATE SCHEMA hidden;
             CREATE TYPE hidden.other AS ENUM ('x');
             CREATE TABLE public.items (id bigint PRIMARY KEY, mood public.mood,
                 qty public.qty, price numeric CHECK (price >= 0));",
        )
        .await
        .expect("schema created");
    let catalog = introspect(&client, &scope()).await.expect("introspection");
    assert_eq!(
        catalog.types.get(&QualifiedName::new("public", "mood")),
        Some(&TypeCatalog::Enum {
            labels: vec!["sad".into(), "ok".into(), "happy".into()]
        })
    );
    assert_eq!(
        catalog.types.get(&QualifiedName::new("public", "qty")),
        Some(&TypeCatalog::Domain(DomainCatalog {
            base_type: "integer".into(),
            not_null: true,
            default: Some("1".into()),
            checks: vec![
                CheckCatalog {
                    name: "qty_cap".into(),
                    definition: "CHECK ((VALUE < 1000)) NOT VALID".into(),
                },
                CheckCatalog {
                    name: "qty_positive".into(),
                    definition: "CHECK ((VALUE > 0))".into(),
                },
            ],
        }))
    );
    assert_eq!(catalog.types.len(), 2, "out of scope: {:?}", catalog.types);
    let items = table(&catalog, "items");
    let types: Vec<&str> = items.columns.iter().map(|c| c.data_type.as_str()).collect();
    assert_eq!(types, ["bigint", "public.mood", "public.qty", "numeric"]);
    let check = items
        .constraints
        .iter()
        .find(|c| c.kind == ConstraintKind::Check)
        .expect("the check");
    assert_eq!(
        (check.name.as_str(), check.definition.as_str()),
        ("items_price_check", "CHECK ((price >= (0)::numeric))")
    );
    let again = introspect(&client, &scope()).await.expect("introspection");
    assert_eq!(again, catalog);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspect_outside_objects_with_their_definitions_and_sql_files_with_their_fingerprints() {
    let cluster = TestCluster::start(1);
    let client = cluster.client(0).await;
    client
        .batch_execute(
            "CREATE ROLE outside_reader;
             CREATE SCHEMA _pgconverge;
             CREATE TABLE _pgconverge.sql_files (name text PRIMARY KEY, sha256 text NOT NULL);
             INSERT INTO _pgconverge.sql_files VALUES ('sql/a.sql', 'abc');
             CREATE FUNCTION _pgconverge.internal() RETURNS int LANGUAGE sql AS 'SELECT 1';
             CREATE FUNCTION public.generated() RETURNS int LANGUAGE sql AS 'SELECT 1';
             COMMENT ON FUNCTION public.generated() IS 'pgconverge:abc:1';
             CREATE TABLE public.t (id int PRIMARY KEY, owner text);
             CREATE FUNCTION public.f(a int) RETURNS int LANGUAGE sql AS 'SELECT a';
             CREATE VIEW public.v WITH (security_barrier) AS SELECT id, public.f(id) FROM public.t;
             CREATE MATERIALIZED VIEW public.m AS SELECT count(*) AS n FROM public.v;
             CREATE INDEX m_n ON public.m (n);
             ALTER TABLE public.t ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
             CREATE POLICY p ON public.t AS RESTRICTIVE FOR UPDATE TO outside_reader
                 USING (owner = current_user) WITH CHECK (id > 0);
             GRANT SELECT, UPDATE ON public.t TO outside_reader WITH GRANT OPTION;
             REVOKE EXECUTE ON FUNCTION public.f(int) FROM PUBLIC;
             GRANT EXECUTE ON FUNCTION public.f(int) TO outside_reader;",
        )
        .await
        .expect("objects created");

    let catalog = introspect(&client, &scope()).await.expect("introspection");
    let outside = &catalog.outside;
    let routines: Vec<String> = outside
        .routines
        .iter()
        .map(|r| format!("{} {}({})", r.kind, r.name, r.identity_arguments))
        .collect();
    assert_eq!(routines, ["function public.f(a integer)"]);
    assert!(outside.routines[0]
        .definition
        .starts_with("CREATE OR REPLACE FUNCTION public.f(a integer)"));
    let views: Vec<(String, bool, Vec<String>, Vec<String>)> = outside
        .views
        .iter()
        .map(|v| {
            (
                v.name.to_string(),
                v.materialized,
                v.options.clone(),
                v.depends_on.iter().map(|d| d.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        views,
        [
            ("public.m".into(), true, vec![], vec!["public.v".into()]),
            (
                "public.v".into(),
                false,
                vec!["security_barrier=true".into()],
                vec!["public.t".into()]
            ),
        ]
    );
    assert_eq!(
        outside.views[0].indexes,
        ["CREATE INDEX m_n ON public.m USING btree (n)"]
    );
    assert!(outside.views[1].query.contains("public.f(id)"));
    let policy = &outside.policies[0];
    assert_eq!(
        (
            policy.name.as_str(),
            policy.permissive,
            policy.command.as_str(),
            policy.roles.clone(),
            policy.using.as_deref(),
            policy.with_check.as_deref()
        ),
        (
            "p",
            false,
            "UPDATE",
            vec!["outside_reader".to_string()],
            Some("(owner = CURRENT_USER)"),
            Some("(id > 0)")
        )
    );
    assert_eq!(
        outside
            .row_security
            .iter()
            .map(|r| (r.table.to_string(), r.enabled, r.forced))
            .collect::<Vec<_>>(),
        [("public.t".to_string(), true, true)]
    );
    let grants: Vec<String> = outside
        .grants
        .iter()
        .map(|g| {
            format!(
                "{} {}({}) {} {} {}",
                g.object_kind, g.name, g.arguments, g.grantee, g.privilege, g.grantable
            )
        })
        .collect();
    assert_eq!(
        grants,
        [
            "FUNCTION public.f(a integer) outside_reader EXECUTE false",
            // PostgreSQL 15+ grants USAGE on `public` to PUBLIC; the owner's own is left out.
            "SCHEMA .public()  USAGE false",
            "TABLE public.t() outside_reader SELECT true",
            "TABLE public.t() outside_reader UPDATE true",
        ]
    );
    assert!(outside.roles.contains(&"outside_reader".to_string()));
    assert_eq!(
        catalog.sql_files,
        std::collections::BTreeMap::from([("sql/a.sql".to_string(), "abc".to_string())])
    );
    let again = introspect(&client, &scope()).await.expect("introspection");
    assert_eq!(again, catalog);
}
