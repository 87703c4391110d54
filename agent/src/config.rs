//! The agent's configuration: one TOML file (every key optional, unknown
//! keys refused by name so that a typo is an error), overridden by
//! `SHOAL_AGENT_*` environment variables, overridden by flags, then checked
//! into [`Settings`].
//!
//! ```toml
//! listen = "127.0.0.1:5050"          # registry API (keep it on loopback)
//! metrics_listen = "0.0.0.0:9102"    # /metrics, /healthz, /readyz; "" (default) = off
//! peer_listen = "0.0.0.0:7002"       # swarm (peer protocol) port
//! data_dir = "/var/lib/shoal/agent"  # blob cache; survives restarts
//! cache_bytes = 21474836480          # cache quota, LRU eviction; 0 = unlimited
//! tracker = "http://127.0.0.1:7070"  # tracker gRPC URL; empty = origins only
//! default_registry = "docker.io"     # upstream when a request has no ?ns=;
//!                                    # "" = the origins' own default upstream
//! zone = ""                          # failure domain announced to the tracker
//! node_name = ""                     # name in prefetch jobs; "" = $NODE_NAME, else the host name
//! upload_limit = 0                   # bytes/s to peers; 0 = unlimited
//! download_limit = 0                 # bytes/s from peers; 0 = unlimited
//! small_blob_bytes = 1048576         # blobs below this come from an origin
//! stall_timeout_ms = 10000           # no swarm progress this long: origin fallback
//! metainfo_wait_seconds = 300        # bound on waiting while an origin fetches
//! origin_timeout_ms = 30000          # connect/read timeout of origin requests
//! replication = 2                    # origins owning each blob (as the tracker)
//!
//! [labels]                          # matched by `shoal prefetch --selector`;
//! pool = "gpu"                       # `zone` is added from `zone` unless set here
//!
//! [[origins]]
//! name = "origin-0"                  # stable: blob ownership depends on it alone
//! http = "http://10.0.0.7:8080"      # the origin's HTTP API
//! peer = "10.0.0.7:7001"             # the origin's swarm port (IP or DNS name)
//!
//! [discovery]                        # see shoal_discovery::config
//! dns_refresh_seconds = 30
//! # In Kubernetes: follow the origins' EndpointSlices, and with `zone = ""`
//! # announce the zone label of the Node $NODE_NAME:
//! # kubernetes = { service = "shoal-origin-headless" }
//! ```
//!
//! An optional `[tls]` table ([`TlsConfig`]) turns on mutual TLS for the
//! tracker and origin calls (`tracker` and `[[origins]] http` must then be
//! `https://`) and, with `peer = true`, the peer connections. The registry
//! API stays plain HTTP on loopback, where docker and containerd expect it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
pub use shoal_discovery::{DiscoveryConfig, OriginConfig};
use shoal_registry::reference::parse_namespace;
use shoal_swarm::config_file::{self, FileError};
use shoal_swarm::ring::{DEFAULT_REPLICATION, HostPort, Ring, RingError};
use shoal_swarm::tls::{Tls, TlsConfig, TlsError};
use shoal_telemetry::AdminListen;

/// The configuration file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Registry API address.
    pub listen: SocketAddr,
    /// Address of the admin endpoints (metrics, health), served by the
    /// binary apart from the registry API; "" = none, the default: a fixed
    /// port on every address is for deployments to choose (the chart sets
    /// it), not something every agent on a host or in a test opens.
    pub metrics_listen: AdminListen,
    /// Peer protocol address.
    pub peer_listen: SocketAddr,
    /// Blob cache directory.
    pub data_dir: PathBuf,
    /// Cache quota in bytes; 0 means unlimited.
    pub cache_bytes: u64,
    /// Tracker gRPC URL; empty means none (every blob from the origins).
    pub tracker: String,
    /// Upstream registry for requests without `?ns=`.
    pub default_registry: String,
    /// Zone announced to the tracker; empty with `[discovery.kubernetes]`:
    /// the Node's zone label.
    pub zone: String,
    /// The node's name in prefetch jobs; empty: `$NODE_NAME`, else the
    /// host name.
    pub node_name: String,
    /// Labels prefetch selectors match.
    pub labels: BTreeMap<String, String>,
    /// Upload cap in bytes per second; 0 means unlimited.
    pub upload_limit: u64,
    /// Download cap in bytes per second; 0 means unlimited.
    pub download_limit: u64,
    /// Blobs shorter than this skip the swarm.
    pub small_blob_bytes: u64,
    /// No new verified piece for this long sends the rest to the origins.
    pub stall_timeout_ms: u64,
    /// Longest wait for an origin still pulling a blob upstream.
    pub metainfo_wait_seconds: u64,
    /// Connect and read timeout of one origin request.
    pub origin_timeout_ms: u64,
    /// Origins owning each blob.
    pub replication: usize,
    /// The origins, in any order.
    pub origins: Vec<OriginConfig>,
    /// How the ring (and the zone) are discovered beyond `origins`.
    pub discovery: DiscoveryConfig,
    /// Mutual TLS to the tracker, the origins and, with `peer`, the peers;
    /// None: plain.
    pub tls: Option<TlsConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 5050)),
            metrics_listen: AdminListen(None),
            peer_listen: SocketAddr::from(([0, 0, 0, 0], 7002)),
            data_dir: PathBuf::from("/var/lib/shoal/agent"),
            cache_bytes: 20 << 30,
            tracker: String::new(),
            default_registry: "docker.io".into(),
            zone: String::new(),
            node_name: String::new(),
            labels: BTreeMap::new(),
            upload_limit: 0,
            download_limit: 0,
            small_blob_bytes: 1 << 20,
            stall_timeout_ms: 10_000,
            metainfo_wait_seconds: 300,
            origin_timeout_ms: 30_000,
            replication: DEFAULT_REPLICATION,
            origins: Vec::new(),
            discovery: DiscoveryConfig::default(),
            tls: None,
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
        /// The key, e.g. `tracker`.
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

/// The checked configuration the agent runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Registry API address.
    pub listen: SocketAddr,
    /// Peer protocol address.
    pub peer_listen: SocketAddr,
    /// Blob cache directory.
    pub data_dir: PathBuf,
    /// Cache quota; 0 means unlimited.
    pub cache_bytes: u64,
    /// Tracker URL, if any.
    pub tracker: Option<String>,
    /// Upstream for requests without `?ns=` (a checked host); None leaves
    /// the choice to the origins' default upstream.
    pub default_registry: Option<String>,
    /// Zone announced to the tracker.
    pub zone: String,
    /// The node's name in prefetch jobs (may still be empty: no host name).
    pub node_name: String,
    /// The node's labels (the zone's not yet added: it may come from the
    /// Node object at start).
    pub labels: BTreeMap<String, String>,
    /// Upload cap; 0 means unlimited.
    pub upload_limit: u64,
    /// Download cap; 0 means unlimited.
    pub download_limit: u64,
    /// Blobs shorter than this skip the swarm.
    pub small_blob_bytes: u64,
    /// No swarm progress for this long starts the origin fallback.
    pub stall_timeout: Duration,
    /// Longest wait for an origin still pulling a blob upstream.
    pub metainfo_wait: Duration,
    /// Connect and read timeout of one origin request.
    pub origin_timeout: Duration,
    /// The configured origins; [`Agent::start`](crate::Agent::start)
    /// follows them as `discovery` says.
    pub ring: Ring,
    /// Ring and zone discovery.
    pub discovery: DiscoveryConfig,
    /// Mutual TLS, loaded; None: plain.
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

    /// Checks values and builds the ring.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.into(),
        };
        let tracker = self.tracker.trim();
        if !tracker.is_empty() && !is_http_url(tracker) {
            return Err(invalid("tracker", "must be an http:// or https:// URL"));
        }
        let tls_on = self.tls.is_some();
        if tls_on && !tracker.is_empty() {
            if !tracker.starts_with("https://") {
                return Err(invalid("tracker", "must be an https:// URL with [tls]"));
            }
            crate::tls_channel::server_name(tracker).map_err(|e| invalid("tracker", &e))?;
        }
        let default_registry = match self.default_registry.trim() {
            "" => None,
            raw => Some(
                parse_namespace(raw).map_err(|e| invalid("default_registry", &e.to_string()))?,
            ),
        };
        if self.zone.len() > 63 {
            return Err(invalid("zone", "longer than 63 bytes"));
        }
        if self.stall_timeout_ms == 0 {
            return Err(invalid("stall_timeout_ms", "must be at least 1"));
        }
        if self.origin_timeout_ms == 0 {
            return Err(invalid("origin_timeout_ms", "must be at least 1"));
        }
        let discovers_origins = self
            .discovery
            .kubernetes
            .as_ref()
            .is_some_and(|k| !k.service.is_empty());
        if tracker.is_empty() && self.origins.is_empty() && !discovers_origins {
            return Err(invalid(
                "origins",
                "at least one origin is needed when no tracker is configured",
            ));
        }
        let mut members = Vec::with_capacity(self.origins.len());
        for origin in &self.origins {
            if !is_http_url(&origin.http) {
                return Err(invalid(
                    "origins.http",
                    "must be an http:// or https:// URL",
                ));
            }
            if origin.name.is_empty() {
                return Err(invalid("origins.name", "must not be empty"));
            }
            if tls_on && !origin.http.starts_with("https://") {
                return Err(invalid(
                    "origins.http",
                    "must be an https:// URL with [tls]",
                ));
            }
            members.push(origin.member());
        }
        Ok(Settings {
            listen: self.listen,
            peer_listen: self.peer_listen,
            data_dir: self.data_dir.clone(),
            cache_bytes: self.cache_bytes,
            tracker: (!tracker.is_empty()).then(|| tracker.trim_end_matches('/').to_string()),
            default_registry,
            zone: self.zone.clone(),
            node_name: node_name(&self.node_name),
            labels: self.labels.clone(),
            upload_limit: self.upload_limit,
            download_limit: self.download_limit,
            small_blob_bytes: self.small_blob_bytes,
            stall_timeout: Duration::from_millis(self.stall_timeout_ms),
            metainfo_wait: Duration::from_secs(self.metainfo_wait_seconds),
            origin_timeout: Duration::from_millis(self.origin_timeout_ms),
            ring: Ring::new(members, self.replication)?,
            discovery: self.discovery.clone(),
            tls: self.tls.as_ref().map(Tls::load).transpose()?,
        })
    }
}

/// Parses the `--origin` flag: `name=http://host:port,peer=host:port`.
pub fn parse_origin_flag(raw: &str) -> Result<OriginConfig, String> {
    let (head, peer) = raw
        .rsplit_once(",peer=")
        .ok_or("--origin: expected name=http://host:port,peer=host:port")?;
    let (name, http) = head
        .split_once('=')
        .ok_or("--origin: expected name=http://host:port before ,peer=")?;
    if name.is_empty() {
        return Err("--origin: empty name".into());
    }
    if !is_http_url(http) {
        return Err(format!("--origin {name}: {http:?} is not an http:// URL"));
    }
    let peer = peer
        .parse::<HostPort>()
        .map_err(|e| format!("--origin {name}: peer {e}"))?;
    Ok(OriginConfig {
        name: name.to_string(),
        http: http.to_string(),
        peer,
    })
}

/// The configured name, else `$NODE_NAME` (set by the chart from the
/// pod's node), else the host name; lowercased, as node names are.
fn node_name(configured: &str) -> String {
    let name = match configured.trim() {
        "" => std::env::var("NODE_NAME")
            .ok()
            .filter(|n| !n.is_empty())
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .unwrap_or_default(),
        name => name.to_string(),
    };
    name.trim().to_ascii_lowercase()
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let settings = config.settings().unwrap();
        assert_eq!(settings.ring.len(), 1);
        assert_eq!(settings.tracker.as_deref(), Some("http://127.0.0.1:7070"));
        assert_eq!(settings.listen, Config::default().listen);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("listn = \"1.2.3.4:5\"\n").unwrap_err();
        assert!(err.contains("unknown field `listn`"), "{err}");
        let err = Config::parse(
            "[[origins]]\nname = \"a\"\nhttp = \"http://x\"\npeer = \"1.2.3.4:5\"\nport = 1\n",
        )
        .unwrap_err();
        assert!(err.contains("unknown field `port`"), "{err}");
        let err = Config::parse("[discovery]\ndns_refresh = 3\n").unwrap_err();
        assert!(err.contains("unknown field `dns_refresh`"), "{err}");
        let err = Config::parse("[discovery.kubernetes]\nservise = \"s\"\n").unwrap_err();
        assert!(err.contains("unknown field `servise`"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let check = |text: &str, key: &str| {
            let err = Config::parse(text)
                .unwrap()
                .settings()
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(key), "{text}: {err}");
        };
        check("tracker = \"grpc://x\"\n", "tracker");
        check(
            "tracker = \"http://t\"\ndefault_registry = \"a/b\"\n",
            "default_registry",
        );
        check(
            "tracker = \"http://t\"\nstall_timeout_ms = 0\n",
            "stall_timeout_ms",
        );
        check("", "origins");
        check(
            "[[origins]]\nname = \"a\"\nhttp = \"ftp://x\"\npeer = \"1.2.3.4:5\"\n",
            "origins.http",
        );
    }

    #[test]
    fn origin_flag_parses() {
        let origin = parse_origin_flag("o-1=http://127.0.0.1:8080,peer=127.0.0.1:7001").unwrap();
        assert_eq!(origin.name, "o-1");
        assert_eq!(origin.http, "http://127.0.0.1:8080");
        assert_eq!(origin.peer, "127.0.0.1:7001".parse().unwrap());
        for bad in [
            "",
            "o=http://x",
            "=http://x,peer=1.2.3.4:5",
            "o=ftp://x,peer=1.2.3.4:5",
            "o=http://x,peer=nope",
        ] {
            assert!(parse_origin_flag(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn kubernetes_discovery_replaces_static_origins() {
        let config = Config::parse(
            "[discovery.kubernetes]\nservice = \"shoal-origin-headless\"\nnode = \"node-b\"\n",
        )
        .unwrap();
        let settings = config.settings().unwrap();
        assert!(settings.ring.is_empty());
        let kubernetes = settings.discovery.kubernetes.unwrap();
        assert_eq!(kubernetes.node, "node-b");
        let origin = parse_origin_flag("o=http://o.svc:8080,peer=o.svc:7001").unwrap();
        assert_eq!(origin.peer.to_string(), "o.svc:7001");
        let err = parse_origin_flag("o=http://x,peer=o_1:7").unwrap_err();
        assert!(err.contains("o_1:7"), "{err}");
    }
}
