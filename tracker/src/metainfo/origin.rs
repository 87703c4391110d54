//! The tracker's side of the origin's internal metainfo endpoint
//! (`docs/api.md`):
//!
//! `GET {http}/internal/v1/metainfo/{digest}?repository=..&namespace=..`
//! answers 200 with a protobuf `Metainfo`, 202 with `Retry-After` while the
//! origin still pulls the blob from upstream, or 404 when upstream lacks it.

use std::time::Duration;

use shoal_proto::tracker::Metainfo as MetainfoProto;
use shoal_swarm::ring::Member;
use shoal_swarm::tls::Tls;
use shoal_swarm::{Digest, Metainfo};

use crate::validate::MetainfoQuery;

/// Largest body accepted: 256k piece hashes, a 4 TiB blob at 16 MiB pieces.
const MAX_BODY_BYTES: usize = 8 << 20;
/// Retry hint when an origin sends 202 without a usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Ceiling on an origin's retry hint, so a misconfigured origin cannot park
/// agents for long: they fall back to the origin directly instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// What an origin said.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The metainfo, checked.
    Ready(MetainfoProto),
    /// Still fetching upstream; ask again after this long.
    Fetching(Duration),
    /// Upstream does not have the blob.
    NotFound,
}

/// Why an origin gave no usable answer; the next origin is tried.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// No response (refused, reset, timed out).
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    /// An unexpected HTTP status.
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    /// The body exceeds [`MAX_BODY_BYTES`].
    #[error("body larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// The body is not a protobuf `Metainfo`.
    #[error("body is not protobuf metainfo")]
    Decode(#[source] prost::DecodeError),
    /// The metainfo is inconsistent.
    #[error("inconsistent metainfo")]
    Invalid(#[source] shoal_swarm::metainfo::MetainfoError),
    /// Metainfo of another blob.
    #[error("metainfo is for {0}, not the blob asked for")]
    WrongDigest(Digest),
}

#[derive(Clone)]
pub(crate) struct OriginClient {
    http: reqwest::Client,
}

impl OriginClient {
    pub(crate) fn new(timeout: Duration, tls: Option<&Tls>) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout);
        if let Some(tls) = tls {
            builder = builder
                .https_only(true)
                .tls_backend_preconfigured(tls.client_config(&[]));
        }
        let http = builder.build()?;
        Ok(OriginClient { http })
    }

    /// Asks `origin` for `query`'s metainfo.
    pub(crate) async fn metainfo(
        &self,
        origin: &Member,
        query: &MetainfoQuery,
    ) -> Result<Answer, CallError> {
        let url = format!("{}/internal/v1/metainfo/{}", origin.http, query.digest);
        let mut response = self
            .http
            .get(url)
            .query(&[
                ("repository", query.repository.as_str()),
                ("namespace", query.namespace.as_str()),
            ])
            .header(reqwest::header::ACCEPT, "application/x-protobuf")
            .send()
            .await
            .map_err(CallError::Request)?;
        match response.status().as_u16() {
            200 => {}
            202 => return Ok(Answer::Fetching(retry_after(&response))),
            404 => return Ok(Answer::NotFound),
            other => return Err(CallError::Status(other)),
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(CallError::Request)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(CallError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let proto: MetainfoProto =
            prost::Message::decode(body.as_slice()).map_err(CallError::Decode)?;
        let metainfo = Metainfo::from_proto(&proto).map_err(CallError::Invalid)?;
        if *metainfo.digest() != query.digest {
            return Err(CallError::WrongDigest(*metainfo.digest()));
        }
        Ok(Answer::Ready(metainfo.to_proto()))
    }
}

/// The `Retry-After` seconds of a 202 (the HTTP-date form is not used by
/// origins), clamped to 1..=60 s.
fn retry_after(response: &reqwest::Response) -> Duration {
    parse_retry_after(
        response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok()),
    )
}

fn parse_retry_after(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
        .clamp(DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER)
}

/// An error and its sources, for one log line or status message.
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
    use super::*;

    #[test]
    fn retry_after_is_seconds_clamped_with_a_default() {
        assert_eq!(parse_retry_after(Some("5")), Duration::from_secs(5));
        assert_eq!(parse_retry_after(Some(" 0 ")), Duration::from_secs(1));
        assert_eq!(parse_retry_after(Some("3600")), Duration::from_secs(60));
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Duration::from_secs(1)
        );
        assert_eq!(parse_retry_after(None), Duration::from_secs(1));
    }
}
