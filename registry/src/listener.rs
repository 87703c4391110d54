//! The plain-TCP listener the registry APIs (agent and origin) serve on.
//!
//! `axum::serve` leaves Nagle's algorithm on. A blob response goes out as a
//! small header segment, then body segments that the loopback stack cuts
//! below the MSS; with Nagle, the first of those waits until the client
//! acknowledges the headers, and a client with nothing to send back delays
//! that acknowledgement. A packet capture of a cold pull on a loaded
//! machine put 3.7 ms between the headers and the first body byte this
//! way, a whole piece time on loopback; on a quiet one the client's ACK
//! comes at once and the difference does not show (BENCHMARKS.md, time to
//! first byte).

use axum::serve::{Listener, ListenerExt as _};
use tokio::net::TcpListener;

/// `listener` with `TCP_NODELAY` set on every accepted connection. A
/// connection whose option cannot be set is served anyway: that costs
/// latency, not correctness.
pub fn nodelay(listener: TcpListener) -> impl Listener<Addr = std::net::SocketAddr> {
    listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY on a registry API connection");
        }
    })
}
