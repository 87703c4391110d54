//! Every refused input is INVALID_ARGUMENT naming the field, over the wire.

use shoal_proto::tracker::announce_request::Pieces;
use shoal_proto::tracker::{AnnounceRequest, GetMetainfoRequest};
use shoal_swarm::Digest;
use shoal_tracker::MemoryStore;
use tonic::Code;

use crate::support::{InProcess, announce, settings};

fn good() -> AnnounceRequest {
    announce(&Digest::of(b"layer"), 1, 0, "")
}

async fn refused(tracker: &InProcess, request: AnnounceRequest) -> String {
    let status = tracker.client().await.announce(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status.message().to_string()
}

#[tokio::test]
async fn malformed_digest() {
    let tracker = InProcess::start(settings(""), MemoryStore::default()).await;
    let mut r = good();
    r.digest = "sha512:abcd".into();
    assert!(
        refused(&tracker, r)
            .await
            .starts_with("digest: unsupported digest algorithm")
    );
    let mut r = good();
    r.digest = "sha256:NOTHEX".into();
    assert!(refused(&tracker, r).await.starts_with("digest: "));
    let status = tracker
        .client()
        .await
        .get_metainfo(GetMetainfoRequest {
            digest: "latest".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("digest: "));
}

#[tokio::test]
async fn empty_and_oversized_peer_ids() {
    let tracker = InProcess::start(settings(""), MemoryStore::default()).await;
    let mut r = good();
    r.peer.as_mut().unwrap().id.clear();
    assert_eq!(
        refused(&tracker, r).await,
        "peer.id: must be exactly 20 bytes, got 0"
    );
    let mut r = good();
    r.peer.as_mut().unwrap().id = vec![1; 21];
    assert_eq!(
        refused(&tracker, r).await,
        "peer.id: must be exactly 20 bytes, got 21"
    );
}

#[tokio::test]
async fn port_zero() {
    let tracker = InProcess::start(settings(""), MemoryStore::default()).await;
    let mut r = good();
    r.peer.as_mut().unwrap().port = 0;
    assert_eq!(
        refused(&tracker, r).await,
        "peer.port: must be 1..=65535, got 0"
    );
}

#[tokio::test]
async fn bitfield_longer_than_the_piece_count() {
    let tracker = InProcess::start(settings(""), MemoryStore::default()).await;
    let mut r = good();
    r.total_pieces = 2000;
    r.pieces = Some(Pieces::Bitfield(vec![0xff; 300]));
    assert_eq!(
        refused(&tracker, r).await,
        "bitfield: 300 bytes for 2000 pieces"
    );
}

#[tokio::test]
async fn oversized_message() {
    let tracker = InProcess::start(settings(""), MemoryStore::default()).await;
    let mut r = good();
    r.pieces = Some(Pieces::Bitfield(vec![0; 70_000]));
    assert_eq!(
        refused(&tracker, r).await,
        "request: larger than the 65536-byte limit"
    );
    // The connection stays usable for well-formed requests.
    tracker.client().await.announce(good()).await.unwrap();
}
