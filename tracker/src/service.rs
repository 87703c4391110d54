//! The gRPC `Tracker` service: validation, the peer store, the handout
//! policy and the metainfo source, wired together per request.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::Stream;

use shoal_proto::tracker::tracker_server::Tracker;
use shoal_proto::tracker::{
    AnnounceRequest, AnnounceResponse, GetMetainfoRequest, Metainfo, PeerEntry, PeerInfo,
    PrefetchJob, PrefetchRequest, PrefetchStatus, ReportProgressRequest, ReportProgressResponse,
    WatchJobsRequest,
};
use tonic::{Request, Response, Status};

use crate::config::Settings;
use crate::handout::{self, Pick, Requester};
use crate::metainfo::{ClientError, MetainfoSource, error_chain};
use crate::metrics::TrackerMetrics;
use crate::peer::PeerRecord;
use crate::prefetch::{self, Jobs};
use crate::store::{PeerStore, unix_millis_now};
use crate::validate;

/// The tracker's request handlers over a peer store `S`.
pub struct TrackerService<S> {
    store: Arc<S>,
    settings: Settings,
    metainfo: MetainfoSource,
    metrics: TrackerMetrics,
    jobs: Jobs,
}

/// A server stream of the service.
type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl<S: PeerStore> TrackerService<S> {
    /// A service storing announces in `store`, configured by `settings`,
    /// counting what it answers in `metrics`.
    pub fn new(
        store: Arc<S>,
        settings: Settings,
        metrics: TrackerMetrics,
    ) -> Result<Self, ClientError> {
        let metainfo = MetainfoSource::new(
            settings.ring.clone(),
            settings.cache_bytes,
            settings.origin_timeout,
            settings.tls.as_ref(),
        )?;
        Ok(TrackerService {
            store,
            settings,
            metainfo,
            metrics,
            jobs: Jobs::default(),
        })
    }

    async fn answer_announce(
        &self,
        request: Request<AnnounceRequest>,
    ) -> Result<Response<AnnounceResponse>, Status> {
        let announce = validate::announce(request.get_ref(), request.remote_addr())?;
        tracing::debug!(
            digest = %announce.digest,
            peer = %announce.record.id,
            pieces = announce.record.pieces,
            complete = announce.record.complete,
            uploaded = announce.uploaded,
            downloaded = announce.downloaded,
            "announce"
        );
        let now = unix_millis_now();
        let ttl = u64::try_from(self.settings.ttl.as_millis()).unwrap_or(u64::MAX);
        let live = self
            .store
            .announce(
                &announce.digest,
                announce.record.clone(),
                now,
                now.saturating_add(ttl),
            )
            .await
            .map_err(|error| {
                let error = error_chain(&error);
                tracing::warn!(%error, "peer store failed");
                Status::unavailable(format!("peer store: {error}"))
            })?;
        // Owners whose name has not resolved yet are not handed out.
        let ring = self.settings.ring.borrow().clone();
        let owners: Vec<SocketAddr> = ring
            .owners(&announce.digest)
            .filter_map(|member| member.peer.resolved())
            .collect();
        let requester = Requester {
            id: announce.record.id,
            zone: &announce.record.zone,
            complete: announce.record.complete,
            total_pieces: announce.total_pieces,
        };
        let picks = handout::select(
            &requester,
            &live,
            &owners,
            &self.settings.policy,
            &mut rand::rng(),
        );
        let peers = picks
            .into_iter()
            .filter_map(|pick| match pick {
                Pick::Peer(i) => live.get(i).map(peer_entry),
                Pick::Origin(i) => owners
                    .get(i)
                    .map(|addr| origin_entry(*addr, announce.total_pieces)),
            })
            .collect();
        Ok(Response::new(AnnounceResponse {
            peers,
            interval_seconds: u32::try_from(self.settings.interval.as_secs()).unwrap_or(u32::MAX),
        }))
    }

    async fn answer_metainfo(
        &self,
        request: Request<GetMetainfoRequest>,
    ) -> Result<Response<Metainfo>, Status> {
        let query = validate::metainfo_query(request.get_ref())?;
        let metainfo = self.metainfo.get(&query).await?;
        Ok(Response::new(Metainfo::clone(&metainfo)))
    }
}

#[tonic::async_trait]
impl<S: PeerStore> Tracker for TrackerService<S> {
    async fn announce(
        &self,
        request: Request<AnnounceRequest>,
    ) -> Result<Response<AnnounceResponse>, Status> {
        let started = Instant::now();
        let answer = self.answer_announce(request).await;
        self.metrics
            .announced(answer.as_ref().err().map(Status::code), started.elapsed());
        answer
    }

    async fn get_metainfo(
        &self,
        request: Request<GetMetainfoRequest>,
    ) -> Result<Response<Metainfo>, Status> {
        let answer = self.answer_metainfo(request).await;
        self.metrics
            .metainfo(answer.as_ref().err().map(Status::code));
        answer
    }

    type WatchJobsStream = Streamed<PrefetchJob>;

    async fn watch_jobs(
        &self,
        request: Request<WatchJobsRequest>,
    ) -> Result<Response<Self::WatchJobsStream>, Status> {
        let watch = prefetch::validate::watch(request.get_ref())?;
        Ok(Response::new(Box::pin(self.jobs.watch(watch)?)))
    }

    async fn report_progress(
        &self,
        request: Request<ReportProgressRequest>,
    ) -> Result<Response<ReportProgressResponse>, Status> {
        let report = prefetch::validate::report(request.get_ref())?;
        self.jobs.report(report)?;
        Ok(Response::new(ReportProgressResponse {}))
    }

    type PrefetchStream = Streamed<PrefetchStatus>;

    async fn prefetch(
        &self,
        request: Request<PrefetchRequest>,
    ) -> Result<Response<Self::PrefetchStream>, Status> {
        let prefetch = prefetch::validate::prefetch(request.get_ref())?;
        Ok(Response::new(Box::pin(self.jobs.start(prefetch)?)))
    }
}

fn peer_entry(record: &PeerRecord) -> PeerEntry {
    PeerEntry {
        peer: Some(PeerInfo {
            id: record.id.as_bytes().to_vec(),
            address: record.ip.to_string(),
            port: u32::from(record.port),
            zone: record.zone.to_string(),
        }),
        pieces: record.pieces,
        complete: record.complete,
        origin: record.origin,
    }
}

/// An owning origin known from the ring only: its id is unknown until the
/// handshake, so it goes out empty.
fn origin_entry(addr: SocketAddr, total_pieces: u32) -> PeerEntry {
    PeerEntry {
        peer: Some(PeerInfo {
            id: Vec::new(),
            address: addr.ip().to_string(),
            port: u32::from(addr.port()),
            zone: String::new(),
        }),
        pieces: total_pieces,
        complete: true,
        origin: true,
    }
}
