//! Local PostgreSQL servers for trying pgconverge out and for its integration tests.
//!
//! [`find_binaries`] locates a PostgreSQL 16+ installation; a [`Sandbox`] runs one server
//! per node on 127.0.0.1, each in its own data directory, configured for logical
//! replication in a full mesh. As root, the servers run as an unprivileged OS user.
//! [`compose`] writes the same servers, sized the same way, as a docker-compose file.

mod binaries;
pub mod compose;
mod error;
mod metadata;
mod process;
mod sandbox;
mod settings;
mod tls;

pub use binaries::{
    find_binaries, parse_postgres_version, PgBinaries, MIN_SUPPORTED_MAJOR, PG_BIN_ENV,
};
pub use error::{SandboxError, INSTALL_HINT};
pub use metadata::METADATA_FILE;
pub use sandbox::{free_ports, validate_specs, NodeStatus, Sandbox, SandboxNodeSpec};
pub use settings::{
    client_auth, client_auth_tls, server_settings, ReplicationCapacity, SANDBOX_MESH_HEADROOM,
};
pub use tls::{NodeTlsFiles, SandboxCa, TLS_DIR};
