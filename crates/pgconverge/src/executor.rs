//! Runs a plan: each node's steps in plan order on one connection, nodes in parallel up to
//! `--parallelism`, a step waiting for its dependencies on other nodes. After the first
//! failure no new step starts; the report says what was applied and what failed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pgconverge_model::ClusterConfig;
use pgconverge_plan::dag::OrderedChange;
use pgconverge_plan::Plan;
use pgconverge_postgres::connect::{connect, set_session_defaults};
use pgconverge_postgres::execute::execute_statements;
use tokio::sync::{watch, Semaphore};

use crate::cluster::Secrets;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    Applied,
    Failed(String),
    /// Not started because another step failed first.
    NotStarted,
}

pub struct ApplyReport {
    /// Outcome of every step, by step id.
    pub outcomes: BTreeMap<usize, StepOutcome>,
}

impl ApplyReport {
    pub fn applied(&self) -> usize {
        self.outcomes
            .values()
            .filter(|o| **o == StepOutcome::Applied)
            .count()
    }
    pub fn failures(&self) -> Vec<(usize, &str)> {
        self.outcomes
            .iter()
            .filter_map(|(id, o)| match o {
                StepOutcome::Failed(msg) => Some((*id, msg.as_str())),
                _ => None,
            })
            .collect()
    }
}

#[derive(Default)]
struct Progress {
    done: BTreeMap<usize, StepOutcome>,
    aborted: bool,
}

pub async fn apply_plan(
    plan: &Plan,
    config: &ClusterConfig,
    secrets: &Secrets,
    parallelism: usize,
) -> ApplyReport {
    let progress = Arc::new(Mutex::new(Progress::default()));
    let (tick_tx, tick_rx) = watch::channel(0u64);
    let tick_tx = Arc::new(tick_tx);
    let permits = Arc::new(Semaphore::new(parallelism.max(1)));
    let secrets = Arc::new(secrets.clone());
    let mut tasks = Vec::new();
    for node in &config.nodes {
        let steps: Vec<OrderedChange> = plan
            .steps
            .iter()
            .filter(|s| s.change.node == node.name)
            .cloned()
            .collect();
        if steps.is_empty() {
            continue;
        }
        let node = node.clone();
        let progress = Arc::clone(&progress);
        let tick_tx = Arc::clone(&tick_tx);
        let mut tick_rx = tick_rx.clone();
        let permits = Arc::clone(&permits);
        let secrets = Arc::clone(&secrets);
        tasks.push(tokio::spawn(async move {
            let finish = |id: usize, outcome: StepOutcome| {
                let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
                if matches!(outcome, StepOutcome::Failed(_)) {
                    p.aborted = true;
                }
                p.done.insert(id, outcome);
                drop(p);
                tick_tx.send_modify(|t| *t += 1);
            };
            let mut client = match connect(&node, secrets.get(&node.name)).await {
                Ok(client) => client,
                Err(err) => {
                    let message = err.to_string();
                    for (i, s) in steps.iter().enumerate() {
                        finish(
                            s.id,
                            if i == 0 {
                                StepOutcome::Failed(message.clone())
                            } else {
                                StepOutcome::NotStarted
                            },
                        );
                    }
                    return;
                }
            };
            if let Err(err) = set_session_defaults(&client).await {
                for (i, s) in steps.iter().enumerate() {
                    finish(
                        s.id,
                        if i == 0 {
                            StepOutcome::Failed(err.to_string())
                        } else {
                            StepOutcome::NotStarted
                        },
                    );
                }
                return;
            }
            for (index, step) in steps.iter().enumerate() {
                // Wait until every dependency is applied, or give up if the run aborted.
                let runnable = loop {
                    {
                        let p = progress.lock().unwrap_or_else(|e| e.into_inner());
                        if p.aborted {
                            break false;
                        }
                        let mut ready = true;
                        for dep in &step.depends_on {
                            match p.done.get(dep) {
                                Some(StepOutcome::Applied) => {}
                                Some(_) => {
                                    ready = false;
                                    break;
                                }
                                None => ready = false,
                            }
                        }
                        if ready {
                            break true;
                        }
                    }
                    if tick_rx.changed().await.is_err() {
                        break false;
                    }
                };
                if !runnable {
                    for s in &steps[index..] {
                        finish(s.id, StepOutcome::NotStarted);
                    }
                    return;
                }
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                let statements: Vec<String> = step
                    .change
                    .statements
                    .iter()
                    .map(|st| st.render(&|n| secrets.get(n).map(|s| s.expose().to_string())))
                    .collect();
                let started = Instant::now();
                let result =
                    execute_statements(&mut client, &statements, step.change.transactional).await;
                let c = &step.change;
                match result {
                    Ok(()) => {
                        println!(
                            "{}: {} {} … done ({} ms)",
                            c.node,
                            c.action.symbol(),
                            c.address,
                            started.elapsed().as_millis()
                        );
                        finish(step.id, StepOutcome::Applied);
                    }
                    Err(err) => {
                        let mut message = err.to_string();
                        if let Some(detail) = err.detail() {
                            message.push_str(&format!(" (detail: {detail})"));
                        }
                        if let Some(hint) = err.hint() {
                            message.push_str(&format!(" (hint: {hint})"));
                        }
                        println!("{}: {} {} … FAILED", c.node, c.action.symbol(), c.address);
                        finish(step.id, StepOutcome::Failed(message));
                        for s in &steps[index + 1..] {
                            finish(s.id, StepOutcome::NotStarted);
                        }
                        return;
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut progress = progress.lock().unwrap_or_else(|e| e.into_inner());
    for step in &plan.steps {
        progress
            .done
            .entry(step.id)
            .or_insert(StepOutcome::NotStarted);
    }
    ApplyReport {
        outcomes: std::mem::take(&mut progress.done),
    }
}
