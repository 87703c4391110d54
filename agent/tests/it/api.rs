//! The registry API surface: routes, headers, Range, and OCI errors for
//! everything a pull proxy refuses.

use axum::http::StatusCode;
use sha2::{Digest as _, Sha256};

use crate::support::*;

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_api_routes_headers_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("origin-0", &dir.path().join("origin")).await;
    let tracker = Tracker::start(&[&origin]).await;
    let layer = origin.add_random(3 << 20, 1).await;
    let config_blob = origin
        .add_bytes(br#"{"architecture":"amd64","os":"linux"}"#)
        .await;
    let (manifest_digest, manifest) =
        origin.add_manifest("a/b/c/d", "v1", (config_blob, 37), &[(layer, 3 << 20)]);
    let agent = start_agent(&agent_config(
        &dir.path().join("agent"),
        Some(tracker.url()),
        &[&origin],
    ))
    .await;
    let base = format!("http://{}", agent.registry_addr());
    let http = reqwest::Client::new();

    let (status, headers, body) = get(&format!("{base}/v2/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"{}");
    assert_eq!(headers["docker-distribution-api-version"], "registry/2.0");

    // Manifest pass-through: bytes, type and digest unchanged, many-segment name.
    let (status, headers, body) =
        get(&format!("{base}/v2/a/b/c/d/manifests/v1?ns=docker.io")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, manifest);
    assert_eq!(headers["content-type"], OCI_MANIFEST);
    assert_eq!(
        headers["docker-content-digest"],
        manifest_digest.to_string().as_str()
    );
    assert_eq!(headers["docker-distribution-api-version"], "registry/2.0");
    let head = http
        .head(format!("{base}/v2/a/b/c/d/manifests/{manifest_digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()["content-length"],
        manifest.len().to_string().as_str()
    );
    assert_eq!(
        head.headers()["docker-content-digest"],
        manifest_digest.to_string().as_str()
    );

    // Blob: whole, HEAD, Range.
    let (status, headers, body) = get(&format!("{base}/v2/a/b/c/d/blobs/{layer}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&body), layer);
    assert_eq!(headers["content-length"], (3u64 << 20).to_string().as_str());
    assert_eq!(headers["docker-content-digest"], layer.to_string().as_str());
    assert_eq!(headers["content-type"], "application/octet-stream");
    let head = http
        .head(format!("{base}/v2/a/b/c/d/blobs/{layer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()["content-length"],
        (3u64 << 20).to_string().as_str()
    );
    let ranged = http
        .get(format!("{base}/v2/a/b/c/d/blobs/{layer}"))
        .header("range", "bytes=1048570-1048589")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes 1048570-1048589/{}", 3u64 << 20).as_str()
    );
    assert_eq!(ranged.bytes().await.unwrap(), body[1048570..1048590]);
    let unsatisfiable = http
        .get(format!("{base}/v2/a/b/c/d/blobs/{layer}"))
        .header("range", format!("bytes={}-", 3u64 << 20))
        .send()
        .await
        .unwrap();
    assert_eq!(unsatisfiable.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Refusals, each with OCI error JSON.
    for (method, path, status, code) in [
        (
            "POST",
            "/v2/a/blobs/uploads/".to_string(),
            405,
            "UNSUPPORTED",
        ),
        ("PUT", "/v2/a/manifests/v1".to_string(), 405, "UNSUPPORTED"),
        (
            "DELETE",
            format!("/v2/a/blobs/sha256:{HEX}"),
            405,
            "UNSUPPORTED",
        ),
        ("GET", "/v2/A/manifests/v1".to_string(), 400, "NAME_INVALID"),
        (
            "GET",
            "/v2/a//b/manifests/v1".to_string(),
            400,
            "NAME_INVALID",
        ),
        (
            "GET",
            "/v2/a/blobs/sha256:zz".to_string(),
            400,
            "DIGEST_INVALID",
        ),
        (
            "GET",
            format!("/v2/a/blobs/sha512:{HEX}"),
            400,
            "DIGEST_INVALID",
        ),
        (
            "GET",
            "/v2/a/manifests/v1?ns=a/b".to_string(),
            400,
            "NAME_INVALID",
        ),
        (
            "GET",
            "/v2/a/b/c/d/manifests/nope".to_string(),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "GET",
            format!("/v2/a/b/c/d/blobs/sha256:{HEX}"),
            404,
            "BLOB_UNKNOWN",
        ),
    ] {
        let response = http
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            response.headers()["docker-distribution-api-version"],
            "registry/2.0"
        );
        let body = response.bytes().await.unwrap();
        assert_eq!(error_code(&body), code, "{method} {path}");
    }
    let head = http
        .head(format!("{base}/v2/a/b/c/d/blobs/sha256:{HEX}"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);

    // The layer is now cached: a second agent-side read needs no origin.
    let before = origin.bytes_served();
    let (_, _, again) = get(&format!("{base}/v2/a/b/c/d/blobs/{layer}")).await;
    assert_eq!(Sha256::digest(&again).as_slice(), layer.as_bytes());
    assert_eq!(origin.bytes_served(), before);
    agent.shutdown().await;
}
