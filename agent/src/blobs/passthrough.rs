//! The last resort when the tracker gives no metainfo, and the way a blob
//! larger than the cache quota is served: the whole blob is streamed from an
//! origin to the client while it is hashed (and written to the cache when it
//! fits and no other request is already doing so).
//!
//! Without piece hashes nothing can be verified before the end, so the last
//! chunk is held back until the whole-blob digest matches: a client that
//! already received bytes of a bad blob sees its connection break short of
//! `Content-Length`, never a complete, unverified body; and nothing
//! unverified enters the cache (the store's writer checks the digest before
//! it publishes). A client that goes away does not stop the caching.

use bytes::Bytes;
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};
use shoal_swarm::Digest;
use shoal_swarm::store::BlobWriter;
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::{BlobError, Blobs};
use crate::origin::{Location, error_chain};

/// A blob on its way from an origin.
pub struct Passthrough {
    /// The blob's length, from the origin.
    pub length: u64,
    /// Chunks in order; an `Err` means the transfer failed or the digest
    /// did not match, and the client's response must break.
    pub chunks: mpsc::Receiver<Result<Bytes, String>>,
}

/// Starts streaming the blob from the first origin that has it.
pub(super) async fn open(
    blobs: &Blobs,
    digest: &Digest,
    at: &Location,
) -> Result<Passthrough, BlobError> {
    let origins = std::sync::Arc::clone(&blobs.inner.origins);
    let (length, response) = origins.blob(at, digest).await?;
    let writer = match blobs.inner.session.store().ingest(*digest, length).await {
        Ok(writer) => Some(writer),
        Err(e) => {
            tracing::debug!(%digest, error = %error_chain(&e), "not caching this passthrough");
            None
        }
    };
    let (tx, rx) = mpsc::channel(4);
    let digest = *digest;
    // Caching goes on after the client leaves; its log lines keep the
    // pull's span.
    let task = async move {
        let mut pump = Pump {
            digest,
            length,
            client: Some(tx),
            writer,
            hasher: None,
        };
        if pump.writer.is_none() {
            pump.hasher = Some(Sha256::new());
        }
        let mut body = response.bytes_stream();
        let mut held: Option<Bytes> = None;
        let mut received: u64 = 0;
        let outcome = loop {
            let chunk = match body.next().await {
                None => break Ok(()),
                Some(Err(e)) => break Err(format!("origin stream failed: {}", error_chain(&e))),
                Some(Ok(chunk)) => chunk,
            };
            origins.count(chunk.len());
            received += chunk.len() as u64;
            if received > length {
                break Err(format!("origin sent more than {length} bytes"));
            }
            if let Err(e) = pump.absorb(&chunk).await {
                break Err(e);
            }
            if let Some(previous) = held.replace(chunk) {
                pump.send(Ok(previous)).await;
            }
            if pump.client.is_none() && pump.writer.is_none() {
                return;
            }
        };
        let verified = match outcome {
            Ok(()) if received == length => pump.verify().await,
            Ok(()) => Err(format!("origin sent {received} of {length} bytes")),
            Err(e) => Err(e),
        };
        match verified {
            Ok(()) => {
                if let Some(last) = held {
                    pump.send(Ok(last)).await;
                }
            }
            Err(reason) => {
                tracing::error!(%digest, %reason, "passthrough failed; breaking the client's response");
                pump.send(Err(reason)).await;
            }
        }
    };
    blobs.inner.tasks.spawn(task.in_current_span());
    Ok(Passthrough { length, chunks: rx })
}

struct Pump {
    digest: Digest,
    length: u64,
    client: Option<mpsc::Sender<Result<Bytes, String>>>,
    writer: Option<BlobWriter>,
    hasher: Option<Sha256>,
}

impl Pump {
    async fn absorb(&mut self, chunk: &[u8]) -> Result<(), String> {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(chunk);
        }
        if let Some(writer) = &mut self.writer
            && let Err(e) = writer.write(chunk).await
        {
            return Err(format!("caching the blob: {}", error_chain(&e)));
        }
        Ok(())
    }

    /// Forwards a chunk; a client that went away is forgotten.
    async fn send(&mut self, item: Result<Bytes, String>) {
        if let Some(client) = &self.client
            && client.send(item).await.is_err()
        {
            self.client = None;
        }
    }

    async fn verify(&mut self) -> Result<(), String> {
        if let Some(writer) = self.writer.take() {
            return writer
                .finish()
                .await
                .map(drop)
                .map_err(|e| format!("verifying the blob: {}", error_chain(&e)));
        }
        let hasher = self.hasher.take().ok_or("no hasher")?;
        let actual = Digest::from_bytes(hasher.finalize().into());
        if actual == self.digest {
            Ok(())
        } else {
            Err(format!(
                "blob of {} bytes hashed to {actual}, not {}",
                self.length, self.digest
            ))
        }
    }
}
