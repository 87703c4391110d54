//! Origin loss (issue 8, item 4): with two origins and replication 2, the
//! origin serving a pull is killed with `kill -9` mid-transfer; the pull
//! and a later one must still succeed. Restarted on its config and data
//! directory, the origin serves the blob it had stored with no upstream
//! request.

// A panic is a failed test, in helpers as in the tests.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use shoal_e2e::cluster::{Cluster, ClusterSpec, origin_served, sha256_digest};
use shoal_e2e::process::Process;
use shoal_e2e::registry::{Auth, Registry};

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_survive_losing_an_origin_and_a_restarted_origin_serves_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(Auth::Anonymous).await;
    let layer = registry.push_one_layer_image(dir.path(), "team/app", "v1", 24 * MIB, 41);
    let digest = layer.digest().to_string();

    let spec = ClusterSpec {
        origins: 2,
        agents: 2,
        upstream_toml: registry.upstream_toml(""),
        default_registry: registry.addr.to_string(),
        // 8 MiB/s per origin: a transfer of seconds, to kill an origin in.
        origin_upload_limit: 8 * MIB,
        agent_upload_limit: 0,
    };
    let cluster_dir = dir.path().join("cluster");
    std::fs::create_dir_all(&cluster_dir).unwrap();
    let mut cluster = Cluster::start(&cluster_dir, &spec).unwrap();
    let agents: Vec<SocketAddr> = cluster.agents.iter().map(|(_, a)| *a).collect();
    let origins: Vec<SocketAddr> = cluster.origins.iter().map(|(_, a)| *a).collect();

    let url = format!("http://{}/v2/team/app/blobs/{digest}", agents[0]);
    let mut response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200, "{}", cluster.logs());
    let mut hasher = Sha256::new();
    let mut victim = None;
    while let Some(chunk) = response.chunk().await.unwrap() {
        hasher.update(&chunk);
        if victim.is_none() {
            // Kill whichever origin is serving this pull.
            let served = [
                origin_served(origins[0]).await.unwrap_or(0),
                origin_served(origins[1]).await.unwrap_or(0),
            ];
            let busiest = usize::from(served[1] > served[0]);
            cluster.origins[busiest].0.kill();
            println!("killed origin-{busiest} (served {served:?})");
            victim = Some(busiest);
        }
    }
    let victim = victim.unwrap();
    assert_eq!(
        format!("sha256:{}", hex::encode(hasher.finalize())),
        digest,
        "{}",
        cluster.logs()
    );
    // A second agent pulls with one origin gone.
    let body = reqwest::get(format!("http://{}/v2/team/app/blobs/{digest}", agents[1]))
        .await
        .unwrap()
        .error_for_status()
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()))
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha256_digest(&body), digest);

    // Restart the killed origin: it serves the stored blob without asking
    // upstream again.
    let upstream_before = registry.requests(&format!("GET /v2/team/app/blobs/{digest}"));
    let config = cluster.dir.join(format!("origin-{victim}.toml"));
    let mut restarted = Process::spawn(
        &format!("origin-{victim}-restarted"),
        "shoal-origin",
        &["--config".to_owned(), config.display().to_string()],
        &cluster.dir,
    )
    .unwrap();
    restarted
        .wait_listening(origins[victim], Duration::from_secs(30))
        .unwrap();
    let response = reqwest::get(format!(
        "http://{}/v2/team/app/blobs/{digest}",
        origins[victim]
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 200, "{}", restarted.log_text());
    let body = response.bytes().await.unwrap();
    assert_eq!(sha256_digest(&body), digest);
    assert_eq!(
        registry.requests(&format!("GET /v2/team/app/blobs/{digest}")),
        upstream_before,
        "the restarted origin fetched a blob it had stored"
    );
}
