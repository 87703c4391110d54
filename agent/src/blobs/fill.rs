//! Missing pieces from the origins' blob range API: the small-blob path and
//! the fallback when the swarm cannot deliver. Each piece is checked against
//! the metainfo before it is written, so an origin (or anything between)
//! can never put a wrong byte into the cache or in front of a client.

use std::sync::Arc;

use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use shoal_swarm::store::{PartialBlob, StoreError};

use super::counters::Counters;
use crate::origin::{Location, Origins, error_chain};

/// Pieces requested at once: enough to hide one request's latency, few
/// enough that memory stays at a handful of pieces.
const PARALLEL: usize = 4;

/// Fetches, verifies and writes every piece `partial` lacks, lowest first
/// (that is where a streaming client waits). Pieces the swarm delivers
/// meanwhile are skipped.
pub(super) async fn missing_pieces(
    origins: &Origins,
    counters: &Counters,
    at: &Location,
    partial: &Arc<PartialBlob>,
) -> Result<(), String> {
    let missing: Vec<u32> = partial.bitfield().zeros().collect();
    stream::iter(missing)
        .map(|index| piece(origins, counters, at, partial, index))
        .buffered(PARALLEL)
        .try_collect::<()>()
        .await
}

async fn piece(
    origins: &Origins,
    counters: &Counters,
    at: &Location,
    partial: &Arc<PartialBlob>,
    index: u32,
) -> Result<(), String> {
    if partial.has_piece(index) {
        return Ok(());
    }
    let metainfo = partial.metainfo();
    let range = metainfo
        .piece_range(index)
        .ok_or_else(|| format!("piece {index} out of range"))?;
    let data = origins
        .blob_range(at, metainfo.digest(), range)
        .await
        .map_err(|e| format!("piece {index} from origins: {e}"))?;
    match partial.write_piece(index, data).await {
        Err(StoreError::PieceHash(_)) => {
            counters.origin_piece(false);
            Err(format!(
                "piece {index} from the origin failed its hash check"
            ))
        }
        stored => {
            counters.origin_piece(true);
            stored.map_err(|e| format!("storing piece {index}: {}", error_chain(&e)))
        }
    }
}
