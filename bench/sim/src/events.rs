//! What happens in a run, and the ids events name.
//!
//! Events are never removed from the queue: an event made obsolete (a flow
//! whose rate changed, a timer re-armed) carries a version and is ignored
//! when popped.

use shoal_swarm::wire::Message;

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
        peers: Vec<HostId>,
    },
    /// The dialer's handshake reaches the acceptor (`ends[1]`).
    Accept { conn: ConnId },
    /// The acceptor's handshake reaches the dialer (`ends[0]`).
    Established { conn: ConnId },
    /// A message sent by `ends[from]` arrives at the other end.
    Deliver {
        conn: ConnId,
        from: u8,
        message: Message,
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
