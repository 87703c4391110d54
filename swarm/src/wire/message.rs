//! The messages peers exchange, as the engine sees them after decoding.

use bytes::Bytes;

use crate::digest::Digest;
use crate::peer_id::PeerId;

/// Protocol version carried in the handshake. Peers with another version
/// are disconnected: there is no negotiation.
pub const PROTOCOL_VERSION: u32 = 1;

/// A byte range inside one piece: what `request`, `cancel` and `reject` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRange {
    /// Piece index.
    pub index: u32,
    /// Offset within the piece.
    pub begin: u32,
    /// Length in bytes.
    pub length: u32,
}

/// The first message on every connection, sent by both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u32,
    /// The blob this connection swarms.
    pub digest: Digest,
    /// The sender's identity.
    pub peer_id: PeerId,
}

/// One peer-protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Opens the connection; must come first.
    Handshake(Handshake),
    /// Pieces held, sent once right after the handshake. Wire bytes, checked
    /// against the piece count by the decoder.
    Bitfield(Bytes),
    /// The sender verified piece `index`.
    Have(u32),
    /// The sender wants pieces we have.
    Interested,
    /// The sender no longer wants anything from us.
    NotInterested,
    /// The sender will not serve our requests.
    Choke,
    /// The sender will serve our requests.
    Unchoke,
    /// Please send this block.
    Request(BlockRange),
    /// Forget an earlier request (end-game duplicates, timeouts).
    Cancel(BlockRange),
    /// An earlier request will not be served (choked, not held, overloaded).
    Reject(BlockRange),
    /// A block of a piece; `data` is the raw payload, never a protobuf field.
    Piece {
        /// Piece index.
        index: u32,
        /// Offset of `data` within the piece.
        begin: u32,
        /// The block's bytes.
        data: Bytes,
    },
    /// The sender now holds the whole blob.
    Complete,
}
