//! A leaving node's drain: its WAL position is taken, and every remaining node that
//! subscribes to it must confirm that position on its slot there; everything the leaving
//! node wrote before is then applied everywhere. Its own statements (stopping its
//! subscriptions) run after, in the step.

use pgconverge_plan::lifecycle::DrainSpec;
use pgconverge_postgres::lifecycle::{current_wal_lsn, nudge_wal, wait_for_confirmed};
use tokio_postgres::Client;

use super::{StepContext, CATCH_UP_TIMEOUT};
use crate::apply::StepProgress;

pub(super) async fn run(
    ctx: &StepContext<'_>,
    leaving: &mut Client,
    spec: &DrainSpec,
) -> Result<(), String> {
    let node = ctx.step.change.node.as_str();
    let target = current_wal_lsn(leaving)
        .await
        .map_err(|e| format!("node {node}: {e}"))?;
    nudge_wal(leaving)
        .await
        .map_err(|e| format!("node {node}: {e}"))?;
    for wait in &spec.waits {
        let what = format!("{} to apply {node}'s changes", wait.subscriber);
        wait_for_confirmed(
            leaving,
            &wait.slot,
            target,
            CATCH_UP_TIMEOUT,
            &mut |behind| {
                ctx.progress(StepProgress::Waiting {
                    what: &what,
                    behind_bytes: behind,
                })
            },
        )
        .await
        .map_err(|e| {
            format!(
                "waiting for {what}: {e}; check that subscription {} on {} is enabled and \
                 replicating (pg_stat_subscription)",
                wait.slot, wait.subscriber
            )
        })?;
    }
    Ok(())
}
