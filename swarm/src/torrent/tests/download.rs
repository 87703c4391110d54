//! Our requests: pipelining, piece assignment, stealing, timeouts, chokes,
//! rejects, end-game.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;

fn no_endgame() -> TorrentConfig {
    TorrentConfig {
        endgame_threshold: 0,
        ..TorrentConfig::default()
    }
}

/// A 16-deep pipeline, so that one peer's first requests span several
/// pieces (the default is 4 blocks, a single piece).
fn deep() -> TorrentConfig {
    TorrentConfig {
        max_requests_per_peer: 16,
        ..TorrentConfig::default()
    }
}

fn pieces_of(ranges: &[BlockRange]) -> BTreeSet<u32> {
    ranges.iter().map(|r| r.index).collect()
}

/// A leecher's bitfield that lacks only the last piece: such a peer is not
/// a seed, so seed sparing does not limit what we ask it for.
fn all_but_last(pieces: u32) -> Bitfield {
    bits(pieces, 0..pieces - 1)
}

#[test]
fn unchoke_fills_the_pipeline_with_whole_pieces() {
    let mut h = Harness::build(32, 0, Bitfield::new(32), deep(), 1);
    let (a, actions) = h.connect_unchoked(1, &all_but_last(32));
    let reqs = requests(&actions, a);
    assert_eq!(reqs.len(), 16, "max_requests_per_peer");
    assert_eq!(
        pieces_of(&reqs).len(),
        4,
        "four whole 4-block pieces, not 16 scattered blocks"
    );
    assert!(
        reqs.iter()
            .all(|r| r.length == BLOCK && r.begin % BLOCK == 0)
    );
    let more = h.deliver(a, reqs[0]);
    assert_eq!(requests(&more, a).len(), 1, "refill one per block received");
}

#[test]
fn a_piece_is_assembled_in_order_and_verified() {
    let mut h = Harness::build(2, 1000, Bitfield::new(2), TorrentConfig::default(), 3);
    h.t.set_stream_position(0);
    let (a, actions) = h.connect_unchoked(1, &Bitfield::full(2));
    let reqs = requests(&actions, a);
    assert_eq!(pieces_of(&reqs), BTreeSet::from([0]), "a seed: one piece");
    let mut verify = None;
    let mut refill = Vec::new();
    for r in reqs.iter().rev() {
        for action in h.deliver(a, *r) {
            if let Action::Verify { index: 0, data } = action {
                verify = Some(data);
            } else {
                refill.push(action);
            }
        }
    }
    let last = requests(&refill, a)
        .into_iter()
        .find(|r| r.index == 1 && r.begin == 3 * BLOCK)
        .expect("present");
    assert_eq!(last.length, BLOCK - 1000, "the blob's last block is short");
    let data = verify.expect("present");
    assert_eq!(data.len(), PIECE as usize);
    for b in 0..4usize {
        let block = &data[b * BLOCK as usize..(b + 1) * BLOCK as usize];
        assert!(block.iter().all(|&x| x == b as u8), "block {b} in place");
    }
    assert_eq!(h.t.stats().downloaded, 0, "counted once verified");
}

#[test]
fn a_fast_peer_steals_unrequested_blocks_only_when_idle() {
    let config = TorrentConfig {
        max_requests_per_peer: 2,
        ..TorrentConfig::default()
    };
    let mut h = Harness::build(2, 0, Bitfield::new(2), config, 5);
    let (a, actions) = h.connect_unchoked(1, &Bitfield::full(2));
    let a_reqs = requests(&actions, a);
    assert_eq!(pieces_of(&a_reqs).len(), 1, "a owns one piece");
    let (b, actions) = h.connect_unchoked(2, &Bitfield::full(2));
    let b_reqs = requests(&actions, b);
    assert_eq!(b_reqs.len(), 2);
    assert!(
        pieces_of(&b_reqs).is_disjoint(&pieces_of(&a_reqs)),
        "b starts the other piece"
    );
    let more = h.deliver(b, b_reqs[0]);
    let more = [more, h.deliver(b, b_reqs[1])].concat();
    let b_more = requests(&more, b);
    assert_eq!(b_more.len(), 2, "b's own piece first");
    assert!(pieces_of(&b_more).is_disjoint(&pieces_of(&a_reqs)));
    let more = [h.deliver(b, b_more[0]), h.deliver(b, b_more[1])].concat();
    let stolen = requests(&more, b);
    assert_eq!(
        pieces_of(&stolen),
        pieces_of(&a_reqs),
        "then a's unrequested blocks"
    );
    assert!(
        stolen.iter().all(|r| !a_reqs.contains(r)),
        "not a's outstanding ones"
    );
}

#[test]
fn timed_out_requests_are_cancelled_and_go_to_another_peer() {
    let mut h = Harness::build(1, 0, Bitfield::new(1), no_endgame(), 1);
    let (slow, actions) = h.connect_unchoked(1, &Bitfield::full(1));
    let slow_reqs = requests(&actions, slow);
    assert_eq!(slow_reqs.len(), 4);
    let (fast, actions) = h.connect_unchoked(2, &Bitfield::full(1));
    assert!(
        requests(&actions, fast).is_empty(),
        "everything is requested, no end-game"
    );
    assert!(h.advance(Duration::from_millis(3999)).is_empty());
    let actions = h.advance(Duration::from_millis(1));
    let cancels: Vec<Message> = slow_reqs.iter().map(|&r| Message::Cancel(r)).collect();
    assert_eq!(sent(&actions, slow), cancels);
    let mut moved = requests(&actions, fast);
    moved.sort();
    let mut expected = slow_reqs.clone();
    expected.sort();
    assert_eq!(moved, expected, "re-requested from the other peer");
    let late = h.deliver(slow, slow_reqs[0]);
    assert!(verifies(&late).is_empty());
    assert_eq!(
        h.t.stats().wasted,
        u64::from(BLOCK),
        "a late block is wasted"
    );
}

#[test]
fn choke_and_reject_return_requests_to_the_pool() {
    // Leechers, not seeds: a seed's reject while unchoking is a refusal
    // (see `a_seed_refusal_keeps_the_piece_from_every_seed_for_a_while`).
    let mut h = Harness::build(2, 0, bits(2, [1]), no_endgame(), 1);
    let (a, actions) = h.connect_unchoked(1, &bits(2, [0]));
    let reqs = requests(&actions, a);
    let (b, actions) = h.connect_unchoked(2, &bits(2, [0]));
    assert!(requests(&actions, b).is_empty());
    let actions = h.msg(a, Message::Reject(reqs[0]));
    assert_eq!(
        requests(&actions, b),
        vec![reqs[0]],
        "rejected block goes to b"
    );
    assert!(
        h.msg(a, Message::Reject(reqs[0])).is_empty(),
        "a second reject is ignored"
    );
    let actions = h.msg(a, Message::Choke);
    assert_eq!(
        requests(&actions, b).len(),
        3,
        "the other three follow on choke"
    );
    assert!(h.t.peer_stats().all(|p| p.key != a || p.requests_out == 0));
}

#[test]
fn disconnect_returns_requests_and_availability() {
    let mut h = Harness::build(2, 0, bits(2, [0]), TorrentConfig::default(), 1);
    let (a, actions) = h.connect_unchoked(1, &Bitfield::full(2));
    let reqs = requests(&actions, a);
    assert_eq!(reqs.len(), 4);
    let b = h.connect(2);
    h.msg(
        b,
        Message::Bitfield(Bytes::copy_from_slice(Bitfield::full(2).as_bytes())),
    );
    h.t.handle_peer_disconnected(h.now, a);
    let actions = h.msg(b, Message::Unchoke);
    assert_eq!(
        requests(&actions, b).len(),
        4,
        "the orphaned piece is resumed by b"
    );
    assert_eq!(h.t.picker.availability(1), 1);
}

#[test]
fn stream_window_goes_first() {
    let mut h = Harness::build(64, 0, bits(64, [0]), deep(), 9);
    h.t.set_stream_position(40);
    let (a, actions) = h.connect_unchoked(1, &bits(64, 1..63));
    let got = pieces_of(&requests(&actions, a));
    assert_eq!(got, (40..44).collect(), "stream_window = 4 pieces from 40");
}

#[test]
fn a_seed_gets_one_piece_at_a_time_and_only_the_stream_position_jumps() {
    let mut h = Harness::build(64, 0, bits(64, [0]), TorrentConfig::default(), 9);
    h.t.set_stream_position(40);
    let (s, actions) = h.connect_unchoked(1, &Bitfield::full(64));
    let reqs = requests(&actions, s);
    assert_eq!(reqs.len(), 4, "one piece's blocks in flight to a seed");
    assert_eq!(pieces_of(&reqs), BTreeSet::from([40]));
    let next = requests(&h.deliver(s, reqs[0]), s);
    assert_eq!(
        pieces_of(&next).len(),
        1,
        "the next piece starts once less than a piece is in flight"
    );
    let mut started = pieces_of(&next);
    let mut pending: Vec<BlockRange> = reqs[1..].iter().copied().chain(next).collect();
    while started.len() < 4 {
        let r = pending.remove(0);
        let more = requests(&h.deliver(s, r), s);
        started.extend(pieces_of(&more));
        pending.extend(more);
    }
    assert_ne!(
        started,
        BTreeSet::from([41, 42, 43, 44]),
        "after the stream position, a seed's pieces go by rarity, not in order"
    );
}

#[test]
fn a_seed_is_spared_what_an_unchoking_leecher_has() {
    let mut h = Harness::leecher(8);
    let (l, actions) = h.connect_unchoked(1, &bits(8, 0..4));
    let from_leecher = pieces_of(&requests(&actions, l));
    assert!(from_leecher.iter().all(|&i| i < 4));
    let (s, actions) = h.connect_unchoked(2, &Bitfield::full(8));
    let seed_reqs = requests(&actions, s);
    let from_seed = pieces_of(&seed_reqs);
    assert!(
        from_seed.iter().all(|&i| i >= 4),
        "the seed is asked only for pieces no leecher offers: {from_seed:?}"
    );
    let actions = h.msg(l, Message::Choke);
    let mut got = BTreeSet::new();
    let mut pending = seed_reqs;
    pending.extend(requests(&actions, s));
    while let Some(r) = pending.pop() {
        got.insert(r.index);
        pending.extend(requests(&h.deliver(s, r), s));
    }
    assert!(
        got.iter().any(|&i| i < 4),
        "once the leecher chokes us, its pieces come from the seed: {got:?}"
    );
}

#[test]
fn endgame_duplicates_blocks_and_cancels_the_loser() {
    // We hold piece 2, so the peers (holding 0 and 1) are not seeds and get
    // full pipelines.
    let mut h = Harness::build(3, 0, bits(3, [2]), deep(), 1);
    let peer = bits(3, [0, 1]);
    let (a, actions) = h.connect_unchoked(1, &peer);
    let a_reqs = requests(&actions, a);
    assert_eq!(a_reqs.len(), 8, "all blocks requested from a");
    let (b, actions) = h.connect_unchoked(2, &peer);
    let b_reqs = requests(&actions, b);
    assert_eq!(
        b_reqs.len(),
        8,
        "end-game: 2 pieces <= threshold, each block once more"
    );
    let (c, actions) = h.connect_unchoked(3, &peer);
    assert!(
        requests(&actions, c).is_empty(),
        "at most two requesters per block"
    );
    let actions = h.deliver(b, a_reqs[0]);
    assert_eq!(sent(&actions, a), vec![Message::Cancel(a_reqs[0])]);
    let before = h.t.stats().wasted;
    h.deliver(a, a_reqs[0]);
    assert_eq!(
        h.t.stats().wasted - before,
        u64::from(BLOCK),
        "the loser's copy is wasted"
    );
    let mut done = Vec::new();
    for r in b_reqs.iter().filter(|&&r| r != a_reqs[0]) {
        done.extend(h.deliver(b, *r));
    }
    let mut indices = verifies(&done);
    indices.sort();
    assert_eq!(indices, vec![0, 1]);
}

/// A small swarm played round-robin, one block per peer per turn, cancels
/// honoured, every piece verified OK: the blob completes, each piece is
/// verified once, and duplicates stay within end-game's bound.
#[test]
fn a_swarm_of_peers_completes_the_blob() {
    let pieces = 96;
    let mut h = Harness::build(
        pieces,
        5000,
        Bitfield::new(pieces),
        TorrentConfig::default(),
        11,
    );
    let mut queues: Vec<(PeerKey, std::collections::VecDeque<BlockRange>)> = Vec::new();
    let mut pending = Vec::new();
    for n in 1..=6u8 {
        let has = if n % 2 == 0 {
            Bitfield::full(pieces)
        } else {
            bits(pieces, (0..pieces).filter(|i| i % u32::from(n) != 0))
        };
        let (key, actions) = h.connect_unchoked(n, &has);
        queues.push((key, Default::default()));
        pending.extend(actions);
    }
    let mut verified = Vec::new();
    let mut completed = 0;
    for _round in 0..10_000 {
        while !pending.is_empty() {
            for action in std::mem::take(&mut pending) {
                match action {
                    Action::Send {
                        peer,
                        message: Message::Request(r),
                    } => {
                        queues
                            .iter_mut()
                            .find(|(k, _)| *k == peer)
                            .expect("known peer")
                            .1
                            .push_back(r);
                    }
                    Action::Send {
                        peer,
                        message: Message::Cancel(r),
                    } => {
                        queues
                            .iter_mut()
                            .find(|(k, _)| *k == peer)
                            .expect("known peer")
                            .1
                            .retain(|&q| q != r);
                    }
                    Action::Verify { index, data } => {
                        assert_eq!(
                            data.len() as u64,
                            h.t.metainfo().piece_len(index).map_or(0, u64::from)
                        );
                        h.t.handle_verified(h.now, index, VerifyResult::Ok);
                        pending.extend(h.drain());
                    }
                    Action::PieceVerified { index } => verified.push(index),
                    Action::Completed => completed += 1,
                    Action::Disconnect {
                        reason: DisconnectReason::BothSeeders,
                        ..
                    } => {
                        assert!(h.t.is_complete(), "seeders dropped only once complete");
                    }
                    other @ (Action::Disconnect { .. }
                    | Action::Ban { .. }
                    | Action::Serve { .. }) => {
                        panic!("unexpected {other:?}")
                    }
                    Action::Send { .. } => {}
                }
            }
        }
        if completed > 0 {
            break;
        }
        for (key, queue) in &mut queues {
            if let Some(r) = queue.pop_front() {
                pending.extend(h.deliver(*key, r));
            }
        }
    }
    assert_eq!(completed, 1);
    verified.sort();
    assert_eq!(
        verified,
        (0..pieces).collect::<Vec<_>>(),
        "each piece verified once"
    );
    let stats = h.t.stats();
    assert!(stats.complete);
    assert!(
        stats.wasted <= 3 * u64::from(PIECE),
        "duplicates bounded by end-game: {stats:?}"
    );
}

#[test]
fn pieces_waiting_for_verification_hold_back_new_requests() {
    let config = TorrentConfig {
        max_verifying_bytes: 2 * u64::from(PIECE),
        ..no_endgame()
    };
    let mut h = Harness::build(32, 0, Bitfield::new(32), config, 7);
    let (a, actions) = h.connect_unchoked(1, &all_but_last(32));
    // Deliver blocks without answering Verify: once two assembled pieces
    // wait (the backlog), no new block is requested; what was in flight
    // (a pipeline of 16 blocks, 4 pieces) still arrives.
    let mut pending = requests(&actions, a);
    let mut waiting = Vec::new();
    while let Some(range) = pending.pop() {
        let actions = h.deliver(a, range);
        waiting.extend(verifies(&actions));
        pending.extend(requests(&actions, a));
    }
    assert!(
        (2..=2 + 4).contains(&waiting.len()),
        "stops near the backlog, not at all 31 pieces: {waiting:?}"
    );
    // Requests resume as soon as fewer than two pieces wait.
    let (last, earlier) = waiting.split_last().expect("present");
    let (first, earlier) = earlier.split_last().expect("present");
    for &index in earlier {
        h.t.handle_verified(h.now, index, VerifyResult::Ok);
        assert!(requests(&h.drain(), a).is_empty(), "two or more still wait");
    }
    h.t.handle_verified(h.now, *first, VerifyResult::Ok);
    assert!(
        !requests(&h.drain(), a).is_empty(),
        "one piece ({last}) waits: requests resume"
    );
}

#[test]
fn past_max_unchokers_interest_goes_only_to_the_peers_that_unchoke_us() {
    let config = TorrentConfig {
        max_unchokers: 2,
        ..TorrentConfig::default()
    };
    let mut h = Harness::build(8, 0, Bitfield::new(8), config, 1);
    let full = Bitfield::full(8);
    let bitfield = || Message::Bitfield(Bytes::copy_from_slice(Bitfield::full(8).as_bytes()));
    let waiting = h.connect(3);
    assert_eq!(
        sent(&h.msg(waiting, bitfield()), waiting),
        vec![Message::Interested]
    );
    let (a, actions) = h.connect_unchoked(1, &full);
    assert!(!requests(&actions, a).is_empty());
    assert!(sent(&actions, waiting).is_empty(), "one place left");
    let (b, actions) = h.connect_unchoked(2, &full);
    assert!(!requests(&actions, b).is_empty());
    assert_eq!(
        sent(&actions, waiting),
        vec![Message::NotInterested],
        "both places taken: its slot is better spent elsewhere"
    );

    let late = h.connect(4);
    assert!(sent(&h.msg(late, bitfield()), late).is_empty());
    let actions = h.msg(late, Message::Unchoke);
    assert!(
        requests(&actions, late).is_empty(),
        "an unchoke past the limit is not used"
    );

    let actions = h.msg(a, Message::Choke);
    assert_eq!(sent(&actions, waiting), vec![Message::Interested]);
    assert!(
        sent(&actions, late).contains(&Message::Interested),
        "it unchokes us: interest returns and a place is free"
    );
    assert!(!requests(&actions, late).is_empty());
}

#[test]
fn a_seed_refusal_keeps_the_piece_from_every_seed_for_a_while() {
    let mut h = Harness::build(2, 0, Bitfield::new(2), no_endgame(), 1);
    let (a, actions) = h.connect_unchoked(1, &Bitfield::full(2));
    let first = requests(&actions, a);
    assert_eq!(first.len(), 4, "one piece from a seed at a time");
    let refused = first[0].index;
    let other = 1 - refused;
    let (b, actions) = h.connect_unchoked(2, &Bitfield::full(2));
    assert!(requests(&actions, b).iter().all(|r| r.index == other));
    let actions = h.msg(a, Message::Reject(first[0]));
    let asked: Vec<u32> = [a, b]
        .iter()
        .flat_map(|&k| requests(&actions, k))
        .map(|r| r.index)
        .collect();
    assert!(
        !asked.contains(&refused),
        "no seed is asked for the refused piece: {asked:?}"
    );
    for r in &first[1..] {
        h.msg(a, Message::Reject(*r));
    }
    let later = h.advance(REFUSAL_TTL);
    let again: Vec<u32> = [a, b]
        .iter()
        .flat_map(|&k| requests(&later, k))
        .map(|r| r.index)
        .collect();
    assert!(again.contains(&refused), "the refusal expired: {again:?}");
}
