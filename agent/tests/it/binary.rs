//! The `shoal-agent` binary: flags and the config file, refusals naming the
//! bad key, the registry API over a real process, and `configure`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_shoal-agent");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_with_flags_over_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    let layer = origin.add_random(2 << 20, 5).await;
    let port = free_port();
    let config = dir.path().join("agent.toml");
    // The file says one thing, the flags another: flags win.
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:1\"\ndata_dir = \"/nonexistent/x\"\ntracker = \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--peer-listen", "127.0.0.1:0", "--tracker", ""])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--origin")
        .arg(format!(
            "{}=http://{},peer={}",
            origin.name, origin.http, origin.peer
        ))
        .env_remove("GLIBC_TUNABLES")
        .stdout(Stdio::null())
        .spawn()
        .expect("the agent binary starts");
    let pid = child.id();
    let _running = Running(child);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = reqwest::get(format!("{base}/v2/")).await {
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.headers()["docker-distribution-api-version"],
                "registry/2.0"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the agent did not start serving");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _, body) = get(&format!("{base}/v2/app/blobs/{layer}")).await;
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), layer);
    // The serving process (same pid) restarted itself under the tunables.
    // glibc cuts the variable at its first ':' in place while parsing it,
    // so only the first tunable is still visible here.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let first = shoal_agent::malloc::TUNABLES.split(':').next().unwrap();
    let tunables = format!("GLIBC_TUNABLES={first}");
    assert!(
        environ
            .split(|&b| b == 0)
            .any(|entry| entry.starts_with(tunables.as_bytes())),
        "the agent runs under its malloc tunables"
    );
}

#[test]
fn a_bad_config_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    for (text, key) in [
        ("listn = \"127.0.0.1:5050\"\n", "listn"),
        ("tracker = \"grpc://x\"\n", "tracker"),
        (
            "[[origins]]\nname = \"a\"\nhttp = \"http://a\"\npeer = \"127.0.0.1:1\"\nport = 1\n",
            "unknown field `port`",
        ),
        (
            "[discovery]\ndns_refresh = 1\n",
            "unknown field `dns_refresh`",
        ),
        (
            "[discovery.kubernetes]\nservise = \"s\"\n",
            "unknown field `servise`",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let output = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "{text}: {stderr}");
    }
    let output = Command::new(BIN)
        .args(["--origin", "no-peer=http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--origin"));
}

/// File, then environment, then flags: `--print-config` shows what won.
#[test]
fn print_config_shows_the_file_env_and_flag_layers() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "zone = \"from-file\"\ncache_bytes = 5\nupload_limit = 6\ntracker = \"http://t:1\"\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .env("SHOAL_AGENT_ZONE", "from-env")
        .env("SHOAL_AGENT_UPLOAD_LIMIT", "7")
        .env(
            "SHOAL_AGENT_ORIGIN",
            "o-0=http://127.0.0.1:1,peer=127.0.0.1:2 o-1=http://127.0.0.1:3,peer=127.0.0.1:4",
        )
        .args(["--upload-limit", "8", "--print-config"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let printed: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(printed["zone"].as_str(), Some("from-env"), "{stdout}");
    assert_eq!(printed["upload_limit"].as_integer(), Some(8));
    assert_eq!(printed["cache_bytes"].as_integer(), Some(5));
    assert_eq!(printed["tracker"].as_str(), Some("http://t:1"));
    let origins = printed["origins"].as_array().unwrap();
    assert_eq!(origins.len(), 2, "{stdout}");
    assert_eq!(origins[1]["peer"].as_str(), Some("127.0.0.1:4"));
}

#[test]
fn configure_subcommands_write_runtime_files() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("certs.d");
    let run = |args: &[&str]| {
        let output = Command::new(BIN).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let hosts_arg = hosts.to_str().unwrap();
    let args = [
        "configure",
        "containerd",
        "--registries",
        "docker.io,ghcr.io",
        "--hosts-dir",
        hosts_arg,
        "--agent-url",
        "http://127.0.0.1:5999",
    ];
    assert_eq!(run(&args).matches("wrote").count(), 2);
    assert_eq!(run(&args).matches("unchanged").count(), 2);
    let docker = std::fs::read_to_string(hosts.join("docker.io/hosts.toml")).unwrap();
    assert!(docker.contains("server = \"https://registry-1.docker.io\""));
    assert!(docker.contains("[host.\"http://127.0.0.1:5999\"]"));
    let daemon = dir.path().join("daemon.json");
    std::fs::write(&daemon, "{\"debug\": true}").unwrap();
    run(&[
        "configure",
        "docker",
        "--daemon-json",
        daemon.to_str().unwrap(),
    ]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&daemon).unwrap()).unwrap();
    assert_eq!(json["debug"], true);
    assert_eq!(json["registry-mirrors"][0], "http://127.0.0.1:5050");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_each_pull_and_the_admin_listener_serves_health_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    let layer = origin.add_random(2 << 20, 6).await;
    let (port, admin) = (free_port(), free_port());
    let log_path = dir.path().join("agent.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(BIN)
        .args(["--log-format", "json"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{admin}")])
        .args(["--peer-listen", "127.0.0.1:0", "--tracker", ""])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--origin")
        .arg(format!(
            "{}=http://{},peer={}",
            origin.name, origin.http, origin.peer
        ))
        .env("RUST_LOG", "info")
        .stdout(log)
        .spawn()
        .expect("the agent binary starts");
    let _running = Running(child);
    let admin = format!("http://127.0.0.1:{admin}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{admin}/healthz")).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the admin listener did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No tracker configured: ready as soon as it serves.
    let (status, _, body) = get(&format!("{admin}/readyz")).await;
    assert_eq!(status, 200);
    assert_eq!(body, b"ready\n");
    // The registry API is not on the admin listener, nor the reverse.
    assert_eq!(get(&format!("{admin}/v2/")).await.0, 404);
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/metrics")).await.0,
        404
    );

    let (status, _, body) = get(&format!("http://127.0.0.1:{port}/v2/app/blobs/{layer}")).await;
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), layer);

    let served = |text: &str| {
        text.lines().any(|line| {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                return false;
            };
            event["fields"]["message"] == "blob served"
                && event["span"]["name"] == "pull"
                && event["span"]["repository"] == "app"
                && event["span"]["digest"] == layer.to_string().as_str()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if served(&text) {
            assert!(
                text.lines()
                    .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
                "a log line is not JSON:\n{text}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no JSON `blob served` event in the pull's span:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, _, metrics) = get(&format!("{admin}/metrics")).await;
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("shoal_agent_bytes_total{direction=\"down\",remote=\"origin\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    let fetched: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(fetched >= 2 << 20, "{line}");
}
