//! The origin's Prometheus metrics, read at scrape time from the counters
//! the origin already keeps (`stats`, the upstream counters, the swarm
//! session and the store), so `/metrics` and `/shoal/v1/stats` never
//! disagree.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::{Registry, Unit};
use shoal_swarm::session::Session;
use shoal_telemetry::collect::{counter, counters, gauge, signed, swarm_totals};

use crate::fetch::Fetcher;
use crate::stats::Counters;
use crate::upstream::Upstreams;

/// What the collector reads.
pub(crate) struct OriginCollector {
    pub(crate) upstreams: Arc<Upstreams>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) session: Session,
    pub(crate) fetcher: Fetcher,
}

impl std::fmt::Debug for OriginCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginCollector").finish_non_exhaustive()
    }
}

/// A registry holding the origin's metrics.
pub(crate) fn registry(collector: OriginCollector) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    registry
}

impl Collector for OriginCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let e = &mut encoder;
        let upstream = self.upstreams.counters();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let session = self.session.stats();
        let store = self.session.store();
        counters(
            e,
            "shoal_origin",
            "Blob bytes moved, by direction and the other end: down from upstream or a peer origin, up to swarm peers or HTTP clients (agents, origins).",
            Some(&Unit::Bytes),
            &[
                (
                    &[("direction", "down"), ("remote", "upstream")],
                    load(&upstream.bytes),
                ),
                (
                    &[("direction", "down"), ("remote", "origin")],
                    load(&self.counters.replica_bytes_received),
                ),
                (
                    &[("direction", "up"), ("remote", "peer")],
                    session.uploaded_bytes,
                ),
                (
                    &[("direction", "up"), ("remote", "client")],
                    load(&self.counters.http_bytes_sent),
                ),
            ],
        )?;
        counter(
            e,
            "shoal_origin_upstream_requests",
            "Requests made to upstreams (manifests and blobs).",
            None,
            load(&upstream.requests),
        )?;
        counters(
            e,
            "shoal_origin_upstream_errors",
            "Upstream requests that failed, by reason.",
            None,
            &[
                (&[("reason", "not_found")], load(&upstream.not_found)),
                (&[("reason", "unauthorized")], load(&upstream.unauthorized)),
                (&[("reason", "failed")], load(&upstream.failed)),
            ],
        )?;
        counters(
            e,
            "shoal_origin_blob_fetches",
            "Blob fetches (from a peer origin, else upstream) that ended, by result.",
            None,
            &[
                (&[("result", "ok")], load(&self.counters.fetches_ok)),
                (&[("result", "failed")], load(&self.counters.fetches_failed)),
            ],
        )?;
        gauge(
            e,
            "shoal_origin_active_fetches",
            "Blob fetches in progress.",
            None,
            signed(self.fetcher.running()),
        )?;
        gauge(
            e,
            "shoal_origin_blobs_stored",
            "Complete blobs in the store.",
            None,
            signed(store.complete_digests().len()),
        )?;
        swarm_totals(e, "shoal_origin", "store", &session, store)
    }
}
