//! The agent's Prometheus metrics.
//!
//! Totals the agent already keeps (the swarm session's, the origin
//! client's, the store's, the blob paths' counters) are read at scrape
//! time by [`AgentCollector`], so they never disagree with
//! `/shoal/v1/stats`. What only the registry API sees, how long a client
//! waits for its first byte and for the whole blob and how many bytes it
//! got from where, is recorded as it happens in [`Pulls`].

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use shoal_telemetry::collect::{counters, gauge, signed, swarm_totals};

use crate::blobs::Blobs;

/// Where the bytes of a client's blob response come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullSource {
    /// Complete in the cache.
    Cache,
    /// A download in progress (swarm or origin pieces), verified piece by
    /// piece.
    Download,
    /// Streamed from an origin without metainfo (tracker unavailable).
    Passthrough,
}

impl PullSource {
    fn label(self) -> [(&'static str, &'static str); 1] {
        let source = match self {
            PullSource::Cache => "cache",
            PullSource::Download => "download",
            PullSource::Passthrough => "passthrough",
        };
        [("source", source)]
    }
}

type Labels = [(&'static str, &'static str); 1];
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Per-request metrics of blob pulls. Clones share the same series.
#[derive(Debug, Clone)]
pub struct Pulls {
    first_byte: Histograms,
    duration: Histograms,
    served: Family<Labels, Counter>,
}

impl Default for Pulls {
    fn default() -> Self {
        Pulls {
            // 1 ms (a cache hit) to about a minute (an origin still
            // pulling a large layer upstream).
            first_byte: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 17))
            }),
            // 5 ms to about 5 minutes: a multi-GiB layer at swarm speed.
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 17))
            }),
            served: Family::default(),
        }
    }
}

impl Pulls {
    /// The first body byte of a pull is ready `seconds` after the request.
    pub fn first_byte(&self, source: PullSource, seconds: f64) {
        self.first_byte
            .get_or_create(&source.label())
            .observe(seconds);
    }

    /// A pull's body was sent completely, `seconds` after the request.
    pub fn completed(&self, source: PullSource, seconds: f64) {
        self.duration
            .get_or_create(&source.label())
            .observe(seconds);
    }

    /// `bytes` more were sent to a client.
    pub fn served(&self, source: PullSource, bytes: u64) {
        self.served.get_or_create(&source.label()).inc_by(bytes);
    }

    fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "shoal_agent_blob_first_byte",
            "Time from a blob GET to its first body byte, by source",
            Unit::Seconds,
            self.first_byte.clone(),
        );
        registry.register_with_unit(
            "shoal_agent_blob_pull",
            "Time from a blob GET to its last body byte, by source (complete responses only)",
            Unit::Seconds,
            self.duration.clone(),
        );
        registry.register_with_unit(
            "shoal_agent_served",
            "Blob bytes sent to registry clients, by source",
            Unit::Bytes,
            self.served.clone(),
        );
    }
}

/// A registry with every agent metric: `pulls` and what `blobs` counts.
pub fn registry(blobs: &Blobs, pulls: &Pulls) -> Registry {
    let mut registry = Registry::default();
    pulls.register(&mut registry);
    registry.register_collector(Box::new(AgentCollector {
        blobs: blobs.clone(),
    }));
    registry
}

/// Reads the agent's totals at scrape time.
struct AgentCollector {
    blobs: Blobs,
}

impl std::fmt::Debug for AgentCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCollector").finish_non_exhaustive()
    }
}

impl Collector for AgentCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let e = &mut encoder;
        let session = self.blobs.session().stats();
        let blobs = self.blobs.stats();
        let store = self.blobs.session().store();
        counters(
            e,
            "shoal_agent",
            "Blob bytes moved, by direction and the other end: down from swarm peers (verified) or origins, up to swarm peers.",
            Some(&Unit::Bytes),
            &[
                (
                    &[("direction", "down"), ("remote", "peer")],
                    session.downloaded_bytes,
                ),
                (
                    &[("direction", "down"), ("remote", "origin")],
                    self.blobs.origins().bytes_fetched(),
                ),
                (
                    &[("direction", "up"), ("remote", "peer")],
                    session.uploaded_bytes,
                ),
            ],
        )?;
        counters(
            e,
            "shoal_agent_pieces",
            "Pieces received, by hash check result and sender (a peer that sends a bad piece is banned).",
            None,
            &[
                (
                    &[("result", "verified"), ("remote", "peer")],
                    session.pieces_verified,
                ),
                (
                    &[("result", "hash_mismatch"), ("remote", "peer")],
                    session.pieces_failed,
                ),
                (
                    &[("result", "verified"), ("remote", "origin")],
                    blobs.origin_pieces_verified,
                ),
                (
                    &[("result", "hash_mismatch"), ("remote", "origin")],
                    blobs.origin_pieces_failed,
                ),
            ],
        )?;
        gauge(
            e,
            "shoal_agent_active_downloads",
            "Blobs being downloaded now (one per blob, however many clients read it).",
            None,
            signed(blobs.active_downloads),
        )?;
        swarm_totals(e, "shoal_agent", "cache", &session, store)
    }
}
