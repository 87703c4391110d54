//! The origin's place in the ring: which blobs it owns, where to redirect
//! the others, and which peer origins to copy a blob from before going
//! upstream.
//!
//! Copy order, for the origin at rank `k` of a blob's preference list:
//! - owners ranked above it are *joined*: asked like any client would, so
//!   that they fetch the blob (once) and this origin copies it from them,
//!   waiting through their 202s. The top owner joins nobody, so two owners
//!   can never wait on each other.
//! - owners ranked below it are *peeked*: asked only whether they already
//!   hold the blob (a restarted top owner copies from the owner that
//!   fetched it meanwhile), never making them fetch.
//!
//! Whoever fails or is down is skipped, and upstream is the last resort.

use shoal_swarm::Digest;
use shoal_swarm::ring::{Member, RingWatch};

/// How to ask a peer origin for a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyMode {
    /// A normal request: the peer fetches the blob if it does not hold it.
    Join,
    /// A peek: the peer serves the blob only if it already holds it.
    Peek,
}

/// The request header that marks a peek.
pub(crate) const PEEK_HEADER: &str = "x-shoal-peek";

/// This origin's view of the ring, as discovery keeps it. While this origin
/// is not a member (discovered rings list a pod once it has an IP), it owns
/// nothing and sends requests to the owners; an empty ring leaves it alone
/// and owning everything.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    name: String,
    ring: Option<RingWatch>,
}

impl Cluster {
    /// `ring` None: a lone origin that owns everything.
    pub(crate) fn new(name: String, ring: Option<RingWatch>) -> Self {
        Cluster { name, ring }
    }

    /// The owner to redirect a request for `digest` to, or None when this
    /// origin owns it.
    pub(crate) fn redirect(&self, digest: &Digest) -> Option<Member> {
        let ring = self.ring.as_ref()?.borrow().clone();
        if ring.is_owner(&self.name, digest) {
            return None;
        }
        ring.owners(digest).next().cloned()
    }

    /// This origin's ring name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The owners of `digest` other than this origin, best first.
    pub(crate) fn other_owners(&self, digest: &Digest) -> Vec<Member> {
        let Some(ring) = self.ring.as_ref().map(|r| r.borrow().clone()) else {
            return Vec::new();
        };
        ring.owners(digest)
            .filter(|m| m.name != self.name)
            .cloned()
            .collect()
    }

    /// The peer origins to try, in order, before upstream.
    pub(crate) fn copy_sources(&self, digest: &Digest) -> Vec<(Member, CopyMode)> {
        let Some(ring) = self.ring.as_ref().map(|r| r.borrow().clone()) else {
            return Vec::new();
        };
        let owners: Vec<&Member> = ring.owners(digest).collect();
        let rank = owners.iter().position(|m| m.name == self.name);
        let mut joins = Vec::new();
        let mut peeks = Vec::new();
        for (i, member) in owners.into_iter().enumerate() {
            match rank {
                Some(k) if i == k => {}
                Some(k) if i > k => peeks.push(((*member).clone(), CopyMode::Peek)),
                _ => joins.push(((*member).clone(), CopyMode::Join)),
            }
        }
        joins.extend(peeks);
        joins
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use shoal_swarm::ring::{Ring, fixed};

    use super::*;

    fn ring(n: usize, replication: usize) -> Ring {
        let members = (0..n)
            .map(|i| Member {
                name: format!("o{i}"),
                http: format!("http://127.0.0.1:{}", 8000 + i),
                peer: format!("127.0.0.1:{}", 7000 + i).parse().unwrap(),
            })
            .collect();
        Ring::new(members, replication).unwrap()
    }

    #[test]
    fn the_top_owner_only_peeks_and_the_second_joins_the_top() {
        let ring = ring(3, 2);
        let digest = Digest::of(b"blob");
        let owners: Vec<String> = ring.owners(&digest).map(|m| m.name.clone()).collect();
        let top = Cluster::new(owners[0].clone(), Some(fixed(ring.clone())));
        let second = Cluster::new(owners[1].clone(), Some(fixed(ring.clone())));
        let other = ring
            .members()
            .find(|m| !owners.contains(&m.name))
            .unwrap()
            .name
            .clone();
        let outsider = Cluster::new(other, Some(fixed(ring)));

        assert!(top.redirect(&digest).is_none());
        let sources = top.copy_sources(&digest);
        assert_eq!(sources.len(), 1);
        assert_eq!(
            (sources[0].0.name.as_str(), sources[0].1),
            (owners[1].as_str(), CopyMode::Peek)
        );

        let sources = second.copy_sources(&digest);
        assert_eq!(
            (sources[0].0.name.as_str(), sources[0].1),
            (owners[0].as_str(), CopyMode::Join)
        );

        assert_eq!(outsider.redirect(&digest).unwrap().name, owners[0]);
        let modes: Vec<CopyMode> = outsider.copy_sources(&digest).iter().map(|s| s.1).collect();
        assert_eq!(modes, vec![CopyMode::Join, CopyMode::Join]);
    }

    #[test]
    fn a_lone_origin_owns_everything() {
        let lone = Cluster::new("o".into(), None);
        assert!(lone.redirect(&Digest::of(b"x")).is_none());
        assert!(lone.copy_sources(&Digest::of(b"x")).is_empty());
    }

    #[test]
    fn ring_changes_move_ownership_at_once() {
        let grown = ring(3, 1);
        let owned_by = |name: &str| {
            (0u32..)
                .map(|i| Digest::of(&i.to_le_bytes()))
                .find(|d| grown.owners(d).next().unwrap().name == name)
                .unwrap()
        };
        let (mine, theirs) = (owned_by("o1"), owned_by("o2"));
        let (sender, receiver) = tokio::sync::watch::channel(Arc::new(ring(1, 1)));
        let cluster = Cluster::new("o1".into(), Some(receiver));
        // Not a member yet: everything goes to o0.
        assert_eq!(cluster.redirect(&mine).unwrap().name, "o0");
        assert_eq!(cluster.redirect(&theirs).unwrap().name, "o0");
        // Discovery adds o1 and o2.
        sender.send_replace(Arc::new(grown.clone()));
        assert!(cluster.redirect(&mine).is_none());
        assert_eq!(cluster.redirect(&theirs).unwrap().name, "o2");
        // Every origin gone from the Service: alone, it serves everything.
        sender.send_replace(Arc::new(Ring::new(Vec::new(), 1).unwrap()));
        assert!(cluster.redirect(&theirs).is_none());
        assert!(cluster.copy_sources(&theirs).is_empty());
    }
}
