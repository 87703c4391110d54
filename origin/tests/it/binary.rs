//! The `shoal-origin` binary: a TOML file, flags overriding it, and
//! unknown keys refused by name.

use std::process::{Command, Stdio};
use std::time::Duration;

use axum::http::StatusCode;

use crate::support::{TestImages, get};

const BIN: &str = env!("CARGO_BIN_EXE_shoal-origin");

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_override_the_file() {
    let images = TestImages::build(700);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("origin.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:1\"\npeer_listen = \"127.0.0.1:0\"\ndata_dir = \"/nonexistent/x\"\n\
             [upstreams.\"shoal.local\"]\nlayout = \"{}\"\n",
            images.layout().display()
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _child = Child(
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/v2/any/manifests/v1");
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(&url).await {
            assert_eq!(response.status(), StatusCode::OK);
            assert!(dir.path().join("data/blobs").is_dir());
            let (status, _, _) = get(&url, &[]).await;
            assert_eq!(status, StatusCode::OK);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("shoal-origin did not serve on the --listen address");
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("origin.toml");
    std::fs::write(&config, "listn = \"127.0.0.1:1\"\n").unwrap();
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown field `listn`"), "{stderr}");
}

/// File, then environment, then flags: `--print-config` shows what won,
/// and never an upstream password.
#[test]
fn print_config_shows_the_layers_and_hides_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("origin.toml");
    std::fs::write(
        &config,
        "name = \"from-file\"\nlisten = \"127.0.0.1:1\"\ncache_bytes = 5\n\
         [upstreams.\"registry.local\"]\nusername = \"mirror\"\npassword = \"hunter2\"\n\
         [upstreams.\"other.local\"]\nusername = \"mirror\"\npassword_env = \"OTHER_PASSWORD\"\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .env("SHOAL_ORIGIN_NAME", "from-env")
        .env("SHOAL_ORIGIN_LISTEN", "127.0.0.1:2")
        .env("OTHER_PASSWORD", "hunter3")
        .args(["--listen", "127.0.0.1:3", "--print-config"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(!stdout.contains("hunter"), "{stdout}");
    let printed: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(printed["name"].as_str(), Some("from-env"), "{stdout}");
    assert_eq!(printed["listen"].as_str(), Some("127.0.0.1:3"));
    assert_eq!(printed["cache_bytes"].as_integer(), Some(5));
    let upstream = printed["upstreams"]["registry.local"].as_table().unwrap();
    assert_eq!(upstream["username"].as_str(), Some("mirror"));
    assert_eq!(upstream["password"].as_str(), Some("<redacted>"));
    let other = printed["upstreams"]["other.local"].as_table().unwrap();
    assert_eq!(other["password_env"].as_str(), Some("OTHER_PASSWORD"));
}

#[test]
fn unknown_keys_in_nested_tables_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("origin.toml");
    for (text, key) in [
        ("[upstreams.\"r.local\"]\npasword = \"x\"\n", "pasword"),
        (
            "[[origins]]\nname = \"a\"\nhttp = \"http://a\"\npeer = \"127.0.0.1:1\"\nport = 1\n",
            "port",
        ),
        ("[discovery]\ndns_refresh = 1\n", "dns_refresh"),
    ] {
        std::fs::write(&config, text).unwrap();
        let output = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("unknown field `{key}`")),
            "{stderr}"
        );
    }
}
