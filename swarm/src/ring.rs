//! The origin ring: which origins own a blob.
//!
//! Rendezvous (highest-random-weight) hashing: every member gets a weight for
//! every digest and the digest belongs to the `R` heaviest. Unlike a hash ring
//! with virtual nodes it needs no tuning to spread evenly, and adding a member
//! moves only the keys the newcomer now wins (about `R / n` of them), which
//! keeps origin caches warm across scale-ups. The cost is `O(n)` hashes per
//! lookup, negligible for the handful of origins a cluster runs.
//!
//! The tracker (to ask an owner for metainfo and hand owners out as seeders)
//! and the origin (to know what it owns) must agree on every assignment, in
//! every process and every version, so the weight function is fixed here
//! rather than left to `std`'s randomly seeded hasher: a member's seed is the
//! first 8 bytes of SHA-256 of its name, and the weight is the MurmurHash3
//! 64-bit finalizer of that seed XOR the digest's first 8 bytes. Digests are
//! SHA-256 outputs, so their bytes are already uniform; the finalizer only has
//! to decorrelate members, which its full avalanche does.

mod addr;

use std::collections::HashSet;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::digest::Digest;

pub use addr::{HostPort, HostPortError, PeerAddr};

/// The ring as it stands now. Discovery (the origin Service's endpoints, or
/// DNS lookups of the configured names) sends a new ring when members or
/// their addresses change; readers take `borrow().clone()` per request and
/// never hold the borrow across an await.
pub type RingWatch = watch::Receiver<Arc<Ring>>;

/// A [`RingWatch`] that never changes: the static configuration, or a test.
pub fn fixed(ring: Ring) -> RingWatch {
    watch::channel(Arc::new(ring)).1
}

/// Default number of origins that own each blob: one can fail or restart
/// without sending every agent to the upstream registry.
pub const DEFAULT_REPLICATION: usize = 2;

/// One origin as the ring knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Stable identity, e.g. the pod name `shoal-origin-0`. Assignments
    /// depend on it alone, so addresses can change without moving blobs.
    pub name: String,
    /// Base URL of the origin's HTTP API, e.g. `http://10.0.0.7:8080`.
    pub http: String,
    /// The origin's swarm (peer protocol) address, `host:port`, and the
    /// socket address it resolves to once known.
    pub peer: PeerAddr,
}

/// Why a ring could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// Two members share a name, so they would share every assignment.
    #[error("duplicate ring member name {0:?}")]
    DuplicateName(String),
    /// A replication factor of zero would leave every blob without an owner.
    #[error("replication factor must be at least 1")]
    ZeroReplication,
}

/// A set of origins and the replication factor. A new membership is a new
/// ring (see [`RingWatch`]). Equal rings have the same members in the same
/// order, so a publisher can skip sending a ring that did not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    members: Vec<(u64, Member)>,
    replication: usize,
}

impl Ring {
    /// Builds a ring of `members`, each blob owned by `replication` of them
    /// (all of them when there are fewer). Member order does not matter.
    pub fn new(members: Vec<Member>, replication: usize) -> Result<Self, RingError> {
        if replication == 0 {
            return Err(RingError::ZeroReplication);
        }
        let mut names = HashSet::new();
        for member in &members {
            if !names.insert(member.name.as_str()) {
                return Err(RingError::DuplicateName(member.name.clone()));
            }
        }
        let members = members
            .into_iter()
            .map(|member| (seed(&member.name), member))
            .collect();
        Ok(Ring {
            members,
            replication,
        })
    }

    /// The same ring with each member's peer address replaced by
    /// `peer(member)`, as DNS lookups fill in addresses. Names, and so
    /// every assignment, stay as they are.
    #[must_use]
    pub fn map_peers(&self, mut peer: impl FnMut(&Member) -> PeerAddr) -> Ring {
        let members = self
            .members
            .iter()
            .map(|(seed, member)| {
                let peer = peer(member);
                (
                    *seed,
                    Member {
                        peer,
                        ..member.clone()
                    },
                )
            })
            .collect();
        Ring {
            members,
            replication: self.replication,
        }
    }

    /// The members, in the order given.
    pub fn members(&self) -> impl ExactSizeIterator<Item = &Member> {
        self.members.iter().map(|(_, member)| member)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when no origin is configured.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// How many members own each blob.
    pub fn replication(&self) -> usize {
        self.replication
    }

    /// Every member, most preferred first for `digest`: the first
    /// [`Ring::replication`] are its owners, the rest are fallbacks in the
    /// order to try them when every owner fails.
    pub fn preference(&self, digest: &Digest) -> impl ExactSizeIterator<Item = &Member> + use<'_> {
        let key = key(digest);
        let mut ranked: Vec<(u64, &Member)> = self
            .members
            .iter()
            .map(|(seed, member)| (weight(*seed, key), member))
            .collect();
        // Ties are astronomically rare; breaking them by name keeps the order
        // total and identical everywhere.
        ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
        ranked.into_iter().map(|(_, member)| member)
    }

    /// The members that own `digest`, most preferred first.
    pub fn owners(&self, digest: &Digest) -> impl Iterator<Item = &Member> + use<'_> {
        self.preference(digest).take(self.replication)
    }

    /// Whether the member called `name` owns `digest`, as an origin asks
    /// before fetching a blob for itself.
    pub fn is_owner(&self, name: &str, digest: &Digest) -> bool {
        self.owners(digest).any(|member| member.name == name)
    }
}

/// A member's fixed per-name seed.
fn seed(name: &str) -> u64 {
    let hash = Sha256::digest(name.as_bytes());
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(prefix)
}

/// The part of a digest that enters the weight.
fn key(digest: &Digest) -> u64 {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_le_bytes(prefix)
}

/// MurmurHash3's 64-bit finalizer over the combined seed and key.
fn weight(seed: u64, key: u64) -> u64 {
    let mut h = seed ^ key;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGESTS: u32 = 100_000;

    fn member(i: usize) -> Member {
        Member {
            name: format!("origin-{i}"),
            http: format!("http://127.0.0.1:{}", 8000 + i),
            peer: std::net::SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16)).into(),
        }
    }

    fn ring(n: usize) -> Ring {
        Ring::new((0..n).map(member).collect(), DEFAULT_REPLICATION).unwrap()
    }

    fn digest(i: u32) -> Digest {
        Digest::of(&i.to_le_bytes())
    }

    fn owner_names(ring: &Ring, d: &Digest) -> Vec<String> {
        ring.owners(d).map(|m| m.name.clone()).collect()
    }

    #[test]
    fn assignment_is_pinned_and_independent_of_member_order() {
        // Pinned values: a change here means every deployed tracker and origin
        // would disagree during a rolling upgrade.
        let d = Digest::of(b"shoal");
        assert_eq!(owner_names(&ring(5), &d), ["origin-2", "origin-1"]);
        let reversed = Ring::new((0..5).rev().map(member).collect(), 2).unwrap();
        for i in 0..1000 {
            assert_eq!(
                owner_names(&ring(5), &digest(i)),
                owner_names(&reversed, &digest(i))
            );
        }
    }

    #[test]
    fn preference_lists_every_member_once_owners_first() {
        let r = ring(4);
        let d = digest(7);
        let all: Vec<_> = r.preference(&d).map(|m| m.name.clone()).collect();
        assert_eq!(all.len(), 4);
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 4);
        assert_eq!(all[..2], owner_names(&r, &d)[..]);
        assert!(r.is_owner(&all[0], &d) && r.is_owner(&all[1], &d));
        assert!(!r.is_owner(&all[2], &d));
    }

    #[test]
    fn small_rings_and_bad_configs() {
        let d = digest(1);
        assert_eq!(ring(1).owners(&d).count(), 1);
        assert_eq!(ring(0).owners(&d).count(), 0);
        assert_eq!(
            Ring::new(vec![member(0), member(0)], 2).unwrap_err(),
            RingError::DuplicateName("origin-0".into())
        );
        assert_eq!(
            Ring::new(vec![member(0)], 0).unwrap_err(),
            RingError::ZeroReplication
        );
    }

    /// Each of 5 members should own 2/5 of 100k digests and be first for
    /// 1/5. The tolerance is 3% of the expectation: about 5 standard
    /// deviations of a binomial count, so a fair hash never fails it.
    #[test]
    fn spreads_evenly_within_three_percent() {
        let n = 5;
        let r = ring(n);
        let mut owned = vec![0u32; n];
        let mut first = vec![0u32; n];
        for i in 0..DIGESTS {
            for (rank, m) in r.owners(&digest(i)).enumerate() {
                let idx: usize = m.name["origin-".len()..].parse().unwrap();
                owned[idx] += 1;
                if rank == 0 {
                    first[idx] += 1;
                }
            }
        }
        let within =
            |count: u32, expected: f64| (f64::from(count) - expected).abs() <= expected * 0.03;
        for idx in 0..n {
            assert!(within(owned[idx], 40_000.0), "owned {owned:?}");
            assert!(within(first[idx], 20_000.0), "first {first:?}");
        }
    }

    /// Going from 5 to 6 members, a digest's first owner changes with
    /// probability 1/6 and its owner set with probability 2/6, always to the
    /// newcomer; the bounds are about 5 standard deviations wide.
    #[test]
    fn adding_a_member_moves_about_one_in_n() {
        let before = ring(5);
        let after = ring(6);
        let (mut first_moved, mut set_changed) = (0u32, 0u32);
        for i in 0..DIGESTS {
            let d = digest(i);
            let old = owner_names(&before, &d);
            let new = owner_names(&after, &d);
            if old[0] != new[0] {
                first_moved += 1;
                assert_eq!(new[0], "origin-5");
            }
            if old != new {
                set_changed += 1;
                assert!(new.contains(&"origin-5".to_string()));
                let kept: Vec<_> = new.iter().filter(|n| *n != "origin-5").collect();
                assert!(kept.iter().all(|n| old.contains(n)));
            }
        }
        let share = |moved: u32| f64::from(moved) / f64::from(DIGESTS);
        assert!(
            (0.161..0.172).contains(&share(first_moved)),
            "{first_moved}"
        );
        assert!(
            (0.326..0.341).contains(&share(set_changed)),
            "{set_changed}"
        );
    }
}
