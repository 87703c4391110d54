//! `PUT /shoal/v1/artifacts/<digest>`: publishes an artifact. The body
//! streams into the store (hashed as it is written, never held whole);
//! the store checks length and digest, and a body that fails either leaves
//! nothing behind. The stored blob is seeded, then every other owner is
//! asked for it, which makes it copy the blob from here, so the answer
//! comes once the artifact is as durable as a pulled blob.
//!
//! A `Content-Length` is required (the store reserves the quota up front).
//! An origin that does not own the digest redirects (307) to an owner; the
//! client sends the body there.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use shoal_registry::{ErrorCode, OciError};
use shoal_swarm::Digest;
use shoal_swarm::store::StoreError;

use super::ApiState;
use crate::artifacts::ARTIFACTS_REPOSITORY;
use crate::upstream::error_chain;

pub(super) async fn serve(
    State(state): State<Arc<ApiState>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match publish(&state, &raw, &headers, body).await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(digest = %raw.chars().take(80).collect::<String>(), code = ?error.code, message = %error.message, "artifact upload refused");
            error.into_response()
        }
    }
}

/// Other methods on the upload path.
pub(super) async fn not_allowed() -> Response {
    OciError::new(ErrorCode::Unsupported, "artifacts are published with PUT").into_response()
}

async fn publish(
    state: &ApiState,
    raw: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, OciError> {
    let digest: Digest = raw
        .parse()
        .map_err(|e| OciError::new(ErrorCode::DigestInvalid, format!("invalid digest: {e}")))?;
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            OciError::new(ErrorCode::SizeInvalid, "Content-Length is required")
                .with_status(StatusCode::LENGTH_REQUIRED)
        })?;
    if let Some(owner) = state.cluster.redirect(&digest) {
        let location = format!("{}/shoal/v1/artifacts/{digest}", owner.http);
        let value = HeaderValue::from_str(&location).map_err(|_| {
            OciError::new(ErrorCode::Unavailable, "owner URL is not a header value")
        })?;
        return Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, value)]).into_response());
    }
    let store = state.fetcher.store();
    if !store.contains(&digest) {
        ingest(state, &digest, length, body).await?;
        tracing::info!(%digest, length, "artifact stored");
    }
    if let Err(error) = state.session.seed(&digest).await {
        tracing::warn!(%digest, %error, "seeding an uploaded artifact");
    }
    let mut replicas = vec![state.cluster.name().to_string()];
    for member in state.cluster.other_owners(&digest) {
        match state.replicas.ensure_held(&member, &digest).await {
            Ok(()) => replicas.push(member.name.clone()),
            Err(why) => {
                tracing::warn!(%digest, origin = %member.name, %why, "artifact not replicated")
            }
        }
    }
    let location = format!("/v2/{ARTIFACTS_REPOSITORY}/blobs/{digest}");
    let body = serde_json::json!({
        "digest": digest.to_string(),
        "size": length,
        "location": location,
        "replicas": replicas,
    });
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, value);
    }
    if let Ok(value) = HeaderValue::from_str(&digest.to_string()) {
        h.insert("docker-content-digest", value);
    }
    Ok(response)
}

/// Streams the body into the store. Any failure drops the writer, which
/// deletes what was written.
async fn ingest(
    state: &ApiState,
    digest: &Digest,
    length: u64,
    body: Body,
) -> Result<(), OciError> {
    let store = state.fetcher.store();
    let mut writer = match store.ingest(*digest, length).await {
        Ok(writer) => writer,
        Err(StoreError::AlreadyComplete(_)) => return Ok(()),
        Err(error) => return Err(store_error(&error)),
    };
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            OciError::new(ErrorCode::SizeInvalid, format!("the body broke off: {e}"))
        })?;
        writer.write(&chunk).await.map_err(|e| store_error(&e))?;
    }
    writer.finish().await.map_err(|e| store_error(&e))?;
    Ok(())
}

fn store_error(error: &StoreError) -> OciError {
    match error {
        StoreError::DigestMismatch { .. } => {
            OciError::new(ErrorCode::DigestInvalid, error.to_string())
        }
        StoreError::LengthMismatch { .. } => {
            OciError::new(ErrorCode::SizeInvalid, error.to_string())
        }
        StoreError::QuotaExceeded { .. } | StoreError::DiskFull { .. } => {
            OciError::new(ErrorCode::Unavailable, error_chain(error))
                .with_status(StatusCode::INSUFFICIENT_STORAGE)
        }
        StoreError::Busy(_) => OciError::new(
            ErrorCode::Unavailable,
            "this artifact is being stored already; retry shortly",
        )
        .with_status(StatusCode::CONFLICT),
        other => OciError::new(ErrorCode::Unavailable, error_chain(other))
            .with_status(StatusCode::INTERNAL_SERVER_ERROR),
    }
}
