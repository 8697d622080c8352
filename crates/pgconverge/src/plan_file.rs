//! Saved plans (`plan --out`): the plan value plus what it was made from. No secrets: a
//! subscription's password is a reference resolved at apply time.

use std::path::Path;

use pgconverge_plan::Plan;
use serde::{Deserialize, Serialize};

use crate::error::CommandError;

const KIND: &str = "pgconverge-plan";

#[derive(Debug, Serialize, Deserialize)]
pub struct PlanFile {
    /// Always `pgconverge-plan`: tells a plan file from other JSON.
    pub kind: String,
    pub plan: Plan,
}

pub fn write(path: &Path, plan: &Plan) -> Result<(), CommandError> {
    let file = PlanFile {
        kind: KIND.to_string(),
        plan: plan.clone(),
    };
    let text = serde_json::to_string_pretty(&file)
        .map_err(|err| CommandError::new(format!("cannot encode the plan: {err}")))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|err| CommandError::new(format!("cannot create {}: {err}", dir.display())))?;
    }
    std::fs::write(path, text + "\n").map_err(|err| {
        CommandError::new(format!("cannot write plan file {}: {err}", path.display()))
    })
}

pub fn read(path: &Path) -> Result<Plan, CommandError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        CommandError::new(format!("cannot read plan file {}: {err}", path.display()))
    })?;
    let file: PlanFile = serde_json::from_str(&text).map_err(|err| {
        CommandError::new(format!(
            "{}:{}:{}: not a pgconverge plan file: {err}",
            path.display(),
            err.line(),
            err.column()
        ))
    })?;
    if file.kind != KIND {
        return Err(CommandError::new(format!(
            "{}: not a pgconverge plan file",
            path.display()
        )));
    }
    if file.plan.format_version != pgconverge_plan::plan::PLAN_FORMAT_VERSION {
        return Err(CommandError::new(format!(
            "{}: plan format {} is not supported by this pgconverge (expects {})",
            path.display(),
            file.plan.format_version,
            pgconverge_plan::plan::PLAN_FORMAT_VERSION
        ))
        .with_hint("make the plan again with this pgconverge"));
    }
    Ok(file.plan)
}
