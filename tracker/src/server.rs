//! The tonic server: the `Tracker` service, the standard gRPC health
//! service, the request size limit, the expiry sweeper, graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use shoal_proto::tracker::tracker_server::TrackerServer;
use shoal_swarm::tls::TlsAcceptor;
use tokio::net::TcpListener;
use tonic::codegen::http::{HeaderValue, Response};
use tonic::transport::Server;
use tower::util::MapResponseLayer;

use crate::config::Settings;
use crate::connection;
use crate::metainfo::ClientError;
use crate::metrics::TrackerMetrics;
use crate::service::TrackerService;
use crate::store::{PeerStore, unix_millis_now};

/// Largest request accepted. An announce is under 1 KiB even with a 2,000
/// piece bitfield; the bound stops a client from making the server buffer
/// megabytes before validation can refuse them.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The metainfo source could not be set up.
    #[error("setting up the metainfo source")]
    Client(#[from] ClientError),
    /// The gRPC transport failed.
    #[error("serving gRPC")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the tracker on `listener` until `shutdown` completes, then stops
/// accepting connections, reports NOT_SERVING, and returns once in-flight
/// requests have finished. Expired entries are purged once per interval.
/// For a tracker whose metrics nobody scrapes (tests, `shoal demo`).
pub async fn serve<S: PeerStore>(
    listener: TcpListener,
    settings: Settings,
    store: S,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_observed(
        listener,
        settings,
        Arc::new(store),
        TrackerMetrics::default(),
        shutdown,
    )
    .await
}

/// [`serve`], counting requests in `metrics`, over a store the caller
/// shares (the binary's readiness probe pings it).
pub async fn serve_observed<S: PeerStore>(
    listener: TcpListener,
    settings: Settings,
    store: Arc<S>,
    metrics: TrackerMetrics,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let interval = settings.interval;
    let acceptor = settings
        .tls
        .as_ref()
        .map(|tls| TlsAcceptor::from(tls.server_config(&[b"h2"])));
    let service = TrackerService::new(store.clone(), settings, metrics)?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<TrackerServer<TrackerService<S>>>()
        .await;
    let tracker = TrackerServer::new(service).max_decoding_message_size(MAX_REQUEST_BYTES);
    let signal = async {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        health
            .set_not_serving::<TrackerServer<TrackerService<S>>>()
            .await;
    };
    let incoming = connection::incoming(listener, acceptor);
    let server = Server::builder()
        .layer(MapResponseLayer::new(refuse_oversized))
        .add_service(health_service)
        .add_service(tracker)
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::select! {
        result = server => Ok(result?),
        () = sweep(store, interval) => Ok(()),
    }
}

/// Purges expired entries every `interval`, forever.
async fn sweep<S: PeerStore>(store: Arc<S>, interval: std::time::Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match store.purge_expired(unix_millis_now()).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "purged expired peer entries"),
            Err(error) => tracing::warn!(%error, "purging expired peer entries failed"),
        }
    }
}

/// tonic refuses a request over [`MAX_REQUEST_BYTES`] before any handler
/// runs, with OUT_OF_RANGE. Clients should see what every other refused
/// input gets, INVALID_ARGUMENT naming what is wrong; no handler here
/// returns OUT_OF_RANGE, so the rewrite touches nothing else. The status of
/// such an early refusal travels in the response headers.
fn refuse_oversized<B>(mut response: Response<B>) -> Response<B> {
    let headers = response.headers_mut();
    if headers.get("grpc-status").is_some_and(|code| code == "11") {
        headers.insert("grpc-status", HeaderValue::from_static("3"));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("request:%20larger%20than%20the%2065536-byte%20limit"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_in_the_message_is_the_limit() {
        assert_eq!(MAX_REQUEST_BYTES, 65536);
        let response = Response::builder()
            .header("grpc-status", "11")
            .body(())
            .unwrap();
        let response = refuse_oversized(response);
        assert_eq!(response.headers()["grpc-status"], "3");
        let ok = refuse_oversized(
            Response::builder()
                .header("grpc-status", "0")
                .body(())
                .unwrap(),
        );
        assert_eq!(ok.headers()["grpc-status"], "0");
    }
}
