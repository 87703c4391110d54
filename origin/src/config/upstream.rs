//! One `[upstreams."<namespace>"]` table: either a registry (with its
//! address, TLS trust and credentials) or a local OCI image layout.
//!
//! The file form is a flat table so that TOML errors name the offending key;
//! [`UpstreamConfig::resolve`] then turns it into an [`UpstreamSpec`],
//! reading CA and password files and refusing contradictory settings.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shoal_swarm::config_file::Secret;

use super::ConfigError;

/// An upstream as written in the configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Serve this namespace from an OCI image layout directory instead of a
    /// registry (air-gapped sites, the demo). Excludes every registry key.
    pub layout: Option<PathBuf>,
    /// `host[:port]` to contact, when it differs from the namespace (a
    /// mirror, or `registry-1.docker.io` for `docker.io`).
    pub endpoint: Option<String>,
    /// Talk plain HTTP instead of HTTPS (a registry on loopback or in a
    /// trusted network).
    #[serde(default)]
    pub insecure: bool,
    /// PEM bundle of CA certificates trusted for this registry, in addition
    /// to the system's roots (a private registry with its own CA).
    pub ca_file: Option<PathBuf>,
    /// User for basic auth, or for the token endpoint in the bearer flow.
    pub username: Option<String>,
    /// Password given inline (prefer `password_file` or `password_env`).
    pub password: Option<Secret>,
    /// File holding the password (a mounted Kubernetes secret); trailing
    /// newlines are trimmed.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
}

/// A checked upstream, ready to build a backend from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamSpec {
    /// An OCI distribution registry.
    Registry(RegistrySpec),
    /// An OCI image layout directory.
    Layout(PathBuf),
}

/// How to reach and authenticate to one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySpec {
    /// `host[:port]` to contact.
    pub endpoint: String,
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// Extra trusted CA certificates (PEM), read from `ca_file`.
    pub ca_pem: Option<Vec<u8>>,
    /// Credentials; None for anonymous access.
    pub credentials: Option<Credentials>,
}

/// A user and its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (not secret).
    pub username: String,
    /// The password, redacted in `Debug`.
    pub password: Secret,
}

impl UpstreamConfig {
    /// Checks the table for `namespace` and reads the files it names.
    pub fn resolve(&self, namespace: &str) -> Result<UpstreamSpec, ConfigError> {
        let invalid = |reason: String| ConfigError::Upstream {
            namespace: namespace.to_owned(),
            reason,
        };
        if let Some(layout) = &self.layout {
            let registry_keys = [
                ("endpoint", self.endpoint.is_some()),
                ("insecure", self.insecure),
                ("ca_file", self.ca_file.is_some()),
                ("username", self.username.is_some()),
                ("password", self.password.is_some()),
                ("password_file", self.password_file.is_some()),
                ("password_env", self.password_env.is_some()),
            ];
            if let Some((key, _)) = registry_keys.iter().find(|(_, set)| *set) {
                return Err(invalid(format!(
                    "`layout` and `{key}` exclude each other: a layout has no registry settings"
                )));
            }
            return Ok(UpstreamSpec::Layout(layout.clone()));
        }
        let endpoint = match &self.endpoint {
            Some(endpoint) => shoal_registry::reference::parse_namespace(endpoint)
                .map_err(|e| invalid(format!("endpoint: {e}")))?,
            None => namespace.to_owned(),
        };
        let ca_pem = match &self.ca_file {
            Some(path) => Some(read_file(path, namespace, "ca_file")?),
            None => None,
        };
        let password = self.password(namespace)?;
        let credentials = match (&self.username, password) {
            (Some(username), Some(password)) => Some(Credentials {
                username: username.clone(),
                password,
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "`username` needs one of `password`, `password_file`, `password_env`".into(),
                ));
            }
            (None, Some(_)) => return Err(invalid("a password needs a `username`".into())),
        };
        Ok(UpstreamSpec::Registry(RegistrySpec {
            endpoint,
            insecure: self.insecure,
            ca_pem,
            credentials,
        }))
    }

    fn password(&self, namespace: &str) -> Result<Option<Secret>, ConfigError> {
        let sources = [
            self.password.is_some(),
            self.password_file.is_some(),
            self.password_env.is_some(),
        ];
        if sources.iter().filter(|set| **set).count() > 1 {
            return Err(ConfigError::Upstream {
                namespace: namespace.to_owned(),
                reason: "set only one of `password`, `password_file`, `password_env`".into(),
            });
        }
        if let Some(password) = &self.password {
            return Ok(Some(password.clone()));
        }
        if let Some(path) = &self.password_file {
            let password = Secret::read(path).map_err(|e| ConfigError::Upstream {
                namespace: namespace.to_owned(),
                reason: format!("password_file {}: {e}", path.display()),
            })?;
            return Ok(Some(password));
        }
        if let Some(var) = &self.password_env {
            let value = std::env::var(var).map_err(|_| ConfigError::Upstream {
                namespace: namespace.to_owned(),
                reason: format!("password_env: environment variable {var} is not set"),
            })?;
            return Ok(Some(Secret::new(value)));
        }
        Ok(None)
    }
}

fn read_file(path: &Path, namespace: &str, key: &'static str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::UpstreamFile {
        namespace: namespace.to_owned(),
        key,
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> UpstreamConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn registry_with_a_password_file_and_ca() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        std::fs::write(dir.path().join("ca.pem"), "PEM").unwrap();
        let config = parse(&format!(
            "username = \"me\"\npassword_file = \"{0}/pw\"\nca_file = \"{0}/ca.pem\"",
            dir.path().display()
        ));
        let UpstreamSpec::Registry(spec) = config.resolve("r.example:5000").unwrap() else {
            panic!("not a registry");
        };
        assert_eq!(spec.endpoint, "r.example:5000");
        assert_eq!(spec.ca_pem.as_deref(), Some(&b"PEM"[..]));
        let credentials = spec.credentials.unwrap();
        assert_eq!(credentials.password.expose(), "s3cret");
        assert!(!format!("{credentials:?}").contains("s3cret"));
    }

    #[test]
    fn contradictions_are_refused_by_name() {
        let err = parse("layout = \"/x\"\nusername = \"u\"")
            .resolve("local")
            .unwrap_err();
        assert!(err.to_string().contains("`username`"), "{err}");
        let err = parse("username = \"u\"").resolve("r").unwrap_err();
        assert!(err.to_string().contains("password"), "{err}");
        let err = parse("username = \"u\"\npassword = \"a\"\npassword_env = \"B\"")
            .resolve("r")
            .unwrap_err();
        assert!(err.to_string().contains("only one"), "{err}");
        let err = parse("password_file = \"/nonexistent/pw\"\nusername = \"u\"")
            .resolve("r")
            .unwrap_err();
        assert!(err.to_string().contains("password_file"), "{err}");
        assert!(toml::from_str::<UpstreamConfig>("pasword = \"x\"").is_err());
    }

    #[test]
    fn layouts_and_anonymous_registries() {
        assert_eq!(
            parse("layout = \"/srv/images\"").resolve("local").unwrap(),
            UpstreamSpec::Layout("/srv/images".into())
        );
        let UpstreamSpec::Registry(spec) =
            parse("endpoint = \"Mirror.local:443\"\ninsecure = true")
                .resolve("docker.io")
                .unwrap()
        else {
            panic!("not a registry");
        };
        assert_eq!(spec.endpoint, "mirror.local:443");
        assert!(spec.insecure && spec.credentials.is_none());
    }
}
