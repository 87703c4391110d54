//! Which peers an announcer is handed: the tracker's whole policy, as one
//! pure function.
//!
//! It performs no I/O, reads no clock (the store has already dropped expired
//! entries) and draws randomness only from the RNG it is given, so the swarm
//! simulator runs exactly this code for thousands of agents under a seed. It
//! is `O(n)` in the blob's live entries: ranking uses a linear-time selection
//! of the best `K`, and only those `K` are sorted.
//!
//! The rules, in order:
//! 1. The requester is never handed itself.
//! 2. While fewer than [`Policy::origins_until_complete`] complete non-origin
//!    peers are known, the blob's origins come first: announced origins and
//!    the ring's owners not already announced. Once enough peers seed, origins
//!    are left out, so that they serve only what the swarm cannot.
//! 3. Other peers are ranked by progress tier, then by zone, then at random.
//!    The tier is complete, or a quarter of the blob held (3/4+, 1/2+, 1/4+,
//!    some, none). Zone ranks *within* a tier rather than above progress: a
//!    same-zone peer with nothing would otherwise displace a remote seeder,
//!    while exact piece counts as the first key would almost never tie and
//!    zone would never matter. Quarters keep both rules meaningful.
//! 4. Candidates of equal rank are shuffled, so one peer is not handed to
//!    everyone.
//! 5. A complete requester gets at most [`Policy::max_peers_for_complete`]
//!    peers and only incomplete ones: a seeder has nothing to fetch, it is
//!    handed a few peers it can serve.

use std::net::SocketAddr;

use rand::Rng;
use shoal_swarm::PeerId;

use crate::peer::PeerRecord;

/// The policy's knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Most peers handed to an incomplete requester (Kraken's K = 50).
    pub max_peers: usize,
    /// Most peers handed to a complete requester.
    pub max_peers_for_complete: usize,
    /// Origins are handed out while fewer complete non-origin peers than
    /// this are known.
    pub origins_until_complete: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_peers: 50,
            max_peers_for_complete: 5,
            origins_until_complete: 3,
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// Its id, to leave it out of its own handout.
    pub id: PeerId,
    /// Its zone; empty matches nobody.
    pub zone: &'a str,
    /// Whether it already holds the whole blob.
    pub complete: bool,
    /// The blob's piece count, which sets the progress tiers (0 if unknown).
    pub total_pieces: u32,
}

/// One peer handed out, as an index into the inputs of [`select`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// `candidates[i]`.
    Peer(usize),
    /// `ring_origins[i]`: an owning origin known from the ring only.
    Origin(usize),
}

/// Chooses the peers handed to `requester`, best first.
///
/// `candidates` are the blob's live entries (the requester's own may be among
/// them); `ring_origins` are the swarm addresses of the blob's owning
/// origins. An owner that also announced itself appears once, as the
/// announced entry.
pub fn select<R: Rng + ?Sized>(
    requester: &Requester<'_>,
    candidates: &[PeerRecord],
    ring_origins: &[SocketAddr],
    policy: &Policy,
    rng: &mut R,
) -> Vec<Pick> {
    let limit = if requester.complete {
        policy.max_peers_for_complete
    } else {
        policy.max_peers
    };
    let others = || {
        candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.id != requester.id)
    };
    let complete_peers = others().filter(|(_, c)| c.complete && !c.origin).count();
    let mut picks = Vec::with_capacity(limit.min(candidates.len() + ring_origins.len()));

    if !requester.complete && complete_peers < policy.origins_until_complete {
        picks.extend(
            others()
                .filter(|(_, c)| c.origin)
                .map(|(i, _)| Pick::Peer(i)),
        );
        let announced =
            |addr: &SocketAddr| candidates.iter().any(|c| c.origin && c.addr() == *addr);
        picks.extend(
            ring_origins
                .iter()
                .enumerate()
                .filter(|(_, addr)| !announced(addr))
                .map(|(i, _)| Pick::Origin(i)),
        );
        shuffle(&mut picks, rng);
        picks.truncate(limit);
    }

    let room = limit - picks.len();
    if room == 0 {
        return picks;
    }
    let mut ranked: Vec<(u64, usize)> = others()
        .filter(|(_, c)| !(c.origin || requester.complete && c.complete))
        .map(|(i, c)| (rank(requester, c, rng), i))
        .collect();
    if ranked.len() > room {
        ranked.select_nth_unstable_by(room - 1, |a, b| b.0.cmp(&a.0));
        ranked.truncate(room);
    }
    ranked.sort_unstable_by_key(|&(key, _)| std::cmp::Reverse(key));
    picks.extend(ranked.into_iter().map(|(_, i)| Pick::Peer(i)));
    picks
}

/// Higher is better: tier, then same zone, then a random tie-breaker.
fn rank<R: Rng + ?Sized>(requester: &Requester<'_>, c: &PeerRecord, rng: &mut R) -> u64 {
    let same_zone = !requester.zone.is_empty() && *c.zone == *requester.zone;
    (u64::from(tier(c, requester.total_pieces)) << 33)
        | (u64::from(same_zone) << 32)
        | u64::from(rng.random::<u32>())
}

/// 5 complete, 4..=1 the quarter of the blob held, 0 nothing held.
fn tier(c: &PeerRecord, total_pieces: u32) -> u32 {
    if c.complete || (total_pieces > 0 && c.pieces >= total_pieces) {
        5
    } else if c.pieces == 0 {
        0
    } else if total_pieces == 0 {
        1
    } else {
        let quarter = u64::from(c.pieces) * 4 / u64::from(total_pieces);
        1 + quarter as u32
    }
}

/// Fisher-Yates with the injected RNG.
fn shuffle<T, R: Rng + ?Sized>(items: &mut [T], rng: &mut R) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::net::{IpAddr, Ipv4Addr};

    fn peer(n: u32, pieces: u32, zone: &str) -> PeerRecord {
        let mut id = [0u8; 20];
        id[..4].copy_from_slice(&n.to_be_bytes());
        PeerRecord {
            id: PeerId::from_array(id),
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8)),
            port: 7000,
            zone: zone.into(),
            pieces,
            complete: pieces == 100,
            origin: false,
        }
    }

    fn origin(n: u32) -> PeerRecord {
        PeerRecord {
            origin: true,
            ..peer(n, 100, "")
        }
    }

    fn requester(id: &PeerRecord, complete: bool) -> Requester<'_> {
        Requester {
            id: id.id,
            zone: &id.zone,
            complete,
            total_pieces: 100,
        }
    }

    fn run(req: &Requester<'_>, cands: &[PeerRecord], ring: &[SocketAddr], seed: u64) -> Vec<Pick> {
        select(
            req,
            cands,
            ring,
            &Policy::default(),
            &mut SmallRng::seed_from_u64(seed),
        )
    }

    fn peers(picks: &[Pick]) -> Vec<usize> {
        picks
            .iter()
            .filter_map(|p| match p {
                Pick::Peer(i) => Some(*i),
                Pick::Origin(_) => None,
            })
            .collect()
    }

    #[test]
    fn never_hands_out_the_requester() {
        let cands: Vec<_> = (0..10).map(|n| peer(n, n * 10, "a")).collect();
        for seed in 0..20 {
            let picks = run(&requester(&cands[3], false), &cands, &[], seed);
            assert_eq!(picks.len(), 9);
            assert!(!picks.contains(&Pick::Peer(3)));
        }
    }

    #[test]
    fn ranks_by_progress_tier_then_zone() {
        let cands = vec![
            peer(0, 0, "a"),   // requester
            peer(1, 10, "a"),  // tier 1, same zone
            peer(2, 10, "b"),  // tier 1
            peer(3, 60, "b"),  // tier 3
            peer(4, 100, "b"), // complete
            peer(5, 0, "a"),   // tier 0
            peer(6, 55, "a"),  // tier 3, same zone
        ];
        for seed in 0..20 {
            let picks = peers(&run(&requester(&cands[0], false), &cands, &[], seed));
            assert_eq!(picks, [4, 6, 3, 1, 2, 5]);
        }
    }

    #[test]
    fn origins_come_first_until_enough_peers_seed() {
        let ring = [SocketAddr::from(([10, 9, 9, 1], 7000)), origin(90).addr()];
        let mut cands = vec![
            peer(0, 0, ""),
            origin(90),
            peer(1, 100, ""),
            peer(2, 100, ""),
        ];
        let picks = run(&requester(&cands[0], false), &cands, &ring, 1);
        // Announced origin 90 is also ring owner 1: handed once, as announced.
        assert_eq!(picks.len(), 4);
        assert!(picks[..2].contains(&Pick::Peer(1)) && picks[..2].contains(&Pick::Origin(0)));
        assert!(!picks.contains(&Pick::Origin(1)));

        cands.push(peer(3, 100, ""));
        let picks = run(&requester(&cands[0], false), &cands, &ring, 1);
        assert_eq!(peers(&picks).len(), picks.len(), "{picks:?}");
        assert!(!picks.contains(&Pick::Peer(1)));
        assert_eq!(picks.len(), 3);
    }

    #[test]
    fn complete_requester_gets_a_few_incomplete_peers() {
        let mut cands: Vec<_> = (0..40).map(|n| peer(n, n % 3 * 50, "")).collect();
        cands.push(origin(99));
        let me = peer(1000, 100, "");
        let ring = [SocketAddr::from(([10, 9, 9, 1], 7000))];
        let picks = run(&requester(&me, true), &cands, &ring, 7);
        assert_eq!(picks.len(), 5);
        for i in peers(&picks) {
            assert!(!cands[i].complete && !cands[i].origin);
        }
        assert_eq!(peers(&picks).len(), 5);
    }

    /// 1000 requesters each get 50 of 500 equal peers: every peer should be
    /// handed about 100 times, and none more than twice that.
    #[test]
    fn equal_candidates_are_spread() {
        let cands: Vec<_> = (0..500).map(|n| peer(n, 50, "z")).collect();
        let me = peer(9999, 0, "z");
        let mut counts = vec![0u32; cands.len()];
        let mut rng = SmallRng::seed_from_u64(42);
        for _ in 0..1000 {
            let picks = select(
                &requester(&me, false),
                &cands,
                &[],
                &Policy::default(),
                &mut rng,
            );
            assert_eq!(picks.len(), 50);
            for i in peers(&picks) {
                counts[i] += 1;
            }
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 50 && *max < 200, "min {min} max {max}");
    }

    #[test]
    fn same_seed_same_handout_and_thousands_of_peers_are_cut_to_k() {
        let cands: Vec<_> = (0..5000).map(|n| peer(n, n % 100 + 1, "")).collect();
        let me = peer(9999, 0, "");
        let a = run(&requester(&me, false), &cands, &[], 3);
        assert_eq!(a, run(&requester(&me, false), &cands, &[], 3));
        assert_eq!(a.len(), 50);
        let tiers: Vec<u32> = peers(&a).iter().map(|&i| tier(&cands[i], 100)).collect();
        assert!(tiers.iter().all(|&t| t == 5), "{tiers:?}");
    }
}
