//! A cluster to operate on: its configuration, every node's password, the desired state
//! derived once, and the state store.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pgconverge_model::{ClusterConfig, NodeConfig};
use pgconverge_plan::desired::{desired_cluster, DesiredNode};
use pgconverge_postgres::credentials::{resolve_password, Secret};
use pgconverge_state::StateStore;

use crate::error::EngineError;

/// Password of every node that has one, by node name.
pub type Secrets = BTreeMap<String, Secret>;

pub struct Cluster {
    pub(crate) config: ClusterConfig,
    pub(crate) desired: Vec<DesiredNode>,
    pub(crate) secrets: Secrets,
    pub(crate) store: StateStore,
    /// The donor every joining node copies from, when chosen on the command line.
    pub(crate) donor: Option<String>,
}

impl Cluster {
    /// Resolves every node's password (before any node is contacted) and derives the desired
    /// state. `state_path` is the state file; nothing is read yet.
    pub fn new(config: ClusterConfig, state_path: impl Into<PathBuf>) -> Result<Self, EngineError> {
        let secrets = resolve_secrets(&config)?;
        let desired = desired_cluster(&config);
        Ok(Cluster {
            config,
            desired,
            secrets,
            store: StateStore::new(state_path),
            donor: None,
        })
    }

    /// Joining nodes copy from `donor` instead of the one the plan would choose.
    pub fn with_donor(mut self, donor: Option<String>) -> Self {
        self.donor = donor;
        self
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// Every configured node with its password, in config order: what reading them needs.
    pub(crate) fn nodes_with_secrets(&self) -> Vec<(NodeConfig, Option<Secret>)> {
        self.config
            .nodes
            .iter()
            .map(|n| (n.clone(), self.secrets.get(&n.name).cloned()))
            .collect()
    }
}

/// Every node's password, from its own sources (see `pgconverge_postgres::credentials`).
pub fn resolve_secrets(config: &ClusterConfig) -> Result<Secrets, EngineError> {
    let env = |name: &str| std::env::var(name).ok();
    let mut secrets = BTreeMap::new();
    for node in &config.nodes {
        let secret = resolve_password(node, &env).map_err(|source| EngineError::Password {
            node: node.name.clone(),
            source,
        })?;
        if let Some(secret) = secret {
            secrets.insert(node.name.clone(), secret);
        }
    }
    Ok(secrets)
}

/// The environment variables a node's password may be in, in the order pgconverge reads
/// them: `PGCONVERGE_<NODE>_PASSWORD`, then the node's `password_env`. For scripts a client
/// runs later, which read the same variables rather than have a password written into them.
pub fn password_env_vars(node: &NodeConfig) -> Vec<String> {
    let mut vars = vec![pgconverge_postgres::credentials::node_password_env_var(
        &node.name,
    )];
    vars.extend(node.password_env.iter().cloned());
    vars
}
