//! The HTTP API's listener when `[tls]` is set: connections come out of
//! `shoal_swarm::tls::incoming` with their handshake done and the client's
//! certificate verified, and `axum::serve` takes them through its
//! `Listener` trait. Serving this way (rather than with axum-server) keeps
//! one accept path, `axum::serve` with its graceful shutdown, for plain and
//! TLS alike, adds no dependency, and lets the certificate resolver reload
//! rotated files for every new connection.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use shoal_swarm::tls::TlsAcceptor;

/// TLS connections ready for HTTP.
pub(crate) struct TlsListener {
    connections: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener`.
    pub(crate) fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        Ok(TlsListener {
            connections: shoal_swarm::tls::incoming(listener, acceptor),
            local_addr,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accepting task only ends once this receiver is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
