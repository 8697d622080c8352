//! Reading the whole cluster: every node's catalog at once, in the scope the plan needs.

use std::collections::BTreeMap;

use pgconverge_model::catalog::NodeCatalog;
use pgconverge_model::naming::INTERNAL_SCHEMA;
use pgconverge_plan::plan::expected_function_fingerprints;
use pgconverge_postgres::introspect::{introspect_nodes, IntrospectScope};

use crate::context::Cluster;
use crate::error::{EngineError, NodeFailure};

/// Live catalog of every configured node, by node name.
pub type Catalogs = BTreeMap<String, NodeCatalog>;

impl Cluster {
    /// Introspects every node at once; any unreachable node is an error naming it.
    pub async fn introspect(&self) -> Result<Catalogs, EngineError> {
        let nodes = self.nodes_with_secrets();
        let results = introspect_nodes(&nodes, &self.scope()).await;
        let mut catalogs = BTreeMap::new();
        let mut failures = Vec::new();
        for (node, result) in self.config.nodes.iter().zip(results) {
            match result {
                Ok(catalog) => {
                    catalogs.insert(node.name.clone(), catalog);
                }
                Err(error) => failures.push(NodeFailure {
                    node: node.name.clone(),
                    error,
                }),
            }
        }
        if !failures.is_empty() {
            return Err(EngineError::Unreachable { failures });
        }
        Ok(catalogs)
    }

    /// Schemas whose objects pgconverge reads: the internal one and every table and type
    /// schema.
    pub(crate) fn scope(&self) -> IntrospectScope {
        let mut schemas: Vec<String> = vec![INTERNAL_SCHEMA.to_string()];
        let type_schemas = self.config.types.iter().map(|t| &t.schema);
        for schema in type_schemas.chain(self.config.tables.iter().map(|t| &t.schema)) {
            if !schemas.contains(schema) {
                schemas.push(schema.clone());
            }
        }
        IntrospectScope {
            schemas,
            expected_function_fingerprints: expected_function_fingerprints(&self.desired),
        }
    }
}
