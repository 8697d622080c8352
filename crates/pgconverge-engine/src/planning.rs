//! Planning against the live cluster: the catalogs just read plus the objects the state says
//! pgconverge manages.

use std::collections::{BTreeMap, BTreeSet};

use pgconverge_model::ObjectAddress;
use pgconverge_plan::lifecycle::DepartingNode;
use pgconverge_plan::plan::make_plan_for;
use pgconverge_plan::{Plan, PlanInput};
use pgconverge_state::StateFile;

use crate::context::Cluster;
use crate::error::EngineError;
use crate::introspection::Catalogs;

impl Cluster {
    /// Reads the state and every node, then plans and runs the plan's data checks (see
    /// `preflight`). Takes no lock: the plan is only shown or saved, and a saved plan is
    /// checked for staleness and its data checks run again when applied.
    pub async fn plan(&self) -> Result<Plan, EngineError> {
        let state = self.store.load().map_err(EngineError::State)?;
        let catalogs = self.introspect().await?;
        let departing = self.read_departing(state.as_ref()).await;
        let plan = self.plan_with(&catalogs, &departing.nodes, state.as_ref())?;
        self.preflight(&plan).await?;
        Ok(plan)
    }

    /// The plan for catalogs already read, the leaving nodes as read, and the given state.
    pub fn plan_with(
        &self,
        catalogs: &Catalogs,
        departing: &BTreeMap<String, DepartingNode>,
        state: Option<&StateFile>,
    ) -> Result<Plan, EngineError> {
        let managed = managed_from_state(state);
        let applied = applied_from_state(state);
        make_plan_for(
            &PlanInput {
                config: &self.config,
                observed: catalogs,
                managed: &managed,
                applied: &applied,
                departing,
                donor: self.donor.as_deref(),
            },
            &self.desired,
        )
        .map_err(EngineError::Plan)
    }
}

/// The fingerprints of managed objects' definitions recorded after the last apply, per node.
/// An entry whose address no longer parses is left out (its object then counts as before).
fn applied_from_state(
    state: Option<&StateFile>,
) -> BTreeMap<String, BTreeMap<ObjectAddress, String>> {
    state
        .map(|s| {
            s.nodes
                .iter()
                .map(|(name, n)| {
                    let definitions = n
                        .applied_definitions
                        .iter()
                        .filter_map(|(text, f)| Some((text.parse().ok()?, f.clone())))
                        .collect();
                    (name.clone(), definitions)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Objects pgconverge created, per node, as recorded in the state.
fn managed_from_state(state: Option<&StateFile>) -> BTreeMap<String, BTreeSet<ObjectAddress>> {
    state
        .map(|s| {
            s.nodes
                .iter()
                .map(|(name, n)| (name.clone(), n.managed.clone()))
                .collect()
        })
        .unwrap_or_default()
}
