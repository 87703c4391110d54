//! One of 8 peers is hostile (issue 8, item 1): a test peer that announces
//! itself to the tracker as a complete seeder and flips a byte in every
//! block it serves, among 7 real agents pulling one layer at once from a
//! slow origin. Every client must get the layer's exact bytes (hashed
//! here), every agent that received a corrupt piece must ban the peer, and
//! no agent takes more from it than one round of pipelined requests.

// A panic is a failed test, in helpers as in the tests.
#![allow(clippy::unwrap_used)]

use sha2::{Digest as _, Sha256};
use shoal_e2e::cluster::{Cluster, ClusterSpec};
use shoal_e2e::corrupt_peer::CorruptPeer;
use shoal_e2e::registry::{Auth, Registry};

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serving_corrupt_pieces_is_banned_and_never_reaches_a_client() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(Auth::Anonymous).await;
    let layer = registry.push_one_layer_image(dir.path(), "team/app", "v1", 8 * MIB, 91);
    let digest = layer.digest().to_string();

    let spec = ClusterSpec {
        origins: 1,
        agents: 7,
        upstream_toml: registry.upstream_toml(""),
        default_registry: registry.addr.to_string(),
        // A slow origin, so the agents lean on the (fast, bad) peer.
        origin_upload_limit: 4 * MIB,
        agent_upload_limit: 0,
    };
    let cluster_dir = dir.path().join("cluster");
    std::fs::create_dir_all(&cluster_dir).unwrap();
    let cluster = Cluster::start(&cluster_dir, &spec).unwrap();

    // The bad peer holds the real bytes, fetched straight from upstream.
    let blob = reqwest::get(format!(
        "http://{}/v2/team/app/blobs/{digest}",
        registry.addr
    ))
    .await
    .unwrap()
    .error_for_status()
    .unwrap()
    .bytes()
    .await
    .unwrap();
    let bad = CorruptPeer::start(blob, digest.parse().unwrap(), cluster.tracker_addr)
        .await
        .unwrap();

    let pulls: Vec<_> = cluster
        .agents
        .iter()
        .map(|(_, agent)| {
            let url = format!("http://{agent}/v2/team/app/blobs/{digest}");
            tokio::spawn(async move {
                let body = reqwest::get(url).await?.error_for_status()?.bytes().await?;
                anyhow::Ok(format!("sha256:{}", hex::encode(Sha256::digest(&body))))
            })
        })
        .collect();
    for pull in pulls {
        let got = pull
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
        assert_eq!(
            got, digest,
            "a client received bytes that are not the layer's"
        );
    }

    let served = bad.served();
    let short = bad.short_id();
    let mut fed = 0;
    for (process, _) in &cluster.agents {
        let log = process.log_text();
        let bans: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("banning peer") && l.contains(&short))
            .collect();
        if let Some(ban) = bans.first() {
            println!("{}: {ban}", process.name());
        }
        assert!(
            bans.len() <= 1,
            "{} banned the peer {} times",
            process.name(),
            bans.len()
        );
        fed += bans.len();
    }
    println!("bad peer {short}: {served:#?}");
    let took_pieces = served.values().filter(|s| s.whole_pieces > 0).count();
    assert!(
        took_pieces > 0,
        "no agent took a whole piece from the bad peer, so the test proved nothing: {served:?}"
    );
    assert!(
        fed >= took_pieces,
        "{took_pieces} agents got corrupt pieces but only {fed} banned the peer\n{}",
        cluster.logs()
    );
    for (agent, s) in &served {
        // Banned on the first bad piece: blocks already in flight may still
        // arrive, but no agent asks the peer for anything after the ban, on
        // that connection or a new one.
        assert!(
            s.connections_with_requests <= 1,
            "agent {agent} kept using the bad peer: {s:?}"
        );
        // Nor does it dial the peer again while the ban lasts, though the
        // tracker hands it out on every announce.
        if s.whole_pieces > 0 {
            assert!(
                s.connections <= 1,
                "agent {agent} re-dialed the peer it banned: {s:?}"
            );
        }
    }
}
