//! `shoal prefetch IMAGE`: asks the tracker to pull an image into the
//! cache of every watching node whose labels match `--selector`, and shows
//! the fleet's progress: one bar per blob (bytes summed over the nodes)
//! and one for the nodes finished. Exits non-zero if any node fails,
//! naming each, or if no node matches.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use indicatif::ProgressBar;
use shoal_proto::tracker::tracker_client::TrackerClient;
use shoal_proto::tracker::{NodeState, PrefetchRequest, PrefetchStatus};

use crate::progress::Bars;

/// `shoal prefetch` flags.
#[derive(Debug, Args)]
pub struct PrefetchArgs {
    /// The image: `[registry/]repository[:tag|@digest]`; without a
    /// registry each agent uses its default_registry.
    image: String,
    /// Nodes to warm: `key=value[,key=value]`, all must match; none: every node.
    #[arg(long, value_parser = parse_selector, default_value = "")]
    selector: Selector,
    /// The tracker's gRPC URL.
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    tracker: String,
    /// Seconds after which nodes not done count as failed (at most 3600).
    #[arg(long, default_value_t = 600)]
    timeout: u32,
}

/// A parsed `--selector`.
#[derive(Debug, Clone, Default)]
pub struct Selector(BTreeMap<String, String>);

fn parse_selector(raw: &str) -> Result<Selector, String> {
    let mut pairs = BTreeMap::new();
    for pair in raw.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?}: expected key=value"))?;
        if key.is_empty() {
            return Err(format!("{pair:?}: empty key"));
        }
        if pairs.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("{key:?} given twice"));
        }
    }
    Ok(Selector(pairs))
}

/// An image reference split the way docker splits it.
#[derive(Debug, PartialEq, Eq)]
struct ImageRef {
    namespace: String,
    repository: String,
    reference: String,
}

/// The first component is a registry if it looks like a host (a dot, a
/// port, or `localhost`); a digest follows `@`, a tag the last `:`.
fn parse_image(raw: &str) -> anyhow::Result<ImageRef> {
    let (namespace, rest) = match raw.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            (host.to_string(), rest)
        }
        _ => (String::new(), raw),
    };
    let (repository, reference) = if let Some((repo, digest)) = rest.split_once('@') {
        (repo, digest)
    } else {
        match rest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (rest, "latest"),
        }
    };
    if repository.is_empty() || reference.is_empty() {
        bail!("{raw:?} is not an image reference ([registry/]repository[:tag|@digest])");
    }
    Ok(ImageRef {
        namespace,
        repository: repository.to_string(),
        reference: reference.to_string(),
    })
}

/// Runs the job and draws its progress.
pub async fn run(args: PrefetchArgs) -> anyhow::Result<ExitCode> {
    let image = parse_image(&args.image)?;
    let mut client = TrackerClient::connect(args.tracker.clone())
        .await
        .with_context(|| format!("connecting to the tracker at {}", args.tracker))?;
    let request = PrefetchRequest {
        repository: image.repository.clone(),
        reference: image.reference.clone(),
        namespace: image.namespace.clone(),
        selector: args.selector.0.clone().into_iter().collect(),
        timeout_seconds: args.timeout,
    };
    let mut statuses = match client.prefetch(request).await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            bail!("nothing to prefetch: {}", status.message())
        }
        Err(status) => bail!("the tracker refused the job: {}", status.message()),
    };
    let mut view = View::new(std::io::stderr().is_terminal());
    let mut last = None;
    while let Some(status) = statuses
        .message()
        .await
        .context("the tracker's progress stream broke")?
    {
        view.update(&status);
        let finished = status.finished;
        last = Some(status);
        if finished {
            break;
        }
    }
    view.finish();
    let Some(last) = last.filter(|s| s.finished) else {
        bail!("the tracker ended the job before every node finished");
    };
    let failed: Vec<_> = last
        .nodes
        .iter()
        .filter(|n| n.state != NodeState::Done as i32)
        .collect();
    let image_name = format!("{}:{}", image.repository, image.reference);
    if failed.is_empty() {
        println!(
            "prefetched {image_name} on {} node(s): {}",
            last.nodes.len(),
            names(last.nodes.iter().map(|n| n.node.as_str()))
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "prefetch of {image_name} failed on {} of {} node(s):",
        failed.len(),
        last.nodes.len()
    );
    for node in &failed {
        eprintln!("  {}: {}", node.node, node.message);
    }
    Ok(ExitCode::FAILURE)
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

/// The bars: one per blob, bytes summed over the nodes, and the nodes.
struct View {
    bars: Bars,
    nodes: Option<ProgressBar>,
    blobs: HashMap<String, ProgressBar>,
}

impl View {
    fn new(visible: bool) -> Self {
        View {
            bars: Bars::new(visible),
            nodes: None,
            blobs: HashMap::new(),
        }
    }

    fn update(&mut self, status: &PrefetchStatus) {
        let total = status.nodes.len() as u64;
        let finished = status
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Done as i32 || n.state == NodeState::Failed as i32)
            .count() as u64;
        let nodes = self
            .nodes
            .get_or_insert_with(|| self.bars.add_count("nodes", total));
        nodes.set_position(finished);
        let mut sums: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for node in &status.nodes {
            for blob in &node.blobs {
                let entry = sums.entry(blob.digest.as_str()).or_insert((blob.size, 0));
                entry.1 = entry.1.saturating_add(blob.done);
            }
        }
        for (digest, (size, done)) in sums {
            let bar = self.blobs.entry(digest.to_string()).or_insert_with(|| {
                let short = digest.strip_prefix("sha256:").unwrap_or(digest);
                self.bars
                    .add(short.get(..12).unwrap_or(short), size.saturating_mul(total))
            });
            bar.set_position(done);
        }
    }

    fn finish(&self) {
        for bar in self.blobs.values().chain(&self.nodes) {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_split_like_docker() {
        let cases = [
            ("team/app", ("", "team/app", "latest")),
            ("team/app:v1", ("", "team/app", "v1")),
            (
                "127.0.0.1:5000/team/app:v1",
                ("127.0.0.1:5000", "team/app", "v1"),
            ),
            (
                "docker.io/library/alpine",
                ("docker.io", "library/alpine", "latest"),
            ),
            (
                "localhost/app@sha256:abc",
                ("localhost", "app", "sha256:abc"),
            ),
        ];
        for (raw, (ns, repo, reference)) in cases {
            assert_eq!(
                parse_image(raw).unwrap(),
                ImageRef {
                    namespace: ns.into(),
                    repository: repo.into(),
                    reference: reference.into(),
                },
                "{raw}"
            );
        }
        assert!(parse_image("team/app:").is_err());
    }

    #[test]
    fn selectors_are_key_value_pairs() {
        let s = parse_selector("zone=a,pool=gpu").unwrap();
        assert_eq!(s.0.len(), 2);
        assert_eq!(s.0["zone"], "a");
        assert!(parse_selector("").unwrap().0.is_empty());
        assert!(parse_selector("zone").is_err());
        assert!(parse_selector("=a").is_err());
        assert!(parse_selector("zone=a,zone=b").is_err());
    }
}
