//! How Shoal's components learn the origin ring, inside Kubernetes or not.
//!
//! - [`config`]: the `[[origins]]` entries and the `[discovery]` table that
//!   the origin, the tracker and the agent share.
//! - [`dns`]: the static ring, its peer names (StatefulSet members' stable
//!   DNS names) looked up at start and again periodically.
//! - [`endpoints`]: the ring from the origin Service's EndpointSlices,
//!   followed by a kube-runtime watcher.
//! - [`mod@zone`]: the agent's zone from its Node's label.
//!
//! A component calls [`ring()`] once at start and reads the returned
//! [`RingWatch`] per request; an agent calls [`zone()`] when no zone is
//! configured. Outside Kubernetes (no `[discovery.kubernetes]`) nothing
//! talks to an API server.

#![warn(missing_docs, unreachable_pub)]

pub mod config;
pub mod dns;
pub mod endpoints;
pub mod zone;

use std::time::Duration;

pub use config::{DiscoveryConfig, KubernetesConfig, OriginConfig};
use shoal_swarm::ring::{Ring, RingWatch};
use tokio_util::sync::CancellationToken;

/// How long a starting component waits for the first EndpointSlice list
/// before it goes on with the configured `[[origins]]`.
pub const FIRST_LIST_WAIT: Duration = Duration::from_secs(10);

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// No Kubernetes client configuration: neither in a pod (service
    /// account) nor a kubeconfig.
    #[error("no Kubernetes client configuration (in-cluster or kubeconfig)")]
    Client(#[source] kube::Error),
    /// The Node could not be read (RBAC: `get` on nodes).
    #[error("reading Node {node:?}")]
    Node {
        /// The node's name.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// The origin ring as `config` says to follow it: the EndpointSlices of
/// `[discovery.kubernetes] service`, else `configured` (the `[[origins]]`)
/// with its peer names resolved and re-resolved. Call once at start, in the
/// runtime; the tasks end on `shutdown`.
pub async fn ring(
    config: &DiscoveryConfig,
    configured: Ring,
    shutdown: CancellationToken,
) -> Result<RingWatch, DiscoveryError> {
    match config.kubernetes.as_ref().filter(|k| !k.service.is_empty()) {
        Some(kubernetes) => {
            let client = kube::Client::try_default()
                .await
                .map_err(DiscoveryError::Client)?;
            let namespace = namespace(kubernetes, &client);
            tracing::info!(service = %kubernetes.service, %namespace, "following the origin ring through EndpointSlices");
            // Until the first list arrives, the configured ring with its
            // names looked up once.
            let (configured, _) = dns::resolve(&configured).await;
            Ok(endpoints::watch_ring(
                client,
                &namespace,
                &kubernetes.service,
                configured,
                FIRST_LIST_WAIT,
                shutdown,
            )
            .await)
        }
        None => Ok(dns::resolve_names(configured, config.dns_refresh(), shutdown).await),
    }
}

/// The zone of the node this process runs on, when `[discovery.kubernetes]`
/// is set and names a node (`node`, else `$NODE_NAME`); None otherwise or
/// when the Node has no zone label.
pub async fn zone(config: &DiscoveryConfig) -> Result<Option<String>, DiscoveryError> {
    let Some(kubernetes) = &config.kubernetes else {
        return Ok(None);
    };
    let node = match kubernetes.node.trim() {
        "" => std::env::var("NODE_NAME").unwrap_or_default(),
        node => node.to_string(),
    };
    if node.is_empty() {
        return Ok(None);
    }
    let client = kube::Client::try_default()
        .await
        .map_err(DiscoveryError::Client)?;
    zone::node_zone(client, &node)
        .await
        .map_err(|source| DiscoveryError::Node { node, source })
}

/// The configured namespace, else `$POD_NAMESPACE`, else the client's.
fn namespace(kubernetes: &KubernetesConfig, client: &kube::Client) -> String {
    if !kubernetes.namespace.is_empty() {
        return kubernetes.namespace.clone();
    }
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_string())
}
