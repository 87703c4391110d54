//! Per-connection state: what the peer has, who chokes whom, our requests to
//! it and its requests to us, and the rates the choker ranks by.

use std::time::{Duration, Instant};

use crate::bitfield::Bitfield;
use crate::peer_id::PeerId;
use crate::peer_key::PeerKey;
use crate::rate::RateMeter;

/// Rates are averaged over this window: a few rechoke periods' worth.
const RATE_WINDOW: Duration = Duration::from_secs(20);

/// The window of `Peer::up_recent`: two saturated-holder checks.
const RECENT_WINDOW: Duration = Duration::from_secs(2);

/// One of our requests to a peer: a block of a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BlockRef {
    pub(super) piece: u32,
    pub(super) block: u32,
}

/// One connected peer, in the torrent's slab.
#[derive(Debug)]
pub(super) struct Peer {
    pub(super) id: PeerId,
    pub(super) connected_at: Instant,
    /// Pieces it told us it has (bitfield, haves, complete).
    pub(super) has: Bitfield,
    pub(super) bitfield_seen: bool,
    /// Pieces in `has` we have not verified: we are interested iff > 0.
    /// Kept as a count so interest costs O(1) per Have, not O(pieces).
    pub(super) wanted: u32,
    /// We refuse to serve it (every peer starts choked).
    pub(super) am_choking: bool,
    /// We told it we want something it has.
    pub(super) am_interested: bool,
    /// It refuses to serve us.
    pub(super) peer_choking: bool,
    /// It unchokes us and counts towards `max_unchokers`.
    pub(super) accepted: bool,
    /// It wants something we have.
    pub(super) peer_interested: bool,
    /// We emitted Disconnect or Ban: it gets no more messages or requests
    /// and its messages are ignored until the driver reports the close.
    pub(super) closing: bool,
    /// Our requests to it, at most `pipeline`.
    pub(super) outstanding: Vec<BlockRef>,
    /// Current pipeline depth: halved on a timeout, +1 per block received,
    /// within 1..=max_requests_per_peer.
    pub(super) pipeline: usize,
    /// Its requests we emitted Serve for and the driver has not yet reported
    /// through `handle_served`.
    pub(super) inbound: usize,
    /// When it last sent us a block or unchoked us, for snub detection.
    pub(super) waiting_since: Instant,
    pub(super) up: RateMeter,
    /// `up` over a short window, for the choker's saturated-holder check.
    pub(super) up_recent: RateMeter,
    pub(super) down: RateMeter,
}

impl Peer {
    pub(super) fn new(id: PeerId, now: Instant, pieces: u32, pipeline: usize) -> Self {
        Peer {
            id,
            connected_at: now,
            has: Bitfield::new(pieces),
            bitfield_seen: false,
            wanted: 0,
            am_choking: true,
            am_interested: false,
            accepted: false,
            peer_choking: true,
            peer_interested: false,
            closing: false,
            outstanding: Vec::with_capacity(pipeline),
            pipeline,
            inbound: 0,
            waiting_since: now,
            up: RateMeter::new(RATE_WINDOW),
            up_recent: RateMeter::new(RECENT_WINDOW),
            down: RateMeter::new(RATE_WINDOW),
        }
    }

    /// True if it holds the whole blob.
    pub(super) fn is_seeder(&self) -> bool {
        self.has.is_complete()
    }

    /// True if we may send it requests now.
    pub(super) fn can_request(&self) -> bool {
        !self.closing
            && !self.peer_choking
            && self.am_interested
            && self.outstanding.len() < self.pipeline
    }

    /// Forgets our request for `block`; false if it was not outstanding.
    pub(super) fn remove_outstanding(&mut self, block: BlockRef) -> bool {
        match self.outstanding.iter().position(|&b| b == block) {
            Some(pos) => {
                self.outstanding.swap_remove(pos);
                true
            }
            None => false,
        }
    }
}

/// A snapshot of one peer for status output and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer's handle.
    pub key: PeerKey,
    /// The peer's identity.
    pub id: PeerId,
    /// Block bytes we served it.
    pub uploaded: u64,
    /// Requested block bytes it sent us (before verification).
    pub downloaded: u64,
    /// Pieces it has.
    pub pieces: u32,
    /// We refuse to serve it.
    pub am_choking: bool,
    /// It refuses to serve us.
    pub peer_choking: bool,
    /// We want something it has.
    pub am_interested: bool,
    /// It wants something we have.
    pub peer_interested: bool,
    /// Our requests to it in flight.
    pub requests_out: usize,
    /// Its requests to us not yet served.
    pub requests_in: usize,
}

impl PeerStats {
    pub(super) fn of(key: PeerKey, peer: &Peer) -> Self {
        PeerStats {
            key,
            id: peer.id,
            uploaded: peer.up.total(),
            downloaded: peer.down.total(),
            pieces: peer.has.count(),
            am_choking: peer.am_choking,
            peer_choking: peer.peer_choking,
            am_interested: peer.am_interested,
            peer_interested: peer.peer_interested,
            requests_out: peer.outstanding.len(),
            requests_in: peer.inbound,
        }
    }
}
