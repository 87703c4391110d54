//! Why the torrent closes a connection, typed so that log lines and metrics
//! can group them.

/// Why [`Action::Disconnect`](super::Action::Disconnect) or
/// [`Action::Ban`](super::Action::Ban) was emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectReason {
    /// The peer broke the protocol; the connection cannot be trusted.
    #[error("protocol violation: {0}")]
    ProtocolViolation(#[from] Violation),
    /// The peer has more requests unserved by us than
    /// [`max_inbound_requests`](super::TorrentConfig::max_inbound_requests).
    #[error("request flood: more than {0} requests in flight")]
    RequestFlood(usize),
    /// A piece the peer contributed to failed its hash check.
    #[error("sent a piece that failed its hash check")]
    BadPiece,
    /// Both sides hold the whole blob: the connection carries nothing.
    #[error("both peers are seeders")]
    BothSeeders,
}

/// The ways a peer can break the protocol after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A second handshake on an established connection.
    #[error("handshake after the handshake")]
    UnexpectedHandshake,
    /// A bitfield after the peer's first one.
    #[error("second bitfield")]
    DuplicateBitfield,
    /// A bitfield of the wrong length or with spare bits set.
    #[error("malformed bitfield")]
    MalformedBitfield,
    /// `have` for a piece index past the end of the blob.
    #[error("have for piece {0}, out of range")]
    HaveOutOfRange(u32),
    /// `request` for a piece we never announced.
    #[error("request for piece {0}, which we do not have")]
    RequestNotHeld(u32),
    /// `request` for bytes outside the piece, empty, or over 1 MiB.
    #[error("request for an invalid block of piece {0}")]
    InvalidBlock(u32),
    /// `piece` whose length differs from the block we requested.
    #[error("block of piece {index} at {begin} has {got} bytes, requested {expected}")]
    WrongBlockLength {
        /// Piece index.
        index: u32,
        /// Offset within the piece.
        begin: u32,
        /// Bytes requested.
        expected: u32,
        /// Bytes received.
        got: usize,
    },
}
