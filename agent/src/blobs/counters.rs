//! What the blob paths count beyond the swarm session's own totals:
//! downloads in flight, and pieces fetched from the origins' range API
//! (small blobs, stalled swarms) by hash outcome.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by the blob paths; read by the metrics collector.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    active: AtomicU64,
    origin_pieces_verified: AtomicU64,
    origin_pieces_failed: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobStats {
    /// Downloads in progress (swarmed or from origins), one per blob
    /// however many clients read it.
    pub active_downloads: u64,
    /// Pieces from origins that matched their hash.
    pub origin_pieces_verified: u64,
    /// Pieces from origins that failed their hash.
    pub origin_pieces_failed: u64,
}

impl Counters {
    pub(crate) fn download_started(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn download_ended(&self) {
        // Saturating: a decrement without its increment must not wrap.
        let _ = self
            .active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    pub(crate) fn origin_piece(&self, verified: bool) {
        let counter = if verified {
            &self.origin_pieces_verified
        } else {
            &self.origin_pieces_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> BlobStats {
        BlobStats {
            active_downloads: self.active.load(Ordering::Relaxed),
            origin_pieces_verified: self.origin_pieces_verified.load(Ordering::Relaxed),
            origin_pieces_failed: self.origin_pieces_failed.load(Ordering::Relaxed),
        }
    }
}
