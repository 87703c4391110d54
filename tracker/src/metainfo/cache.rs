//! A byte-bounded LRU of metainfo. Metainfo never changes for a digest, so
//! entries never go stale; the only question is what to keep, and recently
//! asked blobs are the ones being pulled right now.

use std::sync::Arc;

use lru::LruCache;
use shoal_proto::tracker::Metainfo;
use shoal_swarm::Digest;

/// Bookkeeping bytes counted per entry on top of its strings: the map slot,
/// the LRU links and the `Arc` header.
const ENTRY_OVERHEAD: usize = 160;

pub(crate) struct MetainfoCache {
    entries: LruCache<Digest, Arc<Metainfo>>,
    bytes: usize,
    max_bytes: usize,
}

impl MetainfoCache {
    pub(crate) fn new(max_bytes: usize) -> Self {
        MetainfoCache {
            entries: LruCache::unbounded(),
            bytes: 0,
            max_bytes,
        }
    }

    /// The cached metainfo, marked most recently used.
    pub(crate) fn get(&mut self, digest: &Digest) -> Option<Arc<Metainfo>> {
        self.entries.get(digest).cloned()
    }

    /// Caches `metainfo`, evicting the least recently used entries to stay
    /// within the bound. An entry larger than the whole bound is not cached.
    pub(crate) fn insert(&mut self, digest: Digest, metainfo: Arc<Metainfo>) {
        let size = weight(&metainfo);
        if size > self.max_bytes {
            return;
        }
        if let Some(old) = self.entries.put(digest, metainfo) {
            self.bytes -= weight(&old);
        }
        self.bytes += size;
        while self.bytes > self.max_bytes {
            match self.entries.pop_lru() {
                Some((_, evicted)) => self.bytes -= weight(&evicted),
                None => break,
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

fn weight(metainfo: &Metainfo) -> usize {
    ENTRY_OVERHEAD + metainfo.digest.len() + metainfo.piece_hashes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metainfo(pieces: usize) -> Arc<Metainfo> {
        Arc::new(Metainfo {
            digest: Digest::of(&pieces.to_le_bytes()).to_string(),
            length: pieces as u64 * (1 << 20),
            piece_length: 1 << 20,
            piece_hashes: vec![0; 32 * pieces],
        })
    }

    fn key(n: u8) -> Digest {
        Digest::from_bytes([n; 32])
    }

    #[test]
    fn stays_within_bytes_evicting_least_recently_used() {
        let one = weight(&metainfo(10));
        let mut cache = MetainfoCache::new(3 * one);
        for n in 0..3 {
            cache.insert(key(n), metainfo(10));
        }
        assert!(cache.get(&key(0)).is_some());
        cache.insert(key(3), metainfo(10));
        assert_eq!(cache.len(), 3);
        assert!(
            cache.get(&key(1)).is_none(),
            "least recently used goes first"
        );
        assert!(cache.get(&key(0)).is_some() && cache.get(&key(3)).is_some());
        assert!(cache.bytes <= cache.max_bytes);
    }

    #[test]
    fn replacing_and_oversized_entries_keep_the_count_right() {
        let mut cache = MetainfoCache::new(weight(&metainfo(100)));
        cache.insert(key(0), metainfo(10));
        cache.insert(key(0), metainfo(10));
        assert_eq!(cache.bytes, weight(&metainfo(10)));
        cache.insert(key(1), metainfo(1000));
        assert!(cache.get(&key(1)).is_none());
        assert_eq!(cache.len(), 1);
    }
}
