//! Faults injected into real processes on loopback (issue 8): the agent's
//! default bind address (item 11), a thundering herd of clients on one
//! blob (item 7), and the tracker down before a pull or killed during one
//! (item 3). docs/RELIABILITY.md records what each measured.

// A panic is a failed test, in helpers as in the tests.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::image::{Arch, Descriptor, Os};
use sha2::{Digest as _, Sha256};
use shoal_e2e::cluster::{Cluster, ClusterSpec, origin_served, sha256_digest};
use shoal_e2e::process::{Process, free_addr};
use shoal_e2e::registry::{Auth, Registry};
use shoal_registry::layout::LayoutWriter;

const MIB: u64 = 1 << 20;

/// The agent's `stall_timeout_ms` default: no swarm progress this long
/// and it falls back to the origins. The cluster keeps the default.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Pushes `team/app:v1` with one random layer of `size` bytes.
fn push_layer(registry: &Registry, root: &Path, size: u64, seed: u64) -> Descriptor {
    let layout = root.join("layout");
    let mut writer = LayoutWriter::create(&layout).unwrap();
    let layer = writer.add_random_layer(size, seed).unwrap();
    let image = writer
        .add_image(std::slice::from_ref(&layer), Arch::Amd64, Os::Linux)
        .unwrap();
    writer.finish(&[("v1", image)]).unwrap();
    registry.push(&layout, "v1", "team/app", "v1", &["--preserve-digests"]);
    layer
}

fn cluster(registry: &Registry, root: &Path, agents: usize, origin_upload_limit: u64) -> Cluster {
    let spec = ClusterSpec {
        origins: 1,
        agents,
        upstream_toml: registry.upstream_toml(""),
        default_registry: registry.addr.to_string(),
        origin_upload_limit,
        agent_upload_limit: 0,
    };
    let dir = root.join("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    Cluster::start(&dir, &spec).unwrap()
}

/// The listening sockets on `port`, as `(local address hex, table)` rows of
/// /proc/net/tcp and /proc/net/tcp6 (state 0A is LISTEN).
fn listeners(port: u16) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let Some((addr, hex_port)) = local.split_once(':') else {
                continue;
            };
            if *state == "0A" && u16::from_str_radix(hex_port, 16) == Ok(port) {
                out.push((addr.to_owned(), table));
            }
        }
    }
    out
}

/// Starts an agent from `listen_line` (empty: the default) and returns the
/// process and the listeners on `port`.
fn agent_listeners(
    dir: &Path,
    name: &str,
    listen_line: &str,
    port: u16,
) -> Vec<(String, &'static str)> {
    let origin = free_addr().unwrap();
    let config = format!(
        "{listen_line}peer_listen = \"{peer}\"\ndata_dir = {data:?}\ndefault_registry = \"\"\n\
         [[origins]]\nname = \"origin-0\"\nhttp = \"http://{origin}\"\npeer = \"{origin}\"\n",
        peer = free_addr().unwrap(),
        data = dir.join(name).display().to_string(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let mut agent = Process::spawn(
        name,
        "shoal-agent",
        &["--config".to_owned(), path.display().to_string()],
        dir,
    )
    .unwrap();
    agent
        .wait_listening(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(30),
        )
        .unwrap();
    listeners(port)
}

#[test]
fn the_agent_binds_loopback_unless_configured_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    // No `listen` key: the default, 127.0.0.1:5050.
    let default = agent_listeners(dir.path(), "agent-default", "", 5050);
    assert_eq!(
        default,
        [("0100007F".to_owned(), "/proc/net/tcp")],
        "the default registry API listener is 127.0.0.1 only"
    );
    // Exposing it takes an explicit address.
    let port = free_addr().unwrap().port();
    let exposed = agent_listeners(
        dir.path(),
        "agent-exposed",
        &format!("listen = \"0.0.0.0:{port}\"\n"),
        port,
    );
    assert_eq!(exposed, [("00000000".to_owned(), "/proc/net/tcp")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_on_one_blob_cause_one_download() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(Auth::Anonymous).await;
    let layer = push_layer(&registry, dir.path(), 16 * MIB, 71);
    let cluster = cluster(&registry, dir.path(), 1, 0);
    let digest = layer.digest().to_string();
    let url = format!("http://{}/v2/team/app/blobs/{digest}", cluster.agents[0].1);
    let before = origin_served(cluster.origins[0].1).await.unwrap();

    let client = reqwest::Client::new();
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let response = client.get(url).send().await?.error_for_status()?;
                anyhow::Ok(sha256_digest(&response.bytes().await?))
            })
        })
        .collect();
    for client in clients {
        let got = client
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
        assert_eq!(got, digest, "a client got other bytes than the layer's");
    }
    let served = origin_served(cluster.origins[0].1).await.unwrap() - before;
    println!(
        "origin served {served} bytes for 50 clients of a {}-byte layer",
        layer.size()
    );
    assert!(
        served < 2 * layer.size(),
        "origin served {served} bytes for one {}-byte layer: more than one download\n{}",
        layer.size(),
        cluster.logs()
    );
    assert_eq!(
        registry.requests(&format!("GET /v2/team/app/blobs/{digest}")),
        1,
        "the upstream was asked for the layer once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_succeed_through_the_origin_when_the_tracker_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(Auth::Anonymous).await;
    let layer = push_layer(&registry, dir.path(), 8 * MIB, 72);
    let mut cluster = cluster(&registry, dir.path(), 1, 0);
    cluster.tracker.kill();
    let url = format!(
        "http://{}/v2/team/app/blobs/{}",
        cluster.agents[0].1,
        layer.digest()
    );
    let started = Instant::now();
    let body = reqwest::get(&url)
        .await
        .unwrap()
        .error_for_status()
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()))
        .bytes()
        .await
        .unwrap();
    let took = started.elapsed();
    println!("pull with the tracker down took {took:?}");
    assert_eq!(sha256_digest(&body), layer.digest().to_string());
    // The bound: one stall timeout before the fallback, plus the transfer.
    assert!(
        took < STALL_TIMEOUT + Duration::from_secs(10),
        "the fallback took {took:?}\n{}",
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_survives_the_tracker_dying_mid_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(Auth::Anonymous).await;
    let layer = push_layer(&registry, dir.path(), 24 * MIB, 73);
    // 8 MiB/s from the origin: a 3 s transfer to kill the tracker in.
    let mut cluster = cluster(&registry, dir.path(), 2, 8 * MIB);
    let urls: Vec<String> = cluster
        .agents
        .iter()
        .map(|(_, agent)| format!("http://{agent}/v2/team/app/blobs/{}", layer.digest()))
        .collect();
    let started = Instant::now();
    let mut response = reqwest::get(&urls[0]).await.unwrap();
    assert_eq!(response.status(), 200, "{}", cluster.logs());
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut killed = false;
    while let Some(chunk) = response.chunk().await.unwrap() {
        hasher.update(&chunk);
        received += chunk.len() as u64;
        if !killed {
            cluster.tracker.kill();
            killed = true;
            println!("tracker killed after {received} bytes");
        }
    }
    assert!(killed);
    assert_eq!(received, layer.size());
    assert_eq!(
        format!("sha256:{}", hex::encode(hasher.finalize())),
        layer.digest().to_string()
    );
    // A second agent starts its pull with the tracker already gone.
    let body = reqwest::get(&urls[1])
        .await
        .unwrap()
        .error_for_status()
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()))
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha256_digest(&body), layer.digest().to_string());
    let took = started.elapsed();
    println!("both pulls took {took:?}");
    // Two transfers at the origin's cap, plus one stall timeout each.
    let transfer = Duration::from_secs(2 * layer.size() / (8 * MIB) + 1);
    assert!(
        took < transfer + 2 * STALL_TIMEOUT,
        "the pulls took {took:?}\n{}",
        cluster.logs()
    );
}
