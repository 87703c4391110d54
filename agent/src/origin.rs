//! The agent's side of the origins' registry API (docs/api.md, "Origin
//! registry API (for agents)"): manifests pass through it, and it is where
//! blobs come from when the swarm cannot help (small blobs, no tracker, a
//! stalled swarm).
//!
//! Origins are tried in the ring's preference order for the blob, so the
//! owners (which hold it) come first and the rest only when they fail. An
//! origin still pulling the blob upstream answers 202 with `Retry-After`:
//! that origin is asked again after the hint, within the configured bound.
//! A 404 is final (another origin would find the same upstream absence).

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use shoal_registry::RepositoryName;
use shoal_registry::manifest::MAX_MANIFEST_BYTES;
use shoal_registry::media::manifest_accept;
use shoal_swarm::Digest;
use shoal_swarm::ring::{Member, RingWatch};
use shoal_swarm::tls::Tls;
use tokio::time::Instant;

/// Why no origin could answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OriginError {
    /// An origin said upstream does not have it.
    #[error("not found upstream")]
    NotFound,
    /// Every origin failed, or none is configured; the text says how the
    /// last one failed.
    #[error("no origin could serve the request: {0}")]
    Unavailable(String),
}

/// Where a blob or manifest lives upstream: the repository and the
/// registry namespace (`?ns=`; None for the origins' default upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The repository, e.g. `library/alpine`.
    pub name: RepositoryName,
    /// The upstream registry, already checked.
    pub ns: Option<String>,
}

/// A manifest as an origin answered it; headers pass through unchanged.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Its media type.
    pub content_type: Option<HeaderValue>,
    /// `Docker-Content-Digest`.
    pub digest: Option<HeaderValue>,
    /// `Content-Length` (for HEAD, where there is no body).
    pub length: Option<u64>,
    /// The bytes (empty for HEAD).
    pub body: Bytes,
}

/// HTTP client for every configured origin.
#[derive(Debug)]
pub struct Origins {
    http: reqwest::Client,
    ring: RingWatch,
    wait: Duration,
    fetched: AtomicU64,
}

impl Origins {
    /// A client for the ring's origins, as the ring stands at each request.
    /// `timeout` bounds connecting and each read; `wait` bounds the total
    /// time spent waiting on 202 answers. With `tls`, requests go over
    /// HTTPS only and present our certificate.
    pub fn new(
        ring: RingWatch,
        timeout: Duration,
        wait: Duration,
        tls: Option<&Tls>,
    ) -> Result<Self, OriginError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout);
        if let Some(tls) = tls {
            builder = builder
                .https_only(true)
                .tls_backend_preconfigured(tls.client_config(&[]));
        }
        let http = builder
            .build()
            .map_err(|e| OriginError::Unavailable(format!("building the HTTP client: {e}")))?;
        Ok(Origins {
            http,
            ring,
            wait,
            fetched: AtomicU64::new(0),
        })
    }

    /// Blob bytes received from origins so far (ranges and whole blobs).
    pub fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// Whether no origin is known (configured or discovered) right now.
    pub fn is_empty(&self) -> bool {
        self.ring.borrow().is_empty()
    }

    /// Fetches (`head` false) or checks (`head` true) a manifest, passing the
    /// client's `Accept` on (or every type Shoal serves).
    pub async fn manifest(
        &self,
        at: &Location,
        reference: &str,
        accept: Option<&HeaderValue>,
        head: bool,
    ) -> Result<Manifest, OriginError> {
        // A tag has no digest to hash: spread tags over the origins by name.
        let key = Digest::of(format!("{}:{reference}", at.name).as_bytes());
        let accept = accept
            .cloned()
            .or_else(|| HeaderValue::from_str(&manifest_accept()).ok());
        let response = self
            .send(&key, |member| {
                let url = format!("{}/v2/{}/manifests/{reference}", member.http, at.name);
                let method = if head {
                    reqwest::Method::HEAD
                } else {
                    reqwest::Method::GET
                };
                let mut request = self.http.request(method, url).query(&query(at));
                if let Some(accept) = &accept {
                    request = request.header(header::ACCEPT, accept.clone());
                }
                request
            })
            .await?;
        let headers = response.headers().clone();
        let body = if head {
            Bytes::new()
        } else {
            read_limited(response, MAX_MANIFEST_BYTES).await?
        };
        Ok(Manifest {
            content_type: headers.get(header::CONTENT_TYPE).cloned(),
            digest: headers.get("docker-content-digest").cloned(),
            length: content_length(&headers),
            body,
        })
    }

    /// The blob's length, from a HEAD (which also makes the owning origin
    /// start pulling it upstream).
    pub async fn blob_length(&self, at: &Location, digest: &Digest) -> Result<u64, OriginError> {
        let response = self
            .send(digest, |member| {
                self.http
                    .head(blob_url(member, at, digest))
                    .query(&query(at))
            })
            .await?;
        content_length(response.headers())
            .ok_or_else(|| OriginError::Unavailable("origin sent no Content-Length".into()))
    }

    /// Bytes `range` of the blob, e.g. one piece. The answer must be exactly
    /// that many bytes; the caller verifies them.
    pub async fn blob_range(
        &self,
        at: &Location,
        digest: &Digest,
        range: Range<u64>,
    ) -> Result<Bytes, OriginError> {
        let want = (range.end - range.start) as usize;
        let spec = format!("bytes={}-{}", range.start, range.end.saturating_sub(1));
        let response = self
            .send(digest, |member| {
                self.http
                    .get(blob_url(member, at, digest))
                    .query(&query(at))
                    .header(header::RANGE, spec.clone())
            })
            .await?;
        let whole = response.status() == StatusCode::OK && range.start == 0;
        if response.status() != StatusCode::PARTIAL_CONTENT && !whole {
            return Err(OriginError::Unavailable(format!(
                "origin answered a range request with {}",
                response.status()
            )));
        }
        let data = read_limited(response, want).await?;
        self.count(data.len());
        if data.len() != want {
            return Err(OriginError::Unavailable(format!(
                "origin sent {} bytes for a {want}-byte range",
                data.len()
            )));
        }
        Ok(data)
    }

    /// The whole blob as a response to stream, with its length. Bytes read
    /// from it should be counted with [`Origins::count`].
    pub async fn blob(
        &self,
        at: &Location,
        digest: &Digest,
    ) -> Result<(u64, reqwest::Response), OriginError> {
        let response = self
            .send(digest, |member| {
                self.http
                    .get(blob_url(member, at, digest))
                    .query(&query(at))
            })
            .await?;
        let length = content_length(response.headers())
            .ok_or_else(|| OriginError::Unavailable("origin sent no Content-Length".into()))?;
        Ok((length, response))
    }

    /// Records blob bytes received outside [`Origins::blob_range`].
    pub fn count(&self, bytes: usize) {
        self.fetched.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Sends the request `build` makes to each origin in preference order
    /// for `key` until one answers 2xx (202 aside) or 404.
    async fn send(
        &self,
        key: &Digest,
        build: impl Fn(&Member) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, OriginError> {
        let ring = self.ring.borrow().clone();
        if ring.is_empty() {
            return Err(OriginError::Unavailable("no origins configured".into()));
        }
        let deadline = Instant::now() + self.wait;
        let mut last = String::new();
        for member in ring.preference(key) {
            loop {
                match build(member).send().await {
                    Ok(response) if response.status() == StatusCode::ACCEPTED => {
                        let pause = retry_after(response.headers());
                        if Instant::now() + pause > deadline {
                            return Err(OriginError::Unavailable(format!(
                                "origin {} still fetching upstream after the wait bound",
                                member.name
                            )));
                        }
                        tokio::time::sleep(pause).await;
                    }
                    Ok(response) if response.status() == StatusCode::NOT_FOUND => {
                        return Err(OriginError::NotFound);
                    }
                    Ok(response) if response.status().is_success() => return Ok(response),
                    Ok(response) => {
                        last = format!("origin {} answered {}", member.name, response.status());
                        break;
                    }
                    Err(e) => {
                        last = format!("origin {}: {}", member.name, error_chain(&e));
                        break;
                    }
                }
            }
            tracing::debug!(origin = %member.name, reason = %last, "origin failed, trying the next");
        }
        Err(OriginError::Unavailable(last))
    }
}

fn blob_url(member: &Member, at: &Location, digest: &Digest) -> String {
    format!("{}/v2/{}/blobs/{digest}", member.http, at.name)
}

fn query(at: &Location) -> Vec<(&'static str, String)> {
    at.ns.iter().map(|ns| ("ns", ns.clone())).collect()
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The `Retry-After` seconds of a 202, clamped to 1..=60 as the origin
/// promises; a missing or odd value means one second.
fn retry_after(headers: &HeaderMap) -> Duration {
    let seconds = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    Duration::from_secs(seconds.clamp(1, 60))
}

/// Reads a body of at most `limit` bytes.
async fn read_limited(response: reqwest::Response, limit: usize) -> Result<Bytes, OriginError> {
    let mut body = BytesMut::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| OriginError::Unavailable(error_chain(&e)))?;
        if body.len() + chunk.len() > limit {
            return Err(OriginError::Unavailable(format!(
                "origin sent more than {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// An error and its sources on one line, for logs and OCI messages.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use shoal_swarm::ring::{Ring, fixed};

    use super::*;

    #[test]
    fn retry_after_is_clamped() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), Duration::from_secs(1));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Duration::from_secs(7));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("100000"));
        assert_eq!(retry_after(&headers), Duration::from_secs(60));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
        assert_eq!(retry_after(&headers), Duration::from_secs(1));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn no_origin_is_a_clean_unavailable() {
        let ring = fixed(Ring::new(Vec::new(), 2).unwrap());
        let origins =
            Origins::new(ring, Duration::from_secs(1), Duration::from_secs(1), None).unwrap();
        let name = RepositoryName::parse("a/b").unwrap();
        let at = Location { name, ns: None };
        let err = origins
            .blob_length(&at, &Digest::of(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(err, OriginError::Unavailable(_)), "{err}");
    }

    #[tokio::test]
    async fn a_dead_origin_is_unavailable_not_a_hang() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let member = Member {
            name: "dead".into(),
            http: format!("http://127.0.0.1:{port}"),
            peer: "127.0.0.1:1"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        };
        let ring = fixed(Ring::new(vec![member], 2).unwrap());
        let origins =
            Origins::new(ring, Duration::from_secs(2), Duration::from_secs(2), None).unwrap();
        let name = RepositoryName::parse("a").unwrap();
        let at = Location {
            name,
            ns: Some("docker.io".into()),
        };
        let err = origins
            .blob_range(&at, &Digest::of(b"x"), 0..1)
            .await
            .unwrap_err();
        assert!(
            matches!(err, OriginError::Unavailable(ref m) if m.contains("dead")),
            "{err}"
        );
    }
}
