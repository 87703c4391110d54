//! Everything that can go wrong on a peer connection's byte stream.
//!
//! Every variant except [`WireError::Io`] and [`WireError::OutgoingTooLarge`]
//! means the peer broke the protocol: the session drops the connection, and
//! may count it against the peer. The decoder is not usable after an error.

use crate::bitfield::BitfieldError;
use crate::digest::{Digest, DigestError};
use crate::peer_id::PeerIdError;

use super::message::BlockRange;

/// Why a peer connection's stream could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed; says nothing about the peer's behaviour.
    #[error("peer connection I/O failed")]
    Io(#[from] std::io::Error),

    /// The stream ended inside a frame: the peer hung up mid-message or the
    /// connection was cut.
    #[error("stream ended in the middle of a frame")]
    Truncated,

    /// The peer hung up before sending its handshake (a port scan, or a peer
    /// that refused us before saying why).
    #[error("connection closed before the handshake")]
    ClosedBeforeHandshake,

    /// A frame announced more bytes than we are willing to buffer. Raised as
    /// soon as the length prefix arrives, before the body is read, so that a
    /// peer cannot make us allocate memory by lying about a length.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Length the peer announced (type byte and body).
        len: u32,
        /// The decoder's limit at that point of the connection.
        max: u32,
    },

    /// A frame with length 0. The protocol has no keep-alives: liveness is
    /// the session's timers' business, so an empty frame is a broken peer.
    #[error("zero-length frame")]
    EmptyFrame,

    /// The type byte names no message we know. There is no extension
    /// mechanism: new message types come with a new protocol version.
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),

    /// A frame body does not have the layout its type requires.
    #[error("malformed {message} message: {reason}")]
    Malformed {
        /// The message type the frame claimed to be.
        message: &'static str,
        /// What was wrong with it.
        reason: &'static str,
        /// The protobuf error, when the body failed to decode as protobuf.
        #[source]
        source: Option<prost::DecodeError>,
    },

    /// The first frame was not a handshake.
    #[error("{0} message before the handshake")]
    MessageBeforeHandshake(&'static str),

    /// A handshake arrived on a connection that already had one.
    #[error("second handshake on the connection")]
    DuplicateHandshake,

    /// A bitfield arrived other than as the first message after the
    /// handshake; a late one would silently replace what we know of the peer.
    #[error("bitfield not directly after the handshake")]
    UnexpectedBitfield,

    /// The peer speaks another protocol version. There is no negotiation.
    #[error("peer speaks protocol version {theirs}, we speak {ours}")]
    VersionMismatch {
        /// Our [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION).
        ours: u32,
        /// The version in the peer's handshake.
        theirs: u32,
    },

    /// The handshake's peer id is not a valid [`PeerId`](crate::PeerId).
    #[error("handshake carries an invalid peer id")]
    InvalidPeerId(#[source] PeerIdError),

    /// The handshake's blob digest does not parse.
    #[error("handshake carries an invalid blob digest")]
    InvalidDigest(#[source] DigestError),

    /// The handshake names another blob than the one we dialled for.
    #[error("peer swarms {theirs}, expected {expected}")]
    WrongBlob {
        /// The blob we want on this connection.
        expected: Digest,
        /// The blob the peer named.
        theirs: Digest,
    },

    /// The handshake carries our own peer id: we dialled ourselves (our own
    /// address came back from the tracker).
    #[error("connected to ourselves")]
    SelfConnection,

    /// A message other than the handshake was decoded before the caller
    /// supplied the blob's geometry. This is a bug in the caller, not in the
    /// peer: call `Decoder::set_geometry` right after the handshake.
    #[error("blob geometry not set before decoding past the handshake")]
    GeometryNotSet,

    /// The bitfield does not fit the blob's piece count.
    #[error("bitfield does not match the blob")]
    BadBitfield(#[source] BitfieldError),

    /// A piece index at or beyond the blob's piece count.
    #[error("piece index {index} out of range (blob has {piece_count} pieces)")]
    IndexOutOfRange {
        /// The index the peer sent.
        index: u32,
        /// The blob's piece count.
        piece_count: u32,
    },

    /// A block that is empty, larger than
    /// [`MAX_BLOCK_LENGTH`](super::MAX_BLOCK_LENGTH), or runs past the end of
    /// its piece.
    #[error("block {range:?} out of range (piece is {piece_len} bytes)")]
    BlockOutOfRange {
        /// The block the peer named; for a piece message, `length` is the
        /// payload's length.
        range: BlockRange,
        /// Length of the piece the block claims to be in.
        piece_len: u32,
    },

    /// We were asked to send a frame whose length does not fit the u32
    /// length prefix. A bug on our side; nothing was written.
    #[error("outgoing frame of {len} bytes does not fit a u32 length prefix")]
    OutgoingTooLarge {
        /// Length of the type byte and body we tried to frame.
        len: u64,
    },
}
