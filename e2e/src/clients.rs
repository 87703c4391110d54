//! The real clients users pull with: skopeo, containerd's `ctr` (against a
//! private containerd the test starts as root) and the machine's Docker
//! Engine. Each is a Debian package or the machine's own engine; a missing
//! one fails the test loudly, never skips it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use sha2::{Digest as _, Sha256};

/// `skopeo copy docker://<registry>/<image> dir:<dest>` over plain HTTP;
/// `all` copies every platform of an index. skopeo checks every blob's
/// digest as it copies, and `dir:` keeps the manifests byte for byte.
pub fn skopeo_copy(registry: &str, image: &str, dest: &Path, all: bool) -> anyhow::Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut command = Command::new("skopeo");
    command.args([
        "--insecure-policy",
        "copy",
        "--src-tls-verify=false",
        "--retry-times",
        "0",
    ]);
    if all {
        command.arg("--all");
    }
    let output = command
        .arg(format!("docker://{registry}/{image}"))
        .arg(format!("dir:{}", dest.display()))
        .stdin(Stdio::null())
        .output()
        .context("running skopeo (scripts/test.sh installs it)")?;
    ensure!(
        output.status.success(),
        "skopeo copy {image} from {registry} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// `sha256:<hex>` of the top-level manifest a `dir:` copy holds.
pub fn copied_manifest_digest(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("manifest.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(&bytes))))
}

/// Fails unless a Docker daemon answers: a test that needs one must never
/// pass without it.
pub fn require_docker() -> anyhow::Result<()> {
    let version = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .context("running the docker CLI")?;
    ensure!(
        version.status.success(),
        "no Docker daemon answers; this test needs one: {}",
        String::from_utf8_lossy(&version.stderr)
    );
    Ok(())
}

/// `docker pull <image>`; returns the image's repo digests as Docker
/// reports them, and removes the image again.
pub fn docker_pull(image: &str) -> anyhow::Result<String> {
    let pulled = Command::new("docker")
        .args(["pull", image])
        .output()
        .context("docker pull")?;
    ensure!(
        pulled.status.success(),
        "docker pull {image} failed: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let inspect = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            image,
        ])
        .output()
        .context("docker image inspect")?;
    let _ = Command::new("docker")
        .args(["image", "rm", "-f", image])
        .output();
    Ok(String::from_utf8_lossy(&inspect.stdout).into_owned())
}

/// A private containerd with its own root, state and socket, killed on
/// drop. It needs root, as containerd always does.
pub struct Containerd {
    child: Child,
    socket: PathBuf,
}

impl Containerd {
    /// Starts containerd under `dir` and waits until `ctr version` answers.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let socket = dir.join("containerd.sock");
        let config = dir.join("containerd.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{socket}\"\n[ttrpc]\n  address = \"{ttrpc}\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                socket = socket.display(),
                ttrpc = dir.join("ttrpc.sock").display(),
            ),
        )
        .context("writing containerd's config")?;
        let log = std::fs::File::create(dir.join("containerd.log")).context("containerd log")?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone().context("containerd log")?)
            .stderr(log)
            .spawn()
            .context("starting containerd (the test must run as root)")?;
        let containerd = Containerd { child, socket };
        for _ in 0..200 {
            if containerd.ctr(&["version"])?.status.success() {
                return Ok(containerd);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "containerd did not answer on {}",
            containerd.socket.display()
        )
    }

    /// Runs `ctr` against this containerd.
    pub fn ctr(&self, args: &[&str]) -> anyhow::Result<Output> {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            .output()
            .context("running ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
