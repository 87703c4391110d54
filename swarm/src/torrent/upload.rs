//! Their requests: checks, flood control, serving; and choking, which
//! decides who may request at all.
//!
//! A valid request becomes [`Action::Serve`] at once and the upload is
//! accounted then, unless a seed that spreads first gave the piece to
//! another peer (then `Reject`, see `spread`). The request stays "in flight" until the driver reports it
//! written with [`Torrent::handle_served`]; a peer with more than
//! `max_inbound_requests` in flight is flooding. A `Cancel` is ignored: the
//! Serve is already out, and a driver with a send queue may drop the block
//! itself (and still calls `handle_served`).

use std::time::Instant;

use crate::choker::ChokeCandidate;
use crate::peer_key::PeerKey;
use crate::wire::{BlockRange, Message};

use super::config::MAX_BLOCK_SIZE;
use super::spread::Verdict;
use super::{Action, DisconnectReason, Torrent, Violation};

impl Torrent {
    /// The driver wrote (or dropped) the `Piece` for a [`Action::Serve`] of
    /// `block` to `key`. Call once per Serve; it frees one of the peer's
    /// in-flight request slots. Unknown peers are ignored.
    pub fn handle_served(&mut self, now: Instant, key: PeerKey, block: BlockRange) {
        if let Some(peer) = self.peers.get_mut(key.0) {
            peer.inbound = peer.inbound.saturating_sub(1);
            tracing::trace!(peer = %peer.id, ?block, in_flight = peer.inbound, "served");
        }
        self.after_event(now);
    }

    /// A request from `key`: Reject while we choke it, or while spreading
    /// a piece another peer got first; a violation for a piece we do not
    /// have or a block outside it; a flood past the limit; otherwise Serve.
    pub(super) fn on_request(&mut self, now: Instant, key: PeerKey, block: BlockRange) {
        let Some(peer) = self.peers.get_mut(key.0) else {
            return;
        };
        if peer.am_choking {
            return self.send(key, Message::Reject(block));
        }
        if !self.have.get(block.index) {
            return self.violation(key, Violation::RequestNotHeld(block.index));
        }
        let piece_len = self.metainfo.piece_len(block.index).unwrap_or(0);
        let end = u64::from(block.begin) + u64::from(block.length);
        if block.length == 0 || block.length > MAX_BLOCK_SIZE || end > u64::from(piece_len) {
            return self.violation(key, Violation::InvalidBlock(block.index));
        }
        if let Some(spread) = &mut self.spread
            && self.have.is_complete()
            && spread.request(key, block.index) == Verdict::Refuse
        {
            return self.send(key, Message::Reject(block));
        }
        peer.inbound += 1;
        if peer.inbound > self.config.max_inbound_requests {
            let limit = self.config.max_inbound_requests;
            return self.disconnect(key, DisconnectReason::RequestFlood(limit));
        }
        peer.up.record(now, u64::from(block.length));
        peer.up_recent.record(now, u64::from(block.length));
        self.uploaded += u64::from(block.length);
        self.actions.push_back(Action::Serve { peer: key, block });
    }

    /// Asks the choker who holds upload slots and sends the changes. Runs at
    /// the choker's timer and after an input that may free or fill a slot
    /// (see the calling order on [`crate::choker::Choker`]). O(peers).
    pub(super) fn rechoke(&mut self, now: Instant) {
        let choker_config = &self.config.choker;
        let candidates: Vec<ChokeCandidate> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.closing)
            .map(|(k, p)| {
                let waiting = !p.peer_choking && !p.outstanding.is_empty();
                ChokeCandidate {
                    key: PeerKey(k),
                    interested: p.peer_interested,
                    rate_from_peer: p.down.rate(now),
                    rate_to_peer: p.up.rate(now),
                    recent_rate_to_peer: p.up_recent.rate(now),
                    connected_at: p.connected_at,
                    unchoked: !p.am_choking,
                    snubbed: choker_config.is_snubbed(now, waiting.then_some(p.waiting_since)),
                }
            })
            .collect();
        let seeding = self.have.is_complete();
        let changes = self
            .choker
            .rechoke(now, &candidates, seeding, &mut self.rng);
        self.unchoked = candidates.iter().filter(|c| c.unchoked).count();
        for (key, unchoke) in changes {
            let Some(peer) = self.peers.get_mut(key.0) else {
                continue;
            };
            peer.am_choking = !unchoke;
            if unchoke {
                self.unchoked += 1;
            } else {
                self.unchoked -= 1;
            }
            let message = if unchoke {
                Message::Unchoke
            } else {
                Message::Choke
            };
            self.send(key, message);
        }
    }
}
