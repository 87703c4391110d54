//! Handles to connected peers inside one torrent.

/// A `Copy` handle to a connected peer of one torrent, an index into the
/// torrent's peer slab. Valid from the peer's connection until its removal;
/// the torrent may reuse a key after removal, so drivers drop theirs then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub usize);
