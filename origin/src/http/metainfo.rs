//! `GET /internal/v1/metainfo/{digest}?repository=&namespace=`, the
//! tracker's call (docs/api.md): 200 with protobuf metainfo when the blob
//! is held, 202 while it is fetched (the call starts the fetch), 404 when
//! upstream lacks it.
//!
//! Unlike blob requests this is not redirected: the tracker already asks
//! owners first, and a non-owner that is asked anyway fetches through the
//! owners (see `cluster`), so no extra upstream fetch results.

use std::collections::HashMap;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message as _;
use shoal_registry::reference::parse_namespace;
use shoal_registry::{ErrorCode, OciError, RepositoryName};
use shoal_swarm::Digest;

use super::{ApiState, accepted, fetch_error, upstream_error};
use crate::artifacts::is_artifact;
use crate::fetch::{Location, Status};

pub(super) async fn serve(
    state: &ApiState,
    raw_digest: &str,
    query: &HashMap<String, String>,
) -> Response {
    let digest: Digest = match raw_digest.parse() {
        Ok(digest) => digest,
        Err(error) => {
            return OciError::new(ErrorCode::DigestInvalid, format!("invalid digest: {error}"))
                .into_response();
        }
    };
    let store = state.fetcher.store();
    if let Some(response) = held(store, &digest).await {
        return response;
    }
    let name = match query.get("repository").map(|r| RepositoryName::parse(r)) {
        Some(Ok(name)) => name,
        Some(Err(error)) => return OciError::from(error).into_response(),
        None => {
            return OciError::new(ErrorCode::NameInvalid, "repository is required")
                .with_status(StatusCode::BAD_REQUEST)
                .into_response();
        }
    };
    let ns = match query.get("namespace").map(String::as_str) {
        None | Some("") => None,
        Some(raw) => match parse_namespace(raw) {
            Ok(ns) => Some(ns),
            Err(error) => return OciError::from(error).into_response(),
        },
    };
    let namespace = match state.upstreams.namespace(ns.as_deref()) {
        Ok(namespace) => namespace,
        // Artifacts belong to no upstream: any namespace finds them.
        Err(_) if is_artifact(&name) => String::new(),
        Err(error) => return upstream_error(&error, ErrorCode::BlobUnknown),
    };
    let at = Location { namespace, name };
    match state.fetcher.get(&digest, &at, state.fetch_wait).await {
        Status::Ready(_) => held(store, &digest).await.unwrap_or_else(accepted),
        Status::Fetching => accepted(),
        Status::Failed(error) => fetch_error(&error),
    }
}

/// The metainfo response for a held blob; None when it is not held.
async fn held(store: &shoal_swarm::store::Store, digest: &Digest) -> Option<Response> {
    match store.metainfo(digest).await {
        Ok(Some(metainfo)) => Some(
            (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                metainfo.to_proto().encode_to_vec(),
            )
                .into_response(),
        ),
        Ok(None) => None,
        Err(error) => Some(
            OciError::new(ErrorCode::Unavailable, format!("reading metainfo: {error}"))
                .with_status(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response(),
        ),
    }
}
