//! Where manifests and blobs come from: one backend per configured
//! namespace, either an OCI registry (`registry`) or an OCI image layout
//! directory (`layout`).
//!
//! Every backend answers the same two questions, a manifest by tag or
//! digest and a blob as a stream of known length, and reports failures as
//! [`UpstreamError`], whose messages never carry a credential. Every call
//! counts as one upstream request in [`UpstreamCounters`], which is how the
//! tests prove that a restarted origin asks upstream for nothing.

mod layout;
mod registry;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use shoal_registry::{ManifestReference, RepositoryName};
use shoal_swarm::Digest;

use crate::config::UpstreamSpec;

pub(crate) use layout::LayoutBackend;
pub(crate) use registry::{RegistryBackend, error_chain};

/// A manifest as upstream holds it: exact bytes, their media type and
/// digest.
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    /// `Content-Type` to serve.
    pub(crate) media_type: String,
    /// SHA-256 of `bytes` (checked).
    pub(crate) digest: Digest,
    /// The bytes, unchanged.
    pub(crate) bytes: Bytes,
}

/// A blob body on its way from upstream. The digest is checked by the
/// store as the bytes are written, not here.
pub(crate) struct BlobStream {
    /// Bytes the stream will yield.
    pub(crate) length: u64,
    /// The body.
    pub(crate) body: BoxStream<'static, std::io::Result<Bytes>>,
}

/// Why upstream could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Upstream does not have the manifest, blob or repository.
    #[error("not found upstream")]
    NotFound,
    /// Upstream refused the origin's credentials (or demands some and none
    /// are configured).
    #[error("upstream {namespace} refused the origin's credentials")]
    Unauthorized {
        /// The namespace whose upstream refused.
        namespace: String,
    },
    /// Any other failure: unreachable, TLS, a 5xx, a malformed answer. The
    /// message has every configured secret removed.
    #[error("upstream {namespace} failed: {message}")]
    Failed {
        /// The namespace whose upstream failed.
        namespace: String,
        /// What happened.
        message: String,
    },
    /// The request names a namespace with no `[upstreams]` table.
    #[error("no upstream is configured for namespace {0:?}")]
    UnknownNamespace(String),
    /// The request has no `?ns=` and no default namespace is configured.
    #[error("no ?ns= given and no default_registry configured")]
    NoNamespace,
}

/// Requests made to upstreams and blob bytes received from them.
#[derive(Debug, Default)]
pub(crate) struct UpstreamCounters {
    pub(crate) requests: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// Requests answered "not found".
    pub(crate) not_found: AtomicU64,
    /// Requests refused for the origin's credentials.
    pub(crate) unauthorized: AtomicU64,
    /// Requests that failed otherwise (unreachable, TLS, 5xx, bad answer).
    pub(crate) failed: AtomicU64,
}

impl UpstreamCounters {
    /// Counts a request's failure by kind; namespace errors never reached
    /// an upstream and are not counted.
    fn failure(&self, error: &UpstreamError) {
        let counter = match error {
            UpstreamError::NotFound => &self.not_found,
            UpstreamError::Unauthorized { .. } => &self.unauthorized,
            UpstreamError::Failed { .. } => &self.failed,
            UpstreamError::UnknownNamespace(_) | UpstreamError::NoNamespace => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

enum Backend {
    Registry(RegistryBackend),
    Layout(LayoutBackend),
}

/// Every configured upstream.
pub(crate) struct Upstreams {
    backends: BTreeMap<String, Backend>,
    default: Option<String>,
    counters: Arc<UpstreamCounters>,
}

impl Upstreams {
    /// Builds one backend per namespace.
    pub(crate) fn new(
        specs: &BTreeMap<String, UpstreamSpec>,
        default: Option<String>,
    ) -> Result<Self, UpstreamError> {
        let counters = Arc::new(UpstreamCounters::default());
        let mut backends = BTreeMap::new();
        for (namespace, spec) in specs {
            let backend = match spec {
                UpstreamSpec::Registry(registry) => {
                    Backend::Registry(RegistryBackend::new(namespace, registry)?)
                }
                UpstreamSpec::Layout(root) => Backend::Layout(LayoutBackend::new(root.clone())),
            };
            backends.insert(namespace.clone(), backend);
        }
        Ok(Upstreams {
            backends,
            default,
            counters,
        })
    }

    /// The namespace a request means: its `?ns=` (already checked and
    /// lowercased) or the default.
    pub(crate) fn namespace(&self, ns: Option<&str>) -> Result<String, UpstreamError> {
        let ns = match ns {
            Some(ns) => ns.to_owned(),
            None => self.default.clone().ok_or(UpstreamError::NoNamespace)?,
        };
        if self.backends.contains_key(&ns) {
            Ok(ns)
        } else {
            Err(UpstreamError::UnknownNamespace(ns))
        }
    }

    /// Fetches a manifest by tag or digest.
    pub(crate) async fn manifest(
        &self,
        namespace: &str,
        name: &RepositoryName,
        reference: &ManifestReference,
    ) -> Result<Manifest, UpstreamError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let answer = match self.backend(namespace)? {
            Backend::Registry(registry) => registry.manifest(name, reference).await,
            Backend::Layout(layout) => layout.manifest(reference).await,
        };
        if let Err(error) = &answer {
            self.counters.failure(error);
        }
        answer
    }

    /// Opens a blob's body.
    pub(crate) async fn blob(
        &self,
        namespace: &str,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<BlobStream, UpstreamError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let answer = match self.backend(namespace)? {
            Backend::Registry(registry) => registry.blob(name, digest).await,
            Backend::Layout(layout) => layout.blob(digest).await,
        };
        if let Err(error) = &answer {
            self.counters.failure(error);
        }
        answer
    }

    /// The shared counters.
    pub(crate) fn counters(&self) -> &Arc<UpstreamCounters> {
        &self.counters
    }

    fn backend(&self, namespace: &str) -> Result<&Backend, UpstreamError> {
        self.backends
            .get(namespace)
            .ok_or_else(|| UpstreamError::UnknownNamespace(namespace.to_owned()))
    }
}
