//! The content-addressed blob store on disk: complete blobs, partial blobs
//! with their verified-piece bitmap, and quota with LRU eviction.
//!
//! # Layout under the store directory
//! ```text
//! blobs/sha256/<hex>        complete blob, whole-blob digest checked
//! blobs/sha256/<hex>.meta   its metainfo (prost shoal_proto::tracker::Metainfo)
//! partial/<hex>/data        sparse file, pieces written at their offsets
//! partial/<hex>/bitmap      verified-piece bits (Bitfield wire form), a hint
//! partial/<hex>/meta        the metainfo the download was started with
//! tmp/                      ingest files, metainfo being written, evictions;
//!                           emptied at every open
//! ```
//! Every path is derived from a validated [`Digest`]'s hex.
//!
//! # Crash safety
//! A blob becomes complete by writing its metainfo durably to `<hex>.meta`
//! (temp file + rename), then renaming the fsynced data to `<hex>` last. At
//! open, a `<hex>` without a readable `.meta`, or whose size differs from the
//! metainfo, is removed, as are orphan `.meta` files and all of `tmp/`.
//! Piece data is not fsynced per piece, so on resume every bit set in a
//! partial's bitmap is re-verified against its piece hash.
//!
//! # Quota
//! Complete blobs count their length; a partial or an ingest reserves its
//! full length when created. Making room evicts unpinned entries (complete
//! blobs, and partials no download holds) least recently used first; an
//! entry is pinned by a live [`BlobReader`], [`PartialBlob`] or
//! [`BlobWriter`]. LRU order survives restarts through file mtimes.
//!
//! # Concurrency
//! Concurrent [`Store::partial`] calls for one digest share one
//! [`PartialBlob`]. A second [`Store::ingest`] of a digest being ingested or
//! downloaded gets [`StoreError::Busy`]: the origin deduplicates fetches
//! above the store. File I/O is positional (`pread`/`pwrite`) on one open
//! file per blob, on tokio's blocking pool.
//!
//! # Modules
//! `state` (the index, pins, admission), `quota` (LRU accounting as plain
//! data), `partial` with `bitmap` and `prefix` (downloads and their
//! incremental whole-blob hash), `ingest` with `followers` (its hashing and
//! flushing threads), `reader`, `scan` (open-time cleanup), `layout` (paths
//! and ordered filesystem steps), `error`.

mod bitmap;
mod error;
mod followers;
mod ingest;
mod layout;
mod partial;
mod prefix;
mod quota;
mod reader;
mod scan;
mod state;
#[cfg(test)]
mod testutil;

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::SystemTime;

pub use error::StoreError;
pub use ingest::BlobWriter;
pub use partial::PartialBlob;
pub use quota::Evictions;
pub use reader::BlobReader;

use self::error::blocking;
use self::layout::{Layout, read_meta};
use self::quota::Quota;
use self::state::{Entry, Inner, PinGuard, State};
use crate::digest::Digest;
use crate::metainfo::Metainfo;

/// The node's blob store. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens (creating if needed) the store at `dir`, limited to
    /// `quota_bytes` (0 = unlimited). Cleans up whatever a crash left behind
    /// and indexes complete blobs and resumable partials. A store over quota
    /// (e.g. after the quota was lowered) evicts on the next admission.
    pub async fn open(dir: impl Into<PathBuf>, quota_bytes: u64) -> Result<Store, StoreError> {
        let layout = Layout::new(dir.into());
        let scan_layout = layout.clone();
        let found = blocking(move || scan::scan(&scan_layout)).await?;
        let mut state = State {
            quota: Quota::new(quota_bytes),
            entries: HashMap::new(),
        };
        for item in found {
            state.quota.restore(item.digest, item.length);
            let entry = match item.metainfo {
                Some(metainfo) => Entry::Complete {
                    length: item.length,
                    metainfo: Some(metainfo),
                    reader: Weak::new(),
                },
                None => Entry::Partial(Arc::default()),
            };
            state.entries.insert(item.digest, entry);
        }
        Ok(Store {
            inner: Arc::new(Inner::new(layout, state)),
        })
    }

    /// A complete blob, pinned against eviction while the reader lives, and
    /// marked most recently used. None if the blob is not complete here.
    pub fn get(&self, digest: &Digest) -> Option<BlobReader> {
        let length = {
            let mut guard = self.inner.lock();
            let state = &mut *guard;
            let Some(Entry::Complete { length, reader, .. }) = state.entries.get(digest) else {
                return None;
            };
            state.quota.touch(digest);
            if let Some(shared) = reader.upgrade() {
                return Some(BlobReader::from_shared(shared));
            }
            state.quota.pin(digest);
            *length
        };
        let pin = PinGuard::new(&self.inner, *digest);
        let path = self.inner.layout().blob(digest);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) => {
                tracing::warn!(%digest, %error, "complete blob cannot be opened");
                return None;
            }
        };
        if let Err(error) = file.set_modified(SystemTime::now()) {
            tracing::debug!(%digest, %error, "recording blob use in its mtime");
        }
        let reader = BlobReader::new(*digest, length, path, Arc::new(file), pin);
        if let Some(Entry::Complete { reader: slot, .. }) =
            self.inner.lock().entries.get_mut(digest)
            && slot.strong_count() == 0
        {
            *slot = reader.downgrade();
        }
        Some(reader)
    }

    /// True if the blob is complete here.
    pub fn contains(&self, digest: &Digest) -> bool {
        matches!(
            self.inner.lock().entries.get(digest),
            Some(Entry::Complete { .. })
        )
    }

    /// Every complete blob, e.g. to seed them all again after a restart.
    pub fn complete_digests(&self) -> Vec<Digest> {
        let state = self.inner.lock();
        let mut digests: Vec<Digest> = state
            .entries
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Complete { .. }))
            .map(|(d, _)| *d)
            .collect();
        digests.sort_unstable();
        digests
    }

    /// The persisted metainfo of a complete blob; None if not complete here.
    pub async fn metainfo(&self, digest: &Digest) -> Result<Option<Arc<Metainfo>>, StoreError> {
        match self.inner.lock().entries.get(digest) {
            Some(Entry::Complete {
                metainfo: Some(m), ..
            }) => return Ok(Some(Arc::clone(m))),
            Some(Entry::Complete { .. }) => {}
            _ => return Ok(None),
        }
        let path = self.inner.layout().blob_meta(digest);
        let metainfo = match blocking(move || read_meta(&path)).await {
            Ok(m) => Arc::new(m),
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if let Some(Entry::Complete { metainfo: slot, .. }) =
            self.inner.lock().entries.get_mut(digest)
        {
            *slot = Some(Arc::clone(&metainfo));
        }
        Ok(Some(metainfo))
    }

    /// Starts or resumes downloading the blob `metainfo` describes. Every
    /// caller for one digest gets the same handle while it lives. Creating it
    /// reserves the blob's length in the quota (evicting if needed); resuming
    /// keeps every piece whose bytes on disk still match their hash.
    pub async fn partial(&self, metainfo: Arc<Metainfo>) -> Result<Arc<PartialBlob>, StoreError> {
        let digest = *metainfo.digest();
        let (slot, trash) = {
            let mut guard = self.inner.lock();
            let state = &mut *guard;
            match state.entries.get(&digest) {
                Some(Entry::Complete { .. }) => return Err(StoreError::AlreadyComplete(digest)),
                Some(Entry::Ingest) => return Err(StoreError::Busy(digest)),
                Some(Entry::Partial(slot))
                    if state.quota.is_pinned(&digest)
                        || state.quota.size(&digest) == Some(metainfo.length()) =>
                {
                    let slot = Arc::clone(slot);
                    state.quota.pin(&digest);
                    (slot, Vec::new())
                }
                _ => {
                    // A dormant partial of another length is stale: replace it.
                    let mut trash = Vec::new();
                    trash.extend(self.inner.discard(state, &digest));
                    trash.extend(self.inner.admit(state, digest, metainfo.length())?);
                    let slot = Arc::default();
                    state
                        .entries
                        .insert(digest, Entry::Partial(Arc::clone(&slot)));
                    (slot, trash)
                }
            }
        };
        Inner::delete(trash).await;
        let pin = PinGuard::new(&self.inner, digest);
        let mut live = slot.lock().await;
        if let Some(partial) = live.upgrade() {
            drop(pin);
            if partial.metainfo() != &metainfo {
                return Err(StoreError::MetainfoMismatch(digest));
            }
            return Ok(partial);
        }
        match self.inner.lock().entries.get(&digest) {
            Some(Entry::Partial(current)) if Arc::ptr_eq(current, &slot) => {}
            // It completed (or was replaced) while we waited for the slot.
            _ => return Err(StoreError::AlreadyComplete(digest)),
        }
        let partial = Arc::new(PartialBlob::open(Arc::clone(&self.inner), metainfo, pin).await?);
        *live = Arc::downgrade(&partial);
        Ok(partial)
    }

    /// Starts writing a blob whose bytes arrive in order (the origin pulling
    /// from upstream), reserving `length` bytes in the quota. A second ingest
    /// of a digest already being ingested or downloaded gets
    /// [`StoreError::Busy`].
    pub async fn ingest(&self, digest: Digest, length: u64) -> Result<BlobWriter, StoreError> {
        let trash = {
            let mut guard = self.inner.lock();
            let state = &mut *guard;
            match state.entries.get(&digest) {
                Some(Entry::Complete { .. }) => return Err(StoreError::AlreadyComplete(digest)),
                Some(_) => return Err(StoreError::Busy(digest)),
                None => {}
            }
            let trash = self.inner.admit(state, digest, length)?;
            state.entries.insert(digest, Entry::Ingest);
            trash
        };
        Inner::delete(trash).await;
        let pin = PinGuard::new(&self.inner, digest);
        BlobWriter::create(Arc::clone(&self.inner), digest, length, pin).await
    }

    /// Bytes held or reserved by complete, partial and ingesting blobs.
    pub fn used_bytes(&self) -> u64 {
        self.inner.lock().quota.used()
    }

    /// Entries evicted to make room since the store was opened.
    pub fn evictions(&self) -> Evictions {
        self.inner.lock().quota.evictions()
    }

    /// The configured quota; 0 means unlimited.
    pub fn quota_bytes(&self) -> u64 {
        self.inner.lock().quota.limit()
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", self.inner.layout())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::testutil::{MIB, blob, download};
    use super::*;

    const LEN: usize = MIB + MIB / 2;

    async fn ingest(store: &Store, data: &[u8]) -> Digest {
        let digest = Digest::of(data);
        let mut w = store.ingest(digest, data.len() as u64).await.unwrap();
        w.write(data).await.unwrap();
        w.finish().await.unwrap();
        digest
    }

    fn set_mtime(store: &Store, digest: &Digest, secs: u64) {
        let f = File::options()
            .write(true)
            .open(store.inner.layout().blob(digest))
            .unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
    }

    #[tokio::test]
    async fn complete_blob_is_listed_readable_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 0).await.unwrap();
        let data = blob(2 * MIB + 3, 1);
        let reader = download(&store, &data).await;
        let digest = *reader.digest();
        let hex = digest.hex();
        assert!(dir.path().join(format!("blobs/sha256/{hex}")).is_file());
        assert!(
            dir.path()
                .join(format!("blobs/sha256/{hex}.meta"))
                .is_file()
        );
        assert!(!dir.path().join(format!("partial/{hex}")).exists());
        assert_eq!(
            reader.read_at(MIB as u64 - 1, 3).await.unwrap(),
            &data[MIB - 1..MIB + 2]
        );
        assert!(matches!(
            reader.read_at(data.len() as u64 - 1, 2).await,
            Err(StoreError::OutOfRange { .. })
        ));
        let metainfo = store.metainfo(&digest).await.unwrap().unwrap();
        drop((store, reader));

        let store = Store::open(dir.path(), 0).await.unwrap();
        assert!(store.contains(&digest));
        assert_eq!(store.complete_digests(), vec![digest]);
        assert_eq!(store.used_bytes(), data.len() as u64);
        assert_eq!(store.metainfo(&digest).await.unwrap(), Some(metainfo));
        let reader = store.get(&digest).unwrap();
        assert_eq!(reader.read_at(0, data.len()).await.unwrap(), &data[..]);
        assert_eq!(
            reader.path(),
            dir.path().join(format!("blobs/sha256/{hex}"))
        );
        assert!(store.get(&Digest::of(b"absent")).is_none());
        assert_eq!(store.metainfo(&Digest::of(b"absent")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn eviction_follows_lru_order_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 3 * LEN as u64).await.unwrap();
        let [a, b, c] = [1, 2, 3].map(|seed| blob(LEN, seed));
        let digests = [
            ingest(&store, &a).await,
            ingest(&store, &b).await,
            ingest(&store, &c).await,
        ];
        for (i, d) in digests.iter().enumerate() {
            set_mtime(&store, d, 1000 + i as u64);
        }
        drop(store);
        let store = Store::open(dir.path(), 3 * LEN as u64).await.unwrap();
        drop(store.get(&digests[0]));
        drop(store);
        // A was used last, so B is now the oldest, on disk as in memory.
        let store = Store::open(dir.path(), 3 * LEN as u64).await.unwrap();
        ingest(&store, &blob(LEN, 4)).await;
        assert!(store.contains(&digests[0]));
        assert!(!store.contains(&digests[1]));
        assert!(
            !dir.path()
                .join("blobs/sha256")
                .join(digests[1].hex())
                .exists()
        );
        assert!(store.contains(&digests[2]));
        assert_eq!(store.used_bytes(), 3 * LEN as u64);
    }

    #[tokio::test]
    async fn pinned_blobs_are_not_evicted_and_refusal_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 2 * LEN as u64).await.unwrap();
        let a = ingest(&store, &blob(LEN, 1)).await;
        let b = ingest(&store, &blob(LEN, 2)).await;
        let reader_a = store.get(&a).unwrap();
        let c = ingest(&store, &blob(LEN, 3)).await;
        assert!(store.contains(&a), "pinned by a live reader");
        assert!(!store.contains(&b));
        let reader_c = store.get(&c).unwrap();

        let d = blob(LEN, 4);
        let err = store.ingest(Digest::of(&d), LEN as u64).await.unwrap_err();
        assert!(
            matches!(err, StoreError::QuotaExceeded { requested, available: 0, .. } if requested == LEN as u64)
        );
        assert_eq!(store.complete_digests().len(), 2);
        assert_eq!(store.used_bytes(), 2 * LEN as u64);
        drop(reader_a.clone());
        drop(reader_a);
        ingest(&store, &d).await;
        assert!(!store.contains(&a), "unpinned when the last clone dropped");
        assert_eq!(reader_c.read_at(0, 4).await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn open_removes_what_a_crash_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 0).await.unwrap();
        let good = ingest(&store, &blob(LEN, 1)).await;
        let short = ingest(&store, &blob(LEN, 2)).await;
        let no_meta = ingest(&store, &blob(LEN, 3)).await;
        drop(store);
        let blobs = dir.path().join("blobs/sha256");
        File::options()
            .write(true)
            .open(blobs.join(short.hex()))
            .unwrap()
            .set_len(10)
            .unwrap();
        std::fs::remove_file(blobs.join(format!("{}.meta", no_meta.hex()))).unwrap();
        let orphan_meta = blobs.join(format!("{}.meta", Digest::of(b"o").hex()));
        std::fs::copy(blobs.join(format!("{}.meta", good.hex())), &orphan_meta).unwrap();
        std::fs::write(dir.path().join("tmp/leftover.ingest.7"), b"x").unwrap();
        let stale_partial = dir.path().join("partial").join(Digest::of(b"p").hex());
        std::fs::create_dir_all(&stale_partial).unwrap();
        std::fs::write(stale_partial.join("data"), b"x").unwrap();

        let store = Store::open(dir.path(), 0).await.unwrap();
        assert_eq!(store.complete_digests(), vec![good]);
        assert_eq!(store.used_bytes(), LEN as u64);
        assert!(!blobs.join(short.hex()).exists());
        assert!(!blobs.join(no_meta.hex()).exists());
        assert!(!orphan_meta.exists());
        assert!(!stale_partial.exists());
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
