//! Real clients through real agents: skopeo copies an image (and a
//! multi-arch index) through each of three agents, and the machine's Docker
//! Engine pulls through one. Images are real OCI images (tar layers,
//! configs with diff ids) written by `shoal_registry::layout`.

use std::path::Path;
use std::process::Command;

use oci_spec::image::{Arch, Os};
use shoal_registry::layout::LayoutWriter;

use crate::support::*;

const MIB: u64 = 1 << 20;

/// A layout with `app:v1` (two layers) and `multi:v1` (an amd64 + arm64
/// index). Returns the digest of each tag's manifest or index.
fn write_images(root: &Path) -> (String, String) {
    let mut writer = LayoutWriter::create(root).unwrap();
    let big = writer.add_random_layer(6 * MIB, 1).unwrap();
    let small = writer.add_random_layer(64 * 1024, 2).unwrap();
    let app = writer
        .add_image(&[big.clone(), small], Arch::Amd64, Os::Linux)
        .unwrap();
    let arm_layer = writer.add_random_layer(2 * MIB, 3).unwrap();
    let arm = writer
        .add_image(&[arm_layer], Arch::ARM64, Os::Linux)
        .unwrap();
    let amd = writer.add_image(&[big], Arch::Amd64, Os::Linux).unwrap();
    let index = writer.add_index(vec![amd, arm]).unwrap();
    let (app_digest, index_digest) = (app.digest().to_string(), index.digest().to_string());
    writer.finish(&[("app", app), ("multi", index)]).unwrap();
    (app_digest, index_digest)
}

/// The digest of the top-level manifest skopeo stored in a `dir:` copy.
fn copied_digest(dir: &Path) -> String {
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap_or_else(|e| {
        let files: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        panic!("{}: {e}; it holds {files:?}", dir.display())
    });
    sha256(&manifest).to_string()
}

fn skopeo_copy(agent: &str, image: &str, dest: &Path, all: bool) {
    let mut command = Command::new("skopeo");
    command.args(["copy", "--src-tls-verify=false", "--retry-times", "0"]);
    if all {
        command.arg("--all");
    }
    let output = command
        .arg(format!("docker://{agent}/{image}"))
        .arg(format!("dir:{}", dest.display()))
        .output()
        .expect("skopeo runs (scripts/test.sh installs it)");
    assert!(
        output.status.success(),
        "skopeo copy {image} through {agent} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skopeo_copies_images_and_an_index_through_each_agent() {
    let _alone = exclusive().await;
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let (app, multi) = write_images(&layout);
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    origin.load_layout(&layout, "team/app").await;
    let tracker = Tracker::start(&[&origin]).await;
    let mut agents = Vec::new();
    for i in 0..3 {
        let config = agent_config(
            &dir.path().join(format!("agent-{i}")),
            Some(tracker.url()),
            &[&origin],
        );
        agents.push(start_agent(&config).await);
    }
    for (i, agent) in agents.iter().enumerate() {
        let addr = agent.registry_addr().to_string();
        let out = dir.path().join(format!("copy-{i}"));
        std::fs::create_dir_all(&out).unwrap();
        let task = {
            let out = out.clone();
            let addr = addr.clone();
            tokio::task::spawn_blocking(move || {
                skopeo_copy(&addr, "team/app:app", &out.join("app"), false);
                skopeo_copy(&addr, "team/app:multi", &out.join("multi"), true);
            })
        };
        task.await.unwrap();
        // skopeo verified every blob digest while copying; `dir:` keeps the
        // manifests byte for byte (an `oci:` destination would gzip the
        // uncompressed layers and so rewrite the manifest).
        assert_eq!(copied_digest(&out.join("app")), app);
        assert_eq!(copied_digest(&out.join("multi")), multi);
    }
    for agent in agents {
        agent.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_pulls_through_an_agent() {
    let version = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .expect("the docker CLI is installed");
    assert!(
        version.status.success(),
        "no Docker daemon answers; this test needs one: {}",
        String::from_utf8_lossy(&version.stderr)
    );
    let _alone = exclusive().await;
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let (app, _) = write_images(&layout);
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    origin.load_layout(&layout, "team/app").await;
    let tracker = Tracker::start(&[&origin]).await;
    let config = agent_config(&dir.path().join("agent"), Some(tracker.url()), &[&origin]);
    let agent = start_agent(&config).await;
    let image = format!("{}/team/app:app", agent.registry_addr());
    let pulled = tokio::task::spawn_blocking({
        let image = image.clone();
        move || {
            Command::new("docker")
                .args(["pull", &image])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        pulled.status.success(),
        "docker pull {image} failed: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let digests = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &image,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&digests.stdout).to_string();
    let _ = Command::new("docker")
        .args(["image", "rm", "-f", &image])
        .output();
    assert!(text.contains(&app), "{image} pulled as {text}, not {app}");
    agent.shutdown().await;
}

/// A private containerd (started as root by the test), killed on drop.
struct Containerd {
    child: std::process::Child,
    socket: std::path::PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("containerd.sock");
        let config = dir.join("containerd.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{socket}\"\n\
                 [ttrpc]\n  address = \"{ttrpc}\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                socket = socket.display(),
                ttrpc = dir.join("ttrpc.sock").display(),
            ),
        )
        .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("containerd starts (the test runs as root)");
        let containerd = Containerd { child, socket };
        for _ in 0..200 {
            if containerd.ctr(&["version"]).status.success() {
                return containerd;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("containerd did not start");
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("ctr runs")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn containerd_pulls_and_unpacks_through_a_hosts_dir_mirror() {
    let _alone = exclusive().await;
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let (app, _) = write_images(&layout);
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    origin.load_layout(&layout, "team/app").await;
    let tracker = Tracker::start(&[&origin]).await;
    let config = agent_config(&dir.path().join("agent"), Some(tracker.url()), &[&origin]);
    let agent = start_agent(&config).await;
    let hosts = dir.path().join("certs.d");
    shoal_agent::configure::containerd::configure(
        &hosts,
        &["docker.io".to_string()],
        &format!("http://{}", agent.registry_addr()),
    )
    .unwrap();
    let containerd = Containerd::start(&dir.path().join("containerd"));
    let hosts_arg = hosts.to_str().unwrap().to_string();
    let pulled = tokio::task::spawn_blocking(move || {
        let output = containerd.ctr(&[
            "images",
            "pull",
            "--hosts-dir",
            &hosts_arg,
            "--snapshotter",
            "native",
            "docker.io/team/app:app",
        ]);
        let listed = containerd.ctr(&["images", "ls"]);
        (output, listed)
    })
    .await
    .unwrap();
    let (output, listed) = pulled;
    assert!(
        output.status.success(),
        "ctr pull through the agent failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.contains(&app), "images: {listed}");
    // Every byte came through the agent, not the (unreachable) docker.io.
    assert!(origin.bytes_served() >= 6 * MIB);
    agent.shutdown().await;
}
