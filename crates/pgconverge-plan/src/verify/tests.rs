//! Unit tests of verify's pure parts: bucket sizing, comparisons, the re-check after
//! catching up, the winner by the conflict rules, and the SQL's quoting.

use std::collections::BTreeMap;

use super::compare::{
    differing_buckets, differing_keys, recheck, BucketDigest, KeyRead, Recheck, RowRead,
};
use super::sql::{bucket_count, bucket_digests_sql, key_reads_sql, orphans_sql};
use super::winner::{choose_winner, repair_targets, Verdict};
use super::*;

fn stamp(version: i64, origin: &str) -> Stamp {
    Stamp {
        version,
        origin: origin.to_string(),
    }
}

fn row(version: i64, origin: &str, hash: i64) -> KeyRead {
    KeyRead {
        row: Some(RowRead {
            stamp: stamp(version, origin),
            hash,
        }),
        tombstone: None,
    }
}

fn gone(tombstone: Option<(i64, &str)>) -> KeyRead {
    KeyRead {
        row: None,
        tombstone: tombstone.map(|(v, o)| stamp(v, o)),
    }
}

fn names() -> Vec<String> {
    ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect()
}

#[test]
fn stamps_order_by_version_then_origin_bytes() {
    assert!(stamp(2, "a") > stamp(1, "z"));
    assert!(stamp(1, "b") > stamp(1, "a"));
    assert!(stamp(1, "a") > stamp(1, "B"), "bytewise, as COLLATE \"C\"");
}

#[test]
fn bucket_count_is_a_power_of_two_sized_from_rows() {
    assert_eq!(bucket_count(0), 64);
    assert_eq!(bucket_count(1_000_000), 4096);
    assert_eq!(bucket_count(i64::MAX).count_ones(), 1);
}

#[test]
fn only_buckets_that_differ_somewhere_are_narrowed() {
    let d = |rows, digest| BucketDigest { rows, digest };
    let a = BTreeMap::from([(1, d(3, 7)), (2, d(1, 5)), (3, d(2, 2))]);
    let b = BTreeMap::from([(1, d(3, 7)), (2, d(1, 6))]);
    assert_eq!(
        differing_buckets(&[a.clone(), a.clone()]),
        Vec::<i64>::new()
    );
    assert_eq!(differing_buckets(&[a, b]), vec![2, 3]);
}

#[test]
fn keys_differ_when_absent_or_different_on_a_node() {
    let r = |v, h| {
        (
            "{\"id\":1}".to_string(),
            RowRead {
                stamp: stamp(v, "n1"),
                hash: h,
            },
        )
    };
    let a = BTreeMap::from([("k1".to_string(), r(1, 1)), ("k2".to_string(), r(1, 2))]);
    let b = BTreeMap::from([("k1".to_string(), r(1, 1)), ("k3".to_string(), r(1, 3))]);
    let keys: Vec<String> = differing_keys(&[a, b]).into_keys().collect();
    assert_eq!(keys, ["k2", "k3"]);
}

#[test]
fn a_write_in_flight_settles_and_a_missing_write_does_not() {
    let before = stamp(5, "n1");
    // Caught up: everyone has the version seen before.
    assert_eq!(
        recheck(Some(&before), &[row(5, "n1", 9), row(5, "n1", 9)]),
        Recheck::Identical
    );
    // A node still below what it was sent: a real difference.
    assert_eq!(
        recheck(Some(&before), &[row(5, "n1", 9), row(4, "n2", 8)]),
        Recheck::Differs
    );
    assert_eq!(
        recheck(Some(&before), &[row(5, "n1", 9), gone(None)]),
        Recheck::Differs
    );
    // Written again meanwhile: look again from the newer version.
    assert_eq!(
        recheck(Some(&before), &[row(7, "n2", 1), row(5, "n1", 9)]),
        Recheck::Moved(stamp(7, "n2"))
    );
    // Same version, different contents: no catching up will fix it.
    assert_eq!(
        recheck(Some(&before), &[row(5, "n1", 9), row(5, "n1", 3)]),
        Recheck::Differs
    );
}

#[test]
fn the_greatest_stamp_wins_and_a_delete_is_a_write() {
    let reads = [row(5, "n1", 9), row(7, "n2", 3), gone(Some((6, "n3")))];
    let Verdict::Winner(w) = choose_winner(&names(), &reads) else {
        panic!("a winner")
    };
    assert_eq!((w.node, w.deleted, w.hash), (1, false, Some(3)));
    let reads = [row(5, "n1", 9), gone(Some((8, "n2"))), row(5, "n1", 9)];
    let Verdict::Winner(w) = choose_winner(&names(), &reads) else {
        panic!("a winner")
    };
    assert!(w.deleted);
    let targets: Vec<usize> = repair_targets(&names(), &reads, &w)
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(targets, [0, 2]);
}

#[test]
fn a_row_present_on_one_node_only_wins_over_nothing() {
    let reads = [row(0, "", 4), gone(None), gone(None)];
    let Verdict::Winner(w) = choose_winner(&names(), &reads) else {
        panic!("a winner")
    };
    assert_eq!(w.node, 0);
    let outcomes = repair_targets(&names(), &reads, &w);
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(|(_, o)| o.is_ok()));
}

#[test]
fn the_rules_cannot_choose_between_contents_of_one_version() {
    let reads = [row(5, "n1", 9), row(5, "n1", 8), row(5, "n1", 9)];
    let Verdict::Undecidable(why) = choose_winner(&names(), &reads) else {
        panic!("undecidable")
    };
    assert!(
        why.contains("n1, n2, n3") || why.contains("same version"),
        "{why}"
    );
}

#[test]
fn a_node_is_not_sent_its_own_write_back() {
    let reads = [gone(None), row(5, "n1", 9), row(5, "n1", 9)];
    let Verdict::Winner(w) = choose_winner(&names(), &reads) else {
        panic!("a winner")
    };
    let outcomes = repair_targets(&names(), &reads, &w);
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].1.is_err());
}

fn table() -> VerifyTable {
    let config: pgconverge_model::config::TableConfig = serde_json::from_value(serde_json::json!({
        "name": "Order Lines",
        "columns": [
            { "name": "id", "type": "bigint" },
            { "name": "at", "type": "timestamptz" },
            { "name": "user", "type": "text" },
            { "name": "parent", "type": "bigint" }
        ],
        "primary_key": ["id", "at"],
        "foreign_keys": [{ "columns": ["parent"], "references": { "table": "app.parents", "columns": ["id"] } }]
    }))
    .expect("a table");
    VerifyTable::new(&config)
}

#[test]
fn values_without_a_known_hash_function_are_hashed_as_text() {
    let config: pgconverge_model::config::TableConfig = serde_json::from_value(serde_json::json!({
        "name": "t",
        "columns": [
            { "name": "id", "type": "numeric(12, 2)" },
            { "name": "doc", "type": "json" },
            { "name": "spot", "type": "point" },
            { "name": "tags", "type": "text[]" },
            { "name": "at", "type": "timestamp(3) with time zone" }
        ],
        "primary_key": ["id"]
    }))
    .expect("a table");
    let sql = bucket_digests_sql(&VerifyTable::new(&config), 64);
    assert!(
        sql.contains(
            "ROW(t.id, t.doc::text, t.spot::text, t.tags, t.at, t._pgc_version, t._pgc_origin)"
        ),
        "{sql}"
    );
}

#[test]
fn names_are_quoted_and_keys_canonical() {
    let t = table();
    assert_eq!(t.qualified, "public.\"Order Lines\"");
    let digests = bucket_digests_sql(&t, 64);
    assert!(
        digests.contains("hash_record_extended(ROW(t.id, t.at), 0) & 63"),
        "{digests}"
    );
    assert!(digests.contains("t.\"user\""), "{digests}");
    assert!(
        digests.contains("t._pgc_version, t._pgc_origin"),
        "{digests}"
    );
    let whole = super::sql::table_digest_sql(&t);
    assert!(!whole.contains("GROUP BY"), "{whole}");
    let keys = key_reads_sql(&t);
    assert!(keys.contains("k.at AT TIME ZONE 'UTC'"), "{keys}");
    assert!(keys.contains("ts.tbl = 'public.\"Order Lines\"'"), "{keys}");
    let orphans = orphans_sql(&t, &t.foreign_keys[0], 10);
    assert!(
        orphans.contains("FROM app.parents AS p WHERE p.id = c.parent"),
        "{orphans}"
    );
    assert!(orphans.contains("c.parent IS NOT NULL"), "{orphans}");
}

/// Tombstones are looked up by the canonical key the triggers write; the two spellings are
/// built separately, so this holds them equal for every kind of type.
#[test]
fn keys_are_spelled_as_the_conflict_triggers_spell_them() {
    let config: pgconverge_model::config::TableConfig = serde_json::from_value(serde_json::json!({
        "name": "k",
        "columns": [
            { "name": "tenant", "type": "text" },
            { "name": "at", "type": "timestamptz" },
            { "name": "amount", "type": "numeric(12,2)" },
            { "name": "blob", "type": "bytea" },
            { "name": "span", "type": "interval" },
            { "name": "tags", "type": "timestamptz[]" }
        ],
        "primary_key": ["tenant", "at", "amount", "blob", "span", "tags"]
    }))
    .expect("a table");
    let objects = crate::conflict::cluster_objects(
        std::slice::from_ref(&config),
        &pgconverge_model::config::ReplicationConfig::default(),
        &[],
    );
    let log = objects
        .functions
        .iter()
        .find(|f| f.name.name.starts_with("log_k_"))
        .expect("the table's log function");
    let table = VerifyTable::new(&config);
    let body = log.body();
    assert!(
        body.contains(&super::sql::key_json(&table, "OLD")),
        "{body}"
    );
    assert!(
        body.contains(&super::sql::key_row_json(&table, "OLD")),
        "{body}"
    );
}
