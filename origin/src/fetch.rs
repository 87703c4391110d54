//! Fetch once: however many requests ask for a blob the origin does not
//! hold, one task fetches it (from a peer origin, else upstream), streams
//! it into the store (which hashes pieces and checks the digest as the bytes
//! arrive), and seeds it.
//!
//! The fetch runs in its own task, so a client that gives up does not
//! cancel it for the others. A failed fetch is remembered for
//! [`FAILURE_TTL`] so that clients polling after a 202 learn the outcome
//! (404, 502) instead of starting the fetch again at once; after that, the
//! next request tries again. A failed or short fetch drops its store
//! writer, which deletes what was written: nothing incomplete looks
//! complete.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use shoal_registry::RepositoryName;
use shoal_swarm::Digest;
use shoal_swarm::session::Session;
use shoal_swarm::store::{BlobReader, StoreError};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::Cluster;
use crate::replica::{PeerAnswer, Replicas};
use crate::stats::Counters;
use crate::upstream::{BlobStream, UpstreamError, Upstreams};

/// How long a failure is reported to pollers before a retry is allowed.
const FAILURE_TTL: Duration = Duration::from_secs(5);

/// Where a blob lives upstream.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    /// The upstream namespace (resolved, configured).
    pub(crate) namespace: String,
    /// The repository.
    pub(crate) name: RepositoryName,
}

/// Why a fetch failed. Cloned to every waiter.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum FetchError {
    /// Upstream (or the owner that asked it) failed or lacks the blob.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// Writing the blob failed (disk, quota) or its bytes were wrong.
    #[error("storing the blob: {0}")]
    Store(String),
    /// The body broke off before its end.
    #[error("the blob body broke off: {0}")]
    Transfer(String),
    /// The origin is shutting down.
    #[error("origin is shutting down")]
    Shutdown,
}

/// Where a blob stands after [`Fetcher::get`].
pub(crate) enum Status {
    /// Held: serve it.
    Ready(BlobReader),
    /// Being fetched: answer 202.
    Fetching,
    /// The fetch failed.
    Failed(FetchError),
}

type Outcome = Option<Result<(), FetchError>>;

enum Flight {
    Running(watch::Receiver<Outcome>),
    Failed { error: FetchError, at: Instant },
}

/// The single-flight fetcher. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Fetcher {
    inner: Arc<Inner>,
}

struct Inner {
    session: Session,
    upstreams: Arc<Upstreams>,
    cluster: Cluster,
    replicas: Replicas,
    counters: Arc<Counters>,
    flights: Mutex<HashMap<Digest, Flight>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Fetcher {
    pub(crate) fn new(
        session: Session,
        upstreams: Arc<Upstreams>,
        cluster: Cluster,
        replicas: Replicas,
        counters: Arc<Counters>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Fetcher {
            inner: Arc::new(Inner {
                session,
                upstreams,
                cluster,
                replicas,
                counters,
                flights: Mutex::new(HashMap::new()),
                tasks,
                shutdown,
            }),
        }
    }

    /// The store blobs are fetched into.
    pub(crate) fn store(&self) -> &shoal_swarm::store::Store {
        self.inner.session.store()
    }

    /// The blob if held; otherwise starts (or joins) its fetch and waits up
    /// to `wait` for it to finish.
    pub(crate) async fn get(&self, digest: &Digest, at: &Location, wait: Duration) -> Status {
        if let Some(reader) = self.inner.session.store().get(digest) {
            return Status::Ready(reader);
        }
        let mut outcome = match self.flight(digest, at) {
            Ok(receiver) => receiver,
            Err(error) => return Status::Failed(error),
        };
        let finished = tokio::time::timeout(wait, outcome.wait_for(Option::is_some)).await;
        let result = match finished {
            Ok(Ok(done)) => done.clone(),
            Ok(Err(_)) => Some(Err(FetchError::Shutdown)),
            Err(_) => None,
        };
        match result {
            None => Status::Fetching,
            Some(Err(error)) => Status::Failed(error),
            Some(Ok(())) => match self.inner.session.store().get(digest) {
                Some(reader) => Status::Ready(reader),
                // Evicted at once by a tiny quota: fetch again.
                None => Status::Fetching,
            },
        }
    }

    /// The running fetch's outcome channel, starting a fetch if none runs
    /// and no recent failure is on record.
    fn flight(
        &self,
        digest: &Digest,
        at: &Location,
    ) -> Result<watch::Receiver<Outcome>, FetchError> {
        let mut flights = self
            .inner
            .flights
            .lock()
            .map_err(|_| FetchError::Shutdown)?;
        match flights.get(digest) {
            // A closed channel means the fetch task died: start another.
            Some(Flight::Running(receiver)) if receiver.has_changed().is_ok() => {
                return Ok(receiver.clone());
            }
            Some(Flight::Failed { error, at }) if at.elapsed() < FAILURE_TTL => {
                return Err(error.clone());
            }
            _ => {}
        }
        if self.inner.shutdown.is_cancelled() {
            return Err(FetchError::Shutdown);
        }
        let (sender, receiver) = watch::channel(None);
        flights.insert(*digest, Flight::Running(receiver.clone()));
        let inner = Arc::clone(&self.inner);
        let (digest, at) = (*digest, at.clone());
        self.inner.tasks.spawn(async move {
            let result = tokio::select! {
                result = inner.fetch(&digest, &at) => result,
                () = inner.shutdown.cancelled() => Err(FetchError::Shutdown),
            };
            inner.counters.fetched(result.is_ok());
            if let Err(error) = &result {
                tracing::warn!(%digest, namespace = %at.namespace, repository = %at.name, %error, "fetch failed");
            }
            if let Ok(mut flights) = inner.flights.lock() {
                match &result {
                    Ok(()) => flights.remove(&digest),
                    Err(error) => flights.insert(
                        digest,
                        Flight::Failed {
                            error: error.clone(),
                            at: Instant::now(),
                        },
                    ),
                };
            }
            let _ = sender.send(Some(result));
        });
        Ok(receiver)
    }
}

impl Fetcher {
    /// Blob fetches running now (for metrics).
    pub(crate) fn running(&self) -> usize {
        self.inner.flights.lock().map_or(0, |flights| {
            flights
                .values()
                .filter(|f| matches!(f, Flight::Running(_)))
                .count()
        })
    }
}

impl Inner {
    /// Peers first, then upstream; then seed.
    async fn fetch(&self, digest: &Digest, at: &Location) -> Result<(), FetchError> {
        // A fetch that finished just before this one was registered.
        if self.session.store().contains(digest) {
            return Ok(());
        }
        let mut copied = false;
        for (member, mode) in self.cluster.copy_sources(digest) {
            match self
                .replicas
                .request(&member, mode, &at.namespace, &at.name, digest)
                .await
            {
                PeerAnswer::Body(body) => match self.ingest(digest, body, false).await {
                    Ok(()) => {
                        tracing::info!(%digest, from = %member.name, "copied from a peer origin");
                        copied = true;
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%digest, from = %member.name, %error, "copy from a peer origin failed");
                    }
                },
                PeerAnswer::NotFound => return Err(UpstreamError::NotFound.into()),
                PeerAnswer::Skip(reason) => {
                    tracing::debug!(%digest, %reason, "peer origin cannot help");
                }
            }
        }
        if !copied && crate::artifacts::is_artifact(&at.name) {
            // Published through an origin, never fetched from upstream.
            return Err(UpstreamError::NotFound.into());
        }
        if !copied {
            let body = self.upstreams.blob(&at.namespace, &at.name, digest).await?;
            self.ingest(digest, body, true).await?;
            tracing::info!(%digest, namespace = %at.namespace, "fetched from upstream");
        }
        if let Err(error) = self.session.seed(digest).await {
            tracing::warn!(%digest, %error, "seeding a fetched blob");
        }
        Ok(())
    }

    /// Streams `blob` into the store; the store checks length and digest.
    /// Receiving runs in its own task, a bounded channel ahead of the
    /// writer, so the network read overlaps writing and hashing instead of
    /// waiting for each flush.
    async fn ingest(
        &self,
        digest: &Digest,
        blob: BlobStream,
        upstream: bool,
    ) -> Result<(), FetchError> {
        let store = self.session.store();
        let mut writer = match store.ingest(*digest, blob.length).await {
            Ok(writer) => writer,
            Err(StoreError::AlreadyComplete(_)) => return Ok(()),
            Err(e) => return Err(store_error(&e)),
        };
        let counter: Arc<dyn ByteCounter> = if upstream {
            Arc::clone(self.upstreams.counters()) as Arc<dyn ByteCounter>
        } else {
            Arc::clone(&self.counters) as Arc<dyn ByteCounter>
        };
        let (sender, mut chunks) = mpsc::channel(READ_AHEAD_CHUNKS);
        let mut body = blob.body;
        let receive = tokio::spawn(async move {
            while let Some(chunk) = body.next().await {
                let failed = chunk.is_err();
                if sender.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        });
        let written = async {
            while let Some(chunk) = chunks.recv().await {
                let chunk = chunk.map_err(|e| FetchError::Transfer(e.to_string()))?;
                counter.add(chunk.len() as u64);
                writer.write(&chunk).await.map_err(|e| store_error(&e))?;
            }
            writer.finish().await.map_err(|e| store_error(&e))
        }
        .await;
        receive.abort();
        written.map(drop)
    }
}

/// Chunks received ahead of the writer (HTTP chunks are 8-64 KiB).
const READ_AHEAD_CHUNKS: usize = 256;

/// Where received bytes are counted: upstream bytes or replica copies.
trait ByteCounter: Send + Sync {
    fn add(&self, n: u64);
}

impl ByteCounter for crate::upstream::UpstreamCounters {
    fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
}

impl ByteCounter for Counters {
    fn add(&self, n: u64) {
        self.replica_bytes_received.fetch_add(n, Ordering::Relaxed);
    }
}

fn store_error(error: &StoreError) -> FetchError {
    FetchError::Store(crate::upstream::error_chain(error))
}
