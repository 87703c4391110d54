//! Manifests pass through from an origin unchanged: the bytes, their media
//! type and digest, so that the client computes the same digest the
//! registry signed off. A manifest asked for by digest is checked against
//! it before it is served.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use shoal_registry::{ErrorCode, ManifestReference, OciError};
use shoal_swarm::Digest;

use super::ApiState;
use crate::origin::{Location, OriginError};

pub(super) async fn serve(
    state: &ApiState,
    at: &Location,
    reference: &ManifestReference,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, OciError> {
    let manifest = state
        .blobs
        .origins()
        .manifest(
            at,
            &reference.to_string(),
            headers.get(header::ACCEPT),
            head,
        )
        .await
        .map_err(|e| match e {
            OriginError::NotFound => {
                OciError::new(ErrorCode::ManifestUnknown, "manifest unknown to upstream")
            }
            OriginError::Unavailable(why) => OciError::new(
                ErrorCode::Unavailable,
                format!("manifest not available: {why}"),
            ),
        })?;
    let mut digest = manifest.digest.clone();
    if let ManifestReference::Digest(wanted) = reference {
        if !head && Digest::of(&manifest.body) != *wanted {
            return Err(OciError::new(
                ErrorCode::Unavailable,
                "the origin's manifest does not match the requested digest",
            )
            .with_status(StatusCode::BAD_GATEWAY));
        }
        digest = digest.or_else(|| HeaderValue::from_str(&wanted.to_string()).ok());
    }
    let length = if head {
        manifest.length.unwrap_or(0)
    } else {
        manifest.body.len() as u64
    };
    let mut response = Response::new(if head {
        Body::empty()
    } else {
        Body::from(manifest.body)
    });
    let out = response.headers_mut();
    if let Some(content_type) = manifest.content_type {
        out.insert(header::CONTENT_TYPE, content_type);
    }
    if let Some(digest) = digest {
        out.insert("docker-content-digest", digest);
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}
