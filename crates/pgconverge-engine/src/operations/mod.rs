//! Read-only operations on a cluster: they read nodes and change nothing, so they take no
//! state lock.
//!
//! - `status`: every node's replication health and the findings derived from it.
//! - `import`: a live database's catalogs and the objects outside the model, for
//!   `import --from`.

pub mod import;
pub mod status;
