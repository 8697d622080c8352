//! `pgconverge apply [PLANFILE]`: makes every node match the configuration, records the state,
//! then plans again to prove nothing is left.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::time::SystemTime;

use pgconverge_model::catalog::NodeCatalog;
use pgconverge_plan::address::ObjectAddress;
use pgconverge_plan::plan::{catalog_fingerprint, config_fingerprint};
use pgconverge_plan::render::human;
use pgconverge_plan::{Action, Plan};
use pgconverge_state::{
    format_rfc3339_utc, ApplyRecord, HolderProcess, StateError, StateFile, StateLock, StateStore,
};

use pgconverge_plan::desired::desired_cluster;

use crate::cli::{ApplyArgs, GlobalArgs};
use crate::cluster::{build_plan, introspect_cluster, resolve_secrets};
use crate::config_source::locate_and_load;
use crate::error::{context, CommandError};
use crate::executor::{apply_plan, StepOutcome};
use crate::output::use_color;
use crate::plan_file;

pub async fn run(global: &GlobalArgs, args: &ApplyArgs) -> Result<u8, CommandError> {
    let (_, config) = locate_and_load(global)?;
    let secrets = resolve_secrets(&config)?;
    let desired = desired_cluster(&config);
    let store = StateStore::new(&global.state);
    let _lock = take_lock(&store)?;
    let state = store.load().map_err(context("state"))?;
    let catalogs = introspect_cluster(&config, &desired, &secrets).await?;
    let color = use_color(global);

    let plan = match &args.planfile {
        Some(path) => {
            let plan = plan_file::read(path)?;
            refuse_if_stale(&plan, &config, &catalogs, &path.display().to_string())?;
            print!("{}", human::render(&plan, color));
            plan
        }
        None => {
            let plan = build_plan(&config, &desired, &catalogs, state.as_ref())?;
            print!("{}", human::render(&plan, color));
            if plan.blockers.is_empty() && plan.has_changes() && !args.auto_approve && !confirm()? {
                return Err(CommandError::new("apply cancelled; nothing was changed"));
            }
            plan
        }
    };
    if !plan.blockers.is_empty() {
        return Err(CommandError::new(
            "prerequisites not met; nothing was changed",
        ));
    }

    let mut state = state.unwrap_or_else(StateStore::new_state);
    if !plan.has_changes() {
        record(
            &store,
            &mut state,
            &plan,
            &config,
            &catalogs,
            0,
            "no changes".into(),
            false,
        )?;
        return Ok(0);
    }

    println!();
    let report = apply_plan(&plan, &config, &secrets, usize::from(args.parallelism)).await;
    let failures = report.failures();
    let applied_ids: BTreeSet<usize> = report
        .outcomes
        .iter()
        .filter(|(_, o)| **o == StepOutcome::Applied)
        .map(|(id, _)| *id)
        .collect();
    // Fresh catalogs for the state's fingerprints (and, on success, for the proof below).
    let after = introspect_cluster(&config, &desired, &secrets).await;
    let after_catalogs = after.as_ref().ok();
    let outcome = if failures.is_empty() {
        "succeeded".to_string()
    } else {
        format!("failed at step {}", failures[0].0 + 1)
    };
    let managed_override = failures.is_empty().then(|| plan.managed_after.clone());
    update_managed(&mut state, &plan, &applied_ids, managed_override);
    record(
        &store,
        &mut state,
        &plan,
        &config,
        after_catalogs.unwrap_or(&catalogs),
        report.applied(),
        outcome,
        true,
    )?;

    if !failures.is_empty() {
        let not_started = report
            .outcomes
            .values()
            .filter(|o| **o == StepOutcome::NotStarted)
            .count();
        let details = failures
            .iter()
            .map(|(id, msg)| {
                let step = &plan.steps[*id];
                format!(
                    "step {} on {}: {} {}: {msg}",
                    id + 1,
                    step.change.node,
                    step.change.action.symbol(),
                    step.change.address
                )
            })
            .collect();
        return Err(CommandError::new(format!(
            "apply failed: {} step{} applied, {} failed, {} not started",
            report.applied(),
            if report.applied() == 1 { "" } else { "s" },
            failures.len(),
            not_started
        ))
        .with_details(details)
        .with_hint("fix the cause and run `pgconverge apply` again: it does only what is left"));
    }

    let summary = plan.summary();
    let after_catalogs = after?;
    let proof = build_plan(&config, &desired, &after_catalogs, Some(&state))?;
    if proof.has_changes() {
        let left: Vec<String> = proof
            .steps
            .iter()
            .map(|s| {
                format!(
                    "{} {} on {}",
                    s.change.action.symbol(),
                    s.change.address,
                    s.change.node
                )
            })
            .collect();
        return Err(CommandError::new("apply finished, but planning again still finds changes")
            .with_details(left)
            .with_hint("this is a pgconverge bug or a concurrent change; run `pgconverge plan` to see it"));
    }
    println!(
        "\nApply complete! Resources: {} added, {} changed, {} destroyed.",
        summary.add, summary.change, summary.destroy
    );
    Ok(0)
}

/// Takes the state lock. A lock left by a pgconverge that died on this host is reported and
/// then replaced; any other holder stops the run.
fn take_lock(store: &StateStore) -> Result<StateLock, CommandError> {
    match store.lock("apply") {
        Ok(lock) => Ok(lock),
        Err(StateError::Locked {
            holder,
            holder_process: HolderProcess::Gone,
            ..
        }) => {
            eprintln!(
                "warning: removing the state lock {} left by {} (pid {} is no longer running)",
                holder.id, holder.who, holder.pid
            );
            store.unlock(&holder.id).map_err(context("state lock"))?;
            store.lock("apply").map_err(context("state lock"))
        }
        Err(err) => Err(CommandError::new(err.to_string())),
    }
}

fn confirm() -> Result<bool, CommandError> {
    print!(
        "\nDo you want to perform these actions?\n  pgconverge will perform the actions described above.\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
    );
    std::io::stdout()
        .flush()
        .map_err(context("writing the prompt"))?;
    let mut answer = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(context("reading the answer"))?;
    Ok(read > 0 && answer.trim() == "yes")
}

fn refuse_if_stale(
    plan: &Plan,
    config: &pgconverge_model::ClusterConfig,
    catalogs: &BTreeMap<String, NodeCatalog>,
    path: &str,
) -> Result<(), CommandError> {
    let mut reasons = Vec::new();
    if plan.config_fingerprint != config_fingerprint(config) {
        reasons.push("the configuration changed".to_string());
    }
    for (node, catalog) in catalogs {
        match plan.node_fingerprints.get(node) {
            Some(fp) if *fp == catalog_fingerprint(catalog) => {}
            Some(_) => reasons.push(format!("node {node} changed")),
            None => reasons.push(format!("node {node} is not in the plan")),
        }
    }
    for node in plan.node_fingerprints.keys() {
        if !catalogs.contains_key(node) {
            reasons.push(format!("node {node} is no longer configured"));
        }
    }
    if reasons.is_empty() {
        return Ok(());
    }
    Err(
        CommandError::new(format!("saved plan {path} is stale; nothing was changed"))
            .with_details(reasons)
            .with_hint("run `pgconverge plan --out FILE` again and apply the new plan"),
    )
}

/// Managed objects after an apply: on success exactly what the plan manages; after a failure
/// the previous set plus what was created and minus what was dropped.
fn update_managed(
    state: &mut StateFile,
    plan: &Plan,
    applied: &BTreeSet<usize>,
    complete: Option<BTreeMap<String, BTreeSet<ObjectAddress>>>,
) {
    if let Some(all) = complete {
        state.nodes.retain(|name, _| all.contains_key(name));
        for (node, managed) in all {
            state.nodes.entry(node).or_default().managed = managed;
        }
        return;
    }
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
    for step in &plan.steps {
        if !applied.contains(&step.id) {
            continue;
        }
        let c = &step.change;
        let entry = state.nodes.entry(c.node.clone()).or_default();
        if c.action == Action::Delete {
            entry.managed.remove(&c.address);
        } else {
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
}

#[allow(clippy::too_many_arguments)]
fn record(
    store: &StateStore,
    state: &mut StateFile,
    plan: &Plan,
    config: &pgconverge_model::ClusterConfig,
    catalogs: &BTreeMap<String, NodeCatalog>,
    steps_applied: usize,
    outcome: String,
    // Whether steps ran (a no-op apply adopts the planned managed set instead).
    steps_ran: bool,
) -> Result<(), CommandError> {
    if !steps_ran {
        // A no-op apply still adopts what the plan manages (e.g. a state file lost).
        for (node, managed) in &plan.managed_after {
            state.nodes.entry(node.clone()).or_default().managed = managed.clone();
        }
    }
    state.config_fingerprint = Some(config_fingerprint(config));
    for (node, catalog) in catalogs {
        state
            .nodes
            .entry(node.clone())
            .or_default()
            .catalog_fingerprint = Some(catalog_fingerprint(catalog));
    }
    state.last_apply = Some(ApplyRecord {
        finished_at: format_rfc3339_utc(SystemTime::now()),
        steps_applied,
        plan_fingerprint: Some(plan.config_fingerprint.clone()),
        outcome,
    });
    store.save(state).map_err(context("saving the state"))
}
