//! Test fixtures: free ports, a `redis-server` per test, an in-process
//! tracker, the tracker binary as a process, and an origin that serves the
//! internal metainfo endpoint with scripted answers.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use prost::Message as _;
use shoal_proto::tracker::tracker_client::TrackerClient;
use shoal_proto::tracker::{AnnounceRequest, PeerInfo, announce_request::Pieces};
use shoal_swarm::ring::Member;
use shoal_swarm::{Digest, Metainfo};
use shoal_tracker::{Config, PeerStore, Settings};
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A private `redis-server` on a free loopback port, killed on drop. Fails
/// the test loudly when the binary is missing: the Redis store must not go
/// untested silently.
pub struct RedisServer {
    child: Child,
    pub url: String,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}); the Redis store tests need it: \
                     run scripts/test.sh or `apt-get install redis-server`"
                )
            });
        let url = format!("redis://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, url }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn settings(toml: &str) -> Settings {
    Config::parse(toml).unwrap().settings().unwrap()
}

pub fn origins_toml(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| {
            format!(
                "[[origins]]\nname = \"{}\"\nhttp = \"{}\"\npeer = \"{}\"\n",
                m.name, m.http, m.peer
            )
        })
        .collect()
}

/// A tracker served from this process; stops on drop.
pub struct InProcess {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl InProcess {
    pub async fn start<S: PeerStore>(settings: Settings, store: S) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(shoal_tracker::serve(listener, settings, store, async {
            let _ = stopped.await;
        }));
        InProcess { addr, _stop: stop }
    }

    pub async fn client(&self) -> TrackerClient<Channel> {
        client(self.addr).await
    }
}

pub async fn client(addr: SocketAddr) -> TrackerClient<Channel> {
    TrackerClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// The tracker binary, killed on drop.
pub struct Process {
    child: Child,
    pub addr: SocketAddr,
    _config: tempfile::NamedTempFile,
}

impl Process {
    /// Starts `shoal-tracker --config <toml> --listen <free port> <args>`
    /// and waits until its health service reports SERVING.
    pub async fn start(toml: &str, args: &[&str]) -> Self {
        let config = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(config.path(), toml).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(env!("CARGO_BIN_EXE_shoal-tracker"))
            .arg("--config")
            .arg(config.path())
            .args(["--listen", &addr.to_string()])
            .args(args)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        let process = Process {
            child,
            addr,
            _config: config,
        };
        process.wait_serving().await;
        process
    }

    async fn wait_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if health(self.addr).await == Some(ServingStatus::Serving) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tracker on {} never became healthy",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Tracker service's health, or None if nothing answers.
pub async fn health(addr: SocketAddr) -> Option<ServingStatus> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: "shoal.tracker.v1.Tracker".into(),
    };
    let response = client.check(request).await.ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

/// An announce of `pieces` out of 10 by the peer whose id bytes are `id`.
pub fn announce(blob: &Digest, id: u8, pieces: u32, zone: &str) -> AnnounceRequest {
    AnnounceRequest {
        digest: blob.to_string(),
        peer: Some(PeerInfo {
            id: vec![id; 20],
            address: format!("10.0.0.{id}"),
            port: 7000,
            zone: zone.into(),
        }),
        pieces: Some(Pieces::PieceCount(pieces)),
        total_pieces: 10,
        complete: pieces == 10,
        ..AnnounceRequest::default()
    }
}

/// What the test origin answers.
#[derive(Clone)]
pub enum Script {
    Serve(Metainfo),
    SlowServe(Metainfo, Duration),
    Fetching(&'static str),
    NotFound,
    Fail,
}

/// An origin serving `GET /internal/v1/metainfo/{digest}` from a script,
/// counting calls and remembering the last query string.
pub struct TestOrigin {
    pub member: Member,
    pub calls: Arc<AtomicUsize>,
    pub last_query: Arc<Mutex<Vec<(String, String)>>>,
}

#[derive(Clone)]
struct OriginState {
    script: Script,
    calls: Arc<AtomicUsize>,
    last_query: Arc<Mutex<Vec<(String, String)>>>,
}

impl TestOrigin {
    pub async fn start(name: &str, script: Script) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = format!("http://{}", listener.local_addr().unwrap());
        let state = OriginState {
            script,
            calls: Arc::default(),
            last_query: Arc::default(),
        };
        let origin = TestOrigin {
            member: Member {
                name: name.into(),
                http,
                peer: SocketAddr::from(([127, 0, 0, 1], free_port())).into(),
            },
            calls: state.calls.clone(),
            last_query: state.last_query.clone(),
        };
        let app = axum::Router::new()
            .route(
                "/internal/v1/metainfo/{digest}",
                axum::routing::get(serve_metainfo),
            )
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        origin
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn serve_metainfo(
    State(state): State<OriginState>,
    Path(_digest): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    *state.last_query.lock().unwrap() = query;
    let body = |m: &Metainfo| {
        (
            [("content-type", "application/x-protobuf")],
            m.to_proto().encode_to_vec(),
        )
            .into_response()
    };
    match state.script {
        Script::Serve(m) => body(&m),
        Script::SlowServe(m, delay) => {
            tokio::time::sleep(delay).await;
            body(&m)
        }
        Script::Fetching(after) => (StatusCode::ACCEPTED, [("retry-after", after)]).into_response(),
        Script::NotFound => (
            StatusCode::NOT_FOUND,
            r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
        )
            .into_response(),
        Script::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Metainfo of a 3-piece blob named by `seed`.
pub fn metainfo(seed: &[u8]) -> Metainfo {
    Metainfo::new(Digest::of(seed), 3 << 20, 1 << 20, vec![[7; 32]; 3]).unwrap()
}
