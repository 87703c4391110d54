//! The product as users meet it: a real `docker-registry` upstream, the real
//! `shoal-origin`, `shoal-tracker` and three `shoal-agent` processes on
//! loopback, and real clients (skopeo, containerd's ctr, docker) pulling
//! through the agents.

// A panic is a failed test, in helpers as in the tests.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use oci_spec::image::{Arch, Descriptor, Os};
use shoal_e2e::clients::{
    Containerd, copied_manifest_digest, docker_pull, require_docker, skopeo_copy,
};
use shoal_e2e::cluster::{Cluster, ClusterSpec, origin_served, sha256_digest};
use shoal_e2e::process::binary;
use shoal_e2e::registry::{Auth, Registry};
use shoal_registry::layout::LayoutWriter;

const MIB: u64 = 1 << 20;

/// `team/app:v1` (a 64 MiB layer and a small one) and `team/app:multi` (an
/// amd64 + arm64 index), written as an OCI layout and pushed with skopeo.
struct Images {
    app: Descriptor,
    big_layer: Descriptor,
    multi: Descriptor,
}

fn push_images(registry: &Registry, root: &Path) -> Images {
    let layout = root.join("layout");
    let mut writer = LayoutWriter::create(&layout).unwrap();
    let big_layer = writer.add_random_layer(64 * MIB, 1).unwrap();
    let small = writer.add_random_layer(64 * 1024, 2).unwrap();
    let app = writer
        .add_image(&[big_layer.clone(), small.clone()], Arch::Amd64, Os::Linux)
        .unwrap();
    let amd_layer = writer.add_random_layer(2 * MIB, 3).unwrap();
    let arm_layer = writer.add_random_layer(2 * MIB, 4).unwrap();
    let amd = writer
        .add_image(&[amd_layer], Arch::Amd64, Os::Linux)
        .unwrap();
    let arm = writer
        .add_image(&[arm_layer], Arch::ARM64, Os::Linux)
        .unwrap();
    let multi = writer.add_index(vec![amd, arm]).unwrap();
    writer
        .finish(&[("v1", app.clone()), ("multi", multi.clone())])
        .unwrap();
    registry.push(&layout, "v1", "team/app", "v1", &["--preserve-digests"]);
    registry.push(
        &layout,
        "multi",
        "team/app",
        "multi",
        &["--all", "--preserve-digests"],
    );
    Images {
        app,
        big_layer,
        multi,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_ctr_and_docker_pull_through_real_agents() {
    require_docker().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(Auth::Anonymous).await;
    let images = push_images(&registry, dir.path());
    let namespace = registry.addr.to_string();
    let spec = ClusterSpec {
        origins: 1,
        agents: 3,
        upstream_toml: registry.upstream_toml(""),
        default_registry: namespace.clone(),
        // Capped as a real origin's uplink is, so the agents must swarm.
        origin_upload_limit: 16 * MIB,
        agent_upload_limit: 0,
    };
    let cluster_dir = dir.path().join("cluster");
    std::fs::create_dir_all(&cluster_dir).unwrap();
    let cluster = Cluster::start(&cluster_dir, &spec).unwrap();
    let agents: Vec<String> = cluster.agents.iter().map(|(_, a)| a.to_string()).collect();

    // The big layer through all three agents at once, as a rollout does:
    // the origin must send it well under twice (measured: 1.27-1.31x).
    // Large enough that start-up, when no agent has a piece to swap yet,
    // does not dominate: with 12 MiB it was 1.6-2.2x.
    let big = images.big_layer.digest().to_string();
    let before = origin_served(cluster.origins[0].1).await.unwrap();
    let fetches: Vec<_> = agents
        .iter()
        .map(|agent| {
            let url = format!("http://{agent}/v2/team/app/blobs/{big}");
            tokio::spawn(async move {
                let body = reqwest::get(url).await?.error_for_status()?.bytes().await?;
                anyhow::Ok(body)
            })
        })
        .collect();
    for fetch in fetches {
        let body = fetch
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
        assert_eq!(
            sha256_digest(&body),
            big,
            "the bytes a client got are the layer's"
        );
    }
    let served = origin_served(cluster.origins[0].1).await.unwrap() - before;
    assert!(
        served < 2 * images.big_layer.size(),
        "origin served {served} bytes for 3 pulls of a {}-byte layer\n{}",
        images.big_layer.size(),
        cluster.logs()
    );

    // skopeo through all three agents at once: the image, then the index.
    let copies: Vec<_> = agents
        .iter()
        .enumerate()
        .map(|(i, agent)| {
            let agent = agent.clone();
            let out = dir.path().join(format!("copy-{i}"));
            std::thread::spawn(move || {
                skopeo_copy(&agent, "team/app:v1", &out.join("app"), false)?;
                skopeo_copy(&agent, "team/app:multi", &out.join("multi"), true)?;
                anyhow::Ok(out)
            })
        })
        .collect();
    for copy in copies {
        let out = copy
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
        assert_eq!(
            copied_manifest_digest(&out.join("app")).unwrap(),
            images.app.digest().to_string()
        );
        assert_eq!(
            copied_manifest_digest(&out.join("multi")).unwrap(),
            images.multi.digest().to_string()
        );
    }
    assert_eq!(
        registry.requests(&format!("GET /v2/team/app/blobs/{big}")),
        1,
        "the origin fetches a layer from upstream once"
    );

    // docker pull through agent 0 (127.0.0.0/8 registries are plain HTTP).
    let image = format!("{}/team/app:v1", agents[0]);
    let digests = tokio::task::spawn_blocking(move || docker_pull(&image))
        .await
        .unwrap()
        .unwrap();
    assert!(
        digests.contains(&images.app.digest().to_string()),
        "docker pulled {digests}"
    );

    // containerd through agent 1 as a hosts.toml mirror, written by the
    // agent's own configure command. Its fallback `server` is https on the
    // plain-HTTP registry, so only the agent can make this pull succeed.
    let hosts = dir.path().join("certs.d");
    let configured = Command::new(binary("shoal-agent").unwrap())
        .args(["configure", "containerd", "--registries", &namespace])
        .arg("--hosts-dir")
        .arg(&hosts)
        .args(["--agent-url", &format!("http://{}", agents[1])])
        .output()
        .unwrap();
    assert!(configured.status.success(), "{configured:?}");
    let containerd = Containerd::start(&dir.path().join("containerd")).unwrap();
    let reference = format!("{namespace}/team/app:v1");
    let hosts_arg = hosts.display().to_string();
    let (pulled, listed) = tokio::task::spawn_blocking(move || {
        let pulled = containerd
            .ctr(&[
                "images",
                "pull",
                "--hosts-dir",
                &hosts_arg,
                "--snapshotter",
                "native",
                &reference,
            ])
            .unwrap();
        let listed = containerd.ctr(&["images", "ls"]).unwrap();
        (pulled, listed)
    })
    .await
    .unwrap();
    assert!(
        pulled.status.success(),
        "ctr pull through the agent failed: {}{}\n{}",
        String::from_utf8_lossy(&pulled.stdout),
        String::from_utf8_lossy(&pulled.stderr),
        cluster.logs()
    );
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&images.app.digest().to_string()),
        "images: {listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_the_first_bytes_of_a_512_mib_layer_long_before_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(Auth::Anonymous).await;
    let layout = dir.path().join("layout");
    let mut writer = LayoutWriter::create(&layout).unwrap();
    let layer = writer.add_random_layer(512 * MIB, 9).unwrap();
    let image = writer
        .add_image(std::slice::from_ref(&layer), Arch::Amd64, Os::Linux)
        .unwrap();
    writer.finish(&[("big", image)]).unwrap();
    registry.push(&layout, "big", "team/big", "v1", &["--preserve-digests"]);
    let spec = ClusterSpec {
        origins: 1,
        agents: 1,
        upstream_toml: registry.upstream_toml(""),
        default_registry: registry.addr.to_string(),
        // 64 MiB/s: an 8 s download, long enough to tell first from last.
        origin_upload_limit: 64 * MIB,
        agent_upload_limit: 0,
    };
    let cluster_dir = dir.path().join("cluster");
    std::fs::create_dir_all(&cluster_dir).unwrap();
    let cluster = Cluster::start(&cluster_dir, &spec).unwrap();
    let url = format!(
        "http://{}/v2/team/big/blobs/{}",
        cluster.agents[0].1,
        layer.digest()
    );
    let started = Instant::now();
    let mut response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200, "{}", cluster.logs());
    let mut first_byte = None;
    let mut received = 0u64;
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        first_byte.get_or_insert_with(|| started.elapsed());
        received += chunk.len() as u64;
        sha2::Digest::update(&mut hasher, &chunk);
    }
    let last_byte = started.elapsed();
    let first_byte = first_byte.unwrap();
    assert_eq!(received, layer.size());
    assert_eq!(
        format!("sha256:{}", hex::encode(sha2::Digest::finalize(hasher))),
        layer.digest().to_string()
    );
    // The origin fetches the whole layer from upstream before it seeds, so
    // the agent's first verified piece waits for that. From then on the
    // swarm download takes 8 s at the origin's cap; had the agent held the
    // response until the blob was complete, first and last byte would be
    // only a disk read apart.
    assert!(
        last_byte - first_byte > Duration::from_secs(4),
        "first byte after {first_byte:?}, last after {last_byte:?}"
    );
}
