//! The demo's summary: what every agent received, where the bytes came
//! from, and the time against the P2P lower bound and client-server. The
//! same struct is printed as text or, with `--json`, as one JSON object.

use std::fmt::Write as _;

use serde::Serialize;

/// One agent's pull.
#[derive(Debug, Clone, Serialize)]
pub struct AgentPull {
    /// The agent's registry API.
    pub url: String,
    /// Digest of the image manifest pulled (the platform's, for an index).
    pub manifest: Option<String>,
    /// Blobs fetched and verified.
    pub blobs: usize,
    /// Verified blob bytes received.
    pub bytes: u64,
    /// Seconds from the start of the pulls to this agent's last byte.
    pub seconds: f64,
    /// Every digest matched.
    pub verified: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `name:tag` pulled.
    pub image: String,
    /// Bytes of the image's blobs (F).
    pub image_bytes: u64,
    /// Agents that pulled (N).
    pub agents: usize,
    /// Origins seeding.
    pub origins: usize,
    /// Blob bytes the origins sent (swarm uploads and HTTP fallback).
    pub origin_bytes: u64,
    /// Blob bytes agents received from other agents.
    pub peer_bytes: u64,
    /// Origin bytes as a multiple of F: about 1 when the swarm works.
    pub origin_bytes_per_image: f64,
    /// Seconds until every agent had every blob.
    pub wall_seconds: f64,
    /// The P2P lower bound for the configured caps, if any are set.
    pub lower_bound_seconds: Option<f64>,
    /// `wall_seconds / lower_bound_seconds`.
    pub ratio_to_bound: Option<f64>,
    /// `N*F/u_s`: the time the origins alone would need.
    pub client_server_seconds: Option<f64>,
    /// Every agent received every digest intact.
    pub all_verified: bool,
    /// Per agent.
    pub pulls: Vec<AgentPull>,
}

impl Summary {
    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nShoal demo: {} ({:.1} MiB) to {} agents from {} origins",
            self.image,
            mib(self.image_bytes),
            self.agents,
            self.origins
        );
        for pull in &self.pulls {
            let state = match (&pull.error, pull.verified) {
                (Some(error), _) => format!("FAILED: {error}"),
                (None, true) => "all digests verified".to_owned(),
                (None, false) => "NOT verified".to_owned(),
            };
            let _ = writeln!(
                out,
                "  {:<28} {:>8.1} MiB in {:>6.2} s  {state}",
                pull.url,
                mib(pull.bytes),
                pull.seconds
            );
        }
        let _ = writeln!(
            out,
            "bytes from origins: {:>8.1} MiB ({:.2}x the image)",
            mib(self.origin_bytes),
            self.origin_bytes_per_image
        );
        let _ = writeln!(out, "bytes from peers:   {:>8.1} MiB", mib(self.peer_bytes));
        let _ = writeln!(out, "wall time:          {:>8.2} s", self.wall_seconds);
        match (self.lower_bound_seconds, self.ratio_to_bound) {
            (Some(bound), Some(ratio)) => {
                let _ = writeln!(
                    out,
                    "P2P lower bound:    {bound:>8.2} s (wall time is {ratio:.2}x the bound)"
                );
            }
            _ => {
                let _ = writeln!(out, "P2P lower bound:    none (no rate caps set)");
            }
        }
        if let Some(cs) = self.client_server_seconds {
            let _ = writeln!(out, "client-server:      {cs:>8.2} s (N*F/u_s)");
        }
        let _ = writeln!(
            out,
            "result:             {}",
            if self.all_verified {
                "every agent received every digest intact"
            } else {
                "FAILED"
            }
        );
        out
    }
}
