//! A leaving node's drain: its WAL position is taken, and every remaining node that
//! subscribes to it must confirm that position on its slot there; everything the leaving
//! node wrote before is then applied everywhere. Its own statements (stopping its
//! subscriptions) run after, in the step.

use pgconverge_plan::lifecycle::DrainSpec;
use pgconverge_postgres::lifecycle::{current_wal_lsn, nudge_wal};
use tokio_postgres::Client;

use super::StepContext;

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
        ctx.wait_until_applied(leaving, &wait.slot, &wait.subscriber, target, &what)
            .await?;
    }
    Ok(())
}
