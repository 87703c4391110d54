//! The torrent on a virtual clock: a harness that plays the driver (feeds
//! events, drains actions) and tests grouped by concern.

mod download;
mod input;
mod upload;
mod verify;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::digest::Digest;
use crate::wire::BlockRange;

/// The fake clock's origin; every test instant is this plus an offset.
pub(crate) fn epoch() -> Instant {
    Instant::now()
}

pub(crate) const PIECE: u32 = 1 << 20;
pub(crate) const BLOCK: u32 = 256 << 10;

pub(crate) fn id(n: u8) -> PeerId {
    PeerId::from_array([n; 20])
}

pub(crate) fn bits(len: u32, ones: impl IntoIterator<Item = u32>) -> Bitfield {
    let mut bf = Bitfield::new(len);
    for i in ones {
        bf.set(i);
    }
    bf
}

/// A torrent plus a fake clock, driven like the session driver would.
pub(crate) struct Harness {
    pub(crate) t: Torrent,
    pub(crate) now: Instant,
}

impl Harness {
    /// A torrent of `pieces` 1 MiB pieces (the last `short` bytes shorter)
    /// holding `have`.
    pub(crate) fn build(
        pieces: u32,
        short: u32,
        have: Bitfield,
        config: TorrentConfig,
        seed: u64,
    ) -> Self {
        let length = u64::from(pieces) * u64::from(PIECE) - u64::from(short);
        let hashes = vec![[0u8; 32]; pieces as usize];
        let metainfo =
            Metainfo::new(Digest::of(b"blob"), length, PIECE, hashes).expect("valid metainfo");
        let now = epoch();
        let t = Torrent::new(Arc::new(metainfo), have, id(0), config, now, seed);
        Harness { t, now }
    }

    pub(crate) fn leecher(pieces: u32) -> Self {
        Self::build(
            pieces,
            0,
            Bitfield::new(pieces),
            TorrentConfig::default(),
            1,
        )
    }

    pub(crate) fn seeder(pieces: u32) -> Self {
        Self::build(
            pieces,
            0,
            Bitfield::full(pieces),
            TorrentConfig::default(),
            1,
        )
    }

    pub(crate) fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.t.poll_action()).collect()
    }

    pub(crate) fn advance(&mut self, by: Duration) -> Vec<Action> {
        self.now += by;
        self.t.handle_timeout(self.now);
        self.drain()
    }

    /// Connects peer `n`, checks it was sent our bitfield, drains.
    pub(crate) fn connect(&mut self, n: u8) -> PeerKey {
        let key = self
            .t
            .handle_peer_connected(self.now, id(n))
            .expect("peer accepted");
        let actions = self.drain();
        let ours = Bytes::copy_from_slice(self.t.bitfield().as_bytes());
        assert_eq!(actions.first(), Some(&send(key, Message::Bitfield(ours))));
        key
    }

    /// Connects peer `n` holding `has`, which unchokes us. Returns the key
    /// and the actions after the unchoke (our requests).
    pub(crate) fn connect_unchoked(&mut self, n: u8, has: &Bitfield) -> (PeerKey, Vec<Action>) {
        let key = self.connect(n);
        self.msg(
            key,
            Message::Bitfield(Bytes::copy_from_slice(has.as_bytes())),
        );
        (key, self.msg(key, Message::Unchoke))
    }

    pub(crate) fn msg(&mut self, key: PeerKey, message: Message) -> Vec<Action> {
        self.t.handle_message(self.now, key, message);
        self.drain()
    }

    /// Peer `key` sends the block `range`, filled with a byte derived from
    /// its position so assembly order is checkable.
    pub(crate) fn deliver(&mut self, key: PeerKey, range: BlockRange) -> Vec<Action> {
        let fill = (range.index as u8)
            .wrapping_mul(16)
            .wrapping_add((range.begin / BLOCK) as u8);
        let data = Bytes::from(vec![fill; range.length as usize]);
        self.msg(
            key,
            Message::Piece {
                index: range.index,
                begin: range.begin,
                data,
            },
        )
    }

    /// Delivers every request in `actions` addressed to `key`, and those
    /// that follow, until the peer has nothing more to send. Returns every
    /// action seen on the way.
    pub(crate) fn serve_all(&mut self, key: PeerKey, actions: Vec<Action>) -> Vec<Action> {
        let mut seen = Vec::new();
        let mut pending: Vec<BlockRange> = requests(&actions, key);
        seen.extend(actions);
        while let Some(range) = pending.pop() {
            let actions = self.deliver(key, range);
            pending.extend(requests(&actions, key));
            seen.extend(actions);
        }
        seen
    }

    /// Answers every Verify in `actions` with `result`; returns what follows.
    pub(crate) fn verify_all(&mut self, actions: &[Action], result: VerifyResult) -> Vec<Action> {
        let mut out = Vec::new();
        for index in verifies(actions) {
            self.t.handle_verified(self.now, index, result);
            out.extend(self.drain());
        }
        out
    }
}

pub(crate) fn send(peer: PeerKey, message: Message) -> Action {
    Action::Send { peer, message }
}

/// Messages sent to `key`, in order.
pub(crate) fn sent(actions: &[Action], key: PeerKey) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { peer, message } if *peer == key => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// Block requests sent to `key`, in order.
pub(crate) fn requests(actions: &[Action], key: PeerKey) -> Vec<BlockRange> {
    sent(actions, key)
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// Pieces handed out for verification, in order.
pub(crate) fn verifies(actions: &[Action]) -> Vec<u32> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Verify { index, .. } => Some(*index),
            _ => None,
        })
        .collect()
}

pub(crate) fn disconnected(actions: &[Action], key: PeerKey) -> Option<DisconnectReason> {
    actions.iter().find_map(|a| match a {
        Action::Disconnect { peer, reason } | Action::Ban { peer, reason, .. } if *peer == key => {
            Some(reason.clone())
        }
        _ => None,
    })
}

#[test]
fn connect_sends_bitfield_and_refuses_self_duplicates_and_banned() {
    let mut h = Harness::leecher(4);
    let key = h.connect(1);
    assert_eq!(h.t.handle_peer_connected(h.now, id(1)), None, "duplicate");
    assert_eq!(h.t.handle_peer_connected(h.now, id(0)), None, "ourselves");
    assert!(h.drain().is_empty(), "refusals emit nothing");
    h.t.handle_peer_disconnected(h.now, key);
    assert_eq!(h.t.stats().peers, 0);
    h.connect(1);
}

#[test]
fn interest_follows_what_peers_have() {
    let mut h = Harness::build(4, 0, bits(4, [0]), TorrentConfig::default(), 1);
    let a = h.connect(1);
    let actions = h.msg(
        a,
        Message::Bitfield(Bytes::copy_from_slice(bits(4, [0]).as_bytes())),
    );
    assert!(
        sent(&actions, a).is_empty(),
        "nothing we lack: stay uninterested"
    );
    let actions = h.msg(a, Message::Have(2));
    assert_eq!(sent(&actions, a), vec![Message::Interested]);
    assert!(h.msg(a, Message::Have(3)).is_empty(), "already interested");
}

#[test]
fn same_seed_same_actions() {
    fn run(seed: u64) -> Vec<Action> {
        let mut h = Harness::build(64, 0, bits(64, [5]), TorrentConfig::default(), seed);
        let mut all = Vec::new();
        for n in 1..=3 {
            let (key, actions) = h.connect_unchoked(n, &Bitfield::full(64));
            all.extend(actions.clone());
            let served = h.serve_all(key, actions);
            all.extend(h.verify_all(&served, VerifyResult::Ok));
            all.extend(served);
        }
        all.extend(h.advance(Duration::from_secs(11)));
        all
    }
    let a = run(42);
    assert!(a.len() > 100);
    assert_eq!(a, run(42));
}

#[test]
fn poll_timeout_tracks_requests_and_rechoke() {
    let mut h = Harness::leecher(4);
    let rechoke = h.t.poll_timeout().expect("present");
    assert!(
        rechoke > h.now,
        "only the choker's timer before any request"
    );
    let (_, actions) = h.connect_unchoked(1, &Bitfield::full(4));
    assert!(!requests(&actions, PeerKey(0)).is_empty());
    assert_eq!(h.t.poll_timeout(), Some(h.now + Duration::from_secs(4)));
}
