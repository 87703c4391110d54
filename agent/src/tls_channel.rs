//! The tracker channel over mutual TLS. tonic's own `ClientTlsConfig`
//! takes a fixed identity; this connector runs each connection through our
//! rustls configuration instead, whose certificate resolver picks up
//! rotated files. tonic is handed the URL as `http://` so that it leaves
//! the socket to the connector whatever TLS features it is built with.

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use shoal_swarm::tls::{Tls, TlsConnector};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The name the tracker's certificate must carry: the URL's host (an IP
/// literal or a DNS name).
pub(crate) fn server_name(url: &str) -> Result<ServerName<'static>, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{e}"))?;
    let host = uri.host().ok_or("no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| format!("{host:?}: {e}"))
}

/// `https://host:port` as tonic should see it.
pub(crate) fn plain_url(url: &str) -> String {
    match url.strip_prefix("https://") {
        Some(rest) => format!("http://{rest}"),
        None => url.to_string(),
    }
}

/// A lazily connecting channel whose connections are TLS to `name`,
/// presenting our certificate and speaking h2.
pub(crate) fn connect_lazy(endpoint: &Endpoint, name: ServerName<'static>, tls: &Tls) -> Channel {
    let connector = TlsConnector::from(Arc::new(tls.client_config(&[b"h2"])));
    endpoint.connect_with_connector_lazy(tower::service_fn(move |uri: Uri| {
        let connector = connector.clone();
        let name = name.clone();
        async move {
            let authority = uri
                .authority()
                .ok_or_else(|| std::io::Error::other("tracker URL without host"))?
                .to_string();
            let tcp = TcpStream::connect(authority).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    }))
}
