//! What an origin has done, for the CLI's summary, status pages and tests.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use shoal_swarm::session::Session;

use crate::upstream::Upstreams;

/// A snapshot of an origin's counters; also served as JSON on
/// `/shoal/v1/stats` so that tests and operators of real processes see
/// what the CLI sees in-process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Requests made to upstreams (manifests and blobs; auth exchanges
    /// inside one request are not counted separately).
    pub upstream_requests: u64,
    /// Blob bytes received from upstreams.
    pub upstream_bytes: u64,
    /// Blob bytes received from peer origins (replica copies).
    pub replica_bytes_received: u64,
    /// Blob bytes served over HTTP (to agents and peer origins).
    pub http_bytes_sent: u64,
    /// Blob bytes uploaded to peers through the swarm session.
    pub peer_bytes_sent: u64,
    /// Complete blobs in the store.
    pub blobs_stored: u64,
}

/// The counters the HTTP and fetch paths bump.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) http_bytes_sent: AtomicU64,
    pub(crate) replica_bytes_received: AtomicU64,
    /// Blob fetches (from a peer origin or upstream) that stored the blob.
    pub(crate) fetches_ok: AtomicU64,
    /// Blob fetches that failed (upstream error, broken body, bad digest).
    pub(crate) fetches_failed: AtomicU64,
}

impl Counters {
    /// A blob fetch ended.
    pub(crate) fn fetched(&self, ok: bool) {
        let counter = if ok {
            &self.fetches_ok
        } else {
            &self.fetches_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads every counter now.
pub(crate) fn snapshot(upstreams: &Upstreams, counters: &Counters, session: &Session) -> Stats {
    let upstream = upstreams.counters();
    Stats {
        upstream_requests: upstream.requests.load(Ordering::Relaxed),
        upstream_bytes: upstream.bytes.load(Ordering::Relaxed),
        replica_bytes_received: counters.replica_bytes_received.load(Ordering::Relaxed),
        http_bytes_sent: counters.http_bytes_sent.load(Ordering::Relaxed),
        peer_bytes_sent: session
            .torrents()
            .iter()
            .map(|t| t.progress().uploaded)
            .sum(),
        blobs_stored: session.store().complete_digests().len() as u64,
    }
}
