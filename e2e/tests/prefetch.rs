//! Bulk rollout (issue 10, item 6): `shoal prefetch` warms the caches of
//! the matching agents through a real tracker, origin and agents and a real
//! `docker-registry` upstream; a later pull is then served from the
//! agents' caches, with no byte from the origin.

// A panic is a failed test, in helpers as in the tests.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Output;
use std::time::{Duration, Instant};

use shoal_e2e::clients::skopeo_copy;
use shoal_e2e::cluster::{Cluster, ClusterSpec, origin_served};
use shoal_e2e::process::binary;
use shoal_e2e::registry::{Auth, Registry};

const MIB: u64 = 1 << 20;
const AGENTS: usize = 5;

/// Runs `shoal prefetch` with `args`, bounded in time.
async fn prefetch(cluster: &Cluster, args: &[&str]) -> Output {
    let tracker = format!("http://{}", cluster.tracker_addr);
    let run = tokio::process::Command::new(binary("shoal").unwrap())
        .arg("prefetch")
        .args(args)
        .args(["--tracker", &tracker, "--timeout", "120"])
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("shoal prefetch did not finish")
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn stats(agent: SocketAddr) -> serde_json::Value {
    reqwest::get(format!("http://{agent}/shoal/v1/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Whether the agent holds `digest` complete (seeded blobs are listed).
async fn holds(agent: SocketAddr, digest: &str) -> bool {
    stats(agent).await["torrents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["digest"] == digest && t["state"] == "Seeding")
}

/// [`holds`], allowing a moment for a blob finished from the origins
/// (after a stall) to start seeding.
async fn comes_to_hold(agent: SocketAddr, digest: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if holds(agent, digest).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Agents open their job watch just after they start listening.
fn wait_for_watchers(cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = cluster.tracker.log_text();
        if log.matches("agent watching for prefetch jobs").count() >= AGENTS {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "agents not watching:\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_warms_every_matching_agent_and_later_pulls_come_from_cache() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(Auth::Anonymous).await;
    let app_dir = dir.path().join("app");
    let db_dir = dir.path().join("db");
    std::fs::create_dir_all(&app_dir).unwrap();
    std::fs::create_dir_all(&db_dir).unwrap();
    let app = registry.push_one_layer_image(&app_dir, "team/app", "v1", 24 * MIB, 61);
    let db = registry.push_one_layer_image(&db_dir, "team/db", "v1", 6 * MIB, 62);
    let (app, db) = (app.digest().to_string(), db.digest().to_string());
    let ns = registry.addr.to_string();

    let spec = ClusterSpec {
        origins: 1,
        agents: AGENTS,
        upstream_toml: registry.upstream_toml(""),
        default_registry: ns.clone(),
        origin_upload_limit: 0,
        agent_upload_limit: 0,
    };
    let cluster_dir = dir.path().join("cluster");
    std::fs::create_dir_all(&cluster_dir).unwrap();
    let cluster = Cluster::start(&cluster_dir, &spec).unwrap();
    let agents: Vec<SocketAddr> = cluster.agents.iter().map(|(_, a)| *a).collect();
    let origin = cluster.origins[0].1;
    wait_for_watchers(&cluster);

    // Every agent: the image named with its registry.
    let out = prefetch(&cluster, &[&format!("{ns}/team/app:v1")]).await;
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stderr),
        cluster.logs()
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("prefetched team/app:v1 on 5 node(s)"),
        "{stdout}"
    );
    for (i, agent) in agents.iter().enumerate() {
        assert!(
            comes_to_hold(*agent, &app).await,
            "agent-{i} lacks the layer"
        );
    }

    // A real pull through an agent afterwards: nothing from the origin.
    let served = origin_served(origin).await.unwrap();
    let from_origins = stats(agents[3]).await["bytes_from_origins"]
        .as_u64()
        .unwrap();
    skopeo_copy(
        &agents[3].to_string(),
        "team/app:v1",
        &dir.path().join("pulled"),
        false,
    )
    .unwrap();
    assert_eq!(origin_served(origin).await.unwrap(), served);
    assert_eq!(
        stats(agents[3]).await["bytes_from_origins"]
            .as_u64()
            .unwrap(),
        from_origins
    );

    // A selector: only the odd agents, and the others stay cold.
    let out = prefetch(&cluster, &["team/db:v1", "--selector", "parity=odd"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("prefetched team/db:v1 on 2 node(s): agent-1, agent-3"),
        "{stdout}"
    );
    for (i, agent) in agents.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
        assert!(
            comes_to_hold(*agent, &db).await,
            "agent-{i} lacks the layer"
        );
    }
    for (i, agent) in agents.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        assert!(!holds(*agent, &db).await, "agent-{i} was not selected");
    }

    // No node matches: a clear refusal, non-zero.
    let out = prefetch(&cluster, &["team/db:v1", "--selector", "parity=none"]).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no watching node matches the selector parity=none"),
        "{stderr}"
    );

    // An image upstream lacks: every selected node fails, each named.
    let out = prefetch(&cluster, &["team/app:missing", "--selector", "parity=even"]).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("failed on 3 of 3 node(s)"), "{stderr}");
    for node in ["agent-0", "agent-2", "agent-4"] {
        assert!(stderr.contains(&format!("  {node}: manifest")), "{stderr}");
    }
}
