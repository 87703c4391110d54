//! Operability of the real binaries (issue 10): after real pulls through
//! two agents, every component's `/metrics` passes `promtool check
//! metrics`, the counters moved the way the pulls say they must, every
//! metric the chart's Grafana dashboard queries exists, `/healthz` and
//! `/readyz` answer, and the agents' log lines carry each pull's span.

// A panic is a failed test, in helpers as in the tests.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shoal_e2e::cluster::{Cluster, ClusterSpec, sha256_digest};
use shoal_e2e::registry::{Auth, Registry};

const MIB: u64 = 1 << 20;

/// A scrape's samples: `name{labels}` to value.
struct Scrape {
    text: String,
}

impl Scrape {
    async fn of(url: &str) -> Scrape {
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        Scrape {
            text: response.text().await.unwrap(),
        }
    }

    /// The value of the sample written exactly as `series`, e.g.
    /// `shoal_agent_bytes_total{direction="down",remote="origin"}`.
    fn value(&self, series: &str) -> f64 {
        self.text
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sample {series} in\n{}", self.text))
    }

    /// Sample names (without labels).
    fn names(&self) -> BTreeSet<String> {
        self.text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
            .collect()
    }
}

/// `promtool check metrics` must exist and find nothing to say.
fn promtool_check(component: &str, text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool is required (scripts/test.sh installs Debian's `prometheus`): {e}")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool on the {component}'s metrics: {said}\n{text}"
    );
}

async fn status(url: &str) -> u16 {
    reqwest::get(url).await.map_or(0, |r| r.status().as_u16())
}

/// Waits until `url` answers 200.
async fn until_ok(url: &str, cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(url).await != 200 {
        assert!(
            Instant::now() < deadline,
            "{url} never answered 200\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn pull(agent: SocketAddr, digest: &str) -> Vec<u8> {
    let response = reqwest::get(format!("http://{agent}/v2/team/app/blobs/{digest}"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_component_exposes_clean_metrics_that_follow_real_pulls() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(Auth::Anonymous).await;
    let layer = registry.push_one_layer_image(dir.path(), "team/app", "v1", 8 * MIB, 11);
    let digest = layer.digest().to_string();
    let spec = ClusterSpec {
        origins: 1,
        agents: 2,
        upstream_toml: registry.upstream_toml(""),
        default_registry: registry.addr.to_string(),
        origin_upload_limit: 0,
        agent_upload_limit: 0,
    };
    let cluster = Cluster::start(dir.path(), &spec).unwrap();
    let origin = cluster.origins[0].1;
    let tracker = cluster.tracker_metrics;
    let agents: Vec<SocketAddr> = cluster.agents.iter().map(|(_, a)| *a).collect();
    let admins = cluster.agent_metrics.clone();

    // Health: every component is live, and ready once it should be (the
    // agents once their tracker probe got an answer).
    for base in [
        format!("http://{tracker}"),
        format!("http://{origin}"),
        format!("http://{}", admins[0]),
        format!("http://{}", admins[1]),
    ] {
        assert_eq!(status(&format!("{base}/healthz")).await, 200, "{base}");
        until_ok(&format!("{base}/readyz"), &cluster).await;
    }
    // The registry API is not where the admin endpoints live.
    assert_ne!(status(&format!("http://{}/metrics", agents[0])).await, 200);

    // Real traffic: a swarmed pull on each agent, then a cache hit.
    for agent in [agents[0], agents[1], agents[0]] {
        let body = pull(agent, &digest).await;
        assert_eq!(sha256_digest(&body), digest, "{}", cluster.logs());
    }

    let scrapes = [
        (
            "tracker",
            Scrape::of(&format!("http://{tracker}/metrics")).await,
        ),
        (
            "origin",
            Scrape::of(&format!("http://{origin}/metrics")).await,
        ),
        (
            "agent-0",
            Scrape::of(&format!("http://{}/metrics", admins[0])).await,
        ),
        (
            "agent-1",
            Scrape::of(&format!("http://{}/metrics", admins[1])).await,
        ),
    ];
    for (component, scrape) in &scrapes {
        promtool_check(component, &scrape.text);
        println!(
            "{component}: {} lines of /metrics",
            scrape.text.lines().count()
        );
    }
    let [(_, tracker), (_, origin), (_, agent0), (_, agent1)] = &scrapes;
    // The layer is a tar of 8 MiB of data: a little more than 8 MiB.
    let len = layer.size() as f64;

    // The origin pulled the layer from upstream once.
    assert!(origin.value(r#"shoal_origin_bytes_total{direction="down",remote="upstream"}"#) >= len);
    assert!(origin.value("shoal_origin_upstream_requests_total") >= 1.0);
    assert_eq!(
        origin.value(r#"shoal_origin_blob_fetches_total{result="ok"}"#),
        1.0
    );
    assert_eq!(origin.value("shoal_origin_blobs_stored"), 1.0);

    // Each agent got the whole layer, from the origin or its peer, every
    // piece verified, and served it: agent-0 twice, once from its cache.
    for agent in [agent0, agent1] {
        let received = agent.value(r#"shoal_agent_bytes_total{direction="down",remote="peer"}"#)
            + agent.value(r#"shoal_agent_bytes_total{direction="down",remote="origin"}"#);
        assert!(received >= len, "received {received}");
        assert!(agent.value(r#"shoal_agent_pieces_total{result="verified",remote="peer"}"#) >= 1.0);
        assert_eq!(
            agent.value(r#"shoal_agent_pieces_total{result="hash_mismatch",remote="peer"}"#),
            0.0
        );
        assert!(agent.value("shoal_agent_cache_bytes") >= len);
        assert_eq!(agent.value("shoal_agent_active_downloads"), 0.0);
        assert_eq!(
            agent.value(r#"shoal_agent_blob_pull_seconds_count{source="download"}"#),
            1.0
        );
        assert!(
            agent.value(r#"shoal_agent_blob_first_byte_seconds_count{source="download"}"#) == 1.0
        );
    }
    assert_eq!(
        agent0.value(r#"shoal_agent_served_bytes_total{source="cache"}"#),
        len
    );
    assert_eq!(
        agent0.value(r#"shoal_agent_served_bytes_total{source="download"}"#),
        len
    );
    // The two agents swarmed: what one sent to peers the other received.
    let uploaded = agent0.value(r#"shoal_agent_bytes_total{direction="up",remote="peer"}"#)
        + agent1.value(r#"shoal_agent_bytes_total{direction="up",remote="peer"}"#)
        + origin.value(r#"shoal_origin_bytes_total{direction="up",remote="peer"}"#);
    assert!(uploaded > 0.0, "no peer traffic at all");

    // The tracker answered announces and metainfo requests, and timed them.
    assert!(tracker.value(r#"shoal_tracker_announces_total{result="ok"}"#) >= 2.0);
    assert!(tracker.value("shoal_tracker_announce_duration_seconds_count") >= 2.0);
    assert!(tracker.value(r#"shoal_tracker_metainfo_requests_total{result="ok"}"#) >= 2.0);

    // Every metric the dashboard queries exists.
    let exposed: BTreeSet<String> = scrapes.iter().flat_map(|(_, s)| s.names()).collect();
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../charts/shoal/dashboards/shoal.json"),
    )
    .unwrap();
    let queried: BTreeSet<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("shoal_"))
        .collect();
    assert!(queried.len() > 10, "{queried:?}");
    for name in queried {
        assert!(
            exposed.contains(name),
            "the dashboard queries {name}, which no component exposes"
        );
    }

    // The agents' log lines carry the pull's span: repository and digest.
    let log = cluster.agents[0].0.log_text();
    let span = format!("pull{{repository=team/app digest={digest}");
    assert!(
        log.lines()
            .any(|l| l.contains(&span) && l.contains("blob served")),
        "no `blob served` line in the pull's span:\n{log}"
    );
}
