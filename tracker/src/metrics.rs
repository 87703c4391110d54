//! The tracker's Prometheus metrics: announces and metainfo requests by
//! outcome, and how long an announce takes (validation, the peer store's
//! round trip, the handout). Counted where the gRPC handlers return, so a
//! request refused by validation counts too.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tonic::Code;

/// One label: the request's outcome.
type Outcome = [(&'static str, &'static str); 1];

/// The tracker's metric handles. Clones share the same series.
#[derive(Debug, Clone)]
pub struct TrackerMetrics {
    announces: Family<Outcome, Counter>,
    announce_seconds: Histogram,
    metainfo: Family<Outcome, Counter>,
}

impl Default for TrackerMetrics {
    fn default() -> Self {
        TrackerMetrics {
            announces: Family::default(),
            // 0.25 ms to 4 s: an in-memory announce takes microseconds, a
            // Redis one a round trip, a struggling Redis its 2 s timeout.
            announce_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
            metainfo: Family::default(),
        }
    }
}

impl TrackerMetrics {
    /// Adds the tracker's metrics to `registry` (names `shoal_tracker_*`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "shoal_tracker_announces",
            "Announce requests answered, by result (ok or the gRPC status)",
            self.announces.clone(),
        );
        registry.register_with_unit(
            "shoal_tracker_announce_duration",
            "Time to answer an announce",
            Unit::Seconds,
            self.announce_seconds.clone(),
        );
        registry.register(
            "shoal_tracker_metainfo_requests",
            "GetMetainfo requests answered, by result (ok or the gRPC status)",
            self.metainfo.clone(),
        );
    }

    /// An announce was answered with `code` (None: OK) after `elapsed`.
    pub(crate) fn announced(&self, code: Option<Code>, elapsed: Duration) {
        self.announces
            .get_or_create(&[("result", result(code))])
            .inc();
        self.announce_seconds.observe(elapsed.as_secs_f64());
    }

    /// A metainfo request was answered with `code` (None: OK).
    pub(crate) fn metainfo(&self, code: Option<Code>) {
        self.metainfo
            .get_or_create(&[("result", result(code))])
            .inc();
    }
}

/// A bounded label value for a gRPC outcome.
fn result(code: Option<Code>) -> &'static str {
    match code {
        None => "ok",
        Some(Code::InvalidArgument) => "invalid_argument",
        Some(Code::NotFound) => "not_found",
        Some(Code::Unavailable) => "unavailable",
        Some(Code::DeadlineExceeded) => "deadline_exceeded",
        Some(_) => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_by_result() {
        let metrics = TrackerMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.announced(None, Duration::from_millis(1));
        metrics.announced(Some(Code::InvalidArgument), Duration::from_millis(1));
        metrics.announced(None, Duration::from_millis(3));
        metrics.metainfo(Some(Code::NotFound));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap_or_default();
        assert!(
            text.contains("shoal_tracker_announces_total{result=\"ok\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("shoal_tracker_announces_total{result=\"invalid_argument\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("shoal_tracker_announce_duration_seconds_count 3\n"),
            "{text}"
        );
        assert!(
            text.contains("shoal_tracker_metainfo_requests_total{result=\"not_found\"} 1\n"),
            "{text}"
        );
    }
}
