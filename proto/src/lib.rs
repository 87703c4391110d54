//! Generated protobuf types for Shoal.
//!
//! - [`peer`]: control messages of the peer wire protocol (framed by
//!   `shoal_swarm::wire`).
//! - [`tracker`]: the tracker's gRPC service, client and messages.

/// Peer protocol messages, `shoal.peer.v1`.
#[allow(missing_docs, clippy::all)]
pub mod peer {
    include!(concat!(env!("OUT_DIR"), "/shoal.peer.v1.rs"));
}

/// Tracker gRPC API, `shoal.tracker.v1`.
#[allow(missing_docs, clippy::all)]
pub mod tracker {
    include!(concat!(env!("OUT_DIR"), "/shoal.tracker.v1.rs"));
}
