//! The Redis peer store, for several tracker replicas sharing one view.
//!
//! Each blob has two keys, both carrying the blob's hex digest as a Redis
//! Cluster hash tag so that they live in one slot:
//! - `shoal:tracker:{<hex>}:peers`, a hash from peer id to the encoded
//!   record ([`super::codec`]);
//! - `shoal:tracker:{<hex>}:expiry`, a sorted set from peer id to its expiry
//!   in Unix milliseconds.
//!
//! An announce is one Lua script, so one round trip and atomic: drop the
//! blob's expired entries, write the caller's, push both keys' TTL out to the
//! entry's, and return every live record. A blob nobody announces to any
//! more disappears with its keys' TTL, so nothing needs sweeping and memory
//! stays bounded by live swarms. Below 128 peers per blob both keys use
//! Redis' compact listpack encoding; BENCHMARKS.md records the bytes per
//! entry measured with `INFO memory`.

use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use shoal_swarm::Digest;

use super::{PeerStore, StoreError, UnixMillis, codec};
use crate::peer::PeerRecord;

/// KEYS: peers hash, expiry set. ARGV: now, expires_at, peer id, record,
/// key TTL in ms. Expired means `expires_at <= now`, as in the memory store.
/// Expired ids are removed in batches because Lua's `unpack` has a stack
/// limit of a few thousand values.
const ANNOUNCE: &str = r"
repeat
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1000)
  if #expired > 0 then
    redis.call('HDEL', KEYS[1], unpack(expired))
    redis.call('ZREM', KEYS[2], unpack(expired))
  end
until #expired < 1000
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
local ttl = tonumber(ARGV[5])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return redis.call('HVALS', KEYS[1])
";

/// Longest wait for Redis to connect or answer one command.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Announces kept in Redis.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    announce: Script,
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`) and checks that the server
    /// answers, so that a wrong URL fails at startup rather than on the
    /// first announce. The connection reconnects by itself afterwards.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let mut connection = client
            .get_connection_manager_with_config(connection_config())
            .await?;
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await?;
        Ok(RedisStore {
            connection,
            announce: Script::new(ANNOUNCE),
        })
    }
}

/// Bounded waits: a hung or unreachable Redis turns announces into quick
/// UNAVAILABLE answers (agents keep their current peers and retry) instead of
/// requests piling up, and a wrong URL fails startup in well under a second.
fn connection_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(1))
}

impl PeerStore for RedisStore {
    async fn announce(
        &self,
        blob: &Digest,
        record: PeerRecord,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        let hex = blob.hex();
        let values: Vec<Vec<u8>> = self
            .announce
            .key(format!("shoal:tracker:{{{hex}}}:peers"))
            .key(format!("shoal:tracker:{{{hex}}}:expiry"))
            .arg(now)
            .arg(expires_at)
            .arg(record.id.as_bytes().as_slice())
            .arg(codec::encode(&record))
            .arg(expires_at.saturating_sub(now).max(1))
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(values
            .iter()
            .filter_map(|bytes| match codec::decode(bytes) {
                Ok(record) => Some(record),
                Err(error) => {
                    tracing::warn!(%blob, %error, "skipping unreadable peer entry in redis");
                    None
                }
            })
            .collect())
    }

    /// Nothing to do: every announce drops its blob's expired entries and
    /// abandoned blobs expire with their keys.
    async fn purge_expired(&self, _now: UnixMillis) -> Result<usize, StoreError> {
        Ok(0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.connection.clone())
            .await?;
        Ok(())
    }
}
