//! Accepted connections, tuned for a stream of small responses.
//!
//! h2 writes a DATA payload longer than 256 bytes as a separate buffer
//! chained after its write buffer when the socket supports vectored writes,
//! and must flush the chain before it can buffer the next frame. An announce
//! response with ten peers is about 550 bytes, so every response cost its own
//! `writev` (1.9 per announce, measured), the largest single cost of an
//! announce: on loopback the kernel also delivers the segment in the writer's
//! context. Told that vectored writes are unavailable, h2 copies payloads of
//! up to 1 KiB into its buffer instead, and responses to concurrent announces
//! leave together. BENCHMARKS.md records the effect.

//!
//! With `[tls]`, the connections come out of `shoal_swarm::tls::incoming`
//! with the client's certificate already verified; tonic's server then
//! runs over them as over plain sockets, and the certificate resolver
//! reloads rotated files for each new connection (tonic's own
//! `ServerTlsConfig` takes a fixed identity).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use shoal_swarm::tls::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// An accepted connection that reports no vectored-write support.
pub(crate) struct Connection {
    io: Io,
    info: TcpConnectInfo,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The connections accepted on `listener`, over TLS with `acceptor`, with
/// Nagle's algorithm off so that a lone response is not held back waiting
/// for an ACK.
pub(crate) fn incoming(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
) -> Pin<Box<dyn Stream<Item = io::Result<Connection>> + Send>> {
    match acceptor {
        None => Box::pin(
            TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .map(|accepted| {
                    accepted.map(|stream| Connection {
                        info: stream.connect_info(),
                        io: Io::Plain(stream),
                    })
                }),
        ),
        Some(acceptor) => Box::pin(
            ReceiverStream::new(shoal_swarm::tls::incoming(listener, acceptor)).map(
                |(stream, remote): (TlsStream<TcpStream>, SocketAddr)| {
                    Ok(Connection {
                        info: TcpConnectInfo {
                            local_addr: stream.get_ref().0.local_addr().ok(),
                            remote_addr: Some(remote),
                        },
                        io: Io::Tls(Box::new(stream)),
                    })
                },
            ),
        ),
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Io::Tls(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Io::Tls(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}
