//! The configuration every component shares: `[[origins]]` entries and the
//! `[discovery]` table.
//!
//! ```toml
//! [[origins]]
//! name = "origin-0"                  # stable: blob ownership depends on it alone
//! http = "http://10.0.0.7:8080"      # the origin's HTTP API (a DNS name is fine)
//! peer = "origin-0.origins.ns.svc:7001"  # swarm port: IP or DNS name, and port
//!
//! [discovery]
//! dns_refresh_seconds = 30           # re-resolve the peer names this often
//!
//! [discovery.kubernetes]             # absent (the default): [[origins]] only
//! service = "shoal-origin-headless"  # the origins' headless Service
//! namespace = ""                     # "" = $POD_NAMESPACE, else the client's
//! node = ""                          # agent: Node whose zone label to read;
//!                                    # "" = $NODE_NAME
//! ```

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shoal_swarm::ring::{HostPort, Member};

/// One `[[origins]]` entry, as the origin, the tracker and the agent read it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// Stable name; blob ownership depends on it alone.
    pub name: String,
    /// Base URL of the origin's HTTP API; its host may be a DNS name, which
    /// the HTTP client resolves per connection.
    pub http: String,
    /// The origin's swarm address: an IP or a DNS name, and a port. A name
    /// is resolved by discovery and re-resolved every
    /// `discovery.dns_refresh_seconds`.
    #[serde(deserialize_with = "peer_address", serialize_with = "display")]
    pub peer: HostPort,
}

impl OriginConfig {
    /// The ring member this entry names; `http` without a trailing slash.
    /// The caller has checked `http` (each component names its own key).
    pub fn member(&self) -> Member {
        Member {
            name: self.name.clone(),
            http: self.http.trim_end_matches('/').to_string(),
            peer: self.peer.clone().into(),
        }
    }
}

/// Parses `peer` with an error that names the key: serde's own would only
/// say "invalid value".
fn peer_address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HostPort, D::Error> {
    let raw = String::deserialize(deserializer)?;
    raw.parse()
        .map_err(|e| serde::de::Error::custom(format!("origins.peer: {e}")))
}

/// Writes `peer` back as the `host:port` text it was parsed from.
fn display<S: Serializer>(peer: &HostPort, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(peer)
}

/// `[discovery]`: how a component learns the origin ring beyond its
/// `[[origins]]` entries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Seconds between lookups of the `[[origins]]` peer names. A failed
    /// lookup is retried sooner (from 1 s, doubling up to this).
    pub dns_refresh_seconds: u64,
    /// Watch the origins through the Kubernetes API; None keeps the static
    /// `[[origins]]`.
    pub kubernetes: Option<KubernetesConfig>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            dns_refresh_seconds: 30,
            kubernetes: None,
        }
    }
}

impl DiscoveryConfig {
    /// The interval between lookups of peer names.
    pub fn dns_refresh(&self) -> Duration {
        Duration::from_secs(self.dns_refresh_seconds.max(1))
    }
}

/// `[discovery.kubernetes]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// The origins' headless Service, whose EndpointSlices list the ring's
    /// members; empty keeps the static `[[origins]]` (an agent may want only
    /// its zone).
    pub service: String,
    /// The Service's namespace; empty: `$POD_NAMESPACE`, else the client's
    /// default namespace (the pod's own, in a cluster).
    pub namespace: String,
    /// The Node whose `topology.kubernetes.io/zone` label is the agent's
    /// zone; empty: `$NODE_NAME`; neither: no zone lookup.
    pub node: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        origins: Vec<OriginConfig>,
        #[serde(default)]
        discovery: DiscoveryConfig,
    }

    #[test]
    fn the_documented_example_parses() {
        let example: String = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start()))
            .collect();
        let file: File = toml::from_str(&example).unwrap();
        let member = file.origins[0].member();
        assert_eq!(member.peer.configured().host(), "origin-0.origins.ns.svc");
        assert_eq!(member.peer.resolved(), None);
        let kubernetes = file.discovery.kubernetes.clone().unwrap();
        assert_eq!(kubernetes.service, "shoal-origin-headless");
        assert_eq!(file.discovery.dns_refresh(), Duration::from_secs(30));
    }

    #[test]
    fn off_by_default_and_ip_peers_still_parse() {
        let file: File = toml::from_str(
            "[[origins]]\nname = \"a\"\nhttp = \"http://x/\"\npeer = \"10.0.0.7:7001\"\n",
        )
        .unwrap();
        assert_eq!(file.discovery, DiscoveryConfig::default());
        let member = file.origins[0].member();
        assert_eq!(member.http, "http://x");
        assert_eq!(
            member.peer.resolved(),
            Some("10.0.0.7:7001".parse().unwrap())
        );
    }

    #[test]
    fn a_bad_peer_names_the_key() {
        let err = toml::from_str::<File>(
            "[[origins]]\nname = \"a\"\nhttp = \"http://x\"\npeer = \"origin_0:7001\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("origins.peer: \"origin_0:7001\""), "{err}");
        let err = toml::from_str::<File>("[discovery.kubernetes]\nservce = \"s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `servce`"), "{err}");
    }
}
