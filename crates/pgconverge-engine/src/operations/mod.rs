//! Read-only operations on a cluster: they read nodes and change nothing, so they take no
//! state lock.
//!
//! - `status`: every node's replication health and the findings derived from it.

pub mod status;
pub mod verify;
