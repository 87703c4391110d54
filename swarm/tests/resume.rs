//! A leecher stopped halfway resumes from the pieces it verified: after a
//! restart on the same store it fetches only what was missing.

// Helpers here serve only tests: a panic in them is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use shoal_swarm::Digest;
use shoal_swarm::session::{PeerAddr, Session, SessionConfig};
use shoal_swarm::store::Store;

const MIB: u64 = 1 << 20;
const BLOB_LEN: u64 = 32 * MIB;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leecher_fetches_only_missing_pieces() {
    let mut data = vec![0u8; BLOB_LEN as usize];
    rand::rngs::SmallRng::seed_from_u64(11).fill_bytes(&mut data);
    let digest = Digest::of(&data);
    let seed_dir = tempfile::tempdir().unwrap();
    let seed_store = Store::open(seed_dir.path(), 0).await.unwrap();
    let mut writer = seed_store.ingest(digest, BLOB_LEN).await.unwrap();
    writer.write(&data).await.unwrap();
    let (metainfo, _) = writer.finish().await.unwrap();
    // Slow enough (8 MiB/s) that the leecher can be stopped partway.
    let seeder = Session::start(
        SessionConfig {
            upload_limit: 8 * MIB,
            ..SessionConfig::default()
        },
        seed_store,
    )
    .await
    .unwrap();
    seeder.seed(&digest).await.unwrap();
    let seed = PeerAddr::from(seeder.local_addr());

    let dir = tempfile::tempdir().unwrap();
    let first = Session::start(
        SessionConfig::default(),
        Store::open(dir.path(), 0).await.unwrap(),
    )
    .await
    .unwrap();
    let handle = first.download(Arc::clone(&metainfo)).await.unwrap();
    handle.add_peers([seed]);
    let mut progress = handle.subscribe();
    tokio::time::timeout(
        Duration::from_secs(30),
        progress.wait_for(|p| p.pieces >= 12),
    )
    .await
    .unwrap()
    .unwrap();
    first.shutdown().await;
    drop(handle);
    drop(first);

    let store = Store::open(dir.path(), 0).await.unwrap();
    let second = Session::start(SessionConfig::default(), store)
        .await
        .unwrap();
    let handle = second.download(Arc::clone(&metainfo)).await.unwrap();
    let resumed = handle.progress().pieces;
    assert!(resumed >= 12, "only {resumed} pieces survived the restart");
    handle.add_peers([seed]);
    let reader = tokio::time::timeout(Duration::from_secs(60), handle.wait_complete())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reader.read_at(0, data.len()).await.unwrap(), &data[..]);
    let missing = u64::from(metainfo.piece_count() - resumed) * u64::from(metainfo.piece_length());
    let fetched = handle.progress().downloaded;
    assert_eq!(
        fetched, missing,
        "fetched {fetched} bytes after resuming with {resumed} pieces; {missing} were missing"
    );
}
