//! The admin listener's address as configured: `host:port`, or `""` to
//! serve no admin endpoints. One type for the TOML key and the flag, so
//! the agent and the tracker read it the same way.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where to serve `/metrics`, `/healthz` and `/readyz`; None = nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminListen(pub Option<SocketAddr>);

/// Why an admin address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither an IP:port address nor \"\" (disabled)")]
pub struct AdminListenError(String);

impl FromStr for AdminListen {
    type Err = AdminListenError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(AdminListen(None));
        }
        text.parse()
            .map(|addr| AdminListen(Some(addr)))
            .map_err(|_| AdminListenError(text.to_string()))
    }
}

impl fmt::Display for AdminListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => Ok(()),
        }
    }
}

impl<'de> Deserialize<'de> for AdminListen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Written back as the same text, for `--print-config`.
impl Serialize for AdminListen {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_disables_and_garbage_is_named() {
        assert_eq!("".parse(), Ok(AdminListen(None)));
        assert_eq!(
            "127.0.0.1:9102".parse(),
            Ok(AdminListen(Some(SocketAddr::from(([127, 0, 0, 1], 9102)))))
        );
        let err = "localhost:9102".parse::<AdminListen>().unwrap_err();
        assert!(err.to_string().contains("\"localhost:9102\""), "{err}");
        assert_eq!(AdminListen(None).to_string(), "");
        let toml = toml::to_string(&std::collections::BTreeMap::from([(
            "metrics_listen",
            AdminListen(Some(SocketAddr::from(([127, 0, 0, 1], 9102)))),
        )]))
        .unwrap();
        assert_eq!(toml.trim(), r#"metrics_listen = "127.0.0.1:9102""#);
    }
}
