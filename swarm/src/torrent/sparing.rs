//! Seed sparing: which pieces a seed may be asked for.
//!
//! Seeds, above all the origins, hold an uplink the whole system exists to
//! save: the registry should send each layer about once. Plain rarest-first
//! keeps every peer's pipeline full, the seed's included, so a leecher asks
//! the seed for pieces that a neighbour which unchokes it already holds; in a
//! flash crowd each leecher's seed pipeline (several pieces deep) then
//! overlaps the others' and the seed sends most pieces several times. Here a
//! seed is asked only for pieces that no connected leecher unchoking us can
//! give, so its bandwidth goes to pieces new to the swarm.
//!
//! A seed may also refuse a piece it gave another peer first (`spread`):
//! that piece is then not asked of any seed for [`REFUSAL_TTL`], since
//! another seed sending it would be the same duplicate.
//!
//! Nothing can starve: a piece that only choking or absent leechers hold is
//! not spared, end-game duplicates ignore sparing, a leecher that chokes
//! us or leaves returns its pieces to the seeds at once, and refusals
//! expire.

use std::collections::VecDeque;
use std::time::Instant;

use super::config::REFUSAL_TTL;
use crate::bitfield::Bitfield;

/// Per-piece count of holders we can download from that are not seeds.
#[derive(Debug, Clone)]
pub(super) struct Sparing {
    holders: Vec<u16>,
    /// Pieces no counted holder has and no seed refused lately: what seeds
    /// may be asked for.
    from_seeds: Bitfield,
    /// Pieces a seed refused, until their refusal expires.
    refused: Bitfield,
    /// When each refusal expires, oldest first.
    refusals: VecDeque<(Instant, u32)>,
}

impl Sparing {
    /// No holders yet: every piece may come from a seed.
    pub(super) fn new(pieces: u32) -> Self {
        Sparing {
            holders: vec![0; pieces as usize],
            from_seeds: Bitfield::full(pieces),
            refused: Bitfield::new(pieces),
            refusals: VecDeque::new(),
        }
    }

    /// The pieces a seed may be asked for.
    pub(super) fn seed_view(&self) -> &Bitfield {
        &self.from_seeds
    }

    /// One more counted holder of `index`.
    pub(super) fn add(&mut self, index: u32) {
        if let Some(count) = self.holders.get_mut(index as usize) {
            *count = count.saturating_add(1);
            if *count == 1 {
                self.from_seeds.clear(index);
            }
        }
    }

    /// One counted holder of `index` fewer.
    pub(super) fn remove(&mut self, index: u32) {
        if let Some(count) = self.holders.get_mut(index as usize) {
            *count = count.saturating_sub(1);
            if *count == 0 && !self.refused.get(index) {
                self.from_seeds.set(index);
            }
        }
    }

    /// A seed refused `index`: no seed is asked for it until
    /// [`REFUSAL_TTL`] from `now`. A repeat does not extend the refusal.
    pub(super) fn refuse(&mut self, now: Instant, index: u32) {
        if self.refused.set(index) {
            self.from_seeds.clear(index);
            self.refusals
                .push_back((super::after(now, REFUSAL_TTL), index));
        }
    }

    /// Ends the refusals due by `now`; true if any ended.
    pub(super) fn expire(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(&(at, index)) = self.refusals.front() {
            if at > now {
                break;
            }
            self.refusals.pop_front();
            self.refused.clear(index);
            if self.holders.get(index as usize) == Some(&0) {
                self.from_seeds.set(index);
            }
            any = true;
        }
        any
    }

    /// When the oldest refusal ends.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.refusals.front().map(|&(at, _)| at)
    }

    /// A peer starts counting (it unchoked us): every piece it has.
    pub(super) fn add_all(&mut self, has: &Bitfield) {
        for index in has.ones() {
            self.add(index);
        }
    }

    /// A peer stops counting (choked us, left, or became a seed).
    pub(super) fn remove_all(&mut self, has: &Bitfield) {
        for index in has.ones() {
            self.remove(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_piece_is_spared_while_any_counted_holder_has_it() {
        let mut sparing = Sparing::new(4);
        assert_eq!(sparing.seed_view().count(), 4);
        sparing.add(1);
        sparing.add(1);
        assert!(!sparing.seed_view().get(1));
        sparing.remove(1);
        assert!(!sparing.seed_view().get(1), "one holder is left");
        sparing.remove(1);
        assert!(sparing.seed_view().get(1));
    }

    #[test]
    fn whole_bitfields_come_and_go() {
        let mut sparing = Sparing::new(8);
        let mut has = Bitfield::new(8);
        has.set(0);
        has.set(5);
        sparing.add_all(&has);
        assert_eq!(sparing.seed_view().zeros().collect::<Vec<_>>(), vec![0, 5]);
        sparing.remove_all(&has);
        assert!(sparing.seed_view().is_complete());
    }

    #[test]
    fn a_refused_piece_comes_back_when_its_refusal_expires() {
        let t0 = crate::torrent::tests::epoch();
        let mut sparing = Sparing::new(4);
        sparing.refuse(t0, 2);
        sparing.refuse(t0 + Duration::from_secs(1), 2);
        assert!(!sparing.seed_view().get(2));
        assert_eq!(sparing.next_expiry(), Some(t0 + REFUSAL_TTL));
        sparing.add(2);
        sparing.remove(2);
        assert!(!sparing.seed_view().get(2), "still refused");
        assert!(!sparing.expire(t0 + REFUSAL_TTL - Duration::from_millis(1)));
        assert!(sparing.expire(t0 + REFUSAL_TTL));
        assert!(sparing.seed_view().get(2));
        assert_eq!(sparing.next_expiry(), None);
        sparing.refuse(t0, 9);
        assert_eq!(sparing.next_expiry(), None, "out of range");
    }

    #[test]
    fn an_expired_refusal_leaves_a_held_piece_spared() {
        let t0 = crate::torrent::tests::epoch();
        let mut sparing = Sparing::new(2);
        sparing.refuse(t0, 0);
        sparing.add(0);
        sparing.expire(t0 + REFUSAL_TTL);
        assert!(!sparing.seed_view().get(0));
    }

    #[test]
    fn out_of_range_and_underflow_are_ignored() {
        let mut sparing = Sparing::new(2);
        sparing.add(9);
        sparing.remove(0);
        assert!(sparing.seed_view().is_complete());
    }
}
