//! Harness for tests that drive Shoal's real binaries against real
//! counterparts: a `docker-registry` upstream (`registry`), the tracker,
//! origins and agents as processes (`process`, `cluster`), and the clients
//! users pull with (`clients`: skopeo, ctr, docker).
//!
//! The end-to-end tests themselves live in `tests/`; the origin's tests use
//! `registry` too, so the upstream is started one way everywhere.

pub mod clients;
pub mod cluster;
pub mod corrupt_peer;
pub mod pki;
pub mod process;
pub mod raw_http;
pub mod registry;
