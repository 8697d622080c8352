//! The text form of object addresses: unchanged for ordinary names, and read back exactly.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

fn table(schema: &str, name: &str) -> QualifiedName {
    QualifiedName::new(schema, name)
}

/// One address of every kind, named with `part` wherever a name goes.
fn every_kind(part: &str) -> Vec<ObjectAddress> {
    let t = table(part, part);
    let name = part.to_string();
    vec![
        ObjectAddress::Schema { name: name.clone() },
        ObjectAddress::Table { table: t.clone() },
        ObjectAddress::Type { name: t.clone() },
        ObjectAddress::Column {
            table: t.clone(),
            column: name.clone(),
        },
        ObjectAddress::Constraint {
            table: t.clone(),
            name: name.clone(),
        },
        ObjectAddress::Index {
            table: t.clone(),
            name: name.clone(),
        },
        ObjectAddress::Partition {
            table: t.clone(),
            name: name.clone(),
        },
        ObjectAddress::ReplicaIdentity { table: t.clone() },
        ObjectAddress::Function {
            function: t.clone(),
        },
        ObjectAddress::Trigger {
            table: t,
            name: name.clone(),
        },
        ObjectAddress::Publication { name: name.clone() },
        ObjectAddress::Subscription { name: name.clone() },
        ObjectAddress::Slot { name: name.clone() },
        ObjectAddress::Membership { node: name.clone() },
        ObjectAddress::KeySlot { node: name.clone() },
        ObjectAddress::SqlFile { name },
    ]
}

#[test]
fn ordinary_names_read_as_they_always_have() {
    let users = table("public", "users");
    let cases = [
        (ObjectAddress::Schema { name: "app".into() }, "schema app"),
        (
            ObjectAddress::Table {
                table: users.clone(),
            },
            "table public.users",
        ),
        (
            ObjectAddress::Type {
                name: table("public", "mood"),
            },
            "type public.mood",
        ),
        (
            ObjectAddress::Column {
                table: users.clone(),
                column: "email".into(),
            },
            "column public.users.email",
        ),
        (
            ObjectAddress::Constraint {
                table: users.clone(),
                name: "users_pkey".into(),
            },
            "constraint public.users.users_pkey",
        ),
        (
            ObjectAddress::Index {
                table: users.clone(),
                name: "users_email_idx".into(),
            },
            "index public.users.users_email_idx",
        ),
        (
            ObjectAddress::Partition {
                table: users.clone(),
                name: "users_eu".into(),
            },
            "partition public.users.users_eu",
        ),
        (
            ObjectAddress::ReplicaIdentity {
                table: users.clone(),
            },
            "replica identity public.users",
        ),
        (
            ObjectAddress::Function {
                function: table("_pgconverge", "node_name"),
            },
            "function _pgconverge.node_name()",
        ),
        (
            ObjectAddress::Trigger {
                table: users,
                name: "pgc_log".into(),
            },
            "trigger public.users.pgc_log",
        ),
        (
            ObjectAddress::Publication {
                name: "pgc_n1".into(),
            },
            "publication pgc_n1",
        ),
        (
            ObjectAddress::Subscription {
                name: "pgc_n1_from_n2".into(),
            },
            "subscription pgc_n1_from_n2",
        ),
        (
            ObjectAddress::Slot {
                name: "pgc_n1_from_n2".into(),
            },
            "slot pgc_n1_from_n2",
        ),
        (ObjectAddress::KeySlot { node: "n1".into() }, "key slot n1"),
        (
            ObjectAddress::SqlFile {
                name: "sql/001 views.sql".into(),
            },
            "sql file sql/001 views.sql",
        ),
    ];
    for (address, text) in cases {
        assert_eq!(address.to_string(), text);
        assert_eq!(text.parse::<ObjectAddress>(), Ok(address));
    }
}

#[test]
fn every_kind_round_trips_whatever_its_names_contain() {
    for part in [
        "plain",
        "with.dot",
        "..",
        "with space",
        " leading and trailing ",
        "say \"hi\"",
        "\"",
        "\".\"",
        "f()",
        "(",
        "",
        "ünïcödé",
        "replica identity",
    ] {
        for address in every_kind(part) {
            let text = address.to_string();
            assert_eq!(text.parse::<ObjectAddress>(), Ok(address), "{text}");
        }
    }
}

#[test]
fn only_dots_and_quotes_in_dotted_names_are_quoted() {
    let address = ObjectAddress::Column {
        table: table("my schema", "a.b"),
        column: "say \"hi\"".into(),
    };
    assert_eq!(
        address.to_string(),
        r#"column my schema."a.b"."say ""hi""""#
    );
    let subscription = ObjectAddress::Subscription { name: "a.b".into() };
    assert_eq!(subscription.to_string(), "subscription a.b");
}

#[test]
fn malformed_text_is_refused_with_the_text() {
    for text in [
        "",
        "table",
        "tables public.users",
        "table public",
        "table a.b.c",
        "column public.users",
        "function public.f",
        "table \"public.users",
        "table \"a\"b.c",
    ] {
        let err = text.parse::<ObjectAddress>().expect_err(text);
        assert_eq!(err.text, text);
    }
}

#[test]
fn sets_serialise_as_sorted_text() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Holder {
        #[serde(with = "text_set")]
        managed: BTreeSet<ObjectAddress>,
        #[serde(with = "text_sets_by_node")]
        by_node: BTreeMap<String, BTreeSet<ObjectAddress>>,
    }
    let managed: BTreeSet<ObjectAddress> = [
        "table public.users",
        "subscription pgc_n1_from_n2",
        "slot pgc_n2_from_n1",
    ]
    .iter()
    .map(|t| t.parse().expect("address"))
    .collect();
    let holder = Holder {
        managed: managed.clone(),
        by_node: BTreeMap::from([("n1".to_string(), managed)]),
    };
    let json = serde_json::to_value(&holder).expect("encode");
    let texts = serde_json::json!([
        "slot pgc_n2_from_n1",
        "subscription pgc_n1_from_n2",
        "table public.users"
    ]);
    assert_eq!(json["managed"], texts);
    assert_eq!(json["by_node"]["n1"], texts);
    assert_eq!(
        serde_json::from_value::<Holder>(json).expect("decode"),
        holder
    );
}
