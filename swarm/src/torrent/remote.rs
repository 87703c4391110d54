//! What peers tell us they have (bitfield, have, complete), the swarm
//! availability it feeds, and our interest in each peer.

use std::time::Instant;

use crate::bitfield::Bitfield;
use crate::peer_key::PeerKey;
use crate::wire::Message;

use super::{DisconnectReason, Torrent, Violation};

impl Torrent {
    /// The peer's bitfield. One per connection: a second one is a violation
    /// (it would double-count availability). Pieces already announced with
    /// `have` before it are merged, not counted twice.
    pub(super) fn on_bitfield(&mut self, now: Instant, key: PeerKey, bytes: &[u8]) {
        let Some(peer) = self.peers.get_mut(key.0) else {
            return;
        };
        if peer.bitfield_seen {
            return self.violation(key, Violation::DuplicateBitfield);
        }
        let Ok(pieces) = Bitfield::from_bytes(bytes, self.picker.len()) else {
            return self.violation(key, Violation::MalformedBitfield);
        };
        peer.bitfield_seen = true;
        self.gain_all(key, pieces.ones());
        self.after_gain(now, key);
    }

    /// The peer verified piece `index`. Out-of-range indices are a violation.
    pub(super) fn on_have(&mut self, now: Instant, key: PeerKey, index: u32) {
        if index >= self.picker.len() {
            return self.violation(key, Violation::HaveOutOfRange(index));
        }
        if self.gain(key, index) {
            self.after_gain(now, key);
        }
    }

    /// The peer holds the whole blob. A repeat costs O(1), not O(pieces).
    pub(super) fn on_peer_complete(&mut self, now: Instant, key: PeerKey) {
        if self.peers.get(key.0).is_none_or(|p| p.is_seeder()) {
            return;
        }
        let pieces = 0..self.picker.len();
        self.gain_all(key, pieces);
        self.after_gain(now, key);
    }

    /// The peer's interest in us changed: the choker must look again if
    /// it loses interest while holding a slot, or gains it while a slot is
    /// free (the choker's calling order).
    pub(super) fn on_interest(&mut self, key: PeerKey, interested: bool) {
        if let Some(peer) = self.peers.get_mut(key.0)
            && peer.peer_interested != interested
        {
            peer.peer_interested = interested;
            let holder = !peer.am_choking;
            if holder || interested && self.choker.has_free_slot(self.unchoked) {
                self.rechoke_needed = true;
            }
        }
    }

    /// [`Torrent::gain`] for each of `pieces`, ascending. A peer that is not
    /// counted for sparing (it chokes us, as every peer does when its
    /// bitfield arrives, or it is a seed) cannot start counting during the
    /// loop, so its pieces skip the per-piece checks: a seed's bitfield and
    /// `Complete` walk every piece of the blob, once per connection.
    fn gain_all(&mut self, key: PeerKey, pieces: impl Iterator<Item = u32>) {
        let Some(peer) = self.peers.get_mut(key.0) else {
            return;
        };
        if !peer.peer_choking && !peer.is_seeder() {
            for index in pieces {
                self.gain(key, index);
            }
            return;
        }
        for index in pieces {
            if peer.has.set(index) {
                if !self.have.get(index) {
                    peer.wanted += 1;
                }
                self.picker.add_availability(index);
            }
        }
    }

    /// Records that `key` has `index`; false if it already did.
    fn gain(&mut self, key: PeerKey, index: u32) -> bool {
        let Some(peer) = self.peers.get_mut(key.0) else {
            return false;
        };
        let counted = !peer.peer_choking && !peer.is_seeder();
        if !peer.has.set(index) {
            return false;
        }
        if !self.have.get(index) {
            peer.wanted += 1;
        }
        self.picker.add_availability(index);
        if counted {
            self.sparing.add(index);
            if peer.is_seeder() {
                // It became a seed: from now on sparing protects it too.
                self.sparing.remove_all(&peer.has);
            }
        }
        true
    }

    /// After a peer gained pieces: drop seed-to-seed connections, update
    /// interest, and ask for blocks if it unchokes us.
    fn after_gain(&mut self, now: Instant, key: PeerKey) {
        let both_seeders =
            self.have.is_complete() && self.peers.get(key.0).is_some_and(|p| p.is_seeder());
        if both_seeders {
            return self.disconnect(key, DisconnectReason::BothSeeders);
        }
        self.update_interest(key);
        self.fill(now, key);
    }

    /// Sends Interested or NotInterested if our interest in `key` changed:
    /// we are interested while it has a piece we have not verified.
    pub(super) fn update_interest(&mut self, key: PeerKey) {
        let complete = self.have.is_complete();
        let unchokers_full = self.unchokers_full();
        let Some(peer) = self.peers.get_mut(key.0) else {
            return;
        };
        let room = peer.accepted || !unchokers_full;
        let want = peer.wanted > 0 && !complete && !peer.closing && room;
        if want != peer.am_interested {
            peer.am_interested = want;
            let message = if want {
                Message::Interested
            } else {
                Message::NotInterested
            };
            self.send(key, message);
        }
    }

    /// Counts `key`, which just unchoked us, towards `max_unchokers` if we
    /// want something from it and there is room, and otherwise tells it
    /// NotInterested; refreshes everyone's interest when the limit fills.
    pub(super) fn accept(&mut self, key: PeerKey) {
        let full = self.unchokers_full();
        let Some(peer) = self.peers.get_mut(key.0) else {
            return;
        };
        if peer.accepted || peer.wanted == 0 || self.have.is_complete() || full {
            return self.update_interest(key);
        }
        peer.accepted = true;
        self.accepted += 1;
        if self.unchokers_full() {
            self.refresh_interest();
        }
    }

    /// Whether `max_unchokers` peers are accepted (never, without a limit).
    fn unchokers_full(&self) -> bool {
        let limit = self.config.max_unchokers;
        limit > 0 && self.accepted >= limit
    }

    /// `key` no longer unchokes us (choked us, or is closing).
    pub(super) fn unaccept(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(key.0) else {
            return;
        };
        if !std::mem::take(&mut peer.accepted) {
            return;
        }
        self.accepted -= 1;
        if self.accepted + 1 == self.config.max_unchokers {
            self.refresh_interest();
        }
    }

    /// [`Torrent::update_interest`] for every peer: O(peers), once per
    /// filling or freeing of the last unchoker place.
    fn refresh_interest(&mut self) {
        for k in 0..self.peers.capacity() {
            if self.peers.contains(k) {
                self.update_interest(PeerKey(k));
            }
        }
    }

    /// We verified piece `index`: every peer that lacks it hears Have, and
    /// peers that had only this one left to offer hear NotInterested.
    /// O(peers).
    ///
    /// A peer that already holds the piece is not told (Have suppression):
    /// it will never ask us for it, and in a flash crowd most Haves would
    /// otherwise go to such peers (62% of all messages in the simulator).
    /// Completion still reaches everyone through `Complete`.
    pub(super) fn announce_have(&mut self, index: u32) {
        for k in 0..self.peers.capacity() {
            let Some(peer) = self.peers.get_mut(k) else {
                continue;
            };
            if peer.closing {
                continue;
            }
            let key = PeerKey(k);
            if peer.has.get(index) {
                peer.wanted = peer.wanted.saturating_sub(1);
            } else {
                self.send(key, Message::Have(index));
            }
            self.update_interest(key);
        }
    }
}
