//! The edge that talks to PostgreSQL: finds credentials, connects, reads each node's catalogs
//! into a [`NodeCatalog`](pgconverge_model::NodeCatalog) snapshot, reads replication health
//! (`status`) and executes planned statements.
//!
//! Nothing here decides what to change; the planner does that from the snapshots.

pub mod connect;
pub mod credentials;
pub mod execute;
pub mod introspect;
pub mod lifecycle;
pub mod preflight;
pub mod query_error;
pub mod status;
mod tls;
pub mod verify;

pub use connect::{connect, set_session_defaults, ConnectError};
pub use credentials::{resolve_password, CredentialError, Secret};
pub use execute::{advisory_unlock, execute_statements, try_advisory_lock, ExecError};
pub use introspect::{
    introspect, introspect_nodes, read_database, DatabaseSnapshot, IntrospectError,
    IntrospectScope, NodeError,
};
pub use query_error::QueryError;
