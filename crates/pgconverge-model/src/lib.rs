//! Pure model of a pgconverge cluster: the desired state read from JSON config, the live
//! catalog snapshot read from each node, and the naming rules both sides share. No I/O.

pub mod address;
pub mod catalog;
pub mod config;
pub mod diagnostics;
pub mod legacy;
pub mod load;
pub mod naming;
mod quick_check;
mod schema_check;
mod source_map;
pub mod types;
mod validate;

pub use address::ObjectAddress;
pub use catalog::NodeCatalog;
pub use config::{ClusterConfig, ColumnConfig, NodeConfig, TableConfig};
pub use diagnostics::{Diagnostic, Diagnostics};
pub use legacy::to_unified_json;
pub use load::{load_legacy, load_unified, ConfigSource};
