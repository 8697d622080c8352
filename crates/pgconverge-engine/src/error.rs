//! Every way an engine operation fails, with what the caller needs to explain it.

use std::fmt;
use std::path::PathBuf;

use pgconverge_model::ObjectAddress;
use pgconverge_plan::plan::PlanError;
use pgconverge_plan::preflight::DataViolation;
use pgconverge_plan::{Action, Change};
use pgconverge_postgres::credentials::CredentialError;
use pgconverge_postgres::introspect::NodeError;
use pgconverge_state::StateError;

use crate::plan_file::PlanFileError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("password for node {node}: {source}")]
    Password {
        node: String,
        #[source]
        source: CredentialError,
    },
    /// The state file could not be read.
    #[error("state: {0}")]
    State(#[source] StateError),
    /// The state lock could not be taken: another run holds it, or the lock file is unusable.
    /// The state crate's message says who holds it and how to remove it.
    #[error("{0}")]
    Lock(#[source] StateError),
    /// A lock left by a run that died on this host could not be replaced.
    #[error("state lock: {0}")]
    LockTakeover(#[source] StateError),
    #[error("saving the state: {0}")]
    SaveState(#[source] StateError),
    /// Some nodes could not be introspected; nothing was changed.
    #[error(
        "cannot read {} node{}; nothing was changed",
        .failures.len(),
        if .failures.len() == 1 { "" } else { "s" }
    )]
    Unreachable { failures: Vec<NodeFailure> },
    #[error("cannot plan: {0}")]
    Plan(#[source] PlanError),
    #[error(transparent)]
    PlanFile(#[from] PlanFileError),
    #[error("saved plan {} is stale; nothing was changed", .path.display())]
    StalePlan {
        path: PathBuf,
        reasons: Vec<StaleReason>,
    },
    /// Rows on some nodes break what a planned change needs (duplicates under a new UNIQUE,
    /// NULLs under a new NOT NULL, values that do not fit a new type); no node was changed.
    #[error(
        "preflight: rows on the nodes break {} planned change{}; nothing was changed",
        .violations.len(),
        if .violations.len() == 1 { "" } else { "s" }
    )]
    Preflight { violations: Vec<DataViolation> },
    #[error("prerequisites not met; nothing was changed")]
    Prerequisites,
    /// A step failed: the state records what was applied; no step started after the failure.
    #[error(
        "apply failed: {applied} step{} applied, {} failed, {not_started} not started",
        if *.applied == 1 { "" } else { "s" },
        .failed.len()
    )]
    ApplyFailed {
        applied: usize,
        failed: Vec<StepFailure>,
        not_started: usize,
    },
    /// `verify` was asked for something the configuration does not have; nothing was read.
    #[error("{0}")]
    VerifyInput(String),
    /// A node failed while `verify` read it.
    #[error("verify: node {node}: {error}")]
    VerifyRead {
        node: String,
        #[source]
        error: Box<pgconverge_postgres::IntrospectError>,
    },
    /// A repair transaction failed on a node; it changed nothing there.
    #[error("repair: node {node}: {error}")]
    Repair {
        node: String,
        #[source]
        error: Box<pgconverge_postgres::QueryError>,
    },
    /// Every step succeeded, yet planning again finds these changes.
    #[error("apply finished, but planning again still finds changes")]
    ProofFailed { left: Vec<Change> },
}

/// A node that could not be read.
#[derive(Debug)]
pub struct NodeFailure {
    pub node: String,
    pub error: NodeError,
}

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}: {}", self.node, self.error)
    }
}

/// Why a saved plan no longer fits the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleReason {
    ConfigChanged,
    NodeChanged(String),
    NodeNotInPlan(String),
    NodeNoLongerConfigured(String),
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaleReason::ConfigChanged => write!(f, "the configuration changed"),
            StaleReason::NodeChanged(node) => write!(f, "node {node} changed"),
            StaleReason::NodeNotInPlan(node) => write!(f, "node {node} is not in the plan"),
            StaleReason::NodeNoLongerConfigured(node) => {
                write!(f, "node {node} is no longer configured")
            }
        }
    }
}

/// A step that failed, with PostgreSQL's message (and its detail and hint, when given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    /// The step's id in the plan (0-based; shown 1-based).
    pub step: usize,
    pub node: String,
    pub action: Action,
    pub address: ObjectAddress,
    pub message: String,
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} on {}: {} {}: {}",
            self.step + 1,
            self.node,
            self.action.symbol(),
            self.address,
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_failure_counts_read_as_before() {
        let failure = StepFailure {
            step: 3,
            node: "n2".into(),
            action: Action::Create,
            address: ObjectAddress::Subscription {
                name: "pgc_n2_from_n1".into(),
            },
            message: "statement 1 failed: boom".into(),
        };
        let err = EngineError::ApplyFailed {
            applied: 1,
            failed: vec![failure.clone()],
            not_started: 2,
        };
        assert_eq!(
            err.to_string(),
            "apply failed: 1 step applied, 1 failed, 2 not started"
        );
        assert_eq!(
            failure.to_string(),
            "step 4 on n2: + subscription pgc_n2_from_n1: statement 1 failed: boom"
        );
    }

    #[test]
    fn stale_plan_names_its_file() {
        let err = EngineError::StalePlan {
            path: PathBuf::from("out/plan.json"),
            reasons: vec![StaleReason::NodeChanged("n1".into())],
        };
        assert_eq!(
            err.to_string(),
            "saved plan out/plan.json is stale; nothing was changed"
        );
    }
}
