//! A blob response body that records its pull as the client reads it:
//! time to the first byte and to the last, bytes sent by source, and one
//! log line, in the pull's span, when the body ends or the client leaves.
//!
//! The end is the response's length sent, not the end of the stream:
//! hyper stops polling a body once its `Content-Length` is written.

use axum::body::Body;
use futures_util::StreamExt as _;
use futures_util::stream;
use tokio::time::Instant;
use tracing::Span;

use crate::metrics::{PullSource, Pulls};

/// One blob GET being answered.
pub(super) struct Pull {
    pulls: Pulls,
    source: PullSource,
    started: Instant,
    span: Span,
    length: u64,
    bytes: u64,
    first_byte_seen: bool,
    ended: bool,
}

impl Pull {
    /// A pull of a `length`-byte response that started at `started`,
    /// logging in the current span.
    pub(super) fn new(pulls: &Pulls, source: PullSource, started: Instant, length: u64) -> Self {
        Pull {
            pulls: pulls.clone(),
            source,
            started,
            span: Span::current(),
            length,
            bytes: 0,
            first_byte_seen: false,
            ended: false,
        }
    }

    fn chunk(&mut self, len: usize) {
        if !self.first_byte_seen && len > 0 {
            self.first_byte_seen = true;
            let seconds = self.started.elapsed().as_secs_f64();
            self.pulls.first_byte(self.source, seconds);
        }
        self.bytes += len as u64;
        self.pulls.served(self.source, len as u64);
        if self.bytes >= self.length {
            self.complete();
        }
    }

    fn complete(&mut self) {
        self.ended = true;
        let seconds = self.started.elapsed().as_secs_f64();
        self.pulls.completed(self.source, seconds);
        self.span.in_scope(|| {
            tracing::info!(source = ?self.source, bytes = self.bytes, seconds, "blob served");
        });
    }

    fn broke(&mut self, error: &axum::Error) {
        self.ended = true;
        self.span.in_scope(|| {
            tracing::warn!(source = ?self.source, bytes = self.bytes, %error, "blob response broke off");
        });
    }
}

impl Drop for Pull {
    fn drop(&mut self) {
        if !self.ended {
            self.span.in_scope(|| {
                tracing::debug!(source = ?self.source, bytes = self.bytes, "client stopped reading the blob");
            });
        }
    }
}

/// `body`, recording `pull` as it is read.
pub(super) fn observed(body: Body, mut pull: Pull) -> Body {
    if pull.length == 0 {
        pull.complete();
    }
    let chunks = body.into_data_stream();
    let observed = stream::unfold((chunks, pull), |(mut chunks, mut pull)| async move {
        if pull.ended {
            return None;
        }
        match chunks.next().await {
            Some(Ok(data)) => {
                pull.chunk(data.len());
                Some((Ok(data), (chunks, pull)))
            }
            // The body ended short of the response's length: hyper breaks
            // the connection; `Drop` logs it.
            Some(Err(error)) => {
                pull.broke(&error);
                Some((Err(error), (chunks, pull)))
            }
            None => None,
        }
    });
    Body::from_stream(observed)
}
