//! What the simulator keeps per host and per (host, blob): the real
//! [`Torrent`], the map from its peer keys to connections, and the dial
//! bookkeeping the session driver does (`swarm/src/session/candidates.rs`):
//! dial handed-out peers while connections plus dials stay under the limit,
//! each address at most once until its connection ends.

use std::collections::{HashSet, VecDeque};

use shoal_swarm::torrent::Torrent;
use shoal_swarm::{PeerId, PeerKey};

use crate::clock::SimTime;
use crate::events::{ConnId, HostId};

/// One blob's swarm on one host.
pub struct Swarm {
    /// The real per-blob state machine.
    pub torrent: Torrent,
    /// Connection of each live peer key (indexed by `PeerKey.0`).
    pub by_key: Vec<Option<ConnId>>,
    /// Established connections, inbound and outbound.
    pub connections: u32,
    /// Dials whose handshake has not completed.
    pub dialing: u32,
    /// Handed-out peers waiting to be dialed.
    pub queue: VecDeque<HostId>,
    /// Queued, dialing or connected-outbound peers: not queued again.
    pub known: HashSet<HostId>,
    /// The virtual time a `Timer` event is pending for, if any.
    pub timer: Option<SimTime>,
    /// Bumped to orphan the pending periodic announce (completion announces
    /// at once and restarts the cycle, as the agent does).
    pub announce_generation: u32,
    /// When every piece was verified.
    pub completed_at: Option<SimTime>,
}

impl Swarm {
    /// A swarm around `torrent`, not connected to anyone.
    pub fn new(torrent: Torrent) -> Self {
        Swarm {
            torrent,
            by_key: Vec::new(),
            connections: 0,
            dialing: 0,
            queue: VecDeque::new(),
            known: HashSet::new(),
            timer: None,
            announce_generation: 0,
            completed_at: None,
        }
    }

    /// The connection behind `key`, if it is live.
    pub fn conn_of(&self, key: PeerKey) -> Option<ConnId> {
        self.by_key.get(key.0).copied().flatten()
    }

    /// Records that `key` now names `conn`.
    pub fn bind(&mut self, key: PeerKey, conn: ConnId) {
        if self.by_key.len() <= key.0 {
            self.by_key.resize(key.0 + 1, None);
        }
        self.by_key[key.0] = Some(conn);
        self.connections += 1;
    }

    /// Forgets `key` after its connection closed.
    pub fn unbind(&mut self, key: PeerKey) {
        if let Some(slot) = self.by_key.get_mut(key.0)
            && slot.take().is_some()
        {
            self.connections -= 1;
        }
    }
}

/// One simulated machine: an origin or an agent.
pub struct Host {
    /// Its peer id in handshakes and announces.
    pub id: PeerId,
    /// An origin seeds every blob from the start and does not announce.
    pub origin: bool,
    /// Upload and download capacity, bytes per second.
    pub up: f64,
    /// See `up`.
    pub down: f64,
    /// When it starts pulling (agents) or serving (origins).
    pub join_at: SimTime,
    /// When it leaves mid-transfer (churn), if ever.
    pub leave_at: Option<SimTime>,
    /// Joined and not yet left.
    pub active: bool,
    /// Left before the run ended.
    pub departed: bool,
    /// When every blob was complete.
    pub done_at: Option<SimTime>,
    /// When its first piece of any blob was verified: a late first piece
    /// means a late start (no unchoke, no peers), not a slow download.
    pub first_piece_at: Option<SimTime>,
    /// When half of all its pieces were verified.
    pub half_at: Option<SimTime>,
    /// Payload bytes this host actually put on the wire.
    pub sent: u64,
}
