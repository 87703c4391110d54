//! One running origin: the store, the swarm session, the upstreams, the
//! fetcher and the HTTP API, started together and shut down together. The
//! binary runs one; the `shoal` CLI and the tests run several in one
//! process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shoal_swarm::session::{Session, SessionConfig, SessionError};
use shoal_swarm::store::{Store, StoreError};
use shoal_swarm::tls::{Tls, TlsAcceptor};
use shoal_swarm::torrent::TorrentConfig;
use shoal_telemetry::ReadyFlag;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::Cluster;
use crate::config::Settings;
use crate::fetch::Fetcher;
use crate::http::{ApiState, router};
use crate::manifests::Manifests;
use crate::metrics::{self, OriginCollector};
use crate::replica::Replicas;
use crate::stats::{Counters, Stats};
use crate::tls_listener::TlsListener;
use crate::upstream::{UpstreamError, Upstreams};

/// How long in-flight responses get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why an origin could not start.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// The store directory could not be opened.
    #[error("opening the blob store")]
    Store(#[from] StoreError),
    /// The peer listener could not start.
    #[error("starting the swarm session")]
    Session(#[from] SessionError),
    /// An upstream client could not be built (e.g. an unusable CA file).
    #[error("building the upstream clients")]
    Upstream(#[from] UpstreamError),
    /// `[discovery.kubernetes]` is set but no Kubernetes client could be made.
    #[error("origin discovery")]
    Discovery(#[from] shoal_discovery::DiscoveryError),
    /// The client for peer origins could not be built.
    #[error("building the peer origin client")]
    Replicas(#[source] reqwest::Error),

    /// The HTTP API address could not be bound.
    #[error("binding the HTTP API on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A running origin.
pub struct Origin {
    http_addr: SocketAddr,
    session: Session,
    upstreams: Arc<Upstreams>,
    counters: Arc<Counters>,
    ready: ReadyFlag,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    server: JoinHandle<()>,
}

impl Origin {
    /// Opens the store, starts the swarm session, seeds every stored blob
    /// (asking upstream for nothing), and serves the HTTP API with the
    /// admin endpoints (`/metrics`, `/healthz`, `/readyz`) beside it.
    pub async fn start(settings: Settings) -> Result<Origin, OriginError> {
        let store = Store::open(&settings.data_dir, settings.cache_bytes).await?;
        let session = Session::start(
            SessionConfig {
                listen: settings.peer_listen,
                upload_limit: settings.upload_limit,
                tls: settings.tls.clone().filter(Tls::peer),
                // The origins' upload is what the swarm exists to save.
                torrent: TorrentConfig {
                    spread_first: true,
                    ..TorrentConfig::default()
                },
                ..SessionConfig::default()
            },
            store,
        )
        .await?;
        seed_stored(&session).await;
        let upstreams = Arc::new(Upstreams::new(
            &settings.upstreams,
            settings.default_registry.clone(),
        )?);
        let counters = Arc::new(Counters::default());
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let ring = match settings.ring.clone() {
            Some(configured) => Some(
                shoal_discovery::ring(&settings.discovery, configured, shutdown.clone()).await?,
            ),
            None => None,
        };
        let cluster = Cluster::new(settings.name.clone(), ring);
        let replicas = Replicas::new(settings.tls.as_ref())?;
        let fetcher = Fetcher::new(
            session.clone(),
            Arc::clone(&upstreams),
            cluster.clone(),
            replicas.clone(),
            Arc::clone(&counters),
            tasks.clone(),
            shutdown.clone(),
        );
        let registry = metrics::registry(OriginCollector {
            upstreams: Arc::clone(&upstreams),
            counters: Arc::clone(&counters),
            session: session.clone(),
            fetcher: fetcher.clone(),
        });
        let ready = ReadyFlag::new("origin starting");
        let admin = shoal_telemetry::router(Arc::new(registry), Arc::new(ready.clone()));
        let state = Arc::new(ApiState {
            upstreams: Arc::clone(&upstreams),
            manifests: Manifests::new(
                Arc::clone(&upstreams),
                settings.tag_ttl,
                settings.manifest_cache_bytes,
            ),
            fetcher,
            cluster,
            replicas,
            session: session.clone(),
            counters: Arc::clone(&counters),
            fetch_wait: settings.fetch_wait,
        });
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| OriginError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let http_addr = listener.local_addr().map_err(|source| OriginError::Bind {
            addr: settings.listen,
            source,
        })?;
        let stop = shutdown.clone();
        let app = router(state).merge(admin);
        let server = match &settings.tls {
            None => tokio::spawn(async move {
                let served = axum::serve(shoal_registry::listener::nodelay(listener), app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
                if let Err(error) = served {
                    tracing::error!(%error, "origin HTTP API failed");
                }
            }),
            Some(tls) => {
                let acceptor = TlsAcceptor::from(tls.server_config(&[b"h2", b"http/1.1"]));
                let listener =
                    TlsListener::new(listener, acceptor).map_err(|source| OriginError::Bind {
                        addr: settings.listen,
                        source,
                    })?;
                tokio::spawn(async move {
                    let served = axum::serve(listener, app)
                        .with_graceful_shutdown(stop.cancelled_owned())
                        .await;
                    if let Err(error) = served {
                        tracing::error!(%error, "origin HTTPS API failed");
                    }
                })
            }
        };
        tracing::info!(
            name = %settings.name,
            http = %http_addr,
            tls = settings.tls.is_some(),
            peers = %session.local_addr(),
            blobs = session.store().complete_digests().len(),
            "origin serving"
        );
        // The store is scanned and its blobs seeded (`seed_stored` above).
        ready.set(true);
        Ok(Origin {
            http_addr,
            session,
            upstreams,
            counters,
            ready,
            shutdown,
            tasks,
            server,
        })
    }

    /// Where the HTTP API listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where peers reach this origin's swarm session.
    pub fn peer_addr(&self) -> SocketAddr {
        self.session.local_addr()
    }

    /// The swarm session (for status pages and tests).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// What the origin has done so far.
    pub fn stats(&self) -> Stats {
        crate::stats::snapshot(&self.upstreams, &self.counters, &self.session)
    }

    /// Stops serving (in-flight responses get a short grace), cancels
    /// running fetches (their partial writes are deleted), stops seeding,
    /// and waits for every task.
    pub async fn shutdown(self) {
        self.ready.set(false);
        self.shutdown.cancel();
        let abort = self.server.abort_handle();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.server)
            .await
            .is_err()
        {
            abort.abort();
        }
        self.tasks.close();
        self.tasks.wait().await;
        self.session.shutdown().await;
    }
}

/// Seeds every complete blob of the store: after a restart the swarm gets
/// them back without any upstream request.
async fn seed_stored(session: &Session) {
    let digests = session.store().complete_digests();
    for digest in &digests {
        if let Err(error) = session.seed(digest).await {
            tracing::warn!(%digest, %error, "seeding a stored blob");
        }
    }
    if !digests.is_empty() {
        tracing::info!(blobs = digests.len(), "seeding stored blobs");
    }
}
