//! What the agent's, origin's and tracker's configuration files have in
//! common: one TOML file read with errors that name the file and the key,
//! the effective configuration printed back as TOML (`--print-config`), and
//! secrets that neither `Debug` nor that printout ever shows.
//!
//! Layering is the binaries' job: each parses its flags with clap, whose
//! `env = "SHOAL_<COMPONENT>_<FLAG>"` bindings make a flag win over its
//! environment variable, and applies the result over the loaded file.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};

/// What `--print-config` shows in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// Why a configuration file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML for this configuration (unknown keys
    /// included); the message names the key and line.
    #[error("parsing {}: {message}", path.display())]
    Parse {
        /// The file, or `<text>` for text given directly.
        path: PathBuf,
        /// The parser's explanation.
        message: String,
    },
}

/// Reads and parses a configuration file.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|message| FileError::Parse {
        path: path.to_owned(),
        message,
    })
}

/// Parses configuration text; the error names the offending key (unknown
/// keys are refused where the type says `deny_unknown_fields`).
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
}

/// The configuration as TOML, secrets shown as [`REDACTED`]: what
/// `--print-config` writes after the file, environment and flags applied.
pub fn print<T: Serialize>(config: &T) -> Result<String, toml::ser::Error> {
    toml::to_string(config)
}

/// A password, token or key. `Debug` and `Serialize` show [`REDACTED`], so
/// configuration types can derive both and be logged or printed safely;
/// only [`Secret::expose`] gives the text, where it is used. The printed
/// form is therefore not meant to be read back.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret read from somewhere other than the TOML file.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Reads a secret from a file (a mounted Kubernetes Secret); trailing
    /// newlines are trimmed because editors and `echo` add them.
    pub fn read(path: &Path) -> Result<Self, SecretFileError> {
        let bytes = std::fs::read(path).map_err(SecretFileError::Read)?;
        let text = String::from_utf8(bytes).map_err(|_| SecretFileError::NotUtf8)?;
        Ok(Secret(text.trim_end_matches(['\r', '\n']).to_string()))
    }

    /// The secret's text, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// Why [`Secret::read`] failed; the caller names the key and the file.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file could not be read.
    #[error("cannot be read: {0}")]
    Read(std::io::Error),
    /// The file is not text.
    #[error("is not UTF-8")]
    NotUtf8,
}

/// A URL that may carry credentials (`redis://:password@host:6379`). It
/// serializes with its user information replaced by [`REDACTED`]; `Debug`
/// does the same.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL read from somewhere other than the TOML file.
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(url.into())
    }

    /// The URL with its credentials, for the client that connects.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the password (or a user-only token) replaced.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return url.clone();
        };
        let authority_end = url[scheme_end..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| scheme_end + i);
        let Some(at) = url[scheme_end..authority_end].rfind('@') else {
            return url.clone();
        };
        let userinfo = &url[scheme_end..scheme_end + at];
        let shown = match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}"),
            None => REDACTED.to_string(),
        };
        format!("{}{shown}{}", &url[..scheme_end], &url[scheme_end + at..])
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Example {
        name: String,
        password: Option<Secret>,
        url: SecretUrl,
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(<redacted>)");
        assert_eq!(secret.expose(), "hunter2");
        let example: Example =
            parse("name = \"n\"\npassword = \"hunter2\"\nurl = \"redis://u:hunter2@h:1/0\"\n")
                .unwrap();
        let printed = print(&example).unwrap();
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("password = \"<redacted>\""), "{printed}");
        assert!(
            printed.contains("url = \"redis://u:<redacted>@h:1/0\""),
            "{printed}"
        );
        assert!(!format!("{example:?}").contains("hunter2"));
    }

    #[test]
    fn urls_lose_only_their_credentials() {
        let shown = |url: &str| SecretUrl::new(url).redacted();
        assert_eq!(shown("redis://h:6379"), "redis://h:6379");
        assert_eq!(shown("redis://:pw@h:6379"), "redis://:<redacted>@h:6379");
        assert_eq!(shown("rediss://token@h/0"), "rediss://<redacted>@h/0");
        assert_eq!(shown("redis://h/a@b"), "redis://h/a@b");
        assert_eq!(shown("not a url"), "not a url");
    }

    #[test]
    fn unknown_keys_and_missing_files_are_named() {
        let err = parse::<Example>("nme = \"n\"\n").unwrap_err();
        assert!(err.contains("unknown field `nme`"), "{err}");
        let err = load::<Example>(Path::new("/nonexistent/shoal.toml")).unwrap_err();
        assert_eq!(err.to_string(), "reading /nonexistent/shoal.toml");
    }

    #[test]
    fn secret_files_lose_trailing_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\r\n").unwrap();
        assert_eq!(Secret::read(&path).unwrap().expose(), "s3cret");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(Secret::read(&path), Err(SecretFileError::NotUtf8)));
    }
}
