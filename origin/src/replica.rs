//! Copying a blob from a peer origin's HTTP blob API instead of upstream
//! (the order is [`Cluster::copy_sources`](crate::cluster::Cluster)'s).

use std::time::Duration;

use axum::http::{StatusCode, header};
use futures_util::StreamExt as _;
use shoal_registry::RepositoryName;
use shoal_swarm::Digest;
use shoal_swarm::ring::Member;
use shoal_swarm::tls::Tls;
use tokio::time::Instant;

use crate::OriginError;
use crate::cluster::{CopyMode, PEEK_HEADER};
use crate::upstream::BlobStream;

/// Longest wait for a joined owner that is still fetching the blob
/// upstream: long enough for a multi-GiB layer, since fetching it here too
/// would double the upstream traffic.
const JOIN_WAIT: Duration = Duration::from_secs(600);
/// Connect bound for a peer origin; a dead one is skipped quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on one read from a peer origin.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What a peer said.
pub(crate) enum PeerAnswer {
    /// It streams the blob.
    Body(BlobStream),
    /// It says upstream does not have the blob (a joined owner's 404).
    NotFound,
    /// It cannot help; try the next source.
    Skip(String),
}

/// HTTP client for peer origins.
#[derive(Debug, Clone)]
pub(crate) struct Replicas {
    http: reqwest::Client,
}

impl Replicas {
    /// With `tls`, requests go over HTTPS only and present our certificate.
    pub(crate) fn new(tls: Option<&Tls>) -> Result<Self, OriginError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            // A peer that redirects is not an owner after all: skip it
            // rather than bounce around the ring.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(tls) = tls {
            builder = builder
                .https_only(true)
                .tls_backend_preconfigured(tls.client_config(&[]));
        }
        let http = builder.build().map_err(OriginError::Replicas)?;
        Ok(Replicas { http })
    }

    /// Asks `member` for the blob; a joined member is polled through its
    /// 202 answers.
    pub(crate) async fn request(
        &self,
        member: &Member,
        mode: CopyMode,
        namespace: &str,
        name: &RepositoryName,
        digest: &Digest,
    ) -> PeerAnswer {
        let url = format!("{}/v2/{name}/blobs/{digest}", member.http);
        let deadline = Instant::now() + JOIN_WAIT;
        loop {
            let mut request = self.http.get(&url);
            // Artifacts belong to no upstream namespace.
            if !namespace.is_empty() {
                request = request.query(&[("ns", namespace)]);
            }
            if mode == CopyMode::Peek {
                request = request.header(PEEK_HEADER, "1");
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => return PeerAnswer::Skip(format!("origin {}: {e}", member.name)),
            };
            match response.status() {
                StatusCode::OK => {
                    let Some(length) = response.content_length() else {
                        return PeerAnswer::Skip(format!(
                            "origin {}: no Content-Length",
                            member.name
                        ));
                    };
                    let body = response
                        .bytes_stream()
                        .map(|chunk| chunk.map_err(std::io::Error::other))
                        .boxed();
                    return PeerAnswer::Body(BlobStream { length, body });
                }
                StatusCode::ACCEPTED if mode == CopyMode::Join => {
                    let pause = retry_after(response.headers());
                    if Instant::now() + pause > deadline {
                        return PeerAnswer::Skip(format!(
                            "origin {} still fetching after {JOIN_WAIT:?}",
                            member.name
                        ));
                    }
                    tokio::time::sleep(pause).await;
                }
                StatusCode::NOT_FOUND if mode == CopyMode::Join => return PeerAnswer::NotFound,
                status => {
                    return PeerAnswer::Skip(format!("origin {} answered {status}", member.name));
                }
            }
        }
    }
}

impl Replicas {
    /// Makes `member` hold an artifact this origin holds: a HEAD of it
    /// there starts its copy from the owners (this one among them), and is
    /// repeated through the 202s until it answers 200.
    pub(crate) async fn ensure_held(&self, member: &Member, digest: &Digest) -> Result<(), String> {
        let url = format!(
            "{}/v2/{}/blobs/{digest}",
            member.http,
            crate::artifacts::ARTIFACTS_REPOSITORY
        );
        let deadline = Instant::now() + JOIN_WAIT;
        loop {
            let response = self
                .http
                .head(&url)
                .send()
                .await
                .map_err(|e| format!("origin {}: {e}", member.name))?;
            match response.status() {
                StatusCode::OK => return Ok(()),
                StatusCode::ACCEPTED => {
                    let pause = retry_after(response.headers());
                    if Instant::now() + pause > deadline {
                        return Err(format!("still copying after {JOIN_WAIT:?}"));
                    }
                    tokio::time::sleep(pause).await;
                }
                status => return Err(format!("origin {} answered {status}", member.name)),
            }
        }
    }
}

/// `Retry-After` seconds, clamped to 1..=60.
fn retry_after(headers: &axum::http::HeaderMap) -> Duration {
    let seconds = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    Duration::from_secs(seconds.clamp(1, 60))
}
