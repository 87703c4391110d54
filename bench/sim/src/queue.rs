//! The event queue: events in order of (time, insertion order), so that
//! events at the same virtual instant run in the order they were scheduled
//! and a run is deterministic.

use std::collections::VecDeque;

use crate::clock::SimTime;
use crate::events::Event;

/// A queued event with its ordering key. The event travels with its key
/// rather than waiting in a side table: entries move only in sequential
/// scans, which are cheap, while a side-table lookup per pop was a cache
/// miss (most of `pop`'s time with a million events pending).
struct Entry {
    at: u64,
    seq: u64,
    event: Event,
}

/// Bits of the time each level of buckets resolves.
const DIGIT_BITS: u32 = 8;
/// Buckets per level, one per digit value.
const DIGITS: usize = 1 << DIGIT_BITS;
/// Levels needed to cover a 64-bit time.
const LEVELS: usize = (u64::BITS / DIGIT_BITS) as usize;
/// Words of one level's occupancy bitmap.
const WORDS: usize = DIGITS / 64;

/// Pending events in time order, ties in scheduling order.
///
/// A radix heap (Ahuja, Mehlhorn, Orlin and Tarjan) on the time alone,
/// with byte digits: the times popped never decrease (an event is scheduled
/// at or after the current time), so an entry is filed by the highest byte
/// in which its time differs from the last time popped, and by its value
/// in that byte. Refilling takes the lowest such bucket, whose entries all
/// move to lower levels, so an entry is moved at most 8 times and mostly
/// 2 or 3 (a millisecond is 2.5 bytes of nanoseconds). The binary radix
/// heap on (time, sequence) that this replaces moved an entry once per
/// bit, and again per bit of the sequence numbers among events due at the
/// same instant (a verified piece's Haves all are): ~30% of a run's
/// instructions, against a few percent now.
///
/// Entries due at the last time popped wait in `due`, sorted by sequence
/// number when a refill puts them there; every later push has a larger
/// sequence number, so appending keeps the order.
pub struct EventQueue {
    due: VecDeque<Entry>,
    /// `buckets[level * DIGITS + digit]`.
    buckets: Vec<Vec<Entry>>,
    /// Emptied bucket vectors, handed to the next bucket that fills. A
    /// bucket keeping its own vector would hold on to the most it ever
    /// held: over 2,048 buckets that was most of a 10,000-agent run's
    /// memory (117 of 150 MB of heap at 200 agents), and the fresh pages
    /// cost 10% of its time in the kernel.
    spare: Vec<Vec<Entry>>,
    /// Per level, bit `digit` set when that bucket holds entries.
    occupied: [[u64; WORDS]; LEVELS],
    /// Bit `level` set when any bucket of that level holds entries.
    levels: u32,
    /// The time of the last event popped; no event is filed before it.
    last: u64,
    len: usize,
    next_seq: u64,
}

impl Default for EventQueue {
    fn default() -> Self {
        EventQueue {
            due: VecDeque::new(),
            buckets: (0..LEVELS * DIGITS).map(|_| Vec::new()).collect(),
            spare: Vec::new(),
            occupied: [[0; WORDS]; LEVELS],
            levels: 0,
            last: 0,
            len: 0,
            next_seq: 0,
        }
    }
}

impl EventQueue {
    /// Schedules `event` at `at`. A time before the last event popped is
    /// read as that event's time (the simulator never schedules into the
    /// past; the clamp keeps the queue's order valid if it did).
    pub fn push(&mut self, at: SimTime, event: Event) {
        let seq = self.next_seq;
        self.next_seq += 1;
        debug_assert!(at.0 >= self.last, "event scheduled in the past");
        let entry = Entry {
            at: at.0.max(self.last),
            seq,
            event,
        };
        self.file(entry);
        self.len += 1;
    }

    /// The earliest event, or None when the run has nothing left to do.
    pub fn pop(&mut self) -> Option<(SimTime, Event)> {
        if self.due.is_empty() {
            self.refill()?;
        }
        let entry = self.due.pop_front()?;
        self.len -= 1;
        Some((SimTime(entry.at), entry.event))
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no event waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Puts `entry` in `due` if it is due at `last`, otherwise in the
    /// bucket of its highest byte differing from `last`.
    fn file(&mut self, entry: Entry) {
        let differ = entry.at ^ self.last;
        if differ == 0 {
            self.due.push_back(entry);
            return;
        }
        let level = ((u64::BITS - 1 - differ.leading_zeros()) / DIGIT_BITS) as usize;
        let digit = ((entry.at >> (level as u32 * DIGIT_BITS)) as usize) & (DIGITS - 1);
        let bucket = &mut self.buckets[level * DIGITS + digit];
        if bucket.capacity() == 0
            && let Some(spare) = self.spare.pop()
        {
            *bucket = spare;
        }
        bucket.push(entry);
        self.occupied[level][digit / 64] |= 1 << (digit % 64);
        self.levels |= 1 << level;
    }

    /// Makes the earliest pending time the new `last` and spreads its
    /// bucket over the lower levels, which puts every entry due then in
    /// `due`. None when the queue is empty.
    fn refill(&mut self) -> Option<()> {
        if self.levels == 0 {
            return None;
        }
        let level = self.levels.trailing_zeros() as usize;
        let words = &mut self.occupied[level];
        let word = words.iter().position(|&w| w != 0)?;
        let digit = word * 64 + words[word].trailing_zeros() as usize;
        words[word] &= !(1 << (digit % 64));
        if words.iter().all(|&w| w == 0) {
            self.levels &= !(1 << level);
        }
        let mut entries = std::mem::take(&mut self.buckets[level * DIGITS + digit]);
        self.last = entries.iter().map(|e| e.at).min()?;
        for entry in entries.drain(..) {
            self.file(entry);
        }
        // Keep the allocation for whichever bucket fills next.
        self.spare.push(entries);
        // Entries reach a bucket both from pushes and from refills of
        // higher levels, so a bucket is not in sequence order.
        self.due.make_contiguous().sort_unstable_by_key(|e| e.seq);
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::HostId;

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

    /// Against a sorted reference: random times at or after the last pop,
    /// many ties, pushes interleaved with pops.
    #[test]
    fn matches_a_sort_on_time_then_insertion_order() {
        let mut q = EventQueue::default();
        let mut expected = Vec::new();
        let mut popped = Vec::new();
        let mut now = 0u64;
        let mut state = 7u64;
        let mut next = move || {
            state = crate::sim::mix(state, 1);
            state
        };
        for round in 0..20_000u32 {
            for _ in 0..next() % 4 {
                let at = match next() % 4 {
                    0 => now,
                    1 => now + next() % 10,
                    2 => now + next() % 1_000_000,
                    _ => now + (next() % (1 << 40)),
                };
                let host = expected.len() as HostId;
                expected.push((at, host));
                q.push(SimTime(at), Event::Join { host });
            }
            if round % 3 != 0
                && let Some((at, Event::Join { host })) = q.pop()
            {
                now = at.0;
                popped.push((at.0, host));
            }
        }
        while let Some((at, Event::Join { host })) = q.pop() {
            popped.push((at.0, host));
        }
        assert!(q.is_empty());
        // Hosts number the pushes, so sorting by (time, host) is the order
        // of a queue on (time, insertion order).
        expected.sort();
        assert_eq!(popped, expected);
    }
}
