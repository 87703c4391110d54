//! The static ring's peer names, looked up and looked up again.
//!
//! A `[[origins]]` peer given as a DNS name (a StatefulSet member's stable
//! name) is not handed out until it resolves; its IP changes when the pod
//! moves, so it is looked up again every `dns_refresh_seconds`. A failed
//! lookup keeps the last address known and is retried sooner.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shoal_swarm::ring::{HostPort, Ring, RingWatch};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The first retry of a failed lookup; it doubles up to the refresh interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// A watch of `ring` whose peer names are resolved: once before this
/// returns, then every `refresh` (failures retried from 1 s, doubling)
/// until `shutdown` or until no receiver is left. A ring of IP literals
/// only needs no task and never changes.
pub async fn resolve_names(
    ring: Ring,
    refresh: Duration,
    shutdown: CancellationToken,
) -> RingWatch {
    if !ring.members().any(|member| member.peer.needs_lookup()) {
        return shoal_swarm::ring::fixed(ring);
    }
    let (ring, mut resolved) = resolve(&ring).await;
    let (sender, receiver) = watch::channel(Arc::new(ring));
    tokio::spawn(async move {
        let mut retry = FIRST_RETRY;
        loop {
            let wait = if resolved {
                refresh
            } else {
                retry.min(refresh)
            };
            retry = if resolved { FIRST_RETRY } else { retry * 2 };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = sender.closed() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let current = Arc::clone(&sender.borrow());
            let (next, all) = resolve(&current).await;
            resolved = all;
            sender.send_if_modified(|ring| {
                let changed = **ring != next;
                if changed {
                    tracing::info!(origins = %describe(&next), "origin addresses changed");
                    *ring = Arc::new(next);
                }
                changed
            });
        }
    });
    receiver
}

/// `ring` with every name looked up once (all at once: a dead name's
/// timeout does not delay the others), and whether all lookups succeeded.
/// A member whose lookup fails keeps its last address.
pub(crate) async fn resolve(ring: &Ring) -> (Ring, bool) {
    let lookups = ring.members().map(|member| async move {
        if !member.peer.needs_lookup() {
            return Ok(member.peer.clone());
        }
        match lookup(member.peer.configured()).await {
            Ok(addr) => Ok(member.peer.with_resolved(addr)),
            Err(error) => {
                tracing::warn!(origin = %member.name, peer = %member.peer.configured(), %error, "looking up an origin's peer address failed; retrying");
                Err(member.peer.clone())
            }
        }
    });
    let found = futures_util::future::join_all(lookups).await;
    let all = found.iter().all(Result::is_ok);
    let mut found = found.into_iter().map(|r| r.unwrap_or_else(|kept| kept));
    let ring = ring.map_peers(|member| found.next().unwrap_or_else(|| member.peer.clone()));
    (ring, all)
}

/// One lookup: the first IPv4 address, else the first address.
async fn lookup(peer: &HostPort) -> std::io::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((peer.host(), peer.port()))
        .await?
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

/// `name=address, ...` for a log line.
pub(crate) fn describe(ring: &Ring) -> String {
    ring.members()
        .map(|m| format!("{}={}", m.name, m.peer))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use shoal_swarm::ring::Member;

    use super::*;

    fn member(name: &str, peer: &str) -> Member {
        Member {
            name: name.into(),
            http: format!("http://{name}:8080"),
            peer: peer.parse::<HostPort>().unwrap().into(),
        }
    }

    #[tokio::test]
    async fn names_resolve_and_failures_keep_the_member_unresolved() {
        let ring = Ring::new(
            vec![
                member("a", "localhost:7001"),
                member("b", "10.0.0.2:7001"),
                // .invalid never resolves (RFC 6761).
                member("c", "origin-c.invalid:7001"),
            ],
            2,
        )
        .unwrap();
        let shutdown = CancellationToken::new();
        let watch = resolve_names(ring.clone(), Duration::from_secs(60), shutdown.clone()).await;
        let now = watch.borrow().clone();
        let peers: Vec<_> = now.members().map(|m| m.peer.resolved()).collect();
        let localhost = peers[0].unwrap();
        assert!(
            localhost.ip().is_loopback() && localhost.port() == 7001,
            "{localhost}"
        );
        assert_eq!(peers[1], Some("10.0.0.2:7001".parse().unwrap()));
        assert_eq!(peers[2], None);
        // Names, hence ownership, are those configured.
        let d = shoal_swarm::Digest::of(b"x");
        let owners = |r: &Ring| r.owners(&d).map(|m| m.name.clone()).collect::<Vec<_>>();
        assert_eq!(owners(&now), owners(&ring));
        shutdown.cancel();
    }

    #[tokio::test]
    async fn literal_rings_need_no_task() {
        let ring = Ring::new(vec![member("b", "10.0.0.2:7001")], 2).unwrap();
        let watch = resolve_names(
            ring.clone(),
            Duration::from_secs(1),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(**watch.borrow(), ring);
        // No task holds the sender: the ring can never change.
        assert!(watch.has_changed().is_err());
    }
}
