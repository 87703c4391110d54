//! This process's certificate and key, as servers and clients present them.
//! The files are checked again at most once per [`RECHECK`] when a handshake
//! asks for the certificate, and re-read when their modification time or
//! length changed: cert-manager and kubelet rotate a mounted Secret by
//! swapping the files, and new connections should use the new certificate
//! while established ones go on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{TlsError, read_certs};

/// How often a handshake may look at the files' metadata.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

/// The files' modification times and lengths, to notice a rewrite.
type Stamp = [Option<(SystemTime, u64)>; 2];

/// The certificate and key, reloaded when their files change.
#[derive(Debug)]
pub(crate) struct Identity {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    current: Arc<CertifiedKey>,
    stamp: Stamp,
    checked: Instant,
}

impl Identity {
    /// Reads both files now; an error names the key at fault.
    pub(crate) fn load(
        cert: &Path,
        key: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let stamp = stamp(cert, key);
        let current = Arc::new(read(cert, key, &provider)?);
        Ok(Identity {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            state: Mutex::new(State {
                current,
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    /// The certificate to present, re-read first if the files changed. A
    /// rewrite that does not load (half written, key and certificate from
    /// different pairs) keeps the previous one and is tried again later.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock();
        if state.checked.elapsed() >= RECHECK {
            state.checked = Instant::now();
            let now = stamp(&self.cert, &self.key);
            if now != state.stamp {
                match read(&self.cert, &self.key, &self.provider) {
                    Ok(fresh) => {
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                        state.current = Arc::new(fresh);
                        state.stamp = now;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "TLS certificate changed but does not load; keeping the previous one");
                    }
                }
            }
        }
        Arc::clone(&state.current)
    }
}

impl ResolvesServerCert for Identity {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for Identity {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let of = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    [of(cert), of(key)]
}

fn read(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = read_certs("cert", cert)?;
    let key_error = |reason: String| TlsError::File {
        key: "key",
        path: key.to_owned(),
        reason,
    };
    let pem = std::fs::read(key).map_err(|e| key_error(e.to_string()))?;
    let der = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| key_error(format!("no PEM private key in it: {e}")))?;
    CertifiedKey::from_der(chain, der, provider).map_err(|e| key_error(e.to_string()))
}
