//! The lock file beside the state: who holds it, taking it, and releasing it on drop.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{json_message, StateError};
use crate::files::{sync_parent_dir, with_suffix, write_private_new};
use crate::host::{current_host, current_user_at_host, local_process_is_alive};
use crate::random_id::random_id;
use crate::timestamp::{format_rfc3339_utc, parse_rfc3339_utc};

/// Attempts before giving up when the lock disappears between "it exists" and "read it".
const LOCK_ATTEMPTS: usize = 5;

/// The contents of a lock file.
///
/// Unlike the state, unknown fields are ignored: a lock is only read to be reported or
/// matched by id, so a newer pgconverge's extra details must not make it unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Random; `pgconverge state unlock <id>` must name it.
    pub id: String,
    /// The command holding the lock, e.g. `apply`.
    pub operation: String,
    /// `user@host`.
    pub who: String,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// Whether the process recorded in a lock is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderProcess {
    /// A process with that pid runs on this host (pids can be reused, so this is a hint).
    Running,
    /// The lock was taken on this host and no process with that pid runs any more.
    Gone,
    /// Taken on another host, or this platform cannot tell.
    Unknown,
}

impl LockInfo {
    fn for_current_process(operation: &str) -> LockInfo {
        LockInfo {
            id: random_id(),
            operation: operation.to_owned(),
            who: current_user_at_host(),
            pid: std::process::id(),
            created_at: format_rfc3339_utc(SystemTime::now()),
        }
    }

    /// How long the lock has been held at `now`; `None` if `created_at` is unreadable.
    /// A `created_at` in the future (clock skew between hosts) counts as zero.
    pub fn age(&self, now: SystemTime) -> Option<Duration> {
        let created = parse_rfc3339_utc(&self.created_at)?;
        Some(now.duration_since(created).unwrap_or(Duration::ZERO))
    }

    /// The host part of `who`.
    pub fn host(&self) -> &str {
        self.who
            .rsplit_once('@')
            .map_or(self.who.as_str(), |(_, host)| host)
    }

    /// Whether the holder still runs; only knowable for locks taken on this host.
    pub fn holder_process(&self) -> HolderProcess {
        if self.host() != current_host() {
            return HolderProcess::Unknown;
        }
        match local_process_is_alive(self.pid) {
            Some(true) => HolderProcess::Running,
            Some(false) => HolderProcess::Gone,
            None => HolderProcess::Unknown,
        }
    }
}

/// A held lock on a state file. Dropping it removes the lock file if it is still this lock
/// (an operator may have force-unlocked it and someone else locked again since).
#[derive(Debug)]
pub struct StateLock {
    lock_path: PathBuf,
    info: LockInfo,
    released: bool,
}

impl StateLock {
    pub fn id(&self) -> &str {
        &self.info.id
    }

    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// Releases the lock now, reporting failures that a drop would have to ignore.
    pub fn release(mut self) -> Result<(), StateError> {
        self.released = true;
        remove_lock_if_id_matches(&self.lock_path, &self.info.id)
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        if !self.released {
            let _ = remove_lock_if_id_matches(&self.lock_path, &self.info.id);
        }
    }
}

/// Takes the lock at `lock_path` or reports who holds it.
pub(crate) fn acquire(lock_path: &Path, operation: &str) -> Result<StateLock, StateError> {
    let info = LockInfo::for_current_process(operation);
    let mut bytes = serde_json::to_vec_pretty(&info).map_err(|source| StateError::Encode {
        path: lock_path.to_owned(),
        source,
    })?;
    bytes.push(b'\n');
    for _ in 0..LOCK_ATTEMPTS {
        if create_lock_file(lock_path, &info.id, &bytes)? {
            return Ok(StateLock {
                lock_path: lock_path.to_owned(),
                info,
                released: false,
            });
        }
        if let Some(holder) = read_lock(lock_path)? {
            let now = SystemTime::now();
            return Err(StateError::Locked {
                path: lock_path.to_owned(),
                held_for: holder.age(now),
                holder_process: holder.holder_process(),
                holder: Box::new(holder),
            });
        }
        // Released between our attempt and our read: try again.
    }
    Err(StateError::LockContended {
        path: lock_path.to_owned(),
    })
}

/// Creates the lock file with its full content in one step; `false` if it already exists.
///
/// The content is written to a private staging file first and then hard-linked into place:
/// linking fails if the lock exists (as an exclusive create would), and a competing reader
/// never sees a half-written lock. Filesystems without hard links fall back to an exclusive
/// create followed by the write.
fn create_lock_file(lock_path: &Path, id: &str, bytes: &[u8]) -> Result<bool, StateError> {
    let staging = with_suffix(lock_path, &format!(".{id}.tmp"));
    write_private_new(&staging, bytes)
        .map_err(|source| StateError::io("write", &staging, source))?;
    let linked = fs::hard_link(&staging, lock_path);
    let _ = fs::remove_file(&staging);
    match linked {
        Ok(()) => {
            sync_parent_dir(lock_path);
            Ok(true)
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(_) => match write_private_new(lock_path, bytes) {
            Ok(()) => {
                sync_parent_dir(lock_path);
                Ok(true)
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(source) => Err(StateError::io("create lock file", lock_path, source)),
        },
    }
}

/// Reads the lock file; `None` when there is none.
pub(crate) fn read_lock(lock_path: &Path) -> Result<Option<LockInfo>, StateError> {
    let bytes = match fs::read(lock_path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::io("read lock file", lock_path, source)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| StateError::LockCorrupt {
            path: lock_path.to_owned(),
            line: error.line(),
            column: error.column(),
            message: json_message(&error),
        })
}

/// Removes the lock named `id`, or explains which lock is there instead.
pub(crate) fn unlock(lock_path: &Path, id: &str) -> Result<(), StateError> {
    match read_lock(lock_path)? {
        None => Err(StateError::NotLocked {
            path: lock_path.to_owned(),
        }),
        Some(holder) if holder.id != id => Err(StateError::LockIdMismatch {
            path: lock_path.to_owned(),
            requested: id.to_owned(),
            holder: Box::new(holder),
        }),
        Some(_) => remove_lock_file(lock_path),
    }
}

/// Removes the lock if it is still the one named `id`; anything else is left in place.
///
/// Between the read and the removal another run could swap the lock; that needs a
/// force-unlock and a new lock within microseconds, and the window is accepted.
fn remove_lock_if_id_matches(lock_path: &Path, id: &str) -> Result<(), StateError> {
    match read_lock(lock_path)? {
        Some(holder) if holder.id == id => remove_lock_file(lock_path),
        _ => Ok(()),
    }
}

fn remove_lock_file(lock_path: &Path) -> Result<(), StateError> {
    match fs::remove_file(lock_path) {
        Ok(()) => {
            sync_parent_dir(lock_path);
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StateError::io("remove lock file", lock_path, source)),
    }
}
