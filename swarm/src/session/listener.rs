//! Accepts peer connections for every blob of the session and routes each to
//! its blob's driver by the digest in the peer's handshake.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::Shared;
use super::conn::{self, Established};
use super::driver::Command;

/// Handshakes in progress at once. Bounds what a flood of idle sockets can
/// cost; established connections are bounded per blob by the driver.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// Accepts until the session shuts down. Accept errors (EMFILE and the like)
/// back off instead of spinning.
pub(crate) async fn run(listener: TcpListener, shared: Arc<Shared>) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(10);
                pair
            }
            Err(e) => {
                tracing::warn!(error = %e, ?backoff, "accepting peer connection failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&pending).try_acquire_owned() else {
            tracing::warn!(%addr, "too many pending handshakes, dropping connection");
            continue;
        };
        let shared2 = Arc::clone(&shared);
        shared.tasks.spawn(async move {
            let _permit = permit;
            if let Err(reason) = route(&shared2, stream, addr).await {
                tracing::debug!(%addr, %reason, "inbound peer connection refused");
            }
        });
    }
}

/// Reads the peer's handshake, finds its blob, answers with ours, and hands
/// the connection to the blob's driver.
async fn route(
    shared: &Arc<Shared>,
    stream: TcpStream,
    addr: std::net::SocketAddr,
) -> Result<(), String> {
    let stream = conn::secure(shared, stream, addr, false)
        .await
        .map_err(|e| conn::error_chain(&e))?;
    let (mut reader, mut writer) = conn::framed(stream);
    let theirs = conn::read_handshake(shared, &mut reader)
        .await
        .map_err(|e| conn::error_chain(&e))?;
    crate::wire::check_handshake(&theirs, None, &shared.peer_id)
        .map_err(|e| conn::error_chain(&e))?;
    let handle = shared
        .torrent(&theirs.digest)
        .ok_or_else(|| format!("no torrent for {}", theirs.digest))?;
    crate::wire::send_handshake(&mut writer, theirs.digest, shared.peer_id)
        .await
        .map_err(|e| conn::error_chain(&e))?;
    let established = Established {
        reader,
        writer,
        remote: theirs.peer_id,
        addr,
        outbound: false,
    };
    if handle
        .deliver(Command::Connected(Box::new(established)))
        .await
    {
        Ok(())
    } else {
        Err("torrent stopped".into())
    }
}
