//! `GET`/`HEAD /v2/<name>/blobs/<digest>`: served from the store with Range
//! support; a blob not held yet is fetched once (202 while it runs), or the
//! request is redirected to an owner when this origin does not own it.
//!
//! Bodies are read from the store a chunk at a time, so a multi-GiB blob
//! never sits in memory.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use shoal_registry::range::{self, Requested};
use shoal_registry::{ErrorCode, OciError, RepositoryName};
use shoal_swarm::Digest;
use shoal_swarm::store::BlobReader;

use super::{ApiState, accepted, fetch_error, upstream_error};
use crate::artifacts::is_artifact;
use crate::cluster::PEEK_HEADER;
use crate::fetch::{Location, Status};

/// Bytes read from the store per body chunk.
const CHUNK: u64 = 1 << 20;

pub(super) async fn serve(
    state: &ApiState,
    uri: &Uri,
    ns: Option<&str>,
    name: &RepositoryName,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let namespace = match state.upstreams.namespace(ns) {
        Ok(namespace) => namespace,
        // Artifacts belong to no upstream: any namespace finds them.
        Err(_) if is_artifact(name) => String::new(),
        Err(error) => return upstream_error(&error, ErrorCode::BlobUnknown),
    };
    let store = state.fetcher.store();
    if let Some(reader) = store.get(digest) {
        return body(state, reader, headers, head);
    }
    if headers.contains_key(PEEK_HEADER) {
        return OciError::new(ErrorCode::BlobUnknown, "blob not held by this origin")
            .into_response();
    }
    if let Some(owner) = state.cluster.redirect(digest) {
        let mut location = format!("{}{}", owner.http, uri.path());
        if let Some(query) = uri.query() {
            location.push('?');
            location.push_str(query);
        }
        return match HeaderValue::from_str(&location) {
            Ok(value) => {
                (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, value)]).into_response()
            }
            Err(_) => OciError::new(ErrorCode::Unavailable, "owner URL is not a header value")
                .into_response(),
        };
    }
    let at = Location {
        namespace,
        name: name.clone(),
    };
    match state.fetcher.get(digest, &at, state.fetch_wait).await {
        Status::Ready(reader) => body(state, reader, headers, head),
        Status::Fetching => accepted(),
        Status::Failed(error) => fetch_error(&error),
    }
}

/// The blob's response: 200, 206 or 416. `HEAD` ignores Range: only
/// `GET` has range semantics (RFC 9110 section 14.2).
fn body(state: &ApiState, reader: BlobReader, headers: &HeaderMap, head: bool) -> Response {
    let len = reader.len();
    let wanted = if head {
        Requested::Whole
    } else {
        range::requested(
            headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
            len,
        )
    };
    let (status, bytes) = match wanted {
        Requested::Whole => (StatusCode::OK, 0..len),
        Requested::Part(part) => (StatusCode::PARTIAL_CONTENT, part),
        Requested::Unsatisfiable => return range::unsatisfiable(len),
    };
    let content_length = bytes.end - bytes.start;
    let mut response = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from_stream(chunks(
            reader.clone(),
            bytes.clone(),
            Arc::clone(&state.counters),
        )))
    };
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(content_length));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(value) = HeaderValue::from_str(&reader.digest().to_string()) {
        h.insert("docker-content-digest", value.clone());
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", reader.digest())) {
            h.insert(header::ETAG, etag);
        }
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Some(value) = range::content_range(&bytes, len)
    {
        h.insert(header::CONTENT_RANGE, value);
    }
    response
}

/// The body of `bytes`, read a chunk at a time; every chunk sent is
/// counted.
fn chunks(
    reader: BlobReader,
    bytes: Range<u64>,
    counters: Arc<crate::stats::Counters>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    stream::try_unfold(bytes.start, move |offset| {
        let reader = reader.clone();
        let counters = Arc::clone(&counters);
        let end = bytes.end;
        async move {
            if offset >= end {
                return Ok(None);
            }
            let n = (end - offset).min(CHUNK);
            let chunk = reader
                .read_at(offset, n as usize)
                .await
                .map_err(std::io::Error::other)?;
            add(&counters.http_bytes_sent, n);
            Ok(Some((chunk, offset + n)))
        }
    })
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
