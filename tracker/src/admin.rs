//! The tracker's HTTP admin listener (`metrics_listen`): `/metrics`,
//! `/healthz`, and `/readyz`, which is ready while the peer store answers
//! (a Redis PING; always for the in-memory store). Kubernetes probes and
//! Prometheus speak HTTP; the gRPC health service stays for gRPC clients.

use std::net::SocketAddr;
use std::sync::Arc;

use shoal_telemetry::prometheus_client::registry::Registry;
use shoal_telemetry::{Check, Readiness};
use tokio_util::sync::CancellationToken;

use crate::metainfo::error_chain;
use crate::metrics::TrackerMetrics;
use crate::store::PeerStore;

/// Readiness of a tracker: its peer store answers.
struct StoreAnswers<S>(Arc<S>);

impl<S: PeerStore> Readiness for StoreAnswers<S> {
    fn check(&self) -> Check<'_> {
        Box::pin(async move {
            self.0
                .ping()
                .await
                .map_err(|error| format!("peer store: {}", error_chain(&error)))
        })
    }
}

/// Binds `addr` and serves the admin endpoints until `shutdown`; returns
/// the bound address.
pub async fn start<S: PeerStore>(
    addr: SocketAddr,
    store: Arc<S>,
    metrics: &TrackerMetrics,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let router = shoal_telemetry::router(Arc::new(registry), Arc::new(StoreAnswers(store)));
    let (bound, _task) = shoal_telemetry::serve(addr, router, shutdown).await?;
    tracing::info!(addr = %bound, "admin endpoints (metrics, health) serving");
    Ok(bound)
}
