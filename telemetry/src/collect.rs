//! Writing values a component already counts as metrics at scrape time.
//!
//! Components keep their own atomics and snapshots (the swarm session's
//! stats, the store's quota, the origin's counters); a collector reads
//! them on each scrape and writes them through these helpers, so that the
//! numbers in `/metrics` and in the JSON stats pages come from one place.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;
use shoal_swarm::session::SessionStats;
use shoal_swarm::store::Store;

/// A monotonic total, named without its `_total` suffix (the encoder adds
/// it).
pub fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

/// A counter family: one total per label set.
pub fn counters(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    values: &[(&[(&str, &str)], u64)],
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        unit,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (labels, value) in values {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// A value that goes up and down.
pub fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: i64,
) -> std::fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

/// A gauge family: one value per label set.
pub fn gauges(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    values: &[(&[(&str, &str)], i64)],
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        unit,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, value) in values {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// The swarm and store families, named alike in the agent and the origin
/// so one dashboard reads both: `<prefix>_torrents`,
/// `<prefix>_connected_peers`, and `<prefix>_<store>` with its `_quota`,
/// `_evictions` and `_evicted` (`store` is what the component calls its
/// store: the agent's `cache`, the origin's `store`).
pub fn swarm_totals(
    encoder: &mut DescriptorEncoder<'_>,
    prefix: &str,
    store: &str,
    session: &SessionStats,
    blobs: &Store,
) -> std::fmt::Result {
    let evictions = blobs.evictions();
    gauges(
        encoder,
        &format!("{prefix}_torrents"),
        "Blobs in the swarm session, by state.",
        None,
        &[
            (&[("state", "downloading")], signed(session.downloading)),
            (&[("state", "seeding")], signed(session.seeding)),
        ],
    )?;
    gauge(
        encoder,
        &format!("{prefix}_connected_peers"),
        "Peer connections, over every blob.",
        None,
        signed(session.peers),
    )?;
    gauge(
        encoder,
        &format!("{prefix}_{store}"),
        &format!("Bytes held or reserved in the {store}."),
        Some(&Unit::Bytes),
        signed(blobs.used_bytes()),
    )?;
    gauge(
        encoder,
        &format!("{prefix}_{store}_quota"),
        &format!("The {store}'s quota (0 = unlimited)."),
        Some(&Unit::Bytes),
        signed(blobs.quota_bytes()),
    )?;
    counter(
        encoder,
        &format!("{prefix}_{store}_evictions"),
        &format!("Blobs evicted from the {store} to make room."),
        None,
        evictions.count,
    )?;
    counter(
        encoder,
        &format!("{prefix}_{store}_evicted"),
        &format!("Bytes evicted from the {store} to make room."),
        Some(&Unit::Bytes),
        evictions.bytes,
    )
}

/// Saturating conversion for gauges of byte and item counts.
pub fn signed(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}
