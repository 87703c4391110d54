//! `shoal-agent configure ...`: points a node's container runtime at the
//! agent, so that pulls go through it and fall back to the upstream registry
//! when the agent is down.
//!
//! - [`containerd`]: one `hosts.toml` per registry in containerd's hosts dir.
//! - [`docker`]: `registry-mirrors` in Docker's `daemon.json`.
//!
//! Both are idempotent (a second run changes nothing) and write atomically
//! (temp file, then rename), so a crash never leaves a half-written file.

pub mod containerd;
pub mod docker;

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why a runtime configuration could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    /// A registry name is not a host[:port].
    #[error("registry {name:?}: {reason}")]
    Registry {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The agent URL is not an http:// URL.
    #[error("agent URL {0:?} must be http://host:port")]
    AgentUrl(String),
    /// An existing file could not be parsed, so it was left untouched.
    #[error("{path}: {reason}")]
    Existing {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
}

/// Whether a file was written or already said the right thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The file was created or replaced.
    Written,
    /// The file already had the wanted content.
    Unchanged,
}

/// Checks the agent URL the runtime should use.
pub(crate) fn check_agent_url(url: &str) -> Result<String, ConfigureError> {
    let trimmed = url.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .ok_or_else(|| ConfigureError::AgentUrl(url.into()))?;
    if rest.is_empty() || rest.contains(['/', '"', '\\', ' ', '\n']) {
        return Err(ConfigureError::AgentUrl(url.into()));
    }
    Ok(trimmed.to_string())
}

/// Writes `content` to `path` unless it already holds exactly that: temp
/// file in the same directory, fsync, rename.
pub(crate) fn write_if_changed(path: &Path, content: &[u8]) -> Result<Outcome, ConfigureError> {
    let io = |source| ConfigureError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read(path) {
        Ok(existing) if existing == content => return Ok(Outcome::Unchanged),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.shoal-tmp"));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(content)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(io)?;
    Ok(Outcome::Written)
}
