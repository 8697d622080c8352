//! The proof after a successful apply: planning again from fresh catalogs finds nothing.

use std::collections::BTreeMap;

use pgconverge_state::StateFile;

use crate::context::Cluster;
use crate::error::EngineError;
use crate::introspection::Catalogs;

/// Plans from `catalogs` (read after the apply) and the state just recorded; anything left
/// is an error listing it.
pub(super) fn prove(
    cluster: &Cluster,
    catalogs: &Catalogs,
    state: &StateFile,
) -> Result<(), EngineError> {
    // Nodes that left are forgotten by a successful apply: nothing is left to plan for them.
    let again = cluster.plan_with(catalogs, &BTreeMap::new(), Some(state))?;
    if again.has_changes() {
        return Err(EngineError::ProofFailed {
            left: again.steps.into_iter().map(|step| step.change).collect(),
        });
    }
    Ok(())
}
