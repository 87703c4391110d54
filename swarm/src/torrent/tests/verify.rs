//! Hash results: new pieces, completion, blame and bans.

use std::time::Duration;

use super::*;

/// Downloads every piece `key` is asked for; returns the pieces to verify.
fn fetch(h: &mut Harness, key: PeerKey, actions: Vec<Action>) -> Vec<u32> {
    verifies(&h.serve_all(key, actions))
}

#[test]
fn a_verified_piece_is_announced_to_those_lacking_it_and_interest_dropped() {
    let mut h = Harness::leecher(2);
    let (a, actions) = h.connect_unchoked(1, &bits(2, [0]));
    let b = h.connect(2);
    h.msg(
        b,
        Message::Bitfield(Bytes::copy_from_slice(Bitfield::full(2).as_bytes())),
    );
    let c = h.connect(3);
    h.msg(
        c,
        Message::Bitfield(Bytes::copy_from_slice(bits(2, [1]).as_bytes())),
    );
    assert_eq!(fetch(&mut h, a, actions), vec![0]);
    h.t.handle_verified(h.now, 0, VerifyResult::Ok);
    let actions = h.drain();
    assert_eq!(
        actions,
        vec![
            send(a, Message::NotInterested),
            send(c, Message::Have(0)),
            Action::PieceVerified { index: 0 },
        ],
        "a and b hold piece 0 already: no Have for them"
    );
    let stats = h.t.stats();
    assert_eq!(
        (stats.downloaded, stats.pieces, stats.complete),
        (u64::from(PIECE), 1, false)
    );
    h.t.handle_verified(h.now, 0, VerifyResult::Ok);
    assert!(h.drain().is_empty(), "a second answer is ignored");
}

#[test]
fn the_last_piece_completes_and_drops_other_seeders() {
    let mut h = Harness::leecher(1);
    assert!(h.t.buffers.is_some(), "a leecher assembles pieces");
    let (a, actions) = h.connect_unchoked(1, &Bitfield::full(1));
    let b = h.connect(2);
    assert_eq!(fetch(&mut h, a, actions), vec![0]);
    h.t.handle_verified(h.now, 0, VerifyResult::Ok);
    let actions = h.drain();
    let tail = &actions[actions.len() - 5..];
    assert_eq!(
        tail,
        &[
            Action::PieceVerified { index: 0 },
            Action::Completed,
            send(a, Message::Complete),
            Action::Disconnect {
                peer: a,
                reason: DisconnectReason::BothSeeders
            },
            send(b, Message::Complete),
        ]
    );
    assert!(h.t.is_complete());
    assert!(
        h.t.buffers.is_none(),
        "a seeder keeps no idle piece buffers"
    );
    let actions = h.msg(b, Message::Complete);
    assert_eq!(
        disconnected(&actions, b),
        Some(DisconnectReason::BothSeeders)
    );
}

#[test]
fn a_bad_piece_from_one_peer_bans_it_for_the_ban_duration() {
    let mut h = Harness::leecher(2);
    let (a, actions) = h.connect_unchoked(1, &Bitfield::full(2));
    let pieces = fetch(&mut h, a, actions);
    assert_eq!(pieces.len(), 2);
    h.t.handle_verified(h.now, pieces[0], VerifyResult::HashMismatch);
    let actions = h.drain();
    assert_eq!(
        actions,
        vec![Action::Ban {
            peer: a,
            id: id(1),
            reason: DisconnectReason::BadPiece
        }]
    );
    assert_eq!(h.t.stats().wasted, u64::from(PIECE));
    h.t.handle_verified(h.now, pieces[1], VerifyResult::Ok);
    h.drain();
    h.t.handle_peer_disconnected(h.now, a);
    assert_eq!(h.t.handle_peer_connected(h.now, id(1)), None, "banned");
    assert!(h.t.is_banned(h.now, &id(1)), "drivers must not dial it");
    assert!(!h.t.is_banned(h.now, &id(2)));
    // The deadline of the answered requests is still armed (pruned only
    // at a timeout): one early wake-up, after which the rechoke is next, well
    // before the ban's expiry.
    let early = h.t.poll_timeout().expect("armed");
    assert!(early <= h.now + Duration::from_secs(4), "{early:?}");
    let wake = early - h.now;
    assert!(h.advance(wake).is_empty(), "nothing was due");
    assert_eq!(
        h.t.poll_timeout(),
        Some(h.now - wake + Duration::from_secs(10)),
        "rechoke first"
    );
    h.advance(Duration::from_secs(30) - wake);
    assert!(!h.t.is_banned(h.now, &id(1)), "the ban expired");
    let (a, actions) = h.connect_unchoked(1, &Bitfield::full(2));
    assert_eq!(
        requests(&actions, a).len(),
        4,
        "back after 30 s, and the piece is missing again"
    );
}

#[test]
fn a_shared_failure_strikes_everyone_and_refetches_from_one_peer() {
    let config = TorrentConfig {
        max_requests_per_peer: 2,
        endgame_threshold: 0,
        ..TorrentConfig::default()
    };
    let mut h = Harness::build(1, 0, Bitfield::new(1), config, 4);
    let (a, a_actions) = h.connect_unchoked(1, &Bitfield::full(1));
    let (b, b_actions) = h.connect_unchoked(2, &Bitfield::full(1));
    assert_eq!(
        requests(&b_actions, b).len(),
        2,
        "b steals the half a has not asked for"
    );
    let mut all = h.serve_all(a, a_actions);
    all.extend(h.serve_all(b, b_actions));
    assert_eq!(verifies(&all), vec![0]);
    h.t.handle_verified(h.now, 0, VerifyResult::HashMismatch);
    let actions = h.drain();
    assert_eq!(
        disconnected(&actions, a),
        None,
        "one shared failure bans nobody"
    );
    assert_eq!(requests(&actions, a).len(), 2);
    assert!(
        requests(&actions, b).is_empty(),
        "the retry comes from one peer only"
    );
    let done = h.serve_all(a, actions);
    assert_eq!(verifies(&done), vec![0]);
    h.t.handle_verified(h.now, 0, VerifyResult::HashMismatch);
    let actions = h.drain();
    assert_eq!(disconnected(&actions, a), Some(DisconnectReason::BadPiece));
    assert_eq!(disconnected(&actions, b), None);
    assert_eq!(requests(&actions, b).len(), 2, "b takes over");
}

#[test]
fn a_store_failure_refetches_without_blame() {
    let mut h = Harness::leecher(1);
    let (a, actions) = h.connect_unchoked(1, &Bitfield::full(1));
    assert_eq!(fetch(&mut h, a, actions), vec![0]);
    h.t.handle_verified(h.now, 0, VerifyResult::StoreFailed);
    let actions = h.drain();
    assert_eq!(disconnected(&actions, a), None);
    assert_eq!(requests(&actions, a).len(), 4, "downloaded again");
    assert_eq!(h.t.stats().wasted, 0);
}
