//! Quota accounting and least-recently-used eviction order, as plain data:
//! no files, no locks, no clock. The store asks it which blobs to evict and
//! then removes their files itself.
//!
//! Every blob on disk is one entry (complete, partial or being ingested) with
//! a size, a last-use tick and a pin count. Pinned entries (a live reader,
//! download or ingest) are never chosen for eviction.

use std::collections::{BTreeMap, HashMap};

use crate::digest::Digest;

/// The entries that could not make room for a new blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuotaExceeded {
    /// Bytes asked for.
    pub(crate) requested: u64,
    /// Free bytes plus the bytes of every unpinned entry.
    pub(crate) available: u64,
}

#[derive(Debug)]
struct Entry {
    size: u64,
    last_use: u64,
    pins: u32,
}

/// Byte accounting and LRU order of the store's entries.
#[derive(Debug)]
pub(crate) struct Quota {
    limit: u64,
    used: u64,
    clock: u64,
    entries: HashMap<Digest, Entry>,
    by_use: BTreeMap<u64, Digest>,
    evicted: Evictions,
}

/// Entries evicted to make room since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evictions {
    /// Entries evicted.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Quota {
    /// An empty store limited to `limit` bytes; 0 means unlimited.
    pub(crate) fn new(limit: u64) -> Self {
        Quota {
            limit,
            used: 0,
            clock: 0,
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            evicted: Evictions::default(),
        }
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    pub(crate) fn evictions(&self) -> Evictions {
        self.evicted
    }

    /// Counts `digest` as evicted; the caller then removes it.
    pub(crate) fn count_eviction(&mut self, digest: &Digest) {
        if let Some(e) = self.entries.get(digest) {
            self.evicted.count += 1;
            self.evicted.bytes += e.size;
        }
    }

    /// Size the entry was admitted with.
    pub(crate) fn size(&self, digest: &Digest) -> Option<u64> {
        self.entries.get(digest).map(|e| e.size)
    }

    pub(crate) fn is_pinned(&self, digest: &Digest) -> bool {
        self.entries.get(digest).is_some_and(|e| e.pins > 0)
    }

    /// Records an entry found on disk at open, unpinned and most recently
    /// used, without checking the limit: call in oldest-first order.
    pub(crate) fn restore(&mut self, digest: Digest, size: u64) {
        self.remove(&digest);
        self.insert(digest, size, 0);
    }

    /// Makes room for `size` bytes, evicting unpinned entries oldest first,
    /// and records `digest` pinned once, replacing any entry it had. Returns the evicted digests, whose
    /// files the caller must delete. If room cannot be made nothing changes.
    pub(crate) fn admit(
        &mut self,
        digest: Digest,
        size: u64,
    ) -> Result<Vec<Digest>, QuotaExceeded> {
        let previous = self.remove(&digest);
        let evict = match self.plan_eviction(size) {
            Ok(evict) => evict,
            Err(e) => {
                if let Some(previous) = previous {
                    self.insert(digest, previous.size, previous.pins);
                }
                return Err(e);
            }
        };
        for d in &evict {
            if let Some(removed) = self.remove(d) {
                self.evicted.count += 1;
                self.evicted.bytes += removed.size;
            }
        }
        self.insert(digest, size, 1);
        Ok(evict)
    }

    /// Adds a pin; false if the entry is unknown.
    pub(crate) fn pin(&mut self, digest: &Digest) -> bool {
        match self.entries.get_mut(digest) {
            Some(e) => {
                e.pins += 1;
                true
            }
            None => false,
        }
    }

    /// Drops one pin; unknown entries are ignored.
    pub(crate) fn unpin(&mut self, digest: &Digest) {
        if let Some(e) = self.entries.get_mut(digest) {
            e.pins = e.pins.saturating_sub(1);
        }
    }

    /// Marks the entry most recently used.
    pub(crate) fn touch(&mut self, digest: &Digest) {
        self.clock += 1;
        let now = self.clock;
        if let Some(e) = self.entries.get_mut(digest) {
            self.by_use.remove(&e.last_use);
            e.last_use = now;
            self.by_use.insert(now, *digest);
        }
    }

    /// Forgets the entry, releasing its bytes.
    pub(crate) fn remove(&mut self, digest: &Digest) -> Option<RemovedEntry> {
        let e = self.entries.remove(digest)?;
        self.by_use.remove(&e.last_use);
        self.used -= e.size;
        Some(RemovedEntry {
            size: e.size,
            pins: e.pins,
        })
    }

    /// Unpinned entries, oldest first, whose admitted sizes add up to at
    /// least `bytes` (all of them if they do not), for when the disk fills
    /// before the quota does: the quota cannot see that, so the store frees
    /// real space by evicting what nobody uses.
    pub(crate) fn reclaimable(&self, bytes: u64) -> Vec<Digest> {
        let mut freed = 0u64;
        let mut evict = Vec::new();
        for digest in self.by_use.values() {
            if freed >= bytes {
                break;
            }
            if let Some(e) = self.entries.get(digest)
                && e.pins == 0
            {
                freed = freed.saturating_add(e.size);
                evict.push(*digest);
            }
        }
        evict
    }

    fn insert(&mut self, digest: Digest, size: u64, pins: u32) {
        self.clock += 1;
        self.entries.insert(
            digest,
            Entry {
                size,
                last_use: self.clock,
                pins,
            },
        );
        self.by_use.insert(self.clock, digest);
        self.used += size;
    }

    fn plan_eviction(&self, size: u64) -> Result<Vec<Digest>, QuotaExceeded> {
        if self.limit == 0 {
            return Ok(Vec::new());
        }
        let mut used = self.used;
        let mut evict = Vec::new();
        for digest in self.by_use.values() {
            if used.saturating_add(size) <= self.limit {
                break;
            }
            let Some(e) = self.entries.get(digest) else {
                continue;
            };
            if e.pins == 0 {
                used -= e.size;
                evict.push(*digest);
            }
        }
        if used.saturating_add(size) <= self.limit {
            Ok(evict)
        } else {
            Err(QuotaExceeded {
                requested: size,
                available: self.limit.saturating_sub(used),
            })
        }
    }
}

/// What [`Quota::remove`] took out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RemovedEntry {
    size: u64,
    pins: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::from_bytes([n; 32])
    }

    #[test]
    fn reclaimable_takes_unpinned_entries_oldest_first_until_enough() {
        let mut q = Quota::new(0);
        q.restore(d(1), 10);
        q.admit(d(2), 10).unwrap();
        q.restore(d(3), 10);
        q.restore(d(4), 10);
        assert_eq!(q.reclaimable(15), vec![d(1), d(3)]);
        assert_eq!(q.reclaimable(100), vec![d(1), d(3), d(4)]);
        q.unpin(&d(2));
        assert_eq!(q.reclaimable(1), vec![d(1)]);
        assert_eq!(q.reclaimable(0), Vec::<Digest>::new());
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let mut q = Quota::new(30);
        for n in 1..=3 {
            q.restore(d(n), 10);
        }
        q.touch(&d(1));
        assert_eq!(q.admit(d(4), 15), Ok(vec![d(2), d(3)]));
        assert_eq!(q.used(), 25);
        assert_eq!(q.size(&d(2)), None);
        assert!(q.is_pinned(&d(4)));
        assert_eq!(
            q.evictions(),
            Evictions {
                count: 2,
                bytes: 20
            }
        );
    }

    #[test]
    fn pinned_entries_are_skipped() {
        let mut q = Quota::new(30);
        for n in 1..=3 {
            q.restore(d(n), 10);
        }
        assert!(q.pin(&d(1)));
        assert_eq!(q.admit(d(4), 10), Ok(vec![d(2)]));
        q.unpin(&d(1));
        assert!(!q.is_pinned(&d(1)));
        assert_eq!(q.admit(d(5), 10), Ok(vec![d(1)]));
    }

    #[test]
    fn refusal_changes_nothing() {
        let mut q = Quota::new(30);
        q.restore(d(1), 10);
        q.restore(d(2), 10);
        q.pin(&d(1));
        assert_eq!(
            q.admit(d(3), 25),
            Err(QuotaExceeded {
                requested: 25,
                available: 20
            })
        );
        assert_eq!(q.used(), 20);
        assert_eq!(q.size(&d(2)), Some(10));
        assert_eq!(q.evictions(), Evictions::default());
        assert_eq!(q.admit(d(3), 20), Ok(vec![d(2)]));
    }

    #[test]
    fn zero_limit_is_unlimited_and_remove_releases() {
        let mut q = Quota::new(0);
        assert_eq!(q.admit(d(1), u64::MAX / 2), Ok(vec![]));
        assert_eq!(q.admit(d(2), 10), Ok(vec![]));
        assert_eq!(q.remove(&d(1)).map(|e| e.size), Some(u64::MAX / 2));
        assert_eq!(q.used(), 10);
        q.unpin(&d(9));
        assert!(!q.pin(&d(9)));
    }
}
