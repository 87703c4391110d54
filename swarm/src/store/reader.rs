//! Handles on complete blobs. A blob stays on disk, safe from eviction, for
//! as long as any clone of its [`BlobReader`] lives.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::PinGuard;
use super::error::{StoreError, io_error};
use crate::digest::Digest;

/// A pinned handle to a complete, verified blob: what the agent serves to
/// clients and the session seeds to peers. Cheap to clone; every clone
/// shares one open file and one pin, released when the last clone drops.
#[derive(Clone)]
pub struct BlobReader {
    shared: Arc<ReaderShared>,
}

pub(crate) struct ReaderShared {
    digest: Digest,
    len: u64,
    path: PathBuf,
    file: Arc<File>,
    _pin: PinGuard,
}

impl BlobReader {
    /// Wraps an open complete blob; `pin` keeps it from eviction.
    pub(crate) fn new(
        digest: Digest,
        len: u64,
        path: PathBuf,
        file: Arc<File>,
        pin: PinGuard,
    ) -> Self {
        BlobReader {
            shared: Arc::new(ReaderShared {
                digest,
                len,
                path,
                file,
                _pin: pin,
            }),
        }
    }

    pub(crate) fn from_shared(shared: Arc<ReaderShared>) -> Self {
        BlobReader { shared }
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<ReaderShared> {
        Arc::downgrade(&self.shared)
    }

    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.shared.digest
    }

    /// The blob's length in bytes, e.g. for Content-Length and Range checks.
    pub fn len(&self) -> u64 {
        self.shared.len
    }

    /// True for the empty blob.
    pub fn is_empty(&self) -> bool {
        self.shared.len == 0
    }

    /// The blob's file, for callers that hand it to the kernel (sendfile) or
    /// to a file-serving library. Valid while this reader lives.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Reads `len` bytes at `offset`; the whole range must lie within the
    /// blob, else [`StoreError::OutOfRange`].
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, StoreError> {
        check_range(offset, len, self.shared.len)?;
        read_exact(
            Arc::clone(&self.shared.file),
            &self.shared.path,
            offset,
            len,
        )
        .await
    }
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("digest", &self.shared.digest)
            .field("len", &self.shared.len)
            .finish()
    }
}

/// Refuses ranges that reach past `blob_len`.
pub(crate) fn check_range(offset: u64, len: usize, blob_len: u64) -> Result<(), StoreError> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= blob_len => Ok(()),
        _ => Err(StoreError::OutOfRange {
            offset,
            len,
            blob_len,
        }),
    }
}

/// Positional read of exactly `len` bytes on the blocking pool.
pub(crate) async fn read_exact(
    file: Arc<File>,
    path: &Path,
    offset: u64,
    len: usize,
) -> Result<Bytes, StoreError> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    let result = tokio::task::spawn_blocking(move || {
        let mut buf = BytesMut::zeroed(len);
        file.read_exact_at(&mut buf, offset).map(|()| buf.freeze())
    })
    .await
    .map_err(|_| StoreError::TaskFailed)?;
    result.map_err(|e| io_error(path, e))
}
