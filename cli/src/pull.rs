//! Pulling an image through a registry API (an agent's), as docker would:
//! the manifest (and, for an index, the platform's manifest), then the
//! config and every layer, each streamed through SHA-256 and checked against
//! its digest. Nothing is kept: the point is to prove what arrived is right
//! and to count it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use futures_util::{StreamExt as _, TryStreamExt as _};
use sha2::{Digest as _, Sha256};
use shoal_registry::manifest::{Content, Descriptor, MAX_MANIFEST_BYTES};
use shoal_registry::{Manifest, media};

/// Blobs fetched at once per image, as docker does by default.
const PARALLEL_BLOBS: usize = 3;

/// An image resolved to the blobs a pull fetches.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The image manifest's digest (the platform's, for an index).
    pub manifest_digest: String,
    /// Config first, then layers.
    pub blobs: Vec<Descriptor>,
}

impl ResolvedImage {
    /// Bytes of every blob.
    pub fn total_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
}

/// What one pull fetched.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// Blob bytes received, every one verified.
    pub bytes: u64,
    /// Blobs fetched and verified.
    pub blobs: usize,
}

/// A registry API client for one base URL (`http://127.0.0.1:5050`).
#[derive(Clone)]
pub struct Puller {
    http: reqwest::Client,
    base: String,
}

impl Puller {
    /// A client of the registry API at `base`.
    pub fn new(base: impl Into<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Puller {
            http,
            base: base.into().trim_end_matches('/').to_owned(),
        })
    }

    /// Resolves `name:reference` to the blobs of its linux/amd64 image (or
    /// the first entry of an index without one), checking every manifest's
    /// digest on the way.
    pub async fn resolve(&self, name: &str, reference: &str) -> anyhow::Result<ResolvedImage> {
        let (digest, manifest) = self.manifest(name, reference).await?;
        let (digest, manifest) = match &manifest.content {
            Content::Image { .. } => (digest, manifest),
            Content::Index { manifests } => {
                let chosen = manifest
                    .platform_entry("linux", "amd64")
                    .or_else(|| manifests.first())
                    .context("index lists no manifest")?;
                self.manifest(name, &chosen.digest.to_string()).await?
            }
        };
        let blobs = manifest.blobs();
        ensure!(!blobs.is_empty(), "manifest {digest} names no blobs");
        Ok(ResolvedImage {
            manifest_digest: digest,
            blobs,
        })
    }

    /// Fetches every blob of `image`, calling `on_bytes` as bytes arrive.
    pub async fn fetch_blobs(
        &self,
        name: &str,
        image: &ResolvedImage,
        on_bytes: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> anyhow::Result<PullReport> {
        let bytes = futures_util::stream::iter(image.blobs.iter().cloned())
            .map(|blob| {
                let on_bytes = Arc::clone(&on_bytes);
                async move { self.blob(name, &blob, on_bytes.as_ref()).await }
            })
            .buffer_unordered(PARALLEL_BLOBS)
            .try_fold(0u64, |total, n| async move { Ok(total + n) })
            .await?;
        Ok(PullReport {
            bytes,
            blobs: image.blobs.len(),
        })
    }

    /// One manifest, its digest checked against the body.
    async fn manifest(&self, name: &str, reference: &str) -> anyhow::Result<(String, Manifest)> {
        let url = format!("{}/v2/{name}/manifests/{reference}", self.base);
        let response = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, media::manifest_accept())
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("GET {url}: {status}: {}", body.trim());
        }
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .bytes()
            .await
            .with_context(|| format!("GET {url}"))?;
        ensure!(
            body.len() <= MAX_MANIFEST_BYTES,
            "{url}: manifest too large"
        );
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if let Some(header) = header_digest {
            ensure!(
                header == digest,
                "{url}: Docker-Content-Digest {header} but body is {digest}"
            );
        }
        if reference.starts_with("sha256:") {
            ensure!(reference == digest, "{url}: body hashes to {digest}");
        }
        let manifest = Manifest::parse(&body).with_context(|| format!("{url}: not a manifest"))?;
        Ok((digest, manifest))
    }

    /// One blob, streamed through SHA-256; returns its length.
    async fn blob(
        &self,
        name: &str,
        blob: &Descriptor,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> anyhow::Result<u64> {
        let url = format!("{}/v2/{name}/blobs/{}", self.base, blob.digest);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("GET {url}: {status}: {}", body.trim());
        }
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.with_context(|| format!("GET {url}: body"))?;
            received += chunk.len() as u64;
            ensure!(
                received <= blob.size,
                "{url}: more than the {} bytes announced",
                blob.size
            );
            hasher.update(&chunk);
            on_bytes(chunk.len() as u64);
        }
        ensure!(
            received == blob.size,
            "{url}: {received} of {} bytes",
            blob.size
        );
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        ensure!(
            digest == blob.digest.to_string(),
            "{url}: content hashes to {digest}"
        );
        Ok(received)
    }
}
