//! Names, tags, digests and registry hosts as they arrive in registry API
//! paths and query strings, checked against the OCI distribution grammar
//! before anything else sees them.
//!
//! Pure functions with no I/O: the origin uses them on every request and the
//! agent reuses them for its own registry API. Parsing works on the raw,
//! still percent-encoded request path: a name may not contain `%`, so an
//! encoded slash or dot (`%2f`, `%2e`) can never turn into a path component,
//! and `.`/`..` components fail the component grammar.

use std::fmt;

use shoal_swarm::Digest;

/// Longest repository name accepted. The distribution spec lets registries
/// cap names at 255 characters, and every common client does.
pub const MAX_NAME_LENGTH: usize = 255;
/// Longest tag: one start character then up to 127 more, per the spec.
pub const MAX_TAG_LENGTH: usize = 128;
/// Longest registry host (a DNS name) plus `:` and a five-digit port.
pub const MAX_NAMESPACE_LENGTH: usize = 253 + 6;

/// Why a name, tag, digest, host or path was refused. The message names the
/// offending value's kind, never echoes unbounded input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The repository name breaks the distribution grammar.
    #[error("invalid repository name: {0}")]
    Name(&'static str),
    /// The tag breaks `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
    #[error("invalid tag: {0}")]
    Tag(&'static str),
    /// The digest is not `sha256:<64 lowercase hex>`.
    #[error("invalid digest: {0}")]
    Digest(#[from] shoal_swarm::digest::DigestError),
    /// The registry host is not `host[:port]`.
    #[error("invalid registry namespace: {0}")]
    Namespace(&'static str),
    /// The path is not one of the registry API's read routes.
    #[error("not a registry API route")]
    UnknownRoute,
}

/// A repository name such as `library/alpine`, checked against the grammar.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Checks `raw` (undecoded) against
    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`
    /// and the length limit.
    pub fn parse(raw: &str) -> Result<Self, ReferenceError> {
        if raw.is_empty() {
            return Err(ReferenceError::Name("empty"));
        }
        if raw.len() > MAX_NAME_LENGTH {
            return Err(ReferenceError::Name("longer than 255 characters"));
        }
        for component in raw.split('/') {
            check_component(component)?;
        }
        Ok(RepositoryName(raw.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One path component: alphanumeric runs joined by `.`, `_`, `__` or dashes.
fn check_component(component: &str) -> Result<(), ReferenceError> {
    let bytes = component.as_bytes();
    if bytes.is_empty() {
        return Err(ReferenceError::Name("empty path component"));
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let run = bytes[i..].iter().take_while(|&&b| alnum(b)).count();
        if run == 0 {
            return Err(if bytes[i].is_ascii_uppercase() {
                ReferenceError::Name("uppercase letters are not allowed")
            } else {
                ReferenceError::Name("path components must start and end with [a-z0-9]")
            });
        }
        i += run;
        if i == bytes.len() {
            return Ok(());
        }
        let separator = bytes[i..].iter().take_while(|&&b| !alnum(b)).count();
        let ok = match &bytes[i..i + separator] {
            b"." | b"_" | b"__" => true,
            dashes => dashes.iter().all(|&b| b == b'-'),
        };
        if !ok {
            return Err(
                if bytes[i..i + separator].iter().any(u8::is_ascii_uppercase) {
                    ReferenceError::Name("uppercase letters are not allowed")
                } else {
                    ReferenceError::Name("separators are '.', '_', '__' or dashes between [a-z0-9]")
                },
            );
        }
        i += separator;
        if i == bytes.len() {
            return Err(ReferenceError::Name(
                "path components must start and end with [a-z0-9]",
            ));
        }
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// What a manifest request names: a tag, resolved upstream and cached
/// briefly, or a digest, immutable and cached for good.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ManifestReference {
    /// A tag such as `3.19`.
    Tag(String),
    /// A content digest.
    Digest(Digest),
}

impl ManifestReference {
    /// A digest if `raw` has an algorithm prefix, a tag otherwise.
    pub fn parse(raw: &str) -> Result<Self, ReferenceError> {
        if raw.contains(':') {
            return Ok(ManifestReference::Digest(parse_digest(raw)?));
        }
        parse_tag(raw).map(ManifestReference::Tag)
    }
}

impl fmt::Display for ManifestReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestReference::Tag(tag) => f.write_str(tag),
            ManifestReference::Digest(digest) => write!(f, "{digest}"),
        }
    }
}

/// Checks a tag against `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn parse_tag(raw: &str) -> Result<String, ReferenceError> {
    let mut bytes = raw.bytes();
    match bytes.next() {
        None => return Err(ReferenceError::Tag("empty")),
        Some(b) if b.is_ascii_alphanumeric() || b == b'_' => {}
        Some(_) => return Err(ReferenceError::Tag("must start with [A-Za-z0-9_]")),
    }
    if raw.len() > MAX_TAG_LENGTH {
        return Err(ReferenceError::Tag("longer than 128 characters"));
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(ReferenceError::Tag("only [A-Za-z0-9._-] are allowed"));
    }
    Ok(raw.to_owned())
}

/// Parses a `sha256:<hex>` digest; other algorithms are refused because the
/// origin could not verify them.
pub fn parse_digest(raw: &str) -> Result<Digest, ReferenceError> {
    raw.parse::<Digest>().map_err(ReferenceError::from)
}

/// Checks a registry host as given in `?ns=`: `host[:port]`, where host is a
/// DNS name, an IPv4 literal or a bracketed IPv6 literal. Hosts are case
/// insensitive, so the result is lowercased.
pub fn parse_namespace(raw: &str) -> Result<String, ReferenceError> {
    if raw.is_empty() {
        return Err(ReferenceError::Namespace("empty"));
    }
    if raw.len() > MAX_NAMESPACE_LENGTH {
        return Err(ReferenceError::Namespace("too long"));
    }
    let (host, port) = split_host_port(raw)?;
    if let Some(port) = port
        && !matches!(port.parse::<u16>(), Ok(p) if p > 0 && port.len() <= 5)
    {
        return Err(ReferenceError::Namespace("port must be 1..=65535"));
    }
    let valid_host = if let Some(v6) = host.strip_prefix('[') {
        v6.strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if !valid_host {
        return Err(ReferenceError::Namespace(
            "host must be a DNS name or an IP literal",
        ));
    }
    Ok(raw.to_ascii_lowercase())
}

fn split_host_port(raw: &str) -> Result<(&str, Option<&str>), ReferenceError> {
    if raw.starts_with('[') {
        return match raw.find(']') {
            Some(end) if end + 1 == raw.len() => Ok((raw, None)),
            Some(end) if raw.as_bytes()[end + 1] == b':' => {
                Ok((&raw[..=end], Some(&raw[end + 2..])))
            }
            _ => Err(ReferenceError::Namespace("malformed IPv6 literal")),
        };
    }
    Ok(match raw.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (raw, None),
    })
}

/// A read route of the registry API, parsed from the raw request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryRoute {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/<name>/manifests/<reference>`.
    Manifest {
        /// The repository.
        name: RepositoryName,
        /// Tag or digest.
        reference: ManifestReference,
    },
    /// `/v2/<name>/blobs/<digest>`.
    Blob {
        /// The repository.
        name: RepositoryName,
        /// The blob.
        digest: Digest,
    },
}

impl RegistryRoute {
    /// Parses a raw (undecoded) request path such as
    /// `/v2/library/alpine/manifests/3.19`. The name is everything between
    /// `/v2/` and the last `/manifests/` or `/blobs/`, so a repository may
    /// itself contain a component called `blobs`.
    pub fn parse(path: &str) -> Result<Self, ReferenceError> {
        let rest = path
            .strip_prefix("/v2/")
            .ok_or(ReferenceError::UnknownRoute)?;
        if rest.is_empty() {
            return Ok(RegistryRoute::Base);
        }
        let (head, reference) = rest.rsplit_once('/').ok_or(ReferenceError::UnknownRoute)?;
        let (name, kind) = head.rsplit_once('/').ok_or(ReferenceError::UnknownRoute)?;
        match kind {
            "manifests" => Ok(RegistryRoute::Manifest {
                name: RepositoryName::parse(name)?,
                reference: ManifestReference::parse(reference)?,
            }),
            "blobs" => Ok(RegistryRoute::Blob {
                name: RepositoryName::parse(name)?,
                digest: parse_digest(reference)?,
            }),
            _ => Err(ReferenceError::UnknownRoute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn names_follow_the_distribution_grammar() {
        for ok in [
            "alpine",
            "library/alpine",
            "a/b/c/d",
            "my-app",
            "my--app",
            "my_app",
            "my__app",
            "my.app",
            "0/9",
            "blobs/manifests",
        ] {
            assert_eq!(RepositoryName::parse(ok).unwrap().as_str(), ok, "{ok}");
        }
        for bad in [
            "",
            "/",
            "a/",
            "/a",
            "a//b",
            "-a",
            "a-",
            "a.",
            ".a",
            "a..b",
            "a___b",
            "a._b",
            "a b",
            "A",
            "library/Alpine",
            "a:b",
            "a@b",
            "a%2fb",
            "a%2Fb",
            "..",
            "a/../b",
            "a/./b",
            "ä",
            "a\0b",
        ] {
            assert!(RepositoryName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            RepositoryName::parse("Alpine").unwrap_err(),
            ReferenceError::Name("uppercase letters are not allowed")
        );
    }

    #[test]
    fn names_are_limited_to_255_characters() {
        let longest = ["a"; 128].join("/");
        assert_eq!(longest.len(), 255);
        assert!(RepositoryName::parse(&longest).is_ok());
        let overlong = format!("{longest}a");
        assert_eq!(
            RepositoryName::parse(&overlong).unwrap_err(),
            ReferenceError::Name("longer than 255 characters")
        );
        assert!(RepositoryName::parse(&"x".repeat(100_000)).is_err());
    }

    #[test]
    fn tags_and_digests() {
        for ok in ["latest", "3.19", "_x", "v1.2.3-rc_1", &"t".repeat(128)] {
            assert_eq!(parse_tag(ok).unwrap(), ok);
        }
        for bad in ["", ".x", "-x", "a/b", "a%2f", "a b", &"t".repeat(129)] {
            assert!(parse_tag(bad).is_err(), "{bad:?} accepted");
        }
        let digest = format!("sha256:{HEX}");
        assert_eq!(
            ManifestReference::parse(&digest).unwrap(),
            ManifestReference::Digest(digest.parse().unwrap())
        );
        assert_eq!(
            ManifestReference::parse("v1").unwrap(),
            ManifestReference::Tag("v1".into())
        );
        for bad in [
            "sha256:abc".to_owned(),
            format!("sha512:{HEX}"),
            format!("sha256:{}", HEX.to_uppercase()),
            format!("sha256:{HEX}/../x"),
        ] {
            assert!(matches!(
                ManifestReference::parse(&bad),
                Err(ReferenceError::Digest(_))
            ));
        }
    }

    #[test]
    fn namespaces_are_hosts_with_optional_ports() {
        for (raw, want) in [
            ("docker.io", "docker.io"),
            ("Registry.Example.COM", "registry.example.com"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("localhost", "localhost"),
            ("[::1]:5000", "[::1]:5000"),
            ("[::1]", "[::1]"),
        ] {
            assert_eq!(parse_namespace(raw).unwrap(), want);
        }
        for bad in [
            "",
            "a:0",
            "a:65536",
            "a:",
            "a:b",
            "a/b",
            "-a.com",
            "a..com",
            "a.com:5000:1",
            "[::1",
            "[zz]:1",
            "user@host",
            "host%2f",
            "a:00005000",
        ] {
            assert!(parse_namespace(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_namespace(&"a".repeat(300)).is_err());
    }

    #[test]
    fn routes_parse_from_raw_paths() {
        assert_eq!(RegistryRoute::parse("/v2/").unwrap(), RegistryRoute::Base);
        assert_eq!(
            RegistryRoute::parse("/v2/library/alpine/manifests/3.19").unwrap(),
            RegistryRoute::Manifest {
                name: RepositoryName::parse("library/alpine").unwrap(),
                reference: ManifestReference::Tag("3.19".into()),
            }
        );
        let blob = RegistryRoute::parse(&format!("/v2/a/blobs/x/blobs/sha256:{HEX}")).unwrap();
        assert_eq!(
            blob,
            RegistryRoute::Blob {
                name: RepositoryName::parse("a/blobs/x").unwrap(),
                digest: format!("sha256:{HEX}").parse().unwrap(),
            }
        );
    }

    #[test]
    fn hostile_paths_are_refused() {
        for path in [
            "/v2",
            "/v3/a/manifests/x",
            "/v2/a/tags/list",
            "/v2/manifests/x",
            "/v2/a/manifests/",
            "/v2/a/manifests",
            "/v2/../etc/manifests/x",
            "/v2/a/%2e%2e/manifests/x",
            "/v2/a%2fb/manifests/x",
            "/v2/a/manifests/x%2f..",
            "/v2//a/manifests/x",
            "/v2/a/blobs/sha256:zz",
            "/v2/a/blobs/../../x",
        ] {
            assert!(RegistryRoute::parse(path).is_err(), "{path:?} accepted");
        }
        let traversal = format!("/v2/a/blobs/sha256:{HEX}/../../x");
        assert!(RegistryRoute::parse(&traversal).is_err());
    }
}
