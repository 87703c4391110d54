//! One blob's swarm as a sans-IO state machine: peer events in, actions out.
//!
//! - `action`: [`Action`], [`VerifyResult`], [`TorrentStats`].
//! - `config`: [`TorrentConfig`] and why each default is what it is.
//! - `reason`: [`DisconnectReason`], [`Violation`].
//! - `peer`: per-connection state, [`PeerStats`].
//! - `pieces`: one in-progress piece: block states, requests, assembly.
//! - `buffers`: the recycled buffers pieces are assembled in.
//! - `remote`: what peers tell us they have, and our interest in them.
//! - `requests`: our requests: pipelining, end-game, timeouts, blocks in.
//! - `sparing`: which pieces a seed may be asked for.
//! - `spread`: a seed serving each piece once before any twice.
//! - `upload`: their requests, and choking.
//! - `verify`: hash results, bans, completion.
//! - `timer`: the timer table behind [`Torrent::poll_timeout`].

mod action;
mod buffers;
mod config;
mod peer;
mod pieces;
mod reason;
mod remote;
mod requests;
mod sparing;
mod spread;
mod timer;
mod upload;
mod verify;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use slab::Slab;

pub use action::{Action, TorrentStats, VerifyResult};
pub use config::{
    ENDGAME_MAX_REQUESTERS, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, REFUSAL_TTL, TIMEOUT_PER_MIB,
    TorrentConfig,
};
pub use peer::PeerStats;
pub use reason::{DisconnectReason, Violation};

use crate::bitfield::Bitfield;
use crate::choker::Choker;
use crate::metainfo::Metainfo;
use crate::peer_id::PeerId;
use crate::peer_key::PeerKey;
use crate::picker::Picker;
use crate::wire::Message;
use buffers::PieceBuffers;
use peer::Peer;
use pieces::Download;
use sparing::Sparing;
use spread::Spread;
use timer::{Timer, TimerTable};
use verify::Failures;

/// When an outstanding request times out; `seq` names the request inside
/// the download of `piece`. Entries whose request is gone are skipped.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    seq: u64,
    piece: u32,
}

/// One blob's swarm: which pieces to fetch from whom, whom to serve, whom to
/// distrust. It performs no I/O and never reads the clock.
///
/// Calling order, for a driver (quinn-proto's `Connection` contract):
/// 1. [`Torrent::new`] with the verified pieces, our id, a seed (log it).
/// 2. After each completed handshake, [`Torrent::handle_peer_connected`];
///    on `None` close the socket, otherwise remember the [`PeerKey`].
/// 3. Feed every input with the current time: each decoded message to
///    [`Torrent::handle_message`], each closed connection to
///    [`Torrent::handle_peer_disconnected`], each hash result to
///    [`Torrent::handle_verified`], each written `Piece` to
///    [`Torrent::handle_served`].
/// 4. After each `handle_*` call, drain [`Torrent::poll_action`] until
///    `None` and carry the actions out in order.
/// 5. Arm one timer at [`Torrent::poll_timeout`]; when it fires call
///    [`Torrent::handle_timeout`], then go to 4.
///
/// Policy in brief: each piece is `Missing`, `InProgress`, `Verifying` or
/// `Have` ([`crate::picker::PieceState`]); a started piece is assigned to one
/// peer, others take its unrequested blocks only when idle. Requests time out
/// after [`TorrentConfig::effective_request_timeout`], are cancelled and go
/// to other peers first. A valid inbound request becomes [`Action::Serve`] at
/// once (uploads are accounted then; `Cancel` is ignored); the request counts
/// as in flight until `handle_served`. Hash failures are blamed as described
/// in [`TorrentConfig::max_hash_failures`]: a sole contributor is banned at
/// once, shared failures give strikes and a single-source retry.
///
/// Same seed and same inputs give the same actions: the RNG is the only
/// source of randomness and every map iterated is ordered.
#[derive(Debug)]
pub struct Torrent {
    metainfo: Arc<Metainfo>,
    config: TorrentConfig,
    block_size: u32,
    request_timeout: Duration,
    our_id: PeerId,
    /// Verified pieces, as announced to peers.
    have: Bitfield,
    picker: Picker,
    peers: Slab<Peer>,
    ids: BTreeMap<PeerId, PeerKey>,
    banned: BTreeMap<PeerId, Instant>,
    failures: BTreeMap<PeerId, Failures>,
    /// The download of each `InProgress` piece, indexed by piece; `Some`
    /// exactly when the picker says `InProgress`. Boxed: a handful of
    /// pieces are in progress at a time, and inline slots (~130 bytes
    /// each) made this table 130 KiB per 1,024-piece torrent, 1.3 GB of the
    /// simulator's 10,000 torrents, touched once at creation and then
    /// mostly read as `None`.
    downloads: Vec<Option<Box<Download>>>,
    /// Where downloads assemble their pieces; None when block bytes are not
    /// kept (`TorrentConfig::assemble_payload`) and once every piece is held.
    buffers: Option<PieceBuffers>,
    /// Contributors of each `Verifying` piece; an entry exactly when the
    /// picker says `Verifying`.
    verifying: BTreeMap<u32, Vec<PeerId>>,
    /// Pieces whose last failure had several contributors: re-downloaded
    /// from one peer so that the next failure is attributable.
    single_source: Bitfield,
    /// Which pieces seeds may be asked for (see `sparing`).
    sparing: Sparing,
    /// Who got each piece first, with `spread_first` (see `spread`).
    spread: Option<Spread>,
    /// Request deadlines in issue order, which is deadline order since every
    /// request has the same timeout.
    deadlines: VecDeque<Deadline>,
    next_seq: u64,
    choker: Choker,
    /// Set by an input after which the choker must look again (see the
    /// calling order on [`Choker`]); acted on once, at the end of the input.
    rechoke_needed: bool,
    /// Peers we unchoke that are not closing, i.e. slots held: lets an
    /// input ask [`Choker::has_free_slot`] without a pass over all peers.
    unchoked: usize,
    /// Peers with `accepted` set.
    accepted: usize,
    timers: TimerTable,
    actions: VecDeque<Action>,
    rng: SmallRng,
    /// Reused buffer of peer keys, so no event allocates one.
    scratch: Vec<PeerKey>,
    uploaded: u64,
    downloaded: u64,
    wasted: u64,
}

impl Torrent {
    /// A torrent for `metainfo` holding the verified pieces `have` (resume;
    /// full for a seeder; bits past the piece count are ignored). `seed`
    /// drives every random choice: log it so a run can be replayed.
    pub fn new(
        metainfo: Arc<Metainfo>,
        have: Bitfield,
        our_id: PeerId,
        config: TorrentConfig,
        now: Instant,
        seed: u64,
    ) -> Self {
        let pieces = metainfo.piece_count();
        let have = if have.len() == pieces {
            have
        } else {
            let mut fixed = Bitfield::new(pieces);
            have.ones().for_each(|i| {
                fixed.set(i);
            });
            fixed
        };
        let mut torrent = Torrent {
            block_size: config.effective_block_size(),
            request_timeout: config.effective_request_timeout(),
            picker: Picker::new(&have, config.stream_window),
            choker: Choker::new(config.choker.clone(), now),
            downloads: (0..pieces).map(|_| None).collect(),
            buffers: config
                .assemble_payload
                .then(|| PieceBuffers::new(metainfo.piece_length())),
            single_source: Bitfield::new(pieces),
            sparing: Sparing::new(pieces),
            spread: config.spread_first.then(|| Spread::new(pieces)),
            metainfo,
            config,
            our_id,
            have,
            peers: Slab::new(),
            ids: BTreeMap::new(),
            banned: BTreeMap::new(),
            failures: BTreeMap::new(),
            verifying: BTreeMap::new(),
            deadlines: VecDeque::new(),
            next_seq: 0,
            rechoke_needed: false,
            unchoked: 0,
            accepted: 0,
            timers: TimerTable::default(),
            actions: VecDeque::new(),
            rng: SmallRng::seed_from_u64(seed),
            scratch: Vec::new(),
            uploaded: 0,
            downloaded: 0,
            wasted: 0,
        };
        torrent.refresh_timers();
        torrent
    }

    /// Whether `id` is banned at `now`. Drivers ask before dialing a peer
    /// the tracker hands out, so that a banned peer costs no connection.
    pub fn is_banned(&self, now: Instant, id: &PeerId) -> bool {
        self.banned.get(id).is_some_and(|&until| until > now)
    }

    /// A handshake with `id` completed. Returns None, queuing nothing, if
    /// `id` is banned, is ours, or is already connected: the driver then
    /// closes the socket. Otherwise queues our bitfield to it.
    pub fn handle_peer_connected(&mut self, now: Instant, id: PeerId) -> Option<PeerKey> {
        if self.is_banned(now, &id) || id == self.our_id || self.ids.contains_key(&id) {
            return None;
        }
        let peer = Peer::new(id, now, self.picker.len(), self.config.pipeline());
        let key = PeerKey(self.peers.insert(peer));
        self.ids.insert(id, key);
        let bitfield = Bytes::copy_from_slice(self.have.as_bytes());
        self.send(key, Message::Bitfield(bitfield));
        // No rechoke: a new peer is not interested yet, so it cannot take a
        // slot; the choker hears of it when it says Interested.
        self.after_event(now);
        Some(key)
    }

    /// The connection of `key` closed (after our Disconnect/Ban or for any
    /// other reason). Its requests return to the pool and its pieces stop
    /// counting towards availability; the key may be reused afterwards.
    pub fn handle_peer_disconnected(&mut self, now: Instant, key: PeerKey) {
        if !self.peers.contains(key.0) {
            return;
        }
        self.release_requests(key);
        self.unaccept(key);
        let peer = self.peers.remove(key.0);
        if !peer.am_choking && !peer.closing {
            // It held a slot: the slot is free for someone else.
            self.unchoked -= 1;
            self.rechoke_needed = true;
        }
        if self.ids.get(&peer.id) == Some(&key) {
            self.ids.remove(&peer.id);
        }
        self.picker.remove_bitfield(&peer.has);
        if let Some(spread) = self.spread.as_mut().filter(|s| !s.is_done()) {
            spread.forget(key);
        }
        if !peer.peer_choking && !peer.is_seeder() {
            self.sparing.remove_all(&peer.has);
        }
        self.fill_all(now, &[]);
        self.after_event(now);
    }

    /// A message from `key` after the handshake. Messages from unknown keys
    /// or peers we are closing are ignored; nothing here panics.
    pub fn handle_message(&mut self, now: Instant, key: PeerKey, message: Message) {
        if self.peers.get(key.0).is_none_or(|p| p.closing) {
            return;
        }
        match message {
            Message::Handshake(_) => self.violation(key, Violation::UnexpectedHandshake),
            Message::Bitfield(bytes) => self.on_bitfield(now, key, &bytes),
            Message::Have(index) => self.on_have(now, key, index),
            Message::Complete => self.on_peer_complete(now, key),
            Message::Interested => self.on_interest(key, true),
            Message::NotInterested => self.on_interest(key, false),
            Message::Choke => self.on_choke(now, key),
            Message::Unchoke => self.on_unchoke(now, key),
            Message::Request(block) => self.on_request(now, key, block),
            // Serve was emitted when the request arrived; the driver may
            // drop a queued block itself, so a cancel needs nothing here.
            Message::Cancel(_) => {}
            Message::Reject(block) => self.on_reject(now, key, block),
            Message::Piece { index, begin, data } => self.on_block(now, key, index, begin, &data),
        }
        self.after_event(now);
    }

    /// Timers: request timeouts (cancel and re-request elsewhere), rechoke
    /// and optimistic unchoke, ban expiry. Call when
    /// [`Torrent::poll_timeout`] has passed; calling early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.banned.retain(|_, until| *until > now);
        if self.sparing.expire(now) {
            // Refused pieces may be asked of the seeds again.
            self.fill_all(now, &[]);
        }
        self.timers.set(Timer::Refusal, self.sparing.next_expiry());
        self.expire_requests(now);
        self.prune_deadlines();
        let oldest = self.deadlines.front().map(|d| d.at);
        self.timers.set(Timer::Request, oldest);
        if now >= self.choker.poll_timeout() {
            self.rechoke_needed = true;
        }
        self.after_event(now);
    }

    /// When [`Torrent::handle_timeout`] must next be called. It may be a
    /// little early (a request answered since it was issued): that wake-up
    /// finds nothing due and moves the timer on.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The next action to carry out; call until None after every `handle_*`.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// A client reads the blob from piece `piece` on: pieces
    /// `[piece, piece + stream_window)` go before anything else from the next
    /// request on (pipelines refill on every block, so within one block).
    pub fn set_stream_position(&mut self, piece: u32) {
        self.picker.set_stream_position(Some(piece));
    }

    /// No client streams any more: back to rarest first.
    pub fn clear_stream_position(&mut self) {
        self.picker.set_stream_position(None);
    }

    /// Verified pieces.
    pub fn bitfield(&self) -> &Bitfield {
        &self.have
    }

    /// True once every piece is verified.
    pub fn is_complete(&self) -> bool {
        self.have.is_complete()
    }

    /// The blob this torrent swarms.
    pub fn metainfo(&self) -> &Arc<Metainfo> {
        &self.metainfo
    }

    /// Totals so far.
    pub fn stats(&self) -> TorrentStats {
        TorrentStats {
            uploaded: self.uploaded,
            downloaded: self.downloaded,
            wasted: self.wasted,
            peers: self.peers.len(),
            pieces: self.have.count(),
            complete: self.have.is_complete(),
        }
    }

    /// One snapshot per connected peer, by key.
    pub fn peer_stats(&self) -> impl Iterator<Item = PeerStats> + '_ {
        self.peers.iter().map(|(k, p)| PeerStats::of(PeerKey(k), p))
    }

    fn send(&mut self, peer: PeerKey, message: Message) {
        self.actions.push_back(Action::Send { peer, message });
    }

    /// Stops talking to `key` and asks the driver to close it.
    fn disconnect(&mut self, key: PeerKey, reason: DisconnectReason) {
        if self.close(key) {
            self.actions
                .push_back(Action::Disconnect { peer: key, reason });
        }
    }

    fn violation(&mut self, key: PeerKey, violation: Violation) {
        self.disconnect(key, DisconnectReason::ProtocolViolation(violation));
    }

    /// Marks `key` closing and returns its requests to the pool; false if it
    /// was unknown or already closing.
    fn close(&mut self, key: PeerKey) -> bool {
        match self.peers.get_mut(key.0) {
            Some(peer) if !peer.closing => {
                peer.closing = true;
                self.unaccept(key);
                let peer = &mut self.peers[key.0];
                if !peer.am_choking {
                    self.unchoked -= 1;
                    self.rechoke_needed = true;
                }
                self.release_requests(key);
                true
            }
            _ => false,
        }
    }

    /// Work common to the end of every input: rechoke if the peer set or
    /// interest changed, re-arm timers.
    fn after_event(&mut self, now: Instant) {
        if std::mem::take(&mut self.rechoke_needed) {
            self.rechoke(now);
        }
        self.refresh_timers();
    }

    /// Re-arms the choker's and the ban timer. The request timer is set
    /// where deadlines are queued and dropped instead (reading the queue
    /// here was a cache miss per input at N = 10,000). It is the oldest
    /// deadline even if its request was answered since: pruning answered
    /// requests per input would look up a download each time, while a stale
    /// deadline costs one early `handle_timeout` (harmless) that prunes them
    /// all, about once per request timeout.
    fn refresh_timers(&mut self) {
        self.timers
            .set(Timer::Rechoke, Some(self.choker.poll_timeout()));
        self.timers
            .set(Timer::BanExpiry, self.banned.values().min().copied());
    }
}

/// `now + duration`, clamped to a year so absurd durations cannot panic.
fn after(now: Instant, duration: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    now.checked_add(duration)
        .or_else(|| now.checked_add(YEAR))
        .unwrap_or(now)
}
