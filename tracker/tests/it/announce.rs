//! Announce over gRPC against the memory store: the handout rules end to end.

use std::collections::HashSet;

use shoal_swarm::Digest;
use shoal_swarm::ring::Member;
use shoal_tracker::MemoryStore;

use crate::support::{InProcess, announce, free_port, health, origins_toml, settings};
use tonic_health::pb::health_check_response::ServingStatus;

fn ids(response: &shoal_proto::tracker::AnnounceResponse) -> HashSet<u8> {
    response
        .peers
        .iter()
        .filter(|p| !p.origin)
        .map(|p| p.peer.as_ref().unwrap().id[0])
        .collect()
}

#[tokio::test]
async fn peers_get_each_other_never_themselves() {
    let tracker = InProcess::start(
        settings("[announce]\ninterval_seconds = 7\n"),
        MemoryStore::default(),
    )
    .await;
    let mut client = tracker.client().await;
    let blob = Digest::of(b"layer");
    for id in 1..=3 {
        client.announce(announce(&blob, id, 0, "")).await.unwrap();
    }
    let response = client
        .announce(announce(&blob, 4, 2, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.interval_seconds, 7);
    assert_eq!(ids(&response), HashSet::from([1, 2, 3]));
    let peer = response.peers[0].peer.as_ref().unwrap();
    assert_eq!(peer.port, 7000);
    assert!(peer.address.starts_with("10.0.0."));

    let other = client
        .announce(announce(&Digest::of(b"other"), 9, 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(other.peers.is_empty(), "blobs do not share swarms");
}

#[tokio::test]
async fn seeders_first_then_zone_and_complete_peers_get_few() {
    let config =
        "[announce]\nmax_peers = 3\nmax_peers_for_complete = 2\norigins_until_complete = 0\n";
    let tracker = InProcess::start(settings(config), MemoryStore::default()).await;
    let mut client = tracker.client().await;
    let blob = Digest::of(b"layer");
    client.announce(announce(&blob, 1, 1, "b")).await.unwrap();
    client.announce(announce(&blob, 2, 1, "a")).await.unwrap();
    client.announce(announce(&blob, 3, 10, "b")).await.unwrap();
    client.announce(announce(&blob, 4, 0, "a")).await.unwrap();
    client.announce(announce(&blob, 5, 0, "b")).await.unwrap();
    let response = client
        .announce(announce(&blob, 6, 0, "a"))
        .await
        .unwrap()
        .into_inner();
    let order: Vec<u8> = response
        .peers
        .iter()
        .map(|p| p.peer.as_ref().unwrap().id[0])
        .collect();
    assert_eq!(order, [3, 2, 1], "seeder, then same-zone within a tier");

    let seeder = client
        .announce(announce(&blob, 7, 10, "a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seeder.peers.len(), 2);
    assert!(seeder.peers.iter().all(|p| !p.complete));
}

#[tokio::test]
async fn owning_origins_are_handed_out_until_three_peers_seed() {
    let members: Vec<Member> = (0..3)
        .map(|i| Member {
            name: format!("origin-{i}"),
            http: "http://127.0.0.1:1".into(),
            peer: std::net::SocketAddr::from(([127, 0, 0, 1], free_port())).into(),
        })
        .collect();
    let tracker = InProcess::start(settings(&origins_toml(&members)), MemoryStore::default()).await;
    let mut client = tracker.client().await;
    let blob = Digest::of(b"layer");
    let response = client
        .announce(announce(&blob, 1, 0, ""))
        .await
        .unwrap()
        .into_inner();
    let origins: Vec<_> = response.peers.iter().filter(|p| p.origin).collect();
    assert_eq!(
        origins.len(),
        2,
        "replication 2: the two owners, not the third origin"
    );
    assert!(
        origins
            .iter()
            .all(|p| p.complete && p.peer.as_ref().unwrap().id.is_empty())
    );

    for id in 2..=4 {
        client.announce(announce(&blob, id, 10, "")).await.unwrap();
    }
    let response = client
        .announce(announce(&blob, 1, 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(response.peers.iter().all(|p| !p.origin));
    assert_eq!(ids(&response), HashSet::from([2, 3, 4]));
}

#[tokio::test]
async fn empty_address_is_the_connection_address_and_health_is_serving() {
    let tracker = InProcess::start(settings(""), MemoryStore::default()).await;
    let mut client = tracker.client().await;
    let blob = Digest::of(b"layer");
    let mut request = announce(&blob, 1, 0, "");
    request.peer.as_mut().unwrap().address.clear();
    client.announce(request).await.unwrap();
    let response = client
        .announce(announce(&blob, 2, 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        response.peers[0].peer.as_ref().unwrap().address,
        "127.0.0.1"
    );
    assert_eq!(health(tracker.addr).await, Some(ServingStatus::Serving));
}
