//! Where the store's files live and the small filesystem steps that must
//! happen in a fixed order for crash safety. Every path is built from a
//! validated [`Digest`]'s hex, never from caller input.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;

use super::error::{StoreError, io_error};
use crate::digest::Digest;
use crate::metainfo::Metainfo;

/// Extension of a complete blob's metainfo file.
pub(crate) const META_EXT: &str = "meta";

/// The directory tree under the store's root.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: PathBuf) -> Self {
        Layout { root }
    }

    /// Directory of complete blobs and their metainfo.
    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub(crate) fn blob(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    pub(crate) fn blob_meta(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir()
            .join(format!("{}.{META_EXT}", digest.hex()))
    }

    /// Directory holding one directory per partial blob.
    pub(crate) fn partials_dir(&self) -> PathBuf {
        self.root.join("partial")
    }

    pub(crate) fn partial_dir(&self, digest: &Digest) -> PathBuf {
        self.partials_dir().join(digest.hex())
    }

    pub(crate) fn partial_data(&self, digest: &Digest) -> PathBuf {
        self.partial_dir(digest).join("data")
    }

    pub(crate) fn partial_bitmap(&self, digest: &Digest) -> PathBuf {
        self.partial_dir(digest).join("bitmap")
    }

    pub(crate) fn partial_meta(&self, digest: &Digest) -> PathBuf {
        self.partial_dir(digest).join("meta")
    }

    /// Scratch directory, emptied at every open.
    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A scratch file; `seq` keeps concurrent users of the same digest apart.
    pub(crate) fn tmp(&self, digest: &Digest, purpose: &str, seq: u64) -> PathBuf {
        self.tmp_dir()
            .join(format!("{}.{purpose}.{seq}", digest.hex()))
    }

    pub(crate) fn create_dirs(&self) -> Result<(), StoreError> {
        for dir in [self.blobs_dir(), self.partials_dir(), self.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        }
        Ok(())
    }
}

/// The digest named by a 64-hex file name, validated by [`Digest`]'s parser.
pub(crate) fn digest_from_name(name: &OsStr) -> Option<Digest> {
    let name = name.to_str()?;
    format!("{}{name}", Digest::PREFIX).parse().ok()
}

/// Reads and checks a prost-encoded metainfo file.
pub(crate) fn read_meta(path: &Path) -> Result<Metainfo, StoreError> {
    let bytes = fs::read(path).map_err(|e| io_error(path, e))?;
    let corrupt = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::CorruptMetainfo {
        path: path.to_path_buf(),
        source,
    };
    let proto = shoal_proto::tracker::Metainfo::decode(bytes.as_slice())
        .map_err(|e| corrupt(Box::new(e)))?;
    Metainfo::from_proto(&proto).map_err(|e| corrupt(Box::new(e)))
}

/// Writes `metainfo` to `tmp`, then renames it to `dest`, so `dest` is never
/// half-written. With `durable`, the bytes reach the disk before the rename.
pub(crate) fn write_meta(
    metainfo: &Metainfo,
    tmp: &Path,
    dest: &Path,
    durable: bool,
) -> Result<(), StoreError> {
    let bytes = metainfo.to_proto().encode_to_vec();
    let result = (|| {
        let mut file = File::create(tmp).map_err(|e| io_error(tmp, e))?;
        file.write_all(&bytes).map_err(|e| io_error(tmp, e))?;
        if durable {
            file.sync_all().map_err(|e| io_error(tmp, e))?;
        }
        fs::rename(tmp, dest).map_err(|e| io_error(dest, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// Makes renames into `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Moves a fully written and checked blob into the complete area: data
/// flushed, metainfo written durably, then the data renamed last, so a crash
/// at any point leaves either nothing or a blob that is complete (an orphan
/// metainfo file is removed at the next open).
pub(crate) fn publish(
    layout: &Layout,
    metainfo: &Metainfo,
    data: &File,
    data_path: &Path,
    seq: u64,
) -> Result<(), StoreError> {
    let digest = metainfo.digest();
    data.sync_data().map_err(|e| io_error(data_path, e))?;
    let meta = layout.blob_meta(digest);
    write_meta(metainfo, &layout.tmp(digest, META_EXT, seq), &meta, true)?;
    if let Err(e) = fs::rename(data_path, layout.blob(digest)) {
        let _ = fs::remove_file(&meta);
        return Err(io_error(data_path, e));
    }
    if let Err(e) = sync_dir(&layout.blobs_dir()) {
        // The blob is in place and correct; only its durability across a
        // power cut is in doubt, and the next open checks it again.
        tracing::warn!(error = %e, "syncing the blobs directory");
    }
    Ok(())
}

/// Opens (creating if needed) a file for positional reads and writes.
pub(crate) fn open_rw(path: &Path, truncate: bool) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
        .map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_come_from_the_digest_hex() {
        let layout = Layout::new(PathBuf::from("/s"));
        let d = Digest::of(b"x");
        let hex = d.hex();
        assert_eq!(
            layout.blob(&d),
            PathBuf::from(format!("/s/blobs/sha256/{hex}"))
        );
        assert_eq!(
            layout.blob_meta(&d),
            PathBuf::from(format!("/s/blobs/sha256/{hex}.meta"))
        );
        assert_eq!(
            layout.partial_bitmap(&d),
            PathBuf::from(format!("/s/partial/{hex}/bitmap"))
        );
        assert_eq!(digest_from_name(OsStr::new(&hex)), Some(d));
        assert_eq!(digest_from_name(OsStr::new("..")), None);
        assert_eq!(digest_from_name(OsStr::new(&format!("{hex}.meta"))), None);
    }
}
