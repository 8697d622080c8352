//! The conversion of introspected tables into table configs, and its report.

use super::*;
use crate::catalog::{ColumnCatalog, IndexCatalog, KeySequenceCatalog, TriggerCatalog};

fn column(name: &str, data_type: &str, not_null: bool, default: Option<&str>) -> ColumnCatalog {
    ColumnCatalog {
        name: name.into(),
        data_type: data_type.into(),
        not_null,
        default: default.map(str::to_string),
        identity: None,
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
    let mut on_update = constraint(
        "orders_other_fkey",
        ConstraintKind::ForeignKey,
        &["customer"],
        "FOREIGN KEY (customer) REFERENCES public.customers(id) ON UPDATE CASCADE",
    );
    on_update.references = Some((name("customers"), vec!["id".into()]));
    let orders = TableCatalog {
        columns: vec![
            id,
            column("customer", "bigint", true, None),
            column("total", "numeric(12,2)", false, Some("0")),
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
            },
            IndexCatalog {
                name: "orders_big_idx".into(),
                columns: vec!["total".into()],
                unique: false,
                definition: "CREATE INDEX orders_big_idx ON public.orders USING btree (total) WHERE (total > (100)::numeric)".into(),
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
    assert_eq!(orders.foreign_keys.len(), 1);
    assert_eq!(orders.foreign_keys[0].references.table, "customers");
    assert_eq!(orders.foreign_keys[0].on_delete.as_deref(), Some("cascade"));
    assert_eq!(orders.indexes.len(), 1);
    assert_eq!(
        orders.indexes[0].name.as_deref(),
        Some("orders_customer_idx")
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
            "index orders_big_idx on public.orders",
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
