//! Saved plans (`plan --out`): the plan value plus what it was made from. No secrets: a
//! subscription's password is a reference resolved at apply time.

use std::path::{Path, PathBuf};

use pgconverge_plan::plan::PLAN_FORMAT_VERSION;
use pgconverge_plan::Plan;
use serde::{Deserialize, Serialize};

const KIND: &str = "pgconverge-plan";

#[derive(Debug, Serialize, Deserialize)]
pub struct PlanFile {
    /// Always `pgconverge-plan`: tells a plan file from other JSON.
    pub kind: String,
    pub plan: Plan,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("cannot encode the plan: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("cannot create {}: {source}", .dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write plan file {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read plan file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{}:{}: not a pgconverge plan file: {source}", .path.display(), .source.line(), .source.column())]
    Malformed {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: not a pgconverge plan file", .path.display())]
    NotAPlan { path: PathBuf },
    #[error(
        "{}: plan format {found} is not supported by this pgconverge (expects {PLAN_FORMAT_VERSION})",
        .path.display()
    )]
    UnsupportedFormat { path: PathBuf, found: u32 },
}

pub fn write(path: &Path, plan: &Plan) -> Result<(), PlanFileError> {
    let file = PlanFile {
        kind: KIND.to_string(),
        plan: plan.clone(),
    };
    let text = serde_json::to_string_pretty(&file).map_err(PlanFileError::Encode)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PlanFileError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
    }
    std::fs::write(path, text + "\n").map_err(|source| PlanFileError::Write {
        path: path.to_owned(),
        source,
    })
}

pub fn read(path: &Path) -> Result<Plan, PlanFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file: PlanFile =
        serde_json::from_str(&text).map_err(|source| PlanFileError::Malformed {
            path: path.to_owned(),
            source,
        })?;
    if file.kind != KIND {
        return Err(PlanFileError::NotAPlan {
            path: path.to_owned(),
        });
    }
    if file.plan.format_version != PLAN_FORMAT_VERSION {
        return Err(PlanFileError::UnsupportedFormat {
            path: path.to_owned(),
            found: file.plan.format_version,
        });
    }
    Ok(file.plan)
}
