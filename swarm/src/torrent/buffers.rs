//! Piece buffers recycled within one torrent, so that assembling a piece
//! reuses memory a finished piece gave back instead of asking the
//! allocator for a fresh one.
//!
//! Why not leave it to malloc: the agent pins glibc's mmap threshold at
//! 1 MiB to keep its peak RSS down (`agent/src/malloc.rs`), so every piece
//! of 1 MiB or more was mapped, faulted in page by page and unmapped again.
//! On a VM that hands freed memory back to its host (virtio-balloon free
//! page reporting, on the benchmark machine) each fresh page also costs a
//! trip to the hypervisor. Reusing buffers cut the Shoal processes' CPU by
//! 12% in the 16-agent swarm benchmark (BENCHMARKS.md, "Piece buffers
//! recycled").
//!
//! Reuse cannot raise the peak: a buffer is allocated only when none is
//! idle, so buffers in use plus idle ones never exceed the most ever in use
//! at once. Idle buffers are capped, and all are freed when the torrent
//! completes or goes.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;

/// Idle bytes kept per torrent: enough to absorb the swing of pieces
/// between assembly, hashing, the disk write and the in-memory newest piece
/// (at 1 MiB pieces, 16 buffers) without holding much after a burst.
const MAX_IDLE_BYTES: usize = 16 << 20;

/// The torrent's pool of idle buffers. Cheap to clone.
#[derive(Clone)]
pub(crate) struct PieceBuffers {
    idle: Arc<Idle>,
}

struct Idle {
    buffers: Mutex<Vec<Vec<u8>>>,
    max: usize,
}

impl PieceBuffers {
    /// A pool for pieces of `piece_length` bytes.
    pub(crate) fn new(piece_length: u32) -> Self {
        let max = (MAX_IDLE_BYTES / (piece_length.max(1) as usize)).clamp(2, 64);
        PieceBuffers {
            idle: Arc::new(Idle {
                buffers: Mutex::new(Vec::new()),
                max,
            }),
        }
    }

    /// A buffer of `len` bytes. Its contents are unspecified (a recycled
    /// buffer holds an older piece): the caller overwrites all of it.
    pub(crate) fn take(&self, len: usize) -> PieceBuf {
        // Popped in a statement of its own, so the lock is not held while a
        // fresh buffer is allocated below.
        let recycled = self.idle.buffers.lock().pop();
        let data = match recycled {
            Some(mut data) => {
                data.resize(len, 0);
                data
            }
            None => vec![0; len],
        };
        PieceBuf {
            data,
            home: Arc::downgrade(&self.idle),
        }
    }

    /// Buffers waiting to be reused.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.idle.buffers.lock().len()
    }
}

impl std::fmt::Debug for PieceBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PieceBuffers")
            .field("max_idle", &self.idle.max)
            .finish_non_exhaustive()
    }
}

/// One piece's bytes; goes back to its pool when dropped, whether it was
/// abandoned mid-assembly or frozen into [`Bytes`] whose last clone went.
pub(crate) struct PieceBuf {
    data: Vec<u8>,
    home: Weak<Idle>,
}

impl PieceBuf {
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Shares the buffer as `Bytes`; it returns to the pool once every
    /// clone and slice of them is dropped.
    pub(crate) fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PieceBuf {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for PieceBuf {
    fn drop(&mut self) {
        let Some(idle) = self.home.upgrade() else {
            return;
        };
        let mut buffers = idle.buffers.lock();
        if buffers.len() < idle.max {
            buffers.push(std::mem::take(&mut self.data));
        }
    }
}

impl std::fmt::Debug for PieceBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PieceBuf")
            .field("len", &self.data.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_buffer_comes_back_when_its_last_slice_drops() {
        let pool = PieceBuffers::new(8);
        let mut buf = pool.take(8);
        buf.as_mut_slice().copy_from_slice(b"abcdefgh");
        let bytes = buf.freeze();
        let tail = bytes.slice(4..);
        drop(bytes);
        assert_eq!(pool.idle(), 0, "a slice still holds it");
        assert_eq!(&tail[..], b"efgh");
        drop(tail);
        assert_eq!(pool.idle(), 1);
        let again = pool.take(8);
        assert_eq!(again.as_ref(), b"abcdefgh", "the same memory, reused");
        assert_eq!(pool.idle(), 0);
    }

    #[test]
    fn a_reused_buffer_takes_the_length_asked_for() {
        let pool = PieceBuffers::new(8);
        drop(pool.take(8));
        let short = pool.take(3);
        assert_eq!(short.as_ref().len(), 3, "the last piece is shorter");
        drop(short);
        assert_eq!(pool.take(8).as_ref().len(), 8);
    }

    #[test]
    fn idle_buffers_are_capped() {
        let pool = PieceBuffers::new(MAX_IDLE_BYTES as u32 / 4);
        let held: Vec<PieceBuf> = (0..10).map(|_| pool.take(16)).collect();
        drop(held);
        assert_eq!(pool.idle(), 4);
    }

    #[test]
    fn buffers_outliving_their_pool_are_simply_freed() {
        let pool = PieceBuffers::new(8);
        let bytes = pool.take(8).freeze();
        drop(pool);
        drop(bytes);
    }
}
