//! Comparing what each node holds: bucket summaries first, then keys, then keys again once
//! replication has caught up, so a write still in flight is not mistaken for a difference.

use std::collections::{BTreeMap, BTreeSet};

use super::Stamp;

/// One bucket of one node: its row count and the XOR of its rows' hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketDigest {
    pub rows: i64,
    pub digest: i64,
}

/// A row as a node holds it: its stamp and the hash of its configured columns and stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRead {
    pub stamp: Stamp,
    pub hash: i64,
}

/// One key as a node holds it: the row, if any, and the key's tombstone, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRead {
    pub row: Option<RowRead>,
    pub tombstone: Option<Stamp>,
}

impl KeyRead {
    /// The key's register: the greatest stamp of its row or tombstone (`None` when the node
    /// never heard of the key, or pruned its tombstone).
    pub fn register(&self) -> Option<&Stamp> {
        let row = self.row.as_ref().map(|r| &r.stamp);
        row.max(self.tombstone.as_ref())
    }
}

/// Buckets whose row count or digest is not the same on every node (a bucket missing on a
/// node counts as empty there).
pub fn differing_buckets(nodes: &[BTreeMap<i64, BucketDigest>]) -> Vec<i64> {
    let all: BTreeSet<i64> = nodes.iter().flat_map(|n| n.keys().copied()).collect();
    all.into_iter()
        .filter(|bucket| {
            let first = nodes.first().and_then(|n| n.get(bucket));
            nodes.iter().any(|n| n.get(bucket) != first)
        })
        .collect()
}

/// Keys of the narrowed buckets that are not held identically by every node, each with its
/// key row (for looking it up again). `nodes` maps canonical key → (key row, row) per node.
pub fn differing_keys(nodes: &[BTreeMap<String, (String, RowRead)>]) -> BTreeMap<String, String> {
    let mut differing = BTreeMap::new();
    let all: BTreeSet<&String> = nodes.iter().flat_map(|n| n.keys()).collect();
    for key in all {
        let first = nodes.first().and_then(|n| n.get(key)).map(|(_, r)| r);
        if nodes.iter().any(|n| n.get(key).map(|(_, r)| r) != first) {
            if let Some((key_row, _)) = nodes.iter().find_map(|n| n.get(key)) {
                differing.insert(key.clone(), key_row.clone());
            }
        }
    }
    differing
}

/// Every node holds the key alike: no row anywhere, or the same row (stamp and hash)
/// everywhere. Tombstones are not compared: each node prunes its own on its own schedule.
pub fn same_everywhere(reads: &[KeyRead]) -> bool {
    let first = reads.first().map(|r| &r.row);
    reads.iter().all(|r| Some(&r.row) == first)
}

/// The greatest register of any node.
pub fn greatest_register(reads: &[KeyRead]) -> Option<Stamp> {
    reads.iter().filter_map(KeyRead::register).max().cloned()
}

/// What a key read again after replication caught up tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// Every node holds it alike now: the difference was a write in flight.
    Identical,
    /// A real difference: a node is still below the greatest version seen before it caught
    /// up (it should have received it), or the nodes differ at the same version.
    Differs,
    /// Written again meanwhile: compare once more from the new greatest version.
    Moved(Stamp),
}

/// Judges `after`, read once every node had applied what its peers had committed when the
/// key was read before, when the greatest register seen then was `before`. Registers only
/// grow, so a node below `before` now is missing a write it was sent.
pub fn recheck(before: Option<&Stamp>, after: &[KeyRead]) -> Recheck {
    if same_everywhere(after) {
        return Recheck::Identical;
    }
    let lowest = after.iter().map(KeyRead::register).min().flatten();
    let lowest_missing = after.iter().any(|r| r.register().is_none());
    let below = match before {
        Some(before) => lowest_missing || lowest.is_some_and(|l| l < before),
        None => false,
    };
    if below {
        return Recheck::Differs;
    }
    match greatest_register(after) {
        Some(now) if Some(&now) > before => Recheck::Moved(now),
        _ => Recheck::Differs,
    }
}
