//! Nodes leaving the mesh: named in the state, no longer in the config. Each is reached with
//! the connection the state recorded for it and its password from the environment, a
//! password command or `.pgpass` (the state never holds a password), and read like any
//! node; one that cannot be read is planned for as unreachable, never an error.

use std::collections::BTreeMap;

use pgconverge_model::NodeConfig;
use pgconverge_plan::lifecycle::DepartingNode;
use pgconverge_postgres::credentials::resolve_password;
use pgconverge_postgres::introspect::introspect_nodes;
use pgconverge_state::StateFile;

use crate::context::{Cluster, Secrets};

/// The leaving nodes as read now, with the secrets and connections to reach them.
#[derive(Default)]
pub struct Departing {
    pub nodes: BTreeMap<String, DepartingNode>,
    /// Connections of the reachable ones.
    pub connections: BTreeMap<String, NodeConfig>,
    pub secrets: Secrets,
}

impl Cluster {
    /// Reads every node the state names and the config does not.
    pub(crate) async fn read_departing(&self, state: Option<&StateFile>) -> Departing {
        let mut departing = Departing::default();
        let Some(state) = state else {
            return departing;
        };
        let mut reachable = Vec::new();
        for (name, node_state) in &state.nodes {
            if self.config.nodes.iter().any(|n| &n.name == name) {
                continue;
            }
            match &node_state.connection {
                None => {
                    let error = "the state records no address for it (written by an older \
                                 pgconverge)"
                        .to_string();
                    departing
                        .nodes
                        .insert(name.clone(), DepartingNode::Unreachable { error });
                }
                Some(connection) => reachable.push(connection.clone()),
            }
        }
        let env = |name: &str| std::env::var(name).ok();
        let mut to_read = Vec::new();
        for node in reachable {
            match resolve_password(&node, &env) {
                Ok(secret) => {
                    if let Some(secret) = &secret {
                        departing.secrets.insert(node.name.clone(), secret.clone());
                    }
                    to_read.push((node, secret));
                }
                Err(error) => {
                    let error = format!("password: {error}");
                    departing
                        .nodes
                        .insert(node.name.clone(), DepartingNode::Unreachable { error });
                }
            }
        }
        let results = introspect_nodes(&to_read, &self.scope()).await;
        for ((node, _), result) in to_read.into_iter().zip(results) {
            let entry = match result {
                Ok(catalog) => {
                    departing
                        .connections
                        .insert(node.name.clone(), node.clone());
                    DepartingNode::Reachable(Box::new(catalog))
                }
                Err(error) => DepartingNode::Unreachable {
                    error: error.to_string(),
                },
            };
            departing.nodes.insert(node.name, entry);
        }
        departing
    }
}
