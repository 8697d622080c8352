//! What could go wrong when a change runs, typed so tools can act on the kind and people can
//! read the message.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kind of risk a change carries. Serialised in snake_case (`table_rewrite`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HazardKind {
    /// The table is rewritten under an ACCESS EXCLUSIVE lock: reads and writes wait for it.
    TableRewrite,
    /// Takes a lock that blocks reads and writes of the table while the step runs.
    ExclusiveLock,
    /// Takes a lock that blocks writes (reads continue) while the step runs.
    BlocksWrites,
    /// Fails if rows already in the table break the new rule (NULLs, duplicates).
    FailsOnExistingRows,
    /// Removes data that cannot be brought back by planning again.
    Destructive,
    /// Copies existing rows, taking as long as the table is large.
    LongCopy,
    /// Waits for transactions already running, anywhere in the database.
    WaitsForTransactions,
    /// Changes made meanwhile are not replayed to subscribers (a recreated slot).
    ReplicationGap,
    /// A replication slot is in use: the step fails until its subscriber disconnects.
    SlotActive,
    /// Rows a node held are merged with the mesh's: where both hold a key, the older version
    /// is set aside in the conflict ledger.
    MergesRows,
    /// An object outside the model stays on the donor: the joining node does not get it.
    NotCopied,
}

/// One risk of a change: its kind, and the sentence the plan shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hazard {
    pub kind: HazardKind,
    pub message: String,
}

impl Hazard {
    pub fn new(kind: HazardKind, message: impl Into<String>) -> Hazard {
        Hazard {
            kind,
            message: message.into(),
        }
    }
}
