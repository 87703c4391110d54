//! Writing OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/`):
//! the synthetic images `shoal demo` serves from its embedded origin, and the
//! images tests push to a real registry with skopeo.
//!
//! Layers are real uncompressed tar archives holding one file of seeded
//! random bytes, so docker and containerd can unpack them and every run with
//! the same seed produces the same digests. Blobs are streamed to disk while
//! they are hashed: a multi-GiB layer never sits in memory.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, OciLayoutBuilder, Os, PlatformBuilder,
    RootFsBuilder, Sha256Digest,
};
use rand::rngs::SmallRng;
use rand::{RngCore as _, SeedableRng as _};
use sha2::{Digest as _, Sha256};

/// The annotation an OCI layout's `index.json` uses to name a tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Why a layout could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file could not be created, written or renamed.
    #[error("writing {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// oci-spec refused a manifest, index or config it was asked to build.
    #[error("building OCI {what}")]
    Spec {
        /// Which document.
        what: &'static str,
        /// The builder's complaint.
        #[source]
        source: oci_spec::OciSpecError,
    },
}

/// A layout being written. Blobs can be added in any order; `index.json` is
/// written by [`LayoutWriter::finish`], so a half-written layout has no tags.
#[derive(Debug)]
pub struct LayoutWriter {
    root: PathBuf,
    blobs: PathBuf,
    tmp_counter: u64,
}

impl LayoutWriter {
    /// Creates `root` (and its blob directory) and writes `oci-layout`.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, LayoutError> {
        let root = root.into();
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|source| io_error(&blobs, source))?;
        let layout_file = root.join("oci-layout");
        OciLayoutBuilder::default()
            .image_layout_version("1.0.0")
            .build()
            .map_err(|source| spec_error("oci-layout", source))?
            .to_file(&layout_file)
            .map_err(|source| spec_error("oci-layout", source))?;
        Ok(LayoutWriter {
            root,
            blobs,
            tmp_counter: 0,
        })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Adds a small blob held in memory (a config, a manifest).
    pub fn add_bytes(
        &mut self,
        media_type: MediaType,
        bytes: &[u8],
    ) -> Result<Descriptor, LayoutError> {
        self.add_streamed(media_type, |out| out.write_all(bytes))
    }

    /// Adds a layer: a tar archive holding one file, `shoal/layer-<seed>`, of
    /// `size` random bytes drawn from `seed`.
    pub fn add_random_layer(&mut self, size: u64, seed: u64) -> Result<Descriptor, LayoutError> {
        self.add_streamed(MediaType::ImageLayer, |out| {
            let mut archive = tar::Builder::new(out);
            let mut header = tar::Header::new_gnu();
            header.set_size(size);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            let random = SeededReader {
                rng: SmallRng::seed_from_u64(seed),
                remaining: size,
            };
            archive.append_data(&mut header, format!("shoal/layer-{seed}"), random)?;
            archive.finish()
        })
    }

    /// Adds an image: its config (whose diff ids are the layers' digests, as
    /// the layers are uncompressed) and its manifest. Returns the manifest's
    /// descriptor, with the platform set so it can go into an index.
    pub fn add_image(
        &mut self,
        layers: &[Descriptor],
        arch: Arch,
        os: Os,
    ) -> Result<Descriptor, LayoutError> {
        let diff_ids = layers
            .iter()
            .map(|l| l.digest().to_string())
            .collect::<Vec<_>>();
        let rootfs = RootFsBuilder::default()
            .typ("layers")
            .diff_ids(diff_ids)
            .build()
            .map_err(|source| spec_error("rootfs", source))?;
        let config = ImageConfigurationBuilder::default()
            .architecture(arch.clone())
            .os(os.clone())
            .rootfs(rootfs)
            .config(
                ConfigBuilder::default()
                    .cmd(vec!["/bin/true".to_owned()])
                    .build()
                    .map_err(|source| spec_error("config", source))?,
            )
            .build()
            .map_err(|source| spec_error("image configuration", source))?;
        let config_json = config
            .to_string()
            .map_err(|source| spec_error("image configuration", source))?;
        let config = self.add_bytes(MediaType::ImageConfig, config_json.as_bytes())?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(layers.to_vec())
            .build()
            .map_err(|source| spec_error("image manifest", source))?;
        let json = manifest
            .to_string()
            .map_err(|source| spec_error("image manifest", source))?;
        let mut descriptor = self.add_bytes(MediaType::ImageManifest, json.as_bytes())?;
        let platform = PlatformBuilder::default()
            .architecture(arch)
            .os(os)
            .build()
            .map_err(|source| spec_error("platform", source))?;
        descriptor.set_platform(Some(platform));
        Ok(descriptor)
    }

    /// Adds an image index (a multi-arch image) over `manifests`.
    pub fn add_index(&mut self, manifests: Vec<Descriptor>) -> Result<Descriptor, LayoutError> {
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(|source| spec_error("image index", source))?;
        let json = index
            .to_string()
            .map_err(|source| spec_error("image index", source))?;
        self.add_bytes(MediaType::ImageIndex, json.as_bytes())
    }

    /// Writes `index.json` naming each tag's manifest or index.
    pub fn finish(self, tags: &[(&str, Descriptor)]) -> Result<PathBuf, LayoutError> {
        let manifests = tags
            .iter()
            .map(|(tag, descriptor)| {
                let mut tagged = descriptor.clone();
                let mut annotations = tagged.annotations().clone().unwrap_or_default();
                annotations.insert(REF_NAME.to_owned(), (*tag).to_owned());
                tagged.set_annotations(Some(annotations));
                tagged
            })
            .collect::<Vec<_>>();
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .manifests(manifests)
            .build()
            .map_err(|source| spec_error("index.json", source))?;
        let path = self.root.join("index.json");
        index
            .to_file(&path)
            .map_err(|source| spec_error("index.json", source))?;
        Ok(self.root)
    }

    /// Streams a blob into a temporary file while hashing it, then renames it
    /// to its digest, so a blob file's name always matches its content.
    fn add_streamed(
        &mut self,
        media_type: MediaType,
        write: impl FnOnce(&mut HashingWriter) -> io::Result<()>,
    ) -> Result<Descriptor, LayoutError> {
        self.tmp_counter += 1;
        let tmp = self
            .blobs
            .join(format!(".tmp-{}-{}", std::process::id(), self.tmp_counter));
        let file = File::create(&tmp).map_err(|source| io_error(&tmp, source))?;
        let mut out = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            written: 0,
        };
        let written = write(&mut out).and_then(|()| out.inner.flush());
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_error(&tmp, source));
        }
        let hex = hex::encode(out.hasher.finalize());
        let path = self.blobs.join(&hex);
        fs::rename(&tmp, &path).map_err(|source| io_error(&path, source))?;
        let digest: Sha256Digest = hex.parse().map_err(|source| spec_error("digest", source))?;
        DescriptorBuilder::default()
            .media_type(media_type)
            .size(out.written)
            .digest(digest)
            .build()
            .map_err(|source| spec_error("descriptor", source))
    }
}

/// Builds a single-platform image of `layers` random layers of `layer_size`
/// bytes each (seeds `seed`, `seed + 1`, ...) tagged `tag`, and returns the
/// manifest's descriptor and the layers'.
pub fn synthetic_image(
    root: &Path,
    tag: &str,
    layer_sizes: &[u64],
    seed: u64,
) -> Result<(Descriptor, Vec<Descriptor>), LayoutError> {
    let mut writer = LayoutWriter::create(root)?;
    let layers = layer_sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| writer.add_random_layer(size, seed.wrapping_add(i as u64)))
        .collect::<Result<Vec<_>, _>>()?;
    let manifest = writer.add_image(&layers, Arch::Amd64, Os::Linux)?;
    writer.finish(&[(tag, manifest.clone())])?;
    Ok((manifest, layers))
}

/// A writer that hashes and counts what passes through it.
#[derive(Debug)]
pub struct HashingWriter {
    inner: BufWriter<File>,
    hasher: Sha256,
    written: u64,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `remaining` seeded random bytes, produced as they are read.
struct SeededReader {
    rng: SmallRng,
    remaining: u64,
}

impl Read for SeededReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        self.rng.fill_bytes(&mut buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn io_error(path: &Path, source: io::Error) -> LayoutError {
    LayoutError::Io {
        path: path.to_owned(),
        source,
    }
}

fn spec_error(what: &'static str, source: oci_spec::OciSpecError) -> LayoutError {
    LayoutError::Spec { what, source }
}

#[cfg(test)]
mod tests {
    use oci_spec::image::{ImageIndex, ImageManifest};

    use super::*;

    fn blob_path(root: &Path, descriptor: &Descriptor) -> PathBuf {
        root.join("blobs/sha256")
            .join(descriptor.as_digest_sha256().expect("sha256 digest"))
    }

    #[test]
    fn every_blob_is_named_by_its_digest_and_sized_right() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (manifest, layers) =
            synthetic_image(dir.path(), "v1", &[3 << 20, 1000], 7).expect("layout");
        for descriptor in layers.iter().chain([&manifest]) {
            let bytes = fs::read(blob_path(dir.path(), descriptor)).expect("blob");
            assert_eq!(bytes.len() as u64, descriptor.size());
            assert_eq!(
                hex::encode(Sha256::digest(&bytes)),
                descriptor.as_digest_sha256().expect("sha256")
            );
        }
        let parsed = ImageManifest::from_file(blob_path(dir.path(), &manifest)).expect("manifest");
        assert_eq!(parsed.layers().len(), 2);
        assert!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .expect("dir")
                .all(|e| !e
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp"))
        );
    }

    #[test]
    fn layers_are_tar_archives_of_the_requested_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, layers) = synthetic_image(dir.path(), "v1", &[12345], 1).expect("layout");
        let file = File::open(blob_path(dir.path(), &layers[0])).expect("layer");
        let mut archive = tar::Archive::new(file);
        let entries = archive
            .entries()
            .expect("entries")
            .map(|e| e.expect("entry").size())
            .collect::<Vec<_>>();
        assert_eq!(entries, vec![12345]);
    }

    #[test]
    fn same_seed_same_digests_and_tags_in_index_json() {
        let one = tempfile::tempdir().expect("tempdir");
        let two = tempfile::tempdir().expect("tempdir");
        let (a, _) = synthetic_image(one.path(), "latest", &[4096], 3).expect("layout");
        let (b, _) = synthetic_image(two.path(), "latest", &[4096], 3).expect("layout");
        assert_eq!(a.digest(), b.digest());
        let index = ImageIndex::from_file(one.path().join("index.json")).expect("index.json");
        let tagged = &index.manifests()[0];
        assert_eq!(tagged.digest(), a.digest());
        assert_eq!(
            tagged
                .annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .map(String::as_str),
            Some("latest")
        );
    }

    #[test]
    fn multi_arch_index_lists_each_platform() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LayoutWriter::create(dir.path()).expect("create");
        let amd = writer.add_random_layer(100, 1).expect("layer");
        let arm = writer.add_random_layer(100, 2).expect("layer");
        let amd = writer
            .add_image(&[amd], Arch::Amd64, Os::Linux)
            .expect("image");
        let arm = writer
            .add_image(&[arm], Arch::ARM64, Os::Linux)
            .expect("image");
        let index = writer.add_index(vec![amd, arm]).expect("index");
        writer.finish(&[("multi", index.clone())]).expect("finish");
        let parsed = ImageIndex::from_file(blob_path(dir.path(), &index)).expect("index");
        let arches = parsed
            .manifests()
            .iter()
            .map(|m| m.platform().as_ref().map(|p| p.architecture().clone()))
            .collect::<Vec<_>>();
        assert_eq!(arches, vec![Some(Arch::Amd64), Some(Arch::ARM64)]);
    }
}
