//! `shoal demo` end to end: the real binary, a real cluster on loopback, a
//! small image pulled through every agent.

use std::process::Command;

fn shoal() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shoal"))
}

#[test]
fn demo_pulls_through_every_agent_and_peers_serve_bytes() {
    let output = shoal()
        .args(["demo", "--agents", "4", "--size-mib", "24", "--layers", "2"])
        .args(["--upload-mbit", "160", "--json"])
        .output()
        .expect("running shoal demo");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "shoal demo failed: {stderr}");
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("--json prints one JSON object");
    assert_eq!(summary["all_verified"], true, "{summary:#}");
    assert_eq!(summary["agents"], 4);
    let pulls = summary["pulls"].as_array().expect("pulls");
    assert_eq!(pulls.len(), 4);
    let image_bytes = summary["image_bytes"].as_u64().expect("image_bytes");
    assert!(image_bytes > 24 << 20, "{summary:#}");
    for pull in pulls {
        assert_eq!(pull["bytes"].as_u64(), Some(image_bytes), "{pull:#}");
    }
    // With every upload capped, the origins alone are the bottleneck: the
    // agents must have served each other a real share.
    let peer_bytes = summary["peer_bytes"].as_u64().expect("peer_bytes");
    assert!(
        peer_bytes > image_bytes / 2,
        "peers served only {peer_bytes} bytes: {summary:#}"
    );
    assert!(
        summary["lower_bound_seconds"].as_f64().is_some(),
        "{summary:#}"
    );
}

#[test]
fn bad_flags_get_a_clap_error() {
    let output = shoal()
        .args(["demo", "--agents", "0"])
        .output()
        .expect("running shoal demo");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--agents"), "{stderr}");
}
