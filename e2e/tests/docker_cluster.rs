//! The container image as it ships: built from the repository's Dockerfile
//! (its `prebuilt` target, with the binaries this test run was built with),
//! every binary's `--help` run in it, then a cluster of containers on a
//! private Docker network: a `docker-registry` upstream, a tracker, an origin
//! and three agents. The host's Docker Engine pulls an image through each
//! agent's published registry port.
//!
//! The cluster network is `--internal`: nothing in it reaches outside. The
//! agents are also on a second, ordinary bridge network, only so that their
//! registry port can be published on the host's 127.0.0.1 (Docker publishes
//! no port of an internal network); the daemon treats 127.0.0.0/8
//! registries as plain-HTTP ones. The upstream's content is pushed with
//! skopeo to a `docker-registry` on the host, and the cluster's upstream is
//! the same Debian binary serving that storage inside the network.
//!
//! Without a Docker daemon the test fails; it never skips. Every container,
//! network and image it makes carries a name unique to the run and is
//! removed when the test ends, pass or fail.

// A panic is a failed test, in helpers as in the tests.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use oci_spec::image::{Arch, Os};
use shoal_e2e::clients::{docker_pull, require_docker};
use shoal_e2e::process::binary;
use shoal_e2e::registry::{Auth, Registry};
use shoal_registry::layout::LayoutWriter;

const MIB: u64 = 1 << 20;
const BINARIES: [&str; 4] = ["shoal-tracker", "shoal-origin", "shoal-agent", "shoal"];
/// The uid:gid the image's components run as (Dockerfile, runtime-base).
const NON_ROOT: &str = "65532:65532";
const AGENTS: usize = 3;
/// The upstream's name inside the network, and the namespace clients pull.
const UPSTREAM: &str = "registry:5000";

/// Runs `docker <args>`; fails with its stderr unless it succeeds.
fn docker(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running the docker CLI")?;
    ensure!(
        output.status.success(),
        "docker {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// What the run made, removed on drop whatever happened.
#[derive(Default)]
struct Cleanup {
    containers: Vec<String>,
    networks: Vec<String>,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for container in self.containers.iter().rev() {
            let _ = docker(&["rm", "--force", "--volumes", container]);
        }
        for network in self.networks.iter().rev() {
            let _ = docker(&["network", "rm", network]);
        }
        for image in &self.images {
            let _ = docker(&["image", "rm", "--force", image]);
        }
    }
}

/// Prints how long each step took (shown with `--nocapture`, and in the
/// output of a failing test).
struct Steps {
    started: Instant,
    last: Instant,
}

impl Steps {
    fn new() -> Self {
        let now = Instant::now();
        Steps {
            started: now,
            last: now,
        }
    }

    fn done(&mut self, what: &str) {
        let now = Instant::now();
        eprintln!(
            "[docker-cluster] {what}: {:.1} s (total {:.1} s)",
            (now - self.last).as_secs_f64(),
            (now - self.started).as_secs_f64()
        );
        self.last = now;
    }
}

/// The repository root (the Dockerfile and scripts/ live there).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A name no other run uses: pid and clock.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("shoal-e2e-{}-{:08x}", std::process::id(), nanos)
}

/// Makes the base image when missing (scripts/base-image.sh is idempotent
/// and returns at once when the image exists).
fn ensure_base_image() -> anyhow::Result<()> {
    let script = repo_root().join("scripts/base-image.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    ensure!(
        output.status.success(),
        "{} failed: {}{}",
        script.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// A build context holding just the binaries, without debug info (the
/// debug build's symbols are most of its size).
fn stage_binaries(context: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(context).context("creating the build context")?;
    for name in BINARIES {
        let source = binary(name)?;
        let dest = context.join(name);
        let stripped = Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(&dest)
            .arg(&source)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !stripped {
            std::fs::copy(&source, &dest)
                .with_context(|| format!("copying {}", source.display()))?;
        }
    }
    Ok(())
}

/// Creates an internal network on a /24 of its own in 10.213.0.0/16,
/// trying other /24s when one is taken; returns the subnet's first three
/// octets.
fn create_internal_network(name: &str, seed: u32) -> anyhow::Result<String> {
    let mut last_error = None;
    for attempt in 0..16u32 {
        let third = (seed.wrapping_add(attempt.wrapping_mul(37))) % 250 + 1;
        let prefix = format!("10.213.{third}");
        match docker(&[
            "network",
            "create",
            "--internal",
            "--subnet",
            &format!("{prefix}.0/24"),
            name,
        ]) {
            Ok(_) => return Ok(prefix),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap().context("no free /24 in 10.213.0.0/16"))
}

/// Writes `text` to `<dir>/<name>`, readable by the containers' user.
fn write_config(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn mount(host: &Path, container: &str) -> String {
    format!(
        "type=bind,source={},target={container},readonly",
        host.display()
    )
}

/// A container's log (what it wrote to stdout and stderr), or its `tail`
/// last lines.
fn container_log(container: &str, tail: Option<usize>) -> String {
    let mut command = Command::new("docker");
    command.arg("logs");
    if let Some(lines) = tail {
        command.args(["--tail", &lines.to_string()]);
    }
    match command.arg(container).output() {
        Ok(output) => {
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr)
        }
        Err(error) => format!("(no log: {error})"),
    }
}

/// Every container's last log lines, for a failure's message.
fn logs(containers: &[String]) -> String {
    let mut out = String::new();
    for container in containers {
        let _ = writeln!(out, "--- {container} ---");
        out.push_str(&container_log(container, Some(40)));
    }
    out
}

/// Polls `url` until it answers 200.
async fn wait_ok(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    loop {
        let last = match client.get(url).send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => format!("status {}", response.status()),
            Err(error) => error.to_string(),
        };
        if Instant::now() > deadline {
            bail!("{url} did not answer 200 within {timeout:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_a_cluster_that_docker_pulls_through() {
    require_docker().unwrap();
    let mut steps = Steps::new();
    let run = run_id();
    let mut cleanup = Cleanup::default();
    let dir = tempfile::tempdir().unwrap();

    // The image: base (made locally, cached), then the prebuilt target.
    ensure_base_image().unwrap();
    steps.done("base image present");
    let context = dir.path().join("context");
    stage_binaries(&context).unwrap();
    steps.done("binaries staged");
    let image = format!("{run}:test");
    let dockerfile = repo_root().join("Dockerfile");
    cleanup.images.push(image.clone());
    docker(&[
        "build",
        "--quiet",
        "--target",
        "prebuilt",
        "--tag",
        &image,
        "--file",
        dockerfile.to_str().unwrap(),
        context.to_str().unwrap(),
    ])
    .unwrap();
    steps.done("docker build --target prebuilt");

    for name in BINARIES {
        let help = docker(&["run", "--rm", "--network", "none", &image, name, "--help"]).unwrap();
        assert!(help.contains("Usage:"), "{name} --help printed: {help}");
    }
    let user = docker(&["run", "--rm", "--network", "none", &image, "id", "-u"]).unwrap();
    assert_eq!(user, "65532", "the image runs as its non-root user");
    let configure = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "shoal-agent",
        "configure",
        "containerd",
        "--help",
    ])
    .unwrap();
    assert!(configure.contains("--hosts-dir"), "{configure}");
    steps.done("--help of every binary in the image");

    // The upstream's content: pushed to a registry on the host, served in
    // the cluster by a second registry over the same storage.
    let registry = Registry::start(Auth::Anonymous).await;
    let layout = dir.path().join("layout");
    let mut writer = LayoutWriter::create(&layout).unwrap();
    // Above the agents' 1 MiB small-blob threshold: it goes through the swarm.
    let big = writer.add_random_layer(6 * MIB, 21).unwrap();
    let small = writer.add_random_layer(48 * 1024, 22).unwrap();
    let app = writer
        .add_image(&[big.clone(), small], Arch::Amd64, Os::Linux)
        .unwrap();
    writer.finish(&[("v1", app.clone())]).unwrap();
    registry.push(&layout, "v1", "team/app", "v1", &["--preserve-digests"]);
    let storage = registry.dir.path().join("storage");
    steps.done("image pushed to the upstream's storage");

    // Networks.
    let seed = std::process::id() ^ std::time::UNIX_EPOCH.elapsed().unwrap().subsec_nanos();
    let net = format!("{run}-cluster");
    let prefix = create_internal_network(&net, seed).unwrap();
    cleanup.networks.push(net.clone());
    let edge = format!("{run}-edge");
    docker(&["network", "create", &edge]).unwrap();
    cleanup.networks.push(edge.clone());
    steps.done("networks created");

    let configs = dir.path().join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    let origin_ip = format!("{prefix}.10");
    let ring = format!(
        "[[origins]]\nname = \"origin-0\"\nhttp = \"http://origin-0:8080\"\npeer = \"{origin_ip}:7001\"\n"
    );

    // The upstream: Debian's docker-registry, run in the image (it needs
    // only libc), as root because it is the test's, not a Shoal component.
    let registry_config = write_config(
        &configs,
        "registry.yml",
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n\
         http:\n  addr: 0.0.0.0:5000\n",
    )
    .unwrap();
    let upstream = format!("{run}-registry");
    cleanup.containers.push(upstream.clone());
    docker(&[
        "run",
        "--detach",
        "--name",
        &upstream,
        "--network",
        &net,
        "--ip",
        &format!("{prefix}.2"),
        "--network-alias",
        "registry",
        "--user",
        "0:0",
        "--mount",
        &mount(
            Path::new("/usr/bin/docker-registry"),
            "/usr/local/bin/docker-registry",
        ),
        "--mount",
        &mount(&registry_config, "/etc/registry.yml"),
        "--mount",
        &format!(
            "type=bind,source={},target=/var/lib/registry",
            storage.display()
        ),
        &image,
        "docker-registry",
        "serve",
        "/etc/registry.yml",
    ])
    .unwrap();

    // Origin and tracker: their image defaults (non-root, data dirs).
    let origin_config = write_config(
        &configs,
        "origin.toml",
        &format!(
            "name = \"origin-0\"\nlisten = \"0.0.0.0:8080\"\npeer_listen = \"0.0.0.0:7001\"\n\
             replication = 1\ndefault_registry = \"{UPSTREAM}\"\n\
             [upstreams.\"{UPSTREAM}\"]\ninsecure = true\n{ring}"
        ),
    )
    .unwrap();
    let origin = format!("{run}-origin-0");
    cleanup.containers.push(origin.clone());
    docker(&[
        "run",
        "--detach",
        "--name",
        &origin,
        "--network",
        &net,
        "--ip",
        &origin_ip,
        "--network-alias",
        "origin-0",
        "--mount",
        &mount(&origin_config, "/etc/shoal/origin.toml"),
        &image,
        "shoal-origin",
        "--config",
        "/etc/shoal/origin.toml",
    ])
    .unwrap();
    let tracker_config = write_config(
        &configs,
        "tracker.toml",
        &format!(
            "listen = \"0.0.0.0:7070\"\n[announce]\ninterval_seconds = 1\n\
             [metainfo]\nreplication = 1\n{ring}"
        ),
    )
    .unwrap();
    let tracker = format!("{run}-tracker");
    cleanup.containers.push(tracker.clone());
    docker(&[
        "run",
        "--detach",
        "--name",
        &tracker,
        "--network",
        &net,
        "--ip",
        &format!("{prefix}.20"),
        "--network-alias",
        "tracker",
        "--mount",
        &mount(&tracker_config, "/etc/shoal/tracker.toml"),
        &image,
        "shoal-tracker",
        "--config",
        "/etc/shoal/tracker.toml",
    ])
    .unwrap();

    // Agents: created on the edge network with the registry port published
    // on the host's loopback, joined to the cluster network, then started.
    let agent_config = write_config(
        &configs,
        "agent.toml",
        &format!(
            "listen = \"0.0.0.0:5050\"\npeer_listen = \"0.0.0.0:7002\"\n\
             tracker = \"http://tracker:7070\"\ndefault_registry = \"{UPSTREAM}\"\n\
             replication = 1\n{ring}"
        ),
    )
    .unwrap();
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        let agent = format!("{run}-agent-{i}");
        cleanup.containers.push(agent.clone());
        docker(&[
            "create",
            "--name",
            &agent,
            "--network",
            &edge,
            "--publish",
            "127.0.0.1::5050",
            "--mount",
            &mount(&agent_config, "/etc/shoal/agent.toml"),
            &image,
            "shoal-agent",
            "--config",
            "/etc/shoal/agent.toml",
        ])
        .unwrap();
        docker(&[
            "network",
            "connect",
            "--ip",
            &format!("{prefix}.{}", 31 + i),
            &net,
            &agent,
        ])
        .unwrap();
        docker(&["start", &agent]).unwrap();
        let published = docker(&["port", &agent, "5050/tcp"]).unwrap();
        let addr = published
            .lines()
            .find(|l| l.starts_with("127.0.0.1:"))
            .unwrap_or_else(|| panic!("agent {i} published {published:?}"))
            .to_owned();
        agents.push(addr);
    }
    steps.done("registry, origin, tracker and 3 agents started");
    let containers = cleanup.containers.clone();
    for (i, addr) in agents.iter().enumerate() {
        wait_ok(&format!("http://{addr}/v2/"), Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("agent {i}: {e:#}\n{}", logs(&containers)));
    }
    for container in [&upstream, &origin, &tracker] {
        let state = docker(&["inspect", "--format", "{{.State.Running}}", container]).unwrap();
        assert_eq!(state, "true", "{container} stopped:\n{}", logs(&containers));
    }
    for container in [&origin, &tracker] {
        let user = docker(&["inspect", "--format", "{{.Config.User}}", container]).unwrap();
        assert_eq!(user, NON_ROOT, "{container} runs as the image's user");
    }
    // The origin may still be starting: wait until a manifest comes through.
    wait_ok(
        &format!("http://{}/v2/team/app/manifests/v1", agents[0]),
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", logs(&containers)));
    steps.done("every agent answers, manifests resolve through the cluster");

    // docker pull through each agent in turn; each pull removes the image
    // afterwards, so the next one fetches every layer again.
    for (i, addr) in agents.iter().enumerate() {
        let reference = format!("{addr}/team/app:v1");
        let digests = tokio::task::spawn_blocking(move || docker_pull(&reference))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("pull through agent {i}: {e:#}\n{}", logs(&containers)));
        assert!(
            digests.contains(&app.digest().to_string()),
            "docker pulled {digests} through agent {i}"
        );
        steps.done(&format!("docker pull through agent {i}"));
    }

    // The layer left the upstream once: the origin fetched it for all.
    let registry_log = container_log(&upstream, None);
    let big_uri = format!("uri=\"/v2/team/app/blobs/{}\"", big.digest());
    let fetched = registry_log
        .lines()
        .filter(|l| l.contains("response completed") && l.contains("method=GET"))
        .filter(|l| l.contains(&big_uri))
        .count();
    assert_eq!(
        fetched,
        1,
        "the origin fetches the layer from upstream once\n{}",
        logs(&containers)
    );
    // Agents 1 and 2 had the blob from the swarm, not only the origin's HTTP.
    let client = reqwest::Client::new();
    let mut from_origins = Vec::new();
    for addr in &agents {
        let stats: serde_json::Value = client
            .get(format!("http://{addr}/shoal/v1/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        from_origins.push(stats["bytes_from_origins"].as_u64().unwrap_or(u64::MAX));
    }
    eprintln!("[docker-cluster] bytes each agent fetched from origins over HTTP: {from_origins:?}");
    assert!(
        from_origins.iter().all(|b| *b < big.size()),
        "the big layer came through the swarm: {from_origins:?}\n{}",
        logs(&containers)
    );
    drop(cleanup);
    steps.done("cleanup");
}
