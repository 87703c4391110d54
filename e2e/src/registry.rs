//! The real upstream: Debian's `docker-registry` (CNCF distribution 2.8)
//! started on 127.0.0.1 with a config of its own, images pushed with
//! `skopeo` from OCI layouts the tests build, and, for the bearer-token
//! case, a token issuer run by the test. Missing tools fail the tests (they
//! are installed by scripts/test.sh), they never skip them.
//!
//! Shared by the origin's tests and the end-to-end tests; it panics on
//! failure because a harness failure is a failed test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine as _;
use oci_spec::image::{Arch, Descriptor, Os};
use shoal_registry::layout::LayoutWriter;

pub const USER: &str = "shoal";
pub const PASSWORD: &str = "correct-horse-battery";
pub const WRONG_PASSWORD: &str = "wrong-password-s3cr3t";

/// How the registry authenticates clients.
pub enum Auth {
    Anonymous,
    /// htpasswd (bcrypt) over TLS with a CA generated here.
    HtpasswdTls,
    /// `auth: token` with a token issuer run by the test.
    Token,
}

/// A running `docker-registry`, killed on drop.
pub struct Registry {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
    log: PathBuf,
    /// PEM of the CA the TLS registry's certificate chains to.
    pub ca_pem: Option<String>,
    pub tokens: Option<TokenIssuer>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    crate::process::free_addr().expect("free port").port()
}

impl Registry {
    pub async fn start(auth: Auth) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // The token issuer binds a port of its own first; the registry's
        // port is picked after it, so the two cannot be handed the same one.
        let issuer = match &auth {
            Auth::Token => Some(TokenIssuer::start().await),
            _ => None,
        };
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            root.join("storage").display()
        );
        let mut ca_pem = None;
        let mut tokens = None;
        match auth {
            Auth::Anonymous => {}
            Auth::HtpasswdTls => {
                let (ca, cert, key) = tls_material();
                std::fs::write(root.join("server.crt"), cert).expect("cert");
                std::fs::write(root.join("server.key"), key).expect("key");
                let certs = root.join("certs");
                std::fs::create_dir_all(&certs).expect("certs dir");
                std::fs::write(certs.join("ca.crt"), &ca).expect("ca");
                config.push_str(&format!(
                    "  tls:\n    certificate: {0}/server.crt\n    key: {0}/server.key\n",
                    root.display()
                ));
                let hash = bcrypt::hash(PASSWORD, 5).expect("bcrypt");
                std::fs::write(root.join("htpasswd"), format!("{USER}:{hash}\n"))
                    .expect("htpasswd");
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: shoal-test\n    path: {}/htpasswd\n",
                    root.display()
                ));
                ca_pem = Some(ca);
            }
            Auth::Token => {
                let issuer = issuer.expect("started above");
                std::fs::write(root.join("token.crt"), &issuer.cert_pem).expect("token cert");
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: http://{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}/token.crt\n",
                    issuer.addr,
                    root.display()
                ));
                tokens = Some(issuer);
            }
        }
        std::fs::write(root.join("config.yml"), config).expect("config");
        let log = root.join("registry.log");
        let log_file = std::fs::File::create(&log).expect("log");
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(root.join("config.yml"))
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("starting /usr/bin/docker-registry (apt-get install docker-registry)");
        let mut registry = Registry {
            addr,
            dir,
            child,
            log,
            ca_pem,
            tokens,
        };
        registry.wait_ready().await;
        registry
    }

    /// Waits until this registry process says it listens. A connect alone
    /// is not proof: between picking the free port and the registry binding
    /// it, another server may take the port, and the registry then exits
    /// while the connect succeeds against the other server.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let listening = format!("listening on {}", self.addr);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "docker-registry exited ({status}): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains(&listening) && tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "docker-registry did not listen: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Writes an amd64 image of one random `len`-byte layer (from `seed`)
    /// as an OCI layout in `dir` and pushes it as `<repo>:<tag>` with its
    /// digests kept; returns the layer. What most fault tests pull.
    pub fn push_one_layer_image(
        &self,
        dir: &Path,
        repo: &str,
        tag: &str,
        len: u64,
        seed: u64,
    ) -> Descriptor {
        let layout = dir.join("layout");
        let mut writer = LayoutWriter::create(&layout).expect("creating the layout");
        let layer = writer
            .add_random_layer(len, seed)
            .expect("writing the layer");
        let image = writer
            .add_image(std::slice::from_ref(&layer), Arch::Amd64, Os::Linux)
            .expect("writing the image");
        writer.finish(&[(tag, image)]).expect("writing index.json");
        self.push(&layout, tag, repo, tag, &["--preserve-digests"]);
        layer
    }

    /// Pushes `oci:<layout>:<tag>` to `<repo>:<tag>` with skopeo; `extra`
    /// adds flags such as `--format v2s2` or `--all`.
    pub fn push(&self, layout: &Path, tag: &str, repo: &str, dest_tag: &str, extra: &[&str]) {
        let mut command = Command::new("skopeo");
        command
            .args(["--insecure-policy", "copy", "--quiet"])
            .args(extra);
        match (&self.ca_pem, &self.tokens) {
            (Some(_), _) => {
                command
                    .arg("--dest-cert-dir")
                    .arg(self.dir.path().join("certs"))
                    .arg(format!("--dest-creds={USER}:{PASSWORD}"));
            }
            (None, Some(_)) => {
                command
                    .arg("--dest-tls-verify=false")
                    .arg(format!("--dest-creds={USER}:{PASSWORD}"));
            }
            (None, None) => {
                command.arg("--dest-tls-verify=false");
            }
        }
        command
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repo}:{dest_tag}", self.addr));
        let output = command
            .stdin(Stdio::null())
            .output()
            .expect("running skopeo (apt-get install skopeo)");
        assert!(
            output.status.success(),
            "skopeo push failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Requests in the registry's own log whose method and path start
    /// with `prefix`, e.g. `GET /v2/app/blobs/`.
    pub fn requests(&self, prefix: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).expect("registry log");
        log.lines()
            .filter(|line| line.contains("response completed"))
            .filter(|line| {
                let method = field(line, "http.request.method");
                let uri = field(line, "http.request.uri");
                format!("{method} {uri}").starts_with(prefix)
            })
            .count()
    }

    /// Tokens the test's issuer has signed (0 without one).
    pub fn tokens_issued(&self) -> u64 {
        self.tokens
            .as_ref()
            .map_or(0, |t| t.issued.load(Ordering::Relaxed))
    }

    /// The `[upstreams]` table an origin uses for this registry.
    pub fn upstream_toml(&self, password: &str) -> String {
        let ns = self.addr.to_string();
        match (&self.ca_pem, &self.tokens) {
            (Some(_), _) => {
                let ca_file = self.dir.path().join("certs/ca.crt");
                format!(
                    "[upstreams.\"{ns}\"]\nca_file = \"{}\"\nusername = \"{USER}\"\npassword = \"{password}\"\n",
                    ca_file.display()
                )
            }
            (None, Some(_)) => format!(
                "[upstreams.\"{ns}\"]\ninsecure = true\nusername = \"{USER}\"\npassword = \"{password}\"\n"
            ),
            (None, None) => format!("[upstreams.\"{ns}\"]\ninsecure = true\n"),
        }
    }
}

/// A `key=value` or `key="value"` field of a logrus text line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let Some(start) = line.find(&format!("{key}=")) else {
        return "";
    };
    let rest = &line[start + key.len() + 1..];
    if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next().unwrap_or("")
    } else {
        rest.split(' ').next().unwrap_or("")
    }
}

/// A CA, and a server certificate for 127.0.0.1 signed by it (PEM).
fn tls_material() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "shoal test CA");
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    let key = KeyPair::generate().expect("server key");
    let cert = params.signed_by(&key, &ca).expect("server cert");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

const SERVICE: &str = "shoal-test-registry";
const ISSUER: &str = "shoal-test-issuer";

/// The token endpoint of the bearer flow: checks basic credentials and
/// issues ES256 JWTs whose `x5c` header carries the signing certificate
/// (the registry's `rootcertbundle`).
pub struct TokenIssuer {
    pub addr: SocketAddr,
    pub cert_pem: String,
    pub issued: Arc<AtomicU64>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

#[derive(Clone)]
struct IssuerState {
    key: Arc<jsonwebtoken::EncodingKey>,
    cert_b64: String,
    issued: Arc<AtomicU64>,
}

impl TokenIssuer {
    async fn start() -> TokenIssuer {
        let certified = rcgen::generate_simple_self_signed(vec!["token-issuer".to_owned()])
            .expect("token cert");
        let state = IssuerState {
            key: Arc::new(jsonwebtoken::EncodingKey::from_ec_der(
                &certified.signing_key.serialize_der(),
            )),
            cert_b64: base64::engine::general_purpose::STANDARD.encode(certified.cert.der()),
            issued: Arc::new(AtomicU64::new(0)),
        };
        let issued = Arc::clone(&state.issued);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .route("/token", axum::routing::get(issue))
            .with_state(state);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        TokenIssuer {
            addr,
            cert_pem: certified.cert.pem(),
            issued,
            _stop: stop,
        }
    }
}

async fn issue(
    axum::extract::State(state): axum::extract::State<IssuerState>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> axum::response::Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(expected.as_str())
    {
        return (
            StatusCode::UNAUTHORIZED,
            "{\"details\":\"bad credentials\"}",
        )
            .into_response();
    }
    let access: Vec<serde_json::Value> = query
        .get("scope")
        .into_iter()
        .flat_map(|scopes| scopes.split(' '))
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({
                "type": kind, "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": USER, "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("t{}", state.issued.fetch_add(1, Ordering::Relaxed)),
        "access": access,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.x5c = Some(vec![state.cert_b64.clone()]);
    let token = jsonwebtoken::encode(&header, &claims, &state.key).expect("sign");
    axum::Json(serde_json::json!({"token": token, "expires_in": 300})).into_response()
}
