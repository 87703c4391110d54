//! One seeder and eight leechers on loopback swarm a 256 MiB random blob.
//! The seeder's upload is capped well below what eight clients pulling from it
//! alone would need, so the leechers only finish in time by trading pieces
//! among themselves; the test checks that they did, and that every leecher
//! ends with the exact bytes.

// Helpers here serve only tests: a panic in them is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use shoal_swarm::Digest;
use shoal_swarm::session::{PeerAddr, Session, SessionConfig};
use shoal_swarm::store::Store;
use tokio::io::AsyncReadExt;

const BLOB_LEN: usize = 256 << 20;
const LEECHERS: usize = 8;
/// 32 MiB/s: client-server would need 8 x 256 MiB / 32 MiB/s = 64 s.
const SEEDER_UPLOAD: u64 = 32 << 20;

fn random_blob(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rngs::SmallRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

/// Hashes the file independently of the store, so that the check does not
/// trust the code under test.
async fn sha256_of_file(path: &std::path::Path) -> std::io::Result<Digest> {
    use sha2::{Digest as _, Sha256};
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Digest::from_bytes(hasher.finalize().into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_leechers_share_a_capped_seeders_blob() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "shoal_swarm=info".into()),
        )
        .with_test_writer()
        .try_init();
    let dirs: Vec<_> = (0..=LEECHERS)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();

    let data = random_blob(BLOB_LEN, 7);
    let digest = Digest::of(&data);
    let seeder_store = Store::open(dirs[0].path(), 0).await.unwrap();
    let mut writer = seeder_store.ingest(digest, BLOB_LEN as u64).await.unwrap();
    for chunk in data.chunks(4 << 20) {
        writer.write(chunk).await.unwrap();
    }
    let (metainfo, _reader) = writer.finish().await.unwrap();
    drop(data);

    let seeder = Session::start(
        SessionConfig {
            upload_limit: SEEDER_UPLOAD,
            ..SessionConfig::default()
        },
        seeder_store,
    )
    .await
    .unwrap();
    let seeding = seeder.seed(&digest).await.unwrap();

    let mut leechers = Vec::new();
    for dir in &dirs[1..] {
        let store = Store::open(dir.path(), 0).await.unwrap();
        leechers.push(
            Session::start(SessionConfig::default(), store)
                .await
                .unwrap(),
        );
    }
    let everyone: Vec<PeerAddr> = std::iter::once(&seeder)
        .chain(&leechers)
        .map(|s| PeerAddr {
            addr: s.local_addr(),
            id: Some(s.peer_id()),
        })
        .collect();

    let started = Instant::now();
    let mut handles = Vec::new();
    for leecher in &leechers {
        let handle = leecher.download(Arc::clone(&metainfo)).await.unwrap();
        handle.add_peers(everyone.iter().copied());
        handles.push(handle);
    }
    // The downloads run in their own tasks; awaiting them in turn is enough.
    let readers = tokio::time::timeout(Duration::from_secs(240), async {
        let mut readers = Vec::new();
        for handle in &handles {
            readers.push(handle.wait_complete().await);
        }
        readers
    })
    .await
    .expect("swarm did not finish in 240 s");
    let elapsed = started.elapsed();

    let mut downloaded = 0;
    let mut leecher_uploaded = 0;
    for (reader, handle) in readers.into_iter().zip(&handles) {
        let reader = reader.expect("leecher failed");
        assert_eq!(reader.len(), BLOB_LEN as u64);
        assert_eq!(sha256_of_file(reader.path()).await.unwrap(), digest);
        let progress = handle.progress();
        downloaded += progress.downloaded;
        leecher_uploaded += progress.uploaded;
    }
    let seeder_uploaded = seeding.progress().uploaded;
    eprintln!(
        "swarm of {LEECHERS}: {:.1} s, seeder sent {} MiB, leechers sent {} MiB, received {} MiB",
        elapsed.as_secs_f64(),
        seeder_uploaded >> 20,
        leecher_uploaded >> 20,
        downloaded >> 20
    );
    let total = (LEECHERS * BLOB_LEN) as u64;
    assert!(
        downloaded >= total,
        "leechers received {downloaded} of {total} bytes"
    );
    // Client-server would make the seeder send all 8 copies. Require that
    // peers, not the seeder, sent at least half of what leechers received.
    assert!(
        leecher_uploaded * 2 >= total,
        "peers served only {leecher_uploaded} of {total} bytes; the seeder sent {seeder_uploaded}"
    );
    assert!(
        seeder_uploaded < total / 2,
        "the seeder sent {seeder_uploaded} bytes, more than half of {total}"
    );

    for leecher in &leechers {
        leecher.shutdown().await;
    }
    seeder.shutdown().await;
}
