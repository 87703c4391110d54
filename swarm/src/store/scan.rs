//! What [`Store::open`](super::Store::open) finds on disk: complete blobs and
//! resumable partials, after removing whatever an interrupted run left
//! half-done. Runs on the blocking pool.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use super::error::{StoreError, io_error};
use super::layout::{Layout, META_EXT, digest_from_name, read_meta};
use crate::digest::Digest;
use crate::metainfo::Metainfo;

/// One blob found on disk.
pub(crate) struct Found {
    pub(crate) digest: Digest,
    pub(crate) length: u64,
    /// Some for a complete blob, None for a partial.
    pub(crate) metainfo: Option<Arc<Metainfo>>,
    mtime: SystemTime,
}

/// Cleans up and indexes the store, oldest use first (LRU order).
pub(crate) fn scan(layout: &Layout) -> Result<Vec<Found>, StoreError> {
    layout.create_dirs()?;
    empty_tmp(&layout.tmp_dir())?;
    let mut found = scan_complete(layout)?;
    let complete: std::collections::HashSet<Digest> = found.iter().map(|f| f.digest).collect();
    found.extend(scan_partials(layout, &complete)?);
    found.sort_by_key(|f| f.mtime);
    Ok(found)
}

fn empty_tmp(dir: &Path) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        remove_any(&entry.path());
    }
    Ok(())
}

fn scan_complete(layout: &Layout) -> Result<Vec<Found>, StoreError> {
    let dir = layout.blobs_dir();
    let mut found = Vec::new();
    for entry in fs::read_dir(&dir).map_err(|e| io_error(&dir, e))? {
        let entry = entry.map_err(|e| io_error(&dir, e))?;
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == META_EXT) {
            let data = path.with_extension("");
            if !data.exists() {
                tracing::info!(path = %path.display(), "removing metainfo of a blob never completed");
                remove_any(&path);
            }
            continue;
        }
        let Some(digest) = digest_from_name(&entry.file_name()) else {
            tracing::warn!(path = %path.display(), "ignoring unknown file in the blob store");
            continue;
        };
        match check_complete(layout, &digest, &path) {
            Ok((metainfo, mtime)) => found.push(Found {
                digest,
                length: metainfo.length(),
                metainfo: Some(Arc::new(metainfo)),
                mtime,
            }),
            Err(error) => {
                tracing::warn!(%digest, %error, "removing a complete blob that fails its checks");
                remove_any(&path);
                remove_any(&layout.blob_meta(&digest));
            }
        }
    }
    Ok(found)
}

/// A complete blob must have readable metainfo for its own digest and the
/// size that metainfo gives.
fn check_complete(
    layout: &Layout,
    digest: &Digest,
    path: &Path,
) -> Result<(Metainfo, SystemTime), StoreError> {
    let metainfo = read_meta(&layout.blob_meta(digest))?;
    let meta = fs::metadata(path).map_err(|e| io_error(path, e))?;
    if metainfo.digest() != digest || meta.len() != metainfo.length() {
        return Err(StoreError::LengthMismatch {
            expected: metainfo.length(),
            actual: meta.len(),
        });
    }
    let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    Ok((metainfo, mtime))
}

fn scan_partials(
    layout: &Layout,
    complete: &std::collections::HashSet<Digest>,
) -> Result<Vec<Found>, StoreError> {
    let dir = layout.partials_dir();
    let mut found = Vec::new();
    for entry in fs::read_dir(&dir).map_err(|e| io_error(&dir, e))? {
        let entry = entry.map_err(|e| io_error(&dir, e))?;
        let path = entry.path();
        let Some(digest) = digest_from_name(&entry.file_name()) else {
            tracing::warn!(path = %path.display(), "ignoring unknown file among partial blobs");
            continue;
        };
        if complete.contains(&digest) {
            // Completion renamed the data but crashed before removing the rest.
            remove_any(&path);
            continue;
        }
        match read_meta(&layout.partial_meta(&digest)) {
            Ok(metainfo) if metainfo.digest() == &digest => {
                let mtime = fs::metadata(layout.partial_data(&digest))
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                found.push(Found {
                    digest,
                    length: metainfo.length(),
                    metainfo: None,
                    mtime,
                });
            }
            _ => {
                tracing::info!(%digest, "removing a partial blob without usable metainfo");
                remove_any(&path);
            }
        }
    }
    Ok(found)
}

/// Best-effort removal of a file or directory tree.
fn remove_any(path: &Path) {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(error) = result {
        tracing::warn!(path = %path.display(), %error, "cleaning up the store");
    }
}
