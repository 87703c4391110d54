//! Tuning of one torrent, with the reason behind each default.

use std::time::Duration;

use crate::choker::ChokerConfig;

/// Smallest block the torrent asks for: below this, per-request overhead
/// dominates and a piece needs thousands of requests.
pub const MIN_BLOCK_SIZE: u32 = 16 << 10;
/// Largest block the wire accepts (the codec refuses longer lengths).
pub const MAX_BLOCK_SIZE: u32 = 1 << 20;
/// Added to the request timeout per MiB of block, as Kraken does, so a large
/// block on a slow link is not given up on too early.
pub const TIMEOUT_PER_MIB: Duration = Duration::from_secs(4);
/// In end-game, one block is requested from at most this many peers at once:
/// one spare copy is enough to route around a stalled peer while bounding the
/// bytes downloaded twice to `endgame_threshold` pieces.
pub const ENDGAME_MAX_REQUESTERS: usize = 2;

/// How long a leecher leaves a piece alone after a seed refused it (the
/// seed gave it to another peer first, see [`TorrentConfig::spread_first`]):
/// long enough for that peer to verify it and say Have, short enough that a
/// leecher whose neighbours lack the piece is not held up. 500 ms: in the
/// simulator (bench/sim/RESULTS.md), 2 s left the slowest of 1,000 agents
/// at 1.35 bounds (1.22 without spreading), 1 s at 1.28, 500 ms at 1.22,
/// while one origin at the agents' speed still sends 1.24 F instead of
/// 1.54 F.
pub const REFUSAL_TTL: Duration = Duration::from_millis(500);

/// Tuning of one [`Torrent`](super::Torrent). Build it with
/// `TorrentConfig { field: value, ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct TorrentConfig {
    /// Bytes per request within a piece. 256 KiB: a 1 MiB piece is four
    /// requests, large enough that per-message overhead vanishes on
    /// datacenter links, small enough that pieces spread over several
    /// requests in flight. Clamped to [`MIN_BLOCK_SIZE`]..=[`MAX_BLOCK_SIZE`].
    pub block_size: u32,
    /// Blocks in flight to one peer. 4 blocks (1 MiB) covers the
    /// bandwidth-delay product of 10 Gbit/s at 0.8 ms per peer, and a pull
    /// has up to 20 peers. Deeper is worse in a flash crowd: every agent
    /// asks each origin for that many blocks at once, so the origin's upload
    /// is spread over many pieces in flight and new pieces become shareable
    /// late, and control messages queue behind the blocks (the simulator's
    /// sweep, bench/sim/RESULTS.md: depth 16 against 4 at 1,000 agents x
    /// 256 MiB, p50 1.81 against 1.48 bounds, origin egress 3.65 F against
    /// 2.65 F). The torrent halves a peer's depth on each timeout and grows
    /// it back by one per block.
    pub max_requests_per_peer: usize,
    /// Base request timeout. The effective one is
    /// `max(request_timeout, 4 s per MiB of block)` (Kraken's rule); a request
    /// older than that is cancelled and issued to another peer.
    pub request_timeout: Duration,
    /// End-game starts once every missing block is requested and at most this
    /// many pieces remain unverified: outstanding blocks are then requested
    /// again from other peers so one stalled peer cannot hold up the end.
    /// 3, like Kraken: with 1-16 MiB pieces that bounds the duplicate bytes
    /// to a few pieces while covering the tail of the transfer.
    pub endgame_threshold: u32,
    /// A peer with more of its requests unserved by us than this is flooding
    /// (our own pipeline is 4 deep, and was 16): it is disconnected. 64.
    pub max_inbound_requests: usize,
    /// Upload-slot policy; see [`crate::choker`].
    pub choker: ChokerConfig,
    /// Peers unchoking us that we download from at once; 0 for no limit.
    /// With that many, we tell every other peer NotInterested (and any
    /// further peer that unchokes us), so their slots go to peers that fewer
    /// uploaders serve; when one of ours chokes us or leaves, interest
    /// returns. Without it the first-come slots of a flash crowd leave some
    /// peers with 3 uploaders and others with 8, and the first finish late
    /// (simulator, bench/sim/RESULTS.md, 1,000 agents x 1 GiB: slowest
    /// agent 1.63 -> 1.36 bounds, 1.22 with the choker's saturated-holder
    /// check; 1.94 -> 1.25 at 10,000). 5: every uploader
    /// has 4 regular slots and an optimistic one, so in a swarm of equals
    /// 5 uploaders is each peer's fair share; 4 starves the swarm (1.59),
    /// 6 lets the spread back in (1.68).
    pub max_unchokers: usize,
    /// Pieces from a client's stream position that go before anything else,
    /// so a streaming read waits on as few pieces as possible. 4.
    pub stream_window: u32,
    /// Hash failures attributable to one peer before it is banned; 1, so a
    /// peer that alone sent a bad piece is banned at once. A failure shared by
    /// several contributors is not attributable: each gets a strike and is
    /// banned after more than this many strikes (see `Torrent` docs).
    pub max_hash_failures: u32,
    /// How long a banned peer id is refused. 30 s, like Kraken: long enough to
    /// stop a corrupt peer wasting our bandwidth, short enough that a peer
    /// whose disk was repaired comes back.
    pub ban_duration: Duration,
    /// Whether received blocks are copied into the piece buffer that
    /// [`Action::Verify`](super::Action::Verify) hands to the driver. Always
    /// true in production. The swarm simulator (`bench/sim`) sets it false
    /// and answers verification itself: with real buffers, thousands of
    /// simulated hosts would hold tens of GiB of in-progress pieces and copy
    /// every simulated byte. When false, block lengths are still checked and
    /// `Verify` carries empty data; nothing else changes.
    pub assemble_payload: bool,
    /// Bytes of assembled pieces waiting for their hash check and disk
    /// write before no new block is requested. When the disk (or hashing)
    /// is slower than the network, pieces would otherwise pile up in memory
    /// without bound; this turns that into backpressure on the peers.
    /// 32 MiB, and never fewer than 2 pieces, so hashing one piece overlaps
    /// receiving the next.
    pub max_verifying_bytes: u64,
    /// Seeding, serve every piece to one peer before serving any piece to
    /// a second: a request for a piece already given to another connected
    /// peer is rejected until each piece has gone out once (see
    /// `torrent/spread.rs`). Origins set it: their upload is what the
    /// system saves, and with it the registry's layer leaves the origin
    /// about once however many leechers ask for the same piece at the same
    /// moment (rarest first and streaming reads make them all ask for the
    /// same few). Off for agents, whose duplicates cost nothing scarce.
    pub spread_first: bool,
}

impl Default for TorrentConfig {
    fn default() -> Self {
        Self {
            block_size: 256 << 10,
            max_requests_per_peer: 4,
            request_timeout: Duration::from_secs(4),
            endgame_threshold: 3,
            max_inbound_requests: 64,
            max_unchokers: 5,
            choker: ChokerConfig::default(),
            stream_window: 4,
            max_hash_failures: 1,
            ban_duration: Duration::from_secs(30),
            assemble_payload: true,
            max_verifying_bytes: 32 << 20,
            spread_first: false,
        }
    }
}

impl TorrentConfig {
    /// The block size actually used, clamped to what the wire accepts.
    pub fn effective_block_size(&self) -> u32 {
        self.block_size.clamp(MIN_BLOCK_SIZE, MAX_BLOCK_SIZE)
    }

    /// The timeout of every request: `max(request_timeout, 4 s per MiB of
    /// block)`. One value for all blocks (the shorter last block of a blob
    /// gets the same, slightly more lenient, timeout) keeps deadlines in issue
    /// order, which lets the torrent track them in a FIFO queue.
    pub fn effective_request_timeout(&self) -> Duration {
        let per_block =
            TIMEOUT_PER_MIB.mul_f64(f64::from(self.effective_block_size()) / f64::from(1u32 << 20));
        self.request_timeout.max(per_block)
    }

    /// Pieces of `piece_length` that may wait for verification at once.
    pub(crate) fn max_verifying_pieces(&self, piece_length: u32) -> usize {
        let pieces = self.max_verifying_bytes / u64::from(piece_length.max(1));
        usize::try_from(pieces).unwrap_or(usize::MAX).max(2)
    }

    /// Pipeline depth actually used: at least one request.
    pub(crate) fn pipeline(&self) -> usize {
        self.max_requests_per_peer.max(1)
    }

    /// Piece payload bytes one connection may have handed to the driver and
    /// not yet had handled. Twice a full pipeline of blocks (2 MiB by
    /// default): an honest peer, which sends only what we asked for plus the
    /// odd late block, never waits on it, while a peer streaming unrequested
    /// blocks faster than the driver drops them is held back by TCP instead
    /// of filling the driver's queue. Never below one largest block, which
    /// must always fit.
    pub(crate) fn inbound_piece_budget(&self) -> u32 {
        let pipeline = u32::try_from(self.pipeline()).unwrap_or(u32::MAX);
        self.effective_block_size()
            .saturating_mul(pipeline)
            .saturating_mul(2)
            .max(MAX_BLOCK_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_grows_with_block_size() {
        let config = TorrentConfig::default();
        assert_eq!(config.effective_request_timeout(), Duration::from_secs(4));
        let big = TorrentConfig {
            block_size: 1 << 20,
            request_timeout: Duration::from_secs(1),
            ..TorrentConfig::default()
        };
        assert_eq!(big.effective_request_timeout(), Duration::from_secs(4));
        let tiny = TorrentConfig {
            block_size: 1,
            ..TorrentConfig::default()
        };
        assert_eq!(tiny.effective_block_size(), MIN_BLOCK_SIZE);
    }

    #[test]
    fn the_inbound_piece_budget_holds_two_pipelines_and_any_block() {
        assert_eq!(TorrentConfig::default().inbound_piece_budget(), 2 << 20);
        let shallow = TorrentConfig {
            max_requests_per_peer: 1,
            block_size: 16 << 10,
            ..TorrentConfig::default()
        };
        assert_eq!(shallow.inbound_piece_budget(), MAX_BLOCK_SIZE);
    }

    #[test]
    fn the_verify_backlog_holds_at_least_two_pieces() {
        let config = TorrentConfig::default();
        assert_eq!(config.max_verifying_pieces(1 << 20), 32);
        assert_eq!(config.max_verifying_pieces(64 << 20), 2);
        assert_eq!(config.max_verifying_pieces(0), 32 << 20);
    }
}
