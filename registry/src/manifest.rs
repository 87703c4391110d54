//! Reading a manifest: its media type and the blobs or manifests it names.
//!
//! The origin (which must know what `Content-Type` to serve), the agent's
//! prefetch and the CLI's puller (which walk an image to its blobs) all read
//! manifests that came from outside, so they share this one parser and the
//! fuzzer exercises it.
//!
//! The media type is decided the way the distribution registry decides what
//! `Content-Type` to serve: the document's `mediaType` field, or, when an OCI
//! manifest omits it, an index if it lists `manifests` and an image manifest
//! otherwise. The body is then parsed with oci-spec's `ImageIndex` or
//! `ImageManifest` (Docker's schema 2 and manifest list have the same shape),
//! and every digest it names must be one Shoal can verify (sha256).

use oci_spec::image::{ImageIndex, ImageManifest};
use serde::Deserialize;
use shoal_swarm::{Digest, DigestError};

use crate::media::{OCI_INDEX_V1, OCI_MANIFEST_V1, is_index_type, is_manifest_type};

/// Largest manifest accepted. Real ones are a few KiB; the distribution
/// registry itself refuses manifests over 4 MiB.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Why a document is not a manifest Shoal serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Over [`MAX_MANIFEST_BYTES`].
    #[error("manifest is {0} bytes, over the {MAX_MANIFEST_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not JSON, or not the shape its media type calls for.
    #[error("manifest is not a valid {kind}: {reason}")]
    Malformed {
        /// What it was read as.
        kind: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// `schemaVersion` is missing or not 2 (schema 1 is long deprecated).
    #[error("manifest is not schemaVersion 2")]
    SchemaVersion,
    /// A `mediaType` that is not one of the four manifest types.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedType(String),
    /// A descriptor whose digest Shoal cannot verify.
    #[error("{field} digest: {source}")]
    Digest {
        /// Which descriptor, e.g. `layers[3]`.
        field: String,
        /// Why its digest was refused.
        source: DigestError,
    },
}

/// One blob or manifest a manifest names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Its content digest.
    pub digest: Digest,
    /// Its length in bytes, as the manifest states it.
    pub size: u64,
    /// `os/architecture` of an index entry, when given.
    pub platform: Option<(String, String)>,
}

/// What a manifest names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// An image (or artifact) manifest: its config and layers.
    Image {
        /// The config blob.
        config: Descriptor,
        /// The layers, base first.
        layers: Vec<Descriptor>,
    },
    /// An index or manifest list: one manifest per platform.
    Index {
        /// The entries.
        manifests: Vec<Descriptor>,
    },
}

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The `Content-Type` a registry serves it with.
    pub media_type: String,
    /// What it names.
    pub content: Content,
}

/// The fields that decide the media type, read before the full parse.
#[derive(Deserialize)]
struct Versioned {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
}

impl Manifest {
    /// Parses `bytes`, a manifest as a registry served it.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let versioned: Versioned =
            serde_json::from_slice(bytes).map_err(|e| malformed("JSON document", &e))?;
        if versioned.schema_version != Some(2) {
            return Err(ManifestError::SchemaVersion);
        }
        let media_type = match versioned.media_type {
            Some(media_type) if is_manifest_type(&media_type) => media_type,
            Some(other) => {
                return Err(ManifestError::UnsupportedType(
                    other.chars().take(100).collect(),
                ));
            }
            None if versioned.manifests.is_some() => OCI_INDEX_V1.to_owned(),
            None => OCI_MANIFEST_V1.to_owned(),
        };
        let content = if is_index_type(&media_type) {
            let index: ImageIndex =
                serde_json::from_slice(bytes).map_err(|e| malformed("index", &e))?;
            let manifests = descriptors(index.manifests(), "manifests")?;
            Content::Index { manifests }
        } else {
            let image: ImageManifest =
                serde_json::from_slice(bytes).map_err(|e| malformed("image manifest", &e))?;
            let config = descriptor(image.config(), || "config".to_owned())?;
            let layers = descriptors(image.layers(), "layers")?;
            Content::Image { config, layers }
        };
        Ok(Manifest {
            media_type,
            content,
        })
    }

    /// The blobs an image pulls, config first; empty for an index.
    pub fn blobs(&self) -> Vec<Descriptor> {
        match &self.content {
            Content::Image { config, layers } => {
                std::iter::once(config).chain(layers).cloned().collect()
            }
            Content::Index { .. } => Vec::new(),
        }
    }

    /// The index entry for `os`/`architecture` (e.g. `linux`/`amd64`), if
    /// this is an index that has one.
    pub fn platform_entry(&self, os: &str, architecture: &str) -> Option<&Descriptor> {
        let Content::Index { manifests } = &self.content else {
            return None;
        };
        manifests.iter().find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|(o, a)| o == os && a == architecture)
        })
    }
}

fn malformed(kind: &'static str, error: &serde_json::Error) -> ManifestError {
    // serde's message quotes the offending input, which is bounded by the
    // manifest limit but can still be long: keep the first line's start.
    let reason: String = error.to_string().chars().take(200).collect();
    ManifestError::Malformed { kind, reason }
}

/// Every entry of the descriptor list `field`, each named by its index in
/// errors.
fn descriptors(
    list: &[oci_spec::image::Descriptor],
    field: &str,
) -> Result<Vec<Descriptor>, ManifestError> {
    list.iter()
        .enumerate()
        .map(|(i, d)| descriptor(d, || format!("{field}[{i}]")))
        .collect()
}

fn descriptor(
    d: &oci_spec::image::Descriptor,
    field: impl FnOnce() -> String,
) -> Result<Descriptor, ManifestError> {
    let digest = d
        .digest()
        .to_string()
        .parse()
        .map_err(|source| ManifestError::Digest {
            field: field(),
            source,
        })?;
    Ok(Descriptor {
        digest,
        size: d.size(),
        platform: d
            .platform()
            .as_ref()
            .map(|p| (p.os().to_string(), p.architecture().to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{DOCKER_MANIFEST_LIST_V2, DOCKER_MANIFEST_V2};

    fn descriptor_json(media_type: &str, digest: &Digest, size: u64) -> String {
        format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#)
    }

    #[test]
    fn an_image_lists_config_then_layers() {
        let (c, l) = (Digest::of(b"c"), Digest::of(b"l"));
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_V2}","config":{},"layers":[{}]}}"#,
            descriptor_json("application/vnd.docker.container.image.v1+json", &c, 2),
            descriptor_json("application/vnd.docker.image.rootfs.diff.tar.gzip", &l, 9),
        );
        let manifest = Manifest::parse(body.as_bytes()).unwrap();
        assert_eq!(manifest.media_type, DOCKER_MANIFEST_V2);
        let blobs = manifest.blobs();
        assert_eq!((blobs[0].digest, blobs[0].size), (c, 2));
        assert_eq!((blobs[1].digest, blobs[1].size), (l, 9));
        assert!(manifest.platform_entry("linux", "amd64").is_none());
    }

    #[test]
    fn an_index_is_searched_by_platform() {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST_V2}","manifests":[
                {{"mediaType":"{DOCKER_MANIFEST_V2}","digest":"{a}","size":1,
                  "platform":{{"os":"linux","architecture":"arm64"}}}},
                {{"mediaType":"{DOCKER_MANIFEST_V2}","digest":"{b}","size":1,
                  "platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let manifest = Manifest::parse(body.as_bytes()).unwrap();
        assert_eq!(manifest.media_type, DOCKER_MANIFEST_LIST_V2);
        assert_eq!(manifest.platform_entry("linux", "amd64").unwrap().digest, b);
        assert_eq!(manifest.platform_entry("linux", "arm64").unwrap().digest, a);
        assert!(manifest.platform_entry("windows", "amd64").is_none());
        assert!(manifest.blobs().is_empty());
    }

    #[test]
    fn an_absent_media_type_follows_the_oci_rule() {
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(Manifest::parse(index).unwrap().media_type, OCI_INDEX_V1);
        let d = Digest::of(b"c");
        let image = format!(
            r#"{{"schemaVersion":2,"config":{},"layers":[]}}"#,
            descriptor_json("application/vnd.oci.image.config.v1+json", &d, 2)
        );
        let manifest = Manifest::parse(image.as_bytes()).unwrap();
        assert_eq!(manifest.media_type, OCI_MANIFEST_V1);
        assert_eq!(manifest.blobs().len(), 1);
    }

    #[test]
    fn other_documents_are_refused_with_the_reason() {
        assert!(matches!(
            Manifest::parse(b"not json"),
            Err(ManifestError::Malformed { .. })
        ));
        assert_eq!(
            Manifest::parse(br#"{"schemaVersion":1}"#),
            Err(ManifestError::SchemaVersion)
        );
        assert!(matches!(
            Manifest::parse(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#),
            Err(ManifestError::UnsupportedType(_))
        ));
        assert!(matches!(
            Manifest::parse(br#"{"schemaVersion":2,"layers":[]}"#),
            Err(ManifestError::Malformed {
                kind: "image manifest",
                ..
            })
        ));
        let md5 = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x/y","digest":"sha256:{}","size":1}},
                "layers":[{{"mediaType":"x/y","digest":"sha512:{}","size":1}}]}}"#,
            "a".repeat(64),
            "b".repeat(128)
        );
        let error = Manifest::parse(md5.as_bytes()).unwrap_err();
        assert!(error.to_string().starts_with("layers[0] digest"), "{error}");
        let huge = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert_eq!(
            Manifest::parse(&huge),
            Err(ManifestError::TooLarge(MAX_MANIFEST_BYTES + 1))
        );
    }
}
