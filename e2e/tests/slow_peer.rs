//! Slow peer (issue 8, item 6): a test peer announced as a complete seeder
//! serves correct bytes at 64 KiB/s among 3 agents pulling one layer from
//! an uncapped origin. The agents must not wait for it: its requests time
//! out and move elsewhere, so every pull ends within the bound set by the
//! agent's timeouts, well before the slow peer could have delivered even
//! one whole piece.

// A panic is a failed test, in helpers as in the tests.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use shoal_e2e::cluster::{Cluster, ClusterSpec};
use shoal_e2e::corrupt_peer::{Behaviour, CorruptPeer};
use shoal_e2e::registry::{Auth, Registry};
use shoal_swarm::Metainfo;

const MIB: u64 = 1 << 20;
const SLOW: u64 = 64 * 1024;
/// The agent's `stall_timeout_ms` default.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_kib_per_second_peer_does_not_hold_the_others_back() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(Auth::Anonymous).await;
    let layer = registry.push_one_layer_image(dir.path(), "team/app", "v1", 16 * MIB, 31);
    let digest = layer.digest().to_string();

    let spec = ClusterSpec {
        origins: 1,
        agents: 3,
        upstream_toml: registry.upstream_toml(""),
        default_registry: registry.addr.to_string(),
        origin_upload_limit: 0,
        agent_upload_limit: 0,
    };
    let cluster_dir = dir.path().join("cluster");
    std::fs::create_dir_all(&cluster_dir).unwrap();
    let cluster = Cluster::start(&cluster_dir, &spec).unwrap();
    let blob = reqwest::get(format!(
        "http://{}/v2/team/app/blobs/{digest}",
        registry.addr
    ))
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    let slow = CorruptPeer::start_with(
        blob,
        digest.parse().unwrap(),
        cluster.tracker_addr,
        Behaviour::Slow {
            bytes_per_second: SLOW,
        },
    )
    .await
    .unwrap();

    let started = Instant::now();
    let pulls: Vec<_> = cluster
        .agents
        .iter()
        .map(|(_, agent)| {
            let url = format!("http://{agent}/v2/team/app/blobs/{digest}");
            tokio::spawn(async move {
                let body = reqwest::get(url).await?.error_for_status()?.bytes().await?;
                anyhow::Ok((
                    format!("sha256:{}", hex::encode(Sha256::digest(&body))),
                    started.elapsed(),
                ))
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for pull in pulls {
        let (got, took) = pull
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
        assert_eq!(got, digest);
        slowest = slowest.max(took);
    }
    let served = slow.served();
    let blocks: u64 = served.values().map(|s| s.blocks).sum();
    let requests: u64 = served.values().map(|s| s.requests).sum();
    println!(
        "slowest pull {slowest:?}; slow peer got {requests} requests, sent {blocks} blocks: \
         {served:?}"
    );
    assert!(
        requests > 0,
        "no agent asked the slow peer for anything, so the test proved nothing"
    );

    // One piece from the slow peer alone takes piece_length / 64 KiB/s
    // (16 s for 1 MiB). The bound: one stall timeout plus the request
    // timeout of one piece (Kraken's rule, 4 s per MiB), which is less.
    let piece = u64::from(Metainfo::piece_length_for(layer.size()));
    let one_slow_piece = Duration::from_secs(piece / SLOW);
    let bound = STALL_TIMEOUT + Duration::from_secs(4 * piece.div_ceil(MIB));
    assert!(bound < one_slow_piece, "the bound must be able to fail");
    assert!(
        slowest < bound,
        "a pull took {slowest:?}: held back by the slow peer\n{}",
        cluster.logs()
    );
}
