//! Integration tests of the origin against a real registry.
#![allow(clippy::unwrap_used)]

mod api;
mod binary;
mod cluster;
mod fetch;
mod manifests;
mod support;
mod tls;
mod upstreams;
