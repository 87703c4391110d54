//! One in-progress piece: which blocks are requested from whom, which have
//! arrived, and the buffer they are assembled in.

use bytes::Bytes;

use crate::peer_id::PeerId;
use crate::peer_key::PeerKey;
use crate::picker::Fit;
use crate::wire::BlockRange;

use super::buffers::{PieceBuf, PieceBuffers};

/// Where one block of an in-progress piece is. Exactly one state each:
/// `Requested` iff at least one entry of `Download::requests` names the
/// block; `Received` blocks have no request entries and their bytes are in
/// the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockState {
    Unrequested,
    Requested,
    Received,
}

/// An outstanding request for one block; `seq` identifies it in the torrent's
/// deadline queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Request {
    pub(super) block: u32,
    pub(super) peer: PeerKey,
    pub(super) seq: u64,
}

/// An in-progress piece (picker state `InProgress`). Exists iff the picker
/// says `InProgress`; dropped when the piece goes to `Verifying` or back to
/// `Missing`.
#[derive(Debug)]
pub(super) struct Download {
    len: u32,
    block_size: u32,
    blocks: Vec<BlockState>,
    unrequested: u32,
    received: u32,
    /// Every outstanding request for a block of this piece; end-game may put
    /// several entries on one block.
    requests: Vec<Request>,
    /// The piece's bytes, taken from the pool at the first block received,
    /// so requested but silent pieces hold no memory.
    buf: Option<PieceBuf>,
    /// Where `buf` comes from; None when block bytes are not kept
    /// (`TorrentConfig::assemble_payload`, the simulator).
    buffers: Option<PieceBuffers>,
    /// The peer this piece is assigned to: others take its blocks only when
    /// they have nothing else (`Fit::Others`). None after the owner left,
    /// choked or timed out, so the next peer to resume it takes it over.
    pub(super) owner: Option<PeerKey>,
    /// Peers whose blocks are in `buf`, blamed if the hash fails.
    pub(super) contributors: Vec<PeerId>,
    /// The last download failed with several contributors: this one must
    /// come from its owner alone so a repeat failure is attributable.
    single_source: bool,
}

/// What [`Download::receive`] did with a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Received {
    /// Stored; more blocks are needed.
    Stored,
    /// Stored, and it was the last: the piece is ready for verification.
    Complete,
    /// The block was already received: not stored again.
    Duplicate,
}

impl Download {
    /// A piece of `len` bytes (> 0) cut into `block_size` blocks, assembled
    /// in a buffer from `buffers` (None: block bytes are dropped).
    pub(super) fn new(
        len: u32,
        block_size: u32,
        owner: PeerKey,
        single_source: bool,
        buffers: Option<PieceBuffers>,
    ) -> Self {
        let count = len.div_ceil(block_size);
        Download {
            len,
            block_size,
            blocks: vec![BlockState::Unrequested; count as usize],
            unrequested: count,
            received: 0,
            requests: Vec::new(),
            buf: None,
            buffers,
            owner: Some(owner),
            contributors: Vec::new(),
            single_source,
        }
    }

    /// The byte range of `block` within piece `index`.
    pub(super) fn range(&self, index: u32, block: u32) -> BlockRange {
        let begin = block.saturating_mul(self.block_size);
        BlockRange {
            index,
            begin,
            length: self.block_size.min(self.len.saturating_sub(begin)),
        }
    }

    /// The block starting at `begin`, if `begin` is a block boundary.
    pub(super) fn block_at(&self, begin: u32) -> Option<u32> {
        let block = begin / self.block_size;
        (begin.is_multiple_of(self.block_size) && (block as usize) < self.blocks.len())
            .then_some(block)
    }

    /// What `peer` could request of this piece, for the picker.
    pub(super) fn fit(&self, peer: PeerKey) -> Fit {
        if self.unrequested == 0 {
            Fit::Full
        } else if self.owner.is_none_or(|owner| owner == peer) {
            Fit::Mine
        } else if self.single_source {
            Fit::Full
        } else {
            Fit::Others
        }
    }

    /// True when every block is requested or received.
    pub(super) fn fully_requested(&self) -> bool {
        self.unrequested == 0
    }

    /// True if duplicates may be requested in end-game.
    pub(super) fn allows_duplicates(&self) -> bool {
        !self.single_source
    }

    /// The first block nobody was asked for.
    pub(super) fn next_unrequested(&self) -> Option<u32> {
        self.blocks
            .iter()
            .position(|&s| s == BlockState::Unrequested)
            .map(|b| b as u32)
    }

    /// An end-game duplicate for `peer`: a requested block not yet asked of
    /// `peer` and asked of fewer than `max_requesters` peers.
    pub(super) fn next_duplicate(&self, peer: PeerKey, max_requesters: usize) -> Option<u32> {
        (0..self.blocks.len() as u32).find(|&b| {
            self.blocks[b as usize] == BlockState::Requested
                && !self.is_requested_from(b, peer)
                && self.requests.iter().filter(|r| r.block == b).count() < max_requesters
        })
    }

    /// Whether `block` is outstanding from `peer`.
    pub(super) fn is_requested_from(&self, block: u32, peer: PeerKey) -> bool {
        self.requests
            .iter()
            .any(|r| r.block == block && r.peer == peer)
    }

    /// Records a request for `block` sent to `peer`.
    pub(super) fn request(&mut self, block: u32, peer: PeerKey, seq: u64) {
        if let Some(state) = self.blocks.get_mut(block as usize) {
            if *state == BlockState::Unrequested {
                *state = BlockState::Requested;
                self.unrequested -= 1;
            }
            self.requests.push(Request { block, peer, seq });
        }
    }

    /// The outstanding request with deadline-queue id `seq`.
    pub(super) fn find_seq(&self, seq: u64) -> Option<Request> {
        self.requests.iter().copied().find(|r| r.seq == seq)
    }

    /// Forgets the request for `block` sent to `peer` (answered, cancelled,
    /// rejected, timed out). A block nobody else was asked for goes back to
    /// the pool. Returns false if there was no such request.
    pub(super) fn remove_request(&mut self, block: u32, peer: PeerKey) -> bool {
        let Some(pos) = self
            .requests
            .iter()
            .position(|r| r.block == block && r.peer == peer)
        else {
            return false;
        };
        self.requests.swap_remove(pos);
        let state = &mut self.blocks[block as usize];
        if *state == BlockState::Requested && !self.requests.iter().any(|r| r.block == block) {
            *state = BlockState::Unrequested;
            self.unrequested += 1;
        }
        true
    }

    /// Stores `data` as `block`, sent by `from`, and removes every other
    /// request for it, pushing those peers onto `others` (they get a Cancel).
    /// The caller has checked that the length matches [`Self::range`].
    pub(super) fn receive(
        &mut self,
        block: u32,
        data: &[u8],
        from: PeerId,
        others: &mut Vec<PeerKey>,
    ) -> Received {
        let range = self.range(0, block);
        let Some(state) = self.blocks.get_mut(block as usize) else {
            return Received::Duplicate;
        };
        match *state {
            BlockState::Received => return Received::Duplicate,
            BlockState::Unrequested => self.unrequested -= 1,
            BlockState::Requested => {}
        }
        *state = BlockState::Received;
        self.requests.retain(|r| {
            let keep = r.block != block;
            if !keep {
                others.push(r.peer);
            }
            keep
        });
        if let Some(buffers) = &self.buffers {
            let len = self.len as usize;
            let buf = self.buf.get_or_insert_with(|| buffers.take(len));
            let start = range.begin as usize;
            if let Some(dst) = buf.as_mut_slice().get_mut(start..start + data.len()) {
                dst.copy_from_slice(data);
            }
        }
        if !self.contributors.contains(&from) {
            self.contributors.push(from);
        }
        self.received += 1;
        if self.received as usize == self.blocks.len() {
            Received::Complete
        } else {
            Received::Stored
        }
    }

    /// The assembled piece; call once, after [`Received::Complete`].
    pub(super) fn take_data(&mut self) -> Bytes {
        self.buf.take().map(PieceBuf::freeze).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: PeerKey = PeerKey(1);
    const OTHER: PeerKey = PeerKey(2);

    fn id(n: u8) -> PeerId {
        PeerId::from_array([n; 20])
    }

    #[test]
    fn blocks_are_requested_received_and_assembled_once() {
        let mut d = Download::new(10, 4, ME, false, Some(PieceBuffers::new(10)));
        assert_eq!(
            d.range(3, 2),
            BlockRange {
                index: 3,
                begin: 8,
                length: 2
            }
        );
        assert_eq!(
            (d.block_at(4), d.block_at(5), d.block_at(12)),
            (Some(1), None, None)
        );
        for b in 0..3 {
            assert_eq!(d.next_unrequested(), Some(b));
            d.request(b, ME, u64::from(b));
        }
        assert!(d.fully_requested());
        assert_eq!(d.fit(ME), Fit::Full);
        d.request(0, OTHER, 9);
        assert_eq!(d.next_duplicate(OTHER, 2), Some(1));
        assert_eq!(
            d.next_duplicate(PeerKey(3), 2),
            Some(1),
            "block 0 has two requesters"
        );
        let mut others = Vec::new();
        assert_eq!(d.receive(0, b"abcd", id(1), &mut others), Received::Stored);
        assert_eq!(others, vec![ME, OTHER]);
        assert_eq!(
            d.receive(0, b"abcd", id(1), &mut others),
            Received::Duplicate
        );
        assert!(d.remove_request(1, ME));
        assert!(!d.remove_request(1, ME));
        assert_eq!(d.next_unrequested(), Some(1), "returned to the pool");
        assert_eq!(d.receive(1, b"efgh", id(2), &mut others), Received::Stored);
        assert_eq!(d.receive(2, b"ij", id(2), &mut others), Received::Complete);
        assert_eq!(&d.take_data()[..], b"abcdefghij");
        assert_eq!(d.contributors, vec![id(1), id(2)]);
    }

    #[test]
    fn owner_decides_fit() {
        let mut d = Download::new(8, 4, ME, false, None);
        assert_eq!((d.fit(ME), d.fit(OTHER)), (Fit::Mine, Fit::Others));
        d.owner = None;
        assert_eq!(d.fit(OTHER), Fit::Mine, "orphans are anyone's");
        let solo = Download::new(8, 4, ME, true, None);
        assert_eq!(
            solo.fit(OTHER),
            Fit::Full,
            "single-source pieces are not shared"
        );
    }
}
