//! Writing a blob whose bytes arrive in order, as the origin receives them
//! from upstream: the bytes are hashed into metainfo as they are written, so
//! the blob is never read back. The hashing and early flushes run on threads
//! of their own ([`Followers`]), beside the writing.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::error::{StoreError, blocking, io_error};
use super::followers::Followers;
use super::layout::{open_rw, publish};
use super::reader::BlobReader;
use super::{Inner, PinGuard};
use crate::digest::Digest;
use crate::metainfo::Metainfo;

/// Bytes buffered before one write on the blocking pool: large enough that
/// the hop costs little next to writing, small enough to bound memory per
/// ingest.
const FLUSH_BYTES: usize = 1 << 20;

/// Sequential writer for one blob. Call [`BlobWriter::finish`] after the
/// last byte; dropping it unfinished (or after an error) deletes what was
/// written and releases the quota reservation. Not cancel-safe: if a `write`
/// future is dropped midway, the writer fails from then on; drop it.
pub struct BlobWriter {
    inner: Arc<Inner>,
    digest: Digest,
    length: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Taken while a flush runs; None after a failed or cancelled flush.
    followers: Option<Followers>,
    buffer: BytesMut,
    flushed: u64,
    /// Some until the blob is complete.
    pin: Option<PinGuard>,
}

impl BlobWriter {
    /// Opens the temp file. On failure the reservation is released.
    pub(crate) async fn create(
        inner: Arc<Inner>,
        digest: Digest,
        length: u64,
        pin: PinGuard,
    ) -> Result<Self, StoreError> {
        let path = inner.layout().tmp(&digest, "ingest", inner.next_seq());
        let open_path = path.clone();
        let file = match blocking(move || open_rw(&open_path, true)).await {
            Ok(file) => file,
            Err(e) => {
                pin.forget_entry();
                return Err(e);
            }
        };
        let file = Arc::new(file);
        let piece_length = Metainfo::piece_length_for(length);
        let followers = match Followers::spawn(piece_length, Arc::clone(&file), path.clone()) {
            Ok(followers) => followers,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                pin.forget_entry();
                return Err(e);
            }
        };
        Ok(BlobWriter {
            inner,
            digest,
            length,
            path,
            file,
            followers: Some(followers),
            buffer: BytesMut::new(),
            flushed: 0,
            pin: Some(pin),
        })
    }

    /// Appends the next bytes of the blob. More bytes than the announced
    /// length is an error, and nothing past it is written.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let total = self.flushed + self.buffer.len() as u64 + data.len() as u64;
        if total > self.length {
            return Err(StoreError::LengthMismatch {
                expected: self.length,
                actual: total,
            });
        }
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= FLUSH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Checks the length and digest, computes the metainfo, and makes the
    /// blob complete (metainfo durable first, data renamed last). Returns the
    /// metainfo to publish and a pinned reader for seeding.
    pub async fn finish(mut self) -> Result<(Arc<Metainfo>, BlobReader), StoreError> {
        self.flush().await?;
        if self.flushed != self.length {
            return Err(StoreError::LengthMismatch {
                expected: self.length,
                actual: self.flushed,
            });
        }
        let followers = self.followers.take().ok_or_else(poisoned)?;
        let hashes = blocking(move || followers.finish()).await?;
        if hashes.digest != self.digest {
            return Err(StoreError::DigestMismatch {
                expected: self.digest,
                actual: hashes.digest,
            });
        }
        let piece_length = Metainfo::piece_length_for(self.length);
        let metainfo = Arc::new(
            Metainfo::new(self.digest, self.length, piece_length, hashes.pieces)
                .map_err(StoreError::Metainfo)?,
        );
        let layout = self.inner.layout().clone();
        let seq = self.inner.next_seq();
        let (m, file, path) = (
            Arc::clone(&metainfo),
            Arc::clone(&self.file),
            self.path.clone(),
        );
        blocking(move || publish(&layout, &m, &file, &path, seq)).await?;
        let reader = self
            .inner
            .install_complete(Arc::clone(&metainfo), Arc::clone(&self.file));
        // The reader holds its own pin now; this one may go.
        self.pin = None;
        Ok((metainfo, reader))
    }

    /// Writes the buffered bytes on the blocking pool, then queues them for
    /// the hashing and flushing threads, which run on while the next bytes
    /// are written.
    async fn flush(&mut self) -> Result<(), StoreError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let followers = self.followers.take().ok_or_else(poisoned)?;
        let chunk: Bytes = self.buffer.split().freeze();
        let (file, path, offset) = (Arc::clone(&self.file), self.path.clone(), self.flushed);
        let len = chunk.len() as u64;
        self.followers = Some(
            blocking(move || {
                file.write_all_at(&chunk, offset)
                    .map_err(|e| io_error(&path, e))?;
                followers.feed(&chunk);
                Ok(followers)
            })
            .await?,
        );
        self.flushed += len;
        Ok(())
    }
}

fn poisoned() -> StoreError {
    StoreError::Failed("an earlier write to this ingest failed".to_owned())
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if let Some(pin) = self.pin.take() {
            // Removed before the entry so that a new ingest of the digest
            // cannot be admitted while this file still exists.
            if let Err(error) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), %error, "removing an abandoned ingest");
            }
            pin.forget_entry();
        }
    }
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("digest", &self.digest)
            .field("length", &self.length)
            .field("written", &(self.flushed + self.buffer.len() as u64))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::super::testutil::{MIB, blob, metainfo};
    use super::*;

    fn tmp_is_empty(dir: &std::path::Path) -> bool {
        std::fs::read_dir(dir.join("tmp")).unwrap().count() == 0
    }

    #[tokio::test]
    async fn ingest_computes_metainfo_and_completes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 0).await.unwrap();
        let data = blob(3 * MIB + 11, 1);
        let digest = Digest::of(&data);
        let mut w = store.ingest(digest, data.len() as u64).await.unwrap();
        for chunk in data.chunks(100_000) {
            w.write(chunk).await.unwrap();
        }
        let (m, reader) = w.finish().await.unwrap();
        assert_eq!(m, metainfo(&data));
        assert_eq!(reader.read_at(0, data.len()).await.unwrap(), &data[..]);
        assert!(tmp_is_empty(dir.path()));
        assert!(matches!(
            store.ingest(digest, data.len() as u64).await,
            Err(StoreError::AlreadyComplete(_))
        ));
        drop((store, reader));
        let store = Store::open(dir.path(), 0).await.unwrap();
        assert_eq!(store.metainfo(&digest).await.unwrap(), Some(m));
    }

    #[tokio::test]
    async fn wrong_bytes_or_length_never_complete_and_release_the_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 0).await.unwrap();
        let data = blob(MIB + 5, 2);
        let digest = Digest::of(&data);

        let mut w = store.ingest(digest, data.len() as u64).await.unwrap();
        w.write(&data[1..]).await.unwrap();
        w.write(b"?").await.unwrap();
        assert!(matches!(
            w.finish().await,
            Err(StoreError::DigestMismatch { .. })
        ));

        let mut w = store.ingest(digest, data.len() as u64).await.unwrap();
        assert!(matches!(
            w.write(&[data.as_slice(), b"!"].concat()).await,
            Err(StoreError::LengthMismatch { .. })
        ));
        w.write(&data[..10]).await.unwrap();
        assert!(matches!(
            w.finish().await,
            Err(StoreError::LengthMismatch { actual: 10, .. })
        ));

        assert!(!store.contains(&digest));
        assert_eq!(store.used_bytes(), 0);
        assert!(tmp_is_empty(dir.path()));
    }

    #[tokio::test]
    async fn a_second_ingest_is_busy_and_drop_removes_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 0).await.unwrap();
        let data = blob(2 * MIB, 3);
        let digest = Digest::of(&data);
        let mut w = store.ingest(digest, data.len() as u64).await.unwrap();
        w.write(&data[..MIB + 1]).await.unwrap();
        assert!(!tmp_is_empty(dir.path()));
        assert!(matches!(
            store.ingest(digest, data.len() as u64).await,
            Err(StoreError::Busy(_))
        ));
        assert_eq!(store.used_bytes(), data.len() as u64);
        drop(w);
        assert!(tmp_is_empty(dir.path()));
        assert_eq!(store.used_bytes(), 0);
        let mut w = store.ingest(digest, data.len() as u64).await.unwrap();
        w.write(&data).await.unwrap();
        w.finish().await.unwrap();
        assert!(store.contains(&digest));
    }
}
