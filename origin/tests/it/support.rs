//! Fixtures of the origin's tests: the real upstream (`shoal_e2e::registry`:
//! Debian's `docker-registry` started on 127.0.0.1, images pushed with
//! skopeo, a token issuer for the bearer flow), test images, an origin
//! started from TOML, and HTTP helpers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use oci_spec::image::{Arch, Descriptor, Os};
pub use shoal_e2e::registry::{Auth, PASSWORD, Registry, WRONG_PASSWORD};
use shoal_origin::{Config, Origin};
use shoal_registry::layout::LayoutWriter;
use shoal_swarm::Digest;

/// A two-image test repository: `v1` (an image of three layers) and
/// `multi` (an index of amd64 and arm64 images).
pub struct TestImages {
    pub dir: tempfile::TempDir,
    pub v1: Descriptor,
    pub v1_layers: Vec<Descriptor>,
    pub multi: Descriptor,
    pub multi_children: Vec<Descriptor>,
}

impl TestImages {
    pub fn build(seed: u64) -> TestImages {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LayoutWriter::create(dir.path().join("layout")).expect("layout");
        let v1_layers: Vec<Descriptor> = [(3 << 20) + 17, 1 << 20, 4096]
            .iter()
            .enumerate()
            .map(|(i, size)| {
                writer
                    .add_random_layer(*size, seed + i as u64)
                    .expect("layer")
            })
            .collect();
        let v1 = writer
            .add_image(&v1_layers, Arch::Amd64, Os::Linux)
            .expect("image");
        let amd = writer.add_random_layer(200_000, seed + 10).expect("layer");
        let arm = writer.add_random_layer(300_000, seed + 11).expect("layer");
        let amd = writer
            .add_image(&[amd], Arch::Amd64, Os::Linux)
            .expect("amd64");
        let arm = writer
            .add_image(&[arm], Arch::ARM64, Os::Linux)
            .expect("arm64");
        let multi_children = vec![amd, arm];
        let multi = writer.add_index(multi_children.clone()).expect("index");
        writer
            .finish(&[("v1", v1.clone()), ("multi", multi.clone())])
            .expect("finish");
        TestImages {
            dir,
            v1,
            v1_layers,
            multi,
            multi_children,
        }
    }

    pub fn layout(&self) -> PathBuf {
        self.dir.path().join("layout")
    }
}

/// Digest of a descriptor as ours.
pub fn digest_of(descriptor: &Descriptor) -> Digest {
    descriptor.digest().to_string().parse().expect("digest")
}

/// Starts an origin from TOML text (data under `data_dir`).
pub async fn start_origin(data_dir: &Path, extra: &str) -> Origin {
    let toml = format!(
        "listen = \"127.0.0.1:0\"\npeer_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{extra}",
        data_dir.display()
    );
    let settings = Config::parse(&toml)
        .expect("origin config parses")
        .settings()
        .expect("origin settings");
    Origin::start(settings).await.expect("origin starts")
}

/// A plain HTTP client that does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// GETs `url` (with optional headers) and returns status, headers, body.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = client().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

/// GETs `url` until it stops answering 202 (bounded), as an agent does.
pub async fn get_ready(url: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    for _ in 0..300 {
        let answer = get(url, headers).await;
        if answer.0 != StatusCode::ACCEPTED {
            return answer;
        }
        assert_eq!(
            answer
                .1
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} still 202 after 30 s");
}

/// The OCI error code and message of an error body.
pub fn error_of(body: &[u8]) -> (String, String) {
    let json: serde_json::Value = serde_json::from_slice(body).expect("OCI error JSON");
    (
        json["errors"][0]["code"].as_str().expect("code").to_owned(),
        json["errors"][0]["message"]
            .as_str()
            .expect("message")
            .to_owned(),
    )
}
