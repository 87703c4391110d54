//! The ring from the origin Service's EndpointSlices, followed by a
//! kube-runtime watcher.
//!
//! The headless Service publishes every origin pod (ready or not, so that
//! members find each other while starting) in EndpointSlices labelled
//! `kubernetes.io/service-name=<service>`. A member's name is its pod's
//! name (the StatefulSet's stable `shoal-origin-<n>`, which ownership
//! depends on), its addresses the endpoint's IP with the Service's ports
//! named `http` and `peer`. Terminating endpoints stay members until they
//! leave the slice, so a rolling restart does not move blobs back and forth.

use std::collections::{BTreeMap, btree_map::Entry};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use shoal_swarm::ring::{Member, Ring, RingError, RingWatch};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::dns::describe;

/// The label EndpointSlices carry to name their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The Service port of the origins' HTTP API.
pub const HTTP_PORT_NAME: &str = "http";
/// The Service port of the origins' peer protocol.
pub const PEER_PORT_NAME: &str = "peer";

/// The ring the slices describe: one member per pod, its IPv4 address
/// preferred when a dual-stack Service lists it in two slices. Slices
/// without both named ports and endpoints without an address or a name
/// are skipped.
pub fn ring_from_slices<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    replication: usize,
) -> Result<Ring, RingError> {
    let mut members: BTreeMap<String, (IpAddr, Member)> = BTreeMap::new();
    for slice in slices {
        let (Some(http), Some(peer)) = (port(slice, HTTP_PORT_NAME), port(slice, PEER_PORT_NAME))
        else {
            tracing::debug!(slice = ?slice.metadata.name, "EndpointSlice without http and peer ports; skipped");
            continue;
        };
        for endpoint in &slice.endpoints {
            let (Some(name), Some(ip)) = (member_name(endpoint), address(endpoint)) else {
                continue;
            };
            let member = Member {
                name: name.clone(),
                http: format!("http://{}", SocketAddr::new(ip, http)),
                peer: SocketAddr::new(ip, peer).into(),
            };
            match members.entry(name) {
                Entry::Vacant(slot) => {
                    slot.insert((ip, member));
                }
                Entry::Occupied(mut slot) if slot.get().0.is_ipv6() && ip.is_ipv4() => {
                    slot.insert((ip, member));
                }
                Entry::Occupied(_) => {}
            }
        }
    }
    Ring::new(members.into_values().map(|(_, m)| m).collect(), replication)
}

/// The port named `name`, if the slice has it.
fn port(slice: &EndpointSlice, name: &str) -> Option<u16> {
    slice
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.name.as_deref() == Some(name))
        .and_then(|p| u16::try_from(p.port?).ok())
        .filter(|&p| p != 0)
}

/// The pod's name; the endpoint's hostname when it names no pod.
fn member_name(endpoint: &Endpoint) -> Option<String> {
    let pod = endpoint
        .target_ref
        .as_ref()
        .filter(|r| r.kind.as_deref() == Some("Pod"))
        .and_then(|r| r.name.clone());
    pod.or_else(|| endpoint.hostname.clone())
        .filter(|name| !name.is_empty())
}

fn address(endpoint: &Endpoint) -> Option<IpAddr> {
    endpoint.addresses.iter().find_map(|a| a.parse().ok())
}

/// Watches the EndpointSlices of `service` in `namespace` and keeps the
/// returned ring in step: it starts as `initial` (the static `[[origins]]`,
/// perhaps empty), becomes the listed ring once the first list completes
/// (waited for up to `first_list`), and changes with every slice change.
/// Watch errors are retried with kube-runtime's backoff, the last ring
/// kept meanwhile. Stops on `shutdown` or when no receiver is left.
pub async fn watch_ring(
    client: Client,
    namespace: &str,
    service: &str,
    initial: Ring,
    first_list: Duration,
    shutdown: CancellationToken,
) -> RingWatch {
    let replication = initial.replication();
    let api: Api<EndpointSlice> = Api::namespaced(client, namespace);
    let selector = format!("{SERVICE_NAME_LABEL}={service}");
    let events =
        watcher::watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
    let (sender, mut receiver) = watch::channel(Arc::new(initial));
    let service = service.to_string();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        let mut slices = Slices::default();
        let mut listed = false;
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                () = sender.closed() => return,
                event = events.next() => event,
            };
            let Some(event) = event else { return };
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::warn!(%service, %error, "watching the origins' EndpointSlices failed; retrying");
                    continue;
                }
            };
            let Some(slices) = slices.apply(event) else {
                continue;
            };
            match ring_from_slices(slices, replication) {
                Ok(ring) => {
                    // The first complete list is always sent: the starting
                    // component waits for it.
                    let first = !std::mem::replace(&mut listed, true);
                    sender.send_if_modified(|current| {
                        let changed = first || **current != ring;
                        if changed {
                            tracing::info!(%service, origins = %describe(&ring), "origin ring from EndpointSlices");
                            *current = Arc::new(ring);
                        }
                        changed
                    });
                }
                Err(error) => {
                    tracing::warn!(%service, %error, "EndpointSlices give no ring; keeping the last")
                }
            }
        }
    });
    if tokio::time::timeout(first_list, receiver.changed())
        .await
        .is_err()
    {
        tracing::warn!(service = %selector, "no EndpointSlice list yet; starting with the configured origins");
    }
    receiver.mark_unchanged();
    receiver
}

/// The slices as the watcher reports them, keyed by name.
#[derive(Default)]
struct Slices {
    current: BTreeMap<String, EndpointSlice>,
    /// Slices of a (re)list under way: they replace `current` when it is done.
    listing: Option<BTreeMap<String, EndpointSlice>>,
}

impl Slices {
    /// Applies `event`; the slices now current when they changed.
    fn apply(
        &mut self,
        event: Event<EndpointSlice>,
    ) -> Option<impl Iterator<Item = &EndpointSlice>> {
        let key = |slice: &EndpointSlice| slice.metadata.name.clone().unwrap_or_default();
        match event {
            Event::Init => {
                self.listing = Some(BTreeMap::new());
                return None;
            }
            Event::InitApply(slice) => {
                self.listing
                    .get_or_insert_default()
                    .insert(key(&slice), slice);
                return None;
            }
            Event::InitDone => self.current = self.listing.take().unwrap_or_default(),
            Event::Apply(slice) => {
                self.current.insert(key(&slice), slice);
            }
            Event::Delete(slice) => {
                self.current.remove(&key(&slice));
            }
        }
        Some(self.current.values())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use http::{Request, Response};
    use k8s_openapi::List;
    use kube::client::Body;
    use tower_test::mock;

    use super::*;

    const LIST: &str = include_str!("testdata/endpointslices-list.json");
    const WATCH: &str = include_str!("testdata/endpointslices-watch.jsonl");

    fn listed() -> Vec<EndpointSlice> {
        serde_json::from_str::<List<EndpointSlice>>(LIST)
            .unwrap()
            .items
    }

    fn summary(ring: &Ring) -> Vec<(String, String, Option<SocketAddr>)> {
        ring.members()
            .map(|m| (m.name.clone(), m.http.clone(), m.peer.resolved()))
            .collect()
    }

    fn entry(name: &str, ip: &str) -> (String, String, Option<SocketAddr>) {
        (
            name.into(),
            format!("http://{ip}:8080"),
            Some(format!("{ip}:7001").parse().unwrap()),
        )
    }

    #[test]
    fn one_member_per_pod_ipv4_first_not_ready_included() {
        let ring = ring_from_slices(&listed(), 2).unwrap();
        assert_eq!(
            summary(&ring),
            [
                entry("shoal-origin-0", "10.244.1.5"),
                entry("shoal-origin-1", "10.244.2.9")
            ]
        );
        // Only the IPv6 slice: the member's addresses are bracketed.
        let v6 = ring_from_slices(&listed()[1..], 2).unwrap();
        let member = v6.members().next().unwrap();
        assert_eq!(member.http, "http://[fd00:10:244:1::5]:8080");
        assert_eq!(
            member.peer.resolved(),
            Some("[fd00:10:244:1::5]:7001".parse().unwrap())
        );
    }

    #[test]
    fn slices_without_ports_and_endpoints_without_names_are_skipped() {
        let mut slices = listed();
        slices[0]
            .ports
            .as_mut()
            .unwrap()
            .retain(|p| p.name.as_deref() != Some("peer"));
        let ring = ring_from_slices(&slices, 2).unwrap();
        // Pod 0 is still known through the IPv6 slice; pod 1 was only in the
        // portless one.
        assert_eq!(
            ring.members().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["shoal-origin-0"]
        );
        let mut slices = listed();
        let endpoint = &mut slices[0].endpoints[1];
        endpoint.target_ref = None;
        endpoint.hostname = Some("by-hostname".into());
        slices[0].endpoints[0].addresses.clear();
        let ring = ring_from_slices(&slices[..1], 2).unwrap();
        assert_eq!(summary(&ring), [entry("by-hostname", "10.244.2.9")]);
    }

    /// The whole path through kube: list, then a watch whose events move a
    /// member, add one and delete the IPv6 slice; the ring follows.
    #[tokio::test]
    async fn the_ring_follows_list_and_watch_responses() {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        // The watch is answered once the listed ring has been checked.
        let (listed_checked, check_done) = tokio::sync::oneshot::channel::<()>();
        let (rewatch_sender, rewatch) = tokio::sync::oneshot::channel::<String>();
        let api_server = tokio::spawn(async move {
            let (request, reply) = handle.next_request().await.unwrap();
            let uri = request.uri().to_string();
            assert!(
                uri.starts_with("/apis/discovery.k8s.io/v1/namespaces/shoal/endpointslices?"),
                "{uri}"
            );
            assert!(
                uri.contains("labelSelector=kubernetes.io%2Fservice-name%3Dshoal-origin-headless"),
                "{uri}"
            );
            assert!(!uri.contains("watch=true"), "{uri}");
            reply.send_response(Response::new(Body::from(LIST.as_bytes().to_vec())));
            let (request, reply) = handle.next_request().await.unwrap();
            let uri = request.uri().to_string();
            assert!(
                uri.contains("watch=true") && uri.contains("resourceVersion=4712"),
                "{uri}"
            );
            check_done.await.unwrap();
            reply.send_response(Response::new(Body::from(WATCH.as_bytes().to_vec())));
            // The watch is re-established after the body ends: hold it open.
            let (request, _reply) = handle.next_request().await.unwrap();
            rewatch_sender.send(request.uri().to_string()).unwrap();
            std::future::pending::<()>().await;
        });
        let static_ring = Ring::new(Vec::new(), 2).unwrap();
        let shutdown = CancellationToken::new();
        let mut ring = watch_ring(
            client,
            "shoal",
            "shoal-origin-headless",
            static_ring,
            Duration::from_secs(10),
            shutdown.clone(),
        )
        .await;
        assert_eq!(
            summary(&ring.borrow()),
            [
                entry("shoal-origin-0", "10.244.1.5"),
                entry("shoal-origin-1", "10.244.2.9")
            ]
        );
        listed_checked.send(()).unwrap();
        let expected = [
            entry("shoal-origin-0", "10.244.1.5"),
            entry("shoal-origin-1", "10.244.3.4"),
            entry("shoal-origin-2", "10.244.2.12"),
        ];
        let updated = tokio::time::timeout(
            Duration::from_secs(10),
            ring.wait_for(|r| summary(r) == expected),
        )
        .await
        .is_ok();
        assert!(updated, "ring stayed {:?}", summary(&ring.borrow()));
        assert_eq!(ring.borrow().replication(), 2);
        // The bookmark moved the watch on: it resumes after it, not relisting.
        let uri = rewatch.await.unwrap();
        assert!(
            uri.contains("watch=true") && uri.contains("resourceVersion=4800"),
            "{uri}"
        );
        shutdown.cancel();
        api_server.abort();
    }

    #[test]
    fn a_relist_replaces_the_slices() {
        let mut slices = Slices::default();
        let [v4, v6]: [EndpointSlice; 2] = listed().try_into().unwrap();
        assert!(slices.apply(Event::Init).is_none());
        assert!(slices.apply(Event::InitApply(v4.clone())).is_none());
        assert!(slices.apply(Event::InitApply(v6)).is_none());
        assert_eq!(slices.apply(Event::InitDone).unwrap().count(), 2);
        // A relist after a lost watch: only the IPv4 slice is left.
        assert!(slices.apply(Event::Init).is_none());
        assert!(slices.apply(Event::InitApply(v4.clone())).is_none());
        assert_eq!(slices.apply(Event::InitDone).unwrap().count(), 1);
        assert_eq!(slices.apply(Event::Delete(v4)).unwrap().count(), 0);
    }
}
