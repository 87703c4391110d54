//! A manifest's media type, read from its own bytes.
//!
//! oci-client's raw manifest pull returns the bytes and the checked digest
//! but not the response's `Content-Type`, and an OCI layout has no headers
//! at all. Both are answered the way the distribution registry itself
//! decides what `Content-Type` to serve: the manifest's `mediaType` field,
//! or, when an OCI manifest omits it, an index if it lists `manifests` and
//! an image manifest otherwise. For the manifests a registry stores this is
//! the header it would have sent (the integration tests compare the two).

use serde::Deserialize;
use shoal_registry::media::{OCI_INDEX_V1, OCI_MANIFEST_V1, is_manifest_type};

/// The fields that decide the type.
#[derive(Deserialize)]
struct Versioned {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
}

/// The media type of `bytes`, or why it is not a manifest Shoal serves.
pub(crate) fn manifest_media_type(bytes: &[u8]) -> Result<String, String> {
    let versioned: Versioned =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest is not JSON: {e}"))?;
    if versioned.schema_version != Some(2) {
        return Err("manifest is not schemaVersion 2".into());
    }
    match versioned.media_type {
        Some(media_type) if is_manifest_type(&media_type) => Ok(media_type),
        Some(other) => Err(format!(
            "unsupported manifest media type {:?}",
            other.chars().take(100).collect::<String>()
        )),
        None if versioned.manifests.is_some() => Ok(OCI_INDEX_V1.to_owned()),
        None => Ok(OCI_MANIFEST_V1.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use shoal_registry::media::DOCKER_MANIFEST_LIST_V2;

    #[test]
    fn the_field_wins_and_its_absence_follows_the_oci_rule() {
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST_V2}","manifests":[]}}"#
        );
        assert_eq!(
            manifest_media_type(list.as_bytes()).unwrap(),
            DOCKER_MANIFEST_LIST_V2
        );
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(manifest_media_type(index).unwrap(), OCI_INDEX_V1);
        let image = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert_eq!(manifest_media_type(image).unwrap(), OCI_MANIFEST_V1);
    }

    #[test]
    fn other_documents_are_refused() {
        assert!(manifest_media_type(b"not json").is_err());
        assert!(manifest_media_type(br#"{"schemaVersion":1}"#).is_err());
        assert!(manifest_media_type(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#).is_err());
    }
}
