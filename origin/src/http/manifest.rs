//! `GET`/`HEAD /v2/<name>/manifests/<reference>`: the manifest's bytes as
//! upstream holds them, with their media type and digest. Any origin
//! answers (manifests are small and cached; the ring only places blobs).

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use shoal_registry::{ErrorCode, ManifestReference, RepositoryName};

use super::{ApiState, upstream_error};

pub(super) async fn serve(
    state: &ApiState,
    ns: Option<&str>,
    name: &RepositoryName,
    reference: &ManifestReference,
    head: bool,
) -> Response {
    let namespace = match state.upstreams.namespace(ns) {
        Ok(namespace) => namespace,
        Err(error) => return upstream_error(&error, ErrorCode::ManifestUnknown),
    };
    let manifest = match state.manifests.get(&namespace, name, reference).await {
        Ok(manifest) => manifest,
        Err(error) => {
            tracing::debug!(%name, %namespace, %error, "manifest request failed");
            return upstream_error(&error, ErrorCode::ManifestUnknown);
        }
    };
    let length = manifest.bytes.len();
    let mut response = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(manifest.bytes))
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(value) = HeaderValue::from_str(&manifest.media_type) {
        h.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&manifest.digest.to_string()) {
        h.insert("docker-content-digest", value.clone());
        h.insert(header::ETAG, value);
    }
    response
}
