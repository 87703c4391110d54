//! The origin's configuration: one TOML file (every key optional but the
//! upstreams, unknown keys refused by name so that a typo is an error),
//! overridden by `SHOAL_ORIGIN_*` environment variables, overridden by
//! flags, then checked into [`Settings`]. Upstream passwords can come from
//! the file, a separate file (`password_file`) or any environment variable
//! (`password_env`).
//!
//! ```toml
//! name = "origin-0"                  # this origin's ring member name
//! listen = "0.0.0.0:8080"            # HTTP API (registry API + internal)
//! peer_listen = "0.0.0.0:7001"       # swarm (peer protocol) port
//! data_dir = "/var/lib/shoal/origin" # blob store; survives restarts
//! cache_bytes = 0                    # store quota, LRU eviction; 0 = unlimited
//! upload_limit = 0                   # bytes/s to peers; 0 = unlimited
//! default_registry = "docker.io"     # upstream when a request has no ?ns=
//!                                    # ("" = the only upstream, if just one)
//! replication = 2                    # origins owning each blob
//! tag_ttl_seconds = 60               # how long a tag's resolution is reused
//! manifest_cache_bytes = 67108864    # bound on manifests cached by digest
//! fetch_wait_ms = 1000               # a cold request waits this long for the
//!                                    # fetch before answering 202
//!
//! [[origins]]                        # the cluster; must name this origin
//! name = "origin-0"
//! http = "http://10.0.0.7:8080"
//! peer = "10.0.0.7:7001"             # IP or DNS name, and port
//!
//! [discovery]                        # see shoal_discovery::config
//! dns_refresh_seconds = 30
//! # In Kubernetes, follow the origins' headless Service instead:
//! # kubernetes = { service = "shoal-origin-headless" }
//!
//! [upstreams."docker.io"]
//! endpoint = "registry-1.docker.io"
//! username = "mirror"
//! password_env = "DOCKER_IO_PASSWORD"
//!
//! [upstreams."shoal.local"]
//! layout = "/srv/images"
//! ```
//!
//! An optional `[tls]` table ([`TlsConfig`]) turns on mutual TLS: the HTTP
//! API serves HTTPS only and requires client certificates, the origin's
//! requests to other origins present its certificate, `[[origins]] http`
//! must be `https://`, and with `peer = true` the peer connections use TLS.

mod upstream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_registry::reference::parse_namespace;
use shoal_swarm::config_file::{self, FileError};
use shoal_swarm::ring::{DEFAULT_REPLICATION, Ring, RingError};
use shoal_swarm::tls::{Tls, TlsConfig, TlsError};

pub use shoal_discovery::{DiscoveryConfig, OriginConfig};
pub use shoal_swarm::config_file::Secret;
pub use upstream::{Credentials, RegistrySpec, UpstreamConfig, UpstreamSpec};

/// The configuration file's contents.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This origin's name in the ring.
    pub name: String,
    /// HTTP API address.
    pub listen: SocketAddr,
    /// Peer protocol address.
    pub peer_listen: SocketAddr,
    /// Blob store directory.
    pub data_dir: PathBuf,
    /// Store quota in bytes; 0 means unlimited.
    pub cache_bytes: u64,
    /// Upload cap to peers in bytes per second; 0 means unlimited.
    pub upload_limit: u64,
    /// Upstream namespace for requests without `?ns=`.
    pub default_registry: String,
    /// Origins owning each blob.
    pub replication: usize,
    /// Seconds a tag's resolution to a digest is reused.
    pub tag_ttl_seconds: u64,
    /// Bound on the bytes of manifests cached by digest.
    pub manifest_cache_bytes: u64,
    /// How long a request for a blob not held yet waits for the fetch to
    /// finish before answering 202.
    pub fetch_wait_ms: u64,
    /// The cluster's origins, this one included; empty = a lone origin.
    pub origins: Vec<OriginConfig>,
    /// Upstreams by namespace.
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// How the ring is followed beyond `origins`.
    pub discovery: DiscoveryConfig,
    /// Mutual TLS for the HTTP API, the origin's own client and, with
    /// `peer`, the peer connections; None: plain.
    pub tls: Option<TlsConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "origin-0".into(),
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            peer_listen: SocketAddr::from(([0, 0, 0, 0], 7001)),
            data_dir: PathBuf::from("/var/lib/shoal/origin"),
            cache_bytes: 0,
            upload_limit: 0,
            default_registry: String::new(),
            replication: DEFAULT_REPLICATION,
            tag_ttl_seconds: 60,
            manifest_cache_bytes: 64 << 20,
            fetch_wait_ms: 1000,
            origins: Vec::new(),
            upstreams: BTreeMap::new(),
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
        /// The key, e.g. `origins`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An `[upstreams."<namespace>"]` table is inconsistent.
    #[error("upstreams.{namespace:?}: {reason}")]
    Upstream {
        /// The table's namespace.
        namespace: String,
        /// What is wrong.
        reason: String,
    },
    /// A file named by an upstream table could not be read.
    #[error("upstreams.{namespace:?}: reading {key} {}", path.display())]
    UpstreamFile {
        /// The table's namespace.
        namespace: String,
        /// The key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The origins do not form a ring.
    #[error("origins")]
    Ring(#[from] RingError),
    /// The `[tls]` files do not load.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The checked configuration an origin runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This origin's ring member name.
    pub name: String,
    /// HTTP API address.
    pub listen: SocketAddr,
    /// Peer protocol address.
    pub peer_listen: SocketAddr,
    /// Blob store directory.
    pub data_dir: PathBuf,
    /// Store quota; 0 means unlimited.
    pub cache_bytes: u64,
    /// Upload cap; 0 means unlimited.
    pub upload_limit: u64,
    /// Namespace for requests without `?ns=`; None refuses such requests.
    pub default_registry: Option<String>,
    /// How long a tag's resolution is reused; zero asks upstream every time.
    pub tag_ttl: Duration,
    /// Bound on the bytes of manifests cached by digest.
    pub manifest_cache_bytes: u64,
    /// How long a cold blob request waits for its fetch before 202.
    pub fetch_wait: Duration,
    /// The configured cluster; None when this origin alone owns every
    /// blob. [`Origin::start`](crate::Origin::start) follows it as
    /// `discovery` says.
    pub ring: Option<Ring>,
    /// Ring discovery.
    pub discovery: DiscoveryConfig,
    /// Checked upstreams by (lowercase) namespace.
    pub upstreams: BTreeMap<String, UpstreamSpec>,
    /// Mutual TLS, loaded; None: plain HTTP and peer connections.
    pub tls: Option<Tls>,
}

impl Config {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Ok(config_file::load(path)?)
    }

    /// Parses configuration text; the error names the offending key.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        config_file::parse(text).map_err(|message| {
            FileError::Parse {
                path: "<text>".into(),
                message,
            }
            .into()
        })
    }

    /// Checks values, reads the files upstreams name, and builds the ring.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.into(),
        };
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        let mut upstreams = BTreeMap::new();
        for (namespace, table) in &self.upstreams {
            let checked = parse_namespace(namespace).map_err(|e| ConfigError::Upstream {
                namespace: namespace.clone(),
                reason: e.to_string(),
            })?;
            upstreams.insert(checked, table.resolve(namespace)?);
        }
        if upstreams.is_empty() {
            return Err(invalid(
                "upstreams",
                "at least one [upstreams.\"<namespace>\"] table is needed",
            ));
        }
        let default_registry = match self.default_registry.trim() {
            "" if upstreams.len() == 1 => upstreams.keys().next().cloned(),
            "" => None,
            raw => {
                let ns = parse_namespace(raw)
                    .map_err(|e| invalid("default_registry", &e.to_string()))?;
                if !upstreams.contains_key(&ns) {
                    return Err(invalid("default_registry", "names no [upstreams] table"));
                }
                Some(ns)
            }
        };
        let ring = self.ring()?;
        let tls = self.tls.as_ref().map(Tls::load).transpose()?;
        Ok(Settings {
            tls,
            name: self.name.clone(),
            listen: self.listen,
            peer_listen: self.peer_listen,
            data_dir: self.data_dir.clone(),
            cache_bytes: self.cache_bytes,
            upload_limit: self.upload_limit,
            default_registry,
            tag_ttl: Duration::from_secs(self.tag_ttl_seconds),
            manifest_cache_bytes: self.manifest_cache_bytes,
            fetch_wait: Duration::from_millis(self.fetch_wait_ms),
            ring,
            upstreams,
            discovery: self.discovery.clone(),
        })
    }

    fn ring(&self) -> Result<Option<Ring>, ConfigError> {
        if self.origins.is_empty() {
            if self.replication == 0 {
                return Err(RingError::ZeroReplication.into());
            }
            // Discovered members join later; until then, alone.
            let discovered = self
                .discovery
                .kubernetes
                .as_ref()
                .is_some_and(|k| !k.service.is_empty());
            return Ok(discovered
                .then(|| Ring::new(Vec::new(), self.replication))
                .transpose()?);
        }
        let mut members = Vec::with_capacity(self.origins.len());
        for origin in &self.origins {
            if !(origin.http.starts_with("http://") || origin.http.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    key: "origins.http",
                    reason: format!("{:?} is not an http:// or https:// URL", origin.http),
                });
            }
            if self.tls.is_some() && !origin.http.starts_with("https://") {
                return Err(ConfigError::Invalid {
                    key: "origins.http",
                    reason: format!("{:?}: with [tls] origins serve https:// only", origin.http),
                });
            }
            members.push(origin.member());
        }
        if !members.iter().any(|m| m.name == self.name) {
            return Err(ConfigError::Invalid {
                key: "origins",
                reason: format!("must include this origin ({:?})", self.name),
            });
        }
        Ok(Some(Ring::new(members, self.replication)?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("mod.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start()))
            .collect::<String>()
            .replace("password_env = \"DOCKER_IO_PASSWORD\"", "password = \"x\"");
        let settings = Config::parse(&example).unwrap().settings().unwrap();
        assert_eq!(settings.ring.as_ref().map(Ring::len), Some(1));
        assert_eq!(settings.default_registry.as_deref(), Some("docker.io"));
        assert_eq!(settings.upstreams.len(), 2);
        assert_eq!(settings.tag_ttl, Duration::from_secs(60));
        let debug = format!("{settings:?}");
        assert!(!debug.contains("password = \"x\""), "{debug}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("listn = \"1.2.3.4:5\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `listn`"), "{err}");
        let err = Config::parse("[upstreams.\"a\"]\nlayut = \"/x\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `layut`"), "{err}");
        let err = Config::parse(
            "[[origins]]\nname = \"a\"\nhttp = \"http://x\"\npeer = \"1.2.3.4:5\"\npeer_port = 1\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `peer_port`"),
            "{err}"
        );
        let err = Config::parse("[discovery.kubernetes]\nservise = \"s\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `servise`"), "{err}");
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
        let layout = "[upstreams.\"l\"]\nlayout = \"/x\"\n";
        check("", "upstreams");
        check(&format!("name = \"\"\n{layout}"), "name");
        check(
            &format!("default_registry = \"other\"\n{layout}"),
            "default_registry",
        );
        check(
            &format!(
                "[[origins]]\nname = \"b\"\nhttp = \"http://x\"\npeer = \"1.2.3.4:5\"\n{layout}"
            ),
            "origins",
        );
        check(
            &format!(
                "[[origins]]\nname = \"origin-0\"\nhttp = \"x\"\npeer = \"1.2.3.4:5\"\n{layout}"
            ),
            "origins.http",
        );
        check(
            "[upstreams.\"a/b\"]\nlayout = \"/x\"\n",
            "upstreams.\"a/b\"",
        );
    }

    #[test]
    fn a_lone_upstream_is_the_default() {
        let settings = Config::parse("[upstreams.\"Shoal.Local\"]\nlayout = \"/x\"\n")
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(settings.default_registry.as_deref(), Some("shoal.local"));
        assert!(settings.ring.is_none());
    }

    #[test]
    fn peers_may_be_dns_names_and_discovery_may_bring_the_ring() {
        let layout = "[upstreams.\"l\"]\nlayout = \"/x\"\n";
        let settings = Config::parse(&format!(
            "name = \"shoal-origin-0\"\n[[origins]]\nname = \"shoal-origin-0\"\n\
             http = \"http://shoal-origin-0.h.ns.svc:8080\"\npeer = \"shoal-origin-0.h.ns.svc:7001\"\n{layout}"
        ))
        .unwrap()
        .settings()
        .unwrap();
        let ring = settings.ring.unwrap();
        let member = ring.members().next().unwrap();
        assert_eq!(member.peer.configured().host(), "shoal-origin-0.h.ns.svc");
        let settings = Config::parse(&format!(
            "[discovery.kubernetes]\nservice = \"shoal-origin-headless\"\n{layout}"
        ))
        .unwrap()
        .settings()
        .unwrap();
        assert_eq!(settings.ring.map(|r| r.len()), Some(0));
        let err = Config::parse(&format!(
            "[[origins]]\nname = \"origin-0\"\nhttp = \"http://x\"\npeer = \"x:0\"\n{layout}"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("origins.peer: \"x:0\""), "{err}");
    }
}
