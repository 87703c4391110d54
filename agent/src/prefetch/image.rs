//! Which blobs a prefetch pulls: the manifest as a client on this node
//! would get it (from the origins, like any manifest request), and for an
//! index the manifest of this node's own platform (linux and the agent's
//! architecture), since that is what the rollout will pull here. Config
//! first, then the layers.

use shoal_registry::manifest::{Content, Descriptor};
use shoal_registry::{Manifest, ManifestReference};
use shoal_swarm::Digest;

use crate::origin::{Location, Origins};

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
) -> Result<Vec<Descriptor>, String> {
    let manifest = manifest(origins, at, reference).await?;
    if let Content::Image { .. } = manifest.content {
        return Ok(manifest.blobs());
    }
    let arch = node_architecture();
    let entry = manifest
        .platform_entry("linux", arch)
        .ok_or_else(|| format!("the index has no linux/{arch} manifest"))?;
    let manifest = self::manifest(origins, at, &ManifestReference::Digest(entry.digest)).await?;
    match manifest.content {
        Content::Image { .. } => Ok(manifest.blobs()),
        Content::Index { .. } => Err("the index names another index".into()),
    }
}

async fn manifest(
    origins: &Origins,
    at: &Location,
    reference: &ManifestReference,
) -> Result<Manifest, String> {
    let manifest = origins
        .manifest(at, &reference.to_string(), None, false)
        .await
        .map_err(|e| format!("manifest {}:{reference}: {e}", at.name))?;
    if let ManifestReference::Digest(wanted) = reference
        && Digest::of(&manifest.body) != *wanted
    {
        return Err(format!("manifest {wanted} does not match its digest"));
    }
    Manifest::parse(&manifest.body).map_err(|e| format!("manifest {reference}: {e}"))
}
