//! The conversion of introspected tables into table configs, and its report.

use super::*;
use crate::catalog::{
    ColumnCatalog, IndexCatalog, KeySequenceCatalog, PartitionCatalog, TriggerCatalog,
};
use crate::config::PartitionStrategy;

fn column(name: &str, data_type: &str, not_null: bool, default: Option<&str>) -> ColumnCatalog {
    ColumnCatalog {
        name: name.into(),
        data_type: data_type.into(),
        not_null,
        default: default.map(str::to_string),
        identity: None,
        generated: None,
    }
}

fn constraint(
    name: &str,
    kind: ConstraintKind,
    columns: &[&str],
    definition: &str,
) -> ConstraintCatalog {
    ConstraintCatalog {
        name: name.into(),
        kind,
        columns: columns.iter().map(|c| c.to_string()).collect(),
        definition: definition.into(),
        references: None,
        foreign_key: None,
    }
}

fn name(table: &str) -> QualifiedName {
    QualifiedName::new("public", table)
}

/// customers (bigserial key, unique email), orders (identity key, a foreign key, a CHECK,
/// a plain and a partial index, a trigger), a keyless log table.
fn shop() -> NodeCatalog {
    let mut customers = TableCatalog {
        columns: vec![
            column(
                "id",
                "bigint",
                true,
                Some("nextval('public.customers_id_seq'::regclass)"),
            ),
            column("email", "text", true, None),
            column("_pgc_version", "bigint", true, None),
        ],
        constraints: vec![
            constraint(
                "customers_pkey",
                ConstraintKind::PrimaryKey,
                &["id"],
                "PRIMARY KEY (id)",
            ),
            constraint(
                "customers_email_key",
                ConstraintKind::Unique,
                &["email"],
                "UNIQUE (email)",
            ),
        ],
        replica_identity: "d".into(),
        ..TableCatalog::default()
    };
    customers.key_sequences.push(KeySequenceCatalog {
        column: "id".into(),
        sequence: name("customers_id_seq"),
        owned: true,
        ..KeySequenceCatalog::default()
    });
    let mut id = column("id", "bigint", true, None);
    id.identity = Some("a".into());
    let mut fk = constraint(
        "orders_customer_fkey",
        ConstraintKind::ForeignKey,
        &["customer"],
        "FOREIGN KEY (customer) REFERENCES public.customers(id) ON DELETE CASCADE",
    );
    fk.references = Some((name("customers"), vec!["id".into()]));
    fk.foreign_key = Some(ForeignKeyRules {
        on_update: "a".into(),
        on_delete: "c".into(),
        ..ForeignKeyRules::default()
    });
    let mut on_update = constraint(
        "orders_other_fkey",
        ConstraintKind::ForeignKey,
        &["customer"],
        "FOREIGN KEY (customer) REFERENCES public.customers(id) ON UPDATE CASCADE DEFERRABLE",
    );
    on_update.references = Some((name("customers"), vec!["id".into()]));
    on_update.foreign_key = Some(ForeignKeyRules {
        on_update: "c".into(),
        on_delete: "a".into(),
        deferrable: true,
        initially_deferred: false,
    });
    let mut total = column("total", "numeric(12,2)", false, Some("0"));
    total.generated = None;
    let mut doubled = column("doubled", "numeric", false, None);
    doubled.generated = Some("(total * (2)::numeric)".into());
    let orders = TableCatalog {
        columns: vec![
            id,
            column("customer", "bigint", true, None),
            total,
            doubled,
        ],
        constraints: vec![
            constraint("orders_pkey", ConstraintKind::PrimaryKey, &["id"], "PRIMARY KEY (id)"),
            fk,
            on_update,
            constraint("orders_total_check", ConstraintKind::Check, &["total"], "CHECK ((total >= (0)::numeric))"),
        ],
        indexes: vec![
            IndexCatalog {
                name: "orders_customer_idx".into(),
                columns: vec!["customer".into()],
                unique: false,
                definition: "CREATE INDEX orders_customer_idx ON public.orders USING btree (customer)".into(),
                method: "btree".into(),
                expression_keys: false,
                include: Vec::new(),
                predicate: None,
                unmodelled: None,
            },
            IndexCatalog {
                name: "orders_big_idx".into(),
                columns: vec!["total".into()],
                unique: false,
                definition: "CREATE INDEX orders_big_idx ON public.orders USING btree (total) WHERE (total > (100)::numeric)".into(),
                method: "btree".into(),
                expression_keys: false,
                include: Vec::new(),
                predicate: Some("total > 100::numeric".into()),
                unmodelled: None,
            },
            IndexCatalog {
                name: "orders_lower_idx".into(),
                columns: vec!["customer".into(), "(total * 2::numeric)".into()],
                unique: false,
                definition: "CREATE INDEX orders_lower_idx ON public.orders USING gist (customer, ((total * (2)::numeric)))".into(),
                method: "gist".into(),
                expression_keys: true,
                include: vec!["doubled".into()],
                predicate: None,
                unmodelled: None,
            },
            IndexCatalog {
                name: "orders_desc_idx".into(),
                columns: vec!["total".into()],
                unique: false,
                definition: "CREATE INDEX orders_desc_idx ON public.orders USING btree (total DESC)".into(),
                method: "btree".into(),
                expression_keys: false,
                include: Vec::new(),
                predicate: None,
                unmodelled: Some("a key ordering".into()),
            },
        ],
        triggers: vec![
            TriggerCatalog {
                name: "audit".into(),
                function: name("audit"),
                enabled: "O".into(),
                definition: "CREATE TRIGGER audit AFTER INSERT ON public.orders FOR EACH ROW EXECUTE FUNCTION public.audit()".into(),
            },
            TriggerCatalog {
                name: "_pgc_10_stamp".into(),
                function: name("stamp"),
                enabled: "O".into(),
                definition: String::new(),
            },
        ],
        replica_identity: "d".into(),
        ..TableCatalog::default()
    };
    let log = TableCatalog {
        columns: vec![column("line", "text", false, None)],
        replica_identity: "d".into(),
        ..TableCatalog::default()
    };
    NodeCatalog {
        tables: BTreeMap::from([
            (name("customers"), customers),
            (name("orders"), orders),
            (name("log"), log),
        ]),
        ..NodeCatalog::default()
    }
}

#[test]
fn tables_come_in_as_the_config_describes_them() {
    let import = import_tables(&shop(), &[]);
    let names: Vec<&str> = import.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["customers", "orders"]);
    let customers = &import.tables[0];
    assert_eq!(
        customers.columns.len(),
        2,
        "pgconverge's own columns stay out"
    );
    assert_eq!(customers.columns[0].data_type, "bigserial");
    assert_eq!(customers.columns[0].default, None);
    assert_eq!(customers.unique, [["email".to_string()]]);
    let orders = &import.tables[1];
    assert_eq!(orders.columns[0].identity, Some(IdentityKind::Always));
    assert_eq!(orders.columns[2].default.as_deref(), Some("0"));
    assert!(orders.columns[2].nullable);
    assert_eq!(orders.primary_key, ["id"]);
    assert_eq!(
        orders.columns[3].generated.as_deref(),
        Some("(total * (2)::numeric)")
    );
    assert_eq!(orders.columns[3].default, None);
    assert_eq!(orders.foreign_keys.len(), 2);
    assert_eq!(orders.foreign_keys[0].references.table, "customers");
    assert_eq!(orders.foreign_keys[0].on_delete.as_deref(), Some("cascade"));
    assert_eq!(orders.foreign_keys[0].on_update, None);
    assert_eq!(orders.foreign_keys[1].on_update.as_deref(), Some("cascade"));
    assert!(orders.foreign_keys[1].deferrable && !orders.foreign_keys[1].initially_deferred);
    let names: Vec<_> = orders
        .indexes
        .iter()
        .map(|i| i.name.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["orders_customer_idx", "orders_big_idx", "orders_lower_idx"]
    );
    assert_eq!(
        orders.indexes[1].predicate.as_deref(),
        Some("total > 100::numeric")
    );
    assert_eq!(orders.indexes[1].columns, ["total"]);
    let gist = &orders.indexes[2];
    assert_eq!(gist.method.as_deref(), Some("gist"));
    assert!(gist.columns.is_empty());
    assert_eq!(gist.expressions, ["customer", "(total * 2::numeric)"]);
    assert_eq!(gist.include, ["doubled"]);
    assert_eq!(orders.indexes[0].method, None, "btree is the default");
    let desc = import
        .report
        .iter()
        .find(|r| r.object.starts_with("index orders_desc_idx"));
    assert!(
        desc.is_some_and(|r| r.reason.contains("a key ordering")),
        "{:?}",
        import.report
    );
}

#[test]
fn what_the_config_cannot_describe_is_reported() {
    let outside = [
        OutsideObject {
            kind: "view".into(),
            schema: "public".into(),
            name: "totals".into(),
            detail: String::new(),
        },
        OutsideObject {
            kind: "range type".into(),
            schema: "public".into(),
            name: "span".into(),
            detail: String::new(),
        },
        OutsideObject {
            kind: "generated column".into(),
            schema: "public".into(),
            name: "customers".into(),
            detail: "upper_email".into(),
        },
    ];
    let import = import_tables(&shop(), &outside);
    let objects: Vec<&str> = import.report.iter().map(|r| r.object.as_str()).collect();
    assert_eq!(
        objects,
        [
            "foreign key orders_customer_fkey on public.orders",
            "foreign key orders_other_fkey on public.orders",
            "index orders_desc_idx on public.orders",
            "range type public.span",
            "table public.customers",
            "table public.log",
            "trigger audit on public.orders",
            "view public.totals",
        ]
    );
    // With customers out, the foreign key to it cannot be in the config either.
    assert!(
        import.report[0].reason.contains("not imported"),
        "{}",
        import.report[0]
    );
    assert!(
        import.report[4].reason.contains("generated"),
        "{}",
        import.report[4]
    );
    assert!(
        import.report[5].reason.contains("no primary key"),
        "{}",
        import.report[5]
    );
}

#[test]
fn checks_enums_and_domains_come_in_as_postgres_prints_them() {
    use crate::catalog::{CheckCatalog, DomainCatalog, TypeCatalog};
    let mut catalog = shop();
    catalog.types.insert(
        QualifiedName::new("public", "mood"),
        TypeCatalog::Enum {
            labels: vec!["sad".into(), "ok".into()],
        },
    );
    catalog.types.insert(
        QualifiedName::new("public", "positive"),
        TypeCatalog::Domain(DomainCatalog {
            base_type: "integer".into(),
            not_null: true,
            default: Some("1".into()),
            checks: vec![CheckCatalog {
                name: "positive_check".into(),
                definition: "CHECK ((VALUE > 0))".into(),
            }],
        }),
    );
    let import = import_tables(&catalog, &[]);
    assert_eq!(import.types.len(), 2);
    assert_eq!(
        import.types[0].enum_values.as_deref(),
        Some(&["sad".to_string(), "ok".to_string()][..])
    );
    let domain = &import.types[1];
    assert_eq!(domain.domain.as_deref(), Some("integer"));
    assert!(!domain.nullable);
    assert_eq!(domain.checks[0].expression, "(VALUE > 0)");
    let orders = import
        .tables
        .iter()
        .find(|t| t.name == "orders")
        .expect("orders");
    assert_eq!(orders.checks.len(), 1);
    assert_eq!(orders.checks[0].name.as_deref(), Some("orders_total_check"));
    assert_eq!(orders.checks[0].expression, "(total >= (0)::numeric)");
}

/// `public.events (id, day)` partitioned by range of `day`, with the given key text and
/// partitions.
fn events(key: &str, partitions: Vec<PartitionCatalog>) -> NodeCatalog {
    let table = TableCatalog {
        columns: vec![
            column("id", "bigint", true, None),
            column("day", "date", true, None),
        ],
        constraints: vec![constraint(
            "events_pkey",
            ConstraintKind::PrimaryKey,
            &["id", "day"],
            "PRIMARY KEY (id, day)",
        )],
        replica_identity: "d".into(),
        partitioned: true,
        partition_key: Some(key.into()),
        partitions,
        ..TableCatalog::default()
    };
    NodeCatalog {
        tables: BTreeMap::from([(name("events"), table)]),
        ..NodeCatalog::default()
    }
}

fn partition(name: &str, bound: &str) -> PartitionCatalog {
    PartitionCatalog {
        schema: "public".into(),
        name: name.into(),
        bound: bound.into(),
        partitioned: false,
        triggers: Vec::new(),
    }
}

#[test]
fn a_partitioned_table_comes_in_with_its_key_and_partitions() {
    let catalog = events(
        "RANGE (day)",
        vec![
            partition(
                "events_2026",
                "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
            ),
            partition("events_rest", "DEFAULT"),
        ],
    );
    let import = import_tables(&catalog, &[]);
    assert_eq!(import.report, []);
    let events = &import.tables[0];
    let key = events.partition_by.as_ref().expect("partitioned");
    assert_eq!(key.strategy, PartitionStrategy::Range);
    assert_eq!(key.columns, ["day"]);
    let bounds: Vec<(&str, &str)> = events
        .partitions
        .iter()
        .map(|p| (p.name.as_str(), p.bounds.as_str()))
        .collect();
    assert_eq!(
        bounds,
        [
            ("events_2026", "FROM ('2026-01-01') TO ('2027-01-01')"),
            ("events_rest", "DEFAULT")
        ]
    );
}

#[test]
fn partitioned_tables_the_config_cannot_describe_stay_out_with_the_reason() {
    let by_expression = events("RANGE (date_trunc('month'::text, day))", vec![]);
    let import = import_tables(&by_expression, &[]);
    assert!(import.tables.is_empty());
    assert!(import.report[0].reason.contains("not plain columns"));

    let mut sub = partition(
        "events_2026",
        "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
    );
    sub.partitioned = true;
    let import = import_tables(&events("RANGE (day)", vec![sub]), &[]);
    assert!(import.tables.is_empty());
    assert!(import.report[0].reason.contains("partitioned itself"));
}

/// A node of a forwarding-path cluster: its reserved columns and its identity constraint on
/// the key and `_pgc_birth` are pgconverge's own, so neither lands in the config nor in the
/// report.
#[test]
fn the_forwarding_identity_is_pgconverges_own() {
    let docs = TableCatalog {
        columns: vec![
            column("id", "bigint", true, None),
            column("_pgc_version", "bigint", true, Some("0")),
            column("_pgc_origin", "text", true, Some("''::text")),
            column("_pgc_birth", "bigint", true, Some("0")),
        ],
        constraints: vec![
            constraint(
                "docs_pkey",
                ConstraintKind::PrimaryKey,
                &["id"],
                "PRIMARY KEY (id)",
            ),
            constraint(
                "docs_pgc_identity",
                ConstraintKind::Unique,
                &["id", "_pgc_birth"],
                "UNIQUE (id, _pgc_birth)",
            ),
        ],
        replica_identity: "i".into(),
        replica_identity_index: Some("docs_pgc_identity".into()),
        ..TableCatalog::default()
    };
    let mut catalog = NodeCatalog::default();
    catalog.tables.insert(name("docs"), docs);
    let import = import_tables(&catalog, &[]);
    assert_eq!(import.tables.len(), 1);
    assert!(import.tables[0].unique.is_empty(), "{:?}", import.tables[0]);
    assert_eq!(import.tables[0].columns.len(), 1);
    assert!(import.report.is_empty(), "{:?}", import.report);
}
