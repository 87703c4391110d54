//! The store's error type and the mapping of I/O failures onto it, so that a
//! full disk is told apart from other I/O errors wherever bytes are written.

use std::io;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::metainfo::MetainfoError;

/// Linux `ENOSPC`: no space left on device.
const ENOSPC: i32 = 28;
/// Linux `EDQUOT`: the user's filesystem quota is exhausted.
const EDQUOT: i32 = 122;

/// Why a store operation failed. Whatever the variant, nothing the failed
/// call wrote is marked verified or complete.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The filesystem is out of space (or the user's filesystem quota is
    /// exhausted). Free space, or lower the store quota, and retry.
    #[error("disk full writing {}", path.display())]
    DiskFull {
        /// File being written.
        path: PathBuf,
    },
    /// Any other I/O failure, with the file it happened on.
    #[error("I/O error on {}", path.display())]
    Io {
        /// File or directory the operation touched.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A blocking I/O task panicked or was cancelled at shutdown.
    #[error("blocking store task did not finish")]
    TaskFailed,
    /// The blob is already complete: serve it with [`Store::get`](super::Store::get)
    /// instead of downloading or ingesting it again.
    #[error("blob {0} is already complete")]
    AlreadyComplete(Digest),
    /// Another ingest or download of this blob is in progress; the caller
    /// should share that one rather than start a second.
    #[error("blob {0} is already being ingested or downloaded")]
    Busy(Digest),
    /// Room could not be made: pinned blobs and live downloads hold the rest
    /// of the quota. Nothing was evicted.
    #[error(
        "store quota exceeded: {requested} bytes requested, at most {available} of {quota} can be freed"
    )]
    QuotaExceeded {
        /// Bytes the new blob needs.
        requested: u64,
        /// Bytes that are free or could be freed by evicting unpinned blobs.
        available: u64,
        /// The configured quota.
        quota: u64,
    },
    /// The bytes do not hash to the blob's digest, so they were not made
    /// complete. For a partial blob every piece bit is cleared.
    #[error("content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The blob's digest.
        expected: Digest,
        /// Digest of the bytes stored.
        actual: Digest,
    },
    /// The writer received more or fewer bytes than the announced length.
    #[error("blob length mismatch: expected {expected} bytes, got {actual}")]
    LengthMismatch {
        /// Length announced when the ingest started.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// A download of this digest is live with different metainfo; one of the
    /// two metainfo sources is wrong.
    #[error("metainfo for {0} differs from the download in progress")]
    MetainfoMismatch(Digest),
    /// The piece index is past the blob's last piece.
    #[error("piece {index} is out of range (the blob has {count} pieces)")]
    PieceOutOfRange {
        /// Index asked for.
        index: u32,
        /// Pieces in the blob.
        count: u32,
    },
    /// The piece data has the wrong length for its index.
    #[error("piece {index} must be {expected} bytes, got {actual}")]
    PieceLength {
        /// Piece index.
        index: u32,
        /// Length the metainfo gives.
        expected: u32,
        /// Length supplied.
        actual: usize,
    },
    /// The piece data does not match the piece's hash in the metainfo; it
    /// was not written.
    #[error("piece {0} does not match its hash")]
    PieceHash(u32),
    /// A read touched a piece that is not verified yet; wait for it with
    /// [`PartialBlob::wait_piece`](super::PartialBlob::wait_piece).
    #[error("piece {0} is not verified yet")]
    PieceMissing(u32),
    /// A read reached past the end of the blob.
    #[error("range of {len} bytes at {offset} is outside the blob of {blob_len} bytes")]
    OutOfRange {
        /// Start of the read.
        offset: u64,
        /// Bytes asked for.
        len: usize,
        /// The blob's length.
        blob_len: u64,
    },
    /// `finish` was called before every piece was written.
    #[error("{missing} pieces are still missing")]
    Incomplete {
        /// Pieces not yet verified.
        missing: u32,
    },
    /// The download was aborted with [`PartialBlob::fail`](super::PartialBlob::fail)
    /// (or failed its whole-blob check) before the awaited piece arrived.
    #[error("download failed: {0}")]
    Failed(String),
    /// A metainfo file on disk could not be decoded or is inconsistent.
    #[error("corrupt metainfo file {}", path.display())]
    CorruptMetainfo {
        /// The metainfo file.
        path: PathBuf,
        /// What was wrong with it.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Metainfo could not be built from an ingested blob for a reason other
    /// than its digest or length.
    #[error("building metainfo")]
    Metainfo(#[source] MetainfoError),
}

/// Maps an I/O error on `path` to [`StoreError::DiskFull`] when the disk or
/// quota is full, [`StoreError::Io`] otherwise.
pub(crate) fn io_error(path: &Path, source: io::Error) -> StoreError {
    match source.raw_os_error() {
        Some(ENOSPC | EDQUOT) => StoreError::DiskFull {
            path: path.to_path_buf(),
        },
        _ => StoreError::Io {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Runs blocking file work on tokio's blocking pool so async tasks are not
/// stalled by disk latency or hashing.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| StoreError::TaskFailed)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_and_edquot_are_disk_full_others_are_io() {
        let path = Path::new("/x/data");
        for code in [ENOSPC, EDQUOT] {
            let e = io_error(path, io::Error::from_raw_os_error(code));
            assert!(matches!(e, StoreError::DiskFull { ref path } if path == Path::new("/x/data")));
        }
        let e = io_error(path, io::Error::from_raw_os_error(5));
        assert!(matches!(e, StoreError::Io { .. }));
        assert!(e.to_string().contains("/x/data"));
        let e = io_error(path, io::Error::other("no os code"));
        assert!(matches!(e, StoreError::Io { .. }));
    }
}
