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

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// An accepted TCP connection that reports no vectored-write support.
pub(crate) struct Connection(TcpStream);

/// The connections accepted on `listener`, with Nagle's algorithm off so
/// that a lone response is not held back waiting for an ACK.
pub(crate) fn incoming(listener: TcpListener) -> impl Stream<Item = io::Result<Connection>> {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(|accepted| accepted.map(Connection))
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.0.connect_info()
    }
}
