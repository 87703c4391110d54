//! Integration tests of the agent over real sockets: the real tracker
//! in-process, agents in-process (each with its own store, swarm session
//! and registry API server), driven through the registry API with HTTP.

// Helpers outside #[test] functions unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod api;
mod binary;
mod fallback;
mod pull;
mod support;
mod tls;
