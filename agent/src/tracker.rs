//! The agent's tracker calls: a blob's metainfo (waiting, within a bound,
//! while its origin still pulls it upstream) and announces (what we hold,
//! and peers back).
//!
//! The channel connects lazily, so an agent starts while the tracker is
//! down; every call then fails fast and the caller falls back to origins.
//! Whether the tracker has answered yet is the agent's readiness; `probe`
//! asks its gRPC health service, so an idle agent learns it too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shoal_proto::tracker::tracker_client::TrackerClient;
use shoal_proto::tracker::{
    AnnounceRequest, GetMetainfoRequest, PeerInfo, PrefetchJob, ReportProgressRequest,
    WatchJobsRequest, announce_request::Pieces,
};
use shoal_swarm::session::PeerAddr;
use shoal_swarm::tls::Tls;
use shoal_swarm::{Bitfield, Digest, Metainfo, PeerId};
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::origin::Location;
use crate::tls_channel;

/// Why the tracker gave no metainfo.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetainfoError {
    /// Upstream does not have the blob.
    #[error("blob not found upstream")]
    NotFound,
    /// No tracker, the tracker failed, or the wait bound passed: go to the
    /// origins directly.
    #[error("tracker gave no metainfo: {0}")]
    Unavailable(String),
}

/// Why the tracker client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// The URL does not parse.
    #[error("tracker URL")]
    Url(#[from] tonic::transport::Error),
    /// With TLS, the URL's host is not a name a certificate can carry.
    #[error("tracker URL: not a TLS server name: {0}")]
    Name(String),
}

/// What the tracker answered to an announce.
#[derive(Debug, Clone)]
pub struct Announced {
    /// Peers to dial, best first.
    pub peers: Vec<PeerAddr>,
    /// When to announce next.
    pub interval: Duration,
}

/// Who we are in announces.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Our swarm peer id.
    pub id: PeerId,
    /// Our swarm port.
    pub port: u16,
    /// Our zone.
    pub zone: String,
}

/// The tracker connection, if one is configured.
#[derive(Clone)]
pub struct Tracker {
    client: Option<TrackerClient<Channel>>,
    health: Option<HealthClient<Channel>>,
    answered: Arc<AtomicBool>,
    /// For the job watch, which stays open: no per-call timeout, HTTP/2
    /// pings instead so a dead tracker is noticed.
    watch_client: Option<TrackerClient<Channel>>,
    wait: Duration,
    identity: Arc<Identity>,
}

/// The service name the tracker's health service reports on.
const TRACKER_SERVICE: &str = "shoal.tracker.v1.Tracker";

impl Tracker {
    /// A lazily connecting client for `url` (None: no tracker), over mTLS
    /// with `tls`. `wait` bounds the time spent waiting for an origin's
    /// upstream fetch.
    pub fn new(
        url: Option<&str>,
        wait: Duration,
        identity: Identity,
        tls: Option<&Tls>,
    ) -> Result<Self, TrackerError> {
        let (client, health, watch_client) = match url {
            Some(url) => {
                let endpoint = Endpoint::from_shared(tls_channel::plain_url(url))?
                    .connect_timeout(Duration::from_secs(3));
                let name = match tls {
                    Some(_) => Some(tls_channel::server_name(url).map_err(TrackerError::Name)?),
                    None => None,
                };
                let connect = |endpoint: Endpoint| match (tls, &name) {
                    (Some(tls), Some(name)) => {
                        tls_channel::connect_lazy(&endpoint, name.clone(), tls)
                    }
                    _ => endpoint.connect_lazy(),
                };
                let channel = connect(endpoint.clone().timeout(Duration::from_secs(15)));
                let watch = connect(
                    endpoint
                        .http2_keep_alive_interval(Duration::from_secs(20))
                        .keep_alive_timeout(Duration::from_secs(10))
                        .keep_alive_while_idle(true),
                );
                (
                    Some(TrackerClient::new(channel.clone())),
                    Some(HealthClient::new(channel)),
                    Some(TrackerClient::new(watch)),
                )
            }
            None => (None, None, None),
        };
        Ok(Tracker {
            client,
            health,
            answered: Arc::new(AtomicBool::new(false)),
            watch_client,
            wait,
            identity: Arc::new(identity),
        })
    }

    /// Whether a tracker is configured.
    pub fn is_configured(&self) -> bool {
        self.client.is_some()
    }

    /// Whether the tracker has answered a call since the agent started
    /// (true when none is configured: there is nothing to wait for).
    pub fn has_answered(&self) -> bool {
        self.client.is_none() || self.answered.load(Ordering::Relaxed)
    }

    /// Asks the tracker's health service whether it serves; a SERVING
    /// answer counts as the tracker having answered.
    pub async fn probe(&self) -> Result<(), String> {
        let Some(health) = &self.health else {
            return Ok(());
        };
        let request = HealthCheckRequest {
            service: TRACKER_SERVICE.into(),
        };
        let response = health
            .clone()
            .check(request)
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
        if response.get_ref().status() == ServingStatus::Serving {
            self.answered.store(true, Ordering::Relaxed);
            Ok(())
        } else {
            Err(format!("tracker reports {:?}", response.get_ref().status()))
        }
    }

    /// The blob's metainfo, checked against `digest`. UNAVAILABLE with a
    /// `retry-after` hint is retried after the hint until the wait bound.
    pub async fn metainfo(
        &self,
        digest: &Digest,
        at: &Location,
    ) -> Result<Arc<Metainfo>, MetainfoError> {
        let Some(client) = &self.client else {
            return Err(MetainfoError::Unavailable("no tracker configured".into()));
        };
        let request = GetMetainfoRequest {
            digest: digest.to_string(),
            repository: at.name.to_string(),
            namespace: at.ns.clone().unwrap_or_default(),
        };
        let deadline = Instant::now() + self.wait;
        loop {
            let status = match client.clone().get_metainfo(request.clone()).await {
                Ok(response) => {
                    self.answered.store(true, Ordering::Relaxed);
                    let metainfo = Metainfo::from_proto(response.get_ref())
                        .map_err(|e| MetainfoError::Unavailable(format!("bad metainfo: {e}")))?;
                    if metainfo.digest() != digest {
                        return Err(MetainfoError::Unavailable(format!(
                            "tracker sent metainfo for {}",
                            metainfo.digest()
                        )));
                    }
                    return Ok(Arc::new(metainfo));
                }
                Err(status) => status,
            };
            match (status.code(), retry_after(&status)) {
                (Code::NotFound, _) => return Err(MetainfoError::NotFound),
                (Code::Unavailable, Some(pause)) if Instant::now() + pause <= deadline => {
                    tracing::debug!(%digest, ?pause, "origin still fetching; asking again");
                    tokio::time::sleep(pause).await;
                }
                (code, _) => {
                    return Err(MetainfoError::Unavailable(format!(
                        "{code:?}: {}",
                        status.message()
                    )));
                }
            }
        }
    }

    /// Reports what we hold of a blob and returns peers to dial.
    pub async fn announce(
        &self,
        digest: &Digest,
        have: &Bitfield,
        uploaded: u64,
        downloaded: u64,
    ) -> Result<Announced, String> {
        let Some(client) = &self.client else {
            return Err("no tracker configured".into());
        };
        let request = AnnounceRequest {
            digest: digest.to_string(),
            peer: Some(PeerInfo {
                id: self.identity.id.as_bytes().to_vec(),
                address: String::new(),
                port: u32::from(self.identity.port),
                zone: self.identity.zone.clone(),
            }),
            pieces: Some(Pieces::Bitfield(have.as_bytes().to_vec())),
            total_pieces: have.len(),
            complete: have.is_complete(),
            uploaded,
            downloaded,
            origin: false,
        };
        let response = client
            .clone()
            .announce(request)
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
            .into_inner();
        self.answered.store(true, Ordering::Relaxed);
        let peers = response
            .peers
            .iter()
            .filter_map(|entry| peer_addr(entry.peer.as_ref()?))
            .collect();
        Ok(Announced {
            peers,
            interval: Duration::from_secs(u64::from(response.interval_seconds.clamp(1, 60))),
        })
    }
}

impl Tracker {
    /// Opens the stream of prefetch jobs for this node.
    pub async fn watch_jobs(
        &self,
        node: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<tonic::Streaming<PrefetchJob>, String> {
        let Some(client) = &self.watch_client else {
            return Err("no tracker configured".into());
        };
        let request = WatchJobsRequest {
            node: node.to_string(),
            labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        client
            .clone()
            .watch_jobs(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    }

    /// Reports a prefetch job's progress on this node.
    pub async fn report_progress(
        &self,
        report: ReportProgressRequest,
    ) -> Result<(), tonic::Status> {
        let Some(client) = &self.client else {
            return Err(tonic::Status::failed_precondition("no tracker configured"));
        };
        client.clone().report_progress(report).await.map(drop)
    }
}

/// A handed-out peer as a dial target; None for a malformed entry.
fn peer_addr(info: &PeerInfo) -> Option<PeerAddr> {
    let ip: IpAddr = info.address.parse().ok()?;
    let port = u16::try_from(info.port).ok().filter(|&p| p != 0)?;
    Some(PeerAddr {
        addr: SocketAddr::new(ip, port),
        id: PeerId::from_slice(&info.id).ok(),
    })
}

fn retry_after(status: &tonic::Status) -> Option<Duration> {
    let seconds: u64 = status
        .metadata()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.clamp(1, 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_out_peers_are_checked() {
        let good = PeerInfo {
            id: vec![7; 20],
            address: "127.0.0.1".into(),
            port: 7001,
            zone: String::new(),
        };
        let peer = peer_addr(&good).unwrap();
        assert_eq!(peer.addr, "127.0.0.1:7001".parse().unwrap());
        assert!(peer.id.is_some());
        let origin = PeerInfo {
            id: Vec::new(),
            ..good.clone()
        };
        assert_eq!(peer_addr(&origin).unwrap().id, None);
        for bad in [
            PeerInfo {
                address: "host".into(),
                ..good.clone()
            },
            PeerInfo {
                port: 0,
                ..good.clone()
            },
            PeerInfo {
                port: 70000,
                ..good.clone()
            },
        ] {
            assert!(peer_addr(&bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn retry_hint_comes_from_metadata() {
        let mut status = tonic::Status::unavailable("retry after 4s");
        assert_eq!(retry_after(&status), None);
        status
            .metadata_mut()
            .insert("retry-after", "4".parse().unwrap());
        assert_eq!(retry_after(&status), Some(Duration::from_secs(4)));
    }

    #[tokio::test]
    async fn an_unreachable_tracker_is_unavailable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let identity = Identity {
            id: PeerId::random(),
            port: 1,
            zone: String::new(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let tracker = Tracker::new(Some(&url), Duration::from_secs(5), identity, None).unwrap();
        let name = shoal_registry::RepositoryName::parse("a").unwrap();
        let at = Location { name, ns: None };
        let err = tracker.metainfo(&Digest::of(b"x"), &at).await.unwrap_err();
        assert!(matches!(err, MetainfoError::Unavailable(_)), "{err}");
        let err = tracker
            .announce(&Digest::of(b"x"), &Bitfield::new(3), 0, 0)
            .await
            .unwrap_err();
        assert!(!err.is_empty());
    }
}
