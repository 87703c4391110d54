//! Disk full and quota (issue 8, item 5).
//!
//! Disk full: an agent's cache sits on a 6 MiB tmpfs and a client asks it
//! for a 16 MiB layer. The client must get a clean error (an error status,
//! or a body cut short that its Content-Length exposes; never wrong bytes),
//! nothing partial may be marked complete, and the agent must go on serving
//! a layer that fits. Needs root (mount).
//!
//! Quota: an agent whose cache quota (6 MiB) is smaller than the layer
//! knows that before it writes a byte, so it streams the layer from an
//! origin, verified against its digest, without caching it; what it
//! already cached stays cached.

// A panic is a failed test, in helpers as in the tests.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use oci_spec::image::{Arch, Os};
use sha2::{Digest as _, Sha256};
use shoal_e2e::cluster::{Cluster, ClusterSpec};
use shoal_e2e::process::Process;
use shoal_e2e::registry::{Auth, Registry};
use shoal_registry::layout::LayoutWriter;

const MIB: u64 = 1 << 20;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mount tmpfs at {} (needs root)",
            at.display()
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// What a GET got: status, and the body's digest if it was complete.
async fn fetch(url: &str) -> (u16, Result<String, String>) {
    let response = match reqwest::get(url).await {
        Ok(response) => response,
        Err(e) => return (0, Err(e.to_string())),
    };
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map(|b| format!("sha256:{}", hex::encode(Sha256::digest(&b))))
        .map_err(|e| format!("body: {e}"));
    (status, body)
}

/// A clean failure: an error status (5xx), or a 200 whose body was cut
/// short (headers go out with the first verified piece); a complete body is
/// the layer's own bytes.
fn assert_clean(status: u16, body: &Result<String, String>, digest: &str, cluster: &Cluster) {
    match (status, body) {
        (200, Ok(got)) => assert_eq!(got, digest, "a 200 with wrong bytes"),
        (200, Err(_)) => {}
        (status, _) => assert!(
            status >= 500,
            "status {status} for a full disk\n{}",
            cluster.logs()
        ),
    }
}

/// A registry with a 16 MiB and a 2 MiB layer, and a cluster whose one
/// agent stores on a 6 MiB tmpfs. Bind the result in this order, so that
/// the agent dies before its disk is unmounted.
struct Setup {
    _dir: tempfile::TempDir,
    _registry: Registry,
    _tmpfs: Tmpfs,
    cluster: Cluster,
    store: PathBuf,
    big: String,
    small: String,
}

/// A registry holding `team/app:v1`, an image of a 16 MiB and a 2 MiB
/// layer; returns it with the two layers' digests.
async fn registry_with_layers(dir: &Path) -> (Registry, String, String) {
    let registry = Registry::start(Auth::Anonymous).await;
    let layout = dir.join("layout");
    let mut writer = LayoutWriter::create(&layout).unwrap();
    let big = writer.add_random_layer(16 * MIB, 51).unwrap();
    let small = writer.add_random_layer(2 * MIB, 52).unwrap();
    let image = writer
        .add_image(&[big.clone(), small.clone()], Arch::Amd64, Os::Linux)
        .unwrap();
    writer.finish(&[("v1", image)]).unwrap();
    registry.push(&layout, "v1", "team/app", "v1", &["--preserve-digests"]);
    (
        registry,
        big.digest().to_string(),
        small.digest().to_string(),
    )
}

/// One origin and one agent in front of `registry`.
fn spec(registry: &Registry) -> ClusterSpec {
    ClusterSpec {
        origins: 1,
        agents: 1,
        upstream_toml: registry.upstream_toml(""),
        default_registry: registry.addr.to_string(),
        origin_upload_limit: 0,
        agent_upload_limit: 0,
    }
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (registry, big, small) = registry_with_layers(dir.path()).await;
    let cluster_dir = dir.path().join("cluster");
    let store = cluster_dir.join("agent-0");
    let tmpfs = Tmpfs::mount(&store, "6m");
    let cluster = Cluster::start(&cluster_dir, &spec(&registry)).unwrap();
    Setup {
        _dir: dir,
        _registry: registry,
        _tmpfs: tmpfs,
        cluster,
        store,
        big,
        small,
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // Kill the agent before the tmpfs under it goes.
        for (process, _) in &mut self.cluster.agents {
            process.kill();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_pull_cleanly_and_marks_nothing_complete() {
    let setup = setup().await;
    let agent = setup.cluster.agents[0].1;
    let url = format!("http://{agent}/v2/team/app/blobs/{}", setup.big);

    let (status, body) = fetch(&url).await;
    println!("16 MiB layer on a 6 MiB disk: status {status}, body {body:?}");
    assert_clean(status, &body, &setup.big, &setup.cluster);
    let complete = setup
        .store
        .join("blobs/sha256")
        .join(setup.big.trim_start_matches("sha256:"));
    if body.as_deref() != Ok(setup.big.as_str()) {
        assert!(
            !complete.exists(),
            "the agent marked a partial layer complete"
        );
    }
    // A retry fails as cleanly, and the agent still answers the API and
    // manifests (which need no disk).
    let (status, body) = fetch(&url).await;
    println!("16 MiB layer again: status {status}, body {body:?}");
    assert_clean(status, &body, &setup.big, &setup.cluster);
    assert!(!complete.exists() || body.as_deref() == Ok(setup.big.as_str()));
    let manifest = reqwest::get(format!("http://{agent}/v2/team/app/manifests/v1"))
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200, "{}", setup.cluster.logs());
}

/// The failed download's pieces fill the disk; the next blob's first
/// write meets ENOSPC, evicts them (nothing pins them any more) and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_full_disk_the_agent_still_serves_a_layer_that_fits() {
    let setup = setup().await;
    let agent = setup.cluster.agents[0].1;
    let (status, body) = fetch(&format!("http://{agent}/v2/team/app/blobs/{}", setup.big)).await;
    assert_clean(status, &body, &setup.big, &setup.cluster);
    let (status, body) = fetch(&format!("http://{agent}/v2/team/app/blobs/{}", setup.small)).await;
    println!("2 MiB layer afterwards: status {status}, body {body:?}");
    assert_eq!(status, 200, "{}", setup.cluster.logs());
    assert_eq!(body.as_deref(), Ok(setup.small.as_str()));
}

/// Every file under `dir` whose path mentions `needle`.
fn files_naming(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.to_string_lossy().contains(needle) {
            found.push(path.clone());
        }
        if path.is_dir() {
            found.extend(files_naming(&path, needle));
        }
    }
    found
}

/// Waits up to 10 s for `path` to appear (a blob is moved into the cache
/// just after its last piece reached the client).
async fn appears(path: &Path) -> bool {
    for _ in 0..200 {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Quota smaller than the layer, no disk trouble: the 2 MiB layer is
/// cached, the 16 MiB one (over the 6 MiB quota) streams through whole and
/// verified, leaves no file behind and evicts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_larger_than_the_quota_streams_through_uncached() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, big, small) = registry_with_layers(dir.path()).await;
    let cluster_dir = dir.path().join("cluster");
    std::fs::create_dir_all(&cluster_dir).unwrap();
    let mut cluster = Cluster::start(&cluster_dir, &spec(&registry)).unwrap();
    // The same agent again, its quota set by the flag over its file.
    let agent = cluster.agents[0].1;
    cluster.agents[0].0.kill();
    let config = cluster_dir.join("agent-0.toml");
    let mut quota_agent = Process::spawn(
        "agent-0-quota",
        "shoal-agent",
        &[
            "--config".to_owned(),
            config.display().to_string(),
            "--cache-bytes".to_owned(),
            (6 * MIB).to_string(),
        ],
        &cluster_dir,
    )
    .unwrap();
    quota_agent
        .wait_listening(agent, Duration::from_secs(30))
        .unwrap();
    let store = cluster_dir.join("agent-0");
    let blob_url = |digest: &str| format!("http://{agent}/v2/team/app/blobs/{digest}");
    let cached = |digest: &str| {
        store
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };

    let (status, body) = fetch(&blob_url(&small)).await;
    assert_eq!(status, 200, "{}", quota_agent.log_text());
    assert_eq!(body.as_deref(), Ok(small.as_str()));
    assert!(
        appears(&cached(&small)).await,
        "the 2 MiB layer was not cached under a 6 MiB quota\n{}",
        quota_agent.log_text()
    );

    let started = std::time::Instant::now();
    let (status, body) = fetch(&blob_url(&big)).await;
    println!(
        "16 MiB layer under a 6 MiB quota: status {status}, body {body:?}, {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(status, 200, "{}", quota_agent.log_text());
    assert_eq!(
        body.as_deref(),
        Ok(big.as_str()),
        "not the layer's bytes\n{}",
        quota_agent.log_text()
    );
    let left = files_naming(&store, big.trim_start_matches("sha256:"));
    assert!(
        left.is_empty(),
        "the layer over the quota left files in the cache: {left:?}"
    );

    // What fitted is still cached and served; so are manifests.
    assert!(cached(&small).exists(), "the 2 MiB layer was evicted");
    let (status, body) = fetch(&blob_url(&small)).await;
    assert_eq!(status, 200, "{}", quota_agent.log_text());
    assert_eq!(body.as_deref(), Ok(small.as_str()));
    let manifest = reqwest::get(format!("http://{agent}/v2/team/app/manifests/v1"))
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200, "{}", quota_agent.log_text());
}
