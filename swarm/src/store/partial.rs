//! A blob being downloaded piece by piece: a sparse data file plus the
//! persisted bitmap of verified pieces, with waiters for streaming readers.
//!
//! Each piece is in exactly one state: missing (bit clear; its bytes on disk
//! mean nothing) or verified (the caller checked its hash, its bytes were
//! written, then its bit persisted, then it became visible to `has_piece`,
//! `read_at` and waiters, in that order). Pieces only leave the verified
//! state when resume finds their bytes no longer match, or when the
//! whole-blob digest check fails.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::Notify;

use super::bitmap::BitmapFile;
use super::error::{StoreError, blocking, io_error};
use super::layout::{Layout, open_rw, publish, read_meta, write_meta};
use super::prefix::{Coalescer, PrefixHash};
use super::reader::{BlobReader, check_range, read_exact};
use super::{Inner, PinGuard};
use crate::bitfield::Bitfield;
use crate::digest::Digest;
use crate::metainfo::Metainfo;

/// A blob being downloaded. Shared (through `Arc`) by the session writing
/// pieces and the readers streaming it to clients; holding it pins the
/// download's reservation in the store.
pub struct PartialBlob {
    shared: Arc<Shared>,
    inner: Arc<Inner>,
    /// Set once the blob is complete, so `finish` runs once.
    finished: tokio::sync::Mutex<Option<BlobReader>>,
    _pin: PinGuard,
}

/// Written bytes between background flushes.
const FLUSH_EVERY: u64 = 64 << 20;

struct Shared {
    metainfo: Arc<Metainfo>,
    data: Arc<File>,
    data_path: PathBuf,
    pieces: Mutex<Pieces>,
    changed: Notify,
    bitmap: Mutex<BitmapFile>,
    prefix: Mutex<PrefixHash>,
    background: Coalescer,
    /// Bytes written since the last background flush.
    unflushed: AtomicU64,
}

struct Pieces {
    have: Bitfield,
    failed: Option<String>,
    /// The piece stored last, still in memory. A client streaming a
    /// download in order usually waits on exactly this piece, so its first
    /// chunk is answered from here rather than after another trip to the
    /// blocking pool to read back what was just written. One piece at most,
    /// and none once the blob is complete.
    newest: Option<(u32, Bytes)>,
    /// Pieces whose hash matched and whose write to disk is under way. A
    /// streaming client may read them already: its bytes are verified, and
    /// the write is then off its path (a 1 MiB write into this VM's page
    /// cache costs ~1.8 ms of CPU, a third of a piece time on loopback, and
    /// more when the cores are busy). Peers never see them: the bitfield,
    /// announces and uploads go by `have`, which is set only once the piece
    /// is on disk. Holds the buffers the writers hold anyway, so it costs no
    /// memory of its own.
    landing: Vec<(u32, Bytes)>,
}

impl Pieces {
    /// The verified bytes of `index` if they are still in memory.
    fn in_memory(&self, index: u32) -> Option<&Bytes> {
        let newest = self
            .newest
            .as_ref()
            .filter(|(i, _)| *i == index)
            .map(|(_, data)| data);
        newest.or_else(|| {
            self.landing
                .iter()
                .find(|(i, _)| *i == index)
                .map(|(_, data)| data)
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PartialBlob {
    /// Creates the partial's files, or resumes them, re-verifying every piece
    /// the bitmap claims. `pin` is the store's pin on the reservation.
    pub(crate) async fn open(
        inner: Arc<Inner>,
        metainfo: Arc<Metainfo>,
        pin: PinGuard,
    ) -> Result<Self, StoreError> {
        let shared = inner
            .with_room(metainfo.length(), || {
                let layout = inner.layout().clone();
                let seq = inner.next_seq();
                let metainfo = Arc::clone(&metainfo);
                blocking(move || Shared::prepare(&layout, metainfo, seq))
            })
            .await?;
        Ok(PartialBlob {
            shared: Arc::new(shared),
            inner,
            finished: tokio::sync::Mutex::new(None),
            _pin: pin,
        })
    }

    /// The metainfo this download verifies against.
    pub fn metainfo(&self) -> &Arc<Metainfo> {
        &self.shared.metainfo
    }

    /// The verified pieces now, e.g. for the handshake and the picker.
    pub fn bitfield(&self) -> Bitfield {
        lock(&self.shared.pieces).have.clone()
    }

    /// Whether piece `index` is verified and readable.
    pub fn has_piece(&self, index: u32) -> bool {
        lock(&self.shared.pieces).have.get(index)
    }

    /// Checks piece `index` against its hash and stores it: the bytes are
    /// written, then the bit persisted, then waiters woken. Data that does
    /// not match is refused with [`StoreError::PieceHash`]; on any error
    /// (e.g. [`StoreError::DiskFull`]) the piece stays missing. Writing a
    /// piece already present does nothing.
    ///
    /// The store hashes rather than trusting its callers, so no path can
    /// cache an unverified piece, and it hashes inside the same blocking call
    /// as the write: one trip to the blocking pool per piece instead of two,
    /// which is most of what a streaming client waits for between the last
    /// block of a piece arriving and its bytes going out. That client may
    /// read the piece as soon as the hash matched, while the write runs
    /// (see `Pieces::landing`); everything else sees it once it is on disk.
    pub async fn write_piece(&self, index: u32, data: Bytes) -> Result<(), StoreError> {
        let metainfo = &self.shared.metainfo;
        let range = metainfo
            .piece_range(index)
            .ok_or(StoreError::PieceOutOfRange {
                index,
                count: metainfo.piece_count(),
            })?;
        let expected = range.end - range.start;
        if data.len() as u64 != expected {
            return Err(StoreError::PieceLength {
                index,
                expected: expected as u32,
                actual: data.len(),
            });
        }
        if self.has_piece(index) {
            return Ok(());
        }
        let mut checked = false;
        let stored = self
            .inner
            .with_room(expected, || {
                let shared = Arc::clone(&self.shared);
                let data = data.clone();
                // A retry after the disk filled need not hash again.
                let verify = !std::mem::replace(&mut checked, true);
                blocking(move || {
                    if verify && !shared.metainfo.verify_piece(index, &data) {
                        return Err(StoreError::PieceHash(index));
                    }
                    shared.land(index, &data);
                    shared.store_piece(index, range.start, data)
                })
            })
            .await;
        if stored.is_err() {
            self.shared.unland(index);
        }
        stored?;
        self.advance_prefix_in_background();
        Ok(())
    }

    /// Resolves once piece `index` is verified and readable (possibly from
    /// memory, before it is on disk); fails if the download was aborted
    /// ([`PartialBlob::fail`]) before it arrived.
    pub async fn wait_piece(&self, index: u32) -> Result<(), StoreError> {
        let count = self.shared.metainfo.piece_count();
        if index >= count {
            return Err(StoreError::PieceOutOfRange { index, count });
        }
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let pieces = lock(&self.shared.pieces);
                if pieces.have.get(index) || pieces.in_memory(index).is_some() {
                    return Ok(());
                }
                if let Some(reason) = &pieces.failed {
                    return Err(StoreError::Failed(reason.clone()));
                }
            }
            notified.await;
        }
    }

    /// Reads `len` bytes at `offset`; every piece the range touches must be
    /// verified, else [`StoreError::PieceMissing`].
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, StoreError> {
        let metainfo = &self.shared.metainfo;
        check_range(offset, len, metainfo.length())?;
        if len > 0 {
            let piece_length = u64::from(metainfo.piece_length());
            let first = (offset / piece_length) as u32;
            let last = ((offset + len as u64 - 1) / piece_length) as u32;
            let pieces = lock(&self.shared.pieces);
            if first == last
                && let Some(data) = pieces.in_memory(first)
            {
                let start = (offset - u64::from(first) * piece_length) as usize;
                return Ok(data.slice(start..start + len));
            }
            if let Some(missing) = (first..=last).find(|&i| !pieces.have.get(i)) {
                return Err(StoreError::PieceMissing(missing));
            }
        }
        read_exact(
            Arc::clone(&self.shared.data),
            &self.shared.data_path,
            offset,
            len,
        )
        .await
    }

    /// Makes the blob complete once every piece is present: checks the
    /// whole-blob digest, persists the metainfo, moves the data into the
    /// complete area and returns a pinned reader. Calling it again returns
    /// the same blob. On a digest mismatch every piece is cleared and waiters
    /// fail: the metainfo itself is wrong, so nothing here can be trusted.
    pub async fn finish(&self) -> Result<BlobReader, StoreError> {
        let mut finished = self.finished.lock().await;
        if let Some(reader) = finished.as_ref() {
            return Ok(reader.clone());
        }
        let missing = {
            let pieces = lock(&self.shared.pieces);
            pieces.have.len() - pieces.have.count()
        };
        if missing > 0 {
            return Err(StoreError::Incomplete { missing });
        }
        let shared = Arc::clone(&self.shared);
        let actual = blocking(move || shared.whole_digest()).await?;
        let expected = *self.shared.metainfo.digest();
        if actual != expected {
            let shared = Arc::clone(&self.shared);
            blocking(move || shared.reset(format!("blob digest mismatch: got {actual}"))).await?;
            return Err(StoreError::DigestMismatch { expected, actual });
        }
        let layout = self.inner.layout().clone();
        let seq = self.inner.next_seq();
        let shared = Arc::clone(&self.shared);
        blocking(move || {
            let digest = shared.metainfo.digest();
            publish(
                &layout,
                &shared.metainfo,
                &shared.data,
                &shared.data_path,
                seq,
            )?;
            if let Err(error) = fs::remove_dir_all(layout.partial_dir(digest)) {
                tracing::warn!(%digest, %error, "removing a completed partial's directory");
            }
            Ok(())
        })
        .await?;
        let reader = self.inner.install_complete(
            Arc::clone(&self.shared.metainfo),
            Arc::clone(&self.shared.data),
        );
        {
            let mut pieces = lock(&self.shared.pieces);
            pieces.newest = None;
            pieces.landing.clear();
        }
        *finished = Some(reader.clone());
        Ok(reader)
    }

    /// Aborts the download: every current and future waiter for a missing
    /// piece gets [`StoreError::Failed`]. Verified pieces stay readable and
    /// stay on disk for a later resume (drop every handle, then call
    /// [`Store::partial`](super::Store::partial) again).
    pub fn fail(&self, error: String) {
        lock(&self.shared.pieces).failed = Some(error);
        self.shared.changed.notify_waiters();
    }

    /// Hashes newly contiguous pieces into the whole-blob digest off the
    /// runtime, without making the writer wait; `finish` waits for it.
    fn advance_prefix_in_background(&self) {
        if self.shared.background.request() {
            let shared = Arc::clone(&self.shared);
            drop(tokio::task::spawn_blocking(move || {
                shared.background.run(|| {
                    if let Err(error) = shared.advance_prefix() {
                        tracing::debug!(%error, "hashing the verified prefix; finish retries");
                    }
                    shared.flush_if_due();
                });
            }));
        }
    }
}

impl std::fmt::Debug for PartialBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialBlob")
            .field("digest", self.shared.metainfo.digest())
            .field("pieces", &lock(&self.shared.pieces).have)
            .finish()
    }
}

impl Shared {
    /// Creates or resumes the files; runs on the blocking pool.
    fn prepare(layout: &Layout, metainfo: Arc<Metainfo>, seq: u64) -> Result<Shared, StoreError> {
        let digest = metainfo.digest();
        let dir = layout.partial_dir(digest);
        fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let meta_path = layout.partial_meta(digest);
        let resumed = matches!(read_meta(&meta_path), Ok(m) if m == *metainfo);
        if !resumed {
            write_meta(
                &metainfo,
                &layout.tmp(digest, "meta", seq),
                &meta_path,
                false,
            )?;
        }
        let data_path = layout.partial_data(digest);
        let data = open_rw(&data_path, !resumed)?;
        let mut bitmap = BitmapFile::open(
            &layout.partial_bitmap(digest),
            metainfo.piece_count(),
            resumed,
        )?;
        let (have, prefix) = verify_flagged(&metainfo, &data, bitmap.bits());
        if &have != bitmap.bits() {
            tracing::info!(
                %digest,
                lost = bitmap.bits().count() - have.count(),
                "pieces failed re-verification on resume"
            );
            bitmap.replace(have.clone())?;
        }
        Ok(Shared {
            metainfo,
            data: Arc::new(data),
            data_path,
            pieces: Mutex::new(Pieces {
                have,
                failed: None,
                newest: None,
                landing: Vec::new(),
            }),
            changed: Notify::new(),
            bitmap: Mutex::new(bitmap),
            prefix: Mutex::new(prefix),
            background: Coalescer::default(),
            unflushed: AtomicU64::new(0),
        })
    }

    /// Makes a verified piece readable by streaming clients while it is
    /// being written (see [`Pieces::landing`]).
    fn land(&self, index: u32, data: &Bytes) {
        {
            let mut pieces = lock(&self.pieces);
            if pieces.have.get(index) || pieces.landing.iter().any(|(i, _)| *i == index) {
                return;
            }
            pieces.landing.push((index, data.clone()));
        }
        self.changed.notify_waiters();
    }

    /// A piece whose write failed: missing again, as far as readers go.
    fn unland(&self, index: u32) {
        lock(&self.pieces).landing.retain(|(i, _)| *i != index);
    }

    fn store_piece(&self, index: u32, offset: u64, data: Bytes) -> Result<(), StoreError> {
        self.data
            .write_all_at(&data, offset)
            .map_err(|e| io_error(&self.data_path, e))?;
        self.unflushed
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        lock(&self.bitmap).set(index)?;
        {
            let mut pieces = lock(&self.pieces);
            pieces.have.set(index);
            pieces.landing.retain(|(i, _)| *i != index);
            pieces.newest = Some((index, data.clone()));
        }
        self.changed.notify_waiters();
        // A piece landing at the hashing frontier (the usual case while a
        // client streams in order) is hashed from memory here instead of
        // being read back by the background pass. If that pass holds the
        // lock it will pick the piece up itself.
        if let Ok(mut prefix) = self.prefix.try_lock() {
            prefix.feed(index, &data);
        }
        Ok(())
    }

    /// Flushes written pieces to disk every [`FLUSH_EVERY`] bytes, off the
    /// runtime, so that `finish` (which must fsync before publishing the blob)
    /// only waits for the last few MiB rather than the whole blob. A failure
    /// here is only logged: `finish` syncs again and reports it.
    fn flush_if_due(&self) {
        if self.unflushed.load(Ordering::Relaxed) < FLUSH_EVERY {
            return;
        }
        self.unflushed.store(0, Ordering::Relaxed);
        if let Err(error) = self.data.sync_data() {
            tracing::debug!(%error, path = %self.data_path.display(), "background flush failed");
        }
    }

    fn advance_prefix(&self) -> Result<u32, StoreError> {
        let mut prefix = lock(&self.prefix);
        prefix
            .advance(&self.metainfo, &self.data, |i| {
                lock(&self.pieces).have.get(i)
            })
            .map_err(|e| io_error(&self.data_path, e))?;
        Ok(prefix.next())
    }

    fn whole_digest(&self) -> Result<Digest, StoreError> {
        let hashed = self.advance_prefix()?;
        let count = self.metainfo.piece_count();
        if hashed < count {
            return Err(StoreError::Incomplete {
                missing: count - hashed,
            });
        }
        Ok(lock(&self.prefix).digest())
    }

    /// Forgets every piece and fails waiters.
    fn reset(&self, reason: String) -> Result<(), StoreError> {
        let empty = Bitfield::new(self.metainfo.piece_count());
        {
            // Held across the clear so a background pass cannot hash old
            // pieces into the new prefix.
            let mut prefix = lock(&self.prefix);
            let mut pieces = lock(&self.pieces);
            pieces.have = empty.clone();
            pieces.failed = Some(reason);
            pieces.newest = None;
            pieces.landing.clear();
            *prefix = PrefixHash::default();
        }
        self.changed.notify_waiters();
        lock(&self.bitmap).replace(empty)
    }
}

/// Re-hashes each piece the bitmap claims, keeping those whose bytes still
/// match, and hashes the contiguous verified prefix on the way.
fn verify_flagged(metainfo: &Metainfo, data: &File, flagged: &Bitfield) -> (Bitfield, PrefixHash) {
    let mut have = Bitfield::new(metainfo.piece_count());
    let mut prefix = PrefixHash::default();
    let mut buf = Vec::new();
    for index in flagged.ones() {
        let Some(range) = metainfo.piece_range(index) else {
            continue;
        };
        buf.resize((range.end - range.start) as usize, 0);
        if data.read_exact_at(&mut buf, range.start).is_ok() && metainfo.verify_piece(index, &buf) {
            have.set(index);
            prefix.feed(index, &buf);
        }
    }
    (have, prefix)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::Store;
    use super::super::testutil::{MIB, blob, metainfo, piece};
    use super::*;

    const LEN: usize = 2 * MIB + MIB / 2;

    #[tokio::test]
    async fn resume_keeps_verified_pieces_and_rechecks_them() {
        let dir = tempfile::tempdir().unwrap();
        let data = blob(LEN, 1);
        let m = metainfo(&data);
        let store = Store::open(dir.path(), 0).await.unwrap();
        let partial = store.partial(Arc::clone(&m)).await.unwrap();
        for i in [0, 2] {
            partial.write_piece(i, piece(&data, &m, i)).await.unwrap();
        }
        assert_eq!(
            store.used_bytes(),
            LEN as u64,
            "the full length is reserved"
        );
        drop((partial, store));

        let store = Store::open(dir.path(), 0).await.unwrap();
        assert_eq!(store.used_bytes(), LEN as u64);
        let partial = store.partial(Arc::clone(&m)).await.unwrap();
        assert_eq!(partial.bitfield().ones().collect::<Vec<_>>(), vec![0, 2]);
        drop((partial, store));

        // Corrupt one byte of verified piece 2: only that piece is lost.
        let data_path = dir
            .path()
            .join("partial")
            .join(m.digest().hex())
            .join("data");
        let file = File::options().write(true).open(&data_path).unwrap();
        file.write_all_at(b"\xff", 2 * MIB as u64 + 5).unwrap();
        let store = Store::open(dir.path(), 0).await.unwrap();
        let partial = store.partial(Arc::clone(&m)).await.unwrap();
        assert_eq!(partial.bitfield().ones().collect::<Vec<_>>(), vec![0]);
        for i in [1, 2] {
            partial.write_piece(i, piece(&data, &m, i)).await.unwrap();
        }
        let reader = partial.finish().await.unwrap();
        assert_eq!(reader.read_at(0, LEN).await.unwrap(), &data[..]);
        assert!(matches!(
            store.partial(Arc::clone(&m)).await,
            Err(StoreError::AlreadyComplete(_))
        ));
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_partial_and_pieces_land_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let data = Arc::new(blob(6 * MIB + 77, 2));
        let m = metainfo(&data);
        let store = Store::open(dir.path(), 0).await.unwrap();
        let (p1, p2) = tokio::join!(store.partial(Arc::clone(&m)), store.partial(Arc::clone(&m)));
        let (p1, p2) = (p1.unwrap(), p2.unwrap());
        assert!(Arc::ptr_eq(&p1, &p2));
        let tasks: Vec<_> = [3u32, 0, 6, 1, 5, 2, 4]
            .into_iter()
            .map(|i| {
                let (p, data, m) = (Arc::clone(&p1), Arc::clone(&data), Arc::clone(&m));
                tokio::spawn(async move { p.write_piece(i, piece(&data, &m, i)).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let (r1, r2) = tokio::join!(p1.finish(), p2.finish());
        assert_eq!(r1.unwrap().read_at(0, data.len()).await.unwrap(), &data[..]);
        assert_eq!(r2.unwrap().len(), data.len() as u64);
    }

    #[tokio::test]
    async fn readers_wait_for_pieces_and_see_only_verified_ones() {
        let dir = tempfile::tempdir().unwrap();
        let data = blob(LEN, 3);
        let m = metainfo(&data);
        let store = Store::open(dir.path(), 0).await.unwrap();
        let partial = store.partial(Arc::clone(&m)).await.unwrap();
        let waiter = tokio::spawn({
            let p = Arc::clone(&partial);
            async move { p.wait_piece(1).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        partial.write_piece(1, piece(&data, &m, 1)).await.unwrap();
        waiter.await.unwrap().unwrap();

        let at = MIB as u64 + 10;
        assert_eq!(
            partial.read_at(at, 100).await.unwrap(),
            &data[at as usize..at as usize + 100]
        );
        assert!(matches!(
            partial.read_at(at, MIB).await,
            Err(StoreError::PieceMissing(2))
        ));
        assert!(matches!(
            partial.read_at(0, 1).await,
            Err(StoreError::PieceMissing(0))
        ));
        assert!(matches!(
            partial.finish().await,
            Err(StoreError::Incomplete { missing: 2 })
        ));
        assert!(matches!(
            partial.write_piece(0, Bytes::from_static(b"short")).await,
            Err(StoreError::PieceLength { index: 0, .. })
        ));
        assert!(matches!(
            partial.write_piece(9, Bytes::new()).await,
            Err(StoreError::PieceOutOfRange { index: 9, count: 3 })
        ));
        let mut corrupt = piece(&data, &m, 0).to_vec();
        corrupt[77] ^= 1;
        assert!(matches!(
            partial.write_piece(0, Bytes::from(corrupt)).await,
            Err(StoreError::PieceHash(0))
        ));
        assert!(!partial.has_piece(0), "a corrupt piece is never stored");
        assert!(matches!(
            partial.read_at(0, 1).await,
            Err(StoreError::PieceMissing(0))
        ));

        let waiter = tokio::spawn({
            let p = Arc::clone(&partial);
            async move { p.wait_piece(2).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        partial.fail("swarm gave up".to_owned());
        assert!(
            matches!(waiter.await.unwrap(), Err(StoreError::Failed(r)) if r == "swarm gave up")
        );
        partial.wait_piece(1).await.unwrap();
        assert!(matches!(
            partial.wait_piece(0).await,
            Err(StoreError::Failed(_))
        ));
    }

    #[tokio::test]
    async fn reads_from_the_newest_piece_in_memory_match_reads_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let data = blob(LEN, 7);
        let m = metainfo(&data);
        let store = Store::open(dir.path(), 0).await.unwrap();
        let partial = store.partial(Arc::clone(&m)).await.unwrap();
        partial.write_piece(0, piece(&data, &m, 0)).await.unwrap();
        partial.write_piece(1, piece(&data, &m, 1)).await.unwrap();
        let mib = MIB as u64;
        // Inside piece 0 (disk), inside piece 1 (memory: written last), at
        // both ends of piece 1, and across the two (disk).
        for (offset, len) in [
            (5, 1000),
            (mib + 3, 4096),
            (mib, MIB),
            (2 * mib - 1, 1),
            (mib - 10, 20),
        ] {
            let at = offset as usize;
            assert_eq!(
                partial.read_at(offset, len).await.unwrap(),
                &data[at..at + len],
                "{len} bytes at {offset}"
            );
        }
    }

    #[tokio::test]
    async fn a_verified_piece_is_streamable_while_it_is_written_but_not_offered_to_peers() {
        let dir = tempfile::tempdir().unwrap();
        let data = blob(LEN, 9);
        let m = metainfo(&data);
        let store = Store::open(dir.path(), 0).await.unwrap();
        let partial = store.partial(Arc::clone(&m)).await.unwrap();
        let mib = MIB as u64;
        let mut corrupt = piece(&data, &m, 1).to_vec();
        corrupt[7] ^= 1;
        assert!(matches!(
            partial.write_piece(1, Bytes::from(corrupt)).await,
            Err(StoreError::PieceHash(1))
        ));
        assert!(matches!(
            partial.read_at(mib + 3, 4096).await,
            Err(StoreError::PieceMissing(1))
        ));

        // The state between the hash check and the end of the write.
        partial.shared.land(1, &piece(&data, &m, 1));
        tokio::time::timeout(Duration::from_secs(5), partial.wait_piece(1))
            .await
            .expect("a landing piece wakes its waiters")
            .unwrap();
        let at = MIB + 3;
        assert_eq!(
            partial.read_at(mib + 3, 4096).await.unwrap(),
            &data[at..at + 4096]
        );
        assert!(!partial.has_piece(1) && !partial.bitfield().get(1));
        assert!(matches!(
            partial.read_at(mib - 10, 20).await,
            Err(StoreError::PieceMissing(0))
        ));
        // A write that fails takes it back.
        partial.shared.unland(1);
        assert!(matches!(
            partial.read_at(mib + 3, 4096).await,
            Err(StoreError::PieceMissing(1))
        ));

        partial.write_piece(1, piece(&data, &m, 1)).await.unwrap();
        assert!(partial.has_piece(1));
        assert!(lock(&partial.shared.pieces).landing.is_empty());
    }

    #[tokio::test]
    async fn a_blob_failing_its_digest_never_becomes_complete() {
        let dir = tempfile::tempdir().unwrap();
        let data = blob(LEN, 4);
        let good = metainfo(&data);
        // Piece hashes of these bytes, but the digest of other bytes.
        let lying = Arc::new(
            Metainfo::new(
                Digest::of(b"other"),
                good.length(),
                good.piece_length(),
                good.piece_hashes().to_vec(),
            )
            .unwrap(),
        );
        let store = Store::open(dir.path(), 0).await.unwrap();
        let partial = store.partial(Arc::clone(&lying)).await.unwrap();
        for i in 0..3 {
            partial
                .write_piece(i, piece(&data, &lying, i))
                .await
                .unwrap();
        }
        assert!(matches!(
            partial.finish().await,
            Err(StoreError::DigestMismatch { .. })
        ));
        assert_eq!(partial.bitfield().count(), 0);
        assert!(!store.contains(lying.digest()));
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
        drop((partial, store));
        let store = Store::open(dir.path(), 0).await.unwrap();
        assert!(store.complete_digests().is_empty());
        assert_eq!(store.partial(lying).await.unwrap().bitfield().count(), 0);
    }

    #[tokio::test]
    async fn a_full_disk_leaves_the_piece_missing() {
        let dir = tempfile::tempdir().unwrap();
        let data = blob(LEN, 5);
        let m = metainfo(&data);
        let partial_dir = dir.path().join("partial").join(m.digest().hex());
        let store = Store::open(dir.path(), 0).await.unwrap();
        // Every write to /dev/full fails with ENOSPC.
        std::fs::create_dir_all(&partial_dir).unwrap();
        std::os::unix::fs::symlink("/dev/full", partial_dir.join("data")).unwrap();
        let partial = store.partial(Arc::clone(&m)).await.unwrap();
        let err = partial
            .write_piece(1, piece(&data, &m, 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::DiskFull { ref path } if path.ends_with("data")),
            "{err:?}"
        );
        assert!(!partial.has_piece(1));
        assert_eq!(std::fs::read(partial_dir.join("bitmap")).unwrap(), vec![0]);
    }

    #[tokio::test]
    async fn a_partial_reserves_quota_and_metainfo_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let data = blob(LEN, 6);
        let m = metainfo(&data);
        let store = Store::open(dir.path(), LEN as u64 - 1).await.unwrap();
        assert!(matches!(
            store.partial(Arc::clone(&m)).await,
            Err(StoreError::QuotaExceeded { .. })
        ));
        assert_eq!(store.used_bytes(), 0);

        let store = Store::open(dir.path(), 0).await.unwrap();
        let partial = store.partial(Arc::clone(&m)).await.unwrap();
        let other = Arc::new(
            Metainfo::new(*m.digest(), m.length(), 2 * MIB as u32, vec![[0; 32]; 2]).unwrap(),
        );
        assert!(matches!(
            store.partial(other).await,
            Err(StoreError::MetainfoMismatch(_))
        ));
        assert!(matches!(
            store.ingest(*m.digest(), m.length()).await,
            Err(StoreError::Busy(_))
        ));
        drop(partial);
    }
}
