//! Our requests: keeping each unchoking peer's pipeline full, end-game
//! duplicates, timeouts, chokes and rejects, and blocks arriving.
//!
//! Every outstanding request is recorded twice, kept in step: in the peer's
//! `outstanding` list (its pipeline) and in the piece's `Download::requests`
//! (who to cancel when a block arrives). Deadlines sit in a FIFO queue and
//! are dropped lazily once their request is gone.

use std::time::Instant;

use crate::peer_key::PeerKey;
use crate::picker::{Fit, Pick, PickReason, PieceState};
use crate::wire::{BlockRange, Message};

use super::config::ENDGAME_MAX_REQUESTERS;
use super::peer::BlockRef;
use super::pieces::{Download, Received};
use super::timer::Timer;
use super::{Deadline, Torrent, Violation, after};

impl Torrent {
    /// Requests blocks from `key` until its pipeline is full or it has
    /// nothing we need. Each round costs one pick (see [`crate::picker`]) and
    /// O(blocks of the piece).
    pub(super) fn fill(&mut self, now: Instant, key: PeerKey) {
        if self.have.is_complete() || self.verify_backlog_full() {
            return;
        }
        loop {
            let Some(peer) = self.peers.get(key.0) else {
                return;
            };
            if !peer.can_request() || peer.wanted == 0 {
                return;
            }
            // A seed gets a new piece only once less than a piece's worth
            // is in flight: a deeper pipeline to a seed is several pieces
            // chosen without knowing what the seed is sending our
            // neighbours, and they overlap.
            if peer.is_seeder() && peer.outstanding.len() >= self.blocks_per_piece() {
                return;
            }
            let downloads = &self.downloads;
            let fit = |i: u32| match downloads.get(i as usize) {
                Some(Some(download)) => download.fit(key),
                _ => Fit::Full,
            };
            // A seed is asked only for what no unchoking leecher holds,
            // and only the stream position jumps its queue.
            let pick = if peer.is_seeder() {
                self.picker
                    .pick_for_seed(self.sparing.seed_view(), &mut self.rng, fit)
            } else {
                self.picker.pick(&peer.has, &mut self.rng, fit)
            };
            let issued = match pick {
                Some(pick) => self.request_piece(now, key, pick),
                None => self.request_endgame(now, key),
            };
            if issued == 0 {
                return;
            }
        }
    }

    /// Blocks in one (full-length) piece.
    fn blocks_per_piece(&self) -> usize {
        self.metainfo
            .piece_length()
            .div_ceil(self.block_size)
            .max(1) as usize
    }

    /// [`Torrent::fill`] for every peer but those in `last`, then for those:
    /// used when requests return to the pool, so they go to other peers first.
    pub(super) fn fill_all(&mut self, now: Instant, last: &[PeerKey]) {
        // What `fill` checks first, once rather than per peer: a seed (an
        // origin with thousands of peers) has nothing to request.
        if self.have.is_complete() || self.verify_backlog_full() {
            return;
        }
        for k in 0..self.peers.capacity() {
            if self.peers.get(k).is_some_and(|p| p.can_request()) && !last.contains(&PeerKey(k)) {
                self.fill(now, PeerKey(k));
            }
        }
        for &key in last {
            self.fill(now, key);
        }
    }

    /// Requests unrequested blocks of the picked piece from `key`, starting
    /// the piece (assigned to `key`) if it was missing. Returns blocks issued.
    fn request_piece(&mut self, now: Instant, key: PeerKey, pick: Pick) -> usize {
        let index = pick.index;
        match self.picker.state(index) {
            Some(PieceState::Missing) => {
                let Some(len) = self.metainfo.piece_len(index).filter(|&l| l > 0) else {
                    return 0;
                };
                if self.picker.start(index).is_err() {
                    return 0;
                }
                let solo = self.single_source.get(index);
                let buffers = self.buffers.clone();
                let download = Download::new(len, self.block_size, key, solo, buffers);
                if let Some(slot) = self.downloads.get_mut(index as usize) {
                    *slot = Some(Box::new(download));
                }
            }
            Some(PieceState::InProgress) if pick.reason == PickReason::Resume => {
                if let Some(Some(d)) = self.downloads.get_mut(index as usize) {
                    d.owner.get_or_insert(key);
                }
            }
            _ => {}
        }
        let mut issued = 0;
        while self.peers.get(key.0).is_some_and(|p| p.can_request()) {
            let Some(Some(d)) = self.downloads.get(index as usize) else {
                break;
            };
            let Some(block) = d.next_unrequested() else {
                break;
            };
            self.issue(now, key, index, block);
            issued += 1;
        }
        issued
    }

    /// End-game: once every missing block is requested and at most
    /// `endgame_threshold` pieces remain, asks `key` for blocks already
    /// outstanding elsewhere (at most [`ENDGAME_MAX_REQUESTERS`] per block).
    fn request_endgame(&mut self, now: Instant, key: PeerKey) -> usize {
        if !self.in_endgame() {
            return 0;
        }
        let mut issued = 0;
        for at in 0..self.picker.in_progress().len() {
            let Some(&index) = self.picker.in_progress().get(at) else {
                break;
            };
            loop {
                let Some(peer) = self.peers.get(key.0) else {
                    return issued;
                };
                if !peer.can_request() {
                    return issued;
                }
                let Some(Some(d)) = self.downloads.get(index as usize) else {
                    break;
                };
                if !peer.has.get(index) || !d.allows_duplicates() {
                    break;
                }
                let Some(block) = d.next_duplicate(key, ENDGAME_MAX_REQUESTERS) else {
                    break;
                };
                self.issue(now, key, index, block);
                issued += 1;
            }
        }
        issued
    }

    /// True in end-game. Cheap: the in-progress scan runs only once few
    /// pieces remain.
    pub(super) fn in_endgame(&self) -> bool {
        self.picker.missing_count() == 0
            && self.picker.remaining() <= self.config.endgame_threshold
            && self.picker.in_progress().iter().all(
                |&i| matches!(self.downloads.get(i as usize), Some(Some(d)) if d.fully_requested()),
            )
    }

    /// Sends one request and records it in the peer, the piece and the
    /// deadline queue.
    fn issue(&mut self, now: Instant, key: PeerKey, index: u32, block: u32) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let (Some(Some(d)), Some(peer)) = (
            self.downloads.get_mut(index as usize),
            self.peers.get_mut(key.0),
        ) else {
            return;
        };
        let range = d.range(index, block);
        d.request(block, key, seq);
        if peer.outstanding.is_empty() {
            peer.waiting_since = now;
        }
        peer.outstanding.push(BlockRef {
            piece: index,
            block,
        });
        let at = after(now, self.request_timeout);
        if self.deadlines.is_empty() {
            self.timers.set(Timer::Request, Some(at));
        }
        self.deadlines.push_back(Deadline {
            at,
            seq,
            piece: index,
        });
        self.send(key, Message::Request(range));
    }

    /// Returns every request outstanding from `key` to the pool (choke,
    /// close) and unassigns the pieces it owned, without sending Cancel.
    pub(super) fn release_requests(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(key.0) else {
            return;
        };
        for b in peer.outstanding.drain(..) {
            if let Some(Some(d)) = self.downloads.get_mut(b.piece as usize) {
                d.remove_request(b.block, key);
            }
        }
        for &index in self.picker.in_progress() {
            if let Some(Some(d)) = self.downloads.get_mut(index as usize)
                && d.owner == Some(key)
            {
                d.owner = None;
            }
        }
    }

    /// The peer chokes us: it drops our requests, so they go elsewhere.
    pub(super) fn on_choke(&mut self, now: Instant, key: PeerKey) {
        if let Some(peer) = self.peers.get_mut(key.0) {
            if !peer.peer_choking && !peer.is_seeder() {
                self.sparing.remove_all(&peer.has);
            }
            peer.peer_choking = true;
        }
        self.unaccept(key);
        self.release_requests(key);
        self.fill_all(now, &[key]);
    }

    /// The peer unchokes us: fill its pipeline.
    pub(super) fn on_unchoke(&mut self, now: Instant, key: PeerKey) {
        if let Some(peer) = self.peers.get_mut(key.0) {
            if peer.peer_choking && !peer.is_seeder() {
                self.sparing.add_all(&peer.has);
            }
            peer.peer_choking = false;
            peer.waiting_since = now;
        }
        self.accept(key);
        self.fill(now, key);
    }

    /// The peer will not serve `range`: it goes to other peers first. A
    /// reject for something we did not request is ignored. A seed that
    /// refuses while unchoking us spreads first: the piece is refused from
    /// seeds for [`REFUSAL_TTL`](super::REFUSAL_TTL).
    pub(super) fn on_reject(&mut self, now: Instant, key: PeerKey, range: BlockRange) {
        let Some(Some(d)) = self.downloads.get_mut(range.index as usize) else {
            return;
        };
        let Some(block) = d.block_at(range.begin) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(key.0) else {
            return;
        };
        // A seed that unchokes us and still rejects gave this piece to
        // another peer first (`spread`): leave it to that peer for a while.
        let refused = peer.is_seeder() && !peer.peer_choking;
        if peer.remove_outstanding(BlockRef {
            piece: range.index,
            block,
        }) {
            if refused {
                self.sparing.refuse(now, range.index);
                self.timers.set(Timer::Refusal, self.sparing.next_expiry());
            }
            d.remove_request(block, key);
            if d.owner == Some(key) {
                d.owner = None;
            }
            self.fill_all(now, &[key]);
        }
    }

    /// A block arrived. Only a block outstanding from this peer is stored;
    /// anything else (unrequested, duplicate, after a timeout or cancel) is
    /// counted as wasted. A length other than requested is a violation.
    pub(super) fn on_block(
        &mut self,
        now: Instant,
        key: PeerKey,
        index: u32,
        begin: u32,
        data: &[u8],
    ) {
        let outstanding = match (self.downloads.get(index as usize), self.peers.get(key.0)) {
            (Some(Some(d)), Some(peer)) => d.block_at(begin).filter(|&block| {
                peer.outstanding.contains(&BlockRef {
                    piece: index,
                    block,
                })
            }),
            _ => None,
        };
        let (Some(block), Some(Some(d)), Some(peer)) = (
            outstanding,
            self.downloads.get_mut(index as usize),
            self.peers.get_mut(key.0),
        ) else {
            self.wasted += data.len() as u64;
            return;
        };
        let range = d.range(index, block);
        if data.len() != range.length as usize {
            let got = data.len();
            let (expected, begin) = (range.length, range.begin);
            return self.violation(
                key,
                Violation::WrongBlockLength {
                    index,
                    begin,
                    expected,
                    got,
                },
            );
        }
        peer.remove_outstanding(BlockRef {
            piece: index,
            block,
        });
        peer.down.record(now, data.len() as u64);
        peer.waiting_since = now;
        peer.pipeline = (peer.pipeline + 1).min(self.config.pipeline());
        let mut others = std::mem::take(&mut self.scratch);
        others.clear();
        let result = d.receive(block, data, peer.id, &mut others);
        others.retain(|&other| other != key);
        for &other in &others {
            if let Some(peer) = self.peers.get_mut(other.0) {
                peer.remove_outstanding(BlockRef {
                    piece: index,
                    block,
                });
                self.send(other, Message::Cancel(range));
            }
        }
        match result {
            Received::Complete => self.assembled(index),
            Received::Duplicate => self.wasted += data.len() as u64,
            Received::Stored => {}
        }
        self.fill(now, key);
        for &other in &others {
            self.fill(now, other);
        }
        self.scratch = others;
    }

    /// Cancels every request past its deadline, halves the slow peer's
    /// pipeline, unassigns its piece, and re-requests elsewhere first.
    pub(super) fn expire_requests(&mut self, now: Instant) {
        let mut slow = std::mem::take(&mut self.scratch);
        slow.clear();
        while let Some(deadline) = self.deadlines.front().copied().filter(|d| d.at <= now) {
            self.deadlines.pop_front();
            let Some(Some(d)) = self.downloads.get_mut(deadline.piece as usize) else {
                continue;
            };
            let Some(request) = d.find_seq(deadline.seq) else {
                continue;
            };
            d.remove_request(request.block, request.peer);
            if d.owner == Some(request.peer) {
                d.owner = None;
            }
            let range = d.range(deadline.piece, request.block);
            if let Some(peer) = self.peers.get_mut(request.peer.0) {
                peer.remove_outstanding(BlockRef {
                    piece: deadline.piece,
                    block: request.block,
                });
                peer.pipeline = (peer.pipeline / 2).max(1);
                self.send(request.peer, Message::Cancel(range));
            }
            if !slow.contains(&request.peer) {
                slow.push(request.peer);
            }
        }
        if !slow.is_empty() {
            self.fill_all(now, &slow);
        }
        self.scratch = slow;
    }

    /// Drops deadlines at the front of the queue whose request is gone, so
    /// that after a timeout the request timer names a live request.
    pub(super) fn prune_deadlines(&mut self) {
        while let Some(deadline) = self.deadlines.front() {
            let live = matches!(
                self.downloads.get(deadline.piece as usize),
                Some(Some(d)) if d.find_seq(deadline.seq).is_some()
            );
            if live {
                break;
            }
            self.deadlines.pop_front();
        }
    }
}
