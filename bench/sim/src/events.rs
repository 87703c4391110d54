//! What happens in a run, and the ids events name.
//!
//! Events are never removed from the queue: an event made obsolete (a flow
//! whose rate changed, a timer re-armed) carries a version and is ignored
//! when popped.

use bytes::Bytes;
use shoal_swarm::torrent::MAX_BLOCK_SIZE;
use shoal_swarm::wire::{BlockRange, Message};

use crate::clock::SimTime;

/// Index of a host: origins first, then agents.
pub type HostId = u32;
/// Index of a connection; never reused within a run.
pub type ConnId = u32;
/// Index of a blob within the run.
pub type BlobId = u16;

/// Something that happens at a virtual instant.
// Fields are named for what they carry; each variant's doc says the rest.
#[allow(missing_docs)]
#[derive(Debug)]
pub enum Event {
    /// An agent starts pulling: creates its torrents and announces.
    Join { host: HostId },
    /// An agent leaves (churn): closes everything and stops announcing.
    Leave { host: HostId },
    /// Periodic announce of one blob; stale if `generation` is old.
    Announce {
        host: HostId,
        blob: BlobId,
        generation: u32,
    },
    /// The tracker's answer reaches the agent.
    Handout {
        host: HostId,
        blob: BlobId,
        peers: Box<[HostId]>,
    },
    /// The dialer's handshake reaches the acceptor (`ends[1]`).
    Accept { conn: ConnId },
    /// The acceptor's handshake reaches the dialer (`ends[0]`).
    Established { conn: ConnId },
    /// A message sent by `ends[from]` arrives at the other end.
    Deliver {
        conn: ConnId,
        from: u8,
        message: Wire,
    },
    /// The block in transit on pipe `from` of `conn` is fully sent, unless
    /// `version` is stale.
    FlowDone {
        conn: ConnId,
        from: u8,
        version: u32,
    },
    /// The other end closed `conn`; `side` learns of it now.
    Closed { conn: ConnId, side: u8 },
    /// A torrent's timer, armed for `at`.
    Timer {
        host: HostId,
        blob: BlobId,
        at: SimTime,
    },
    /// A piece's hash check finished.
    Verified {
        host: HostId,
        blob: BlobId,
        index: u32,
    },
}

/// A message in flight, in the 16 bytes the queue needs rather than the
/// 64 of [`Message`] (whose largest variant is the handshake): every
/// pending event carries one, and a 10,000-agent run moves hundreds of
/// millions of them through the queue. The torrent still receives the
/// real `Message`, rebuilt on delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// `Have`, the bulk of all messages.
    Have(u32),
    /// `Request`.
    Request(BlockRange),
    /// `Piece`: the block it carries; the payload is zeros.
    Piece(BlockRange),
    /// Anything else, boxed: bitfields, interest, choking, cancels,
    /// rejects and completion are a few per connection.
    Other(Box<Message>),
}

/// Every simulated block's bytes: the torrent checks a block's length and,
/// with `assemble_payload` off, never copies it.
static ZEROS: [u8; MAX_BLOCK_SIZE as usize] = [0; MAX_BLOCK_SIZE as usize];

impl From<Message> for Wire {
    fn from(message: Message) -> Self {
        match message {
            Message::Have(index) => Wire::Have(index),
            Message::Request(range) => Wire::Request(range),
            Message::Piece { index, begin, data } => Wire::Piece(BlockRange {
                index,
                begin,
                length: data.len() as u32,
            }),
            other => Wire::Other(Box::new(other)),
        }
    }
}

impl From<Wire> for Message {
    fn from(wire: Wire) -> Self {
        match wire {
            Wire::Have(index) => Message::Have(index),
            Wire::Request(range) => Message::Request(range),
            Wire::Piece(block) => {
                let len = (block.length as usize).min(ZEROS.len());
                Message::Piece {
                    index: block.index,
                    begin: block.begin,
                    data: Bytes::from_static(&ZEROS[..len]),
                }
            }
            Wire::Other(message) => *message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_stay_small() {
        assert!(std::mem::size_of::<Wire>() <= 16);
        assert!(std::mem::size_of::<Event>() <= 24);
    }

    #[test]
    fn wire_round_trips_every_kind() {
        let range = BlockRange {
            index: 3,
            begin: 16_384,
            length: 16_384,
        };
        let messages = [
            Message::Have(7),
            Message::Request(range),
            Message::Cancel(range),
            Message::Piece {
                index: 3,
                begin: 16_384,
                data: Bytes::from_static(&ZEROS[..16_384]),
            },
            Message::Bitfield(Bytes::from_static(&[0xf0])),
            Message::Interested,
            Message::Complete,
        ];
        for message in messages {
            assert_eq!(Message::from(Wire::from(message.clone())), message);
        }
    }
}
