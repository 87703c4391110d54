//! One running agent: the blob store, the swarm session, the tracker and
//! origin clients, and the registry API server, started together and shut
//! down together. The binary runs one; tests run several in one process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shoal_swarm::session::{Session, SessionConfig, SessionError};
use shoal_swarm::store::{Store, StoreError};
use shoal_swarm::tls::Tls;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{ApiState, router};
use crate::blobs::{BlobPolicy, Blobs};
use crate::config::Settings;
use crate::metrics::{self, Pulls};
use crate::origin::{OriginError, Origins};
use crate::prefetch;
use crate::readiness::{AgentReadiness, probe_tracker};
use crate::tracker::{Identity, Tracker, TrackerError};

/// How long in-flight responses get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The cache directory could not be opened.
    #[error("opening the blob cache")]
    Store(#[from] StoreError),
    /// The peer listener could not start.
    #[error("starting the swarm session")]
    Session(#[from] SessionError),
    /// The tracker URL is unusable.
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    /// The origin client could not be built.
    #[error("origin client")]
    Origins(#[from] OriginError),
    /// `[discovery.kubernetes]` is set but no Kubernetes client could be made.
    #[error("origin discovery")]
    Discovery(#[from] shoal_discovery::DiscoveryError),
    /// The registry API address could not be bound.
    #[error("binding the registry API on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A running agent.
pub struct Agent {
    registry_addr: SocketAddr,
    blobs: Blobs,
    pulls: Pulls,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    server: JoinHandle<()>,
}

impl Agent {
    /// Opens the cache, starts the swarm session, seeds and announces what
    /// the cache holds, and serves the registry API.
    pub async fn start(settings: Settings) -> Result<Agent, StartError> {
        let store = Store::open(&settings.data_dir, settings.cache_bytes).await?;
        let session = Session::start(
            SessionConfig {
                listen: settings.peer_listen,
                upload_limit: settings.upload_limit,
                download_limit: settings.download_limit,
                tls: settings.tls.clone().filter(Tls::peer),
                ..SessionConfig::default()
            },
            store,
        )
        .await?;
        let shutdown = CancellationToken::new();
        let zone = zone(&settings).await;
        let mut labels = settings.labels.clone();
        if !zone.is_empty() {
            labels.entry("zone".into()).or_insert_with(|| zone.clone());
        }
        let identity = Identity {
            id: session.peer_id(),
            port: session.local_addr().port(),
            zone,
        };
        let tracker = Tracker::new(
            settings.tracker.as_deref(),
            settings.metainfo_wait,
            identity,
            settings.tls.as_ref(),
        )?;
        let ring =
            shoal_discovery::ring(&settings.discovery, settings.ring.clone(), shutdown.clone())
                .await?;
        let origins = Arc::new(Origins::new(
            ring,
            settings.origin_timeout,
            settings.metainfo_wait,
            settings.tls.as_ref(),
        )?);
        let tasks = TaskTracker::new();
        tasks.spawn(probe_tracker(tracker.clone(), shutdown.clone()));
        let blobs = Blobs::new(
            session,
            tracker.clone(),
            origins,
            BlobPolicy {
                small_blob_bytes: settings.small_blob_bytes,
                stall_timeout: settings.stall_timeout,
            },
            shutdown.clone(),
            tasks.clone(),
        );
        blobs.seed_cached().await;
        if tracker.is_configured() && !settings.node_name.is_empty() {
            let context = prefetch::Context {
                blobs: blobs.clone(),
                tracker,
                default_registry: settings.default_registry.clone(),
            };
            let node = prefetch::Node {
                name: settings.node_name.clone(),
                labels,
            };
            tasks.spawn(prefetch::run(
                context,
                node,
                shutdown.clone(),
                tasks.clone(),
            ));
        } else if tracker.is_configured() {
            tracing::warn!(
                "no node name (node_name, $NODE_NAME, host name): not taking prefetch jobs"
            );
        }
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let registry_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: settings.listen,
            source,
        })?;
        let pulls = Pulls::default();
        let app = router(ApiState {
            blobs: blobs.clone(),
            default_registry: settings.default_registry.as_deref().map(Arc::from),
            pulls: pulls.clone(),
        });
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            let served = axum::serve(shoal_registry::listener::nodelay(listener), app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "registry API server failed");
            }
        });
        tracing::info!(
            registry = %registry_addr,
            peers = %blobs.session().local_addr(),
            peer_id = %blobs.session().peer_id(),
            "agent serving"
        );
        Ok(Agent {
            registry_addr,
            blobs,
            pulls,
            shutdown,
            tasks,
            server,
        })
    }

    /// Where the registry API listens.
    pub fn registry_addr(&self) -> SocketAddr {
        self.registry_addr
    }

    /// Where peers reach this agent.
    pub fn peer_addr(&self) -> SocketAddr {
        self.blobs.session().local_addr()
    }

    /// The blob paths (for status and tests).
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// `/metrics`, `/healthz` and `/readyz` for this agent. The binary
    /// serves them on `metrics_listen`, apart from the registry API, which
    /// stays on loopback; in-process agents (tests, `shoal demo`) serve
    /// them only if they ask.
    pub fn admin_router(&self) -> axum::Router {
        let registry = metrics::registry(&self.blobs, &self.pulls);
        let readiness = AgentReadiness {
            tracker: self.blobs.tracker().clone(),
            shutdown: self.shutdown.clone(),
        };
        shoal_telemetry::router(Arc::new(registry), Arc::new(readiness))
    }

    /// Stops serving (in-flight responses get a short grace), stops every
    /// torrent and waits for the agent's tasks.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let abort = self.server.abort_handle();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.server)
            .await
            .is_err()
        {
            abort.abort();
        }
        self.blobs.session().shutdown().await;
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// The zone to announce: the configured one, else (with
/// `[discovery.kubernetes]`) the Node's zone label. A failed lookup costs
/// only zone-aware handout, so the agent starts without a zone.
async fn zone(settings: &Settings) -> String {
    if !settings.zone.is_empty() {
        return settings.zone.clone();
    }
    match shoal_discovery::zone(&settings.discovery).await {
        Ok(Some(zone)) => {
            tracing::info!(%zone, "zone from the Node's label");
            zone
        }
        Ok(None) => String::new(),
        Err(error) => {
            let error = crate::origin::error_chain(&error);
            tracing::warn!(%error, "could not read the Node's zone; announcing none");
            String::new()
        }
    }
}
