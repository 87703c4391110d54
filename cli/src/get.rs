//! `shoal get DIGEST -o FILE`: fetches an artifact through the local
//! agent's swarm (its registry API blob endpoint, under the reserved
//! artifacts repository) into `FILE.part`, verifies the digest and renames
//! the file into place, so `FILE` only ever appears complete.
//!
//! After an interrupt the next run resumes: the bytes already in
//! `FILE.part` are hashed again (to carry the digest on) and the rest is
//! asked for with `Range: bytes=<length>-`.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail, ensure};
use clap::Args;
use sha2::{Digest as _, Sha256};
use shoal_origin::ARTIFACTS_REPOSITORY;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::progress::Bars;
use crate::seed::oci_message;

/// Bytes re-hashed at a time when resuming.
const CHUNK: usize = 1 << 20;

/// `shoal get` flags.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The artifact's digest, `sha256:<hex>` (what `shoal seed` printed).
    digest: String,
    /// Where to write it.
    #[arg(short, long)]
    output: PathBuf,
    /// The local agent's registry API URL.
    #[arg(long, default_value = "http://127.0.0.1:5050")]
    agent: String,
}

/// Fetches, resuming a previous attempt, and verifies.
pub async fn run(args: GetArgs) -> anyhow::Result<ExitCode> {
    let hex = args
        .digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .with_context(|| {
            format!(
                "{:?} is not a sha256:<64 lowercase hex> digest",
                args.digest
            )
        })?;
    let part = part_path(&args.output);
    let (mut hasher, mut held) = rehash(&part).await?;
    let url = format!(
        "{}/v2/{ARTIFACTS_REPOSITORY}/blobs/{}",
        args.agent.trim_end_matches('/'),
        args.digest
    );
    let http = reqwest::Client::new();
    let mut request = http.get(&url);
    if held > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={held}-"));
    }
    let mut response = request
        .send()
        .await
        .with_context(|| format!("asking the agent at {url}"))?;
    let status = response.status();
    let resumed = held > 0 && status == reqwest::StatusCode::PARTIAL_CONTENT;
    if held > 0 && !resumed {
        // 200 (the whole blob) or 416 (the part is longer than the blob):
        // start over.
        eprintln!("cannot resume ({status}); starting over");
        hasher = Sha256::new();
        held = 0;
        if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
            response = http
                .get(&url)
                .send()
                .await
                .with_context(|| format!("asking the agent at {url}"))?;
        }
    }
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        bail!(
            "the agent refused {} ({status}): {}",
            args.digest,
            oci_message(&text)
        );
    }
    let remaining = response
        .content_length()
        .context("the agent sent no Content-Length")?;
    if resumed {
        let expected = format!("bytes {held}-");
        let range = response
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        ensure!(
            range.starts_with(&expected),
            "the agent answered the range {range:?}, not one starting at {held}"
        );
        eprintln!("resuming at {held} bytes");
    }
    let total = held + remaining;
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(&part)
        .await
        .with_context(|| format!("opening {}", part.display()))?;
    let bars = Bars::new(std::io::stderr().is_terminal());
    let bar = bars.add("getting", total);
    bar.set_position(held);
    let mut transferred = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .context("the transfer broke off; run the command again to resume")?
    {
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .with_context(|| format!("writing {}", part.display()))?;
        transferred += chunk.len() as u64;
        bar.inc(chunk.len() as u64);
    }
    file.flush().await.context("flushing the file")?;
    file.sync_all().await.context("syncing the file")?;
    drop(file);
    bar.finish_and_clear();
    ensure!(
        transferred == remaining,
        "the agent sent {transferred} of {remaining} bytes; run the command again to resume"
    );
    let actual = hex::encode(hasher.finalize());
    if actual != hex {
        let _ = tokio::fs::remove_file(&part).await;
        bail!(
            "the bytes hash to sha256:{actual}, not {}; removed the partial file",
            args.digest
        );
    }
    tokio::fs::rename(&part, &args.output)
        .await
        .with_context(|| format!("renaming {} into place", part.display()))?;
    eprintln!(
        "wrote {} ({total} bytes, {transferred} transferred, digest verified)",
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `FILE.part`, beside `FILE` so the rename stays on one filesystem.
fn part_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    output.with_file_name(name)
}

/// The hash state and length of what an earlier run left in `part`.
async fn rehash(part: &Path) -> anyhow::Result<(Sha256, u64)> {
    let mut hasher = Sha256::new();
    let mut file = match tokio::fs::File::open(part).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((hasher, 0)),
        Err(e) => return Err(e).with_context(|| format!("opening {}", part.display())),
    };
    let mut held = 0u64;
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = file
            .read(&mut buffer)
            .await
            .with_context(|| format!("reading {}", part.display()))?;
        if n == 0 {
            return Ok((hasher, held));
        }
        hasher.update(&buffer[..n]);
        held += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_part_file_sits_beside_the_output() {
        assert_eq!(
            part_path(Path::new("/tmp/x/model.bin")),
            PathBuf::from("/tmp/x/model.bin.part")
        );
    }

    #[tokio::test]
    async fn a_resumed_hash_equals_the_whole_hash() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("f.part");
        let (_, none) = rehash(&part).await.unwrap();
        assert_eq!(none, 0);
        std::fs::write(&part, b"hel").unwrap();
        let (mut hasher, held) = rehash(&part).await.unwrap();
        assert_eq!(held, 3);
        hasher.update(b"lo");
        assert_eq!(
            hasher.finalize().as_slice(),
            Sha256::digest(b"hello").as_slice()
        );
    }
}
