//! The tracker as the simulator runs it: an in-memory announce table per
//! blob with the production expiry rule, and the real handout policy
//! ([`shoal_tracker::handout::select`]) choosing whom each announcer gets.
//!
//! Only storage is simulated here (the production stores are async and
//! networked); ranking, origin inclusion, shuffling and the size of the
//! handout all come from the tracker crate, so they cannot drift.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use shoal_swarm::PeerId;
use shoal_tracker::PeerRecord;
use shoal_tracker::handout::{self, Pick, Policy, Requester};

use crate::clock::SimTime;
use crate::events::HostId;

/// The swarm port every simulated host listens on.
const PORT: u16 = 7000;

/// The address a host is known by: its index packed into 10.0.0.0/8, so
/// the tracker's records and ring entries map back to hosts exactly.
pub fn host_addr(host: HostId) -> SocketAddr {
    let [_, a, b, c] = host.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, a, b, c)), PORT)
}

/// Live announces of one blob, in parallel vectors so that `select` gets a
/// plain slice of records.
#[derive(Default)]
struct Entries {
    records: Vec<PeerRecord>,
    hosts: Vec<HostId>,
    expires: Vec<SimTime>,
    index: HashMap<HostId, usize>,
}

impl Entries {
    fn upsert(&mut self, host: HostId, record: PeerRecord, expires: SimTime) {
        match self.index.get(&host) {
            Some(&i) => {
                self.records[i] = record;
                self.expires[i] = expires;
            }
            None => {
                self.index.insert(host, self.records.len());
                self.records.push(record);
                self.hosts.push(host);
                self.expires.push(expires);
            }
        }
    }

    /// Drops entries whose announces stopped more than the TTL ago.
    fn expire(&mut self, now: SimTime) {
        let mut i = 0;
        while i < self.records.len() {
            if self.expires[i] > now {
                i += 1;
                continue;
            }
            self.index.remove(&self.hosts[i]);
            self.records.swap_remove(i);
            self.hosts.swap_remove(i);
            self.expires.swap_remove(i);
            if i < self.records.len() {
                self.index.insert(self.hosts[i], i);
            }
        }
    }
}

/// One tracker for every blob of the run.
pub struct SimTracker {
    policy: Policy,
    ttl: Duration,
    ring: Vec<SocketAddr>,
    ring_hosts: Vec<HostId>,
    blobs: Vec<Entries>,
    zone: Arc<str>,
    rng: SmallRng,
}

/// What an announcer says about itself.
#[derive(Debug, Clone, Copy)]
pub struct Announce {
    /// The announcer.
    pub host: HostId,
    /// Its peer id.
    pub id: PeerId,
    /// Its verified pieces.
    pub pieces: u32,
    /// The blob's piece count.
    pub total_pieces: u32,
}

impl SimTracker {
    /// A tracker for `blobs` blobs whose owners (the ring's answer) are the
    /// hosts `origins`. Entries expire `ttl` after their last announce
    /// (production: `ttl_intervals` x the announce interval).
    pub fn new(blobs: usize, origins: &[HostId], policy: Policy, ttl: Duration, seed: u64) -> Self {
        SimTracker {
            policy,
            ttl,
            ring: origins.iter().map(|&h| host_addr(h)).collect(),
            ring_hosts: origins.to_vec(),
            blobs: (0..blobs).map(|_| Entries::default()).collect(),
            zone: Arc::from(""),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Records an announce for `blob` and returns the hosts handed back,
    /// best first, exactly as the real policy orders them.
    pub fn announce(&mut self, now: SimTime, blob: usize, who: Announce) -> Vec<HostId> {
        let Some(entries) = self.blobs.get_mut(blob) else {
            return Vec::new();
        };
        entries.expire(now);
        let addr = host_addr(who.host);
        let complete = who.total_pieces > 0 && who.pieces >= who.total_pieces;
        let record = PeerRecord {
            id: who.id,
            ip: addr.ip(),
            port: addr.port(),
            zone: Arc::clone(&self.zone),
            pieces: who.pieces,
            complete,
            origin: false,
        };
        entries.upsert(who.host, record, now.after(self.ttl));
        let requester = Requester {
            id: who.id,
            zone: &self.zone,
            complete,
            total_pieces: who.total_pieces,
        };
        let picks = handout::select(
            &requester,
            &entries.records,
            &self.ring,
            &self.policy,
            &mut self.rng,
        );
        picks
            .into_iter()
            .map(|pick| match pick {
                Pick::Peer(i) => entries.hosts[i],
                Pick::Origin(i) => self.ring_hosts[i],
            })
            .collect()
    }

    /// Live entries of `blob` (for tests).
    pub fn live(&self, blob: usize) -> usize {
        self.blobs.get(blob).map_or(0, |e| e.records.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(host: HostId, pieces: u32) -> Announce {
        let mut id = [0u8; 20];
        id[..4].copy_from_slice(&host.to_be_bytes());
        Announce {
            host,
            id: PeerId::from_array(id),
            pieces,
            total_pieces: 10,
        }
    }

    #[test]
    fn origins_first_then_peers_and_entries_expire() {
        let ttl = Duration::from_secs(9);
        let mut t = SimTracker::new(1, &[0, 1], Policy::default(), ttl, 7);
        let first = t.announce(SimTime::ZERO, 0, who(5, 0));
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1], "only the origins are known");
        let second = t.announce(SimTime::ZERO, 0, who(6, 0));
        assert!(second.contains(&5) && !second.contains(&6));
        assert_eq!(t.live(0), 2);
        let late = SimTime::ZERO.after(Duration::from_secs(10));
        let third = t.announce(late, 0, who(7, 0));
        assert!(!third.contains(&5), "5 stopped announcing and expired");
        assert_eq!(t.live(0), 1);
    }

    #[test]
    fn addresses_encode_hosts() {
        assert_eq!(host_addr(0x01_02_03).to_string(), "10.1.2.3:7000");
    }
}
