//! `shoal seed FILE --origin URL`: publishes a file (a package, a model)
//! through an origin, which stores, seeds and replicates it like a pulled
//! blob; nodes then fetch it with `shoal get DIGEST`. The file is hashed
//! first (the digest names the upload), then streamed; neither pass holds
//! it in memory.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use futures_util::stream;
use indicatif::ProgressBar;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;

use crate::progress::Bars;

/// Bytes read from the file at a time.
const CHUNK: usize = 1 << 20;
/// Redirects to an owning origin followed at most.
const MAX_REDIRECTS: usize = 3;

/// `shoal seed` flags.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The file to publish.
    file: PathBuf,
    /// An origin's HTTP API URL (any origin: a non-owner redirects).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    origin: String,
}

/// The origin's answer to an upload.
#[derive(Debug, Deserialize)]
struct Published {
    digest: String,
    size: u64,
    replicas: Vec<String>,
}

/// Hashes and uploads the file.
pub async fn run(args: SeedArgs) -> anyhow::Result<ExitCode> {
    let length = tokio::fs::metadata(&args.file)
        .await
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    let bars = Bars::new(std::io::stderr().is_terminal());
    let hashing = bars.add("hashing", length);
    let digest = hash(&args.file, &hashing).await?;
    hashing.finish();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")?;
    let mut url = format!(
        "{}/shoal/v1/artifacts/{digest}",
        args.origin.trim_end_matches('/')
    );
    for _ in 0..=MAX_REDIRECTS {
        let sending = bars.add("uploading", length);
        let body = reqwest::Body::wrap_stream(read_chunks(&args.file, sending.clone()).await?);
        let response = http
            .put(&url)
            .header(reqwest::header::CONTENT_LENGTH, length)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .with_context(|| format!("uploading to {url}"))?;
        sending.finish_and_clear();
        let status = response.status();
        if status == reqwest::StatusCode::TEMPORARY_REDIRECT {
            url = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .context("a redirect without Location")?
                .to_string();
            continue;
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!(
                "the origin refused the upload ({status}): {}",
                oci_message(&text)
            );
        }
        let published: Published = response
            .json()
            .await
            .context("the origin's answer is not an upload result")?;
        if published.digest != digest || published.size != length {
            bail!(
                "the origin stored {} ({} bytes), not {digest} ({length} bytes)",
                published.digest,
                published.size
            );
        }
        println!("{digest}");
        eprintln!(
            "published {} ({length} bytes) on {}; fetch it with `shoal get {digest} -o FILE`",
            args.file.display(),
            published.replicas.join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    bail!("more than {MAX_REDIRECTS} redirects from the origins")
}

/// `sha256:<hex>` of the file, read once.
async fn hash(path: &Path, bar: &ProgressBar) -> anyhow::Result<String> {
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = file
            .read(&mut buffer)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bar.inc(n as u64);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

/// The file as a stream of chunks, counted on `bar` as they are sent.
async fn read_chunks(
    path: &Path,
    bar: ProgressBar,
) -> anyhow::Result<impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + use<>> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(stream::try_unfold(
        (file, bar),
        |(mut file, bar)| async move {
            let mut buffer = vec![0u8; CHUNK];
            let n = file.read(&mut buffer).await?;
            if n == 0 {
                return Ok(None);
            }
            buffer.truncate(n);
            bar.inc(n as u64);
            Ok(Some((buffer, (file, bar))))
        },
    ))
}

/// The message of an OCI error body, else the text itself (bounded).
pub(crate) fn oci_message(text: &str) -> String {
    #[derive(Deserialize)]
    struct Body {
        errors: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        code: String,
        message: String,
    }
    match serde_json::from_str::<Body>(text) {
        Ok(body) if !body.errors.is_empty() => body
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => text.chars().take(300).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_errors_are_shown_by_code_and_message() {
        let body = r#"{"errors":[{"code":"DIGEST_INVALID","message":"content digest mismatch"}]}"#;
        assert_eq!(oci_message(body), "DIGEST_INVALID: content digest mismatch");
        assert_eq!(oci_message("plain"), "plain");
    }

    #[tokio::test]
    async fn the_digest_is_the_files_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello").unwrap();
        let digest = hash(&path, &ProgressBar::hidden()).await.unwrap();
        assert_eq!(
            digest,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }
}
