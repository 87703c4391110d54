//! Mutual TLS between Shoal's components, optional and off by default.
//!
//! - [`TlsConfig`]: the `[tls]` table every component reads.
//! - [`Tls`]: the loaded certificates and the rustls configurations built
//!   from them: servers that require a client certificate chaining to the
//!   CA, clients that present one.
//! - `identity`: this process's certificate and key, re-read when their
//!   files change, so that a rotated certificate is used by every new
//!   connection without a restart.
//! - `peer_verifier`: peers are dialed by IP and identified by their chain
//!   alone, see [`Tls::peer_connector`].
//! - [`incoming`]: a listener's accepted connections after their TLS
//!   handshake, for servers that take a stream of connections (axum, tonic).
//!
//! The crypto provider is always aws-lc-rs, named explicitly: it is the one
//! the rest of the tree (reqwest, kube) builds, and with two providers
//! compiled in rustls refuses to pick one by itself.

mod identity;
mod incoming;
mod peer_verifier;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};

pub use incoming::{HANDSHAKE_TIMEOUT, incoming};
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

use identity::Identity;
use peer_verifier::ChainOnly;

/// `[tls]`: present, it turns on mTLS for the tracker's gRPC and the
/// origins' HTTP API (every server requires a client certificate, every
/// client presents one); `peer` adds the peer connections.
///
/// ```toml
/// [tls]
/// ca = "/etc/shoal/tls/ca.crt"     # bundle every certificate must chain to
/// cert = "/etc/shoal/tls/tls.crt"  # this component's chain, leaf first
/// key = "/etc/shoal/tls/tls.key"   # its private key (PKCS#8, PKCS#1 or SEC1)
/// peer = false                     # also the swarm's peer connections
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM bundle of the CA certificates that every server and client
    /// certificate must chain to.
    pub ca: PathBuf,
    /// PEM certificate chain of this component, leaf first.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// Peer connections use TLS too. Every agent and origin of a swarm must
    /// agree: a TLS peer and a plain one cannot talk.
    #[serde(default)]
    pub peer: bool,
}

/// Why the `[tls]` files were refused; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("tls.{key}: {}: {reason}", path.display())]
    File {
        /// The key naming the file: `ca`, `cert` or `key`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The certificates and key do not make a working configuration (the
    /// key does not match the certificate, a CA certificate is malformed).
    #[error("tls: {0}")]
    Rustls(String),
}

/// The loaded `[tls]` files and the rustls configurations built on them.
/// Build once at start (every fallible step happens here); the
/// configurations pick up rotated certificates themselves.
#[derive(Debug, Clone)]
pub struct Tls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    peer_client: Arc<ClientConfig>,
    peer: bool,
}

impl Tls {
    /// Reads the CA bundle, the certificate and the key, checking that they
    /// parse and that the key matches the certificate.
    pub fn load(config: &TlsConfig) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in read_certs("ca", &config.ca)? {
            roots.add(cert).map_err(|e| TlsError::File {
                key: "ca",
                path: config.ca.clone(),
                reason: e.to_string(),
            })?;
        }
        let roots = Arc::new(roots);
        let identity = Arc::new(Identity::load(
            &config.cert,
            &config.key,
            Arc::clone(&provider),
        )?);
        let rustls_error = |e: rustls::Error| TlsError::Rustls(e.to_string());

        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(rustls_error)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::clone(&identity) as _);

        let client = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(rustls_error)?
            .with_root_certificates(Arc::clone(&roots))
            .with_client_cert_resolver(Arc::clone(&identity) as _);

        let chain_only = ChainOnly::new(roots, Arc::clone(&provider));
        let peer_client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(rustls_error)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(chain_only))
            .with_client_cert_resolver(identity as _);
        Ok(Tls {
            server: Arc::new(server),
            client: Arc::new(client),
            peer_client: Arc::new(peer_client),
            peer: config.peer,
        })
    }

    /// True when peer connections use TLS.
    pub fn peer(&self) -> bool {
        self.peer
    }

    /// A server configuration that requires a client certificate chaining
    /// to the CA and offers `alpn` (e.g. `h2`, `http/1.1`).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let mut config = ServerConfig::clone(&self.server);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// A server acceptor for peer connections (no ALPN).
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.server))
    }

    /// A client configuration for the tracker and the origins' HTTP API:
    /// the server's certificate must chain to the CA and name the host
    /// dialed (a DNS name, or an IP address SAN); ours is presented.
    pub fn client_config(&self, alpn: &[&[u8]]) -> ClientConfig {
        let mut config = ClientConfig::clone(&self.client);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }

    /// A connector for peer connections: the peer's chain must lead to the
    /// CA, its names are not checked. Peers are dialed by the IP the
    /// tracker hands out, which changes with every pod, so their
    /// certificates (one per DaemonSet or StatefulSet, from cert-manager)
    /// could not list it; holding a certificate from the cluster's CA is
    /// what makes a peer one of ours.
    pub fn peer_connector(&self) -> TlsConnector {
        TlsConnector::from(Arc::clone(&self.peer_client))
    }
}

/// Every certificate of a PEM file; none is an error naming the key.
fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |reason: String| TlsError::File {
        key,
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| file_error(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error("no CERTIFICATE in it".into()));
    }
    Ok(certs)
}
