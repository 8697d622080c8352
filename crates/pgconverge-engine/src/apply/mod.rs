//! Applying a plan: under the state lock, against the catalogs read once the lock is held,
//! then recording the state and proving that planning again finds nothing.

mod executor;
mod gate;
mod lock;
mod observer;
mod proof;
mod record;
mod staleness;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use pgconverge_model::NodeConfig;
use pgconverge_plan::{Plan, Summary};
use pgconverge_state::{StateFile, StateLock, StateStore};

pub use observer::{ApplyObserver, StepEvent, StepProgress};

use crate::context::Cluster;
use crate::error::{EngineError, StepFailure};
use crate::introspection::Catalogs;
use crate::lifecycle::departing::Departing;
use crate::plan_file;

/// An apply in progress: the state lock is held until it is dropped or applied, so the
/// caller can show the plan and ask for confirmation before anything changes.
pub struct ApplySession<'c> {
    cluster: &'c Cluster,
    observer: Arc<dyn ApplyObserver>,
    _lock: StateLock,
    state: Option<StateFile>,
    catalogs: Catalogs,
    departing: Departing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The plan had no steps; the state was recorded.
    NoChanges,
    /// Every step was applied and planning again finds nothing left.
    Applied { summary: Summary },
}

impl Cluster {
    /// Takes the state lock, then reads the state and every node.
    pub async fn begin_apply(
        &self,
        observer: Arc<dyn ApplyObserver>,
    ) -> Result<ApplySession<'_>, EngineError> {
        let lock = lock::take(&self.store, observer.as_ref())?;
        let state = self.store.load().map_err(EngineError::State)?;
        let catalogs = self.introspect().await?;
        let departing = self.read_departing(state.as_ref()).await;
        Ok(ApplySession {
            cluster: self,
            observer,
            _lock: lock,
            state,
            catalogs,
            departing,
        })
    }
}

impl ApplySession<'_> {
    /// A plan made from the catalogs read when the session began, refused when rows on a
    /// node break what a change needs (see `preflight`).
    pub async fn plan(&self) -> Result<Plan, EngineError> {
        let plan =
            self.cluster
                .plan_with(&self.catalogs, &self.departing.nodes, self.state.as_ref())?;
        self.cluster.preflight(&plan).await?;
        Ok(plan)
    }

    /// The plan saved at `path`, refused when the configuration or any node has changed
    /// since it was made, or when rows on a node break what a change needs.
    pub async fn saved_plan(&self, path: &Path) -> Result<Plan, EngineError> {
        let plan = plan_file::read(path)?;
        staleness::refuse_if_stale(&plan, &self.cluster.config, &self.catalogs, path)?;
        self.cluster.preflight(&plan).await?;
        Ok(plan)
    }

    /// Runs `plan`'s steps (up to `parallelism` at once), records the state, then plans
    /// again from fresh catalogs to prove nothing is left.
    pub async fn apply(self, plan: &Plan, parallelism: usize) -> Result<ApplyOutcome, EngineError> {
        if !plan.blockers.is_empty() {
            return Err(EngineError::Prerequisites);
        }
        let cluster = self.cluster;
        let mut state = self.state.unwrap_or_else(StateStore::new_state);
        if !plan.has_changes() {
            record::adopt_planned(&mut state, plan);
            record::save(
                cluster,
                &mut state,
                plan,
                &self.catalogs,
                0,
                "no changes".into(),
            )?;
            return Ok(ApplyOutcome::NoChanges);
        }

        self.observer.steps_starting(plan);
        // Leaving nodes are reached as the state recorded them.
        let mut nodes: BTreeMap<String, NodeConfig> = self.departing.connections.clone();
        nodes.extend(
            cluster
                .config
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.clone())),
        );
        let mut secrets = self.departing.secrets.clone();
        secrets.extend(cluster.secrets.clone());
        let report = gate::execute_staged(
            plan,
            &nodes,
            &secrets,
            parallelism,
            Arc::clone(&self.observer),
        )
        .await;
        let failures = report.failures();
        // Fresh catalogs for the state's fingerprints (and, on success, for the proof below).
        let after = cluster.introspect().await;
        let applied = report.applied_ids();
        let outcome = match failures.first() {
            None => {
                record::replace_with_planned(&mut state, plan);
                "succeeded".to_string()
            }
            Some((id, _)) => {
                record::add_applied_steps(&mut state, plan, &applied);
                format!("failed at step {}", id + 1)
            }
        };
        let recorded_catalogs = after.as_ref().unwrap_or(&self.catalogs);
        record::save(
            cluster,
            &mut state,
            plan,
            recorded_catalogs,
            applied.len(),
            outcome,
        )?;

        if !failures.is_empty() {
            return Err(EngineError::ApplyFailed {
                applied: applied.len(),
                failed: failures
                    .iter()
                    .map(|(id, message)| step_failure(plan, *id, message))
                    .collect(),
                not_started: report.not_started(),
            });
        }
        proof::prove(cluster, &after?, &state)?;
        Ok(ApplyOutcome::Applied {
            summary: plan.summary(),
        })
    }
}

fn step_failure(plan: &Plan, id: usize, message: &str) -> StepFailure {
    let change = &plan.steps[id].change;
    StepFailure {
        step: id,
        node: change.node.clone(),
        action: change.action,
        address: change.address.clone(),
        message: message.to_string(),
    }
}
