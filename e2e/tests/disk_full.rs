//! Disk full (issue 8, item 5): an agent's cache sits on a 6 MiB tmpfs and
//! a client asks it for a 16 MiB layer. The client must get a clean error
//! (an error status, or a body cut short that its Content-Length exposes;
//! never wrong bytes), nothing partial may be marked complete, and the
//! agent must go on serving a layer that fits. Needs root (mount).

// A panic is a failed test, in helpers as in the tests.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::image::{Arch, Os};
use sha2::{Digest as _, Sha256};
use shoal_e2e::cluster::{Cluster, ClusterSpec};
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

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(Auth::Anonymous).await;
    let layout = dir.path().join("layout");
    let mut writer = LayoutWriter::create(&layout).unwrap();
    let big = writer.add_random_layer(16 * MIB, 51).unwrap();
    let small = writer.add_random_layer(2 * MIB, 52).unwrap();
    let image = writer
        .add_image(&[big.clone(), small.clone()], Arch::Amd64, Os::Linux)
        .unwrap();
    writer.finish(&[("v1", image)]).unwrap();
    registry.push(&layout, "v1", "team/app", "v1", &["--preserve-digests"]);

    let cluster_dir = dir.path().join("cluster");
    let store = cluster_dir.join("agent-0");
    let tmpfs = Tmpfs::mount(&store, "6m");
    let spec = ClusterSpec {
        origins: 1,
        agents: 1,
        upstream_toml: registry.upstream_toml(""),
        default_registry: registry.addr.to_string(),
        origin_upload_limit: 0,
        agent_upload_limit: 0,
    };
    let cluster = Cluster::start(&cluster_dir, &spec).unwrap();
    Setup {
        _dir: dir,
        _registry: registry,
        _tmpfs: tmpfs,
        cluster,
        store,
        big: big.digest().to_string(),
        small: small.digest().to_string(),
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
