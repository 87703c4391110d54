//! Pulling through several agents: a multi-layer image, verified digest by
//! digest, with the swarm (not the origin) carrying most layer bytes; a
//! client streaming a big blob before its download finished; a client that
//! disconnects without cancelling the shared download; a restarted agent
//! seeding its cache.

use sha2::{Digest as _, Sha256};
use shoal_swarm::Digest;
use shoal_swarm::session::TransferState;

use crate::support::*;

const MIB: u64 = 1 << 20;

/// Pulls `repo:tag` through an agent the way a client does: manifest, then
/// config and layers, checking every digest. Returns the bytes pulled.
async fn pull_image(base: &str, repo: &str, tag: &str) -> u64 {
    let (status, headers, manifest) = get(&format!("{base}/v2/{repo}/manifests/{tag}")).await;
    assert!(status.is_success(), "manifest: {status}");
    let digest = headers["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(sha256(&manifest).to_string(), digest);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let mut descriptors = vec![manifest["config"].clone()];
    descriptors.extend(manifest["layers"].as_array().unwrap().iter().cloned());
    let mut total = 0;
    for descriptor in descriptors {
        let digest = descriptor["digest"].as_str().unwrap();
        let mut response = reqwest::get(format!("{base}/v2/{repo}/blobs/{digest}"))
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "blob {digest}: {}",
            response.status()
        );
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = response.chunk().await.expect("blob body") {
            hasher.update(&chunk);
            len += chunk.len() as u64;
        }
        assert_eq!(len, descriptor["size"].as_u64().unwrap(), "{digest}");
        assert_eq!(
            Digest::from_bytes(hasher.finalize().into()).to_string(),
            digest
        );
        total += len;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_agents_pull_an_image_mostly_from_each_other() {
    let _alone = exclusive().await;
    let dir = tempfile::tempdir().unwrap();
    // The origin's uplink is capped so that, as in a real cluster, agents
    // pulling at once cannot all be served by it in time and must swarm.
    let origin = Origin::start_limited("origin-0", &dir.path().join("origin"), 12 * MIB).await;
    let tracker = Tracker::start(&[&origin]).await;
    let big = 64 * MIB;
    let layer = origin.add_random(big, 7).await;
    let small_layer = origin.add_random(200 * 1024, 8).await;
    let config = origin
        .add_bytes(br#"{"architecture":"amd64","os":"linux"}"#)
        .await;
    origin.add_manifest(
        "library/app",
        "1.0",
        (config, 37),
        &[(layer, big), (small_layer, 200 * 1024)],
    );
    let mut agents = Vec::new();
    for i in 0..3 {
        let mut config = agent_config(
            &dir.path().join(format!("agent-{i}")),
            Some(tracker.url()),
            &[&origin],
        );
        config.stall_timeout_ms = 15_000;
        agents.push(start_agent(&config).await);
    }
    let pulls: Vec<_> = agents
        .iter()
        .map(|a| {
            let base = format!("http://{}", a.registry_addr());
            tokio::spawn(async move { pull_image(&base, "library/app", "1.0").await })
        })
        .collect();
    for pull in pulls {
        assert_eq!(pull.await.unwrap(), big + 200 * 1024 + 37);
    }
    let served = origin.bytes_served();
    let small = 200 * 1024 + 37;
    println!(
        "origin served {served} bytes for 3 pulls of a {big}-byte layer (+{small} small bytes)"
    );
    assert!(
        served < 2 * big + 3 * small,
        "origin served {served} bytes; the swarm should carry most of 3 x {big}"
    );
    for agent in agents {
        assert!(wait_cached(agent.blobs().session().store(), &layer).await);
        agent.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_streams_a_big_blob_before_it_is_downloaded() {
    let _alone = exclusive().await;
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    let tracker = Tracker::start(&[&origin]).await;
    let size = 256 * MIB;
    let layer = origin.add_random(size, 11).await;
    let mut config = agent_config(&dir.path().join("agent"), Some(tracker.url()), &[&origin]);
    // The cap stretches the download so the order of events is unambiguous;
    // nothing below measures time.
    config.download_limit = 64 * MIB;
    config.stall_timeout_ms = 30_000;
    let agent = start_agent(&config).await;
    let url = format!("http://{}/v2/big/blob/blobs/{layer}", agent.registry_addr());

    // A first client reads one chunk and hangs up: the download goes on.
    let mut quitter = reqwest::get(&url).await.unwrap();
    assert!(quitter.chunk().await.unwrap().is_some());
    drop(quitter);

    let mut response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().expect("first bytes");
    let torrent = agent
        .blobs()
        .session()
        .torrent(&layer)
        .expect("a running download");
    let at_first_byte = torrent.progress();
    println!(
        "first {} bytes arrived with {}/{} pieces verified",
        first.len(),
        at_first_byte.pieces,
        at_first_byte.piece_count
    );
    assert_eq!(at_first_byte.state, TransferState::Downloading);
    assert!(at_first_byte.pieces < at_first_byte.piece_count / 2);
    let mut hasher = Sha256::new();
    hasher.update(&first);
    let mut len = first.len() as u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        hasher.update(&chunk);
        len += chunk.len() as u64;
    }
    assert_eq!(len, size);
    assert_eq!(Digest::from_bytes(hasher.finalize().into()), layer);
    torrent.wait_complete().await.expect("download completes");
    assert!(wait_cached(agent.blobs().session().store(), &layer).await);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_agent_serves_and_seeds_its_cache() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    let tracker = Tracker::start(&[&origin]).await;
    let layer = origin.add_random(6 * MIB, 21).await;
    let first = agent_config(&dir.path().join("first"), Some(tracker.url()), &[&origin]);
    let agent = start_agent(&first).await;
    let url = |agent: &shoal_agent::Agent| {
        format!("http://{}/v2/app/blobs/{layer}", agent.registry_addr())
    };
    let (status, _, body) = get(&url(&agent)).await;
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), layer);
    agent.shutdown().await;

    // The origin stops serving, over HTTP and in the swarm.
    origin.set_http_down(true);
    origin.session.shutdown().await;

    let agent = start_agent(&first).await;
    let seeding = agent
        .blobs()
        .session()
        .torrent(&layer)
        .expect("seeding after restart");
    assert_eq!(seeding.progress().state, TransferState::Seeding);
    let (status, _, body) = get(&url(&agent)).await;
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), layer);

    // A new agent can only get the blob from the restarted one, which the
    // tracker knows about from its announces.
    let mut second = agent_config(&dir.path().join("second"), Some(tracker.url()), &[&origin]);
    second.stall_timeout_ms = 20_000;
    let other = start_agent(&second).await;
    let (status, _, body) = get(&url(&other)).await;
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), layer);
    other.shutdown().await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_waits_while_the_origin_fetches_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    let tracker = Tracker::start(&[&origin]).await;
    let layer = origin.add_random(3 * MIB, 31).await;
    // The tracker turns the origin's 202 into UNAVAILABLE + retry-after;
    // the agent asks again instead of falling back.
    origin.set_fetching(2);
    let agent = start_agent(&agent_config(
        &dir.path().join("agent"),
        Some(tracker.url()),
        &[&origin],
    ))
    .await;
    let (status, _, body) = get(&format!(
        "http://{}/v2/app/blobs/{layer}",
        agent.registry_addr()
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), layer);
    assert_eq!(
        origin.http_bytes(),
        0,
        "swarmed, not streamed from the origin"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cache_evicts_the_least_recently_used_blob() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    let tracker = Tracker::start(&[&origin]).await;
    let first = origin.add_random(6 * MIB, 41).await;
    let second = origin.add_random(6 * MIB, 42).await;
    let mut config = agent_config(&dir.path().join("agent"), Some(tracker.url()), &[&origin]);
    config.cache_bytes = 10 * MIB;
    let agent = start_agent(&config).await;
    let store = agent.blobs().session().store().clone();
    for blob in [first, second] {
        let (status, _, body) = get(&format!(
            "http://{}/v2/app/blobs/{blob}",
            agent.registry_addr()
        ))
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(sha256(&body), blob);
        assert!(wait_cached(&store, &blob).await);
    }
    assert!(!store.contains(&first), "the older blob made room");
    assert!(store.used_bytes() <= 10 * MIB);
    agent.shutdown().await;
}
