//! Taking the state lock for an apply, replacing one left by a run that died on this host.

use pgconverge_state::{HolderProcess, StateError, StateLock, StateStore};

use super::observer::ApplyObserver;
use crate::error::EngineError;

const OPERATION: &str = "apply";

/// Takes the state lock. A lock left by a pgconverge that died on this host is reported to
/// the observer and then replaced; any other holder stops the run.
pub(super) fn take(
    store: &StateStore,
    observer: &dyn ApplyObserver,
) -> Result<StateLock, EngineError> {
    match store.lock(OPERATION) {
        Ok(lock) => Ok(lock),
        Err(StateError::Locked {
            holder,
            holder_process: HolderProcess::Gone,
            ..
        }) => {
            observer.replacing_stale_lock(&holder);
            store
                .unlock(&holder.id)
                .map_err(EngineError::LockTakeover)?;
            store.lock(OPERATION).map_err(EngineError::LockTakeover)
        }
        Err(err) => Err(EngineError::Lock(err)),
    }
}
