//! A peer socket, plain TCP or TLS, split into the halves the reader and
//! writer tasks own. Plain TCP keeps tokio's lock-free owned halves; a TLS
//! stream is one state machine for both directions, so its halves share it
//! through `tokio::io::split`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::TlsStream;

/// The receiving half of a peer socket.
pub(crate) enum PeerRead {
    Tcp(OwnedReadHalf),
    Tls(ReadHalf<TlsStream<TcpStream>>),
}

/// The sending half of a peer socket.
pub(crate) enum PeerWrite {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<TlsStream<TcpStream>>),
}

/// A connected peer socket, before the handshake.
pub(crate) enum PeerStream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl PeerStream {
    /// The two halves.
    pub(crate) fn split(self) -> (PeerRead, PeerWrite) {
        match self {
            PeerStream::Tcp(stream) => {
                let (read, write) = stream.into_split();
                (PeerRead::Tcp(read), PeerWrite::Tcp(write))
            }
            PeerStream::Tls(stream) => {
                let (read, write) = tokio::io::split(*stream);
                (PeerRead::Tls(read), PeerWrite::Tls(write))
            }
        }
    }
}

impl AsyncRead for PeerRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerRead::Tcp(read) => Pin::new(read).poll_read(cx, buf),
            PeerRead::Tls(read) => Pin::new(read).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PeerWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PeerWrite::Tcp(write) => Pin::new(write).poll_write(cx, buf),
            PeerWrite::Tls(write) => Pin::new(write).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PeerWrite::Tcp(write) => Pin::new(write).poll_write_vectored(cx, bufs),
            PeerWrite::Tls(write) => Pin::new(write).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            PeerWrite::Tcp(write) => write.is_write_vectored(),
            PeerWrite::Tls(write) => write.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerWrite::Tcp(write) => Pin::new(write).poll_flush(cx),
            PeerWrite::Tls(write) => Pin::new(write).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerWrite::Tcp(write) => Pin::new(write).poll_shutdown(cx),
            PeerWrite::Tls(write) => Pin::new(write).poll_shutdown(cx),
        }
    }
}
