//! Which version of a differing key wins, by exactly the conflict rules: per key the
//! greatest stamp `(version, origin)` of any write wins, a delete being a write whose
//! tombstone carries its stamp (docs/conflicts.md). Nothing else is consulted, so a repair
//! is never a hand-made choice; where the rules cannot decide from what verify reads, the key
//! is reported and left alone.

use super::compare::KeyRead;
use super::Stamp;

/// The winning version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Winner {
    /// Index of the first node (in configuration order) holding it.
    pub node: usize,
    pub stamp: Stamp,
    /// The winner is a delete: no row.
    pub deleted: bool,
    /// The winning row's hash (none for a delete).
    pub hash: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Winner(Winner),
    /// The rules cannot choose; why, for people.
    Undecidable(String),
}

/// Chooses the winning version among the nodes' `reads` (one per node, in configuration
/// order); `names` are the nodes' names, for the reason of an undecidable key.
pub fn choose_winner(names: &[String], reads: &[KeyRead]) -> Verdict {
    let Some(greatest) = super::compare::greatest_register(reads) else {
        return Verdict::Undecidable("no node holds a version of this key".to_string());
    };
    let rows: Vec<(usize, i64)> = reads
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let row = r.row.as_ref()?;
            (row.stamp == greatest).then_some((i, row.hash))
        })
        .collect();
    let deletes: Vec<usize> = reads
        .iter()
        .enumerate()
        .filter(|(_, r)| r.tombstone.as_ref() == Some(&greatest))
        .map(|(i, _)| i)
        .collect();
    let name = |i: usize| names.get(i).cloned().unwrap_or_default();
    if let Some(&(first, hash)) = rows.first() {
        let others: Vec<String> = rows
            .iter()
            .filter(|(_, h)| *h != hash)
            .map(|(i, _)| name(*i))
            .collect();
        if !others.is_empty() {
            return Verdict::Undecidable(format!(
                "{} and {} hold different rows under the same version {}@{}: written outside \
                 pgconverge's triggers (session_replication_role = replica, a restore), so the \
                 rules cannot choose",
                name(first),
                others.join(", "),
                greatest.version,
                greatest.origin
            ));
        }
        if let Some(&deleted_on) = deletes.first() {
            return Verdict::Undecidable(format!(
                "{} holds the row and {} deleted it at the same version: a unique-value \
                 collision decided by claims, which verify does not compare",
                name(first),
                name(deleted_on)
            ));
        }
        return Verdict::Winner(Winner {
            node: first,
            stamp: greatest,
            deleted: false,
            hash: Some(hash),
        });
    }
    match deletes.first() {
        Some(&node) => Verdict::Winner(Winner {
            node,
            stamp: greatest,
            deleted: true,
            hash: None,
        }),
        None => Verdict::Undecidable("no node holds the greatest version".to_string()),
    }
}

/// Whether a node holding `read` already has the winning version.
pub fn holds_winner(read: &KeyRead, winner: &Winner) -> bool {
    match &read.row {
        None => winner.deleted,
        Some(row) => !winner.deleted && row.stamp == winner.stamp && Some(row.hash) == winner.hash,
    }
}

/// For each node that lacks the winning version: re-sending it there, or why not. A node
/// ignores changes stamped with its own name (they are its own writes, already merged), so
/// a node that lost its own write outside replication cannot be sent it back.
pub fn repair_targets(
    names: &[String],
    reads: &[KeyRead],
    winner: &Winner,
) -> Vec<(usize, Result<(), String>)> {
    reads
        .iter()
        .enumerate()
        .filter(|(_, r)| !holds_winner(r, winner))
        .map(|(i, _)| {
            let name = names.get(i).map(String::as_str).unwrap_or_default();
            let outcome = if winner.stamp.origin == name {
                Err(format!(
                    "the winning version was written on {name} itself, which ignores its own \
                     writes when they come back; rewrite or restore the row on {name}"
                ))
            } else {
                Ok(())
            };
            (i, outcome)
        })
        .collect()
}
