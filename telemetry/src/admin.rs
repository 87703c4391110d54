//! The operator's endpoints: `/metrics` (Prometheus), `/healthz` (liveness:
//! the process answers HTTP) and `/readyz` (readiness: what the component's
//! [`Readiness`] says). The agent and the tracker serve this router on its
//! own listener; the origin merges it into its HTTP API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::exposition::{Format, render};

/// What a readiness check returns: Ok, or why not (the 503's body).
pub type Check<'a> = BoxFuture<'a, Result<(), String>>;

/// What `/readyz` asks: whether the component should get traffic now.
pub trait Readiness: Send + Sync + 'static {
    /// Checks readiness now; may do I/O (a Redis ping), so it is async.
    fn check(&self) -> Check<'_>;
}

/// Readiness that a component sets once it is up (and clears when it
/// stops): for processes whose readiness is a fact they learn, not a
/// dependency to ask.
#[derive(Debug, Clone)]
pub struct ReadyFlag {
    ready: Arc<AtomicBool>,
    waiting_for: &'static str,
}

impl ReadyFlag {
    /// Not ready yet; `/readyz` answers `waiting_for` until [`ReadyFlag::set`].
    pub fn new(waiting_for: &'static str) -> Self {
        ReadyFlag {
            ready: Arc::new(AtomicBool::new(false)),
            waiting_for,
        }
    }

    /// Marks the component ready (true) or not (false).
    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether it is set.
    pub fn is_set(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

impl Readiness for ReadyFlag {
    fn check(&self) -> Check<'_> {
        let result = if self.is_set() {
            Ok(())
        } else {
            Err(self.waiting_for.to_string())
        };
        Box::pin(std::future::ready(result))
    }
}

#[derive(Clone)]
struct Admin {
    registry: Arc<Registry>,
    readiness: Arc<dyn Readiness>,
}

/// `/metrics`, `/healthz` and `/readyz` over `registry` and `readiness`.
pub fn router(registry: Arc<Registry>, readiness: Arc<dyn Readiness>) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .route("/healthz", axum::routing::get(healthz))
        .route("/readyz", axum::routing::get(readyz))
        .with_state(Admin {
            registry,
            readiness,
        })
}

/// Binds `addr` and serves `router` on it until `shutdown`; returns the
/// bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "admin HTTP server failed");
        }
    });
    Ok((bound, task))
}

async fn metrics(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    match render(&admin.registry, format) {
        Ok(text) => ([(header::CONTENT_TYPE, format.content_type())], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding metrics failed\n",
        )
            .into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(admin): State<Admin>) -> Response {
    match admin.readiness.check().await {
        Ok(()) => "ready\n".into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    async fn get(router: &Router, path: &str) -> (StatusCode, String) {
        let request = Request::get(path).body(Body::empty()).unwrap_or_default();
        let Ok(response) = router.clone().oneshot(request).await;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readyz_follows_the_flag_and_healthz_always_answers() {
        let flag = ReadyFlag::new("cache not loaded");
        let router = router(Arc::new(Registry::default()), Arc::new(flag.clone()));
        assert_eq!(
            get(&router, "/readyz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: cache not loaded\n".into()
            )
        );
        assert_eq!(get(&router, "/healthz").await.0, StatusCode::OK);
        flag.set(true);
        assert_eq!(get(&router, "/readyz").await.0, StatusCode::OK);
        flag.set(false);
        assert_eq!(
            get(&router, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn metrics_render_the_registry() {
        let mut registry = Registry::default();
        let counter: prometheus_client::metrics::counter::Counter = Default::default();
        counter.inc();
        registry.register("t_events", "Events", counter);
        let router = router(Arc::new(registry), Arc::new(ReadyFlag::new("no")));
        let (status, body) = get(&router, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("t_events_total 1\n"), "{body}");
    }
}
