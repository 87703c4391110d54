//! One seeder to one leecher over loopback with no caps: the engine's raw
//! data path (wire, store, hashing), as a ratio to SHA-256 throughput, which
//! bounds it since the leecher must hash every byte twice (pieces, digest).
//!
//! Two leechers run in turn against the same seeder:
//! - **unordered**: a plain download, pieces in rarest-first order. The
//!   whole-blob digest can only advance over the contiguous verified prefix,
//!   so most of its pass happens after the last piece arrives.
//! - **streamed**: a reader follows the blob in order, as the agent does when
//!   it streams a layer to docker; the stream window keeps pieces in order
//!   and the digest pass keeps pace with the download.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use shoal_swarm::Metainfo;
use shoal_swarm::session::{PeerAddr, Session, SessionConfig, TorrentHandle};
use shoal_swarm::store::Store;
use tokio::io::AsyncReadExt;

use crate::hash::mib;
use crate::{baseline, blob};

/// Runs the benchmark with a random blob of `len` bytes and prints a report.
pub async fn run(len: u64) -> anyhow::Result<()> {
    let openssl = baseline::openssl_sha256()?;
    let seed_dir = tempfile::tempdir()?;
    let (path, digest) = blob::write_random(seed_dir.path(), len)?;

    let seed_store = Store::open(seed_dir.path().join("store"), 0).await?;
    let mut writer = seed_store.ingest(digest, len).await?;
    let mut file = tokio::fs::File::open(&path).await?;
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        writer.write(&buf[..n]).await?;
    }
    let (metainfo, _) = writer.finish().await?;
    let seeder = Session::start(SessionConfig::default(), seed_store).await?;
    seeder.seed(&digest).await?;
    let seed = PeerAddr {
        addr: seeder.local_addr(),
        id: Some(seeder.peer_id()),
    };

    println!(
        "| transfer of {} MiB | all pieces | complete (digest checked) | bytes/s | ratio to openssl SHA-256 | CPU cores busy |",
        len >> 20
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| openssl speed -evp sha256 (1 MiB blocks) | | | {} | 1.00 | 1 |",
        mib(openssl)
    );
    for streamed in [false, true] {
        let dir = tempfile::tempdir()?;
        let leecher =
            Session::start(SessionConfig::default(), Store::open(dir.path(), 0).await?).await?;
        let started = Instant::now();
        let cpu_before = baseline::process_cpu_seconds()?;
        let handle = leecher.download(Arc::clone(&metainfo)).await?;
        handle.add_peers([seed]);
        let reader =
            streamed.then(|| tokio::spawn(read_in_order(handle.clone(), Arc::clone(&metainfo))));
        let mut progress = handle.subscribe();
        progress
            .wait_for(|p| p.pieces == p.piece_count)
            .await
            .context("download stopped")?;
        let all_pieces = started.elapsed().as_secs_f64();
        handle.wait_complete().await.context("download failed")?;
        if let Some(reader) = reader {
            reader.await??;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cores = (baseline::process_cpu_seconds()? - cpu_before) / elapsed;
        let rate = len as f64 / elapsed;
        let name = if streamed {
            "streamed in order"
        } else {
            "unordered (rarest first)"
        };
        println!(
            "| 1:1 loopback, {name} | {all_pieces:.2} s | {elapsed:.2} s | {} | {:.2} | {cores:.2} |",
            mib(rate),
            rate / openssl
        );
        leecher.shutdown().await;
    }
    seeder.shutdown().await;
    Ok(())
}

/// Reads the blob front to back as pieces are verified, the way the agent
/// streams a layer to its client.
async fn read_in_order(handle: TorrentHandle, metainfo: Arc<Metainfo>) -> anyhow::Result<()> {
    let partial = handle
        .partial()
        .context("leecher has no partial blob")?
        .clone();
    for index in 0..metainfo.piece_count() {
        handle.set_stream_position(index);
        partial.wait_piece(index).await?;
        let range = metainfo.piece_range(index).context("piece out of range")?;
        let piece = partial
            .read_at(range.start, (range.end - range.start) as usize)
            .await?;
        anyhow::ensure!(piece.len() as u64 == range.end - range.start, "short read");
    }
    Ok(())
}
