//! An OCI image layout directory as an upstream: the embedded default of
//! the demo, and the air-gapped case.
//!
//! A layout is one image store with no repositories, so every repository
//! name under its namespace reads the same layout: tags are the
//! `org.opencontainers.image.ref.name` annotations of `index.json`, and
//! blobs and manifests are `blobs/sha256/<hex>`. Manifests are checked
//! against their digest here; blobs are checked by the store as they are
//! ingested.

use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::StreamExt as _;
use shoal_registry::ManifestReference;
use shoal_registry::layout::REF_NAME;
use shoal_registry::manifest::MAX_MANIFEST_BYTES;
use shoal_swarm::Digest;
use tokio_util::io::ReaderStream;

use super::{BlobStream, Manifest, UpstreamError};

/// Read size when streaming a blob file.
const CHUNK: usize = 256 << 10;

/// One layout directory.
pub(crate) struct LayoutBackend {
    root: PathBuf,
}

impl LayoutBackend {
    pub(crate) fn new(root: PathBuf) -> Self {
        LayoutBackend { root }
    }

    pub(crate) async fn manifest(
        &self,
        reference: &ManifestReference,
    ) -> Result<Manifest, UpstreamError> {
        let digest = match reference {
            ManifestReference::Digest(digest) => *digest,
            ManifestReference::Tag(tag) => self.resolve_tag(tag).await?,
        };
        let bytes = self.read_small(&self.blob_path(&digest)).await?;
        if Digest::of(&bytes) != digest {
            return Err(self.failed(format!("manifest file {digest} does not match its digest")));
        }
        let media_type = shoal_registry::Manifest::parse(&bytes)
            .map_err(|e| self.failed(e.to_string()))?
            .media_type;
        Ok(Manifest {
            media_type,
            digest,
            bytes,
        })
    }

    pub(crate) async fn blob(&self, digest: &Digest) -> Result<BlobStream, UpstreamError> {
        let path = self.blob_path(digest);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| self.io_error(&path, e))?;
        let length = file
            .metadata()
            .await
            .map_err(|e| self.io_error(&path, e))?
            .len();
        Ok(BlobStream {
            length,
            body: ReaderStream::with_capacity(file, CHUNK).boxed(),
        })
    }

    /// The digest `index.json` gives `tag`.
    async fn resolve_tag(&self, tag: &str) -> Result<Digest, UpstreamError> {
        #[derive(serde::Deserialize)]
        struct Index {
            manifests: Vec<Descriptor>,
        }
        #[derive(serde::Deserialize)]
        struct Descriptor {
            digest: String,
            #[serde(default)]
            annotations: std::collections::HashMap<String, String>,
        }
        let bytes = self.read_small(&self.root.join("index.json")).await?;
        let index: Index =
            serde_json::from_slice(&bytes).map_err(|e| self.failed(format!("index.json: {e}")))?;
        let found = index
            .manifests
            .iter()
            .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(tag))
            .ok_or(UpstreamError::NotFound)?;
        found
            .digest
            .parse()
            .map_err(|e| self.failed(format!("index.json digest for tag {tag}: {e}")))
    }

    async fn read_small(&self, path: &std::path::Path) -> Result<Bytes, UpstreamError> {
        let len = tokio::fs::metadata(path)
            .await
            .map_err(|e| self.io_error(path, e))?
            .len();
        if len > MAX_MANIFEST_BYTES as u64 {
            return Err(self.failed(format!("{} is larger than a manifest", path.display())));
        }
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| self.io_error(path, e))?;
        Ok(Bytes::from(bytes))
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    fn io_error(&self, path: &std::path::Path, error: io::Error) -> UpstreamError {
        if error.kind() == io::ErrorKind::NotFound {
            UpstreamError::NotFound
        } else {
            self.failed(format!("{}: {error}", path.display()))
        }
    }

    fn failed(&self, message: String) -> UpstreamError {
        UpstreamError::Failed {
            namespace: format!("layout {}", self.root.display()),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures_util::TryStreamExt as _;
    use shoal_registry::layout::synthetic_image;

    #[tokio::test]
    async fn serves_tags_manifests_and_blobs_of_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        let (manifest, layers) = synthetic_image(dir.path(), "v1", &[1000, 2000], 7).unwrap();
        let backend = LayoutBackend::new(dir.path().to_owned());
        let by_tag = backend
            .manifest(&ManifestReference::Tag("v1".into()))
            .await
            .unwrap();
        assert_eq!(by_tag.digest.to_string(), manifest.digest().to_string());
        assert_eq!(by_tag.media_type, shoal_registry::media::OCI_MANIFEST_V1);
        let by_digest = backend
            .manifest(&ManifestReference::Digest(by_tag.digest))
            .await
            .unwrap();
        assert_eq!(by_digest.bytes, by_tag.bytes);
        let layer: Digest = layers[1].digest().to_string().parse().unwrap();
        let blob = backend.blob(&layer).await.unwrap();
        assert_eq!(blob.length, layers[1].size());
        let body: Vec<Bytes> = blob.body.try_collect().await.unwrap();
        assert_eq!(Digest::of(&body.concat()), layer);
        assert_eq!(
            backend
                .manifest(&ManifestReference::Tag("nope".into()))
                .await
                .unwrap_err(),
            UpstreamError::NotFound
        );
        assert!(matches!(
            backend.blob(&Digest::of(b"absent")).await,
            Err(UpstreamError::NotFound)
        ));
    }
}
