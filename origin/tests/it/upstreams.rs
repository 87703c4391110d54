//! The three upstream cases against a real registry: anonymous, htpasswd
//! over TLS with a private CA, and the bearer-token flow. Each pulls a
//! multi-layer image (OCI and Docker schema2) and a multi-arch index
//! through the origin, checks a missing tag, and (with auth) that wrong
//! credentials give a clear 502 that never shows the password.

use axum::http::{StatusCode, header};
use shoal_registry::media::{DOCKER_MANIFEST_V2, OCI_INDEX_V1, OCI_MANIFEST_V1};
use shoal_swarm::Digest;

use crate::support::{
    Auth, PASSWORD, Registry, TestImages, WRONG_PASSWORD, digest_of, error_of, get, get_ready,
    start_origin,
};

const REPO: &str = "team/app";

async fn exercise(auth: Auth, with_credentials: bool) {
    let registry = Registry::start(auth).await;
    let images = TestImages::build(100);
    // skopeo gzips uncompressed layers on push unless told to keep digests.
    registry.push(&images.layout(), "v1", REPO, "v1", &["--preserve-digests"]);
    registry.push(
        &images.layout(),
        "v1",
        REPO,
        "v1-docker",
        &["--format", "v2s2"],
    );
    registry.push(
        &images.layout(),
        "multi",
        REPO,
        "multi",
        &["--all", "--preserve-digests"],
    );

    let tokens_before = registry.tokens_issued();
    let data = tempfile::tempdir().expect("tempdir");
    let origin = start_origin(data.path(), &registry.upstream_toml(PASSWORD)).await;
    let base = format!("http://{}", origin.http_addr());
    let ns = registry.addr.to_string();

    // An OCI image: bytes and digest exactly as pushed (skopeo keeps them).
    let (status, headers, body) = get(&format!("{base}/v2/{REPO}/manifests/v1"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers[header::CONTENT_TYPE], OCI_MANIFEST_V1);
    assert_eq!(Digest::of(&body), digest_of(&images.v1));
    assert_eq!(
        headers["docker-content-digest"],
        images.v1.digest().to_string()
    );
    assert_eq!(
        headers[header::CONTENT_LENGTH],
        body.len().to_string().as_str()
    );

    // The same image converted to Docker schema2 by skopeo.
    let (status, headers, body) = get(
        &format!("{base}/v2/{REPO}/manifests/v1-docker?ns={ns}"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], DOCKER_MANIFEST_V2);
    assert_eq!(
        headers["docker-content-digest"],
        Digest::of(&body).to_string().as_str()
    );
    let docker: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let docker_config = docker["config"]["digest"]
        .as_str()
        .expect("config")
        .to_owned();

    // Every layer, then a range of the largest; the config blob of the
    // schema2 conversion too.
    for layer in &images.v1_layers {
        let url = format!("{base}/v2/{REPO}/blobs/{}?ns={ns}", layer.digest());
        let (status, headers, body) = get_ready(&url, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(Digest::of(&body), digest_of(layer));
        assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
        assert_eq!(headers["docker-content-digest"], layer.digest().to_string());
    }
    let big = &images.v1_layers[0];
    let url = format!("{base}/v2/{REPO}/blobs/{}", big.digest());
    let (status, headers, part) = get(&url, &[("range", "bytes=1048576-2097151")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.len(), 1 << 20);
    let content_range = format!("bytes 1048576-2097151/{}", big.size());
    assert_eq!(headers[header::CONTENT_RANGE], content_range.as_str());
    let (_, _, whole) = get(&url, &[]).await;
    assert_eq!(part, whole[1 << 20..2 << 20]);
    let (status, _, body) =
        get_ready(&format!("{base}/v2/{REPO}/blobs/{docker_config}"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Digest::of(&body).to_string(), docker_config);

    // The multi-arch index, then each platform's manifest by digest.
    let (status, headers, body) = get(&format!("{base}/v2/{REPO}/manifests/multi"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], OCI_INDEX_V1);
    assert_eq!(Digest::of(&body), digest_of(&images.multi));
    for child in &images.multi_children {
        let url = format!("{base}/v2/{REPO}/manifests/{}", child.digest());
        let (status, headers, body) = get(&url, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], OCI_MANIFEST_V1);
        assert_eq!(Digest::of(&body), digest_of(child));
    }

    // A missing tag, and a missing repository.
    let (status, _, body) = get(&format!("{base}/v2/{REPO}/manifests/nope"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&body).0, "MANIFEST_UNKNOWN");
    let (status, _, body) = get(&format!("{base}/v2/other/repo/manifests/v1"), &[]).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(error_of(&body).0, "MANIFEST_UNKNOWN");
    let stats = origin.stats();
    assert!(stats.upstream_requests >= 10, "{stats:?}");
    // Bearer tokens are cached per repository until they expire: two
    // repositories were read, so about two tokens, not one per request.
    let tokens = registry.tokens_issued() - tokens_before;
    assert!(
        tokens <= 3,
        "{tokens} tokens for {} upstream requests",
        stats.upstream_requests
    );
    origin.shutdown().await;

    if with_credentials {
        let data = tempfile::tempdir().expect("tempdir");
        let origin = start_origin(data.path(), &registry.upstream_toml(WRONG_PASSWORD)).await;
        let base = format!("http://{}", origin.http_addr());
        let (status, _, body) = get(&format!("{base}/v2/{REPO}/manifests/v1"), &[]).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("refused the origin's credentials"), "{text}");
        assert!(
            !text.contains(WRONG_PASSWORD) && !text.contains(PASSWORD),
            "{text}"
        );
        let url = format!("{base}/v2/{REPO}/blobs/{}", images.v1_layers[2].digest());
        let (status, _, body) = get_ready(&url, &[]).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains(WRONG_PASSWORD), "{text}");
        assert_eq!(origin.stats().blobs_stored, 0);
        origin.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_registry() {
    exercise(Auth::Anonymous, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_basic_auth_over_tls_with_a_private_ca() {
    exercise(Auth::HtpasswdTls, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_flow_with_cached_tokens() {
    exercise(Auth::Token, true).await;
}
