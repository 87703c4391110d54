//! Their requests and our choking.

use std::time::Duration;

use super::*;

fn block(index: u32, n: u32) -> BlockRange {
    BlockRange {
        index,
        begin: n * BLOCK,
        length: BLOCK,
    }
}

/// A seeder with one interested, unchoked peer.
fn serving() -> (Harness, PeerKey) {
    let mut h = Harness::seeder(4);
    let a = h.connect(1);
    let actions = h.msg(a, Message::Interested);
    assert_eq!(
        actions,
        vec![send(a, Message::Unchoke)],
        "a free slot is filled at once"
    );
    (h, a)
}

#[test]
fn an_unchoked_request_is_served_and_accounted() {
    let (mut h, a) = serving();
    let actions = h.msg(a, Message::Request(block(2, 1)));
    assert_eq!(
        actions,
        vec![Action::Serve {
            peer: a,
            block: block(2, 1)
        }]
    );
    assert_eq!(h.t.stats().uploaded, u64::from(BLOCK));
    assert!(
        h.msg(a, Message::Cancel(block(2, 1))).is_empty(),
        "cancel after Serve: nothing to do"
    );
    let stats: Vec<PeerStats> = h.t.peer_stats().collect();
    assert_eq!(
        (stats[0].uploaded, stats[0].requests_in),
        (u64::from(BLOCK), 1)
    );
    h.t.handle_served(h.now, a, block(2, 1));
    assert_eq!(h.t.peer_stats().next().expect("present").requests_in, 0);
}

#[test]
fn a_request_while_choked_is_rejected() {
    let mut h = Harness::seeder(4);
    let a = h.connect(1);
    let actions = h.msg(a, Message::Request(block(0, 0)));
    assert_eq!(actions, vec![send(a, Message::Reject(block(0, 0)))]);
    assert_eq!(h.t.stats().uploaded, 0);
}

#[test]
fn a_request_for_a_piece_we_lack_is_a_violation() {
    let mut h = Harness::build(4, 0, bits(4, [0]), TorrentConfig::default(), 1);
    let a = h.connect(1);
    h.msg(a, Message::Interested);
    let actions = h.msg(a, Message::Request(block(3, 0)));
    let expected = DisconnectReason::ProtocolViolation(Violation::RequestNotHeld(3));
    assert_eq!(
        actions,
        vec![Action::Disconnect {
            peer: a,
            reason: expected
        }]
    );
    assert!(
        h.msg(a, Message::Request(block(0, 0))).is_empty(),
        "closing peers are ignored"
    );
}

#[test]
fn a_request_outside_the_piece_is_a_violation() {
    let (mut h, a) = serving();
    let bad = BlockRange {
        index: 1,
        begin: PIECE - 10,
        length: 20,
    };
    let actions = h.msg(a, Message::Request(bad));
    let expected = DisconnectReason::ProtocolViolation(Violation::InvalidBlock(1));
    assert_eq!(disconnected(&actions, a), Some(expected));
}

#[test]
fn more_than_max_inbound_requests_in_flight_is_a_flood() {
    let (mut h, a) = serving();
    for n in 0..64 {
        let actions = h.msg(a, Message::Request(block(n % 4, n / 16 % 4)));
        assert_eq!(actions.len(), 1, "request {n} served");
    }
    h.t.handle_served(h.now, a, block(0, 0));
    assert_eq!(
        h.msg(a, Message::Request(block(0, 0))).len(),
        1,
        "a slot was freed"
    );
    let actions = h.msg(a, Message::Request(block(0, 1)));
    assert_eq!(
        actions,
        vec![Action::Disconnect {
            peer: a,
            reason: DisconnectReason::RequestFlood(64)
        }]
    );
}

#[test]
fn not_interested_frees_the_slot_for_another_peer() {
    let config = TorrentConfig {
        choker: crate::choker::ChokerConfig {
            upload_slots: 1,
            ..Default::default()
        },
        ..TorrentConfig::default()
    };
    let mut h = Harness::build(4, 0, Bitfield::full(4), config, 1);
    let a = h.connect(1);
    let b = h.connect(2);
    let c = h.connect(3);
    h.msg(a, Message::Interested);
    let actions = [h.msg(b, Message::Interested), h.msg(c, Message::Interested)].concat();
    assert_eq!(
        actions.len(),
        1,
        "one optimistic unchoke besides a's slot: {actions:?}"
    );
    let actions = h.msg(a, Message::NotInterested);
    assert!(sent(&actions, a).contains(&Message::Choke));
    let unchoked = h.t.peer_stats().filter(|p| !p.am_choking).count();
    assert_eq!(unchoked, 2, "one regular slot and the optimistic one");
    let later = h.advance(Duration::from_secs(31));
    assert!(later.iter().all(|a| matches!(a, Action::Send { .. })));
}

/// While every slot is held, inputs do not rechoke (the choker's calling
/// order): a newcomer waits for the timer, and so does the one decision an
/// early rechoke used to take, dropping a holder that started snubbing us.
#[test]
fn with_every_slot_held_only_the_timer_rechokes() {
    let config = TorrentConfig {
        choker: crate::choker::ChokerConfig {
            upload_slots: 1,
            ..Default::default()
        },
        request_timeout: Duration::from_secs(1_000),
        ..TorrentConfig::default()
    };
    let mut h = Harness::build(4, 0, bits(4, [0]), config, 1);
    // `a` unchokes us and never answers our requests: it will snub us.
    let (a, actions) = h.connect_unchoked(1, &bits(4, [1, 2, 3]));
    assert!(!requests(&actions, a).is_empty());
    assert_eq!(
        h.msg(a, Message::Interested),
        vec![send(a, Message::Unchoke)]
    );
    let b = h.connect(2);
    assert_eq!(
        h.msg(b, Message::Interested),
        vec![send(b, Message::Unchoke)],
        "the optimistic slot"
    );

    // Past the snub timeout, with no timer handled yet (a late driver).
    h.now += Duration::from_secs(65);
    let c = h.connect(3);
    assert!(
        h.msg(c, Message::Interested).is_empty(),
        "slots held: no rechoke, so `a` keeps its slot for now"
    );
    assert!(!h.t.peer_stats().any(|p| p.key == c && !p.am_choking));

    let actions = h.advance(Duration::ZERO);
    assert!(
        sent(&actions, a).contains(&Message::Choke),
        "the full rechoke drops the snubbing holder: {actions:?}"
    );
    let unchoked = h.t.peer_stats().filter(|p| !p.am_choking).count();
    assert_eq!(unchoked, 2, "its slot went to another peer");
}

#[test]
fn a_spreading_seed_serves_each_piece_once_before_any_twice() {
    let config = TorrentConfig {
        spread_first: true,
        ..TorrentConfig::default()
    };
    let mut h = Harness::build(2, 0, Bitfield::full(2), config, 1);
    let a = h.connect(1);
    let b = h.connect(2);
    h.msg(a, Message::Interested);
    h.msg(b, Message::Interested);
    let serve = |peer, block| vec![Action::Serve { peer, block }];
    let reject = |peer, block| vec![send(peer, Message::Reject(block))];
    assert_eq!(
        h.msg(a, Message::Request(block(0, 0))),
        serve(a, block(0, 0))
    );
    assert_eq!(
        h.msg(a, Message::Request(block(0, 1))),
        serve(a, block(0, 1)),
        "the first holder gets the rest of the piece"
    );
    assert_eq!(
        h.msg(b, Message::Request(block(0, 0))),
        reject(b, block(0, 0)),
        "a went first"
    );
    assert_eq!(h.t.stats().uploaded, 2 * u64::from(BLOCK));
    h.t.handle_peer_disconnected(h.now, a);
    h.drain();
    assert_eq!(
        h.msg(b, Message::Request(block(0, 0))),
        serve(b, block(0, 0)),
        "a left: the piece is new again"
    );
    let c = h.connect(3);
    h.msg(c, Message::Interested);
    assert_eq!(
        h.msg(c, Message::Request(block(0, 2))),
        reject(c, block(0, 2))
    );
    assert_eq!(
        h.msg(c, Message::Request(block(1, 0))),
        serve(c, block(1, 0))
    );
    assert_eq!(
        h.msg(c, Message::Request(block(0, 2))),
        serve(c, block(0, 2)),
        "every piece has gone out once: anything is served"
    );
}
