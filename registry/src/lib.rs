//! The Docker Registry HTTP API v2 / OCI distribution vocabulary that the
//! origin (which serves it to agents) and the agent (which serves it to
//! docker, containerd and skopeo) share, so both check input the same way.
//!
//! - [`reference`]: repository names, tags, digests, registry namespaces and
//!   the read routes, parsed from raw request paths.
//! - [`error`]: OCI error codes and their JSON bodies as axum responses.
//! - [`media`]: manifest media types and the `Accept` header clients send.
//! - [`manifest`]: manifests parsed to their media type and what they name.
//! - [`range`]: the `Range` header of blob requests, and its 206/416 headers.
//! - [`listener`]: the TCP listener both serve the API on (`TCP_NODELAY`).
//! - [`layout`]: writing OCI image layouts of synthetic images (the demo's
//!   embedded upstream, the tests' images).

#![warn(missing_docs, unreachable_pub)]

pub mod error;
pub mod layout;
pub mod listener;
pub mod manifest;
pub mod media;
pub mod range;
pub mod reference;

pub use error::{ErrorCode, OciError};
pub use manifest::{Manifest, ManifestError};
pub use reference::{ManifestReference, ReferenceError, RegistryRoute, RepositoryName};
