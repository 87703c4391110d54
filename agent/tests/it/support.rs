//! Fixtures: an in-process tracker (the real `shoal_tracker::serve`), agents
//! (the real `shoal_agent::Agent`), and, until the real origin lands, an
//! origin stand-in that speaks the origin's documented contract (registry
//! read API with Range, internal metainfo endpoint) and seeds its blobs
//! through a real swarm session. It lives only here, never in a binary.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use shoal_agent::config::{Config, OriginConfig};
use shoal_agent::{Agent, Settings};
use shoal_registry::{ManifestReference, RegistryRoute};
use shoal_swarm::Digest;
use shoal_swarm::session::{Session, SessionConfig};
use shoal_swarm::store::Store;
use tokio::sync::oneshot;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Held by the tests whose assertions depend on throughput (how much the
/// swarm carries, when the first byte arrives) and by the heavy real-client
/// pulls: the test harness runs tests in parallel on a 2-core CI machine,
/// and a swarm starved of CPU by its neighbours leans on the origin.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Deterministic pseudo-random bytes (xorshift), cheap enough for GiBs.
pub struct Bytes64(u64);

impl Bytes64 {
    pub fn new(seed: u64) -> Self {
        Bytes64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let bytes = self.0.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

pub fn sha256(data: &[u8]) -> Digest {
    Digest::from_bytes(Sha256::digest(data).into())
}

/// The real tracker, served from this process; stops on drop.
pub struct Tracker {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Tracker {
    pub async fn start(origins: &[&Origin]) -> Self {
        let configs: Vec<OriginConfig> = origins.iter().map(|o| o.config()).collect();
        Self::start_with(&configs).await
    }

    /// A tracker that hands out these origin addresses (which may differ
    /// from where the origins really listen).
    pub async fn start_with(origins: &[OriginConfig]) -> Self {
        let mut toml = String::from("[announce]\ninterval_seconds = 1\n");
        for origin in origins {
            toml.push_str(&format!(
                "[[origins]]\nname = \"{}\"\nhttp = \"{}\"\npeer = \"{}\"\n",
                origin.name, origin.http, origin.peer
            ));
        }
        let settings = shoal_tracker::Config::parse(&toml)
            .expect("tracker config")
            .settings()
            .expect("tracker settings");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(shoal_tracker::serve(
            listener,
            settings,
            shoal_tracker::MemoryStore::new(100_000),
            async {
                let _ = stopped.await;
            },
        ));
        Tracker { addr, _stop: stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Settings for a test agent on free loopback ports.
pub fn agent_config(data_dir: &Path, tracker: Option<String>, origins: &[&Origin]) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        peer_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        cache_bytes: 0,
        tracker: tracker.unwrap_or_default(),
        default_registry: String::new(),
        stall_timeout_ms: 3_000,
        metainfo_wait_seconds: 20,
        origin_timeout_ms: 5_000,
        origins: origins.iter().map(|o| o.config()).collect(),
        ..Config::default()
    }
}

pub async fn start_agent(config: &Config) -> Agent {
    let settings: Settings = config.settings().expect("agent settings");
    Agent::start(settings).await.expect("agent starts")
}

/// Stand-in for the origin (see the module doc).
pub struct Origin {
    pub name: String,
    pub http: SocketAddr,
    pub peer: SocketAddr,
    pub session: Session,
    state: Arc<OriginState>,
    _stop: oneshot::Sender<()>,
}

/// (repository, tag or digest).
type ManifestKey = (String, String);

struct OriginState {
    store: Store,
    manifests: Mutex<HashMap<ManifestKey, (String, Vec<u8>)>>,
    http_bytes: AtomicU64,
    down: AtomicBool,
    corrupt: AtomicBool,
    fetching: AtomicU64,
}

impl Origin {
    pub async fn start(name: &str, dir: &Path) -> Self {
        Self::start_limited(name, dir, 0).await
    }

    /// An origin whose swarm uploads at most `upload_limit` bytes/s, as a
    /// real origin's uplink would, so that agents must swarm.
    pub async fn start_limited(name: &str, dir: &Path, upload_limit: u64) -> Self {
        let store = Store::open(dir, 0).await.expect("origin store");
        let config = SessionConfig {
            upload_limit,
            ..SessionConfig::default()
        };
        let session = Session::start(config, store.clone())
            .await
            .expect("origin session");
        let state = Arc::new(OriginState {
            store,
            manifests: Mutex::new(HashMap::new()),
            http_bytes: AtomicU64::new(0),
            down: AtomicBool::new(false),
            corrupt: AtomicBool::new(false),
            fetching: AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(Arc::clone(&state));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Origin {
            name: name.into(),
            http,
            peer: session.local_addr(),
            session,
            state,
            _stop: stop,
        }
    }

    pub fn config(&self) -> OriginConfig {
        OriginConfig {
            name: self.name.clone(),
            http: format!("http://{}", self.http),
            peer: self.peer.into(),
        }
    }

    /// Stores and seeds a blob of `len` pseudo-random bytes, streamed.
    pub async fn add_random(&self, len: u64, seed: u64) -> Digest {
        let mut hasher = Sha256::new();
        let mut bytes = Bytes64::new(seed);
        let mut buf = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            bytes.fill(&mut buf[..n]);
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        let digest = Digest::from_bytes(hasher.finalize().into());
        let mut writer = self.state.store.ingest(digest, len).await.unwrap();
        let mut bytes = Bytes64::new(seed);
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            bytes.fill(&mut buf[..n]);
            writer.write(&buf[..n]).await.unwrap();
            left -= n as u64;
        }
        writer.finish().await.unwrap();
        self.session.seed(&digest).await.unwrap();
        digest
    }

    pub async fn add_bytes(&self, data: &[u8]) -> Digest {
        let digest = sha256(data);
        let mut writer = self
            .state
            .store
            .ingest(digest, data.len() as u64)
            .await
            .unwrap();
        writer.write(data).await.unwrap();
        writer.finish().await.unwrap();
        self.session.seed(&digest).await.unwrap();
        digest
    }

    /// An OCI image manifest of `config` and `layers` (digest, size),
    /// stored under `repo:tag` and by digest. Returns its bytes.
    pub fn add_manifest(
        &self,
        repo: &str,
        tag: &str,
        config: (Digest, u64),
        layers: &[(Digest, u64)],
    ) -> (Digest, Vec<u8>) {
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|(d, s)| {
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": d.to_string(), "size": s,
                })
            })
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config.0.to_string(), "size": config.1,
            },
            "layers": layers,
        });
        let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
        let digest = sha256(&bytes);
        let mut manifests = self.state.manifests.lock().unwrap();
        for reference in [tag.to_string(), digest.to_string()] {
            manifests.insert(
                (repo.to_string(), reference),
                (OCI_MANIFEST.to_string(), bytes.clone()),
            );
        }
        (digest, bytes)
    }

    /// Blob bytes this origin has sent over HTTP and to peers.
    pub fn bytes_served(&self) -> u64 {
        let swarm: u64 = self
            .session
            .torrents()
            .iter()
            .map(|t| t.progress().uploaded)
            .sum();
        self.http_bytes() + swarm
    }

    pub fn http_bytes(&self) -> u64 {
        self.state.http_bytes.load(Ordering::Relaxed)
    }

    /// Answers the next `calls` metainfo requests with 202 Retry-After: 1,
    /// as an origin still pulling the blob upstream does.
    pub fn set_fetching(&self, calls: u64) {
        self.state.fetching.store(calls, Ordering::Relaxed);
    }

    /// Flips the first byte of every blob body sent over HTTP.
    pub fn set_corrupt(&self, corrupt: bool) {
        self.state.corrupt.store(corrupt, Ordering::Relaxed);
    }

    /// Makes every HTTP request fail with 500 (the swarm keeps seeding).
    pub fn set_http_down(&self, down: bool) {
        self.state.down.store(down, Ordering::Relaxed);
    }
}

async fn serve(
    State(state): State<Arc<OriginState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if state.down.load(Ordering::Relaxed) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let path = uri.path();
    if let Some(raw) = path.strip_prefix("/internal/v1/metainfo/") {
        let Ok(digest) = raw.parse::<Digest>() else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let fetching = state
            .fetching
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if fetching.is_ok() {
            return (StatusCode::ACCEPTED, [(header::RETRY_AFTER, "1")]).into_response();
        }
        return match state.store.metainfo(&digest).await {
            Ok(Some(metainfo)) => (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                metainfo.to_proto().encode_to_vec(),
            )
                .into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        };
    }
    let head = method == Method::HEAD;
    match RegistryRoute::parse(path) {
        Ok(RegistryRoute::Base) => "{}".into_response(),
        Ok(RegistryRoute::Manifest { name, reference }) => {
            let key = match reference {
                ManifestReference::Tag(t) => t,
                ManifestReference::Digest(d) => d.to_string(),
            };
            let found = state
                .manifests
                .lock()
                .unwrap()
                .get(&(name.to_string(), key))
                .cloned();
            match found {
                Some((media_type, bytes)) => {
                    let digest = sha256(&bytes).to_string();
                    let len = bytes.len();
                    let body = if head {
                        Body::empty()
                    } else {
                        Body::from(bytes)
                    };
                    let mut response = Response::new(body);
                    let h = response.headers_mut();
                    h.insert(header::CONTENT_TYPE, media_type.parse().unwrap());
                    h.insert("docker-content-digest", digest.parse().unwrap());
                    h.insert(header::CONTENT_LENGTH, len.into());
                    response
                }
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
        Ok(RegistryRoute::Blob { digest, .. }) => {
            let Some(reader) = state.store.get(&digest) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            let len = reader.len();
            let range = headers
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes="))
                .and_then(|v| v.split_once('-'))
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
            let (start, end, status) = match range {
                Some((a, b)) => (a, (b + 1).min(len), StatusCode::PARTIAL_CONTENT),
                None => (0, len, StatusCode::OK),
            };
            let mut response = if head {
                Response::new(Body::empty())
            } else {
                let mut data = reader
                    .read_at(start, (end - start) as usize)
                    .await
                    .unwrap()
                    .to_vec();
                if state.corrupt.load(Ordering::Relaxed) && !data.is_empty() {
                    data[0] ^= 0xff;
                }
                state
                    .http_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                Response::new(Body::from(data))
            };
            *response.status_mut() = status;
            let h = response.headers_mut();
            h.insert(header::CONTENT_LENGTH, (end - start).into());
            h.insert("docker-content-digest", digest.to_string().parse().unwrap());
            h.insert(header::ACCEPT_RANGES, "bytes".parse().unwrap());
            response
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// GETs `url`, returning status, headers and body.
pub async fn get(url: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = reqwest::get(url).await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

/// The OCI error code of an error body.
pub fn error_code(body: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(body).expect("OCI error JSON");
    json["errors"][0]["code"]
        .as_str()
        .expect("a code")
        .to_string()
}

/// Waits (bounded) until `store` holds `digest` complete: a response ends
/// when its last piece is verified, a moment before the whole-blob check
/// publishes the blob.
pub async fn wait_cached(store: &Store, digest: &Digest) -> bool {
    for _ in 0..500 {
        if store.contains(digest) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}
