//! The demo's embedded image: an OCI image layout generated on the spot, so
//! the demo needs no registry and no network. Layers are seeded random tar
//! archives: incompressible like real layers, the same digests for the same
//! flags.

use std::path::Path;

use anyhow::{Context as _, ensure};
use shoal_registry::layout;

/// The repository the embedded origin serves the image under.
pub const NAME: &str = "shoal/demo";
/// Its tag.
pub const TAG: &str = "latest";

/// Writes the image (`layers` layers totalling `total_bytes`) into `dir`.
pub fn generate(dir: &Path, total_bytes: u64, layers: usize, seed: u64) -> anyhow::Result<()> {
    ensure!(layers > 0, "--layers must be at least 1");
    let per_layer = total_bytes / layers as u64;
    ensure!(per_layer > 0, "--size-mib is too small for {layers} layers");
    let mut sizes = vec![per_layer; layers];
    // The last layer takes the remainder, so the image is exactly the size
    // asked for (plus tar headers and the config).
    if let Some(last) = sizes.last_mut() {
        *last += total_bytes - per_layer * layers as u64;
    }
    layout::synthetic_image(dir, TAG, &sizes, seed)
        .with_context(|| format!("writing the demo image to {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_add_up_to_the_size_asked_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        generate(dir.path(), 10_000, 3, 1).expect("image");
        let blobs = std::fs::read_dir(dir.path().join("blobs/sha256"))
            .expect("blobs")
            .map(|e| e.expect("entry").metadata().expect("metadata").len())
            .collect::<Vec<_>>();
        // Three layers, a config and a manifest.
        assert_eq!(blobs.len(), 5);
        assert!(blobs.iter().sum::<u64>() > 10_000);
    }

    #[test]
    fn zero_layers_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = generate(dir.path(), 10, 0, 1).expect_err("refused");
        assert!(error.to_string().contains("--layers"));
    }
}
