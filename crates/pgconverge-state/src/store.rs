//! `StateStore`: loading, saving and locking the state file at one path.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::StateError;
use crate::files::{create_parent_dir, replace_atomically, with_suffix};
use crate::lock::{self, LockInfo, StateLock};
use crate::state_file::{
    decode_state, encode_state, fresh_state, StateFile, PGCONVERGE_VERSION, STATE_FORMAT_VERSION,
};

/// The state file at `path`, with `<path>.backup`, `<path>.lock` and `<path>.tmp` beside it.
///
/// Callers hold [`StateStore::lock`] around a load–modify–save cycle; `save` additionally
/// refuses to overwrite a file of another lineage or with a newer serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateStore {
    path: PathBuf,
}

impl StateStore {
    pub fn new(path: impl Into<PathBuf>) -> StateStore {
        StateStore { path: path.into() }
    }

    /// A state for a cluster pgconverge has never applied to: fresh lineage, serial 0.
    pub fn new_state() -> StateFile {
        fresh_state()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `save` keeps the previous content.
    pub fn backup_path(&self) -> PathBuf {
        with_suffix(&self.path, ".backup")
    }

    pub fn lock_path(&self) -> PathBuf {
        with_suffix(&self.path, ".lock")
    }

    /// Reads the state; `None` when the file does not exist.
    pub fn load(&self) -> Result<Option<StateFile>, StateError> {
        self.read_bytes()?
            .map(|bytes| decode_state(&self.path, &self.backup_path(), &bytes))
            .transpose()
    }

    /// Writes `state` with its serial incremented, replacing the file atomically and keeping
    /// the previous content in `<path>.backup`. Records the current format and pgconverge
    /// versions. On error `state` and the files on disk are left as they were.
    ///
    /// Refuses to overwrite a file it cannot read (corrupt, or from a newer pgconverge), one
    /// of another lineage, or one whose serial is higher than `state`'s.
    pub fn save(&self, state: &mut StateFile) -> Result<(), StateError> {
        let previous_bytes = self.read_bytes()?;
        if let Some(bytes) = &previous_bytes {
            let on_disk = decode_state(&self.path, &self.backup_path(), bytes)?;
            if on_disk.lineage != state.lineage {
                return Err(StateError::LineageMismatch {
                    path: self.path.clone(),
                    on_disk: on_disk.lineage,
                    saving: state.lineage.clone(),
                });
            }
            if on_disk.serial > state.serial {
                return Err(StateError::StaleSerial {
                    path: self.path.clone(),
                    on_disk: on_disk.serial,
                    saving: state.serial,
                });
            }
        }
        let serial = state
            .serial
            .checked_add(1)
            .ok_or_else(|| StateError::SerialExhausted {
                path: self.path.clone(),
                serial: state.serial,
            })?;
        let next = StateFile {
            format_version: STATE_FORMAT_VERSION,
            serial,
            pgconverge_version: PGCONVERGE_VERSION.to_owned(),
            ..state.clone()
        };
        let bytes = encode_state(&self.path, &next)?;
        create_parent_dir(&self.path)?;
        if let Some(previous) = &previous_bytes {
            replace_atomically(&self.backup_path(), previous)?;
        }
        replace_atomically(&self.path, &bytes)?;
        *state = next;
        Ok(())
    }

    /// Takes the lock for `operation` (e.g. `apply`), or explains who holds it, for how long,
    /// whether that process still runs, and how to remove the lock.
    pub fn lock(&self, operation: &str) -> Result<StateLock, StateError> {
        create_parent_dir(&self.path)?;
        lock::acquire(&self.lock_path(), operation)
    }

    /// Removes the lock, only if `id` is the id of the lock currently held.
    pub fn unlock(&self, id: &str) -> Result<(), StateError> {
        lock::unlock(&self.lock_path(), id)
    }

    /// The current lock, if any.
    pub fn lock_info(&self) -> Result<Option<LockInfo>, StateError> {
        lock::read_lock(&self.lock_path())
    }

    fn read_bytes(&self) -> Result<Option<Vec<u8>>, StateError> {
        match fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::io("read state file", &self.path, source)),
        }
    }
}
