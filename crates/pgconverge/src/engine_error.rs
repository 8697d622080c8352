//! How the engine's errors read on the command line: its message, the details it carries,
//! and a hint saying what to do next.

use pgconverge_engine::{EngineError, PlanFileError};

use crate::error::CommandError;

impl From<EngineError> for CommandError {
    fn from(err: EngineError) -> Self {
        let message = err.to_string();
        match err {
            EngineError::Unreachable { failures } => CommandError::new(message)
                .with_details(failures.iter().map(ToString::to_string).collect())
                .with_hint("check that every node is running and reachable, or start the local ones with `pgconverge sandbox up`"),
            EngineError::PlanFile(err) => err.into(),
            EngineError::Preflight { violations } => CommandError::new(message)
                .with_details(violations.iter().map(|v| v.message()).collect())
                .with_hint("fix those rows on every node named (or change the config), then plan again"),
            EngineError::StalePlan { reasons, .. } => CommandError::new(message)
                .with_details(reasons.iter().map(ToString::to_string).collect())
                .with_hint("run `pgconverge plan --out FILE` again and apply the new plan"),
            EngineError::ApplyFailed { failed, .. } => CommandError::new(message)
                .with_details(failed.iter().map(ToString::to_string).collect())
                .with_hint("fix the cause and run `pgconverge apply` again: it does only what is left"),
            EngineError::ProofFailed { left } => CommandError::new(message)
                .with_details(
                    left.iter()
                        .map(|c| format!("{} {} on {}", c.action.symbol(), c.address, c.node))
                        .collect(),
                )
                .with_hint("this is a pgconverge bug or a concurrent change; run `pgconverge plan` to see it"),
            EngineError::Repair { .. } => CommandError::new(message).with_hint(
                "repair needs a role that may SET session_replication_role (a superuser, or \
                 GRANT SET ON PARAMETER session_replication_role) and write the tables; \
                 nothing was changed on that node",
            ),
            _ => CommandError::new(message),
        }
    }
}

impl From<PlanFileError> for CommandError {
    fn from(err: PlanFileError) -> Self {
        let hint = matches!(err, PlanFileError::UnsupportedFormat { .. })
            .then_some("make the plan again with this pgconverge");
        let error = CommandError::new(err.to_string());
        match hint {
            Some(hint) => error.with_hint(hint),
            None => error,
        }
    }
}
