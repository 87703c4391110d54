//! Registry credentials and tokens never appear in logs or error bodies,
//! at any log level (issue 8, item 10). The origin is the only component
//! that holds credentials: it runs here at `RUST_LOG=trace` against a real
//! `docker-registry` with htpasswd over TLS, and with the bearer-token
//! flow, with the right password and with a wrong one. Its log, its stats
//! page and every response body are then searched for the password, the
//! `user:password` pair in base64 (a Basic header) and any JWT (a token).

// A panic is a failed test, in helpers as in the tests.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use shoal_e2e::process::{Process, free_addr};
use shoal_e2e::registry::{Auth, PASSWORD, Registry, USER, WRONG_PASSWORD};

/// Starts an origin at trace level whose upstream uses `password`, pulls
/// through it, and returns everything it said: log, stats, bodies.
async fn pull_and_collect(
    registry: &Registry,
    dir: &std::path::Path,
    name: &str,
    password: &str,
    layer: &str,
) -> (String, Vec<u16>) {
    let (http, peer) = (free_addr().unwrap(), free_addr().unwrap());
    let config = format!(
        "name = {name:?}\nlisten = \"{http}\"\npeer_listen = \"{peer}\"\ndata_dir = {data:?}\n\
         default_registry = \"{ns}\"\n{upstream}",
        data = dir.join(name).display().to_string(),
        ns = registry.addr,
        upstream = registry.upstream_toml(password),
    );
    let config_path = dir.join(format!("{name}.toml"));
    std::fs::write(&config_path, config).unwrap();
    let mut origin = Process::spawn_with_env(
        name,
        "shoal-origin",
        &["--config".to_owned(), config_path.display().to_string()],
        dir,
        &[("RUST_LOG", "trace")],
    )
    .unwrap();
    origin
        .wait_listening(http, Duration::from_secs(30))
        .unwrap();

    let base = format!("http://{http}");
    let client = reqwest::Client::new();
    let mut said = String::new();
    let mut statuses = Vec::new();
    for path in [
        "/v2/team/app/manifests/v1".to_owned(),
        "/v2/team/app/manifests/missing".to_owned(),
        format!("/v2/team/app/blobs/{layer}"),
        "/v2/team/nothing/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
        "/shoal/v1/stats".to_owned(),
    ] {
        // A blob answers 202 while the origin fetches it.
        let mut attempts = 0;
        let (status, body) = loop {
            let response = client.get(format!("{base}{path}")).send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            attempts += 1;
            if status != 202 || attempts > 100 {
                break (status, body);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        statuses.push(status);
        said.push_str(&body);
        said.push('\n');
    }
    said.push_str(&origin.log_text());
    (said, statuses)
}

/// What must never be printed for `password`.
fn secrets(password: &str) -> Vec<String> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
    vec![
        password.to_owned(),
        basic.clone(),
        basic.trim_end_matches('=').to_owned(),
        // Any JWT: its header segment is base64url of `{"`.
        "eyJ".to_owned(),
    ]
}

fn assert_clean(said: &str, what: &str) {
    for password in [PASSWORD, WRONG_PASSWORD] {
        for secret in secrets(password) {
            if let Some(at) = said.find(&secret) {
                let start = said[..at].rfind('\n').map_or(0, |n| n + 1);
                let end = said[at..].find('\n').map_or(said.len(), |n| at + n);
                panic!(
                    "{what}: {secret:?} appears in what the origin said:\n{}",
                    &said[start..end]
                );
            }
        }
    }
    // The search means something only if trace lines were written.
    assert!(
        said.contains("TRACE"),
        "{what}: the origin wrote no trace lines"
    );
}

async fn check(auth: Auth, label: &str) {
    let registry = Registry::start(auth).await;
    let dir = tempfile::tempdir().unwrap();
    let layer = registry.push_one_layer_image(dir.path(), "team/app", "v1", 256 * 1024, 7);
    let layer = layer.digest().to_string();

    let (said, statuses) =
        pull_and_collect(&registry, dir.path(), "origin-right", PASSWORD, &layer).await;
    assert_eq!(
        statuses,
        [200, 404, 200, 404, 200],
        "{label}, right password: manifest, missing tag, blob, missing blob, stats\n{said}"
    );
    assert_clean(&said, &format!("{label}, right password"));
    if registry.tokens.is_some() {
        assert!(
            registry.tokens_issued() > 0,
            "{label}: the origin never used the token flow"
        );
    }

    let (said, statuses) = pull_and_collect(
        &registry,
        dir.path(),
        "origin-wrong",
        WRONG_PASSWORD,
        &layer,
    )
    .await;
    assert_eq!(
        &statuses[..4],
        [502, 502, 502, 502],
        "{label}, wrong password: upstream refusals are 502\n{said}"
    );
    assert_clean(&said, &format!("{label}, wrong password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_credentials_never_reach_logs_or_errors() {
    check(Auth::HtpasswdTls, "htpasswd over TLS").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_and_credentials_never_reach_logs_or_errors() {
    check(Auth::Token, "bearer token flow").await;
}
