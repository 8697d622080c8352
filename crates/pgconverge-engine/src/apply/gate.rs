//! Runs a plan in three stages when it has gated changes (see `pgconverge_plan::gate`): the
//! steps the gated ones depend on, then the gate, then the rest. The gate holds one
//! transaction per node: the gated tables locked in EXCLUSIVE mode (writers and apply workers
//! wait, readers go on), every gated step of the node run in plan order, and COMMIT on every
//! node only once every node ran all of its gated steps; any failure before that rolls back
//! every node, so no node has the new rule while another has not.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;
use pgconverge_model::naming::SESSION_LOCK_TIMEOUT;
use pgconverge_model::NodeConfig;
use pgconverge_plan::dag::OrderedChange;
use pgconverge_plan::gate::gate_locks;
use pgconverge_plan::Plan;
use pgconverge_postgres::connect::{connect, set_session_defaults};
use pgconverge_postgres::execute::ExecError;
use pgconverge_postgres::QueryError;
use pgconverge_sql::quote_qualified;
use tokio_postgres::Client;

use super::executor::{self, failure_message, rendered_statements, ExecutionReport, StepOutcome};
use super::observer::{ApplyObserver, StepEvent};
use crate::context::Secrets;

/// Runs every step of `plan`, the gated ones behind the gate.
pub(super) async fn execute_staged(
    plan: &Plan,
    nodes: &BTreeMap<String, NodeConfig>,
    secrets: &Secrets,
    parallelism: usize,
    observer: Arc<dyn ApplyObserver>,
) -> ExecutionReport {
    let all: BTreeSet<usize> = plan.steps.iter().map(|s| s.id).collect();
    let gated: BTreeSet<usize> = plan
        .steps
        .iter()
        .filter(|s| s.change.gated)
        .map(|s| s.id)
        .collect();
    let before = prerequisites(plan, &gated);
    // The first stage may not need a gated step itself.
    let separable = ancestors(plan, before.iter().copied()).is_disjoint(&gated);
    if gated.is_empty() || !separable {
        let done = BTreeMap::new();
        return executor::execute(plan, &all, &done, nodes, secrets, parallelism, observer).await;
    }

    let run = |ids: BTreeSet<usize>, done: BTreeMap<usize, StepOutcome>| {
        let observer = Arc::clone(&observer);
        async move { executor::execute(plan, &ids, &done, nodes, secrets, parallelism, observer).await }
    };
    let mut outcomes = run(before.clone(), BTreeMap::new()).await.outcomes;
    if outcomes.values().all(|o| *o == StepOutcome::Applied) {
        outcomes.extend(run_gate(plan, &gated, nodes, secrets, observer.as_ref()).await);
    }
    if outcomes.values().all(|o| *o == StepOutcome::Applied) {
        let rest = &(&all - &before) - &gated;
        return run(rest, outcomes).await;
    }
    for id in all {
        outcomes.entry(id).or_insert(StepOutcome::NotStarted);
    }
    ExecutionReport { outcomes }
}

/// The steps not in `gated` that some gated step depends on, directly or not.
fn prerequisites(plan: &Plan, gated: &BTreeSet<usize>) -> BTreeSet<usize> {
    &ancestors(plan, gated.iter().copied()) - gated
}

/// Every step the `from` steps depend on, directly or not (not the `from` steps themselves,
/// unless one depends on another).
fn ancestors(plan: &Plan, from: impl IntoIterator<Item = usize>) -> BTreeSet<usize> {
    let mut found = BTreeSet::new();
    let mut todo: Vec<usize> = from.into_iter().collect();
    while let Some(id) = todo.pop() {
        for dep in plan
            .steps
            .get(id)
            .map(|s| &s.depends_on)
            .into_iter()
            .flatten()
        {
            if found.insert(*dep) {
                todo.push(*dep);
            }
        }
    }
    found
}

/// One node's gated steps, run inside the transaction it holds open until the commit.
struct OpenGate {
    client: Client,
    steps: Vec<OrderedChange>,
}

/// Attempts at taking the gate's locks. Each waits at most `GATE_LOCK_WAIT`, far below the
/// server's deadlock timeout: a writer or apply worker that holds one of the tables and waits
/// for another then never deadlocks with the gate; the gate lets go of everything (every
/// node rolls back) and tries again shortly after.
const GATE_ATTEMPTS: usize = 40;
const GATE_LOCK_WAIT: &str = "250ms";

/// A gate that could not open on a node: the step to blame, the message, and whether it
/// failed while taking its locks (and may be tried again).
type GateFailure = (usize, String, bool);

/// The gate, tried again when it could not take its locks on some node.
async fn run_gate(
    plan: &Plan,
    gated: &BTreeSet<usize>,
    nodes: &BTreeMap<String, NodeConfig>,
    secrets: &Secrets,
    observer: &dyn ApplyObserver,
) -> BTreeMap<usize, StepOutcome> {
    let mut attempt = 1;
    loop {
        match try_gate(plan, gated, nodes, secrets, observer).await {
            Err(_) if attempt < GATE_ATTEMPTS => {
                attempt += 1;
                let pause = 50 + 25 * attempt as u64;
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            Ok(outcomes) | Err(outcomes) => return outcomes,
        }
    }
}

/// The gate itself: every node's gated steps in one transaction per node, committed on all
/// nodes only when all of them ran. `Err` when it failed while taking locks.
async fn try_gate(
    plan: &Plan,
    gated: &BTreeSet<usize>,
    nodes: &BTreeMap<String, NodeConfig>,
    secrets: &Secrets,
    observer: &dyn ApplyObserver,
) -> Result<BTreeMap<usize, StepOutcome>, BTreeMap<usize, StepOutcome>> {
    let mut by_node: BTreeMap<&str, Vec<OrderedChange>> = BTreeMap::new();
    for step in plan.steps.iter().filter(|s| gated.contains(&s.id)) {
        by_node
            .entry(step.change.node.as_str())
            .or_default()
            .push(step.clone());
    }
    let started = Instant::now();
    let opened = join_all(by_node.into_iter().map(|(node, steps)| async move {
        open_gate(nodes.get(node), node, steps, secrets, observer).await
    }))
    .await;

    let mut outcomes = BTreeMap::new();
    let failure = opened.iter().find_map(|r| r.as_ref().err()).cloned();
    if let Some((failed_id, message, locking)) = failure {
        // Every open transaction rolls back when its connection is dropped.
        drop(opened);
        for id in gated {
            let outcome = if *id == failed_id {
                StepOutcome::Failed(message.clone())
            } else {
                StepOutcome::NotStarted
            };
            outcomes.insert(*id, outcome);
        }
        return if locking { Err(outcomes) } else { Ok(outcomes) };
    }
    let open: Vec<OpenGate> = opened.into_iter().filter_map(Result::ok).collect();
    let committed = join_all(open.iter().map(|gate| gate.client.batch_execute("COMMIT"))).await;
    for (gate, result) in open.iter().zip(committed) {
        for step in &gate.steps {
            let outcome = match &result {
                Ok(()) => {
                    let elapsed = started.elapsed();
                    observer.step(step, StepEvent::Applied { elapsed });
                    StepOutcome::Applied
                }
                Err(error) => {
                    let message =
                        format!("commit behind the gate failed: {}", QueryError::from(error));
                    observer.step(step, StepEvent::Failed { message: &message });
                    StepOutcome::Failed(message)
                }
            };
            outcomes.insert(step.id, outcome);
        }
    }
    Ok(outcomes)
}

/// Connects to `node`, begins its transaction, locks the gated tables and runs its gated
/// steps. The error names the step that failed (the node's first when connecting failed).
async fn open_gate(
    node: Option<&NodeConfig>,
    name: &str,
    steps: Vec<OrderedChange>,
    secrets: &Secrets,
    observer: &dyn ApplyObserver,
) -> Result<OpenGate, GateFailure> {
    let first = steps.first().map(|s| s.id).unwrap_or_default();
    let node = node.ok_or_else(|| (first, format!("node {name} is not in the config"), false))?;
    let client = connect(node, secrets.get(&node.name))
        .await
        .map_err(|e| (first, e.to_string(), false))?;
    set_session_defaults(&client)
        .await
        .map_err(|e| (first, e.to_string(), false))?;
    let tables: Vec<String> = gate_locks(steps.iter().map(|s| &s.change))
        .iter()
        .map(|t| quote_qualified(&t.schema, &t.name))
        .collect();
    let mut opening = vec!["BEGIN".to_string()];
    if !tables.is_empty() {
        opening.push(format!("SET LOCAL lock_timeout = '{GATE_LOCK_WAIT}'"));
        opening.push(format!(
            "LOCK TABLE {} IN EXCLUSIVE MODE",
            tables.join(", ")
        ));
        opening.push(format!("SET LOCAL lock_timeout = '{SESSION_LOCK_TIMEOUT}'"));
    }
    for sql in &opening {
        client.batch_execute(sql).await.map_err(|e| {
            (
                first,
                format!("opening the gate: {}", QueryError::from(&e)),
                true,
            )
        })?;
    }
    for step in &steps {
        observer.step(step, StepEvent::Started);
        for (index, sql) in rendered_statements(step, secrets).iter().enumerate() {
            if let Err(error) = client.batch_execute(sql).await {
                let message = failure_message(&ExecError {
                    statement_index: Some(index),
                    error: QueryError::from(&error),
                    position: None,
                });
                observer.step(step, StepEvent::Failed { message: &message });
                return Err((step.id, message, false));
            }
        }
    }
    Ok(OpenGate { client, steps })
}
