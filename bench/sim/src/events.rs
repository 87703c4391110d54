//! The event queue: a min-heap on (time, insertion order), so that events at
//! the same virtual instant run in the order they were scheduled and a run
//! is deterministic.
//!
//! Events are never removed: an event made obsolete (a flow whose rate
//! changed, a timer re-armed) carries a version and is ignored when popped.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

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

/// A heap entry: the ordering key and where the event is parked. Kept to
/// 24 bytes so that sifting moves little memory; events themselves (up to
/// ~56 bytes) stay put in `EventQueue::slots`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    at: SimTime,
    seq: u64,
    slot: u32,
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Pending events in time order, ties in scheduling order.
#[derive(Default)]
pub struct EventQueue {
    heap: BinaryHeap<Key>,
    slots: Vec<Option<Event>>,
    free: Vec<u32>,
    next_seq: u64,
}

impl EventQueue {
    /// Schedules `event` at `at`.
    pub fn push(&mut self, at: SimTime, event: Event) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(event);
                slot
            }
            None => {
                self.slots.push(Some(event));
                (self.slots.len() - 1) as u32
            }
        };
        self.heap.push(Key { at, seq, slot });
    }

    /// The earliest event, or None when the run has nothing left to do.
    pub fn pop(&mut self) -> Option<(SimTime, Event)> {
        let key = self.heap.pop()?;
        self.free.push(key.slot);
        let event = self.slots[key.slot as usize].take()?;
        Some((key.at, event))
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when no event waits.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_then_insertion_order() {
        let mut q = EventQueue::default();
        q.push(SimTime(5), Event::Join { host: 1 });
        q.push(SimTime(3), Event::Join { host: 2 });
        q.push(SimTime(5), Event::Join { host: 3 });
        let order: Vec<HostId> = std::iter::from_fn(|| q.pop())
            .map(|(_, e)| match e {
                Event::Join { host } => host,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(order, [2, 1, 3]);
    }
}
