//! Errors of the state crate: I/O, unreadable or foreign state files, and lock conflicts.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lock::{HolderProcess, LockInfo};
use crate::timestamp::format_duration_short;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "state file {} is not a valid pgconverge state (line {line}, column {column}): {message}{}",
        .path.display(),
        backup_hint(.backup.as_deref())
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        /// The backup beside it, when there is one to recover from.
        backup: Option<PathBuf>,
    },

    #[error(
        "state file {} has format version {found}, written by pgconverge {written_by}; \
         this pgconverge ({}) reads format version {supported} or older: upgrade pgconverge",
        .path.display(),
        crate::state_file::PGCONVERGE_VERSION
    )]
    FormatTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
        written_by: String,
    },

    #[error(
        "state file {} has format version {found}, which no pgconverge writes (versions start at 1)",
        .path.display()
    )]
    FormatUnknown { path: PathBuf, found: u32 },

    #[error(
        "refusing to overwrite state file {}: it has lineage {on_disk}, but the state being \
         saved has lineage {saving}, so they record different clusters; use another --state path",
        .path.display()
    )]
    LineageMismatch {
        path: PathBuf,
        on_disk: String,
        saving: String,
    },

    #[error(
        "refusing to overwrite state file {}: it is at serial {on_disk}, newer than the state \
         being saved (serial {saving}); another run has written it since this one loaded it",
        .path.display()
    )]
    StaleSerial {
        path: PathBuf,
        on_disk: u64,
        saving: u64,
    },

    #[error("cannot save state file {}: serial {serial} is the largest possible", .path.display())]
    SerialExhausted { path: PathBuf, serial: u64 },

    #[error("cannot encode state for {}: {source}", .path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{}", describe_held_lock(.path, .holder, *.held_for, *.holder_process))]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Boxed to keep `StateError` small on the happy path.
        holder: Box<LockInfo>,
        /// `None` when the holder's `created_at` cannot be read.
        held_for: Option<Duration>,
        holder_process: HolderProcess,
    },

    #[error(
        "lock file {} is not a valid pgconverge lock (line {line}, column {column}): {message}; \
         if no pgconverge is running against this state, delete that file",
        .path.display()
    )]
    LockCorrupt {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("cannot contend for lock {}: other runs keep taking and releasing it; try again", .path.display())]
    LockContended { path: PathBuf },

    #[error("cannot unlock: the state is not locked (no {})", .path.display())]
    NotLocked { path: PathBuf },

    #[error(
        "cannot unlock: {requested} is not the id of the lock in {}; the lock held by {} \
         (running \"{}\", pid {}) has id {}",
        .path.display(), .holder.who, .holder.operation, .holder.pid, .holder.id
    )]
    LockIdMismatch {
        path: PathBuf,
        requested: String,
        holder: Box<LockInfo>,
    },
}

impl StateError {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> StateError {
        StateError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// serde_json's message without its trailing " at line L column C", which our messages
/// already state in their own words.
pub(crate) fn json_message(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let location = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&location) {
        Some(bare) => bare.to_owned(),
        None => message,
    }
}

fn backup_hint(backup: Option<&Path>) -> String {
    match backup {
        Some(backup) => format!("; the previous state is in {}", backup.display()),
        None => String::new(),
    }
}

fn describe_held_lock(
    path: &Path,
    holder: &LockInfo,
    held_for: Option<Duration>,
    holder_process: HolderProcess,
) -> String {
    let since = match held_for {
        Some(age) => format!(
            "held for {} (since {})",
            format_duration_short(age),
            holder.created_at
        ),
        None => format!("held since {:?}", holder.created_at),
    };
    let liveness = match holder_process {
        HolderProcess::Gone => format!(
            "; the holder process is gone (pid {} is not running on this host), so the lock is \
             probably left over from a run that crashed",
            holder.pid
        ),
        HolderProcess::Running | HolderProcess::Unknown => String::new(),
    };
    format!(
        "state is locked by {} running \"{}\" (pid {}), {since}, lock id {}, lock file {}{liveness}. \
         If no pgconverge is running against this state, remove the lock with: \
         pgconverge state unlock {}",
        holder.who,
        holder.operation,
        holder.pid,
        holder.id,
        path.display(),
        holder.id
    )
}
