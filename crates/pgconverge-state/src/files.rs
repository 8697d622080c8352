//! Durable, owner-only file writes: sibling paths, atomic replace, directory fsync.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::StateError;

/// `path` with `suffix` appended to its file name: `state.json` + `.lock` = `state.json.lock`.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates the directory that will hold `path`, if it has one that is missing.
pub(crate) fn create_parent_dir(path: &Path) -> Result<(), StateError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fs::create_dir_all(parent)
            .map_err(|source| StateError::io("create directory", parent, source)),
        _ => Ok(()),
    }
}

/// Creates `path`, failing if it exists; readable and writable by the owner only, because
/// state and lock files name hosts, users and the objects pgconverge manages.
pub(crate) fn create_private_new(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Writes a new file at `path` (which must not exist) and flushes it to disk.
pub(crate) fn write_private_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = create_private_new(path)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = fs::remove_file(path);
    }
    written
}

/// Replaces `target` with `bytes` so that readers see either the old or the new content:
/// write `<target>.tmp`, fsync, rename over `target`, fsync the directory.
pub(crate) fn replace_atomically(target: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let staging = with_suffix(target, ".tmp");
    // A leftover from a crashed save would make the exclusive create fail.
    match fs::remove_file(&staging) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(StateError::io("remove stale file", &staging, source)),
    }
    write_private_new(&staging, bytes)
        .map_err(|source| StateError::io("write", &staging, source))?;
    if let Err(source) = fs::rename(&staging, target) {
        let _ = fs::remove_file(&staging);
        return Err(StateError::io("replace", target, source));
    }
    sync_parent_dir(target);
    Ok(())
}

/// Makes a rename or link in `path`'s directory durable.
///
/// Best effort: some filesystems refuse fsync on directories, and by then the file itself is
/// already complete on disk, so a failure here loses nothing a reader could observe.
pub(crate) fn sync_parent_dir(path: &Path) {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(directory) = File::open(parent) {
        let _ = directory.sync_all();
    }
}
