//! The tokio driver of the swarm: sockets, timers, rate limits and the store,
//! around the sans-IO [`Torrent`](crate::torrent::Torrent).
//!
//! One [`Session`] per process listens on one TCP port for every blob. Each
//! blob it swarms gets a driver task (`driver`) that owns the torrent state
//! machine, feeds it events from per-connection reader tasks, and carries out
//! its actions: control messages go to per-connection writer tasks, blocks are
//! read from the store and sent without passing through a protobuf, assembled
//! pieces are hashed off the runtime and written to the store.
//!
//! - `listener`: accepts connections and routes them by handshake digest.
//! - `conn`: dialing, the handshake, and the reader and writer tasks.
//! - `stream`: a peer socket, plain or TLS, split for those two tasks.
//! - `driver`: the per-blob loop.
//! - `handle`: what callers hold: [`TorrentHandle`] and its [`Progress`].
//! - `stats`: totals over the session's life, [`SessionStats`].
//! - [`ratelimit`]: token buckets for ingress and egress.

mod candidates;
mod conn;
mod driver;
mod handle;
mod listener;
pub mod ratelimit;
mod stats;
mod stream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::digest::Digest;
use crate::metainfo::Metainfo;
use crate::peer_id::PeerId;
use crate::store::{Store, StoreError};
use crate::tls::{Tls, TlsAcceptor, TlsConnector};
use crate::torrent::TorrentConfig;

pub use handle::{Progress, TorrentHandle, TransferState};
use ratelimit::RateLimiter;
pub use stats::SessionStats;

/// How a session listens, dials and limits its traffic.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Address to listen on for peer connections; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Upload cap in bytes per second over all blobs; 0 means unlimited.
    pub upload_limit: u64,
    /// Download cap in bytes per second over all blobs; 0 means unlimited.
    pub download_limit: u64,
    /// Scheduler settings used for every blob.
    pub torrent: TorrentConfig,
    /// Connections per blob. More peers spread load; each costs memory and
    /// protocol chatter. Kraken uses 10; a loopback swarm of 9 needs 8.
    pub max_peers_per_torrent: usize,
    /// Give up dialing a peer after this long.
    pub connect_timeout: Duration,
    /// Drop a connection whose handshake does not complete in this time, so
    /// that idle sockets cannot pile up.
    pub handshake_timeout: Duration,
    /// Peer connections over mutual TLS (both ends present a certificate
    /// from the CA); None: plain TCP. Every peer of a swarm must agree.
    pub tls: Option<Tls>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upload_limit: 0,
            download_limit: 0,
            torrent: TorrentConfig::default(),
            max_peers_per_torrent: 20,
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The listen socket could not be bound.
    #[error("binding peer listener on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The store refused (quota, disk full, I/O).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `seed` was asked for a blob the store does not hold complete.
    #[error("blob {0} is not complete in the store")]
    NotInStore(Digest),
    /// The download was aborted; the message says why.
    #[error("download of {digest} failed: {reason}")]
    Failed {
        /// The blob.
        digest: Digest,
        /// What went wrong, as logged.
        reason: String,
    },
    /// The session is shutting down.
    #[error("session is shut down")]
    Shutdown,
}

/// A peer to dial, as the tracker hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its id, when known, so that we skip ourselves and peers already
    /// connected without dialing.
    pub id: Option<PeerId>,
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        PeerAddr { addr, id: None }
    }
}

/// One process's swarm endpoint: a listener and the blobs it swarms.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

/// State every task of the session reaches.
pub(crate) struct Shared {
    config: SessionConfig,
    peer_id: PeerId,
    local_addr: SocketAddr,
    store: Store,
    upload: Arc<RateLimiter>,
    download: Arc<RateLimiter>,
    torrents: Mutex<HashMap<Digest, TorrentHandle>>,
    counters: stats::Counters,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    tls: Option<PeerTls>,
}

/// Both ends of peer TLS, built once from [`SessionConfig::tls`].
pub(crate) struct PeerTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl Session {
    /// Binds the listener and starts accepting peers. Call once per process.
    pub async fn start(config: SessionConfig, store: Store) -> Result<Session, SessionError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| SessionError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| SessionError::Bind {
            addr: config.listen,
            source,
        })?;
        let tls = config.tls.as_ref().map(|tls| PeerTls {
            acceptor: tls.acceptor(),
            connector: tls.peer_connector(),
        });
        let shared = Arc::new(Shared {
            tls,
            peer_id: PeerId::random(),
            local_addr,
            store,
            upload: Arc::new(RateLimiter::new(config.upload_limit)),
            download: Arc::new(RateLimiter::new(config.download_limit)),
            torrents: Mutex::new(HashMap::new()),
            counters: stats::Counters::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            config,
        });
        tracing::info!(addr = %local_addr, peer_id = %shared.peer_id, tls = shared.tls.is_some(), "peer listener started");
        shared
            .tasks
            .spawn(listener::run(listener, Arc::clone(&shared)));
        Ok(Session { shared })
    }

    /// The address peers reach us on (the bound address, with its real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Our identity in handshakes and announces.
    pub fn peer_id(&self) -> PeerId {
        self.shared.peer_id
    }

    /// The store the session reads and writes.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Starts swarming a blob the store holds complete, so that peers can
    /// download it from us. Returns the running torrent if there is one.
    pub async fn seed(&self, digest: &Digest) -> Result<TorrentHandle, SessionError> {
        if let Some(handle) = self.torrent(digest) {
            return Ok(handle);
        }
        let reader = self
            .shared
            .store
            .get(digest)
            .ok_or(SessionError::NotInStore(*digest))?;
        let metainfo = self
            .shared
            .store
            .metainfo(digest)
            .await?
            .ok_or(SessionError::NotInStore(*digest))?;
        self.insert(metainfo, driver::Source::Complete(reader))
    }

    /// Downloads a blob through the swarm, resuming from the pieces the store
    /// already verified, or joins the download already running for it. A
    /// blob already complete is seeded instead. Peers come from
    /// [`TorrentHandle::add_peers`].
    pub async fn download(&self, metainfo: Arc<Metainfo>) -> Result<TorrentHandle, SessionError> {
        let digest = *metainfo.digest();
        if let Some(handle) = self.torrent(&digest) {
            return Ok(handle);
        }
        if self.shared.store.contains(&digest) {
            return self.seed(&digest).await;
        }
        let partial = self.shared.store.partial(metainfo).await?;
        if partial.bitfield().is_complete() {
            // Every piece survived a restart but the blob was never finished.
            partial.finish().await?;
            return self.seed(&digest).await;
        }
        let metainfo = Arc::clone(partial.metainfo());
        self.insert(metainfo, driver::Source::Partial(partial))
    }

    /// The running torrent for a blob, if any.
    pub fn torrent(&self, digest: &Digest) -> Option<TorrentHandle> {
        self.shared.torrent(digest)
    }

    /// Every running torrent, for status pages and announces.
    pub fn torrents(&self) -> Vec<TorrentHandle> {
        self.shared
            .torrents
            .lock()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Totals since the session started, and the torrents and peer
    /// connections running now (for metrics).
    pub fn stats(&self) -> SessionStats {
        let mut stats = SessionStats::totals(&self.shared.counters);
        for torrent in self.torrents() {
            let progress = torrent.progress();
            stats.peers += progress.peers as u64;
            match progress.state {
                TransferState::Downloading => stats.downloading += 1,
                TransferState::Seeding => stats.seeding += 1,
                TransferState::Failed(_) => {}
            }
        }
        stats
    }

    /// Stops every torrent and the listener, and waits for their tasks.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }

    fn insert(
        &self,
        metainfo: Arc<Metainfo>,
        source: driver::Source,
    ) -> Result<TorrentHandle, SessionError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(SessionError::Shutdown);
        }
        let mut torrents = self
            .shared
            .torrents
            .lock()
            .map_err(|_| SessionError::Shutdown)?;
        // Two callers may race past the lookup above; the first insert wins.
        if let Some(existing) = torrents.get(metainfo.digest()) {
            return Ok(existing.clone());
        }
        let handle = driver::spawn(Arc::clone(&self.shared), metainfo, source);
        torrents.insert(*handle.digest(), handle.clone());
        Ok(handle)
    }
}

impl Shared {
    fn torrent(&self, digest: &Digest) -> Option<TorrentHandle> {
        self.torrents.lock().ok()?.get(digest).cloned()
    }

    /// Forgets a torrent whose driver ended, unless a newer one replaced it.
    fn remove_torrent(&self, handle: &TorrentHandle) {
        if let Ok(mut torrents) = self.torrents.lock()
            && torrents
                .get(handle.digest())
                .is_some_and(|h| h.same(handle))
        {
            torrents.remove(handle.digest());
        }
    }
}
