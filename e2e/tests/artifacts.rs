//! Artifacts that are not images (issue 10, item 7): `shoal seed` publishes
//! a file through a real origin, which stores, seeds and replicates it;
//! `shoal get` fetches it through a real agent's swarm, and after being
//! killed midway resumes from its partial file with a Range request.

// A panic is a failed test, in helpers as in the tests.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use shoal_e2e::cluster::{Cluster, ClusterSpec, sha256_digest};
use shoal_e2e::process::binary;
use shoal_e2e::registry::{Auth, Registry};

const MIB: u64 = 1 << 20;

/// Bytes that do not compress or repeat: xorshift from `seed`.
fn noise(len: u64, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn shoal(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(binary("shoal").unwrap());
    command.args(args).stdin(Stdio::null());
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(args: &[&str]) -> Output {
    shoal(args).output().unwrap()
}

/// What an origin answers a peek for the artifact (200 only if it holds it).
async fn peek(origin: SocketAddr, digest: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("http://{origin}/v2/shoal/artifacts/blobs/{digest}"))
        .header("x-shoal-peek", "1")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn len_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_files_are_fetched_through_the_swarm_and_a_killed_get_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(Auth::Anonymous).await;
    let spec = ClusterSpec {
        origins: 2,
        agents: 2,
        upstream_toml: registry.upstream_toml(""),
        default_registry: registry.addr.to_string(),
        // 8 MiB/s per origin: a get of seconds, to interrupt.
        origin_upload_limit: 8 * MIB,
        agent_upload_limit: 0,
    };
    let cluster_dir = dir.path().join("cluster");
    std::fs::create_dir_all(&cluster_dir).unwrap();
    let cluster = Cluster::start(&cluster_dir, &spec).unwrap();
    let origins: Vec<SocketAddr> = cluster.origins.iter().map(|(_, a)| *a).collect();
    let agents: Vec<SocketAddr> = cluster.agents.iter().map(|(_, a)| *a).collect();

    let content = noise(40 * MIB, 71);
    let digest = sha256_digest(&content);
    let file = dir.path().join("model.bin");
    std::fs::write(&file, &content).unwrap();

    // Published through the second origin; both owners end up holding it.
    let out = run(&[
        "seed",
        file.to_str().unwrap(),
        "--origin",
        &format!("http://{}", origins[1]),
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stderr),
        cluster.logs()
    );
    assert_eq!(text(&out.stdout).trim(), digest);
    for origin in &origins {
        assert_eq!(peek(*origin, &digest).await, 200, "{}", cluster.logs());
    }

    // A body that does not match its digest: refused, nothing kept.
    let wrong = sha256_digest(b"something else");
    let response = reqwest::Client::new()
        .put(format!("http://{}/shoal/v1/artifacts/{wrong}", origins[0]))
        .body(vec![7u8; 3 * MIB as usize])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body = response.text().await.unwrap();
    assert!(body.contains("DIGEST_INVALID"), "{body}");
    for origin in &origins {
        assert_eq!(peek(*origin, &wrong).await, 404);
    }
    // An artifact nobody published is unknown, never asked of upstream.
    let unknown = reqwest::get(format!(
        "http://{}/v2/shoal/artifacts/blobs/{}",
        agents[1],
        sha256_digest(b"never published")
    ))
    .await
    .unwrap();
    assert_eq!(unknown.status(), 404);

    // A get killed midway, then run again: it resumes where it stopped.
    let output = dir.path().join("out/model.bin");
    std::fs::create_dir_all(output.parent().unwrap()).unwrap();
    let part = dir.path().join("out/model.bin.part");
    let agent = format!("http://{}", agents[0]);
    let args = [
        "get",
        &digest,
        "-o",
        output.to_str().unwrap(),
        "--agent",
        &agent,
    ];
    let mut first = shoal(&args).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while len_of(&part) < 4 * MIB {
        assert!(
            Instant::now() < deadline,
            "the get made no progress:\n{}",
            cluster.logs()
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the get ended before it was killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let held = len_of(&part);
    assert!(held > 0 && held < content.len() as u64, "{held} bytes held");
    assert!(!output.exists());

    let out = run(&args);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stderr),
        cluster.logs()
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("resuming at {held} bytes")),
        "{stderr}"
    );
    let rest = content.len() as u64 - held;
    assert!(
        stderr.contains(&format!("{rest} transferred, digest verified")),
        "{stderr}"
    );
    assert!(!part.exists());
    assert!(
        std::fs::read(&output).unwrap() == content,
        "the bytes differ"
    );

    // Through the other agent, from scratch: the whole file.
    let other = dir.path().join("other.bin");
    let out = run(&[
        "get",
        &digest,
        "-o",
        other.to_str().unwrap(),
        "--agent",
        &format!("http://{}", agents[1]),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::read(&other).unwrap() == content,
        "the bytes differ"
    );
}
