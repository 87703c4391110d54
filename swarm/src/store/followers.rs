//! The work that follows an ingest's writes, each part on a thread of its
//! own: the whole-blob SHA-256, the piece hashes, and early flushes of the
//! written bytes to disk. [`BlobWriter`](super::BlobWriter) writes a chunk,
//! then hands it to all three; on two cores the two SHA-256 streams overlap
//! each other and the writing instead of running after it on one thread, and
//! the fsync that completes the blob only waits for the last few MiB.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use super::error::StoreError;
use crate::digest::Digest;
use crate::metainfo::PieceHash;

/// Chunks queued per thread: how far the writer may run ahead of the
/// slowest follower (8 MiB with the writer's 1 MiB chunks).
const QUEUE_CHUNKS: usize = 8;

/// Written bytes between early flushes to disk.
const FLUSH_EVERY: u64 = 64 << 20;

/// The threads following one ingest. Feed them every written chunk in order
/// with [`Followers::feed`], then call [`Followers::finish`]. Dropping them
/// unfinished stops the threads once their queues drain.
pub(super) struct Followers {
    whole: Follower<Sha256>,
    pieces: Follower<PieceHashes>,
    flusher: Follower<Flusher>,
}

/// What the hashing threads computed over the bytes fed.
pub(super) struct Hashes {
    /// SHA-256 of all the bytes.
    pub(super) digest: Digest,
    /// SHA-256 of each `piece_length` bytes, the last piece possibly short.
    pub(super) pieces: Vec<PieceHash>,
}

impl Followers {
    /// Starts the threads for a blob cut into `piece_length` pieces and
    /// written to `file` (at `path`, for log messages).
    pub(super) fn spawn(
        piece_length: u32,
        file: Arc<File>,
        path: PathBuf,
    ) -> Result<Self, StoreError> {
        let pieces = PieceHashes {
            piece_length,
            current: Sha256::new(),
            filled: 0,
            hashes: Vec::new(),
        };
        let flusher = Flusher {
            file,
            path,
            unflushed: 0,
        };
        Ok(Followers {
            whole: Follower::spawn("shoal-ingest-digest", Sha256::new(), |h, c| h.update(c))?,
            pieces: Follower::spawn("shoal-ingest-pieces", pieces, PieceHashes::update)?,
            flusher: Follower::spawn("shoal-ingest-flush", flusher, Flusher::update)?,
        })
    }

    /// Queues the next written chunk for every thread. Blocks while a queue
    /// is full: call it off the async runtime.
    pub(super) fn feed(&self, chunk: &Bytes) {
        self.whole.feed(chunk.clone());
        self.pieces.feed(chunk.clone());
        self.flusher.feed(chunk.clone());
    }

    /// Waits for the threads to take in everything fed. Blocks: call it off
    /// the async runtime. The caller still fsyncs before publishing: early
    /// flushes only make that quick.
    pub(super) fn finish(self) -> Result<Hashes, StoreError> {
        let digest = Digest::from_bytes(self.whole.join()?.finalize().into());
        let pieces = self.pieces.join()?.into_hashes();
        self.flusher.join()?;
        Ok(Hashes { digest, pieces })
    }
}

/// One thread applying `update` to each chunk it is fed, in order.
struct Follower<S> {
    chunks: SyncSender<Bytes>,
    thread: JoinHandle<S>,
}

impl<S: Send + 'static> Follower<S> {
    fn spawn(name: &str, mut state: S, update: fn(&mut S, &[u8])) -> Result<Self, StoreError> {
        let (chunks, queue) = sync_channel::<Bytes>(QUEUE_CHUNKS);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                for chunk in queue {
                    update(&mut state, &chunk);
                }
                state
            })
            .map_err(|e| StoreError::Failed(format!("starting an ingest thread: {e}")))?;
        Ok(Follower { chunks, thread })
    }

    /// The thread only stops when the sender is dropped, so a send error
    /// means it panicked, which `join` reports.
    fn feed(&self, chunk: Bytes) {
        let _ = self.chunks.send(chunk);
    }

    fn join(self) -> Result<S, StoreError> {
        drop(self.chunks);
        self.thread
            .join()
            .map_err(|_| StoreError::Failed("an ingest thread panicked".to_owned()))
    }
}

/// SHA-256 of each piece of an in-order stream.
struct PieceHashes {
    piece_length: u32,
    current: Sha256,
    /// Bytes of the current piece hashed so far.
    filled: u32,
    hashes: Vec<PieceHash>,
}

impl PieceHashes {
    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = ((self.piece_length - self.filled) as usize).min(data.len());
            self.current.update(&data[..take]);
            self.filled += take as u32;
            data = &data[take..];
            if self.filled == self.piece_length {
                self.hashes.push(self.current.finalize_reset().into());
                self.filled = 0;
            }
        }
    }

    /// Closes the last, short piece.
    fn into_hashes(mut self) -> Vec<PieceHash> {
        if self.filled > 0 {
            self.hashes.push(self.current.finalize().into());
        }
        self.hashes
    }
}

/// Flushes the written bytes to disk every [`FLUSH_EVERY`] bytes, so that
/// the disk writes back while the blob still streams in. A failure here is
/// only logged: the fsync before the blob is published reports it.
struct Flusher {
    file: Arc<File>,
    path: PathBuf,
    unflushed: u64,
}

impl Flusher {
    fn update(&mut self, chunk: &[u8]) {
        self.unflushed += chunk.len() as u64;
        if self.unflushed < FLUSH_EVERY {
            return;
        }
        self.unflushed = 0;
        if let Err(error) = self.file.sync_data() {
            tracing::debug!(%error, path = %self.path.display(), "early flush of an ingest failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{MIB, blob, metainfo};
    use super::*;

    #[test]
    fn hashes_match_the_metainfo_of_the_same_bytes_at_any_chunking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = Arc::new(File::create(&path).unwrap());
        for (len, chunk) in [(0, 1), (1, 1), (3 * MIB + 11, 100_000), (2 * MIB, MIB)] {
            let data = blob(len, 7);
            let expected = metainfo(&data);
            let followers =
                Followers::spawn(expected.piece_length(), Arc::clone(&file), path.clone()).unwrap();
            for c in data.chunks(chunk) {
                followers.feed(&Bytes::copy_from_slice(c));
            }
            let hashes = followers.finish().unwrap();
            assert_eq!(&hashes.digest, expected.digest(), "len {len}");
            assert_eq!(hashes.pieces, expected.piece_hashes(), "len {len}");
        }
    }
}
