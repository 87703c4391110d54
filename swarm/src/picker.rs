//! Which piece to ask a peer for next: a pure data structure over piece
//! states and swarm availability, with no peers, clock or I/O inside.
//!
//! The [`crate::torrent`] owns block-level bookkeeping; the picker owns the
//! piece-level view and the choice order:
//!
//! 1. **Stream window**: pieces `[position, position + window)` the peer has,
//!    new or in progress, whoever they are assigned to: a client is waiting.
//! 2. **Resume**: in-progress pieces assigned to this peer or to nobody, so
//!    whole pieces finish (and can be verified and shared) before new ones.
//! 3. **Random first**: while we hold no piece at all, a random one the peer
//!    has, so that we have something to trade as soon as possible.
//! 4. **Rarest first**: the least available missing piece the peer has, ties
//!    broken at random so peers do not all chase the same piece.
//! 5. **Steal**: unrequested blocks of pieces assigned to other peers, so a
//!    fast peer with nothing else to do keeps working.
//!
//! Missing pieces live in buckets indexed by availability, so a `Have` moves
//! one piece between buckets in O(1) and rarest-first stops at the first
//! bucket holding a piece the peer has instead of sorting every piece.

use std::ops::Range;

use rand::Rng;

use crate::bitfield::Bitfield;

/// Where one piece is in its life. Each piece is in exactly one state:
///
/// - `Missing`: not ours, no block requested; it sits in exactly one
///   availability bucket (`buckets[availability[i]]` at `slot[i]`).
/// - `InProgress`: blocks are requested or received; it is listed exactly
///   once in `in_progress` and in no bucket. The torrent holds its blocks.
/// - `Verifying`: every block arrived and the assembled piece is being
///   hashed; in no list.
/// - `Have`: verified and stored; in no list, never leaves this state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceState {
    /// Not held and nothing requested.
    Missing,
    /// Some blocks requested or received.
    InProgress,
    /// All blocks received, waiting for the hash check.
    Verifying,
    /// Verified: ours to serve.
    Have,
}

/// What the torrent can offer a peer from an in-progress piece, answered by
/// the closure given to [`Picker::pick`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Unrequested blocks remain and the piece is assigned to this peer or
    /// to nobody.
    Mine,
    /// Unrequested blocks remain but another peer is assigned the piece.
    Others,
    /// Nothing this peer could request.
    Full,
}

/// Why a piece was chosen, in the order the rules are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickReason {
    /// Inside the stream window.
    Stream,
    /// An in-progress piece assigned to this peer or to nobody.
    Resume,
    /// We hold nothing yet: a random piece.
    RandomFirst,
    /// The rarest missing piece the peer has.
    Rarest,
    /// Unrequested blocks of a piece assigned to another peer.
    Steal,
}

/// A piece to request blocks of, and the rule that chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// Piece index.
    pub index: u32,
    /// The rule that chose it; `Stream` and `Steal` picks may name pieces
    /// assigned to other peers.
    pub reason: PickReason,
}

/// A state change the picker refused because the piece was elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("piece {index} cannot go from {from:?} to {to:?}")]
pub struct TransitionError {
    /// Piece index.
    pub index: u32,
    /// Its actual state, None if the index is out of range.
    pub from: Option<PieceState>,
    /// The state asked for.
    pub to: PieceState,
}

/// Piece states and availability for one blob.
#[derive(Debug, Clone)]
pub struct Picker {
    state: Vec<PieceState>,
    availability: Vec<u32>,
    /// `Missing` pieces bucketed by availability (see [`PieceState`]).
    buckets: Vec<Vec<u32>>,
    /// Position of a `Missing` piece inside its bucket; stale otherwise.
    slot: Vec<u32>,
    /// `InProgress` pieces, oldest first.
    in_progress: Vec<u32>,
    have: u32,
    missing: u32,
    stream: Option<u32>,
    window: u32,
}

impl Picker {
    /// A picker for a blob whose verified pieces are `have` (full for a
    /// seeder), giving `stream_window` pieces after a stream position
    /// absolute priority. Nobody is known to have anything yet.
    pub fn new(have: &Bitfield, stream_window: u32) -> Self {
        let len = have.len();
        let mut picker = Picker {
            state: vec![PieceState::Missing; len as usize],
            availability: vec![0; len as usize],
            buckets: vec![Vec::new()],
            slot: vec![0; len as usize],
            in_progress: Vec::new(),
            have: 0,
            missing: 0,
            stream: None,
            window: stream_window,
        };
        for i in 0..len {
            if have.get(i) {
                picker.state[i as usize] = PieceState::Have;
                picker.have += 1;
            } else {
                picker.bucket_insert(i);
            }
        }
        picker
    }

    /// Number of pieces of the blob.
    pub fn len(&self) -> u32 {
        self.state.len() as u32
    }

    /// True for a blob of zero pieces.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// State of piece `index`, None if out of range.
    pub fn state(&self, index: u32) -> Option<PieceState> {
        self.state.get(index as usize).copied()
    }

    /// How many connected peers have piece `index` (0 if out of range).
    pub fn availability(&self, index: u32) -> u32 {
        self.availability.get(index as usize).copied().unwrap_or(0)
    }

    /// Pieces verified.
    pub fn have_count(&self) -> u32 {
        self.have
    }

    /// Pieces not yet verified, in any other state.
    pub fn remaining(&self) -> u32 {
        self.len() - self.have
    }

    /// Pieces in state `Missing`: nothing requested yet.
    pub fn missing_count(&self) -> u32 {
        self.missing
    }

    /// Pieces in progress, oldest first.
    pub fn in_progress(&self) -> &[u32] {
        &self.in_progress
    }

    /// The pieces currently given stream priority (empty when not streaming).
    pub fn stream_window(&self) -> Range<u32> {
        match self.stream {
            Some(start) => start.min(self.len())..start.saturating_add(self.window).min(self.len()),
            None => 0..0,
        }
    }

    /// A client now reads from piece `position` (None: nobody streams).
    pub fn set_stream_position(&mut self, position: Option<u32>) {
        self.stream = position;
    }

    /// One more peer has piece `index`. Returns false (and changes nothing)
    /// if the index is out of range.
    #[inline]
    pub fn add_availability(&mut self, index: u32) -> bool {
        let Some(&avail) = self.availability.get(index as usize) else {
            return false;
        };
        self.set_availability(index, avail.saturating_add(1));
        true
    }

    /// One peer fewer has piece `index` (a disconnect). Returns false if the
    /// index is out of range or nobody was counted as having it.
    #[inline]
    pub fn remove_availability(&mut self, index: u32) -> bool {
        match self.availability.get(index as usize) {
            Some(&avail) if avail > 0 => {
                self.set_availability(index, avail - 1);
                true
            }
            _ => false,
        }
    }

    /// Counts every piece of a newly connected peer's bitfield.
    pub fn add_bitfield(&mut self, pieces: &Bitfield) {
        for i in pieces.ones() {
            self.add_availability(i);
        }
    }

    /// Uncounts every piece of a departing peer's bitfield.
    pub fn remove_bitfield(&mut self, pieces: &Bitfield) {
        for i in pieces.ones() {
            self.remove_availability(i);
        }
    }

    /// The next piece to request from a peer holding `peer`, following the
    /// order in the module doc. `fit` tells, for an in-progress piece, what
    /// this peer could request of it. Costs O(window + in-progress) plus the
    /// bucket scan, never a sort; None when the peer has nothing for us.
    pub fn pick(
        &self,
        peer: &Bitfield,
        rng: &mut impl Rng,
        fit: impl FnMut(u32) -> Fit,
    ) -> Option<Pick> {
        self.pick_within(self.stream_window(), peer, rng, fit)
    }

    /// [`Picker::pick`] for a seed: only the piece at the stream position
    /// jumps the queue, the rest of the window goes by rarity. Leechers
    /// streaming one blob read it in step; were the whole window first for
    /// seeds too, every leecher would ask the seed for the same few pieces
    /// at once and the seed would send each of them once per leecher.
    pub fn pick_for_seed(
        &self,
        peer: &Bitfield,
        rng: &mut impl Rng,
        fit: impl FnMut(u32) -> Fit,
    ) -> Option<Pick> {
        let window = self.stream_window();
        let urgent = window.start..window.end.min(window.start.saturating_add(1));
        self.pick_within(urgent, peer, rng, fit)
    }

    fn pick_within(
        &self,
        window: Range<u32>,
        peer: &Bitfield,
        rng: &mut impl Rng,
        mut fit: impl FnMut(u32) -> Fit,
    ) -> Option<Pick> {
        let pick = |index, reason| Some(Pick { index, reason });
        for i in window {
            if !peer.get(i) {
                continue;
            }
            match self.state[i as usize] {
                PieceState::Missing => return pick(i, PickReason::Stream),
                PieceState::InProgress if fit(i) != Fit::Full => {
                    return pick(i, PickReason::Stream);
                }
                _ => {}
            }
        }
        if let Some(&i) = self
            .in_progress
            .iter()
            .find(|&&i| peer.get(i) && fit(i) == Fit::Mine)
        {
            return pick(i, PickReason::Resume);
        }
        if self.have == 0 {
            if let Some(i) = self.random_missing(peer, rng) {
                return pick(i, PickReason::RandomFirst);
            }
        } else if let Some(i) = self.rarest_missing(peer, rng) {
            return pick(i, PickReason::Rarest);
        }
        self.in_progress
            .iter()
            .find(|&&i| peer.get(i) && fit(i) == Fit::Others)
            .and_then(|&i| pick(i, PickReason::Steal))
    }

    /// `Missing` -> `InProgress`: the first block is about to be requested.
    pub fn start(&mut self, index: u32) -> Result<(), TransitionError> {
        self.check_state(index, PieceState::Missing, PieceState::InProgress)?;
        self.bucket_remove(index);
        self.state[index as usize] = PieceState::InProgress;
        self.in_progress.push(index);
        Ok(())
    }

    /// `InProgress` -> `Missing`: its partial blocks were dropped.
    pub fn abandon(&mut self, index: u32) -> Result<(), TransitionError> {
        self.check_state(index, PieceState::InProgress, PieceState::Missing)?;
        self.in_progress.retain(|&i| i != index);
        self.bucket_insert(index);
        Ok(())
    }

    /// `InProgress` -> `Verifying`: every block arrived.
    pub fn assembled(&mut self, index: u32) -> Result<(), TransitionError> {
        self.check_state(index, PieceState::InProgress, PieceState::Verifying)?;
        self.in_progress.retain(|&i| i != index);
        self.state[index as usize] = PieceState::Verifying;
        Ok(())
    }

    /// `Verifying` -> `Have`: the hash matched and the piece is stored.
    pub fn verified(&mut self, index: u32) -> Result<(), TransitionError> {
        self.check_state(index, PieceState::Verifying, PieceState::Have)?;
        self.state[index as usize] = PieceState::Have;
        self.have += 1;
        Ok(())
    }

    /// `Verifying` -> `Missing`: the hash or the store failed; download again.
    pub fn failed(&mut self, index: u32) -> Result<(), TransitionError> {
        self.check_state(index, PieceState::Verifying, PieceState::Missing)?;
        self.bucket_insert(index);
        Ok(())
    }

    fn check_state(
        &self,
        index: u32,
        from: PieceState,
        to: PieceState,
    ) -> Result<(), TransitionError> {
        match self.state(index) {
            Some(s) if s == from => Ok(()),
            other => Err(TransitionError {
                index,
                from: other,
                to,
            }),
        }
    }

    /// A random `Missing` piece the peer has: a random start, then the first
    /// match going round. O(1) when the peer has most pieces.
    fn random_missing(&self, peer: &Bitfield, rng: &mut impl Rng) -> Option<u32> {
        let len = self.len();
        if len == 0 || self.missing == 0 {
            return None;
        }
        let start = rng.random_range(0..len);
        (start..len)
            .chain(0..start)
            .find(|&i| self.state[i as usize] == PieceState::Missing && peer.get(i))
    }

    /// The least available `Missing` piece the peer has; within a bucket a
    /// random start breaks ties. Bucket 0 is skipped: the peer has the piece.
    ///
    /// Scanning buckets costs the missing pieces passed over before a match,
    /// up to all of them for a peer holding none of the rarest (a leecher in
    /// a flash crowd: this was 14% of a simulation). When the peer holds few
    /// pieces, going through its pieces instead gives the same piece with the
    /// same random draws in O(pieces / 8 + its pieces).
    fn rarest_missing(&self, peer: &Bitfield, rng: &mut impl Rng) -> Option<u32> {
        if peer.len() / 8 + peer.count() < self.missing {
            self.rarest_missing_held(peer, rng)
        } else {
            self.rarest_missing_scan(peer, rng)
        }
    }

    /// [`Picker::rarest_missing`] bucket by bucket, from the rarest.
    fn rarest_missing_scan(&self, peer: &Bitfield, rng: &mut impl Rng) -> Option<u32> {
        for bucket in self.buckets.iter().skip(1).filter(|b| !b.is_empty()) {
            // From a random start, wrapping around: two plain slices rather
            // than an index modulo the length, whose division per piece was
            // most of a pick in a large bucket.
            let start = rng.random_range(0..bucket.len());
            let (head, tail) = bucket.split_at(start);
            if let Some(&i) = tail.iter().chain(head).find(|&&i| peer.get(i)) {
                return Some(i);
            }
        }
        None
    }

    /// [`Picker::rarest_missing`] through the peer's pieces: the lowest
    /// bucket holding one of them, a draw for every non-empty bucket below it
    /// and for it (as the bucket scan makes), then its piece nearest after
    /// the drawn start, going round.
    fn rarest_missing_held(&self, peer: &Bitfield, rng: &mut impl Rng) -> Option<u32> {
        let held = || {
            peer.ones()
                .filter(|&i| self.state.get(i as usize) == Some(&PieceState::Missing))
                .map(|i| (i, self.availability[i as usize] as usize))
                .filter(|&(_, avail)| avail > 0)
        };
        let level = held().map(|(_, avail)| avail).min();
        let below = level.unwrap_or(self.buckets.len());
        for bucket in &self.buckets[1..below] {
            if !bucket.is_empty() {
                rng.random_range(0..bucket.len());
            }
        }
        let level = level?;
        let len = self.buckets[level].len();
        let start = rng.random_range(0..len);
        held()
            .filter(|&(_, avail)| avail == level)
            .min_by_key(|&(i, _)| (self.slot[i as usize] as usize + len - start) % len)
            .map(|(i, _)| i)
    }

    /// Inline, with the bucket move out of line: most calls are for pieces
    /// we hold or fetch (a seed's bitfield, a departing peer's), which only
    /// change a counter.
    #[inline]
    fn set_availability(&mut self, index: u32, avail: u32) {
        if self.state[index as usize] == PieceState::Missing {
            self.rebucket(index, avail);
        } else {
            self.availability[index as usize] = avail;
        }
    }

    /// Moves a `Missing` piece to the bucket of its new availability.
    fn rebucket(&mut self, index: u32, avail: u32) {
        self.bucket_remove(index);
        self.availability[index as usize] = avail;
        self.bucket_insert(index);
    }

    /// Makes `index` `Missing` and files it under its availability.
    fn bucket_insert(&mut self, index: u32) {
        let avail = self.availability[index as usize] as usize;
        if self.buckets.len() <= avail {
            self.buckets.resize_with(avail + 1, Vec::new);
        }
        self.slot[index as usize] = self.buckets[avail].len() as u32;
        self.buckets[avail].push(index);
        self.state[index as usize] = PieceState::Missing;
        self.missing += 1;
    }

    /// Takes a `Missing` piece out of its bucket; the caller sets its state.
    fn bucket_remove(&mut self, index: u32) {
        let avail = self.availability[index as usize] as usize;
        let slot = self.slot[index as usize] as usize;
        let bucket = &mut self.buckets[avail];
        bucket.swap_remove(slot);
        if let Some(&moved) = bucket.get(slot) {
            self.slot[moved as usize] = slot as u32;
        }
        self.missing -= 1;
    }
}

#[cfg(test)]
mod tests;
