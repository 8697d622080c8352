//! Errors of the sandbox: each names the node, port or path involved and says what to do.

use std::path::PathBuf;

/// How to get a PostgreSQL that pgconverge can use; appended to "not found" and "too old".
pub const INSTALL_HINT: &str =
    "Install one with `scripts/install-postgres.sh` (puts PostgreSQL 16, 17 and 18 into \
     .pg/ of the project, where pgconverge finds them), or point --pg-bin / PGCONVERGE_PG_BIN \
     at the bin directory of a PostgreSQL 16+ installation.";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "no PostgreSQL server binaries found (looked at: {searched}). pgconverge needs \
         PostgreSQL 16 or newer. {hint}",
        searched = .searched.join("; "),
        hint = INSTALL_HINT
    )]
    BinariesNotFound { searched: Vec<String> },

    #[error(
        "PostgreSQL 16 or newer is required: subscriptions are created WITH (origin = none), \
         which PostgreSQL 16 introduced. Found only: {found}. {hint}",
        found = .found.join("; "),
        hint = INSTALL_HINT
    )]
    VersionTooOld { found: Vec<String> },

    #[error(
        "{source_name} points at {path}, which is not a usable PostgreSQL bin directory: {reason}"
    )]
    InvalidBinDir {
        source_name: String,
        path: PathBuf,
        reason: String,
    },

    #[error("invalid sandbox node {node:?}: {reason}")]
    InvalidNode { node: String, reason: String },

    #[error("unknown sandbox node {name:?} (the sandbox has: {known})")]
    UnknownNode { name: String, known: String },

    #[error("sandbox node {node} is not running")]
    NotRunning { node: String },

    #[error(
        "port {port} for sandbox node {node} is already in use on 127.0.0.1; stop whatever \
         listens there or give the node another port"
    )]
    PortInUse { node: String, port: u16 },

    #[error(
        "node {node}'s data directory {data_dir} belongs to PostgreSQL {data_major}, but the \
         binaries in {bin_dir} are PostgreSQL {bin_major}; use matching binaries (--pg-bin) \
         or remove the sandbox directory to start afresh"
    )]
    MajorMismatch {
        node: String,
        data_dir: PathBuf,
        data_major: u32,
        bin_dir: PathBuf,
        bin_major: u32,
    },

    #[error("`{command}` failed for sandbox node {node}: {output}")]
    CommandFailed {
        node: String,
        command: String,
        output: String,
    },

    #[error(
        "PostgreSQL for sandbox node {node} (port {port}) did not start: {reason}\n\
         --- last lines of {log} ---\n{log_tail}"
    )]
    StartFailed {
        node: String,
        port: u16,
        reason: String,
        log: PathBuf,
        log_tail: String,
    },

    #[error("PostgreSQL for sandbox node {node} (pid {pid}) did not stop: {reason}")]
    StopFailed {
        node: String,
        pid: u32,
        reason: String,
    },

    #[error("sandbox metadata {path} cannot be used: {reason}")]
    Metadata { path: PathBuf, reason: String },

    #[error("cannot pick an unprivileged OS user to run PostgreSQL as: {0}")]
    ServerUser(String),

    #[error(
        "the OS user {user} that runs the sandbox servers cannot use {path}: {reason}. Every \
         directory above the sandbox and the PostgreSQL binaries must be searchable by that \
         user (chmod o+x), or use a working directory elsewhere"
    )]
    NotAccessible {
        user: String,
        path: PathBuf,
        reason: String,
    },
}

impl SandboxError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        SandboxError::Io {
            context: context.into(),
            source,
        }
    }
}
