//! Manifest media types. A registry proxy must pass `Content-Type` through
//! unchanged (clients pick the parser by it) and must ask upstream for every
//! type its clients understand, or upstream may down-convert the manifest
//! and change its digest.

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-arch).
pub const DOCKER_MANIFEST_LIST_V2: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST_V1: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-arch).
pub const OCI_INDEX_V1: &str = "application/vnd.oci.image.index.v1+json";

/// Every manifest type served, in the order sent in `Accept`.
pub const MANIFEST_TYPES: [&str; 4] = [
    OCI_INDEX_V1,
    OCI_MANIFEST_V1,
    DOCKER_MANIFEST_LIST_V2,
    DOCKER_MANIFEST_V2,
];

/// The `Accept` header value naming every manifest type served.
pub fn manifest_accept() -> String {
    MANIFEST_TYPES.join(", ")
}

/// True for the manifest types Shoal serves.
pub fn is_manifest_type(media_type: &str) -> bool {
    let bare = media_type.split(';').next().unwrap_or("").trim();
    MANIFEST_TYPES.contains(&bare)
}

/// True for an index or manifest list, whose entries are manifests rather
/// than layers.
pub fn is_index_type(media_type: &str) -> bool {
    let bare = media_type.split(';').next().unwrap_or("").trim();
    bare == OCI_INDEX_V1 || bare == DOCKER_MANIFEST_LIST_V2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_lists_every_type() {
        let accept = manifest_accept();
        for media_type in MANIFEST_TYPES {
            assert!(accept.contains(media_type));
        }
    }

    #[test]
    fn parameters_are_ignored() {
        assert!(is_manifest_type(
            "application/vnd.oci.image.manifest.v1+json; charset=utf-8"
        ));
        assert!(is_index_type(DOCKER_MANIFEST_LIST_V2));
        assert!(!is_index_type(OCI_MANIFEST_V1));
        assert!(!is_manifest_type("application/octet-stream"));
    }
}
