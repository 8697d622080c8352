//! Whether a saved plan still fits the cluster: the configuration and every node's
//! structural catalog must be what they were when the plan was made.

use std::path::Path;

use pgconverge_model::ClusterConfig;
use pgconverge_plan::plan::{catalog_fingerprint, config_fingerprint};
use pgconverge_plan::Plan;

use crate::error::{EngineError, StaleReason};
use crate::introspection::Catalogs;

/// Refuses a plan read from `path` that no longer fits `config` and `catalogs`.
pub(super) fn refuse_if_stale(
    plan: &Plan,
    config: &ClusterConfig,
    catalogs: &Catalogs,
    path: &Path,
) -> Result<(), EngineError> {
    let reasons = stale_reasons(plan, config, catalogs);
    if reasons.is_empty() {
        return Ok(());
    }
    Err(EngineError::StalePlan {
        path: path.to_owned(),
        reasons,
    })
}

fn stale_reasons(plan: &Plan, config: &ClusterConfig, catalogs: &Catalogs) -> Vec<StaleReason> {
    let mut reasons = Vec::new();
    if plan.config_fingerprint != config_fingerprint(config) {
        reasons.push(StaleReason::ConfigChanged);
    }
    for (node, catalog) in catalogs {
        match plan.node_fingerprints.get(node) {
            Some(fp) if *fp == catalog_fingerprint(catalog) => {}
            Some(_) => reasons.push(StaleReason::NodeChanged(node.clone())),
            None => reasons.push(StaleReason::NodeNotInPlan(node.clone())),
        }
    }
    for node in plan.node_fingerprints.keys() {
        if !catalogs.contains_key(node) {
            reasons.push(StaleReason::NodeNoLongerConfigured(node.clone()));
        }
    }
    reasons
}
