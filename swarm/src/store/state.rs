//! The store's shared state: which blobs exist in which form, their quota
//! entries and pins, and the steps that change them (admission with
//! eviction, completion). One `std::sync::Mutex` guards it; it is never held
//! across an `.await`, only across short metadata syscalls (renames).

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use super::error::StoreError;
use super::layout::Layout;
use super::partial::PartialBlob;
use super::quota::Quota;
use super::reader::{BlobReader, ReaderShared};
use crate::digest::Digest;
use crate::metainfo::Metainfo;

/// State shared by the store, its readers, partials and writers.
pub(crate) struct Inner {
    layout: Layout,
    state: Mutex<State>,
    seq: AtomicU64,
}

/// The index of blobs; guarded by [`Inner`]'s mutex.
pub(crate) struct State {
    pub(crate) quota: Quota,
    pub(crate) entries: HashMap<Digest, Entry>,
}

/// What the store holds for a digest; the quota has a matching entry.
pub(crate) enum Entry {
    Complete {
        length: u64,
        metainfo: Option<Arc<Metainfo>>,
        reader: Weak<ReaderShared>,
    },
    /// A partial blob; the slot holds the live handle, if any, and
    /// serialises creating or resuming it.
    Partial(Arc<tokio::sync::Mutex<Weak<PartialBlob>>>),
    Ingest,
}

impl Inner {
    pub(crate) fn new(layout: Layout, state: State) -> Self {
        Inner {
            layout,
            state: Mutex::new(state),
            seq: AtomicU64::new(0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A number that makes temp file names unique within this process.
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Reserves `size` bytes for `digest`, pinned once. Evicted entries are
    /// moved into `tmp/` at once (a rename, so the name is free for reuse
    /// immediately); the returned paths are for [`Inner::delete`].
    pub(crate) fn admit(
        &self,
        state: &mut State,
        digest: Digest,
        size: u64,
    ) -> Result<Vec<PathBuf>, StoreError> {
        let evicted = state
            .quota
            .admit(digest, size)
            .map_err(|e| StoreError::QuotaExceeded {
                requested: e.requested,
                available: e.available,
                quota: state.quota.limit(),
            })?;
        let mut trash = Vec::new();
        for d in evicted {
            tracing::debug!(digest = %d, "evicting");
            trash.extend(self.discard(state, &d));
        }
        Ok(trash)
    }

    /// Runs `attempt`, a file operation that may hit a full disk. The
    /// disk can fill before the quota does (it is shared, or smaller than
    /// the quota), and the quota cannot see that: so on ENOSPC this evicts
    /// unpinned entries worth `bytes`, oldest first (a failed download's
    /// pieces among them), and tries again while anything is evictable.
    pub(crate) async fn with_room<T, F, Fut>(
        &self,
        bytes: u64,
        mut attempt: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        loop {
            match attempt().await {
                Err(StoreError::DiskFull { path }) => {
                    let trash = self.reclaim(bytes);
                    if trash.is_empty() {
                        return Err(StoreError::DiskFull { path });
                    }
                    Inner::delete(trash).await;
                }
                result => return result,
            }
        }
    }

    fn reclaim(&self, bytes: u64) -> Vec<PathBuf> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut trash = Vec::new();
        for digest in state.quota.reclaimable(bytes) {
            tracing::info!(%digest, "evicting: the disk is full");
            state.quota.count_eviction(&digest);
            trash.extend(self.discard(state, &digest));
        }
        trash
    }

    /// Forgets an entry and moves its files into `tmp/`.
    pub(crate) fn discard(&self, state: &mut State, digest: &Digest) -> Option<PathBuf> {
        state.quota.remove(digest);
        let from = match state.entries.remove(digest)? {
            Entry::Complete { .. } => {
                let _ = std::fs::remove_file(self.layout.blob_meta(digest));
                self.layout.blob(digest)
            }
            Entry::Partial(_) => self.layout.partial_dir(digest),
            Entry::Ingest => return None,
        };
        let to = self.layout.tmp(digest, "evicted", self.next_seq());
        match std::fs::rename(&from, &to) {
            Ok(()) => Some(to),
            Err(error) => {
                tracing::warn!(path = %from.display(), %error, "evicting");
                None
            }
        }
    }

    /// Deletes evicted files off the runtime.
    pub(crate) async fn delete(trash: Vec<PathBuf>) {
        if trash.is_empty() {
            return;
        }
        let _ = tokio::task::spawn_blocking(move || {
            for path in trash {
                let result = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                if let Err(error) = result {
                    tracing::warn!(path = %path.display(), %error, "deleting evicted blob");
                }
            }
        })
        .await;
    }

    /// Records a blob whose files [`layout::publish`] just put in place and
    /// returns a pinned reader sharing `file`.
    pub(crate) fn install_complete(
        self: &Arc<Self>,
        metainfo: Arc<Metainfo>,
        file: Arc<File>,
    ) -> BlobReader {
        let digest = *metainfo.digest();
        let length = metainfo.length();
        let mut state = self.lock();
        if !state.quota.pin(&digest) {
            // Admission created the entry and its owner's pin kept it; this
            // only guards the accounting should that ever change.
            state.quota.restore(digest, length);
            state.quota.pin(&digest);
        }
        state.quota.touch(&digest);
        let pin = PinGuard::new(self, digest);
        let reader = BlobReader::new(digest, length, self.layout.blob(&digest), file, pin);
        state.entries.insert(
            digest,
            Entry::Complete {
                length,
                metainfo: Some(metainfo),
                reader: reader.downgrade(),
            },
        );
        reader
    }
}

/// One pin on a quota entry, released on drop.
pub(crate) struct PinGuard {
    inner: Arc<Inner>,
    digest: Digest,
    armed: bool,
}

impl PinGuard {
    /// Takes over a pin already counted in the quota.
    pub(crate) fn new(inner: &Arc<Inner>, digest: Digest) -> Self {
        PinGuard {
            inner: Arc::clone(inner),
            digest,
            armed: true,
        }
    }

    /// Removes the pinned entry altogether (an ingest abandoned), releasing
    /// its reservation, instead of just unpinning it.
    pub(crate) fn forget_entry(mut self) {
        let mut state = self.inner.lock();
        state.entries.remove(&self.digest);
        state.quota.remove(&self.digest);
        self.armed = false;
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if self.armed {
            self.inner.lock().quota.unpin(&self.digest);
        }
    }
}
