//! Connections between two hosts for one blob. Each has two pipes, one per
//! direction, and each pipe is a FIFO like the session's writer queue:
//! control messages and served blocks leave in the order the torrent queued
//! them, so a request waits behind blocks already queued on the same
//! connection, as it does behind them in a TCP socket.

use std::collections::VecDeque;

use shoal_swarm::PeerKey;
use shoal_swarm::wire::BlockRange;

use crate::events::{BlobId, HostId, Wire};

/// What a pipe has to send.
#[derive(Debug)]
pub enum Outgoing {
    /// A control message: it takes no bandwidth, only the one-way latency.
    Message(Wire),
    /// A block to send as a `Piece` frame: a flow in the network model.
    Serve(BlockRange),
}

/// One direction of a connection.
#[derive(Debug, Default)]
pub struct Pipe {
    /// Waiting to be sent, in order.
    pub queue: VecDeque<Outgoing>,
    /// The block being sent now.
    pub sending: Option<BlockRange>,
}

/// Where one end of a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Handshake not completed at this end yet.
    Pending,
    /// Known to this end's torrent under this key.
    Open(PeerKey),
    /// Closed at this end (or refused).
    Closed,
}

/// A connection; `ends[0]` dialed `ends[1]`.
#[derive(Debug)]
pub struct Conn {
    /// The blob it swarms.
    pub blob: BlobId,
    /// Dialer, acceptor.
    pub ends: [HostId; 2],
    /// State at each end.
    pub state: [End; 2],
    /// `pipes[i]` carries what `ends[i]` sends.
    pub pipes: [Pipe; 2],
}

impl Conn {
    /// A dial from `dialer` to `acceptor`, pending at both ends.
    pub fn dial(blob: BlobId, dialer: HostId, acceptor: HostId) -> Self {
        Conn {
            blob,
            ends: [dialer, acceptor],
            state: [End::Pending; 2],
            pipes: [Pipe::default(), Pipe::default()],
        }
    }

    /// Which end `host` is.
    pub fn side_of(&self, host: HostId) -> u8 {
        u8::from(self.ends[0] != host)
    }

    /// The torrent key at end `side`, while open.
    pub fn key(&self, side: u8) -> Option<PeerKey> {
        match self.state[usize::from(side)] {
            End::Open(key) => Some(key),
            _ => None,
        }
    }
}
