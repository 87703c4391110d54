//! The registry API the agent serves on loopback to docker, containerd and
//! skopeo: the read side of the Docker Registry HTTP API v2 / OCI
//! distribution spec.
//!
//! Every request goes through one handler that parses the raw path with
//! `RegistryRoute::parse` (so names like `a/b/c/d` and hostile encodings
//! are handled the same way as in the origin), checks the method and the
//! `?ns=` namespace, and hands off to `manifest` or `blob`. Every refusal
//! is OCI error JSON; every response carries
//! `Docker-Distribution-API-Version: registry/2.0`.
//!
//! - `manifest`: pass-through from an origin.
//! - `blob`: cache, swarm download or origin, with Range (read by
//!   `shoal_registry::range`, as the origin reads it).
//! - `body`: streaming bodies. `pull`: the metrics and log line of a blob
//!   response as the client reads it.
//!
//! Every manifest and blob request runs in a `pull` span naming the
//! repository and the reference or digest, so its log lines (the
//! download's included) can be found by either.

mod blob;
mod body;
mod manifest;
mod pull;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shoal_registry::reference::{ReferenceError, parse_namespace};
use shoal_registry::{ErrorCode, OciError, RegistryRoute};

use tracing::Instrument as _;

use crate::blobs::Blobs;
use crate::metrics::Pulls;
use crate::origin::Location;

/// The header every registry API response carries.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The blob paths.
    pub blobs: Blobs,
    /// Upstream for requests without `?ns=`.
    pub default_registry: Option<Arc<str>>,
    /// Blob pull timings and bytes served.
    pub pulls: Pulls,
}

/// The agent's HTTP router: the registry API and a stats page.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/shoal/v1/stats", axum::routing::get(stats))
        .fallback(dispatch)
        .with_state(state)
        .layer(axum::middleware::map_response(stamp))
}

async fn stamp(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    response
}

#[derive(Deserialize)]
struct NsQuery {
    ns: Option<String>,
}

async fn dispatch(
    State(state): State<ApiState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match route(&state, &method, &uri, &headers).await {
        Ok(response) => response,
        Err(error) => {
            if error.status().is_server_error() {
                tracing::warn!(path = %uri.path(), code = ?error.code, message = %error.message, "request failed");
            }
            error.into_response()
        }
    }
}

async fn route(
    state: &ApiState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, OciError> {
    let path = uri.path();
    if !path.starts_with("/v2/") && path != "/v2" {
        return Err(
            OciError::new(ErrorCode::NameUnknown, "not a registry API path")
                .with_status(StatusCode::NOT_FOUND),
        );
    }
    let head = match *method {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            return Err(OciError::new(
                ErrorCode::Unsupported,
                "this registry is a read-only pull proxy: only GET and HEAD are supported",
            ));
        }
    };
    let route = if path == "/v2" {
        RegistryRoute::Base
    } else {
        RegistryRoute::parse(path).map_err(|e| match e {
            ReferenceError::UnknownRoute => OciError::new(
                ErrorCode::Unsupported,
                "not a read route of the registry API",
            )
            .with_status(StatusCode::NOT_FOUND),
            other => OciError::from(other),
        })?
    };
    let ns = namespace(state, uri)?;
    match route {
        RegistryRoute::Base => Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            "{}",
        )
            .into_response()),
        RegistryRoute::Manifest { name, reference } => {
            let span = tracing::info_span!("pull", repository = %name, reference = %reference, ns = ns.as_deref().unwrap_or_default());
            let at = Location { name, ns };
            manifest::serve(state, &at, &reference, headers, head)
                .instrument(span)
                .await
        }
        RegistryRoute::Blob { name, digest } => {
            let span = tracing::info_span!("pull", repository = %name, digest = %digest, ns = ns.as_deref().unwrap_or_default());
            let at = Location { name, ns };
            blob::serve(state, &at, &digest, headers, head)
                .instrument(span)
                .await
        }
    }
}

/// `?ns=` (checked), else the configured default.
fn namespace(state: &ApiState, uri: &Uri) -> Result<Option<String>, OciError> {
    let query = Query::<NsQuery>::try_from_uri(uri)
        .map_err(|_| OciError::new(ErrorCode::NameInvalid, "malformed query string"))?;
    match query.0.ns {
        Some(ns) => Ok(Some(parse_namespace(&ns)?)),
        None => Ok(state.default_registry.as_deref().map(str::to_string)),
    }
}

async fn stats(State(state): State<ApiState>) -> Response {
    let session = state.blobs.session();
    let torrents: Vec<serde_json::Value> = session
        .torrents()
        .iter()
        .map(|t| {
            let p = t.progress();
            serde_json::json!({
                "digest": t.digest().to_string(),
                "pieces": p.pieces,
                "piece_count": p.piece_count,
                "downloaded": p.downloaded,
                "uploaded": p.uploaded,
                "wasted": p.wasted,
                "peers": p.peers,
                "state": format!("{:?}", p.state),
            })
        })
        .collect();
    axum::Json(serde_json::json!({
        "bytes_from_origins": state.blobs.origins().bytes_fetched(),
        "cache_used_bytes": session.store().used_bytes(),
        "torrents": torrents,
    }))
    .into_response()
}
