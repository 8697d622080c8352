//! Talking to the whole cluster from the CLI: secrets for every node, concurrent
//! introspection, and the plan built from them plus the state file.

use std::collections::{BTreeMap, BTreeSet};

use pgconverge_model::catalog::NodeCatalog;
use pgconverge_model::naming::INTERNAL_SCHEMA;
use pgconverge_model::ClusterConfig;
use pgconverge_plan::desired::DesiredNode;
use pgconverge_plan::plan::{expected_function_fingerprints, make_plan_for};
use pgconverge_plan::{ObjectAddress, Plan, PlanInput};
use pgconverge_postgres::credentials::{resolve_password, Secret};
use pgconverge_postgres::introspect::{introspect_nodes, IntrospectScope};
use pgconverge_state::StateFile;

use crate::error::CommandError;

/// Password of every node that has one, by node name.
pub type Secrets = BTreeMap<String, Secret>;

pub fn resolve_secrets(config: &ClusterConfig) -> Result<Secrets, CommandError> {
    let env = |name: &str| std::env::var(name).ok();
    let mut secrets = BTreeMap::new();
    for node in &config.nodes {
        if let Some(secret) = resolve_password(node, &env)
            .map_err(|err| CommandError::new(format!("password for node {}: {err}", node.name)))?
        {
            secrets.insert(node.name.clone(), secret);
        }
    }
    Ok(secrets)
}

/// Schemas whose objects pgconverge reads: the internal one and every table schema.
pub fn scope(config: &ClusterConfig, desired: &[DesiredNode]) -> IntrospectScope {
    let mut schemas: Vec<String> = vec![INTERNAL_SCHEMA.to_string()];
    for table in &config.tables {
        if !schemas.contains(&table.schema) {
            schemas.push(table.schema.clone());
        }
    }
    IntrospectScope {
        schemas,
        expected_function_fingerprints: expected_function_fingerprints(desired),
    }
}

/// Introspects every node at once; any unreachable node is an error naming it.
pub async fn introspect_cluster(
    config: &ClusterConfig,
    desired: &[DesiredNode],
    secrets: &Secrets,
) -> Result<BTreeMap<String, NodeCatalog>, CommandError> {
    let nodes: Vec<_> = config
        .nodes
        .iter()
        .map(|n| (n.clone(), secrets.get(&n.name).cloned()))
        .collect();
    let results = introspect_nodes(&nodes, &scope(config, desired)).await;
    let mut catalogs = BTreeMap::new();
    let mut failures = Vec::new();
    for (node, result) in config.nodes.iter().zip(results) {
        match result {
            Ok(catalog) => {
                catalogs.insert(node.name.clone(), catalog);
            }
            Err(err) => failures.push(format!("node {}: {err}", node.name)),
        }
    }
    if !failures.is_empty() {
        let count = failures.len();
        return Err(CommandError::new(format!(
            "cannot read {count} node{}; nothing was changed",
            if count == 1 { "" } else { "s" }
        ))
        .with_details(failures)
        .with_hint("check that every node is running and reachable, or start the local ones with `pgconverge sandbox up`"));
    }
    Ok(catalogs)
}

/// Objects pgconverge created, per node, as recorded in the state.
pub fn managed_from_state(state: Option<&StateFile>) -> BTreeMap<String, BTreeSet<ObjectAddress>> {
    state
        .map(|s| {
            s.nodes
                .iter()
                .map(|(name, n)| (name.clone(), n.managed.clone()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn build_plan(
    config: &ClusterConfig,
    desired: &[DesiredNode],
    catalogs: &BTreeMap<String, NodeCatalog>,
    state: Option<&StateFile>,
) -> Result<Plan, CommandError> {
    let managed = managed_from_state(state);
    make_plan_for(
        &PlanInput {
            config,
            observed: catalogs,
            managed: &managed,
        },
        desired,
    )
    .map_err(|err| CommandError::new(format!("cannot plan: {err}")))
}
