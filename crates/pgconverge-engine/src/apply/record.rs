//! Recording an apply in the state: which objects pgconverge now manages on each node, the
//! fingerprints the next run compares against, and the outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use pgconverge_model::ObjectAddress;
use pgconverge_plan::drift::definition_fingerprint;
use pgconverge_plan::plan::{catalog_fingerprint, config_fingerprint};
use pgconverge_plan::{Action, Plan};
use pgconverge_state::{format_rfc3339_utc, ApplyRecord, StateFile};

use crate::context::Cluster;
use crate::error::EngineError;
use crate::introspection::Catalogs;

/// After a plan without steps: adopts what the plan manages (e.g. when the state file was
/// lost and the cluster already matches).
pub(super) fn adopt_planned(state: &mut StateFile, plan: &Plan) {
    for (node, managed) in &plan.managed_after {
        state.nodes.entry(node.clone()).or_default().managed = managed.clone();
    }
}

/// After every step was applied: exactly what the plan manages, on the nodes it names.
pub(super) fn replace_with_planned(state: &mut StateFile, plan: &Plan) {
    state
        .nodes
        .retain(|name, _| plan.managed_after.contains_key(name));
    adopt_planned(state, plan);
}

/// After a failure: the previous set plus what the applied steps created and minus what they
/// dropped. A subscription's slot, created on its publisher, counts as created with it.
pub(super) fn add_applied_steps(state: &mut StateFile, plan: &Plan, applied: &BTreeSet<usize>) {
    let publisher_of: BTreeMap<&str, &str> = plan
        .managed_after
        .iter()
        .flat_map(|(node, addresses)| {
            addresses.iter().filter_map(move |a| match a {
                ObjectAddress::Slot { name } => Some((name.as_str(), node.as_str())),
                _ => None,
            })
        })
        .collect();
    for step in plan.steps.iter().filter(|s| applied.contains(&s.id)) {
        let c = &step.change;
        let entry = state.nodes.entry(c.node.clone()).or_default();
        if c.action == Action::Delete {
            entry.managed.remove(&c.address);
            continue;
        }
        entry.managed.insert(c.address.clone());
        if let ObjectAddress::Subscription { name } = &c.address {
            if let Some(publisher) = publisher_of.get(name.as_str()) {
                state
                    .nodes
                    .entry((*publisher).to_string())
                    .or_default()
                    .managed
                    .insert(ObjectAddress::Slot { name: name.clone() });
            }
        }
    }
}

/// Records fingerprints and the outcome, then saves the state.
pub(super) fn save(
    cluster: &Cluster,
    state: &mut StateFile,
    plan: &Plan,
    catalogs: &Catalogs,
    steps_applied: usize,
    outcome: String,
) -> Result<(), EngineError> {
    state.config_fingerprint = Some(config_fingerprint(&cluster.config));
    // How to reach each node once the config no longer names it (to drain it then).
    for node in &cluster.config.nodes {
        state
            .nodes
            .entry(node.name.clone())
            .or_default()
            .remember_connection(node);
    }
    for (node, catalog) in catalogs {
        let entry = state.nodes.entry(node.clone()).or_default();
        entry.catalog_fingerprint = Some(catalog_fingerprint(catalog));
        entry.applied_definitions = entry
            .managed
            .iter()
            .filter_map(|address| {
                definition_fingerprint(catalog, address).map(|f| (address.to_string(), f))
            })
            .collect();
    }
    state.last_apply = Some(ApplyRecord {
        finished_at: format_rfc3339_utc(SystemTime::now()),
        steps_applied,
        plan_fingerprint: Some(plan.config_fingerprint.clone()),
        outcome,
    });
    cluster.store.save(state).map_err(EngineError::SaveState)
}

#[cfg(test)]
mod tests {
    use pgconverge_model::load::{load_unified, ConfigSource};
    use pgconverge_model::NodeCatalog;
    use pgconverge_plan::{make_plan, PlanInput};
    use pgconverge_state::{NodeState, StateStore};

    use super::*;

    /// The plan for the demo fixture against empty databases: every object is created.
    fn fresh_plan() -> Plan {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/plans/fresh-demo/pgconverge.json"
        );
        let text = std::fs::read_to_string(path).expect("fixture");
        let config = load_unified(&ConfigSource::new("pgconverge.json", text)).expect("config");
        let observed = config
            .nodes
            .iter()
            .map(|n| (n.name.clone(), NodeCatalog::default()))
            .collect();
        make_plan(&PlanInput {
            config: &config,
            observed: &observed,
            managed: &BTreeMap::new(),
            applied: &BTreeMap::new(),
            departing: &BTreeMap::new(),
            donor: None,
        })
        .expect("plan")
    }

    #[test]
    fn after_a_failure_applied_subscriptions_bring_their_slots() {
        let plan = fresh_plan();
        let subscriptions: BTreeSet<usize> = plan
            .steps
            .iter()
            .filter(|s| matches!(s.change.address, ObjectAddress::Subscription { .. }))
            .map(|s| s.id)
            .collect();
        assert!(!subscriptions.is_empty());
        let mut state = StateStore::new_state();
        add_applied_steps(&mut state, &plan, &subscriptions);
        for id in &subscriptions {
            let change = &plan.steps[*id].change;
            let ObjectAddress::Subscription { name } = &change.address else {
                unreachable!()
            };
            assert!(state.nodes[&change.node].managed.contains(&change.address));
            let slot = ObjectAddress::Slot { name: name.clone() };
            let publishers: Vec<&String> = plan
                .managed_after
                .iter()
                .filter(|(_, managed)| managed.contains(&slot))
                .map(|(node, _)| node)
                .collect();
            assert_eq!(publishers.len(), 1, "{slot}");
            assert!(state.nodes[publishers[0]].managed.contains(&slot));
        }
        let recorded: usize = state.nodes.values().map(|n| n.managed.len()).sum();
        assert_eq!(recorded, 2 * subscriptions.len());
    }

    #[test]
    fn after_success_the_state_manages_exactly_the_plan() {
        let plan = fresh_plan();
        let mut state = StateStore::new_state();
        state.nodes.insert("removed".into(), NodeState::default());
        replace_with_planned(&mut state, &plan);
        let managed: BTreeMap<String, BTreeSet<ObjectAddress>> = state
            .nodes
            .into_iter()
            .map(|(node, n)| (node, n.managed))
            .collect();
        assert_eq!(managed, plan.managed_after);
    }
}
