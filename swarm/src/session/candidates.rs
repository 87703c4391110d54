//! Which peers a blob's driver should dial next: addresses handed out by the
//! tracker, minus those already connected, being dialed, banned, or
//! ourselves, within the blob's connection limit. Plain bookkeeping, so it
//! is tested alone.
//!
//! "Refused" below is the driver's answer for a peer id: connected already,
//! or banned by the torrent. A banned peer's id is usually in the tracker's
//! answer; for entries without one, the address a banned peer was dialed at
//! stands for its id.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use crate::peer_id::PeerId;

use super::PeerAddr;

/// Dial candidates of one blob.
pub(crate) struct Candidates {
    our_id: PeerId,
    our_addr: SocketAddr,
    /// Addresses connected (outbound), being dialed, or queued: each is
    /// dialed at most once until its connection ends.
    known: HashSet<SocketAddr>,
    queue: VecDeque<PeerAddr>,
    dialing: usize,
    /// Addresses at which a peer we then banned was dialed, with its id.
    /// An entry goes when it is looked up after the ban ended, so there is
    /// at most one per banned address.
    banned_at: HashMap<SocketAddr, PeerId>,
}

impl Candidates {
    pub(crate) fn new(our_id: PeerId, our_addr: SocketAddr) -> Self {
        Candidates {
            our_id,
            our_addr,
            known: HashSet::new(),
            queue: VecDeque::new(),
            dialing: 0,
            banned_at: HashMap::new(),
        }
    }

    /// Queues a peer unless it is us, refused (connected or banned), or
    /// already known by address.
    pub(crate) fn add(&mut self, peer: PeerAddr, refused: impl Fn(&PeerId) -> bool) {
        let ours = peer.id == Some(self.our_id) || peer.addr == self.our_addr;
        if ours || self.refuses(&peer, &refused) || !self.known.insert(peer.addr) {
            return;
        }
        self.queue.push_back(peer);
    }

    /// The next peer to dial while `connections` plus dials in flight stay
    /// under `limit`; counts it as dialing. Skips peers refused meanwhile
    /// (they connected to us, or were banned), forgetting them so that the
    /// tracker can hand them out again later.
    pub(crate) fn next_dial(
        &mut self,
        connections: usize,
        limit: usize,
        refused: impl Fn(&PeerId) -> bool,
    ) -> Option<PeerAddr> {
        while connections + self.dialing < limit {
            let peer = self.queue.pop_front()?;
            if self.refuses(&peer, &refused) {
                self.known.remove(&peer.addr);
                continue;
            }
            self.dialing += 1;
            return Some(peer);
        }
        None
    }

    /// The peer dialed at `addr` was banned as `id`: while `id` stays
    /// refused, so is `addr`, with or without an id.
    pub(crate) fn banned(&mut self, addr: SocketAddr, id: PeerId) {
        self.banned_at.insert(addr, id);
    }

    /// A dial ended in a connection; the address stays known while it lasts.
    pub(crate) fn dial_succeeded(&mut self) {
        self.dialing = self.dialing.saturating_sub(1);
    }

    /// A dial failed; the address may be handed out and tried again later.
    pub(crate) fn dial_failed(&mut self, addr: SocketAddr) {
        self.dialing = self.dialing.saturating_sub(1);
        self.known.remove(&addr);
    }

    /// An outbound connection to `addr` ended or was refused.
    pub(crate) fn forget(&mut self, addr: SocketAddr) {
        self.known.remove(&addr);
    }

    /// Whether `peer` is refused by its own id or by the id of the peer
    /// banned at its address (dropping that entry once the ban is over).
    fn refuses(&mut self, peer: &PeerAddr, refused: &impl Fn(&PeerId) -> bool) -> bool {
        if peer.id.as_ref().is_some_and(refused) {
            return true;
        }
        let Some(id) = self.banned_at.get(&peer.addr) else {
            return false;
        };
        if refused(id) {
            return true;
        }
        self.banned_at.remove(&peer.addr);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn id(byte: u8) -> PeerId {
        PeerId::from_array([byte; PeerId::LEN])
    }

    #[test]
    fn skips_self_duplicates_and_connected_peers() {
        let mut c = Candidates::new(id(0), addr(1));
        let connected = |p: &PeerId| *p == id(9);
        c.add(
            PeerAddr {
                addr: addr(1),
                id: None,
            },
            connected,
        );
        c.add(
            PeerAddr {
                addr: addr(2),
                id: Some(id(0)),
            },
            connected,
        );
        c.add(
            PeerAddr {
                addr: addr(3),
                id: Some(id(9)),
            },
            connected,
        );
        c.add(
            PeerAddr {
                addr: addr(4),
                id: Some(id(4)),
            },
            connected,
        );
        c.add(
            PeerAddr {
                addr: addr(4),
                id: Some(id(4)),
            },
            connected,
        );
        assert_eq!(c.next_dial(0, 10, connected).map(|p| p.addr), Some(addr(4)));
        assert_eq!(c.next_dial(0, 10, connected), None);
    }

    #[test]
    fn respects_the_limit_and_retries_failed_addresses() {
        let mut c = Candidates::new(id(0), addr(1));
        let none = |_: &PeerId| false;
        for port in 10..13 {
            c.add(PeerAddr::from(addr(port)), none);
        }
        assert!(c.next_dial(1, 2, none).is_some());
        assert!(
            c.next_dial(1, 2, none).is_none(),
            "one connection + one dial = limit"
        );
        c.dial_failed(addr(10));
        c.add(PeerAddr::from(addr(10)), none);
        assert_eq!(c.next_dial(1, 2, none).map(|p| p.addr), Some(addr(11)));
        c.dial_succeeded();
        assert_eq!(c.next_dial(1, 3, none).map(|p| p.addr), Some(addr(12)));
        assert_eq!(
            c.next_dial(1, 4, none).map(|p| p.addr),
            Some(addr(10)),
            "re-queued after failure"
        );
    }

    #[test]
    fn a_peer_that_connected_meanwhile_is_not_dialed() {
        let mut c = Candidates::new(id(0), addr(1));
        c.add(
            PeerAddr {
                addr: addr(5),
                id: Some(id(5)),
            },
            |_| false,
        );
        assert_eq!(c.next_dial(0, 10, |p| *p == id(5)), None);
        c.add(
            PeerAddr {
                addr: addr(5),
                id: Some(id(5)),
            },
            |_| false,
        );
        assert!(
            c.next_dial(0, 10, |_| false).is_some(),
            "forgotten, so it can return"
        );
    }

    #[test]
    fn a_banned_peer_is_not_dialed_by_id_or_by_its_address() {
        let mut c = Candidates::new(id(0), addr(1));
        let banned = |p: &PeerId| *p == id(7);
        let evil = PeerAddr {
            addr: addr(7),
            id: Some(id(7)),
        };
        c.add(evil, banned);
        assert_eq!(c.next_dial(0, 10, banned), None, "banned by its id");

        // Dialed before the ban, by address only; banned after the handshake.
        let none = |_: &PeerId| false;
        c.add(PeerAddr::from(addr(7)), none);
        assert_eq!(c.next_dial(0, 10, none).map(|p| p.addr), Some(addr(7)));
        c.dial_succeeded();
        c.banned(addr(7), id(7));
        c.forget(addr(7));
        c.add(PeerAddr::from(addr(7)), banned);
        assert_eq!(c.next_dial(0, 10, banned), None, "banned by its address");

        // Queued, then banned before its turn.
        c.add(
            PeerAddr {
                addr: addr(9),
                id: Some(id(9)),
            },
            none,
        );
        assert_eq!(
            c.next_dial(0, 10, |p: &PeerId| *p == id(9)),
            None,
            "banned while queued"
        );

        // Once the bans are over, both may be dialed again.
        c.add(PeerAddr::from(addr(7)), none);
        c.add(evil, none);
        assert_eq!(c.next_dial(0, 10, none).map(|p| p.addr), Some(addr(7)));
        assert_eq!(c.next_dial(0, 10, none), None, "known by address once");
    }
}
