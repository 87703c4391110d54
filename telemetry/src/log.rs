//! Logging setup of the binaries: `tracing` events filtered by RUST_LOG
//! (`info` when unset or unparsable), as human-readable text or as one JSON
//! object per line for log collectors. Text is coloured only on a
//! terminal: escape codes in a log file or a pod's log defeat grep.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, span fields included.
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("a global tracing subscriber is already installed")]
pub struct LogInitError(#[source] Box<dyn std::error::Error + Send + Sync>);

/// Installs the process-wide subscriber. Call once, first thing in `main`.
pub fn init_logging(format: LogFormat) -> Result<(), LogInitError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(LogInitError)
}
