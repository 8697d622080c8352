//! `pgconverge apply [PLANFILE]`: shows the plan, asks for confirmation, and has the engine
//! apply it; prints each step as it finishes and the summary.

use std::io::{BufRead, Write};
use std::sync::Arc;

use pgconverge_engine::{ApplyObserver, ApplyOutcome, Cluster, StepEvent, StepProgress};
use pgconverge_model::units::{describe_bytes, thousands};
use pgconverge_plan::dag::OrderedChange;
use pgconverge_plan::lifecycle::LifecycleStep;
use pgconverge_plan::render::human;
use pgconverge_plan::Plan;
use pgconverge_state::LockInfo;

use crate::cli::{ApplyArgs, GlobalArgs};
use crate::config_source::locate_and_load;
use crate::error::{context, CommandError};
use crate::output::use_color;
use crate::progress::ProgressLine;

pub async fn run(global: &GlobalArgs, args: &ApplyArgs) -> Result<u8, CommandError> {
    let (_, config) = locate_and_load(global)?;
    let cluster = Cluster::new(config, &global.state)?.with_donor(args.donor.clone());
    let printer = StepPrinter {
        progress: ProgressLine::on_terminal(),
    };
    let session = cluster.begin_apply(Arc::new(printer)).await?;
    let color = use_color(global);

    let plan = match &args.planfile {
        Some(path) => {
            let plan = session.saved_plan(path).await?;
            print!("{}", human::render(&plan, color));
            plan
        }
        None => {
            let plan = session.plan().await?;
            print!("{}", human::render(&plan, color));
            if plan.blockers.is_empty() && plan.has_changes() && !args.auto_approve && !confirm()? {
                return Err(CommandError::new("apply cancelled; nothing was changed"));
            }
            plan
        }
    };
    match session.apply(&plan, usize::from(args.parallelism)).await? {
        ApplyOutcome::NoChanges => {}
        ApplyOutcome::Applied { summary } => println!(
            "\nApply complete! Resources: {} added, {} changed, {} destroyed.",
            summary.add, summary.change, summary.destroy
        ),
    }
    Ok(0)
}

/// Prints a line per finished step (`n1: + table public.users … done (12 ms)`), a line when a
/// long step (a bootstrap, a drain) starts, and its progress on a terminal.
struct StepPrinter {
    progress: ProgressLine,
}

impl ApplyObserver for StepPrinter {
    fn replacing_stale_lock(&self, holder: &LockInfo) {
        eprintln!(
            "warning: removing the state lock {} left by {} (pid {} is no longer running)",
            holder.id, holder.who, holder.pid
        );
    }

    fn steps_starting(&self, _plan: &Plan) {
        println!();
    }

    fn step(&self, step: &OrderedChange, event: StepEvent<'_>) {
        let c = &step.change;
        match event {
            StepEvent::Started => {
                if let Some(doing) = long_step_verb(step) {
                    println!("{}: {} {} … {doing}", c.node, c.action.symbol(), c.label());
                }
            }
            StepEvent::Applied { elapsed } => {
                self.progress.clear();
                println!(
                    "{}: {} {} … done ({} ms)",
                    c.node,
                    c.action.symbol(),
                    c.label(),
                    elapsed.as_millis()
                )
            }
            StepEvent::Failed { .. } => {
                self.progress.clear();
                println!("{}: {} {} … FAILED", c.node, c.action.symbol(), c.label())
            }
        }
    }

    fn progress(&self, step: &OrderedChange, progress: StepProgress<'_>) {
        if let StepProgress::Copied { rows, bytes } = progress {
            self.progress.clear();
            println!(
                "{}: copied {} rows ({})",
                step.change.node,
                thousands(rows as i64),
                describe_bytes(bytes)
            );
            return;
        }
        if let StepProgress::Merged {
            table,
            kept,
            won,
            lost,
        } = progress
        {
            self.progress.clear();
            println!(
                "{}: merged {table}: {} rows added, {} written again as the newest version, {} older versions set aside in the conflict ledger",
                step.change.node,
                thousands(kept as i64),
                thousands(won as i64),
                thousands(lost as i64)
            );
            return;
        }
        self.progress.show(&step.change.node, progress);
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

/// What a step that involves other nodes is doing while it runs.
fn long_step_verb(step: &OrderedChange) -> Option<&'static str> {
    match step.change.lifecycle.as_ref()? {
        LifecycleStep::Bootstrap(_) => Some("copying"),
        LifecycleStep::Drain(_) => Some("draining"),
    }
}
