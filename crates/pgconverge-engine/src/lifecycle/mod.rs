//! Node lifecycle at run time: the steps of a plan that involve more nodes than their own (a
//! joining node's bootstrap, a leaving node's drain), and finding and reading the nodes that
//! leave the mesh. The plan decides what happens (`pgconverge_plan::lifecycle`); this runs it.
//!
//! - `departing`: nodes the state knows and the config no longer names, read if reachable.
//! - `bootstrap`: wait until the donor has caught up with every member, then copy.
//! - `drain`: wait until every remaining node has applied what the leaving node wrote.

mod bootstrap;
pub(crate) mod departing;
mod drain;

use std::collections::BTreeMap;
use std::time::Duration;

use pgconverge_model::NodeConfig;
use pgconverge_plan::dag::OrderedChange;
use pgconverge_plan::lifecycle::LifecycleStep;
use pgconverge_postgres::connect::{connect, set_session_defaults};
use pgconverge_postgres::lifecycle::{wait_for_confirmed, Lsn};
use tokio_postgres::Client;

use crate::apply::{ApplyObserver, StepProgress};
use crate::context::Secrets;

/// How long a join or a drain waits for a node to apply another's changes before it gives
/// up saying which subscription is behind.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(600);

/// What a lifecycle step needs besides its own node's session.
pub(crate) struct StepContext<'a> {
    /// Every node a step may need to reach (configured and leaving), by name.
    pub nodes: &'a BTreeMap<String, NodeConfig>,
    pub secrets: &'a Secrets,
    pub observer: &'a dyn ApplyObserver,
    pub step: &'a OrderedChange,
}

impl StepContext<'_> {
    /// A new session to `node`, with pgconverge's session settings.
    async fn connect(&self, node: &str) -> Result<Client, String> {
        let config = self.nodes.get(node).ok_or_else(|| {
            format!("node {node} is neither configured nor recorded in the state")
        })?;
        let client = connect(config, self.secrets.get(node))
            .await
            .map_err(|e| e.to_string())?;
        set_session_defaults(&client)
            .await
            .map_err(|e| format!("node {node}: {e}"))?;
        Ok(client)
    }

    fn progress(&self, progress: StepProgress<'_>) {
        self.observer.progress(self.step, progress);
    }

    /// Waits until `subscriber` has applied, through `slot` on `publisher`, everything up to
    /// `target`, reporting how far behind it is; `what` says who waits for what.
    async fn wait_until_applied(
        &self,
        publisher: &Client,
        slot: &str,
        subscriber: &str,
        target: Lsn,
        what: &str,
    ) -> Result<(), String> {
        let mut report = |behind| {
            self.progress(StepProgress::Waiting {
                what,
                behind_bytes: behind,
            })
        };
        wait_for_confirmed(publisher, slot, target, CATCH_UP_TIMEOUT, &mut report)
            .await
            .map_err(|e| {
                format!(
                    "waiting for {what}: {e}; check that subscription {slot} on {subscriber} is \
                     enabled and replicating (pg_stat_subscription)"
                )
            })
    }
}

/// Runs the part of `step` that involves other nodes; its statements run after, as usual.
pub(crate) async fn run(
    ctx: &StepContext<'_>,
    own: &mut Client,
    lifecycle: &LifecycleStep,
) -> Result<(), String> {
    match lifecycle {
        LifecycleStep::Bootstrap(spec) => bootstrap::run(ctx, spec).await,
        LifecycleStep::Drain(spec) => drain::run(ctx, own, spec).await,
    }
}
