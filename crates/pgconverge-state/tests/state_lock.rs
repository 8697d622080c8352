//! The lock file beside the state: exclusion, holder reports, unlock by id, release on drop.

mod common;

use std::fs;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, SystemTime};

use common::ScratchDir;
use pgconverge_state::{
    format_rfc3339_utc, HolderProcess, LockInfo, StateError, StateLock, StateStore,
};

fn store_in(scratch: &ScratchDir) -> StateStore {
    StateStore::new(scratch.path().join("state.json"))
}

/// The host this process records in locks, read back from a real lock.
fn this_host(store: &StateStore) -> String {
    let lock = store.lock("probe").expect("probe lock");
    lock.info().host().to_owned()
}

fn write_lock(store: &StateStore, info: &LockInfo) {
    fs::write(
        store.lock_path(),
        serde_json::to_vec(info).expect("encode lock"),
    )
    .expect("write lock");
}

#[test]
fn lock_writes_holder_details_and_lock_info_reads_them() {
    let scratch = ScratchDir::new();
    let store = store_in(&scratch);
    assert_eq!(store.lock_info().expect("no lock"), None);
    let lock = store.lock("apply").expect("lock");
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(store.lock_path()).expect("read lock")).expect("json");
    assert_eq!(json["id"], lock.id());
    assert_eq!(json["operation"], "apply");
    assert_eq!(json["pid"], std::process::id());
    assert!(json["who"].as_str().is_some_and(|who| who.contains('@')));
    let info = store.lock_info().expect("read").expect("locked");
    assert_eq!(&info, lock.info());
    assert!(info
        .age(SystemTime::now())
        .is_some_and(|age| age < Duration::from_secs(60)));
    assert_eq!(info.holder_process(), HolderProcess::Running);
}

#[test]
fn contention_message_names_holder_age_and_unlock_command() {
    let scratch = ScratchDir::new();
    let store = store_in(&scratch);
    let holder = LockInfo {
        id: "1b4e28ba-2fa1-4d2e-883f-0016d3cca427".to_owned(),
        operation: "apply".to_owned(),
        who: format!("alice@{}", this_host(&store)),
        pid: std::process::id(),
        created_at: format_rfc3339_utc(SystemTime::now() - Duration::from_secs(192)),
    };
    write_lock(&store, &holder);
    let error = store.lock("plan").expect_err("lock is held");
    assert!(
        matches!(&error, StateError::Locked { holder: found, holder_process: HolderProcess::Running, .. } if **found == holder),
        "{error:?}"
    );
    let message = error.to_string();
    for expected in [
        holder.who.as_str(),
        "\"apply\"",
        &format!("pid {}", holder.pid),
        "pgconverge state unlock 1b4e28ba-2fa1-4d2e-883f-0016d3cca427",
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} missing from: {message}"
        );
    }
    assert!(
        message.contains("held for 3m12s") || message.contains("held for 3m13s"),
        "{message}"
    );
    assert!(!message.contains("gone"), "{message}");
}

#[test]
fn second_lock_in_the_same_process_is_refused() {
    let scratch = ScratchDir::new();
    let store = store_in(&scratch);
    let first = store.lock("apply").expect("first");
    let error = store.lock("apply").expect_err("second");
    assert!(
        matches!(&error, StateError::Locked { holder, .. } if holder.id == first.id()),
        "{error:?}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn lock_of_a_dead_process_is_reported_not_stolen() {
    let scratch = ScratchDir::new();
    let store = store_in(&scratch);
    let holder = LockInfo {
        id: "dead-holder".to_owned(),
        operation: "apply".to_owned(),
        who: format!("bob@{}", this_host(&store)),
        // Above Linux's pid limit, so no such process exists.
        pid: 0x7fff_fff0,
        created_at: format_rfc3339_utc(SystemTime::now()),
    };
    write_lock(&store, &holder);
    let error = store.lock("apply").expect_err("stale lock still blocks");
    assert!(
        matches!(
            error,
            StateError::Locked {
                holder_process: HolderProcess::Gone,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("holder process is gone"), "{message}");
    assert!(
        message.contains("pgconverge state unlock dead-holder"),
        "{message}"
    );
    assert_eq!(store.lock_info().expect("read"), Some(holder));
}

#[test]
fn lock_from_another_host_has_unknown_liveness() {
    let scratch = ScratchDir::new();
    let store = store_in(&scratch);
    let holder = LockInfo {
        id: "remote".to_owned(),
        operation: "apply".to_owned(),
        who: "carol@bastion.invalid".to_owned(),
        pid: 0x7fff_fff0,
        created_at: "not a time".to_owned(),
    };
    write_lock(&store, &holder);
    let error = store.lock("apply").expect_err("held remotely");
    assert!(
        matches!(
            error,
            StateError::Locked {
                holder_process: HolderProcess::Unknown,
                held_for: None,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("held since \"not a time\""), "{message}");
    assert!(!message.contains("gone"), "{message}");
}

#[test]
fn unlock_requires_the_matching_id() {
    let scratch = ScratchDir::new();
    let store = store_in(&scratch);
    let lock = store.lock("apply").expect("lock");
    let error = store.unlock("wrong-id").expect_err("wrong id");
    assert!(
        matches!(error, StateError::LockIdMismatch { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("wrong-id"), "{message}");
    assert!(message.contains(lock.id()), "actual id shown: {message}");
    assert!(
        store.lock_path().exists(),
        "a refused unlock keeps the lock"
    );

    store.unlock(lock.id()).expect("matching id");
    assert_eq!(store.lock_info().expect("read"), None);
    let error = store.unlock(lock.id()).expect_err("nothing left to unlock");
    assert!(matches!(error, StateError::NotLocked { .. }), "{error:?}");
}

#[test]
fn dropping_the_lock_releases_it() {
    let scratch = ScratchDir::new();
    let store = store_in(&scratch);
    let lock = store.lock("apply").expect("lock");
    drop(lock);
    assert!(!store.lock_path().exists());
    store
        .lock("apply")
        .expect("lock again")
        .release()
        .expect("explicit release");
    assert!(!store.lock_path().exists());
}

#[test]
fn dropping_a_force_unlocked_lock_leaves_the_new_holder_alone() {
    let scratch = ScratchDir::new();
    let store = store_in(&scratch);
    let forgotten = store.lock("apply").expect("first");
    store.unlock(forgotten.id()).expect("force unlock");
    let current = store.lock("apply").expect("second");
    drop(forgotten);
    assert_eq!(
        store.lock_info().expect("read").map(|info| info.id),
        Some(current.id().to_owned())
    );
}

#[test]
fn exactly_one_of_many_concurrent_lockers_wins() {
    let scratch = ScratchDir::new();
    let store = store_in(&scratch);
    let contenders = 8;
    let start = Arc::new(Barrier::new(contenders));
    let handles: Vec<_> = (0..contenders)
        .map(|index| {
            let store = store.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                store.lock(&format!("apply-{index}"))
            })
        })
        .collect();
    // Keep every result (and so the winning lock) alive until all threads have finished.
    let results: Vec<Result<StateLock, StateError>> = handles
        .into_iter()
        .map(|handle| handle.join().expect("thread finished"))
        .collect();
    let winners: Vec<&StateLock> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for result in &results {
        if let Err(error) = result {
            assert!(
                matches!(error, StateError::Locked { holder, .. } if holder.id == winners[0].id()),
                "{error:?}"
            );
        }
    }
    let leftovers: Vec<_> = fs::read_dir(scratch.path())
        .expect("list")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["state.json.lock"],
        "no staging files left behind"
    );
}

#[test]
fn corrupt_lock_file_is_an_error_naming_it() {
    let scratch = ScratchDir::new();
    let store = store_in(&scratch);
    fs::write(store.lock_path(), "{\"id\": ").expect("write");
    let message = store.lock("apply").expect_err("corrupt lock").to_string();
    assert!(
        message.contains(&store.lock_path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("line 1"), "{message}");
    assert!(matches!(
        store.lock_info(),
        Err(StateError::LockCorrupt { .. })
    ));
}

#[cfg(unix)]
#[test]
fn lock_file_is_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = ScratchDir::new();
    let store = store_in(&scratch);
    let _lock = store.lock("apply").expect("lock");
    let mode = fs::metadata(store.lock_path())
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
