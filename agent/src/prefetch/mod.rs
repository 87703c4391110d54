//! Prefetch jobs: the agent watches the tracker for jobs addressed to its
//! node (`shoal prefetch` creates them), pulls each image into its cache
//! through the normal manifest and blob paths, and reports progress until
//! the image is cached or has failed.
//!
//! - `image`: the blobs of the image for this node's platform.
//! - `fill`: one blob into the cache.
//!
//! The watch is reopened with backoff whenever it breaks (tracker restart,
//! network), so a node rejoins future jobs on its own.

mod fill;
mod image;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use shoal_proto::tracker::{BlobProgress, NodeState, PrefetchJob, ReportProgressRequest};
use shoal_registry::reference::parse_namespace;
use shoal_registry::{ManifestReference, RepositoryName};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blobs::Blobs;
use crate::origin::Location;
use crate::tracker::Tracker;

/// Jobs run at once; more wait their turn.
const PARALLEL_JOBS: usize = 2;
/// Blobs of one image pulled at once, as docker does.
const PARALLEL_BLOBS: usize = 3;
/// How often progress goes to the tracker while a job runs.
const REPORT_EVERY: Duration = Duration::from_millis(500);
/// Longest pause between attempts to reopen the watch.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Who this node is to prefetch selectors.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// What a job needs from the agent.
#[derive(Clone)]
pub struct Context {
    /// The blob paths.
    pub blobs: Blobs,
    /// The tracker.
    pub tracker: Tracker,
    /// Namespace of a job that names none.
    pub default_registry: Option<String>,
}

/// Watches for jobs until `shutdown`, running each in `tasks`.
pub async fn run(context: Context, node: Node, shutdown: CancellationToken, tasks: TaskTracker) {
    let slots = Arc::new(Semaphore::new(PARALLEL_JOBS));
    let mut backoff = Duration::from_secs(1);
    loop {
        let opened = tokio::select! {
            opened = context.tracker.watch_jobs(&node.name, &node.labels) => opened,
            () = shutdown.cancelled() => return,
        };
        match opened {
            Ok(mut jobs) => {
                tracing::info!(node = %node.name, "watching for prefetch jobs");
                backoff = Duration::from_secs(1);
                loop {
                    let next = tokio::select! {
                        next = jobs.message() => next,
                        () = shutdown.cancelled() => return,
                    };
                    match next {
                        Ok(Some(job)) => {
                            let (context, node, slots) =
                                (context.clone(), node.name.clone(), Arc::clone(&slots));
                            let stop = shutdown.clone();
                            tasks.spawn(async move {
                                let Ok(_slot) = slots.acquire_owned().await else {
                                    return;
                                };
                                tokio::select! {
                                    () = run_job(&context, &node, job) => {}
                                    () = stop.cancelled() => {}
                                }
                            });
                        }
                        Ok(None) => break,
                        Err(status) => {
                            tracing::warn!(code = ?status.code(), message = status.message(), "prefetch job watch broke");
                            break;
                        }
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "cannot watch for prefetch jobs"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One blob's progress, shared with the reporter.
struct Tracked {
    digest: String,
    size: u64,
    done: AtomicU64,
}

async fn run_job(context: &Context, node: &str, job: PrefetchJob) {
    tracing::info!(job = %job.id, image = %format!("{}:{}", job.repository, job.reference), "prefetch job");
    let tracked: Arc<std::sync::Mutex<Vec<Arc<Tracked>>>> = Arc::default();
    let report = |state: NodeState, message: String| {
        let blobs = tracked
            .lock()
            .map(|list| {
                list.iter()
                    .map(|t| BlobProgress {
                        digest: t.digest.clone(),
                        size: t.size,
                        done: t.done.load(Ordering::Relaxed),
                    })
                    .collect()
            })
            .unwrap_or_default();
        ReportProgressRequest {
            job_id: job.id.clone(),
            node: node.to_string(),
            state: state as i32,
            blobs,
            message,
        }
    };
    let pulled = {
        let pull = pull(context, &job, &tracked);
        tokio::pin!(pull);
        let mut ticks = tokio::time::interval(REPORT_EVERY);
        loop {
            tokio::select! {
                result = &mut pull => break result,
                _ = ticks.tick() => {
                    if let Err(status) = context.tracker.report_progress(report(NodeState::Running, String::new())).await
                        && status.code() == tonic::Code::NotFound
                    {
                        tracing::warn!(job = %job.id, "prefetch job expired; stopping it");
                        return;
                    }
                }
            }
        }
    };
    let last = match &pulled {
        Ok(()) => {
            tracing::info!(job = %job.id, "prefetch job done");
            report(NodeState::Done, String::new())
        }
        Err(why) => {
            tracing::warn!(job = %job.id, reason = %why, "prefetch job failed");
            let mut message = why.clone();
            truncate(&mut message, 1024);
            report(NodeState::Failed, message)
        }
    };
    for attempt in 0..5u32 {
        match context.tracker.report_progress(last.clone()).await {
            Ok(()) => return,
            Err(status) if status.code() == tonic::Code::NotFound => return,
            Err(status) => {
                tracing::debug!(
                    attempt,
                    message = status.message(),
                    "reporting the outcome failed"
                );
                tokio::time::sleep(REPORT_EVERY * (attempt + 1)).await;
            }
        }
    }
}

async fn pull(
    context: &Context,
    job: &PrefetchJob,
    tracked: &std::sync::Mutex<Vec<Arc<Tracked>>>,
) -> Result<(), String> {
    let name = RepositoryName::parse(&job.repository).map_err(|e| format!("repository: {e}"))?;
    let reference =
        ManifestReference::parse(&job.reference).map_err(|e| format!("reference: {e}"))?;
    let ns = match job.namespace.as_str() {
        "" => context.default_registry.clone(),
        raw => Some(parse_namespace(raw).map_err(|e| format!("namespace: {e}"))?),
    };
    let at = Location { name, ns };
    let refs = image::resolve(context.blobs.origins(), &at, &reference).await?;
    let list: Vec<Arc<Tracked>> = refs
        .iter()
        .map(|r| {
            Arc::new(Tracked {
                digest: r.digest.to_string(),
                size: r.size,
                done: AtomicU64::new(0),
            })
        })
        .collect();
    if let Ok(mut shared) = tracked.lock() {
        shared.clone_from(&list);
    }
    let (blobs, at) = (&context.blobs, &at);
    let mut fills = futures_util::stream::iter(refs.into_iter().zip(list))
        .map(|(r, t)| async move { fill::fill(blobs, at, &r.digest, r.size, &t.done).await })
        .buffer_unordered(PARALLEL_BLOBS);
    while let Some(result) = fills.next().await {
        result?;
    }
    Ok(())
}

fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}
