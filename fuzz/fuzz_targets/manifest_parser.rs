//! The manifest parser the origin, the agent's prefetch and the CLI share,
//! on arbitrary bytes. Whatever parses has a media type Shoal serves, an
//! index exactly when that type says so, and sha256 digests that display
//! back to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_registry::Manifest;
use shoal_registry::manifest::Content;
use shoal_registry::media::{is_index_type, is_manifest_type};

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::parse(data) else {
        return;
    };
    assert!(is_manifest_type(&manifest.media_type));
    let descriptors = match &manifest.content {
        Content::Index { manifests } => {
            assert!(is_index_type(&manifest.media_type));
            assert!(manifest.blobs().is_empty());
            manifests.clone()
        }
        Content::Image { layers, .. } => {
            assert!(!is_index_type(&manifest.media_type));
            let blobs = manifest.blobs();
            assert_eq!(blobs.len(), layers.len() + 1, "config, then every layer");
            blobs
        }
    };
    for d in descriptors {
        assert_eq!(d.digest.to_string().parse(), Ok(d.digest));
    }
    // Parsing is a pure function of the bytes.
    assert_eq!(Manifest::parse(data), Ok(manifest));
});
