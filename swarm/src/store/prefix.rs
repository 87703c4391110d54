//! Whole-blob SHA-256 of a partial blob, computed as pieces land rather than
//! in a separate pass at the end: the hash covers the contiguous prefix of
//! verified pieces and advances whenever the next piece is present, reading
//! it back from the data file (usually still in the page cache). A 1 GiB
//! transfer is bounded by SHA-256 speed, so this overlaps the second hash
//! pass with the download instead of adding it after.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::metainfo::Metainfo;

/// Bytes read back per call when a piece is not hashed from memory: under
/// the agent's 1 MiB mmap threshold (`agent/src/malloc.rs`), so the buffer
/// comes from the heap rather than a fresh mapping per catch-up pass.
const READ_CHUNK: u64 = 256 << 10;

/// SHA-256 over pieces `0..next`.
#[derive(Clone, Default)]
pub(crate) struct PrefixHash {
    sha: Sha256,
    next: u32,
}

impl PrefixHash {
    /// The first piece not yet hashed.
    pub(crate) fn next(&self) -> u32 {
        self.next
    }

    /// Hashes piece `index` if it is the next one; returns whether it was.
    pub(crate) fn feed(&mut self, index: u32, data: &[u8]) -> bool {
        if index != self.next {
            return false;
        }
        self.sha.update(data);
        self.next += 1;
        true
    }

    /// Hashes every present piece from `next` on, reading them from `file`,
    /// until a missing one. A read error leaves the hash where it was.
    pub(crate) fn advance(
        &mut self,
        metainfo: &Metainfo,
        file: &File,
        present: impl Fn(u32) -> bool,
    ) -> std::io::Result<()> {
        let mut buf = Vec::new();
        while self.next < metainfo.piece_count() && present(self.next) {
            let Some(range) = metainfo.piece_range(self.next) else {
                break;
            };
            let mut at = range.start;
            while at < range.end {
                let len = (range.end - at).min(READ_CHUNK);
                buf.resize(len as usize, 0);
                file.read_exact_at(&mut buf, at)?;
                self.sha.update(&buf);
                at += len;
            }
            self.next += 1;
        }
        Ok(())
    }

    /// Digest of the hashed prefix (the whole blob once `next` is the piece
    /// count).
    pub(crate) fn digest(&self) -> Digest {
        Digest::from_bytes(self.sha.clone().finalize().into())
    }
}

/// Runs at most one background advance at a time without missing a
/// request: a request made while a run is under way makes that run loop
/// once more.
#[derive(Default)]
pub(crate) struct Coalescer {
    running: AtomicBool,
    dirty: AtomicBool,
}

impl Coalescer {
    /// Records that work is wanted; true if the caller must start a run
    /// (with [`Coalescer::run`]), false if one is already going.
    pub(crate) fn request(&self) -> bool {
        self.dirty.store(true, Ordering::SeqCst);
        !self.running.swap(true, Ordering::SeqCst)
    }

    /// Does `work` until no request arrived during the last pass.
    pub(crate) fn run(&self, mut work: impl FnMut()) {
        loop {
            self.dirty.store(false, Ordering::SeqCst);
            work();
            self.running.store(false, Ordering::SeqCst);
            if !self.dirty.load(Ordering::SeqCst) || self.running.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn prefix_over_fed_and_read_back_pieces_matches_whole_digest() {
        let data: Vec<u8> = (0..(2 << 20) + 5000).map(|i| (i % 253) as u8).collect();
        let digest = Digest::of(&data);
        let mut hasher = crate::metainfo::MetainfoHasher::new(data.len() as u64);
        hasher.update(&data);
        let metainfo = hasher.finish(digest).unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();

        let mut prefix = PrefixHash::default();
        let first = metainfo.piece_range(0).unwrap();
        assert!(!prefix.feed(1, b"x"), "only the next piece is fed");
        assert!(prefix.feed(0, &data[first.start as usize..first.end as usize]));
        prefix.advance(&metainfo, &file, |i| i != 2).unwrap();
        assert_eq!(prefix.next(), 2);
        prefix.advance(&metainfo, &file, |_| true).unwrap();
        assert_eq!(prefix.next(), 3);
        assert_eq!(prefix.digest(), digest);
    }

    #[test]
    fn coalescer_runs_once_and_reruns_for_late_requests() {
        let c = Coalescer::default();
        assert!(c.request());
        assert!(!c.request(), "a run is already pending");
        let mut passes = 0;
        c.run(|| {
            passes += 1;
            if passes == 1 {
                assert!(!c.request());
            }
        });
        assert_eq!(passes, 2);
        assert!(c.request(), "idle again after the run");
    }
}
