//! Shoal's swarm engine, shared by the agent and the origin.
//!
//! - [`config_file`]: what the components' TOML configuration files share:
//!   loading, `--print-config`, secrets that never print.
//! - [`digest`], [`peer_id`], [`bitfield`]: validated identities and piece sets.
//! - [`metainfo`]: piece length and piece hashes, computed in one streaming pass.
//! - [`store`]: the content-addressed blob store on disk: partial blobs with
//!   their verified-piece bitmap, complete blobs, quota and LRU eviction.
//! - [`wire`]: the peer protocol's frames, codec and handshake.
//! - [`rate`]: sans-IO transfer-rate meters.
//! - [`ring`]: rendezvous hashing of digests onto origins, shared by the
//!   tracker and the origin so that both agree on every blob's owners.
//! - [`picker`], [`choker`], [`torrent`]: the sans-IO scheduler. They read no
//!   clock and do no I/O: the caller passes `now`, feeds events and carries out
//!   the actions they return, so the same code runs in the tokio driver and in
//!   a virtual-time simulator.
//! - [`session`]: the tokio driver: sockets, timers, rate limits, the store.
//! - [`tls`]: optional mTLS for every link between components, peers included.

#![warn(missing_docs, unreachable_pub)]

pub mod bitfield;
pub mod choker;
pub mod config_file;
pub mod digest;
pub mod metainfo;
pub mod peer_id;
pub mod peer_key;
pub mod picker;
pub mod rate;
pub mod ring;
pub mod session;
pub mod store;
pub mod tls;
pub mod torrent;
pub mod wire;

pub use bitfield::Bitfield;
pub use digest::{Digest, DigestError};
pub use metainfo::Metainfo;
pub use peer_id::PeerId;
pub use peer_key::PeerKey;
