//! When the agent should get traffic (`/readyz`): once its cache is loaded
//! (the agent exists only after that) and the tracker has answered once,
//! or no tracker is configured. Until the tracker answers, pulls work but
//! can only come from the origins; a node whose agent cannot reach the
//! tracker should show as not ready rather than quietly skip the swarm.

use std::time::Duration;

use shoal_telemetry::{Check, Readiness};
use tokio_util::sync::CancellationToken;

use crate::tracker::Tracker;

/// First and longest pause between health probes of the tracker.
const PROBE_FIRST: Duration = Duration::from_millis(200);
const PROBE_MAX: Duration = Duration::from_secs(5);

/// The agent's readiness.
pub(crate) struct AgentReadiness {
    pub(crate) tracker: Tracker,
    pub(crate) shutdown: CancellationToken,
}

impl Readiness for AgentReadiness {
    fn check(&self) -> Check<'_> {
        let result = if self.shutdown.is_cancelled() {
            Err("shutting down".to_string())
        } else if self.tracker.has_answered() {
            Ok(())
        } else {
            Err("the tracker has not answered yet".to_string())
        };
        Box::pin(std::future::ready(result))
    }
}

/// Asks the tracker's health service until it answers SERVING once (an
/// idle agent makes no other tracker call), backing off to [`PROBE_MAX`].
pub(crate) async fn probe_tracker(tracker: Tracker, shutdown: CancellationToken) {
    let mut pause = PROBE_FIRST;
    while !tracker.has_answered() {
        match tracker.probe().await {
            Ok(()) => {
                tracing::info!("tracker answered; agent ready");
                return;
            }
            Err(error) => tracing::debug!(%error, "tracker not answering yet"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(PROBE_MAX);
    }
}
