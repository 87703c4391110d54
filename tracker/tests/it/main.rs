//! Integration tests of the tracker over real sockets: the gRPC service
//! in-process, an in-test origin over HTTP, a real `redis-server`, and the
//! `shoal-tracker` binary as separate processes. One test binary, so the
//! workspace links it once.

// Helpers outside #[test] functions unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod announce;
mod binary;
mod metainfo;
mod redis;
mod support;
mod validation;
