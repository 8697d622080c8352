//! The local state file: what pgconverge applied, guarded by a lock file beside it.
//!
//! Modelled on Terraform's state. A [`StateFile`] is versioned JSON with a `lineage` (random
//! at creation, never changed) and a `serial` (incremented by every save). [`StateStore`]
//! saves atomically (temporary file, fsync, rename), keeps the previous content as
//! `<path>.backup`, refuses files it does not understand, and takes `<path>.lock` so that
//! two runs never write the same state.
//!
//! This crate does no database work; it knows object addresses only as the model's typed
//! [`pgconverge_model::ObjectAddress`], written in their text form.

mod error;
mod files;
mod host;
mod lock;
mod random_id;
mod state_file;
mod store;
mod timestamp;

pub use error::StateError;
pub use lock::{HolderProcess, LockInfo, StateLock};
pub use state_file::{ApplyRecord, NodeState, StateFile, STATE_FORMAT_VERSION};
pub use store::StateStore;
pub use timestamp::{format_rfc3339_utc, parse_rfc3339_utc};
