//! Where a blob a client asks for comes from, and the downloads shared by
//! every client reading the same blob.
//!
//! - cache hit: the store's complete blob;
//! - miss with metainfo from the tracker: one [`Fetch`] per blob, through the
//!   swarm (`fetch`) or, for small blobs, from an origin's range API
//!   (`fill`); clients stream its verified pieces in order as they land;
//! - miss without metainfo (no tracker, tracker down), or of a blob larger
//!   than the whole cache quota: the whole blob streamed from an origin
//!   while it is hashed (`passthrough`), cached only if it fits.
//!
//! Downloads run in their own tasks: a client that disconnects only stops
//! reading, never the download that other clients and the cache share.
//! `announce` keeps the tracker told what we hold of every swarmed blob;
//! `counters` counts downloads and origin pieces for metrics.

mod announce;
mod counters;
mod fetch;
mod fill;
mod passthrough;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_swarm::session::{Session, SessionError, TorrentHandle, TransferState};
use shoal_swarm::store::{BlobReader, PartialBlob, StoreError};
use shoal_swarm::{Digest, Metainfo};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::origin::{Location, OriginError, Origins};
use crate::tracker::{MetainfoError, Tracker};

pub use counters::BlobStats;
pub use fetch::Fetch;
pub use passthrough::Passthrough;

/// Why a blob cannot be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BlobError {
    /// Upstream does not have it.
    #[error("blob unknown upstream")]
    Unknown,
    /// Neither the swarm nor any origin could provide it.
    #[error("{0}")]
    Unavailable(String),
}

impl From<OriginError> for BlobError {
    fn from(error: OriginError) -> Self {
        match error {
            OriginError::NotFound => BlobError::Unknown,
            OriginError::Unavailable(why) => BlobError::Unavailable(why),
        }
    }
}

/// How a client's blob request will be answered.
pub enum Opened {
    /// Complete and verified on disk.
    Complete(BlobReader),
    /// Being downloaded; verified pieces stream in order.
    Streaming(Arc<Fetch>),
    /// Streamed straight from an origin, verified at the end.
    Passthrough(Passthrough),
}

/// Times a download that does not fit the quota is retried after the seeds
/// were stopped: their connections let go of the blobs they pin within a
/// moment, not at once.
const MAKE_ROOM_ATTEMPTS: u32 = 50;

/// Knobs of the blob paths.
#[derive(Debug, Clone)]
pub struct BlobPolicy {
    /// Blobs shorter than this skip the swarm.
    pub small_blob_bytes: u64,
    /// No new verified piece for this long sends the rest to the origins.
    pub stall_timeout: Duration,
}

/// The agent's blob paths. Cheap to clone.
#[derive(Clone)]
pub struct Blobs {
    inner: Arc<Inner>,
}

struct Inner {
    session: Session,
    tracker: Tracker,
    origins: Arc<Origins>,
    policy: BlobPolicy,
    fetches: tokio::sync::Mutex<HashMap<Digest, Arc<Fetch>>>,
    announcing: Mutex<HashSet<Digest>>,
    counters: counters::Counters,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Blobs {
    /// The blob paths over a running session.
    pub fn new(
        session: Session,
        tracker: Tracker,
        origins: Arc<Origins>,
        policy: BlobPolicy,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        Blobs {
            inner: Arc::new(Inner {
                session,
                tracker,
                origins,
                policy,
                fetches: tokio::sync::Mutex::new(HashMap::new()),
                announcing: Mutex::new(HashSet::new()),
                counters: counters::Counters::default(),
                shutdown,
                tasks,
            }),
        }
    }

    /// The swarm session.
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    /// The origins client.
    pub fn origins(&self) -> &Arc<Origins> {
        &self.inner.origins
    }

    /// The tracker client.
    pub fn tracker(&self) -> &Tracker {
        &self.inner.tracker
    }

    /// Downloads running and pieces fetched from origins (for metrics).
    pub fn stats(&self) -> BlobStats {
        self.inner.counters.snapshot()
    }

    /// Opens a blob for reading, starting (or joining) its download.
    pub async fn open(&self, digest: &Digest, at: &Location) -> Result<Opened, BlobError> {
        if let Some(reader) = self.inner.session.store().get(digest) {
            return Ok(Opened::Complete(reader));
        }
        if let Some(fetch) = self.inner.fetches.lock().await.get(digest).cloned() {
            return Ok(Opened::Streaming(fetch));
        }
        match self.inner.tracker.metainfo(digest, at).await {
            Ok(metainfo) if self.beyond_quota(metainfo.length()) => {
                tracing::warn!(
                    %digest,
                    length = metainfo.length(),
                    quota = self.inner.session.store().quota_bytes(),
                    "blob larger than the whole cache quota; streaming it from an origin uncached"
                );
                Ok(Opened::Passthrough(
                    passthrough::open(self, digest, at).await?,
                ))
            }
            Ok(metainfo) => self.start(metainfo, at).await,
            Err(MetainfoError::NotFound) => Err(BlobError::Unknown),
            Err(MetainfoError::Unavailable(why)) => {
                tracing::warn!(%digest, reason = %why, "no metainfo; streaming the blob from an origin");
                if let Some(reader) = self.inner.session.store().get(digest) {
                    return Ok(Opened::Complete(reader));
                }
                Ok(Opened::Passthrough(
                    passthrough::open(self, digest, at).await?,
                ))
            }
        }
    }

    /// Whether a blob of `length` bytes can never fit the cache, however
    /// much is evicted. Such a blob cannot be downloaded through the swarm
    /// (pieces land in the cache) nor seeded, so it is streamed from an
    /// origin and verified on the way instead: a cache sized too small costs
    /// origin bandwidth, not a failed pull, and it evicts nothing and stops
    /// no seed while trying.
    fn beyond_quota(&self, length: u64) -> bool {
        let quota = self.inner.session.store().quota_bytes();
        quota != 0 && length > quota
    }

    /// The blob's length without downloading it (for HEAD).
    pub async fn length(&self, digest: &Digest, at: &Location) -> Result<u64, BlobError> {
        if let Some(reader) = self.inner.session.store().get(digest) {
            return Ok(reader.len());
        }
        if let Some(fetch) = self.inner.fetches.lock().await.get(digest) {
            return Ok(fetch.metainfo().length());
        }
        match self.inner.tracker.metainfo(digest, at).await {
            Ok(metainfo) => Ok(metainfo.length()),
            Err(MetainfoError::NotFound) => Err(BlobError::Unknown),
            Err(MetainfoError::Unavailable(_)) => {
                Ok(self.inner.origins.blob_length(at, digest).await?)
            }
        }
    }

    /// Seeds and announces every complete blob the store holds (after a
    /// restart), except small ones, which nobody swarms.
    pub async fn seed_cached(&self) {
        let store = self.inner.session.store().clone();
        for digest in store.complete_digests() {
            let small = store
                .get(&digest)
                .is_some_and(|r| r.len() < self.inner.policy.small_blob_bytes);
            if !small {
                self.ensure_seeding(&digest).await;
            }
        }
    }

    /// Starts the download of a blob whose metainfo is known, or joins the
    /// one another request started meanwhile.
    async fn start(&self, metainfo: Arc<Metainfo>, at: &Location) -> Result<Opened, BlobError> {
        let digest = *metainfo.digest();
        let store = self.inner.session.store().clone();
        let mut fetches = self.inner.fetches.lock().await;
        if let Some(reader) = store.get(&digest) {
            return Ok(Opened::Complete(reader));
        }
        if let Some(fetch) = fetches.get(&digest) {
            return Ok(Opened::Streaming(Arc::clone(fetch)));
        }
        let small = metainfo.length() < self.inner.policy.small_blob_bytes;
        let (partial, handle) = if small {
            match self.partial(&metainfo).await {
                Ok(partial) => (partial, None),
                Err(StoreError::AlreadyComplete(_)) => return complete(&store, &digest),
                Err(e) => return Err(unavailable("opening the cache entry", &e)),
            }
        } else {
            let handle = self.download(&metainfo).await?;
            match handle.partial() {
                Some(partial) => (Arc::clone(partial), Some(handle)),
                None => {
                    self.ensure_announcing(&digest);
                    return complete(&store, &digest);
                }
            }
        };
        let fetch = Arc::new(Fetch::new(metainfo, partial, handle, at.clone()));
        fetches.insert(digest, Arc::clone(&fetch));
        drop(fetches);
        if !small {
            self.ensure_announcing(&digest);
        }
        let blobs = self.clone();
        let running = Arc::clone(&fetch);
        self.inner.counters.download_started();
        // The download outlives the request that started it; its log lines
        // keep that pull's span (repository and digest).
        self.inner.tasks.spawn(
            async move {
                fetch::run(&blobs, &running).await;
                blobs.inner.fetches.lock().await.remove(running.digest());
                blobs.inner.counters.download_ended();
            }
            .in_current_span(),
        );
        Ok(Opened::Streaming(fetch))
    }

    /// `Store::partial`, making room by ending seeds when the quota is full.
    async fn partial(&self, metainfo: &Arc<Metainfo>) -> Result<Arc<PartialBlob>, StoreError> {
        let store = self.inner.session.store();
        let mut stopped = false;
        let mut attempts = 0;
        loop {
            match store.partial(Arc::clone(metainfo)).await {
                Err(StoreError::QuotaExceeded { .. }) if attempts < MAKE_ROOM_ATTEMPTS => {
                    if !stopped {
                        self.stop_seeds().await;
                        stopped = true;
                    }
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                other => return other,
            }
        }
    }

    /// `Session::download`, making room the same way.
    async fn download(&self, metainfo: &Arc<Metainfo>) -> Result<TorrentHandle, BlobError> {
        let session = &self.inner.session;
        let mut stopped = false;
        let mut attempts = 0;
        loop {
            match session.download(Arc::clone(metainfo)).await {
                Err(SessionError::Store(StoreError::QuotaExceeded { .. }))
                    if attempts < MAKE_ROOM_ATTEMPTS =>
                {
                    if !stopped {
                        self.stop_seeds().await;
                        stopped = true;
                    }
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                other => return other.map_err(|e| unavailable("starting the download", &e)),
            }
        }
    }

    /// Seeding torrents pin their blobs; a full cache can only evict blobs
    /// nobody seeds, so ending the seeds lets the store's LRU make room.
    async fn stop_seeds(&self) {
        let seeds: Vec<TorrentHandle> = self
            .inner
            .session
            .torrents()
            .into_iter()
            .filter(|t| t.progress().state == TransferState::Seeding)
            .collect();
        tracing::info!(
            count = seeds.len(),
            "cache full: stopping seeds so that LRU can evict"
        );
        for seed in &seeds {
            seed.stop();
        }
        for _ in 0..100 {
            if seeds
                .iter()
                .all(|s| self.inner.session.torrent(s.digest()).is_none())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Seeds a complete blob (replacing a torrent that is winding down) and
    /// announces it.
    pub(crate) async fn ensure_seeding(&self, digest: &Digest) {
        let session = &self.inner.session;
        for _ in 0..250 {
            match session.torrent(digest) {
                Some(t) if t.progress().state == TransferState::Downloading => {}
                Some(t) if matches!(t.progress().state, TransferState::Failed(_)) => {}
                _ => break,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match session.seed(digest).await {
            Ok(_) => self.ensure_announcing(digest),
            Err(e) => tracing::warn!(%digest, error = %e, "cannot seed blob"),
        }
    }

    fn ensure_announcing(&self, digest: &Digest) {
        if !self.inner.tracker.is_configured() {
            return;
        }
        let fresh = self
            .inner
            .announcing
            .lock()
            .is_ok_and(|mut set| set.insert(*digest));
        if fresh {
            let blobs = self.clone();
            let digest = *digest;
            self.inner
                .tasks
                .spawn(async move { announce::run(&blobs, digest).await });
        }
    }
}

fn complete(store: &shoal_swarm::store::Store, digest: &Digest) -> Result<Opened, BlobError> {
    store
        .get(digest)
        .map(Opened::Complete)
        .ok_or_else(|| BlobError::Unavailable("blob completed but left the cache".into()))
}

fn unavailable(doing: &str, error: &dyn std::error::Error) -> BlobError {
    BlobError::Unavailable(format!("{doing}: {}", crate::origin::error_chain(error)))
}
