//! The Redis store: the same semantics as the memory store, and two tracker
//! processes sharing one Redis.

use std::collections::HashSet;
use std::time::Duration;

use shoal_swarm::{Digest, PeerId};
use shoal_tracker::{MemoryStore, PeerRecord, PeerStore, RedisStore};

use crate::support::{Process, RedisServer, announce, client};

fn record(id: u8, pieces: u32) -> PeerRecord {
    PeerRecord {
        id: PeerId::from_array([id; 20]),
        ip: format!("fd00::{id}").parse().unwrap(),
        port: 7000 + u16::from(id),
        zone: format!("zone-{id}").into(),
        pieces,
        complete: false,
        origin: id == 9,
    }
}

/// Announce, refresh, expiry at `expires_at <= now`, per-blob isolation.
async fn check_semantics<S: PeerStore>(store: &S) {
    let blob = Digest::of(b"layer");
    let sorted = |mut live: Vec<PeerRecord>| {
        live.sort_by_key(|r| r.id);
        live
    };
    let t = 1_700_000_000_000;
    let live = store
        .announce(&blob, record(1, 0), t, t + 1000)
        .await
        .unwrap();
    assert_eq!(live, [record(1, 0)]);
    let live = store
        .announce(&blob, record(9, 3), t + 500, t + 1500)
        .await
        .unwrap();
    assert_eq!(
        sorted(live),
        [record(1, 0), record(9, 3)],
        "records round-trip"
    );
    let live = store
        .announce(&blob, record(1, 5), t + 600, t + 1600)
        .await
        .unwrap();
    assert_eq!(
        sorted(live),
        [record(1, 5), record(9, 3)],
        "refresh replaces"
    );
    let live = store
        .announce(&blob, record(2, 0), t + 1500, t + 2500)
        .await
        .unwrap();
    assert_eq!(
        sorted(live),
        [record(1, 5), record(2, 0)],
        "9 expired at 1500"
    );
    let other = store
        .announce(&Digest::of(b"other"), record(3, 0), t + 1500, t + 2500)
        .await
        .unwrap();
    assert_eq!(other, [record(3, 0)]);
}

#[tokio::test]
async fn memory_store_semantics() {
    check_semantics(&MemoryStore::default()).await;
}

#[tokio::test]
async fn redis_store_semantics() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url).await.unwrap();
    check_semantics(&store).await;
}

#[tokio::test]
async fn redis_store_refuses_a_dead_url_at_connect() {
    let url = format!("redis://127.0.0.1:{}", crate::support::free_port());
    assert!(RedisStore::connect(&url).await.is_err());
}

/// Tracker A and tracker B, two processes, one Redis; 1 s interval and a
/// TTL of 2 intervals.
#[tokio::test]
async fn two_tracker_processes_share_peers_and_expiry() {
    let redis = RedisServer::start();
    let config = "[announce]\ninterval_seconds = 1\nttl_intervals = 2\n";
    let args = ["--store", "redis", "--redis-url", redis.url.as_str()];
    let a = Process::start(config, &args).await;
    let b = Process::start(config, &args).await;
    let (mut a, mut b) = (client(a.addr).await, client(b.addr).await);
    let blob = Digest::of(b"layer");
    let ids = |response: shoal_proto::tracker::AnnounceResponse| -> HashSet<u8> {
        response
            .peers
            .iter()
            .map(|p| p.peer.as_ref().unwrap().id[0])
            .collect()
    };

    a.announce(announce(&blob, 1, 0, "")).await.unwrap();
    let from_b = b
        .announce(announce(&blob, 2, 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(from_b.interval_seconds, 1);
    assert_eq!(
        ids(from_b),
        HashSet::from([1]),
        "B hands out the peer announced to A"
    );
    let from_a = a
        .announce(announce(&blob, 3, 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(from_a), HashSet::from([1, 2]));

    // Peer 2 keeps announcing to B; peers 1 and 3 go quiet and expire.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.announce(announce(&blob, 2, 0, "")).await.unwrap();
    }
    let from_a = a
        .announce(announce(&blob, 4, 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(from_a), HashSet::from([2]), "expired on A's side");
    let from_b = b
        .announce(announce(&blob, 5, 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(from_b), HashSet::from([2, 4]), "expired on B's side");
}

/// The admin listener: live while the process serves, ready only while
/// Redis answers, and counting the announces it answered.
#[tokio::test]
async fn readiness_follows_redis_and_metrics_count_announces() {
    let redis = RedisServer::start();
    let admin = format!("127.0.0.1:{}", crate::support::free_port());
    let args = [
        "--store",
        "redis",
        "--redis-url",
        redis.url.as_str(),
        "--metrics-listen",
        admin.as_str(),
    ];
    let tracker = Process::start("", &args).await;
    let get = |path: &str| {
        let url = format!("http://{admin}{path}");
        async move {
            let response = reqwest::get(url).await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(get("/readyz").await, (200, "ready\n".to_string()));
    client(tracker.addr)
        .await
        .announce(announce(&Digest::of(b"layer"), 1, 0, ""))
        .await
        .unwrap();
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("shoal_tracker_announces_total{result=\"ok\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("shoal_tracker_announce_duration_seconds_count 1\n"));

    drop(redis);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let (status, body) = loop {
        let (status, body) = get("/readyz").await;
        if status != 200 {
            break (status, body);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still ready without Redis"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status, 503);
    assert!(body.starts_with("not ready: peer store"), "{body}");
    assert_eq!(get("/healthz").await, (200, "ok\n".to_string()));
}
