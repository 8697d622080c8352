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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pgconverge_model::NodeCatalog;
    use pgconverge_plan::plan::PLAN_FORMAT_VERSION;

    use super::*;

    fn config() -> ClusterConfig {
        serde_json::from_value(serde_json::json!({ "nodes": [], "tables": [] })).expect("config")
    }

    fn plan(config_fp: String, nodes: &[(&str, String)]) -> Plan {
        Plan {
            format_version: PLAN_FORMAT_VERSION,
            pgconverge_version: "test".into(),
            config_fingerprint: config_fp,
            node_fingerprints: nodes
                .iter()
                .map(|(n, fp)| (n.to_string(), fp.clone()))
                .collect(),
            nodes: Vec::new(),
            blockers: Vec::new(),
            warnings: Vec::new(),
            steps: Vec::new(),
            managed_after: BTreeMap::new(),
            departures: Vec::new(),
        }
    }

    fn catalogs(nodes: &[&str]) -> Catalogs {
        nodes
            .iter()
            .map(|n| (n.to_string(), NodeCatalog::default()))
            .collect()
    }

    #[test]
    fn a_plan_of_the_same_config_and_catalogs_is_fresh() {
        let fp = catalog_fingerprint(&NodeCatalog::default());
        let plan = plan(
            config_fingerprint(&config()),
            &[("n1", fp.clone()), ("n2", fp)],
        );
        assert!(stale_reasons(&plan, &config(), &catalogs(&["n1", "n2"])).is_empty());
        assert!(
            refuse_if_stale(&plan, &config(), &catalogs(&["n1", "n2"]), Path::new("p")).is_ok()
        );
    }

    #[test]
    fn every_difference_is_named() {
        let fp = catalog_fingerprint(&NodeCatalog::default());
        let plan = plan(
            "another config".into(),
            &[("n1", fp), ("n2", "before".into()), ("n4", "gone".into())],
        );
        assert_eq!(
            stale_reasons(&plan, &config(), &catalogs(&["n1", "n2", "n3"])),
            vec![
                StaleReason::ConfigChanged,
                StaleReason::NodeChanged("n2".into()),
                StaleReason::NodeNotInPlan("n3".into()),
                StaleReason::NodeNoLongerConfigured("n4".into()),
            ]
        );
    }
}
