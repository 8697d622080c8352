//! Before any node is changed, every data check of the plan runs on its node (all nodes at
//! once); one that finds rows breaking it stops the plan with the table, node and a sample.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use pgconverge_plan::preflight::{DataCheck, DataViolation};
use pgconverge_plan::Plan;
use pgconverge_postgres::preflight::run_preflight;

use crate::context::Cluster;
use crate::error::{EngineError, NodeFailure};

impl Cluster {
    /// Runs the plan's data checks; an error lists every violation found on any node.
    pub async fn preflight(&self, plan: &Plan) -> Result<(), EngineError> {
        let checks = checks_by_node(plan);
        if checks.is_empty() {
            return Ok(());
        }
        let nodes = self.nodes_with_secrets();
        let runs = checks.iter().filter_map(|(name, checks)| {
            let (node, password) = nodes.iter().find(|(n, _)| &n.name == name)?;
            let queries: Vec<String> = checks.iter().map(|check| check.sql()).collect();
            Some(async move {
                let found = run_preflight(node, password.as_ref(), &queries).await;
                (name.clone(), checks, found)
            })
        });
        let mut violations = Vec::new();
        let mut failures = Vec::new();
        for (node, checks, found) in join_all(runs).await {
            match found {
                Ok(findings) => {
                    violations.extend(checks.iter().zip(findings).filter_map(|(check, finding)| {
                        finding.map(|f| DataViolation {
                            node: node.clone(),
                            check: (*check).clone(),
                            count: f.count,
                            sample: f.sample,
                        })
                    }))
                }
                Err(error) => failures.push(NodeFailure { node, error }),
            }
        }
        if !failures.is_empty() {
            return Err(EngineError::Unreachable { failures });
        }
        if !violations.is_empty() {
            return Err(EngineError::Preflight { violations });
        }
        Ok(())
    }
}

/// Each node's checks, once each (a check repeated by several changes runs once).
fn checks_by_node(plan: &Plan) -> BTreeMap<String, Vec<&DataCheck>> {
    let mut by_node: BTreeMap<String, Vec<&DataCheck>> = BTreeMap::new();
    for change in plan.steps.iter().map(|step| &step.change) {
        for check in &change.data_checks {
            let checks = by_node.entry(change.node.clone()).or_default();
            if !checks.contains(&check) {
                checks.push(check);
            }
        }
    }
    by_node
}
