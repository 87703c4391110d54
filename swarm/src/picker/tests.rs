//! The picker's choice order and its bucket invariant.

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;

fn bits(len: u32, ones: &[u32]) -> Bitfield {
    let mut bf = Bitfield::new(len);
    for &i in ones {
        bf.set(i);
    }
    bf
}

fn rng() -> SmallRng {
    SmallRng::seed_from_u64(7)
}

fn no_progress(_: u32) -> Fit {
    Fit::Full
}

/// Checks the bucket invariant: every Missing piece is in the bucket of
/// its availability at its slot, and no other piece is in any bucket.
fn check(p: &Picker) {
    let mut seen = 0;
    for (avail, bucket) in p.buckets.iter().enumerate() {
        for (slot, &i) in bucket.iter().enumerate() {
            assert_eq!(p.state[i as usize], PieceState::Missing);
            assert_eq!(p.availability[i as usize] as usize, avail);
            assert_eq!(p.slot[i as usize] as usize, slot);
            seen += 1;
        }
    }
    assert_eq!(seen, p.missing);
    for &i in &p.in_progress {
        assert_eq!(p.state[i as usize], PieceState::InProgress);
    }
}

#[test]
fn rarest_first_once_we_hold_a_piece() {
    let mut p = Picker::new(&bits(6, &[0]), 0);
    p.add_bitfield(&bits(6, &[1, 2, 3, 4, 5]));
    p.add_bitfield(&bits(6, &[1, 2, 4, 5]));
    p.add_bitfield(&bits(6, &[1, 2, 5]));
    check(&p);
    let seeder = Bitfield::full(6);
    let got = p.pick(&seeder, &mut rng(), no_progress);
    assert_eq!(
        got,
        Some(Pick {
            index: 3,
            reason: PickReason::Rarest
        })
    );
    p.start(3).expect("valid transition");
    let got = p
        .pick(&seeder, &mut rng(), no_progress)
        .expect("a piece to pick");
    assert_eq!(got.index, 4, "next rarest once 3 is in progress");
    check(&p);
}

#[test]
fn rarest_ties_are_broken_at_random() {
    let mut p = Picker::new(&bits(64, &[0]), 0);
    p.add_bitfield(&Bitfield::full(64));
    let mut rng = rng();
    let picks: std::collections::BTreeSet<u32> = (0..50)
        .filter_map(|_| p.pick(&Bitfield::full(64), &mut rng, no_progress))
        .map(|pick| pick.index)
        .collect();
    assert!(picks.len() > 10, "ties spread over many pieces: {picks:?}");
    assert!(!picks.contains(&0), "never a piece we have");
}

#[test]
fn random_first_piece_while_we_hold_nothing() {
    let mut p = Picker::new(&Bitfield::new(100), 0);
    p.add_bitfield(&Bitfield::full(100));
    p.add_availability(99);
    let mut rng = rng();
    let picks: Vec<Pick> = (0..20)
        .filter_map(|_| p.pick(&Bitfield::full(100), &mut rng, no_progress))
        .collect();
    assert!(picks.iter().all(|p| p.reason == PickReason::RandomFirst));
    let distinct: std::collections::BTreeSet<u32> = picks.iter().map(|p| p.index).collect();
    assert!(distinct.len() > 5, "random, not rarest: {distinct:?}");
}

#[test]
fn only_pieces_the_peer_has() {
    let mut p = Picker::new(&bits(10, &[0]), 0);
    p.add_bitfield(&bits(10, &[0, 7]));
    let got = p.pick(&bits(10, &[0, 7]), &mut rng(), no_progress);
    assert_eq!(got.map(|g| g.index), Some(7));
    assert_eq!(p.pick(&bits(10, &[0]), &mut rng(), no_progress), None);
}

#[test]
fn stream_window_comes_first_then_resume_then_new_then_steal() {
    let mut p = Picker::new(&bits(20, &[0]), 2);
    p.add_bitfield(&Bitfield::full(20));
    p.add_bitfield(&bits(20, &[10, 11, 12]));
    p.start(5).expect("valid transition");
    p.start(6).expect("valid transition");
    let peer = Bitfield::full(20);
    p.set_stream_position(Some(12));
    let got = p
        .pick(&peer, &mut rng(), |_| Fit::Mine)
        .expect("a piece to pick");
    assert_eq!((got.index, got.reason), (12, PickReason::Stream));
    p.set_stream_position(None);
    let got = p.pick(&peer, &mut rng(), |i| {
        if i == 6 { Fit::Mine } else { Fit::Others }
    });
    assert_eq!(
        got.map(|g| (g.index, g.reason)),
        Some((6, PickReason::Resume))
    );
    let got = p
        .pick(&peer, &mut rng(), |_| Fit::Others)
        .expect("a piece to pick");
    assert_eq!(got.reason, PickReason::Rarest, "new pieces before stealing");
    let only_in_progress = bits(20, &[0, 5, 6]);
    let got = p.pick(&only_in_progress, &mut rng(), |i| {
        if i == 6 { Fit::Others } else { Fit::Full }
    });
    assert_eq!(
        got.map(|g| (g.index, g.reason)),
        Some((6, PickReason::Steal))
    );
    assert_eq!(p.pick(&only_in_progress, &mut rng(), no_progress), None);
}

#[test]
fn stream_window_takes_in_progress_pieces_of_others_but_not_full_ones() {
    let mut p = Picker::new(&bits(8, &[0]), 3);
    p.add_bitfield(&Bitfield::full(8));
    p.start(2).expect("valid transition");
    p.start(3).expect("valid transition");
    p.set_stream_position(Some(2));
    let fit = |i| if i == 2 { Fit::Full } else { Fit::Others };
    let got = p
        .pick(&Bitfield::full(8), &mut rng(), fit)
        .expect("a piece to pick");
    assert_eq!((got.index, got.reason), (3, PickReason::Stream));
    p.set_stream_position(Some(100));
    assert_eq!(p.stream_window(), 8..8, "a window past the end is empty");
}

#[test]
fn transitions_follow_the_state_diagram() {
    let mut p = Picker::new(&Bitfield::new(3), 0);
    p.add_bitfield(&Bitfield::full(3));
    assert!(p.assembled(0).is_err(), "cannot skip InProgress");
    p.start(0).expect("valid transition");
    assert!(p.start(0).is_err());
    p.assembled(0).expect("valid transition");
    p.failed(0).expect("valid transition");
    assert_eq!(p.state(0), Some(PieceState::Missing));
    p.start(0).expect("valid transition");
    p.abandon(0).expect("valid transition");
    p.start(0).expect("valid transition");
    p.assembled(0).expect("valid transition");
    p.verified(0).expect("valid transition");
    assert_eq!(p.state(0), Some(PieceState::Have));
    assert_eq!(
        (p.have_count(), p.remaining(), p.missing_count()),
        (1, 2, 2)
    );
    let err = p.start(9).expect_err("out of range");
    assert_eq!(err.from, None);
    check(&p);
}

#[test]
fn availability_moves_missing_pieces_between_buckets() {
    let mut p = Picker::new(&bits(5, &[4]), 0);
    let a = bits(5, &[0, 1, 2, 4]);
    p.add_bitfield(&a);
    p.add_availability(1);
    p.start(2).expect("valid transition");
    p.add_availability(2);
    check(&p);
    assert_eq!(p.availability(1), 2);
    p.remove_bitfield(&a);
    assert!(!p.remove_availability(3), "never below zero");
    assert!(!p.add_availability(5), "out of range ignored");
    check(&p);
    assert_eq!(
        (p.availability(0), p.availability(1), p.availability(2)),
        (0, 1, 1)
    );
}

#[test]
fn many_pieces_stay_consistent_under_churn() {
    let n = 2048;
    let mut p = Picker::new(&Bitfield::new(n), 4);
    let mut rng = rng();
    let mut peers = Vec::new();
    for k in 0..50u32 {
        let bf = bits(n, &(0..n).filter(|i| (i + k) % 3 != 0).collect::<Vec<_>>());
        p.add_bitfield(&bf);
        peers.push(bf);
    }
    for round in 0..300 {
        let peer = &peers[round % peers.len()];
        if let Some(pick) = p.pick(peer, &mut rng, no_progress) {
            p.start(pick.index).expect("valid transition");
            p.assembled(pick.index).expect("valid transition");
            if round % 7 == 0 {
                p.failed(pick.index).expect("valid transition");
            } else {
                p.verified(pick.index).expect("valid transition");
            }
        }
        if round % 50 == 0 {
            let gone = peers.swap_remove(0);
            p.remove_bitfield(&gone);
        }
    }
    check(&p);
    assert!(p.have_count() > 200);
}

/// The two ways of finding the rarest piece a peer has agree on the piece
/// and on the random draws, whatever the peer holds.
#[test]
fn rarest_by_the_peers_pieces_matches_the_bucket_scan() {
    use rand::Rng;

    let mut world = SmallRng::seed_from_u64(21);
    for round in 0..300 {
        let len = world.random_range(1..300);
        let mut p = Picker::new(&Bitfield::new(len), 0);
        for _ in 0..world.random_range(0..8) {
            let mut peer = Bitfield::new(len);
            let density = world.random_range(1..=10);
            (0..len)
                .filter(|_| world.random_ratio(density, 10))
                .for_each(|i| {
                    peer.set(i);
                });
            p.add_bitfield(&peer);
        }
        for i in 0..len {
            match world.random_range(0..6) {
                0 => {
                    let _ = p.start(i);
                }
                1 => {
                    let _ = p.start(i).and_then(|()| p.assembled(i));
                    let _ = p.verified(i);
                }
                _ => {}
            }
        }
        check(&p);
        let mut peer = Bitfield::new(len);
        let held = world.random_range(0..=len);
        for _ in 0..held {
            peer.set(world.random_range(0..len));
        }
        let (mut a, mut b) = (
            SmallRng::seed_from_u64(round),
            SmallRng::seed_from_u64(round),
        );
        assert_eq!(
            p.rarest_missing_scan(&peer, &mut a),
            p.rarest_missing_held(&peer, &mut b),
            "round {round}"
        );
        assert_eq!(a.random::<u64>(), b.random::<u64>(), "round {round}: draws");
    }
}
