//! When the tracker or the swarm fails, origins fill in; when origins fail
//! too, clients get clean OCI errors and the cache stays clean.

use shoal_agent::config::OriginConfig;

use crate::support::*;

const MIB: u64 = 1 << 20;

fn dead_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_tracker_blobs_stream_from_an_origin_and_are_cached() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    let layer = origin.add_random(5 * MIB, 3).await;
    let agent = start_agent(&agent_config(
        &dir.path().join("agent"),
        Some(dead_url()),
        &[&origin],
    ))
    .await;
    let url = format!("http://{}/v2/app/blobs/{layer}", agent.registry_addr());
    let (status, headers, body) = get(&url).await;
    assert_eq!(status, 200);
    assert_eq!(headers["docker-content-digest"], layer.to_string().as_str());
    assert_eq!(sha256(&body), layer);
    assert_eq!(origin.http_bytes(), 5 * MIB);
    assert!(wait_cached(agent.blobs().session().store(), &layer).await);
    let (status, _, again) = get(&url).await;
    assert_eq!(status, 200);
    assert_eq!(again, body);
    assert_eq!(
        origin.http_bytes(),
        5 * MIB,
        "the second read is a cache hit"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_swarm_falls_back_to_origin_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    // The tracker hands out a peer address where nobody listens: the swarm
    // can never deliver a piece.
    let unreachable = OriginConfig {
        peer: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        ..origin.config()
    };
    let tracker = Tracker::start_with(&[unreachable]).await;
    let layer = origin.add_random(6 * MIB, 4).await;
    let mut config = agent_config(&dir.path().join("agent"), Some(tracker.url()), &[&origin]);
    config.stall_timeout_ms = 500;
    let agent = start_agent(&config).await;
    let (status, _, body) = get(&format!(
        "http://{}/v2/app/blobs/{layer}",
        agent.registry_addr()
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), layer);
    assert_eq!(origin.http_bytes(), 6 * MIB, "every piece came from ranges");
    assert_eq!(origin.session.torrents()[0].progress().uploaded, 0);
    // Completed by the fallback, the blob is cached and seeded afresh.
    let session = agent.blobs().session().clone();
    for _ in 0..250 {
        if session
            .torrent(&layer)
            .is_some_and(|t| t.progress().state == shoal_swarm::session::TransferState::Seeding)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(wait_cached(session.store(), &layer).await);
    assert_eq!(
        session.torrent(&layer).map(|t| t.progress().state),
        Some(shoal_swarm::session::TransferState::Seeding)
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_blobs_come_straight_from_an_origin() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    let tracker = Tracker::start(&[&origin]).await;
    let blob = origin.add_random(300 * 1024, 5).await;
    let agent = start_agent(&agent_config(
        &dir.path().join("agent"),
        Some(tracker.url()),
        &[&origin],
    ))
    .await;
    let (status, _, body) = get(&format!(
        "http://{}/v2/app/blobs/{blob}",
        agent.registry_addr()
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), blob);
    assert_eq!(origin.http_bytes(), 300 * 1024);
    assert!(wait_cached(agent.blobs().session().store(), &blob).await);
    assert!(
        agent.blobs().session().torrent(&blob).is_none(),
        "not swarmed"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_origin_down_clients_get_a_clean_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    let layer = origin.add_random(2 * MIB, 6).await;
    origin.add_manifest("app", "v1", (layer, 2 * MIB), &[]);
    origin.set_http_down(true);
    let dead = OriginConfig {
        name: "origin-1".into(),
        http: dead_url(),
        peer: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
    };
    let mut config = agent_config(&dir.path().join("agent"), Some(dead_url()), &[&origin]);
    config.origins.push(dead);
    let agent = start_agent(&config).await;
    let base = format!("http://{}", agent.registry_addr());
    for path in [
        format!("/v2/app/blobs/{layer}"),
        "/v2/app/manifests/v1".to_string(),
    ] {
        let (status, _, body) = get(&format!("{base}{path}")).await;
        assert!(status.is_server_error(), "{path}: {status}");
        assert_eq!(error_code(&body), "UNAVAILABLE", "{path}");
    }
    assert!(!agent.blobs().session().store().contains(&layer));
    assert_eq!(agent.blobs().session().store().used_bytes(), 0);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_whole_blob_breaks_the_response_and_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    let layer = origin.add_random(3 * MIB, 9).await;
    origin.set_corrupt(true);
    let agent = start_agent(&agent_config(
        &dir.path().join("agent"),
        Some(dead_url()),
        &[&origin],
    ))
    .await;
    let url = format!("http://{}/v2/app/blobs/{layer}", agent.registry_addr());
    for _ in 0..2 {
        let mut response = reqwest::get(&url).await.unwrap();
        assert_eq!(
            response.status(),
            200,
            "headers go out before the end is known"
        );
        let mut received = 0u64;
        let outcome = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => received += chunk.len() as u64,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        assert!(outcome.is_err(), "a bad blob must not end cleanly");
        assert!(received < 3 * MIB, "the last chunk is held back");
        assert!(!agent.blobs().session().store().contains(&layer));
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_origin_pieces_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    let unreachable = OriginConfig {
        peer: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        ..origin.config()
    };
    let tracker = Tracker::start_with(&[unreachable]).await;
    let layer = origin.add_random(4 * MIB, 10).await;
    // Metainfo first (the tracker caches it), then the ranges go bad.
    let mut config = agent_config(&dir.path().join("agent"), Some(tracker.url()), &[&origin]);
    config.stall_timeout_ms = 300;
    let agent = start_agent(&config).await;
    let head = reqwest::Client::new()
        .head(format!(
            "http://{}/v2/app/blobs/{layer}",
            agent.registry_addr()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    origin.set_corrupt(true);
    let (status, _, body) = get(&format!(
        "http://{}/v2/app/blobs/{layer}",
        agent.registry_addr()
    ))
    .await;
    assert_eq!(status.as_u16(), 503);
    assert_eq!(error_code(&body), "UNAVAILABLE");
    assert!(!agent.blobs().session().store().contains(&layer));
    agent.shutdown().await;
}
