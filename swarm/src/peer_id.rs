//! Peer identity: 20 random bytes per process, fixed length so that it can be
//! validated cheaply everywhere it arrives from the network.

use std::fmt;

/// A peer's identity in handshakes and tracker announces.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId([u8; PeerId::LEN]);

/// A peer id of the wrong length arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer id must be exactly 20 bytes, got {0}")]
pub struct PeerIdError(pub usize);

impl PeerId {
    /// Length in bytes.
    pub const LEN: usize = 20;

    /// A fresh random id, drawn once per process.
    pub fn random() -> Self {
        PeerId(rand::random())
    }

    /// Wraps known bytes (tests, the simulator).
    pub const fn from_array(bytes: [u8; Self::LEN]) -> Self {
        PeerId(bytes)
    }

    /// Parses wire bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, PeerIdError> {
        let array: [u8; Self::LEN] = bytes.try_into().map_err(|_| PeerIdError(bytes.len()))?;
        Ok(PeerId(array))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0[..6]))
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}
