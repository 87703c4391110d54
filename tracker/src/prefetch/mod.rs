//! Prefetch jobs: an operator asks for an image to be pulled into the
//! cache of every node whose labels match a selector, before a rollout.
//!
//! Agents hold a `WatchJobs` stream open; a `Prefetch` call picks the
//! watching nodes that match, sends each the job, and streams the fleet's
//! progress as agents report it with `ReportProgress`. A job lives in this
//! tracker's memory only (several tracker replicas do not share jobs: the
//! operator and the agents must reach the same one) and expires after its
//! timeout, when nodes not done count as failed.
//!
//! - `validate`: field checks of the three requests.
//! - [`Jobs`]: watchers and jobs, under one lock held only briefly.

pub mod validate;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::Stream;
use parking_lot::Mutex;
use shoal_proto::tracker::{NodeProgress, NodeState, PrefetchJob, PrefetchStatus};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::Status;

use self::validate::{Labels, Prefetch, Report, Watch};

/// Most nodes watching at once.
pub const MAX_WATCHERS: usize = 100_000;
/// Most jobs alive at once; a finished job stops counting once its stream
/// ends or it expires.
pub const MAX_JOBS: usize = 64;
/// Jobs queued for one agent that has not read them yet.
const WATCH_QUEUE: usize = 8;
/// How often a job's progress stream sends at most.
const STATUS_EVERY: Duration = Duration::from_millis(250);

/// The watching agents and the running jobs. Cheap to clone.
#[derive(Clone, Default)]
pub struct Jobs {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    watchers: HashMap<String, Watcher>,
    jobs: HashMap<String, Job>,
    next_watch: u64,
}

struct Watcher {
    id: u64,
    labels: Labels,
    jobs: mpsc::Sender<Result<PrefetchJob, Status>>,
}

struct Job {
    expires: Instant,
    nodes: BTreeMap<String, NodeProgress>,
    changed: watch::Sender<()>,
}

impl Job {
    fn finished(&self) -> bool {
        self.nodes.values().all(|n| terminal(n.state))
    }

    /// Nodes still running at expiry failed.
    fn expire(&mut self, timeout: Duration) {
        for node in self.nodes.values_mut() {
            if !terminal(node.state) {
                node.state = NodeState::Failed as i32;
                node.message = format!("not done within the job's {}s", timeout.as_secs());
            }
        }
    }
}

fn terminal(state: i32) -> bool {
    state == NodeState::Done as i32 || state == NodeState::Failed as i32
}

/// Removes its watcher when the agent's stream is dropped (the agent went
/// away), failing what that node had not finished.
struct WatchGuard {
    jobs: Jobs,
    node: String,
    id: u64,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut state = self.jobs.state.lock();
        if state
            .watchers
            .get(&self.node)
            .is_some_and(|w| w.id == self.id)
        {
            state.watchers.remove(&self.node);
            for job in state.jobs.values_mut() {
                if let Some(node) = job.nodes.get_mut(&self.node)
                    && !terminal(node.state)
                {
                    node.state = NodeState::Failed as i32;
                    node.message = "the agent stopped watching for jobs".into();
                    job.changed.send_replace(());
                }
            }
        }
    }
}

impl Jobs {
    /// Registers `watch.node` (replacing an earlier watch of the same node)
    /// and returns the stream its jobs arrive on.
    pub fn watch(
        &self,
        watch: Watch,
    ) -> Result<impl Stream<Item = Result<PrefetchJob, Status>> + Send + 'static, Status> {
        let (sender, receiver) = mpsc::channel(WATCH_QUEUE);
        let id = {
            let mut state = self.state.lock();
            if state.watchers.len() >= MAX_WATCHERS && !state.watchers.contains_key(&watch.node) {
                return Err(Status::resource_exhausted(format!(
                    "{MAX_WATCHERS} nodes are watching already"
                )));
            }
            state.next_watch += 1;
            let id = state.next_watch;
            state.watchers.insert(
                watch.node.clone(),
                Watcher {
                    id,
                    labels: watch.labels,
                    jobs: sender,
                },
            );
            id
        };
        tracing::info!(node = %watch.node, "agent watching for prefetch jobs");
        let guard = WatchGuard {
            jobs: self.clone(),
            node: watch.node,
            id,
        };
        Ok(futures_util::stream::unfold(
            (receiver, guard),
            |(mut receiver, guard)| async move {
                let job = receiver.recv().await?;
                Some((job, (receiver, guard)))
            },
        ))
    }

    /// Creates a job for every watching node matching the selector, sends
    /// it to them, and returns its progress stream.
    pub fn start(
        &self,
        prefetch: Prefetch,
    ) -> Result<impl Stream<Item = Result<PrefetchStatus, Status>> + Send + 'static, Status> {
        let id = job_id();
        let mut state = self.state.lock();
        let now = Instant::now();
        state.jobs.retain(|_, job| job.expires > now);
        if state.jobs.len() >= MAX_JOBS {
            return Err(Status::resource_exhausted(format!(
                "{MAX_JOBS} prefetch jobs are running already"
            )));
        }
        let expires_unix_ms = SystemTime::now()
            .checked_add(prefetch.timeout)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let job = PrefetchJob {
            id: id.clone(),
            repository: prefetch.repository.to_string(),
            reference: prefetch.reference.clone(),
            namespace: prefetch.namespace.clone(),
            expires_unix_ms,
        };
        let mut nodes = BTreeMap::new();
        for (name, watcher) in &state.watchers {
            let matches = prefetch
                .selector
                .iter()
                .all(|(k, v)| watcher.labels.get(k) == Some(v));
            if !matches {
                continue;
            }
            let (node_state, message) = match watcher.jobs.try_send(Ok(job.clone())) {
                Ok(()) => (NodeState::Pending, String::new()),
                Err(_) => (
                    NodeState::Failed,
                    "the agent is not reading its jobs".to_string(),
                ),
            };
            nodes.insert(
                name.clone(),
                NodeProgress {
                    node: name.clone(),
                    state: node_state as i32,
                    blobs: Vec::new(),
                    message,
                },
            );
        }
        if nodes.is_empty() {
            return Err(Status::failed_precondition(format!(
                "no watching node matches the selector {} ({} nodes watching)",
                selector_text(&prefetch.selector),
                state.watchers.len()
            )));
        }
        tracing::info!(
            job = %id,
            image = %format!("{}:{}", prefetch.repository, prefetch.reference),
            nodes = nodes.len(),
            "prefetch job started"
        );
        let (changed, receiver) = watch::channel(());
        state.jobs.insert(
            id.clone(),
            Job {
                expires: now + prefetch.timeout,
                nodes,
                changed,
            },
        );
        drop(state);
        Ok(self.progress(id, receiver, prefetch.timeout))
    }

    /// Records a node's report. NOT_FOUND for an expired or unknown job or
    /// a node the job does not include.
    pub fn report(&self, report: Report) -> Result<(), Status> {
        let mut state = self.state.lock();
        let job = state
            .jobs
            .get_mut(&report.job_id)
            .filter(|job| job.expires > Instant::now())
            .ok_or_else(|| {
                Status::not_found(format!("job {}: unknown or expired", report.job_id))
            })?;
        let node = job.nodes.get_mut(&report.node).ok_or_else(|| {
            Status::not_found(format!(
                "job {}: node {} is not part of it",
                report.job_id, report.node
            ))
        })?;
        if terminal(node.state) {
            return Ok(());
        }
        node.state = report.state as i32;
        node.blobs = report.blobs;
        node.message = report.message;
        job.changed.send_replace(());
        Ok(())
    }

    /// The job's status at once, then on every change (at most every
    /// [`STATUS_EVERY`]), ending with the one that has `finished` set.
    fn progress(
        &self,
        id: String,
        changed: watch::Receiver<()>,
        timeout: Duration,
    ) -> impl Stream<Item = Result<PrefetchStatus, Status>> + Send + 'static {
        let jobs = self.clone();
        futures_util::stream::unfold((changed, true, false), move |(mut changed, first, done)| {
            let jobs = jobs.clone();
            let id = id.clone();
            async move {
                if done {
                    return None;
                }
                if !first {
                    let expires = jobs.state.lock().jobs.get(&id)?.expires;
                    tokio::time::sleep(STATUS_EVERY).await;
                    tokio::select! {
                        _ = changed.changed() => {}
                        () = tokio::time::sleep_until(expires) => {}
                    }
                }
                changed.borrow_and_update();
                let status = {
                    let mut state = jobs.state.lock();
                    let job = state.jobs.get_mut(&id)?;
                    if job.expires <= Instant::now() {
                        job.expire(timeout);
                    }
                    let status = PrefetchStatus {
                        job_id: id.clone(),
                        nodes: job.nodes.values().cloned().collect(),
                        finished: job.finished(),
                    };
                    if status.finished {
                        state.jobs.remove(&id);
                    }
                    status
                };
                let finished = status.finished;
                Some((Ok(status), (changed, false, finished)))
            }
        })
    }
}

fn selector_text(selector: &Labels) -> String {
    if selector.is_empty() {
        return "(none)".into();
    }
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn job_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;
    use shoal_proto::tracker::BlobProgress;
    use shoal_registry::RepositoryName;

    fn watch_of(node: &str, zone: &str) -> Watch {
        Watch {
            node: node.into(),
            labels: Labels::from([("zone".into(), zone.into())]),
        }
    }

    fn prefetch(zone: Option<&str>, timeout: Duration) -> Prefetch {
        Prefetch {
            repository: RepositoryName::parse("team/app").unwrap(),
            reference: "v1".into(),
            namespace: String::new(),
            selector: zone
                .map(|z| Labels::from([("zone".into(), z.into())]))
                .unwrap_or_default(),
            timeout,
        }
    }

    fn report(job: &str, node: &str, state: NodeState) -> Report {
        Report {
            job_id: job.into(),
            node: node.into(),
            state,
            blobs: vec![BlobProgress {
                digest: shoal_swarm::Digest::of(b"l").to_string(),
                size: 8,
                done: 8,
            }],
            message: String::new(),
        }
    }

    #[tokio::test]
    async fn only_matching_nodes_get_the_job_and_it_finishes_when_they_report() {
        let jobs = Jobs::default();
        let mut a = Box::pin(jobs.watch(watch_of("n-a", "a")).unwrap());
        let mut b = Box::pin(jobs.watch(watch_of("n-b", "b")).unwrap());
        let mut progress = Box::pin(
            jobs.start(prefetch(Some("a"), Duration::from_secs(60)))
                .unwrap(),
        );
        let job = a.next().await.unwrap().unwrap();
        assert_eq!(job.repository, "team/app");
        let nothing = tokio::time::timeout(Duration::from_millis(50), b.next()).await;
        assert!(nothing.is_err(), "zone b got a job for zone a");

        let first = progress.next().await.unwrap().unwrap();
        assert_eq!(first.nodes.len(), 1);
        assert_eq!(first.nodes[0].state, NodeState::Pending as i32);
        assert!(!first.finished);

        jobs.report(report(&job.id, "n-a", NodeState::Done))
            .unwrap();
        let mut last = first;
        while let Some(status) = progress.next().await {
            last = status.unwrap();
        }
        assert!(last.finished);
        assert_eq!(last.nodes[0].state, NodeState::Done as i32);
        let gone = jobs.report(report(&job.id, "n-a", NodeState::Done));
        assert_eq!(gone.unwrap_err().code(), tonic::Code::NotFound);
    }

    #[tokio::test]
    async fn no_match_is_refused_and_foreign_nodes_cannot_report() {
        let jobs = Jobs::default();
        let _a = jobs.watch(watch_of("n-a", "a")).unwrap();
        let refused = jobs
            .start(prefetch(Some("c"), Duration::from_secs(60)))
            .err()
            .unwrap();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(
            refused.message().contains("zone=c"),
            "{}",
            refused.message()
        );

        let _progress = jobs.start(prefetch(None, Duration::from_secs(60))).unwrap();
        let id = jobs.state.lock().jobs.keys().next().unwrap().clone();
        let foreign = jobs.report(report(&id, "n-z", NodeState::Done));
        assert_eq!(foreign.unwrap_err().code(), tonic::Code::NotFound);
    }

    #[tokio::test(start_paused = true)]
    async fn unfinished_nodes_fail_at_expiry_and_when_their_agent_leaves() {
        let jobs = Jobs::default();
        let a = jobs.watch(watch_of("n-a", "a")).unwrap();
        let _b = jobs.watch(watch_of("n-b", "a")).unwrap();
        let mut progress = Box::pin(jobs.start(prefetch(None, Duration::from_secs(5))).unwrap());
        drop(a);
        let mut last = None;
        while let Some(status) = progress.next().await {
            last = Some(status.unwrap());
        }
        let last = last.unwrap();
        assert!(last.finished);
        let messages: Vec<&str> = last.nodes.iter().map(|n| n.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "the agent stopped watching for jobs",
                "not done within the job's 5s"
            ]
        );
        assert!(
            last.nodes
                .iter()
                .all(|n| n.state == NodeState::Failed as i32)
        );
    }
}
