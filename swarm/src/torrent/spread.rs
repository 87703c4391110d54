//! Spread first: a seed serves each piece to one peer before any piece to
//! a second ([`TorrentConfig::spread_first`](super::TorrentConfig), set by
//! origins).
//!
//! In a flash crowd the leechers that an origin unchokes ask it for the same
//! pieces: rarest first ranks the pieces only the origin holds alike for
//! everyone, and streaming reads all start at piece 0. Each such overlap is
//! a piece the origin sends twice while its uplink is the swarm's
//! bottleneck (one origin at the agents' speed: time = origin egress / its
//! upload). So until every piece has gone out once, a request for a piece
//! already given to another connected peer gets `Reject`; the leecher
//! leaves that piece to its first holder for a while (`sparing`'s
//! refusals) and asks for another. Nothing starves: a piece whose first
//! holder disconnects is free again, and once every piece has gone out,
//! the seed serves whatever is asked.
//!
//! Only the first round is enforced. Holding later rounds to "each piece
//! k times before any k + 1" starves the tail: a leecher that needs a
//! piece given twice waits for the round to end, and the round waits for
//! requests of pieces nobody needs any more (the simulator stalled at 16
//! agents).

use crate::peer_key::PeerKey;

/// Who got each piece first, until every piece has gone out once.
#[derive(Debug, Clone)]
pub(super) struct Spread {
    /// Per piece, the connected peer it was first served to.
    first: Vec<Option<PeerKey>>,
    /// Pieces with no first holder.
    unserved: u32,
}

/// What to do with a request while spreading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Serve it: the piece is new to the swarm, or this peer got it first.
    Serve,
    /// Refuse it: another connected peer got the piece first.
    Refuse,
}

impl Spread {
    pub(super) fn new(pieces: u32) -> Self {
        Spread {
            first: vec![None; pieces as usize],
            unserved: pieces,
        }
    }

    /// True once every piece has gone out at least once: from then on
    /// every request is served.
    pub(super) fn is_done(&self) -> bool {
        self.unserved == 0
    }

    /// A request from `key` for a block of `index`.
    pub(super) fn request(&mut self, key: PeerKey, index: u32) -> Verdict {
        if self.is_done() {
            return Verdict::Serve;
        }
        match self.first.get_mut(index as usize) {
            Some(slot @ None) => {
                *slot = Some(key);
                self.unserved -= 1;
                if self.unserved == 0 {
                    // Done for good: free the table.
                    self.first = Vec::new();
                }
                Verdict::Serve
            }
            Some(Some(holder)) if *holder != key => Verdict::Refuse,
            _ => Verdict::Serve,
        }
    }

    /// `key` disconnected: the pieces it got first may not have reached
    /// anyone else, so they are new again. O(pieces), once per disconnect
    /// while spreading.
    pub(super) fn forget(&mut self, key: PeerKey) {
        for slot in &mut self.first {
            if *slot == Some(key) {
                *slot = None;
                self.unserved += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piece_goes_to_its_first_asker_only_until_all_have_gone_out() {
        let (a, b) = (PeerKey(0), PeerKey(1));
        let mut spread = Spread::new(2);
        assert_eq!(spread.request(a, 0), Verdict::Serve);
        assert_eq!(spread.request(a, 0), Verdict::Serve, "its other blocks");
        assert_eq!(spread.request(b, 0), Verdict::Refuse);
        assert_eq!(spread.request(b, 1), Verdict::Serve);
        assert!(spread.is_done());
        assert_eq!(spread.request(b, 0), Verdict::Serve, "done: all served");
    }

    #[test]
    fn a_departed_first_holder_frees_its_pieces() {
        let (a, b) = (PeerKey(0), PeerKey(1));
        let mut spread = Spread::new(3);
        spread.request(a, 0);
        spread.request(a, 2);
        spread.forget(a);
        assert_eq!(spread.request(b, 0), Verdict::Serve);
        assert_eq!(spread.request(b, 2), Verdict::Serve);
        assert!(!spread.is_done());
    }

    #[test]
    fn out_of_range_indices_are_served_and_left_to_the_caller() {
        let mut spread = Spread::new(1);
        assert_eq!(spread.request(PeerKey(0), 9), Verdict::Serve);
        assert!(!spread.is_done());
    }
}
