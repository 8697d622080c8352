//! Runs preflight queries on one node: read-only, in one read-only transaction, so every
//! check of the node sees the same rows. Each query returns no row when its check holds, or
//! one row (sample text, count).

use pgconverge_model::NodeConfig;

use crate::connect::connect;
use crate::credentials::Secret;
use crate::introspect::{get, query, NodeError};

/// What one failed query found: a sample and how many rows break the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub sample: String,
    pub count: i64,
}

/// Runs `queries` on `node` and returns one result per query, in order.
pub async fn run_preflight(
    node: &NodeConfig,
    password: Option<&Secret>,
    queries: &[String],
) -> Result<Vec<Option<Finding>>, NodeError> {
    let client = connect(node, password).await?;
    let failed = |error| NodeError::Introspect {
        node: node.name.clone(),
        error,
    };
    query(
        &client,
        "preflight checks",
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        &[],
    )
    .await
    .map_err(failed)?;
    let mut findings = Vec::with_capacity(queries.len());
    for sql in queries {
        let rows = query(&client, "preflight checks", sql, &[])
            .await
            .map_err(failed)?;
        let finding = match rows.first() {
            None => None,
            Some(row) => Some(Finding {
                sample: get::<Option<String>>(row, 0, "preflight checks")
                    .map_err(failed)?
                    .unwrap_or_else(|| "(NULL)".into()),
                count: get(row, 1, "preflight checks").map_err(failed)?,
            }),
        };
        findings.push(finding);
    }
    query(&client, "preflight checks", "COMMIT", &[])
        .await
        .map_err(failed)?;
    Ok(findings)
}
