//! The HTTP API's refusals and edges, on a layout upstream (no registry
//! needed): every refusal is OCI error JSON with the documented status.

use axum::http::{StatusCode, header};
use shoal_swarm::Digest;

use crate::support::{TestImages, client, digest_of, error_of, get, get_ready, start_origin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_oci_errors_and_ranges_follow_the_contract() {
    let images = TestImages::build(600);
    let others = TestImages::build(601);
    let data = tempfile::tempdir().unwrap();
    let extra = format!(
        "default_registry = \"shoal.local\"\n\
         [upstreams.\"shoal.local\"]\nlayout = \"{}\"\n\
         [upstreams.\"other.local:5000\"]\nlayout = \"{}\"\n",
        images.layout().display(),
        others.layout().display()
    );
    let origin = start_origin(data.path(), &extra).await;
    let base = format!("http://{}", origin.http_addr());
    let layer = &images.v1_layers[2];

    let (status, headers, body) = get(&format!("{base}/v2/"), &[]).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"{}"[..]));
    assert_eq!(headers["docker-distribution-api-version"], "registry/2.0");

    // Several namespaces at once: `ns` picks the upstream.
    for (query, want) in [("", &images.v1), ("?ns=other.local:5000", &others.v1)] {
        let (status, headers, _) = get(&format!("{base}/v2/app/manifests/v1{query}"), &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["docker-content-digest"], want.digest().to_string());
    }

    let cases = [
        (
            "/v2/app/blobs/sha256:abc",
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            "/v2/app/blobs/md5:abc",
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            "/v2/App/blobs/sha256:abc",
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            "/v2/a%2fb/manifests/v1",
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            "/v2/app/manifests/-bad",
            StatusCode::BAD_REQUEST,
            "MANIFEST_UNKNOWN",
        ),
        (
            "/v2/app/manifests/v1?ns=bad/ns",
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            "/v2/app/manifests/v1?ns=elsewhere.io",
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
        ),
        (
            "/v2/app/manifests/nope",
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            "/internal/v1/metainfo/sha256:zz",
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
    ];
    for (path, want_status, want_code) in cases {
        let (status, headers, body) = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(status, want_status, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{path}");
        assert_eq!(error_of(&body).0, want_code, "{path}");
    }
    let digest = layer.digest();
    let (status, _, body) = get(
        &format!("{base}/internal/v1/metainfo/{digest}?repository=Bad"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&body).0, "NAME_INVALID");

    let response = client()
        .delete(format!("{base}/v2/app/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    // A peek never starts a fetch.
    let requests = origin.stats().upstream_requests;
    let url = format!("{base}/v2/app/blobs/{digest}");
    let (status, _, body) = get(&url, &[("x-shoal-peek", "1")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&body).0, "BLOB_UNKNOWN");
    assert_eq!(origin.stats().upstream_requests, requests);

    let (status, _, whole) = get_ready(&url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Digest::of(&whole), digest_of(layer));
    let len = whole.len();
    let response = client().head(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_LENGTH],
        len.to_string().as_str()
    );
    let (status, headers, tail) = get(&url, &[("range", "bytes=-100")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail, whole[len - 100..]);
    let want = format!("bytes {}-{}/{len}", len - 100, len - 1);
    assert_eq!(headers[header::CONTENT_RANGE], want.as_str());
    let (status, headers, body) = get(&url, &[("range", &format!("bytes={len}-"))]).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        headers[header::CONTENT_RANGE],
        format!("bytes */{len}").as_str()
    );
    assert_eq!(error_of(&body).0, "RANGE_INVALID");
    origin.shutdown().await;
}
