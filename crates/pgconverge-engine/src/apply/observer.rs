//! What an apply reports while it runs, for the caller to render; the engine prints nothing.

use std::time::Duration;

use pgconverge_plan::dag::OrderedChange;
use pgconverge_plan::Plan;
use pgconverge_state::LockInfo;

/// Receives an apply's progress. Steps on different nodes run at once, so `step` may be
/// called from several tasks concurrently; events of one node arrive in its step order.
pub trait ApplyObserver: Send + Sync {
    /// A lock left by a pgconverge that died on this host is about to be removed.
    fn replacing_stale_lock(&self, _holder: &LockInfo) {}

    /// The plan's steps are about to run.
    fn steps_starting(&self, _plan: &Plan) {}

    /// A step started, was applied or failed.
    fn step(&self, _step: &OrderedChange, _event: StepEvent<'_>) {}

    /// A long step (a bootstrap copy, a drain) moved on. Called often: render cheaply.
    fn progress(&self, _step: &OrderedChange, _progress: StepProgress<'_>) {}
}

/// How far a long step has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepProgress<'a> {
    /// Waiting for a node to apply another's changes (`what`), `behind_bytes` still to go.
    Waiting { what: &'a str, behind_bytes: u64 },
    /// Copying `table`; `bytes` copied so far of about `estimated_bytes` (0: unknown), and
    /// the rows of the tables already finished.
    Copying {
        table: &'a str,
        bytes: u64,
        estimated_bytes: u64,
        rows: u64,
    },
    /// The copy committed.
    Copied { rows: u64, bytes: u64 },
    /// A merging joiner's rows of `table`: `kept` the mesh had no version of, `won` written
    /// again as the newest version, `lost` older (in the joiner's conflict ledger).
    Merged {
        table: &'a str,
        kept: u64,
        won: u64,
        lost: u64,
    },
}

/// Reports nothing.
impl ApplyObserver for () {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEvent<'a> {
    Started,
    Applied {
        elapsed: Duration,
    },
    /// PostgreSQL's message, with its detail and hint when given.
    Failed {
        message: &'a str,
    },
}
