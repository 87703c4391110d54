//! The manifest cache: by digest it survives the upstream losing the
//! manifest; a tag is reused for its TTL and then resolved again.

use axum::http::StatusCode;

use crate::support::{TestImages, get, start_origin};

fn retag(images: &TestImages, tag: &str, to: &oci_spec::image::Descriptor) {
    let path = images.layout().join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for entry in index["manifests"].as_array_mut().unwrap() {
        if entry["annotations"]["org.opencontainers.image.ref.name"] == tag {
            entry["digest"] = to.digest().to_string().into();
            entry["mediaType"] = to.media_type().to_string().into();
            entry["size"] = to.size().into();
        }
    }
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
}

async fn v1_digest(base: &str) -> String {
    let (status, headers, _) = get(&format!("{base}/v2/app/manifests/v1"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    headers["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_are_cached_and_tags_live_for_their_ttl() {
    for ttl in [3600, 0] {
        let images = TestImages::build(800);
        let data = tempfile::tempdir().unwrap();
        let extra = format!(
            "tag_ttl_seconds = {ttl}\n[upstreams.\"shoal.local\"]\nlayout = \"{}\"\n",
            images.layout().display()
        );
        let origin = start_origin(data.path(), &extra).await;
        let base = format!("http://{}", origin.http_addr());
        assert_eq!(v1_digest(&base).await, images.v1.digest().to_string());
        retag(&images, "v1", &images.multi);
        let now = v1_digest(&base).await;
        if ttl == 0 {
            assert_eq!(now, images.multi.digest().to_string());
        } else {
            assert_eq!(
                now,
                images.v1.digest().to_string(),
                "tag reused within its TTL"
            );
        }

        let by_digest = format!("{base}/v2/app/manifests/{}", images.v1.digest());
        let (status, _, first) = get(&by_digest, &[]).await;
        assert_eq!(status, StatusCode::OK);
        let file = images
            .layout()
            .join("blobs/sha256")
            .join(images.v1.digest().digest());
        std::fs::remove_file(file).unwrap();
        let requests = origin.stats().upstream_requests;
        let (status, _, again) = get(&by_digest, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again, first);
        assert_eq!(
            origin.stats().upstream_requests,
            requests,
            "served from the cache"
        );
        origin.shutdown().await;
    }
}
