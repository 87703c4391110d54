//! What comes out of the torrent ([`Action`]) and what the driver reports
//! back ([`VerifyResult`]), plus the totals of [`TorrentStats`].

use bytes::Bytes;

use crate::peer_id::PeerId;
use crate::peer_key::PeerKey;
use crate::wire::{BlockRange, Message};

use super::DisconnectReason;
#[cfg(doc)]
use super::Torrent;

/// What the driver must do for the torrent; drained with
/// [`Torrent::poll_action`] in the order they were queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a control message (never `Piece`: see [`Action::Serve`]).
    Send {
        /// Recipient.
        peer: PeerKey,
        /// The message.
        message: Message,
    },
    /// Read `block` from the store and send it as `Message::Piece`, then call
    /// [`Torrent::handle_served`]. The upload is already accounted.
    Serve {
        /// Recipient.
        peer: PeerKey,
        /// The block it requested, checked against what we have.
        block: BlockRange,
    },
    /// Every block of piece `index` arrived: hash `data` (exactly the piece's
    /// length) off the runtime, write it to the store if it matches, then call
    /// [`Torrent::handle_verified`].
    Verify {
        /// Piece index.
        index: u32,
        /// The assembled piece.
        data: Bytes,
    },
    /// Close the connection, then call [`Torrent::handle_peer_disconnected`].
    Disconnect {
        /// The peer to drop.
        peer: PeerKey,
        /// Why, for the log line.
        reason: DisconnectReason,
    },
    /// Like [`Action::Disconnect`]; `id` is refused by
    /// [`Torrent::handle_peer_connected`] until the ban expires.
    Ban {
        /// The peer to drop.
        peer: PeerKey,
        /// Its identity, for the driver's logs and dial lists.
        id: PeerId,
        /// Why.
        reason: DisconnectReason,
    },
    /// Piece `index` is verified and ours; `Have` was already queued to every
    /// peer. Drivers announce it and wake streaming readers.
    PieceVerified {
        /// Piece index.
        index: u32,
    },
    /// Every piece is verified; the torrent now seeds.
    Completed,
}

/// The driver's answer to [`Action::Verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyResult {
    /// The hash matched and the piece is in the store.
    Ok,
    /// The hash did not match: the contributors are blamed, the piece is
    /// downloaded again.
    HashMismatch,
    /// The hash matched but the store write failed: the piece is downloaded
    /// again, nobody is blamed (the driver decides whether to abort).
    StoreFailed,
}

/// Totals for status output and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TorrentStats {
    /// Block bytes served to peers.
    pub uploaded: u64,
    /// Verified payload bytes downloaded (pieces we had at start excluded).
    pub downloaded: u64,
    /// Bytes received and thrown away: unrequested, duplicate or late blocks
    /// and pieces that failed their hash check.
    pub wasted: u64,
    /// Connected peers.
    pub peers: usize,
    /// Pieces verified.
    pub pieces: u32,
    /// Whether every piece is verified.
    pub complete: bool,
}
