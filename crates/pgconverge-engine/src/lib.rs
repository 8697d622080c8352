//! The engine between the command line and the planning, PostgreSQL and state crates: it
//! composes them into whole operations on a cluster, the part Terraform's local backend
//! plays. It prints nothing; callers render what it returns and what it reports to an
//! [`ApplyObserver`].
//!
//! Layout:
//! - `context`: [`Cluster`], the configuration with its resolved secrets, desired state and
//!   state store; every operation starts from one.
//! - `introspection`: reading every node's catalog at once.
//! - `planning`: a [`Plan`](pgconverge_plan::Plan) from the catalogs and the state's managed set.
//! - `plan_file`: saved plans (`plan --out`).
//! - `apply`: an [`ApplySession`] holds the state lock; `lock` takes it (replacing one left by
//!   a dead run), `staleness` refuses saved plans the cluster has moved away from, `executor`
//!   runs the steps, `record` writes the state, `proof` plans again afterwards.
//! - `error`: [`EngineError`], every way an operation can fail.
//!
//! - `lifecycle`: the steps that involve more nodes than their own (a joining node's
//!   bootstrap, a leaving node's drain), run by `apply::executor`, and the reading of the
//!   nodes that leave the mesh.
//!
//! - `operations`: operations on running data, which take no state lock: `status` reads every
//!   node's replication health and derives findings from it; `verify` compares the nodes'
//!   rows and can re-send winning versions.

mod apply;
mod context;
mod error;
mod introspection;
mod lifecycle;
pub mod operations;
pub mod plan_file;
mod planning;
mod preflight;

pub use apply::{ApplyObserver, ApplyOutcome, ApplySession, StepEvent, StepProgress};
pub use context::{password_env_vars, resolve_secrets, Cluster, Secrets};
pub use error::{EngineError, NodeFailure, StaleReason, StepFailure};
pub use introspection::Catalogs;
pub use lifecycle::CATCH_UP_TIMEOUT;
pub use operations::status::{ClusterStatus, StatusThresholds};
pub use plan_file::PlanFileError;
