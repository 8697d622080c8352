//! `pgconverge state show|unlock ID`.

use pgconverge_state::StateStore;

use crate::cli::{GlobalArgs, StateAction, StateArgs};
use crate::error::{context, CommandError};

pub fn run(global: &GlobalArgs, args: &StateArgs) -> Result<u8, CommandError> {
    let store = StateStore::new(&global.state);
    match &args.action {
        StateAction::Show => {
            match store.load().map_err(context("state"))? {
                Some(state) => {
                    let text = serde_json::to_string_pretty(&state)
                        .map_err(context("encoding the state"))?;
                    println!("{text}");
                }
                None => println!(
                    "No state at {} (nothing applied yet).",
                    global.state.display()
                ),
            }
            if let Some(lock) = store.lock_info().map_err(context("state lock"))? {
                eprintln!(
                    "locked: id {} by {} running {:?} (pid {}) since {}",
                    lock.id, lock.who, lock.operation, lock.pid, lock.created_at
                );
            }
            Ok(0)
        }
        StateAction::Unlock { id } => {
            store
                .unlock(id)
                .map_err(|err| CommandError::new(err.to_string()))?;
            println!("Removed the state lock {id}.");
            Ok(0)
        }
    }
}
