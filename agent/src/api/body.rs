//! Response bodies that stream a blob in bounded chunks, so a multi-GiB
//! layer never sits in memory: from the cache, from a download in progress
//! (each piece awaited until it is verified and on disk), or from an
//! origin passthrough.

use std::ops::Range;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use futures_util::stream;
use shoal_swarm::store::BlobReader;
use tokio::sync::mpsc;

use crate::blobs::Fetch;
use crate::origin::error_chain;

/// Bytes read from disk per chunk. Under the 1 MiB mmap threshold the
/// agent sets (`crate::malloc`), so chunk buffers are reused heap memory:
/// at 1 MiB each chunk was a fresh mapping, faulted in and unmapped, which
/// on a VM handing freed pages back to its host costs a hypervisor trip per
/// page (BENCHMARKS.md, "Piece buffers recycled"). Pieces still in memory
/// are sliced, not read, whatever this size.
const CHUNK: u64 = 256 << 10;

/// Pieces the swarm fetches first from a stream position (the torrent's
/// default `stream_window`).
const STREAM_WINDOW: u32 = 4;

fn broken(message: String) -> std::io::Error {
    std::io::Error::other(message)
}

/// `range` of a complete blob.
pub(crate) fn complete(reader: BlobReader, range: Range<u64>) -> Body {
    let chunks = stream::try_unfold((reader, range.start), move |(reader, offset)| async move {
        if offset >= range.end {
            return Ok(None);
        }
        let len = (range.end - offset).min(CHUNK) as usize;
        let data = reader
            .read_at(offset, len)
            .await
            .map_err(|e| broken(error_chain(&e)))?;
        Ok::<_, std::io::Error>(Some((data, (reader, offset + len as u64))))
    });
    Body::from_stream(chunks)
}

/// `range` of a blob being downloaded: each piece is awaited, and the
/// swarm is told where the client reads so that it fetches there first.
/// If the download fails the stream errors and the connection breaks.
///
/// The caller has already pointed the swarm at the range's first piece.
/// The position moves again only when the client waits on a missing piece
/// past that window: agents pulling one blob in lockstep all want the
/// pieces at their read position, and sliding the window piece by piece
/// makes each of them fetch those same pieces from the origin at once,
/// where rarest-first between windows spreads them (measured with three
/// agents: 2.1x the layer from the origin when sliding, 1.6x this way).
pub(crate) fn streaming(fetch: Arc<Fetch>, range: Range<u64>) -> Body {
    let first = (range.start / u64::from(fetch.metainfo().piece_length())) as u32;
    let chunks = stream::try_unfold(
        (fetch, range.start, first),
        move |(fetch, offset, told)| async move {
            if offset >= range.end {
                return Ok(None);
            }
            let piece_length = u64::from(fetch.metainfo().piece_length());
            let piece = (offset / piece_length) as u32;
            let partial = fetch.partial();
            let told = if piece >= told.saturating_add(STREAM_WINDOW) && !partial.has_piece(piece) {
                fetch.stream_position(piece);
                piece
            } else {
                told
            };
            partial
                .wait_piece(piece)
                .await
                .map_err(|e| broken(error_chain(&e)))?;
            let piece_end = (u64::from(piece) + 1) * piece_length;
            let len = (range.end.min(piece_end) - offset).min(CHUNK) as usize;
            let data = partial
                .read_at(offset, len)
                .await
                .map_err(|e| broken(error_chain(&e)))?;
            Ok::<_, std::io::Error>(Some((data, (fetch, offset + len as u64, told))))
        },
    );
    Body::from_stream(chunks)
}

/// The chunks of an origin passthrough, in order.
pub(crate) fn passthrough(chunks: mpsc::Receiver<Result<Bytes, String>>) -> Body {
    let chunks = stream::unfold(chunks, |mut chunks| async move {
        let item = chunks.recv().await?;
        Some((item.map_err(broken), chunks))
    });
    Body::from_stream(chunks)
}
