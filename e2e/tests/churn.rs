//! Churn (issue 8, item 2): 4 agents pull one layer at once and one of
//! them (25%) is killed with `kill -9` mid-transfer. The other three must
//! complete with verified bytes; the killed one, restarted on the same
//! config and data directory, must resume from the pieces it had verified
//! (fetching at most the rest again) and complete.

// A panic is a failed test, in helpers as in the tests.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oci_spec::image::{Arch, Os};
use sha2::{Digest as _, Sha256};
use shoal_e2e::cluster::{Cluster, ClusterSpec};
use shoal_e2e::process::Process;
use shoal_e2e::registry::{Auth, Registry};
use shoal_registry::layout::LayoutWriter;
use shoal_swarm::Metainfo;

const MIB: u64 = 1 << 20;

/// The agent's view of one blob: verified pieces, piece count, verified
/// bytes received from peers, and bytes fetched from origins over HTTP.
async fn agent_progress(agent: SocketAddr, digest: &str) -> Option<(u64, u64, u64, u64)> {
    let stats: serde_json::Value = reqwest::get(format!("http://{agent}/shoal/v1/stats"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let from_origins = stats["bytes_from_origins"].as_u64()?;
    let torrent = stats["torrents"]
        .as_array()?
        .iter()
        .find(|t| t["digest"] == digest)?;
    Some((
        torrent["pieces"].as_u64()?,
        torrent["piece_count"].as_u64()?,
        torrent["downloaded"].as_u64()?,
        from_origins,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agents_resume_from_verified_pieces_and_the_rest_complete() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(Auth::Anonymous).await;
    let layout = dir.path().join("layout");
    let mut writer = LayoutWriter::create(&layout).unwrap();
    // A tar layer of exactly 48 MiB (512-byte header, 1024-byte trailer),
    // so every piece is whole and verified pieces translate into bytes.
    let layer = writer.add_random_layer(48 * MIB - 1536, 61).unwrap();
    let image = writer
        .add_image(std::slice::from_ref(&layer), Arch::Amd64, Os::Linux)
        .unwrap();
    writer.finish(&[("v1", image)]).unwrap();
    registry.push(&layout, "v1", "team/app", "v1", &["--preserve-digests"]);
    let digest = layer.digest().to_string();
    let size = layer.size();

    let spec = ClusterSpec {
        origins: 1,
        agents: 4,
        upstream_toml: registry.upstream_toml(""),
        default_registry: registry.addr.to_string(),
        // Slow enough (several seconds) to kill an agent mid-transfer.
        origin_upload_limit: 8 * MIB,
        agent_upload_limit: 8 * MIB,
    };
    let cluster_dir = dir.path().join("cluster");
    std::fs::create_dir_all(&cluster_dir).unwrap();
    let mut cluster = Cluster::start(&cluster_dir, &spec).unwrap();
    let addrs: Vec<SocketAddr> = cluster.agents.iter().map(|(_, a)| *a).collect();
    let pulls: Vec<_> = addrs
        .iter()
        .map(|agent| {
            let url = format!("http://{agent}/v2/team/app/blobs/{digest}");
            tokio::spawn(async move {
                let body = reqwest::get(url).await?.error_for_status()?.bytes().await?;
                anyhow::Ok(format!("sha256:{}", hex::encode(Sha256::digest(&body))))
            })
        })
        .collect();

    // Kill agent 3 once it holds a quarter of the pieces, but not all.
    let victim = 3;
    let deadline = Instant::now() + Duration::from_secs(60);
    let verified_before_kill = loop {
        if let Some((pieces, count, _, _)) = agent_progress(addrs[victim], &digest).await
            && pieces * 4 >= count
        {
            assert!(
                pieces < count,
                "agent {victim} finished before it could be killed"
            );
            cluster.agents[victim].0.kill();
            break pieces;
        }
        assert!(Instant::now() < deadline, "no progress\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("agent {victim} killed with {verified_before_kill} verified pieces");

    for (i, pull) in pulls.into_iter().enumerate() {
        let result = pull.await.unwrap();
        if i == victim {
            continue;
        }
        let got = result.unwrap_or_else(|e| panic!("agent {i}: {e:#}\n{}", cluster.logs()));
        assert_eq!(got, digest, "agent {i} served other bytes than the layer's");
    }

    // Restart it on the same config and data directory.
    let config = cluster.dir.join(format!("agent-{victim}.toml"));
    let mut restarted = Process::spawn(
        &format!("agent-{victim}-restarted"),
        "shoal-agent",
        &["--config".to_owned(), config.display().to_string()],
        &cluster.dir,
    )
    .unwrap();
    restarted
        .wait_listening(addrs[victim], Duration::from_secs(30))
        .unwrap();
    let body = reqwest::get(format!(
        "http://{}/v2/team/app/blobs/{digest}",
        addrs[victim]
    ))
    .await
    .unwrap()
    .error_for_status()
    .unwrap_or_else(|e| panic!("{e}\n{}", restarted.log_text()))
    .bytes()
    .await
    .unwrap();
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(&body))),
        digest
    );

    let (pieces, count, downloaded, from_origins) = agent_progress(addrs[victim], &digest)
        .await
        .unwrap_or_else(|| panic!("no torrent after the restart\n{}", restarted.log_text()));
    assert_eq!(pieces, count);
    let piece_length = u64::from(Metainfo::piece_length_for(size));
    assert_eq!(size % piece_length, 0, "the layer is whole pieces");
    let missing = size - verified_before_kill * piece_length;
    println!(
        "after restart: {downloaded} bytes from peers + {from_origins} from origins; \
         {missing} bytes were missing at the kill"
    );
    // Resumed: only what was not verified when it was killed is fetched
    // again (pieces verified between that reading and the kill only lower
    // the count).
    assert!(
        downloaded + from_origins <= missing,
        "the restarted agent fetched {} bytes, more than the {missing} it lacked\n{}",
        downloaded + from_origins,
        restarted.log_text()
    );
}
