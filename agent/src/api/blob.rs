//! Blob GET and HEAD. Headers go out once the first requested piece is
//! verified (so a download that cannot start is still a clean OCI error),
//! then the body streams; HEAD learns the length without downloading.

use std::ops::Range;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use shoal_registry::range::{self, Requested};
use shoal_registry::{ErrorCode, OciError};
use shoal_swarm::Digest;
use tokio::time::Instant;

use super::pull::{Pull, observed};
use super::{ApiState, body};
use crate::blobs::{BlobError, Opened};
use crate::metrics::PullSource;
use crate::origin::{Location, error_chain};

pub(super) async fn serve(
    state: &ApiState,
    at: &Location,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, OciError> {
    let started = Instant::now();
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    if head {
        let length = state.blobs.length(digest, at).await.map_err(oci)?;
        return Ok(respond(
            digest,
            length,
            Some(0..length),
            Body::empty(),
            false,
        ));
    }
    match state.blobs.open(digest, at).await.map_err(oci)? {
        Opened::Complete(reader) => {
            let length = reader.len();
            let Some((range, partial)) = pick(range_header, length) else {
                return Ok(range::unsatisfiable(length));
            };
            let body = body::complete(reader, range.clone());
            let pull = Pull::new(&state.pulls, PullSource::Cache, started, range_len(&range));
            let body = observed(body, pull);
            Ok(respond(digest, length, Some(range), body, partial))
        }
        Opened::Streaming(fetch) => {
            let length = fetch.metainfo().length();
            let Some((range, partial)) = pick(range_header, length) else {
                return Ok(range::unsatisfiable(length));
            };
            if !range.is_empty() {
                let first = (range.start / u64::from(fetch.metainfo().piece_length())) as u32;
                fetch.stream_position(first);
                fetch.partial().wait_piece(first).await.map_err(|e| {
                    OciError::new(
                        ErrorCode::Unavailable,
                        format!("blob download failed: {}", error_chain(&e)),
                    )
                })?;
            }
            let body = body::streaming(fetch, range.clone());
            let pull = Pull::new(
                &state.pulls,
                PullSource::Download,
                started,
                range_len(&range),
            );
            let body = observed(body, pull);
            Ok(respond(digest, length, Some(range), body, partial))
        }
        Opened::Passthrough(passthrough) => {
            let length = passthrough.length;
            // The origin's stream starts at byte 0: a satisfiable range gets
            // the whole blob (RFC 9110 lets a server ignore Range), an
            // unsatisfiable one the same 416 as from the cache.
            if pick(range_header, length).is_none() {
                return Ok(range::unsatisfiable(length));
            }
            let body = body::passthrough(passthrough.chunks);
            let pull = Pull::new(&state.pulls, PullSource::Passthrough, started, length);
            let body = observed(body, pull);
            Ok(respond(digest, length, None, body, false))
        }
    }
}

fn range_len(range: &Range<u64>) -> u64 {
    range.end - range.start
}

/// The bytes to send and whether that is a 206; None when the range is
/// unsatisfiable (416).
fn pick(range_header: Option<&str>, length: u64) -> Option<(Range<u64>, bool)> {
    match range::requested(range_header, length) {
        Requested::Whole => Some((0..length, false)),
        Requested::Part(part) => Some((part, true)),
        Requested::Unsatisfiable => None,
    }
}

fn respond(
    digest: &Digest,
    length: u64,
    range: Option<Range<u64>>,
    body: Body,
    partial: bool,
) -> Response {
    let sent = range.clone().unwrap_or(0..length);
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(sent.end - sent.start),
    );
    if let Ok(value) = HeaderValue::from_str(&digest.to_string()) {
        headers.insert("docker-content-digest", value);
    }
    if range.is_some() {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    if partial {
        if let Some(value) = range::content_range(&sent, length) {
            headers.insert(header::CONTENT_RANGE, value);
        }
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    response
}

fn oci(error: BlobError) -> OciError {
    match error {
        BlobError::Unknown => OciError::new(ErrorCode::BlobUnknown, "blob unknown to upstream"),
        BlobError::Unavailable(why) => {
            OciError::new(ErrorCode::Unavailable, format!("blob not available: {why}"))
        }
    }
}
