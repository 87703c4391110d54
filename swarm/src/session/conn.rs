//! One peer connection: dialing, the handshake, and the two tasks that move
//! its bytes. The reader decodes frames and forwards them to the blob's driver;
//! the writer sends what the driver queues, reading served blocks from the
//! store itself so that the driver never waits on disk or on a slow socket.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::digest::Digest;
use crate::metainfo::Metainfo;
use crate::peer_id::PeerId;
use crate::wire::{
    BlockRange, Handshake, Message, MessageReader, MessageWriter, WireError, receive_handshake,
    send_handshake,
};

use super::Shared;
use super::driver::Source;
use super::ratelimit::RateLimiter;
use super::stream::{PeerRead, PeerStream, PeerWrite};

/// Decoding half of a peer socket.
pub(crate) type Reader = MessageReader<PeerRead>;
/// Encoding half of a peer socket.
pub(crate) type Writer = MessageWriter<PeerWrite>;

/// Identifies one connection for the life of its driver; unlike a
/// [`PeerKey`](crate::PeerKey) it is never reused, so events from a closed
/// connection cannot be mistaken for a newer one's.
pub(crate) type ConnId = u64;

/// A connection whose handshake completed, ready to join its blob's driver.
pub(crate) struct Established {
    pub(crate) reader: Reader,
    pub(crate) writer: Writer,
    pub(crate) remote: PeerId,
    pub(crate) addr: SocketAddr,
    /// True when we dialed; decides which of two crossing connections between
    /// the same pair survives.
    pub(crate) outbound: bool,
}

/// What the driver asks a connection's writer to send.
pub(crate) enum Outgoing {
    /// A control message.
    Message(Message),
    /// A block to read from the store and send as a piece frame.
    Serve(BlockRange),
}

/// What connection tasks tell the driver.
pub(crate) enum ConnEvent {
    /// A decoded message from the peer. A piece message carries the share
    /// of its connection's inbound budget that its payload holds; dropping
    /// the event once the torrent has handled it gives the share back.
    Message {
        conn: ConnId,
        message: Message,
        budget: Option<OwnedSemaphorePermit>,
    },
    /// A served block was handed to the socket.
    Served { conn: ConnId, block: BlockRange },
    /// The connection ended; `reason` is for the log.
    Closed { conn: ConnId, reason: String },
}

/// Splits a fresh socket into framed halves.
pub(crate) fn framed(stream: PeerStream) -> (Reader, Writer) {
    let (read, write) = stream.split();
    (MessageReader::new(read), MessageWriter::new(write))
}

/// A fresh TCP socket, with TLS on top when the session uses it: as the
/// server for an accepted socket, as the client for a dialed one. The TLS
/// handshake shares the peer handshake's time limit.
pub(crate) async fn secure(
    shared: &Shared,
    stream: TcpStream,
    addr: SocketAddr,
    outbound: bool,
) -> Result<PeerStream, WireError> {
    // Control frames are tiny and latency-bound; Nagle would hold them back.
    let _ = stream.set_nodelay(true);
    let Some(tls) = &shared.tls else {
        return Ok(PeerStream::Tcp(stream));
    };
    let limit = shared.config.handshake_timeout;
    let secured = if outbound {
        // Peers are named by IP; the verifier checks the chain, not names.
        let name = ServerName::IpAddress(addr.ip().into());
        let connect = tls.connector.connect(name, stream);
        tokio::time::timeout(limit, connect)
            .await
            .map_err(|_| timed_out("TLS handshake timed out"))?
            .map(tokio_rustls::TlsStream::from)
    } else {
        tokio::time::timeout(limit, tls.acceptor.accept(stream))
            .await
            .map_err(|_| timed_out("TLS handshake timed out"))?
            .map(tokio_rustls::TlsStream::from)
    };
    Ok(PeerStream::Tls(Box::new(secured?)))
}

/// Reads the peer's handshake within the configured time, so that idle
/// sockets cannot hold a handshake slot forever.
pub(crate) async fn read_handshake(
    shared: &Shared,
    reader: &mut Reader,
) -> Result<Handshake, WireError> {
    tokio::time::timeout(shared.config.handshake_timeout, receive_handshake(reader))
        .await
        .map_err(|_| timed_out("handshake timed out"))?
}

fn timed_out(what: &'static str) -> WireError {
    WireError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}

/// Dials `addr` for blob `digest` and completes the handshake (ours first).
pub(crate) async fn dial(
    shared: Arc<Shared>,
    addr: SocketAddr,
    digest: Digest,
) -> Result<Established, WireError> {
    let connect = tokio::time::timeout(shared.config.connect_timeout, TcpStream::connect(addr));
    let stream = connect
        .await
        .map_err(|_| timed_out("connect timed out"))??;
    let stream = secure(&shared, stream, addr, true).await?;
    let (mut reader, mut writer) = framed(stream);
    send_handshake(&mut writer, digest, shared.peer_id).await?;
    let theirs = read_handshake(&shared, &mut reader).await?;
    crate::wire::check_handshake(&theirs, Some(&digest), &shared.peer_id)?;
    Ok(Established {
        reader,
        writer,
        remote: theirs.peer_id,
        addr,
        outbound: true,
    })
}

/// Forwards decoded messages to the driver until the peer hangs up, breaks
/// the protocol, or the driver cancels. Ingress is rate limited here: piece
/// payloads wait for tokens before the next frame is read, so a capped
/// download slows the sender through TCP flow control.
///
/// Piece payloads also wait for `budget` bytes of this connection's own
/// allowance, returned as the driver handles them. The driver's event queue
/// is shared by every connection of the blob and counts events, not bytes:
/// without the allowance one peer sending unrequested 1 MiB blocks while
/// the driver is busy could park a gigabyte in it.
pub(crate) async fn run_reader(
    mut reader: Reader,
    conn: ConnId,
    events: mpsc::Sender<ConnEvent>,
    download: Arc<RateLimiter>,
    budget: u32,
    cancel: CancellationToken,
) {
    let allowance = Arc::new(Semaphore::new(budget as usize));
    let reason = loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            next = reader.read_message() => next,
        };
        match next {
            Ok(Some(message)) => {
                let mut held = None;
                if let Message::Piece { data, .. } = &message {
                    let bytes = u32::try_from(data.len()).unwrap_or(u32::MAX).min(budget);
                    let permit = tokio::select! {
                        _ = cancel.cancelled() => return,
                        permit = Arc::clone(&allowance).acquire_many_owned(bytes) => permit,
                    };
                    // The semaphore is never closed, so acquiring only waits.
                    held = permit.ok();
                    download.acquire(data.len()).await;
                }
                let event = ConnEvent::Message {
                    conn,
                    message,
                    budget: held,
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
            Ok(None) => break "peer closed the connection".to_string(),
            Err(e) => break error_chain(&e),
        }
    };
    let _ = events.send(ConnEvent::Closed { conn, reason }).await;
}

/// Sends what the driver queues. Blocks are read from the blob's current
/// source (the partial file, then the complete one) and written as a header
/// plus the payload, without another copy. Flushes whenever the queue runs
/// dry, so that bursts of control messages share a syscall.
pub(crate) struct WriterTask {
    pub(crate) writer: Writer,
    pub(crate) conn: ConnId,
    pub(crate) queue: mpsc::Receiver<Outgoing>,
    pub(crate) source: watch::Receiver<Source>,
    pub(crate) metainfo: Arc<Metainfo>,
    pub(crate) events: mpsc::Sender<ConnEvent>,
    pub(crate) upload: Arc<RateLimiter>,
    pub(crate) cancel: CancellationToken,
}

impl WriterTask {
    pub(crate) async fn run(mut self) {
        let cancel = self.cancel.clone();
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            result = self.pump() => result,
        };
        if let Err(reason) = result {
            let conn = self.conn;
            let _ = self.events.send(ConnEvent::Closed { conn, reason }).await;
        }
    }

    async fn pump(&mut self) -> Result<(), String> {
        while let Some(outgoing) = self.queue.recv().await {
            match outgoing {
                Outgoing::Message(message) => self
                    .writer
                    .write_message(&message)
                    .await
                    .map_err(|e| error_chain(&e))?,
                Outgoing::Serve(block) => self.serve(block).await?,
            }
            if self.queue.is_empty() {
                self.writer.flush().await.map_err(|e| error_chain(&e))?;
            }
        }
        Ok(())
    }

    async fn serve(&mut self, block: BlockRange) -> Result<(), String> {
        let start = self
            .metainfo
            .piece_range(block.index)
            .ok_or("served block outside the blob")?
            .start;
        let source = self.source.borrow().clone();
        let data = source
            .read_at(start + u64::from(block.begin), block.length as usize)
            .await
            .map_err(|e| format!("reading block from store: {}", error_chain(&e)))?;
        self.upload.acquire(data.len()).await;
        let message = Message::Piece {
            index: block.index,
            begin: block.begin,
            data,
        };
        self.writer
            .write_message(&message)
            .await
            .map_err(|e| error_chain(&e))?;
        let served = ConnEvent::Served {
            conn: self.conn,
            block,
        };
        self.events.send(served).await.map_err(|_| "driver gone")?;
        Ok(())
    }
}

/// An error and its sources on one line, for logs.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::net::TcpListener;

    use super::*;

    const MIB: u32 = 1 << 20;

    /// A 64 MiB blob of 1 MiB pieces; the hashes never matter here.
    fn metainfo() -> Arc<Metainfo> {
        let hashes = vec![[0u8; 32]; 64];
        Arc::new(Metainfo::new(Digest::of(b"blob"), 64 * u64::from(MIB), MIB, hashes).unwrap())
    }

    /// A hostile peer streams 40 unrequested 1 MiB blocks at a driver that
    /// never looks at its queue: the reader hands over only its 4 MiB
    /// allowance and leaves the rest in the socket; each event handled lets
    /// exactly one more block through.
    #[tokio::test]
    async fn unhandled_piece_payloads_stop_at_the_connection_budget() {
        let metainfo = metainfo();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let digest = *metainfo.digest();
        let hostile = tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (_, mut writer) = framed(PeerStream::Tcp(stream));
            send_handshake(&mut writer, digest, PeerId::random()).await?;
            for index in 0..40 {
                let data = Bytes::from(vec![0u8; MIB as usize]);
                let piece = Message::Piece {
                    index,
                    begin: 0,
                    data,
                };
                writer.write_message(&piece).await?;
            }
            writer.flush().await
        });
        let (stream, _) = listener.accept().await.unwrap();
        let (mut reader, _writer) = framed(PeerStream::Tcp(stream));
        receive_handshake(&mut reader).await.unwrap();
        reader.decoder_mut().set_geometry(Arc::clone(&metainfo));
        let (events, mut queued) = mpsc::channel(1024);
        let cancel = CancellationToken::new();
        tokio::spawn(run_reader(
            reader,
            7,
            events,
            Arc::new(RateLimiter::new(0)),
            4 * MIB,
            cancel.clone(),
        ));

        let settle = || tokio::time::sleep(Duration::from_millis(300));
        settle().await;
        assert_eq!(queued.len(), 4, "only the allowance reaches the driver");
        let first = queued.recv().await.unwrap();
        assert!(matches!(
            first,
            ConnEvent::Message {
                conn: 7,
                budget: Some(_),
                ..
            }
        ));
        settle().await;
        assert_eq!(queued.len(), 3, "the event is still held: no new block");
        drop(first);
        settle().await;
        assert_eq!(queued.len(), 4, "handling one block admits one more");
        cancel.cancel();
        assert!(!hostile.is_finished(), "the rest waits in the socket");
        hostile.abort();
    }
}
