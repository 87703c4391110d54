//! Which blobs a prefetch pulls: the manifest as a client on this node
//! would get it (from the origins, like any manifest request), and for an
//! index the manifest of this node's own platform (linux and the agent's
//! architecture), since that is what the rollout will pull here. Config
//! first, then the layers.

use serde::Deserialize;
use shoal_registry::ManifestReference;
use shoal_swarm::Digest;

use crate::origin::{Location, Origins};

/// One blob to pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobRef {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
}

#[derive(Debug, Deserialize)]
struct Descriptor {
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Debug, Deserialize)]
struct Document {
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// The OCI name of the architecture this agent runs on.
pub(crate) fn node_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The config and layers of `reference` for this node's platform.
pub(crate) async fn resolve(
    origins: &Origins,
    at: &Location,
    reference: &ManifestReference,
) -> Result<Vec<BlobRef>, String> {
    let document = manifest(origins, at, reference).await?;
    if document.manifests.is_empty() {
        return blobs(document);
    }
    let arch = node_architecture();
    let entry = document
        .manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .ok_or_else(|| format!("the index has no linux/{arch} manifest"))?;
    let digest: Digest = entry
        .digest
        .parse()
        .map_err(|e| format!("index entry digest: {e}"))?;
    let document = manifest(origins, at, &ManifestReference::Digest(digest)).await?;
    if !document.manifests.is_empty() {
        return Err("the index names another index".into());
    }
    blobs(document)
}

async fn manifest(
    origins: &Origins,
    at: &Location,
    reference: &ManifestReference,
) -> Result<Document, String> {
    let manifest = origins
        .manifest(at, &reference.to_string(), None, false)
        .await
        .map_err(|e| format!("manifest {}:{reference}: {e}", at.name))?;
    if let ManifestReference::Digest(wanted) = reference
        && Digest::of(&manifest.body) != *wanted
    {
        return Err(format!("manifest {wanted} does not match its digest"));
    }
    serde_json::from_slice(&manifest.body).map_err(|e| format!("manifest {reference}: {e}"))
}

fn blobs(document: Document) -> Result<Vec<BlobRef>, String> {
    let config = document
        .config
        .ok_or("the manifest has neither layers and config nor manifests")?;
    std::iter::once(config)
        .chain(document.layers)
        .map(|d| {
            Ok(BlobRef {
                digest: d
                    .digest
                    .parse()
                    .map_err(|e| format!("blob digest {:?}: {e}", d.digest))?,
                size: d.size,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_lists_config_then_layers() {
        let (c, l) = (Digest::of(b"c"), Digest::of(b"l"));
        let doc: Document = serde_json::from_str(&format!(
            r#"{{"config": {{"digest": "{c}", "size": 2}},
                "layers": [{{"digest": "{l}", "size": 9}}]}}"#
        ))
        .unwrap();
        let refs = blobs(doc).unwrap();
        assert_eq!(refs[0], BlobRef { digest: c, size: 2 });
        assert_eq!(refs[1], BlobRef { digest: l, size: 9 });
        let bad: Document =
            serde_json::from_str(r#"{"config": {"digest": "md5:1", "size": 2}}"#).unwrap();
        assert!(blobs(bad).unwrap_err().contains("md5:1"));
        let empty: Document = serde_json::from_str("{}").unwrap();
        assert!(blobs(empty).is_err());
    }
}
