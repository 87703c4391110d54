//! Where announces live until they expire.
//!
//! - [`MemoryStore`]: the default, for a single tracker: sharded maps with
//!   TTL expiry and a bound on entries.
//! - [`RedisStore`]: for several tracker replicas behind one service: every
//!   replica sees every announce.
//!
//! Time is passed in as Unix milliseconds rather than read inside, so that
//! tests drive expiry without sleeping, and so that replicas sharing Redis
//! agree on expiry as long as their clocks do (NTP keeps cluster nodes within
//! milliseconds of each other; entries live for seconds).

mod codec;
mod memory;
mod redis;

use std::future::Future;

use shoal_swarm::Digest;

use crate::peer::PeerRecord;

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// Milliseconds since the Unix epoch.
pub type UnixMillis = u64;

/// The current time as [`UnixMillis`], read once per request by the caller.
pub fn unix_millis_now() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis refused the command or the connection failed.
    #[error("redis")]
    Redis(#[from] ::redis::RedisError),
}

/// Announce storage shared by the tracker's request handlers.
pub trait PeerStore: Send + Sync + 'static {
    /// Records `record` as `blob`'s entry for `record.id` until `expires_at`
    /// (replacing that peer's previous entry), drops the blob's entries that
    /// expired by `now`, and returns the blob's live entries, the new one
    /// included. One round trip for a remote store.
    fn announce(
        &self,
        blob: &Digest,
        record: PeerRecord,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> impl Future<Output = Result<Vec<PeerRecord>, StoreError>> + Send;

    /// Drops every entry expired by `now`, in blobs nobody announces to any
    /// more too; returns how many were dropped. The server calls it once per
    /// announce interval.
    fn purge_expired(
        &self,
        now: UnixMillis,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Checks that the store answers (a round trip for a remote store), for
    /// the tracker's readiness.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::net::{IpAddr, Ipv4Addr};

    use shoal_swarm::{Digest, PeerId};

    use crate::peer::PeerRecord;

    /// A blob whose digest bytes are all `b` (so it lands in shard `b % 64`).
    pub(crate) fn blob(b: u8) -> Digest {
        Digest::from_bytes([b; 32])
    }

    /// A peer whose id bytes are all `id`.
    pub(crate) fn record(id: u8, pieces: u32) -> PeerRecord {
        PeerRecord {
            id: PeerId::from_array([id; 20]),
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, id)),
            port: 7000,
            zone: "zone-a".into(),
            pieces,
            complete: false,
            origin: false,
        }
    }
}
