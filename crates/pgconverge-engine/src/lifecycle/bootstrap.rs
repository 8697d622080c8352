//! A joining node's bootstrap. The joiner's slots on every member already exist (earlier
//! steps). First the donor must have applied each other member's changes up to where the
//! joiner's slot on that member starts; then the donor's rows and registers are copied under
//! one snapshot into the joiner, in one transaction that also writes its membership record.
//! Killed at any point, nothing is half-done: the copy commits whole or not at all, the
//! slots keep their positions until the joiner's subscriptions consume them, and the next
//! apply plans the bootstrap again until the record exists.

use pgconverge_plan::lifecycle::{BootstrapSpec, CatchUpWait, MergeCount, MergeStatement};
use pgconverge_postgres::lifecycle::{
    copy_into_joiner, nudge_wal, slot_position, CopySpec, SlotPosition, TableCopy,
};

use super::StepContext;
use crate::apply::StepProgress;

pub(super) async fn run(ctx: &StepContext<'_>, spec: &BootstrapSpec) -> Result<(), String> {
    let joiner_name = ctx.step.change.node.as_str();
    for wait in &spec.catch_up {
        donor_catches_up(ctx, spec, wait).await?;
    }
    let mut donor = ctx.connect(&spec.donor).await?;
    let donor_slot = slot_position(&donor, &spec.donor_slot)
        .await
        .map_err(|e| format!("node {}: {e}", spec.donor))?;
    if donor_slot == SlotPosition::Missing {
        return Err(format!(
            "slot {} on {} is missing: run apply again to create it",
            spec.donor_slot, spec.donor
        ));
    }
    let mut joiner = ctx.connect(joiner_name).await?;
    let merge = spec.merge.as_ref();
    let copy = CopySpec {
        joiner_setup_sql: spec.joiner_setup_sql.clone(),
        joiner_before_copy_sql: merge.map_or_else(Vec::new, |m| m.before_copy_sql.clone()),
        tables: spec
            .tables
            .iter()
            .map(|t| TableCopy {
                label: t.table.to_string(),
                copy_out_sql: t.copy_out_sql.clone(),
                copy_in_sql: t.copy_in_sql.clone(),
                holds_rows_sql: t.holds_rows_sql.clone(),
            })
            .collect(),
        joiner_after_copy_sql: merge.map_or_else(Vec::new, |m| {
            m.after_copy.iter().map(|s| s.sql.clone()).collect()
        }),
        joiner_finish_sql: spec.joiner_after_copy_sql(),
    };
    let estimated_bytes = spec.estimated_bytes.max(0) as u64;
    let report = copy_into_joiner(&mut donor, &mut joiner, &copy, &mut |p| {
        ctx.progress(StepProgress::Copying {
            table: p.table,
            bytes: p.bytes,
            estimated_bytes,
            rows: p.rows,
        })
    })
    .await
    .map_err(|e| format!("copying from {} into {joiner_name}: {e}", spec.donor))?;
    ctx.progress(StepProgress::Copied {
        rows: report.rows,
        bytes: report.bytes,
    });
    if let Some(merge) = merge {
        for outcome in merge_outcomes(&merge.after_copy, &report.after_copy_rows) {
            ctx.progress(StepProgress::Merged {
                table: &outcome.table,
                kept: outcome.kept,
                won: outcome.won,
                lost: outcome.lost,
            });
        }
    }
    Ok(())
}

/// What a merge did to one table's rows.
#[derive(Debug, Default, PartialEq, Eq)]
struct MergeOutcome {
    table: String,
    kept: u64,
    won: u64,
    lost: u64,
}

/// Per table, in the order the statements first name them: the counts of the merge
/// statements' affected rows, by what each statement counts.
fn merge_outcomes(statements: &[MergeStatement], rows: &[u64]) -> Vec<MergeOutcome> {
    let mut outcomes: Vec<MergeOutcome> = Vec::new();
    for (statement, &rows) in statements.iter().zip(rows) {
        let Some(table) = &statement.table else {
            continue;
        };
        let label = table.to_string();
        let index = match outcomes.iter().position(|o| o.table == label) {
            Some(i) => i,
            None => {
                outcomes.push(MergeOutcome {
                    table: label,
                    ..MergeOutcome::default()
                });
                outcomes.len() - 1
            }
        };
        let outcome = &mut outcomes[index];
        match statement.counts {
            MergeCount::Nothing => {}
            MergeCount::Lost => outcome.lost += rows,
            MergeCount::Won => outcome.won += rows,
            MergeCount::Kept => outcome.kept += rows,
        }
    }
    outcomes
}

/// Waits until the donor has applied `wait.publisher`'s changes up to the start of the
/// joiner's slot there: what the publisher committed before that point must be in the copy.
async fn donor_catches_up(
    ctx: &StepContext<'_>,
    spec: &BootstrapSpec,
    wait: &CatchUpWait,
) -> Result<(), String> {
    let publisher = ctx.connect(&wait.publisher).await?;
    let on_publisher = |e: &dyn std::fmt::Display| format!("node {}: {e}", wait.publisher);
    let start = match slot_position(&publisher, &wait.joiner_slot)
        .await
        .map_err(|e| on_publisher(&e))?
    {
        SlotPosition::Confirmed(start) => start,
        _ => {
            return Err(format!(
                "slot {} on {} is missing: run apply again to create it",
                wait.joiner_slot, wait.publisher
            ))
        }
    };
    // Moves the publisher's WAL past `start` so an idle publisher's keepalives carry the
    // donor's confirmation beyond it.
    nudge_wal(&publisher).await.map_err(|e| on_publisher(&e))?;
    let what = format!("{} to apply {}'s changes", spec.donor, wait.publisher);
    ctx.wait_until_applied(&publisher, &wait.donor_slot, &spec.donor, start, &what)
        .await
}
