//! The origin's HTTP API (docs/api.md): the read side of the registry API
//! for agents and peer origins, and the internal metainfo endpoint for the
//! tracker.
//!
//! Routing works on the raw path with `shoal_registry`'s parser, because a
//! repository name has any number of slashes. Every refusal is OCI error
//! JSON; no message carries a credential (upstream errors are redacted
//! where they are made).
//!
//! - `blob`: blob bodies, Range, 202 while fetching, 307 to an owner.
//! - `manifest`: manifests through the cache.
//! - `metainfo`: the tracker's endpoint.
//! - `upload`: `PUT /shoal/v1/artifacts/<digest>`, publishing an artifact.
//! - `/shoal/v1/stats`: the origin's counters as JSON.

mod blob;
mod manifest;
mod metainfo;
mod upload;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use shoal_registry::reference::parse_namespace;
use shoal_registry::{ErrorCode, OciError, RegistryRoute};
use shoal_swarm::session::Session;

use crate::cluster::Cluster;
use crate::fetch::{FetchError, Fetcher};
use crate::manifests::Manifests;
use crate::replica::Replicas;
use crate::stats::{Counters, snapshot};
use crate::upstream::{UpstreamError, Upstreams};

/// Seconds a 202 asks the client to wait.
const RETRY_AFTER_SECONDS: &str = "1";

/// What every handler reaches.
pub(crate) struct ApiState {
    pub(crate) upstreams: Arc<Upstreams>,
    pub(crate) manifests: Manifests,
    pub(crate) fetcher: Fetcher,
    pub(crate) cluster: Cluster,
    pub(crate) replicas: Replicas,
    pub(crate) session: Session,
    pub(crate) counters: Arc<Counters>,
    pub(crate) fetch_wait: Duration,
}

/// The API as an axum router.
pub(crate) fn router(state: Arc<ApiState>) -> Router {
    let upload = axum::routing::put(upload::serve)
        .fallback(upload::not_allowed)
        .layer(axum::extract::DefaultBodyLimit::disable());
    Router::new()
        .route("/shoal/v1/artifacts/{digest}", upload)
        .fallback(dispatch)
        .with_state(state)
        .layer(axum::middleware::map_response(stamp))
}

async fn stamp(mut response: Response) -> Response {
    response.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

async fn dispatch(
    State(state): State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    route(&state, &method, &uri, query, &headers).await
}

async fn route(
    state: &ApiState,
    method: &Method,
    uri: &Uri,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: &HeaderMap,
) -> Response {
    let Ok(Query(query)) = query else {
        return OciError::new(ErrorCode::NameInvalid, "malformed query string")
            .with_status(StatusCode::BAD_REQUEST)
            .into_response();
    };
    let path = uri.path();
    if method != Method::GET && method != Method::HEAD {
        return OciError::new(ErrorCode::Unsupported, "this registry is read-only").into_response();
    }
    if path == "/shoal/v1/stats" {
        return axum::Json(snapshot(&state.upstreams, &state.counters, &state.session))
            .into_response();
    }
    if let Some(digest) = path.strip_prefix("/internal/v1/metainfo/") {
        return metainfo::serve(state, digest, &query).await;
    }
    let head = method == Method::HEAD;
    let route = match RegistryRoute::parse(path) {
        Ok(route) => route,
        Err(error) => return OciError::from(error).into_response(),
    };
    let ns = match query.get("ns").map(|ns| parse_namespace(ns)).transpose() {
        Ok(ns) => ns,
        Err(error) => return OciError::from(error).into_response(),
    };
    match route {
        RegistryRoute::Base => ([(header::CONTENT_TYPE, "application/json")], "{}").into_response(),
        RegistryRoute::Manifest { name, reference } => {
            manifest::serve(state, ns.as_deref(), &name, &reference, head).await
        }
        RegistryRoute::Blob { name, digest } => {
            blob::serve(state, uri, ns.as_deref(), &name, &digest, headers, head).await
        }
    }
}

/// The OCI error for an upstream failure; `missing` is the code for an
/// absence (manifest or blob).
fn upstream_error(error: &UpstreamError, missing: ErrorCode) -> Response {
    let oci = match error {
        UpstreamError::NotFound => OciError::new(missing, error.to_string()),
        UpstreamError::UnknownNamespace(_) => {
            OciError::new(ErrorCode::NameUnknown, error.to_string())
        }
        UpstreamError::NoNamespace => OciError::new(ErrorCode::NameInvalid, error.to_string())
            .with_status(StatusCode::BAD_REQUEST),
        UpstreamError::Unauthorized { .. } => {
            OciError::new(ErrorCode::Unavailable, error.to_string())
                .with_status(StatusCode::BAD_GATEWAY)
        }
        UpstreamError::Failed { .. } => OciError::new(ErrorCode::Unavailable, error.to_string())
            .with_status(StatusCode::BAD_GATEWAY),
    };
    oci.into_response()
}

/// The OCI error for a failed blob fetch.
fn fetch_error(error: &FetchError) -> Response {
    match error {
        FetchError::Upstream(upstream) => upstream_error(upstream, ErrorCode::BlobUnknown),
        FetchError::Store(_) | FetchError::Transfer(_) => {
            OciError::new(ErrorCode::Unavailable, error.to_string())
                .with_status(StatusCode::BAD_GATEWAY)
                .into_response()
        }
        FetchError::Shutdown => {
            OciError::new(ErrorCode::Unavailable, error.to_string()).into_response()
        }
    }
}

/// 202 with `Retry-After`: the blob is on its way.
fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::RETRY_AFTER, RETRY_AFTER_SECONDS)],
    )
        .into_response()
}
