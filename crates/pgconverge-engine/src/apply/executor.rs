//! Runs a plan: each node's steps in plan order on one connection, nodes in parallel up to
//! `parallelism`, a step waiting for its dependencies on other nodes. After the first
//! failure no new step starts; the report says what was applied and what failed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pgconverge_model::{NodeConfig, ObjectAddress};
use pgconverge_plan::dag::OrderedChange;
use pgconverge_plan::diff::sql_files::FILE_STATEMENT_INDEX;
use pgconverge_plan::Plan;
use pgconverge_postgres::connect::{connect, set_session_defaults};
use pgconverge_postgres::execute::{execute_statements, line_of_position, ExecError};
use tokio::sync::{watch, Semaphore};
use tokio_postgres::Client;

use super::observer::{ApplyObserver, StepEvent};
use crate::context::Secrets;
use crate::lifecycle::{self, StepContext};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StepOutcome {
    Applied,
    Failed(String),
    /// Not started because another step failed first.
    NotStarted,
}

pub(super) struct ExecutionReport {
    /// Outcome of every step, by step id.
    pub outcomes: BTreeMap<usize, StepOutcome>,
}

impl ExecutionReport {
    pub fn applied_ids(&self) -> BTreeSet<usize> {
        self.ids_where(|o| *o == StepOutcome::Applied)
    }

    pub fn not_started(&self) -> usize {
        self.ids_where(|o| *o == StepOutcome::NotStarted).len()
    }

    /// Failed steps with their messages, by step id.
    pub fn failures(&self) -> Vec<(usize, &str)> {
        self.outcomes
            .iter()
            .filter_map(|(id, o)| match o {
                StepOutcome::Failed(msg) => Some((*id, msg.as_str())),
                _ => None,
            })
            .collect()
    }

    fn ids_where(&self, keep: impl Fn(&StepOutcome) -> bool) -> BTreeSet<usize> {
        self.outcomes
            .iter()
            .filter(|(_, o)| keep(o))
            .map(|(id, _)| *id)
            .collect()
    }
}

/// What the node tasks share: outcomes so far, and whether the run stopped.
#[derive(Default)]
struct Progress {
    done: BTreeMap<usize, StepOutcome>,
    aborted: bool,
}

/// The shared side of a run, one clone per node task.
#[derive(Clone)]
struct Run {
    progress: Arc<Mutex<Progress>>,
    tick_tx: Arc<watch::Sender<u64>>,
    permits: Arc<Semaphore>,
    secrets: Arc<Secrets>,
    observer: Arc<dyn ApplyObserver>,
    /// Every node a step may reach, by name (a bootstrap reaches its donor and the members).
    nodes: Arc<BTreeMap<String, NodeConfig>>,
}

impl Run {
    fn finish(&self, id: usize, outcome: StepOutcome) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(outcome, StepOutcome::Failed(_)) {
            p.aborted = true;
        }
        p.done.insert(id, outcome);
        drop(p);
        self.tick_tx.send_modify(|t| *t += 1);
    }

    /// The first step fails with `message`, the rest are not started.
    fn fail_all(&self, steps: &[OrderedChange], message: String) {
        for (i, s) in steps.iter().enumerate() {
            let outcome = if i == 0 {
                StepOutcome::Failed(message.clone())
            } else {
                StepOutcome::NotStarted
            };
            self.finish(s.id, outcome);
        }
    }

    /// Waits until every dependency of `step` is applied; false if the run stopped first.
    async fn wait_for_dependencies(
        &self,
        step: &OrderedChange,
        tick_rx: &mut watch::Receiver<u64>,
    ) -> bool {
        loop {
            {
                let p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
                if p.aborted {
                    return false;
                }
                let ready = step
                    .depends_on
                    .iter()
                    .all(|dep| p.done.get(dep) == Some(&StepOutcome::Applied));
                if ready {
                    return true;
                }
            }
            if tick_rx.changed().await.is_err() {
                return false;
            }
        }
    }
}

/// Runs the plan's steps whose ids are in `ids`; `done_before` holds the outcomes of steps run
/// earlier (a dependency on one of them is met when it was applied). The report holds both.
pub(super) async fn execute(
    plan: &Plan,
    ids: &BTreeSet<usize>,
    done_before: &BTreeMap<usize, StepOutcome>,
    nodes: &BTreeMap<String, NodeConfig>,
    secrets: &Secrets,
    parallelism: usize,
    observer: Arc<dyn ApplyObserver>,
) -> ExecutionReport {
    let (tick_tx, tick_rx) = watch::channel(0u64);
    let run = Run {
        progress: Arc::new(Mutex::new(Progress {
            done: done_before.clone(),
            aborted: false,
        })),
        tick_tx: Arc::new(tick_tx),
        permits: Arc::new(Semaphore::new(parallelism.max(1))),
        secrets: Arc::new(secrets.clone()),
        observer,
        nodes: Arc::new(nodes.clone()),
    };
    let mut tasks = Vec::new();
    let steps_to_run = || plan.steps.iter().filter(|s| ids.contains(&s.id));
    let mut with_steps: Vec<&str> = Vec::new();
    for step in steps_to_run() {
        if !with_steps.contains(&step.change.node.as_str()) {
            with_steps.push(&step.change.node);
        }
    }
    for node in with_steps.into_iter().filter_map(|n| nodes.get(n)) {
        let steps: Vec<OrderedChange> = steps_to_run()
            .filter(|s| s.change.node == node.name)
            .cloned()
            .collect();
        if steps.is_empty() {
            continue;
        }
        tasks.push(tokio::spawn(run_node(
            run.clone(),
            node.clone(),
            steps,
            tick_rx.clone(),
        )));
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut progress = run.progress.lock().unwrap_or_else(|e| e.into_inner());
    for step in steps_to_run() {
        progress
            .done
            .entry(step.id)
            .or_insert(StepOutcome::NotStarted);
    }
    ExecutionReport {
        outcomes: std::mem::take(&mut progress.done),
    }
}

/// One node's steps, in order, on one connection.
async fn run_node(
    run: Run,
    node: NodeConfig,
    steps: Vec<OrderedChange>,
    mut tick_rx: watch::Receiver<u64>,
) {
    let mut client = match connect(&node, run.secrets.get(&node.name)).await {
        Ok(client) => client,
        Err(err) => return run.fail_all(&steps, err.to_string()),
    };
    if let Err(err) = set_session_defaults(&client).await {
        return run.fail_all(&steps, err.to_string());
    }
    for (index, step) in steps.iter().enumerate() {
        if !run.wait_for_dependencies(step, &mut tick_rx).await {
            for s in &steps[index..] {
                run.finish(s.id, StepOutcome::NotStarted);
            }
            return;
        }
        let Ok(_permit) = run.permits.acquire().await else {
            return;
        };
        if let Err(message) = run_step(&run, &mut client, step).await {
            run.finish(step.id, StepOutcome::Failed(message));
            for s in &steps[index + 1..] {
                run.finish(s.id, StepOutcome::NotStarted);
            }
            return;
        }
        run.finish(step.id, StepOutcome::Applied);
    }
}

/// A step's statements as they run, with the passwords they refer to filled in.
pub(super) fn rendered_statements(step: &OrderedChange, secrets: &Secrets) -> Vec<String> {
    step.change
        .statements
        .iter()
        .map(|st| st.render(&|n| secrets.get(n).map(|s| s.expose().to_string())))
        .collect()
}

/// Runs one step's statements, reporting it to the observer; the error is the message.
async fn run_step(run: &Run, client: &mut Client, step: &OrderedChange) -> Result<(), String> {
    let statements = rendered_statements(step, &run.secrets);
    run.observer.step(step, StepEvent::Started);
    let started = Instant::now();
    if let Some(lifecycle) = &step.change.lifecycle {
        let ctx = StepContext {
            nodes: &run.nodes,
            secrets: &run.secrets,
            observer: run.observer.as_ref(),
            step,
        };
        if let Err(message) = lifecycle::run(&ctx, client, lifecycle).await {
            run.observer
                .step(step, StepEvent::Failed { message: &message });
            return Err(message);
        }
    }
    match execute_statements(client, &statements, step.change.transactional).await {
        Ok(()) => {
            let elapsed = started.elapsed();
            run.observer.step(step, StepEvent::Applied { elapsed });
            Ok(())
        }
        Err(err) => {
            let message = match &step.change.address {
                ObjectAddress::SqlFile { .. } => sql_file_failure(&statements, &err),
                _ => failure_message(&err),
            };
            run.observer
                .step(step, StepEvent::Failed { message: &message });
            Err(message)
        }
    }
}

/// A SQL file's failure (the step names the file and the node) gives the line of the file
/// where the server places the error, when it does.
fn sql_file_failure(statements: &[String], err: &ExecError) -> String {
    let line = err
        .position
        .filter(|_| err.statement_index == Some(FILE_STATEMENT_INDEX))
        .zip(statements.get(FILE_STATEMENT_INDEX))
        .map(|(position, text)| line_of_position(text, position));
    let mut message = match line {
        Some(line) => format!("line {line}: {}", err.error),
        None => err.to_string(),
    };
    if let Some(detail) = err.detail() {
        message.push_str(&format!(" (detail: {detail})"));
    }
    if let Some(hint) = err.hint() {
        message.push_str(&format!(" (hint: {hint})"));
    }
    message
}

/// PostgreSQL's message with its detail and hint, when it gave them.
pub(super) fn failure_message(err: &ExecError) -> String {
    let mut message = err.to_string();
    if let Some(detail) = err.detail() {
        message.push_str(&format!(" (detail: {detail})"));
    }
    if let Some(hint) = err.hint() {
        message.push_str(&format!(" (hint: {hint})"));
    }
    message
}
