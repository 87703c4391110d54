//! The in-process peer store, for a tracker that runs alone.

use std::collections::HashMap;

use parking_lot::Mutex;
use shoal_swarm::Digest;

use super::{PeerStore, StoreError, UnixMillis};
use crate::peer::PeerRecord;

/// Independent locks, so that announces for different blobs on different
/// cores rarely wait for each other. Digests are uniform, so any byte of
/// them spreads blobs evenly.
const SHARDS: usize = 64;

/// Announces held in memory with TTL expiry and a bound on their number.
///
/// # Memory
/// One entry is a 72-byte slot (the 64-byte [`PeerRecord`] and its expiry)
/// in its blob's vector, plus the zone string's allocation (32 bytes from
/// malloc for a zone under 16 characters), plus the vector's growth slack
/// (up to 2x, so 10 peers sit in 16 slots) and the blob's map entry (about
/// 64 bytes, shared by its peers): about 150 bytes per entry by that count
/// with 10 peers per blob. `shoal-bench tracker` measured 210 to 248 bytes
/// of RSS per entry (allocator overhead and the shard maps' own slack on
/// top; BENCHMARKS.md, "Tracker: announce load"), so the default bound of
/// 1,000,000 entries caps the store near 250 MB.
///
/// # Bound
/// Each of the 64 shards holds at most `max_entries / 64` entries. A new
/// entry in a full shard first purges the shard's expired entries and, if
/// none had expired, evicts the shard's entry that expires first, which with
/// one TTL for everyone is the least recently announced. Refreshing an
/// existing entry never evicts.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    max_per_shard: usize,
}

/// One expiring entry.
struct Slot {
    record: PeerRecord,
    expires_at: UnixMillis,
}

#[derive(Default)]
struct Shard {
    blobs: HashMap<Digest, Vec<Slot>>,
    entries: usize,
}

impl MemoryStore {
    /// Default bound on entries.
    pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;

    /// An empty store holding at most about `max_entries` entries.
    pub fn new(max_entries: usize) -> Self {
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            max_per_shard: (max_entries / SHARDS).max(1),
        }
    }

    /// Entries currently held, expired ones not yet purged included.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().entries).sum()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, blob: &Digest) -> &Mutex<Shard> {
        &self.shards[usize::from(blob.as_bytes()[0]) % SHARDS]
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(Self::DEFAULT_MAX_ENTRIES)
    }
}

impl PeerStore for MemoryStore {
    async fn announce(
        &self,
        blob: &Digest,
        record: PeerRecord,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        let mut shard = self.shard(blob).lock();
        Ok(shard.announce(blob, record, now, expires_at, self.max_per_shard))
    }

    async fn purge_expired(&self, now: UnixMillis) -> Result<usize, StoreError> {
        Ok(self
            .shards
            .iter()
            .map(|shard| shard.lock().purge(now))
            .sum())
    }

    /// In process: it answers whenever the tracker does.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl Shard {
    fn announce(
        &mut self,
        blob: &Digest,
        record: PeerRecord,
        now: UnixMillis,
        expires_at: UnixMillis,
        max_entries: usize,
    ) -> Vec<PeerRecord> {
        let known = match self.blobs.get_mut(blob) {
            Some(slots) => {
                self.entries -= drop_expired(slots, now);
                slots.iter().any(|slot| slot.record.id == record.id)
            }
            None => false,
        };
        if !known && self.entries >= max_entries {
            self.make_room(now);
        }
        let slots = self.blobs.entry(*blob).or_default();
        match slots.iter_mut().find(|slot| slot.record.id == record.id) {
            Some(slot) => {
                slot.record = record;
                slot.expires_at = expires_at;
            }
            None => {
                slots.push(Slot { record, expires_at });
                self.entries += 1;
            }
        }
        slots.iter().map(|slot| slot.record.clone()).collect()
    }

    fn purge(&mut self, now: UnixMillis) -> usize {
        let mut dropped = 0;
        self.blobs.retain(|_, slots| {
            dropped += drop_expired(slots, now);
            !slots.is_empty()
        });
        self.entries -= dropped;
        dropped
    }

    /// Frees at least one slot: the expired ones, else the one expiring first.
    fn make_room(&mut self, now: UnixMillis) {
        if self.purge(now) > 0 {
            return;
        }
        let oldest = self
            .blobs
            .iter()
            .flat_map(|(blob, slots)| {
                slots
                    .iter()
                    .enumerate()
                    .map(move |(i, slot)| (slot.expires_at, *blob, i))
            })
            .min_by_key(|(expires_at, _, _)| *expires_at);
        if let Some((_, blob, i)) = oldest
            && let Some(slots) = self.blobs.get_mut(&blob)
        {
            slots.swap_remove(i);
            self.entries -= 1;
            if slots.is_empty() {
                self.blobs.remove(&blob);
            }
        }
    }
}

/// Removes the slots expired by `now`; returns how many.
fn drop_expired(slots: &mut Vec<Slot>, now: UnixMillis) -> usize {
    let before = slots.len();
    slots.retain(|slot| slot.expires_at > now);
    before - slots.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{blob, record};

    async fn announce(store: &MemoryStore, b: u8, peer: u8, now: u64) -> Vec<u8> {
        let live = store
            .announce(&blob(b), record(peer, 0), now, now + 100)
            .await
            .unwrap();
        let mut ids: Vec<u8> = live.iter().map(|r| r.id.as_bytes()[0]).collect();
        ids.sort_unstable();
        ids
    }

    #[tokio::test]
    async fn refresh_replaces_and_expiry_drops() {
        let store = MemoryStore::default();
        assert_eq!(announce(&store, 1, 1, 0).await, [1]);
        assert_eq!(announce(&store, 1, 2, 50).await, [1, 2]);
        assert_eq!(announce(&store, 1, 1, 60).await, [1, 2]);
        assert_eq!(store.len(), 2);
        // Peer 2 expires at 150; peer 1 (refreshed at 60) at 160.
        assert_eq!(announce(&store, 1, 3, 150).await, [1, 3]);
        assert_eq!(announce(&store, 2, 1, 150).await, [1]);
        assert_eq!(store.purge_expired(160).await.unwrap(), 1);
        assert_eq!(store.purge_expired(1000).await.unwrap(), 2);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn full_store_evicts_the_least_recently_announced() {
        // One entry per shard: blobs 0 and 64 share shard 0.
        let store = MemoryStore::new(SHARDS);
        announce(&store, 0, 1, 0).await;
        assert_eq!(announce(&store, 0, 1, 10).await, [1]);
        assert_eq!(announce(&store, 64, 2, 20).await, [2]);
        assert_eq!(store.len(), 1);
        assert_eq!(announce(&store, 0, 3, 30).await, [3]);
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn full_store_prefers_dropping_expired_entries() {
        let store = MemoryStore::new(2 * SHARDS);
        announce(&store, 0, 1, 0).await;
        announce(&store, 64, 2, 50).await;
        // At 120 peer 1 has expired: it goes, peer 2 stays.
        assert_eq!(announce(&store, 64, 3, 120).await, [2, 3]);
        assert_eq!(store.len(), 2);
    }
}
