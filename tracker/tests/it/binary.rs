//! The `shoal-tracker` binary: configuration errors, flag overrides and
//! graceful shutdown.

use std::process::Command;
use std::time::{Duration, Instant};

use shoal_swarm::Digest;

use crate::support::{Process, announce, client, health};

#[test]
fn an_unknown_config_key_is_refused_by_name() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[announce]\nintervall_seconds = 3\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_shoal-tracker"))
        .arg("--config")
        .arg(config.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown field `intervall_seconds`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn flags_override_the_file_and_sigterm_stops_cleanly() {
    let mut tracker =
        Process::start("[announce]\ninterval_seconds = 9\n", &["--interval", "2"]).await;
    let response = client(tracker.addr)
        .await
        .announce(announce(&Digest::of(b"layer"), 1, 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.interval_seconds, 2);

    let pid = tracker.child().id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = tracker.child().try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "tracker ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(health(tracker.addr).await, None);
}

/// A Kubernetes-style ring: origins named by DNS names, which the tracker
/// resolves and hands out as IPs; an unresolvable one is not handed out.
#[tokio::test]
async fn origin_peer_names_are_handed_out_resolved() {
    let ring = "[metainfo]\nreplication = 2\n\
        [[origins]]\nname = \"origin-0\"\nhttp = \"http://localhost:1\"\npeer = \"localhost:7101\"\n\
        [[origins]]\nname = \"origin-1\"\nhttp = \"http://origin-1.invalid:1\"\npeer = \"origin-1.invalid:7102\"\n";
    let tracker = Process::start(ring, &[]).await;
    let response = client(tracker.addr)
        .await
        .announce(announce(&Digest::of(b"layer"), 1, 0, ""))
        .await
        .unwrap()
        .into_inner();
    let origins: Vec<_> = response
        .peers
        .iter()
        .filter(|p| p.origin)
        .map(|p| {
            let peer = p.peer.as_ref().unwrap();
            (peer.address.clone(), peer.port)
        })
        .collect();
    assert_eq!(origins, [("127.0.0.1".to_string(), 7101)]);
}

#[test]
fn a_bad_origin_peer_is_refused_by_name() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[[origins]]\nname = \"a\"\nhttp = \"http://a:1\"\npeer = \"origin_0.svc:7001\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_shoal-tracker"))
        .arg("--config")
        .arg(config.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("origins.peer: \"origin_0.svc:7001\""),
        "{stderr}"
    );
}

/// File, then environment, then flags: `--print-config` shows what won,
/// with the Redis password (given in the environment) redacted.
#[test]
fn print_config_shows_the_layers_and_hides_the_redis_password() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "listen = \"127.0.0.1:7001\"\n[announce]\ninterval_seconds = 9\nmax_peers = 7\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_shoal-tracker"))
        .arg("--config")
        .arg(config.path())
        .env("SHOAL_TRACKER_INTERVAL", "5")
        .env("SHOAL_TRACKER_LISTEN", "127.0.0.1:7002")
        .env("SHOAL_TRACKER_STORE", "redis")
        .env(
            "SHOAL_TRACKER_REDIS_URL",
            "redis://:hunter2@127.0.0.1:6390/0",
        )
        .args(["--listen", "127.0.0.1:7003", "--print-config"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(!stdout.contains("hunter2"), "{stdout}");
    let printed: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(
        printed["listen"].as_str(),
        Some("127.0.0.1:7003"),
        "{stdout}"
    );
    let announce = printed["announce"].as_table().unwrap();
    assert_eq!(announce["interval_seconds"].as_integer(), Some(5));
    assert_eq!(announce["max_peers"].as_integer(), Some(7));
    let store = printed["store"].as_table().unwrap();
    assert_eq!(store["backend"].as_str(), Some("redis"));
    assert_eq!(
        store["redis_url"].as_str(),
        Some("redis://:<redacted>@127.0.0.1:6390/0")
    );
}
