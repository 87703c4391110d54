//! One peer's announced state for one blob: what the store keeps between
//! announces and what the handout policy ranks.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use shoal_swarm::PeerId;

/// Longest zone name accepted, the limit of a Kubernetes label value: zones
/// come from `topology.kubernetes.io/zone`, and a bound keeps entries small.
pub const MAX_ZONE_LEN: usize = 63;

/// A peer's latest announce for one blob.
///
/// Kept compact because the memory store holds one per (blob, peer): 64 bytes
/// inline on 64-bit targets (pinned by a test), plus the zone's shared
/// allocation. The byte counters of an announce are not kept: nothing ranks
/// by them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    /// The peer's identity; one record per id and blob.
    pub id: PeerId,
    /// Address the peer's swarm port listens on.
    pub ip: IpAddr,
    /// The swarm port, never 0.
    pub port: u16,
    /// Failure domain, empty if unknown. Shared, so that copying records out
    /// of the store for ranking costs no allocation.
    pub zone: Arc<str>,
    /// Verified pieces held.
    pub pieces: u32,
    /// Holds every piece (a seeder).
    pub complete: bool,
    /// Is an origin, a seeder of last resort.
    pub origin: bool,
}

impl PeerRecord {
    /// The address to connect to.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_stays_64_bytes() {
        assert_eq!(std::mem::size_of::<PeerRecord>(), 64);
    }
}
