//! Operations on a cluster's running data rather than its objects: they change no object
//! pgconverge manages (nothing the state file records), so they take no state lock.
//!
//! - `status`: every node's replication health and the findings derived from it.
//! - `verify`: whether every node holds the same rows, and rows breaking a foreign key;
//!   with repair, re-sends the winning versions of differing keys (rows, never objects).
//! - `import`: a live database's catalogs and the objects outside the model, for
//!   `import --from`.

pub mod import;
pub mod status;
pub mod verify;
