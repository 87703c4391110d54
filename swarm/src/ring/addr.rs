//! A ring member's peer address: `host:port` as configured or discovered,
//! and the socket address it resolves to.
//!
//! In Kubernetes the origins are named by stable DNS names
//! (`shoal-origin-0.shoal-origin-headless.ns.svc:7001`) whose IPs change
//! when a pod moves, so the configuration keeps the name and whoever hands
//! the address out (the tracker) resolves it, again and again.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// A validated `host:port`: an IPv4 literal, a bracketed IPv6 literal, or a
/// DNS name, with a port from 1 to 65535.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    host: String,
    port: u16,
}

/// Why a `host:port` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    /// No `:port` at the end.
    #[error("{0:?} is not host:port")]
    MissingPort(String),
    /// The port is not a number from 1 to 65535.
    #[error("{0:?}: the port must be a number from 1 to 65535")]
    BadPort(String),
    /// The host is neither an IP literal nor a valid DNS name.
    #[error("{0:?}: the host is neither an IP address nor a DNS name")]
    BadHost(String),
}

impl HostPort {
    /// The host: an IP literal (IPv6 without brackets) or a DNS name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket address when the host is an IP literal: such an address
    /// needs no resolution.
    pub fn literal(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }
}

impl From<SocketAddr> for HostPort {
    fn from(addr: SocketAddr) -> Self {
        HostPort {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl FromStr for HostPort {
    type Err = HostPortError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if let Ok(addr) = raw.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return Err(HostPortError::BadPort(raw.into()));
            }
            return Ok(addr.into());
        }
        let (host, port) = raw
            .rsplit_once(':')
            .ok_or_else(|| HostPortError::MissingPort(raw.into()))?;
        let port = match port.parse::<u16>() {
            Ok(number) if number > 0 && port.bytes().all(|b| b.is_ascii_digit()) => number,
            _ => return Err(HostPortError::BadPort(raw.into())),
        };
        // An IP literal was handled above: what is left must be a DNS name
        // (a bracketed or bare IPv6 with a bad port fails here too).
        if !is_dns_name(host) || host.parse::<IpAddr>().is_ok() {
            return Err(HostPortError::BadHost(raw.into()));
        }
        Ok(HostPort {
            host: host.trim_end_matches('.').to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner
/// hyphens, 1 to 63 bytes each, 253 in all; one trailing dot allowed.
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A member's peer address: the configured `host:port` and, once known,
/// the socket address it resolves to. An IP literal is resolved from the
/// start; a DNS name until its first successful lookup is not, and is then
/// not handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    configured: HostPort,
    resolved: Option<SocketAddr>,
}

impl PeerAddr {
    /// The address as configured or discovered.
    pub fn configured(&self) -> &HostPort {
        &self.configured
    }

    /// Where to connect, if known.
    pub fn resolved(&self) -> Option<SocketAddr> {
        self.resolved
    }

    /// The same configured address, resolved to `addr` (by a lookup of its
    /// name); the ring is then rebuilt with it.
    #[must_use]
    pub fn with_resolved(&self, addr: SocketAddr) -> Self {
        PeerAddr {
            configured: self.configured.clone(),
            resolved: Some(addr),
        }
    }

    /// Whether the configured host is a name that needs a lookup.
    pub fn needs_lookup(&self) -> bool {
        self.configured.literal().is_none()
    }
}

impl From<HostPort> for PeerAddr {
    fn from(configured: HostPort) -> Self {
        PeerAddr {
            resolved: configured.literal(),
            configured,
        }
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        HostPort::from(addr).into()
    }
}

impl FromStr for PeerAddr {
    type Err = HostPortError;

    /// Parses `host:port`; resolved already when the host is an IP.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(raw.parse::<HostPort>()?.into())
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.resolved {
            Some(addr) if self.needs_lookup() => write!(f, "{} ({addr})", self.configured),
            _ => self.configured.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn literals_and_names_parse() {
        let v4: HostPort = "10.0.0.7:7001".parse().unwrap();
        assert_eq!(v4.literal(), Some("10.0.0.7:7001".parse().unwrap()));
        let v6: HostPort = "[fd00::7]:7001".parse().unwrap();
        assert_eq!(v6.literal(), Some("[fd00::7]:7001".parse().unwrap()));
        assert_eq!(v6.to_string(), "[fd00::7]:7001");
        let name: HostPort = "Shoal-Origin-0.shoal-origin.ns.svc.:7001".parse().unwrap();
        assert_eq!(name.host(), "shoal-origin-0.shoal-origin.ns.svc");
        assert_eq!(name.port(), 7001);
        assert_eq!(name.literal(), None);
        assert_eq!(name.to_string(), "shoal-origin-0.shoal-origin.ns.svc:7001");
    }

    #[test]
    fn bad_addresses_say_why() {
        let err = |raw: &str| raw.parse::<HostPort>().unwrap_err();
        assert_eq!(
            err("origin-0"),
            HostPortError::MissingPort("origin-0".into())
        );
        for raw in ["o:0", "o:65536", "o:", "o:+1", "1.2.3.4:0", "[::1]:x"] {
            assert!(
                matches!(
                    err(raw),
                    HostPortError::BadPort(_) | HostPortError::BadHost(_)
                ),
                "{raw}"
            );
        }
        for raw in [
            ":7",
            "-a.b:7",
            "a..b:7",
            "a_b:7",
            "a b:7",
            "::1:7",
            "http://a:7",
        ] {
            assert!(matches!(err(raw), HostPortError::BadHost(_)), "{raw}");
        }
        assert!(
            err(&format!("{}:7", "a".repeat(64)))
                .to_string()
                .contains("DNS name")
        );
    }

    #[test]
    fn a_literal_is_resolved_and_a_name_is_not() {
        let addr: SocketAddr = "10.0.0.7:7001".parse().unwrap();
        assert_eq!(PeerAddr::from(addr).resolved(), Some(addr));
        let named = PeerAddr::from("o.svc:7001".parse::<HostPort>().unwrap());
        assert!(named.needs_lookup());
        assert_eq!(named.resolved(), None);
        let looked_up = named.with_resolved(addr);
        assert_eq!(looked_up.resolved(), Some(addr));
        assert_eq!(looked_up.to_string(), "o.svc:7001 (10.0.0.7:7001)");
    }
}
