//! The tracker's configuration: a TOML file (every key optional, unknown keys
//! refused so that a typo is an error rather than a silently ignored
//! setting), overridden by `SHOAL_TRACKER_*` environment variables,
//! overridden by command-line flags, then checked into [`Settings`].
//!
//! ```toml
//! listen = "0.0.0.0:7070"
//! metrics_listen = "0.0.0.0:9100" # HTTP /metrics, /healthz, /readyz; "" (default) = off
//!
//! [announce]
//! interval_seconds = 3          # how often peers announce
//! ttl_intervals = 3             # entries expire after this many missed intervals
//! max_peers = 50                # K: peers handed to an incomplete peer
//! max_peers_for_complete = 5    # peers handed to a complete peer
//! origins_until_complete = 3    # M: origins handed out while fewer seeders
//!
//! [store]
//! backend = "memory"            # or "redis"
//! max_entries = 1000000         # memory: bound on (blob, peer) entries
//! redis_url = "redis://127.0.0.1:6379"  # may hold a password: prefer
//! # redis_url_file = "/run/secrets/redis-url" or $SHOAL_TRACKER_REDIS_URL
//!
//! [metainfo]
//! cache_bytes = 67108864        # bound on cached metainfo
//! origin_timeout_ms = 5000      # per origin call
//! replication = 2               # origins owning each blob
//!
//! [[origins]]                  # the static ring; see [discovery]
//! name = "origin-0"
//! http = "http://10.0.0.7:8080" # the origin's HTTP API
//! peer = "10.0.0.7:7001"        # swarm port: IP or DNS name, handed out resolved
//!
//! [discovery]                   # see shoal_discovery::config
//! dns_refresh_seconds = 30      # re-resolve peer names this often
//! # kubernetes = { service = "shoal-origin-headless" }  # follow EndpointSlices
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
pub use shoal_discovery::{DiscoveryConfig, OriginConfig};
use shoal_swarm::config_file::{self, FileError, SecretUrl};
use shoal_swarm::ring::{DEFAULT_REPLICATION, Ring, RingError, RingWatch};
use shoal_swarm::tls::{Tls, TlsConfig, TlsError};
use shoal_telemetry::AdminListen;

use crate::handout::Policy;
use crate::store::MemoryStore;

/// The configuration file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// Address of the HTTP admin endpoints (metrics, health); "" = none,
    /// the default (the chart sets it), so that trackers started side by
    /// side (tests, benchmarks) do not fight over one port.
    pub metrics_listen: AdminListen,
    /// Announce interval and handout policy.
    pub announce: AnnounceConfig,
    /// Peer store.
    pub store: StoreConfig,
    /// Metainfo cache and origin calls.
    pub metainfo: MetainfoConfig,
    /// The origins, in any order.
    pub origins: Vec<OriginConfig>,
    /// How the ring is followed beyond `origins`.
    pub discovery: DiscoveryConfig,
    /// Mutual TLS: gRPC over TLS requiring client certificates, and the
    /// metainfo calls to the origins presenting ours; None: plain.
    pub tls: Option<TlsConfig>,
}

/// `[announce]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnounceConfig {
    /// Seconds between a peer's announces (Kraken's default: 3).
    pub interval_seconds: u32,
    /// Missed intervals before an entry expires.
    pub ttl_intervals: u32,
    /// Peers handed to an incomplete peer.
    pub max_peers: usize,
    /// Peers handed to a complete peer.
    pub max_peers_for_complete: usize,
    /// Origins are handed out while fewer complete peers than this are known.
    pub origins_until_complete: usize,
}

/// Which peer store backs the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In process: one tracker.
    Memory,
    /// Redis: several tracker replicas share it.
    Redis,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The backend.
    pub backend: Backend,
    /// Memory backend: most (blob, peer) entries held.
    pub max_entries: usize,
    /// Redis backend: where Redis listens, with its password if any.
    /// Excludes `redis_url_file`; neither means [`DEFAULT_REDIS_URL`].
    pub redis_url: Option<SecretUrl>,
    /// A file holding the Redis URL (a mounted Kubernetes Secret), so that
    /// the password need not be in the configuration file.
    pub redis_url_file: Option<PathBuf>,
}

/// Where Redis is looked for when neither `redis_url` nor `redis_url_file`
/// is set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

impl StoreConfig {
    /// The Redis URL to connect to, read from `redis_url_file` if set.
    pub fn redis_url(&self) -> Result<SecretUrl, ConfigError> {
        match (&self.redis_url, &self.redis_url_file) {
            (Some(_), Some(_)) => Err(ConfigError::Invalid {
                key: "store.redis_url_file",
                reason: "set only one of `redis_url` and `redis_url_file`".into(),
            }),
            (Some(url), None) => Ok(url.clone()),
            (None, Some(path)) => config_file::Secret::read(path)
                .map(|url| SecretUrl::new(url.expose()))
                .map_err(|e| ConfigError::Invalid {
                    key: "store.redis_url_file",
                    reason: format!("{} {e}", path.display()),
                }),
            (None, None) => Ok(SecretUrl::new(DEFAULT_REDIS_URL)),
        }
    }
}

/// `[metainfo]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetainfoConfig {
    /// Most bytes of metainfo cached (piece hashes dominate: 32 per piece).
    pub cache_bytes: usize,
    /// Time allowed for one origin to answer.
    pub origin_timeout_ms: u64,
    /// Origins owning each blob.
    pub replication: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 7070)),
            metrics_listen: AdminListen(None),
            announce: AnnounceConfig::default(),
            store: StoreConfig::default(),
            metainfo: MetainfoConfig::default(),
            origins: Vec::new(),
            discovery: DiscoveryConfig::default(),
            tls: None,
        }
    }
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        let policy = Policy::default();
        AnnounceConfig {
            interval_seconds: 3,
            ttl_intervals: 3,
            max_peers: policy.max_peers,
            max_peers_for_complete: policy.max_peers_for_complete,
            origins_until_complete: policy.origins_until_complete,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: Backend::Memory,
            max_entries: MemoryStore::DEFAULT_MAX_ENTRIES,
            redis_url: None,
            redis_url_file: None,
        }
    }
}

impl Default for MetainfoConfig {
    fn default() -> Self {
        MetainfoConfig {
            cache_bytes: 64 << 20,
            origin_timeout_ms: 5000,
            replication: DEFAULT_REPLICATION,
        }
    }
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed (unknown keys included).
    #[error(transparent)]
    File(#[from] FileError),
    /// A value is out of range.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key, e.g. `announce.interval_seconds`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The origins do not form a ring.
    #[error("origins")]
    Ring(#[from] RingError),
    /// The `[tls]` files do not load.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The checked configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seconds between announces, told to every announcer.
    pub interval: Duration,
    /// How long an entry lives after its announce.
    pub ttl: Duration,
    /// The handout policy.
    pub policy: Policy,
    /// Metainfo cache bound.
    pub cache_bytes: usize,
    /// Time allowed per origin call.
    pub origin_timeout: Duration,
    /// The origins: the configured ring, which the binary replaces by the
    /// one discovery follows (`shoal_discovery::ring`).
    pub ring: RingWatch,
    /// Mutual TLS, loaded; None: plain gRPC and HTTP.
    pub tls: Option<Tls>,
}

impl Config {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Ok(config_file::load(path)?)
    }

    /// Parses configuration text; the error names the offending key.
    pub fn parse(text: &str) -> Result<Self, String> {
        config_file::parse(text)
    }

    /// Checks ranges and builds the ring.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.into(),
        };
        let a = &self.announce;
        if a.interval_seconds == 0 {
            return Err(invalid("announce.interval_seconds", "must be at least 1"));
        }
        if a.ttl_intervals == 0 {
            return Err(invalid("announce.ttl_intervals", "must be at least 1"));
        }
        if a.max_peers == 0 {
            return Err(invalid("announce.max_peers", "must be at least 1"));
        }
        for origin in &self.origins {
            if !origin.http.starts_with("http://") && !origin.http.starts_with("https://") {
                return Err(invalid(
                    "origins.http",
                    "must be an http:// or https:// URL",
                ));
            }
            if self.tls.is_some() && !origin.http.starts_with("https://") {
                return Err(invalid(
                    "origins.http",
                    "must be an https:// URL: with [tls] origins serve HTTPS only",
                ));
            }
        }
        if self.tls.as_ref().is_some_and(|tls| tls.peer) {
            return Err(invalid(
                "tls.peer",
                "the tracker has no peer connections; leave it out",
            ));
        }
        let tls = self.tls.as_ref().map(Tls::load).transpose()?;
        let members = self.origins.iter().map(OriginConfig::member).collect();
        let interval = Duration::from_secs(u64::from(a.interval_seconds));
        Ok(Settings {
            interval,
            ttl: interval * a.ttl_intervals,
            policy: Policy {
                max_peers: a.max_peers,
                max_peers_for_complete: a.max_peers_for_complete,
                origins_until_complete: a.origins_until_complete,
            },
            cache_bytes: self.metainfo.cache_bytes,
            origin_timeout: Duration::from_millis(self.metainfo.origin_timeout_ms),
            ring: shoal_swarm::ring::fixed(Ring::new(members, self.metainfo.replication)?),
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config, Config::default());
        let settings = config.settings().unwrap();
        assert_eq!(settings.interval, Duration::from_secs(3));
        assert_eq!(settings.ttl, Duration::from_secs(9));
        assert_eq!(settings.policy, Policy::default());
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start()))
            .collect();
        let config = Config::parse(&example).unwrap();
        assert_eq!(config.origins.len(), 1);
        assert_eq!(config.store.backend, Backend::Memory);
        assert_eq!(config.settings().unwrap().ring.borrow().len(), 1);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[announce]\ninterval = 3\n").unwrap_err();
        assert!(err.contains("unknown field `interval`"), "{err}");
        let err = Config::parse("metrics_listen = \"localhost\"\n").unwrap_err();
        assert!(err.contains("metrics_listen"), "{err}");
        let off = Config::parse("metrics_listen = \"\"\n").unwrap();
        assert_eq!(off.metrics_listen, AdminListen(None));
        let err = Config::parse("listn = \"1.2.3.4:5\"\n").unwrap_err();
        assert!(err.contains("unknown field `listn`"), "{err}");
        let err = Config::parse(
            "[[origins]]\nname = \"a\"\nhttp = \"http://x\"\npeer = \"1.2.3.4:5\"\nport = 1\n",
        )
        .unwrap_err();
        assert!(err.contains("unknown field `port`"), "{err}");
        let err = Config::parse("[store]\nredis = \"redis://r\"\n").unwrap_err();
        assert!(err.contains("unknown field `redis`"), "{err}");
        let err = Config::parse("[discovery]\ndns_refresh = 3\n").unwrap_err();
        assert!(err.contains("unknown field `dns_refresh`"), "{err}");
        let err = Config::parse("[discovery.kubernetes]\nservise = \"s\"\n").unwrap_err();
        assert!(err.contains("unknown field `servise`"), "{err}");
    }

    #[test]
    fn the_redis_url_comes_from_the_file_or_a_secret_file() {
        let config = Config::parse("[store]\nredis_url = \"redis://:pw@r:1\"\n").unwrap();
        assert_eq!(
            config.store.redis_url().unwrap().expose(),
            "redis://:pw@r:1"
        );
        assert_eq!(
            Config::default().store.redis_url().unwrap().expose(),
            DEFAULT_REDIS_URL
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, "redis://:s3cret@r:2\n").unwrap();
        let mut config = Config::default();
        config.store.redis_url_file = Some(path.clone());
        assert_eq!(
            config.store.redis_url().unwrap().expose(),
            "redis://:s3cret@r:2"
        );
        config.store.redis_url = Some(SecretUrl::new("redis://r:3"));
        let err = config.store.redis_url().unwrap_err().to_string();
        assert!(
            err.starts_with("store.redis_url_file: set only one"),
            "{err}"
        );
        config.store.redis_url = None;
        config.store.redis_url_file = Some(dir.path().join("missing"));
        let err = config.store.redis_url().unwrap_err().to_string();
        assert!(err.starts_with("store.redis_url_file: "), "{err}");
        assert!(err.contains("missing cannot be read"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_named() {
        let config = Config::parse("[announce]\ninterval_seconds = 0\n").unwrap();
        let err = config.settings().unwrap_err().to_string();
        assert_eq!(err, "announce.interval_seconds: must be at least 1");
        let config =
            Config::parse("[[origins]]\nname = \"a\"\nhttp = \"ftp://x\"\npeer = \"1.2.3.4:5\"\n")
                .unwrap();
        assert!(
            config
                .settings()
                .unwrap_err()
                .to_string()
                .starts_with("origins.http")
        );
    }

    #[test]
    fn peers_may_be_dns_names_and_bad_ones_are_named() {
        let config = Config::parse(
            "[[origins]]\nname = \"shoal-origin-0\"\nhttp = \"http://shoal-origin-0.h.ns.svc:8080\"\npeer = \"shoal-origin-0.h.ns.svc:7001\"\n",
        )
        .unwrap();
        let ring = config.settings().unwrap().ring.borrow().clone();
        let member = ring.members().next().unwrap();
        assert_eq!(
            member.peer.configured().to_string(),
            "shoal-origin-0.h.ns.svc:7001"
        );
        assert_eq!(member.peer.resolved(), None);
        let err =
            Config::parse("[[origins]]\nname = \"a\"\nhttp = \"http://x\"\npeer = \"a b:7\"\n")
                .unwrap_err();
        assert!(err.contains("origins.peer: \"a b:7\""), "{err}");
    }
}
