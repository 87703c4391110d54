//! A listener's connections after their TLS handshake. Handshakes run
//! concurrently (a slow or silent client holds up nobody) and are bounded in
//! number and time; a failed one is logged and dropped, as a refused client
//! certificate should be.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client has to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once.
const MAX_PENDING: usize = 256;

/// Accepts on `listener` and yields each connection once its handshake
/// succeeded, with the client's address. The accepting task ends when the
/// receiver is dropped (the server shut down).
pub fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let pending = Arc::new(Semaphore::new(MAX_PENDING));
        let mut backoff = Duration::from_millis(10);
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, addr) = match accepted {
                Ok(pair) => {
                    backoff = Duration::from_millis(10);
                    pair
                }
                Err(error) => {
                    tracing::warn!(%error, ?backoff, "accepting a TLS connection failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&pending).try_acquire_owned() else {
                tracing::warn!(%addr, "too many pending TLS handshakes, dropping connection");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send((tls, addr)).await;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%addr, %error, "TLS handshake refused");
                    }
                    Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                }
            });
        }
    });
    rx
}
