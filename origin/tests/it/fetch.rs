//! Fetch once, 202 while fetching, a failed fetch leaving nothing, and a
//! restart that seeds every stored blob without asking upstream.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{StatusCode, header};
use futures_util::future::join_all;
use prost::Message as _;
use shoal_swarm::session::{PeerAddr, Session, SessionConfig};
use shoal_swarm::store::Store;
use shoal_swarm::{Digest, Metainfo};

use crate::support::{
    Auth, PASSWORD, Registry, TestImages, digest_of, error_of, get, get_ready, start_origin,
};

const REPO: &str = "fetch/app";

async fn registry_with_image() -> (Registry, TestImages) {
    let registry = Registry::start(Auth::Anonymous).await;
    let images = TestImages::build(200);
    registry.push(&images.layout(), "v1", REPO, "v1", &["--preserve-digests"]);
    (registry, images)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_upstream_fetch() {
    let (registry, images) = registry_with_image().await;
    let data = tempfile::tempdir().unwrap();
    let extra = format!(
        "fetch_wait_ms = 20000\n{}",
        registry.upstream_toml(PASSWORD)
    );
    let origin = start_origin(data.path(), &extra).await;
    let layer = &images.v1_layers[0];
    let url = format!(
        "http://{}/v2/{REPO}/blobs/{}",
        origin.http_addr(),
        layer.digest()
    );
    let answers = join_all((0..8).map(|_| get_ready(&url, &[]))).await;
    for (status, _, body) in &answers {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(Digest::of(body), digest_of(layer));
    }
    let blob_gets = registry.requests(&format!("GET /v2/{REPO}/blobs/{}", layer.digest()));
    assert_eq!(
        blob_gets, 1,
        "the registry saw {blob_gets} GETs of the blob"
    );
    let stats = origin.stats();
    assert_eq!(stats.upstream_requests, 1);
    assert_eq!(stats.upstream_bytes, layer.size());
    assert_eq!(stats.http_bytes_sent, 8 * layer.size());
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_being_fetched_is_202_then_served_with_metainfo() {
    let (registry, images) = registry_with_image().await;
    let data = tempfile::tempdir().unwrap();
    let extra = format!("fetch_wait_ms = 0\n{}", registry.upstream_toml(PASSWORD));
    let origin = start_origin(data.path(), &extra).await;
    let base = format!("http://{}", origin.http_addr());
    let layer = &images.v1_layers[0];
    let digest = digest_of(layer);

    let metainfo_url = format!(
        "{base}/internal/v1/metainfo/{digest}?repository={}&namespace={}",
        REPO.replace('/', "%2F"),
        registry.addr
    );
    let (status, headers, _) = get(&metainfo_url, &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let (status, headers, body) = get_ready(&metainfo_url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-protobuf");
    let proto = shoal_proto::tracker::Metainfo::decode(body.as_slice()).unwrap();
    let metainfo = Metainfo::from_proto(&proto).unwrap();
    assert_eq!(*metainfo.digest(), digest);
    assert_eq!(metainfo.length(), layer.size());

    let other = &images.v1_layers[1];
    let url = format!("{base}/v2/{REPO}/blobs/{}", other.digest());
    let (status, headers, _) = get(&url, &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let (status, _, body) = get_ready(&url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Digest::of(&body), digest_of(other));

    let unknown = Digest::of(b"never pushed");
    let (status, _, body) = get_ready(&format!("{base}/v2/{REPO}/blobs/{unknown}"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&body).0, "BLOB_UNKNOWN");
    let unknown_meta = format!("{base}/internal/v1/metainfo/{unknown}?repository=fetch/app");
    let (status, _, _) = get_ready(&unknown_meta, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_seeds_every_stored_blob_without_upstream_requests() {
    let (registry, images) = registry_with_image().await;
    let data = tempfile::tempdir().unwrap();
    let upstream = registry.upstream_toml(PASSWORD);
    let origin = start_origin(data.path(), &upstream).await;
    let base = format!("http://{}", origin.http_addr());
    for layer in &images.v1_layers {
        let url = format!("{base}/v2/{REPO}/blobs/{}", layer.digest());
        assert_eq!(get_ready(&url, &[]).await.0, StatusCode::OK);
    }
    origin.shutdown().await;
    let before = registry.requests("GET /v2/") + registry.requests("HEAD /v2/");
    assert!(before >= images.v1_layers.len());

    let origin = start_origin(data.path(), &upstream).await;
    let seeding: Vec<Digest> = origin
        .session()
        .torrents()
        .iter()
        .map(|t| *t.digest())
        .collect();
    for layer in &images.v1_layers {
        assert!(seeding.contains(&digest_of(layer)), "{layer:?} not seeded");
    }
    assert_eq!(origin.stats().blobs_stored, images.v1_layers.len() as u64);

    // A peer downloads the largest layer through the swarm from the
    // restarted origin alone.
    let layer = &images.v1_layers[0];
    let base = format!("http://{}", origin.http_addr());
    let metainfo_url = format!("{base}/internal/v1/metainfo/{}", layer.digest());
    let (status, _, body) = get(&metainfo_url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let proto = shoal_proto::tracker::Metainfo::decode(body.as_slice()).unwrap();
    let metainfo = Arc::new(Metainfo::from_proto(&proto).unwrap());
    let peer_dir = tempfile::tempdir().unwrap();
    let peer = Session::start(
        SessionConfig::default(),
        Store::open(peer_dir.path(), 0).await.unwrap(),
    )
    .await
    .unwrap();
    let torrent = peer.download(metainfo).await.unwrap();
    torrent.add_peers([PeerAddr::from(origin.peer_addr())]);
    let reader = tokio::time::timeout(Duration::from_secs(30), torrent.wait_complete())
        .await
        .expect("swarm download finishes")
        .unwrap();
    assert_eq!(reader.len(), layer.size());
    peer.shutdown().await;

    let (status, _, body) = get(&format!("{base}/v2/{REPO}/blobs/{}", layer.digest()), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Digest::of(&body), digest_of(layer));

    let stats = origin.stats();
    assert_eq!(stats.upstream_requests, 0, "{stats:?}");
    assert!(stats.peer_bytes_sent >= layer.size(), "{stats:?}");
    let after = registry.requests("GET /v2/") + registry.requests("HEAD /v2/");
    assert_eq!(
        after, before,
        "the registry was asked again after the restart"
    );
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_upstream_blob_leaves_nothing_complete() {
    let images = TestImages::build(300);
    let layer = &images.v1_layers[1];
    let path = images
        .layout()
        .join("blobs/sha256")
        .join(digest_of(layer).hex());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let data = tempfile::tempdir().unwrap();
    let extra = format!(
        "fetch_wait_ms = 5000\n[upstreams.\"shoal.local\"]\nlayout = \"{}\"\n",
        images.layout().display()
    );
    let origin = start_origin(data.path(), &extra).await;
    let base = format!("http://{}", origin.http_addr());
    let url = format!("{base}/v2/any/repo/blobs/{}", layer.digest());
    let (status, _, body) = get_ready(&url, &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let (code, message) = error_of(&body);
    assert_eq!(code, "UNAVAILABLE");
    assert!(message.contains("digest mismatch"), "{message}");
    assert_eq!(origin.stats().blobs_stored, 0);
    let stored = std::fs::read_dir(data.path().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(stored, 0);
    let tmp = std::fs::read_dir(data.path().join("tmp")).unwrap().count();
    assert_eq!(tmp, 0);

    // The intact layers of the same layout are served (the demo's path).
    let good = &images.v1_layers[0];
    let (status, _, body) =
        get_ready(&format!("{base}/v2/any/repo/blobs/{}", good.digest()), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Digest::of(&body), digest_of(good));
    let (status, headers, _) = get(&format!("{base}/v2/any/repo/manifests/v1"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["docker-content-digest"],
        images.v1.digest().to_string()
    );
    origin.shutdown().await;
}
