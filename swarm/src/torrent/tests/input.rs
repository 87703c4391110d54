//! Bad and unexpected input: never a panic, a typed reason when the peer is
//! at fault, wasted bytes when it merely sent something useless.

use super::*;

fn violation(actions: &[Action], key: PeerKey) -> Option<Violation> {
    match disconnected(actions, key) {
        Some(DisconnectReason::ProtocolViolation(v)) => Some(v),
        _ => None,
    }
}

fn bitfield(bf: &Bitfield) -> Message {
    Message::Bitfield(Bytes::copy_from_slice(bf.as_bytes()))
}

#[test]
fn have_out_of_range_is_a_violation() {
    let mut h = Harness::leecher(4);
    let a = h.connect(1);
    assert_eq!(
        violation(&h.msg(a, Message::Have(4)), a),
        Some(Violation::HaveOutOfRange(4))
    );
}

#[test]
fn a_second_bitfield_is_a_violation() {
    let mut h = Harness::leecher(4);
    let a = h.connect(1);
    h.msg(a, Message::Have(1));
    let actions = h.msg(a, bitfield(&bits(4, [1, 2])));
    assert!(
        violation(&actions, a).is_none(),
        "a bitfield after a have merges"
    );
    assert_eq!(h.t.picker.availability(1), 1, "not counted twice");
    let actions = h.msg(a, bitfield(&bits(4, [3])));
    assert_eq!(violation(&actions, a), Some(Violation::DuplicateBitfield));
}

#[test]
fn a_malformed_bitfield_is_a_violation() {
    let mut h = Harness::leecher(12);
    let a = h.connect(1);
    let actions = h.msg(a, Message::Bitfield(Bytes::from_static(&[0xff])));
    assert_eq!(violation(&actions, a), Some(Violation::MalformedBitfield));
    let b = h.connect(2);
    let actions = h.msg(b, Message::Bitfield(Bytes::from_static(&[0xff, 0xff])));
    assert_eq!(
        violation(&actions, b),
        Some(Violation::MalformedBitfield),
        "spare bits set"
    );
}

#[test]
fn a_handshake_after_the_handshake_is_a_violation() {
    let mut h = Harness::leecher(4);
    let a = h.connect(1);
    let handshake = crate::wire::Handshake {
        version: crate::wire::PROTOCOL_VERSION,
        digest: crate::digest::Digest::of(b"blob"),
        peer_id: id(1),
    };
    let actions = h.msg(a, Message::Handshake(handshake));
    assert_eq!(violation(&actions, a), Some(Violation::UnexpectedHandshake));
}

#[test]
fn an_unrequested_block_is_wasted_not_stored() {
    let mut h = Harness::leecher(4);
    let a = h.connect(1);
    let stray = BlockRange {
        index: 2,
        begin: 0,
        length: BLOCK,
    };
    assert!(h.deliver(a, stray).is_empty());
    let past_end = Message::Piece {
        index: 99,
        begin: 7,
        data: Bytes::from_static(b"xyz"),
    };
    assert!(h.msg(a, past_end).is_empty());
    assert_eq!(h.t.stats().wasted, u64::from(BLOCK) + 3);
    let (b, actions) = h.connect_unchoked(2, &Bitfield::full(4));
    let r = requests(&actions, b)[0];
    assert!(h.deliver(a, r).is_empty(), "requested from b, not from a");
    let misaligned = BlockRange {
        begin: r.begin + 1,
        length: BLOCK - 1,
        ..r
    };
    assert!(h.deliver(b, misaligned).is_empty());
    assert!(
        violation(&h.deliver(b, r), b).is_none(),
        "b's own block is fine"
    );
}

#[test]
fn a_block_of_the_wrong_length_is_a_violation() {
    let mut h = Harness::leecher(4);
    let (a, actions) = h.connect_unchoked(1, &Bitfield::full(4));
    let r = requests(&actions, a)[0];
    let data = Bytes::from(vec![0; 100]);
    let actions = h.msg(
        a,
        Message::Piece {
            index: r.index,
            begin: r.begin,
            data,
        },
    );
    let expected = Violation::WrongBlockLength {
        index: r.index,
        begin: r.begin,
        expected: BLOCK,
        got: 100,
    };
    assert_eq!(violation(&actions, a), Some(expected));
}

#[test]
fn unknown_keys_and_stale_answers_are_ignored() {
    let mut h = Harness::leecher(4);
    h.t.handle_message(h.now, PeerKey(7), Message::Unchoke);
    h.t.handle_peer_disconnected(h.now, PeerKey(7));
    h.t.handle_served(
        h.now,
        PeerKey(7),
        BlockRange {
            index: 0,
            begin: 0,
            length: 1,
        },
    );
    h.t.handle_verified(h.now, 3, VerifyResult::Ok);
    h.t.handle_verified(h.now, 1_000, VerifyResult::HashMismatch);
    assert!(h.drain().is_empty());
    assert_eq!(h.t.stats(), TorrentStats::default());
}

#[test]
fn seed_to_seed_connections_are_dropped() {
    let mut h = Harness::seeder(4);
    let a = h.connect(1);
    let actions = h.msg(a, bitfield(&Bitfield::full(4)));
    assert_eq!(
        disconnected(&actions, a),
        Some(DisconnectReason::BothSeeders)
    );
    let b = h.connect(2);
    assert!(
        h.msg(b, bitfield(&bits(4, [0]))).is_empty(),
        "a leecher stays"
    );
    let actions = h.msg(b, Message::Complete);
    assert_eq!(
        disconnected(&actions, b),
        Some(DisconnectReason::BothSeeders)
    );
}

#[test]
fn a_wrong_length_resume_bitfield_and_an_empty_blob_do_not_panic() {
    let h = Harness::build(4, 0, Bitfield::full(9), TorrentConfig::default(), 1);
    assert!(h.t.is_complete());
    assert_eq!(h.t.bitfield().len(), 4);
    let empty = Metainfo::new(Digest::of(b""), 0, PIECE, Vec::new()).expect("valid metainfo");
    let mut t = Torrent::new(
        Arc::new(empty),
        Bitfield::new(0),
        id(0),
        TorrentConfig::default(),
        h.now,
        1,
    );
    assert!(t.is_complete());
    let key = t
        .handle_peer_connected(h.now, id(1))
        .expect("peer accepted");
    t.handle_message(h.now, key, Message::Complete);
    t.handle_message(
        h.now,
        key,
        Message::Request(BlockRange {
            index: 0,
            begin: 0,
            length: 1,
        }),
    );
}
