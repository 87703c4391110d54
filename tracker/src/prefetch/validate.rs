//! Checks of the prefetch RPCs' requests, in the same style as
//! [`crate::validate`]: every refusal names the field. Sizes are bounded
//! so that one agent or operator cannot make the tracker hold much.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use shoal_proto::tracker::{
    BlobProgress, NodeState, PrefetchRequest, ReportProgressRequest, WatchJobsRequest,
};
use shoal_registry::reference::parse_namespace;
use shoal_registry::{ManifestReference, RepositoryName};
use shoal_swarm::Digest;

use crate::validate::{ValidationError, refuse};

/// Longest node name (a DNS subdomain, as Kubernetes node names are).
pub const MAX_NODE_LEN: usize = 253;
/// Most labels a node may have, and most pairs in a selector.
pub const MAX_LABELS: usize = 32;
/// Longest label key (room for a `prefix/` before the name).
pub const MAX_LABEL_KEY_LEN: usize = 128;
/// Longest label value.
pub const MAX_LABEL_VALUE_LEN: usize = 63;
/// Most blobs in one report: an image has at most 127 layers and a config.
pub const MAX_BLOBS: usize = 256;
/// Longest failure message kept.
pub const MAX_MESSAGE_LEN: usize = 1024;
/// A job's lifetime when the request names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest lifetime a job may ask for.
pub const MAX_TIMEOUT_SECONDS: u32 = 3600;

/// Labels (or a selector) as the tracker keeps them.
pub type Labels = BTreeMap<String, String>;

/// A checked watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The node.
    pub node: String,
    /// Its labels.
    pub labels: Labels,
}

/// A checked prefetch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefetch {
    /// The image's repository.
    pub repository: RepositoryName,
    /// Tag or digest, as text.
    pub reference: String,
    /// The upstream registry; empty for each agent's default.
    pub namespace: String,
    /// What a node's labels must hold.
    pub selector: Labels,
    /// How long the job lives.
    pub timeout: Duration,
}

/// A checked progress report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The job.
    pub job_id: String,
    /// The reporting node.
    pub node: String,
    /// Running, done or failed.
    pub state: NodeState,
    /// Per-blob progress.
    pub blobs: Vec<BlobProgress>,
    /// Why it failed, if it did.
    pub message: String,
}

/// Checks a `WatchJobs` request.
pub fn watch(request: &WatchJobsRequest) -> Result<Watch, ValidationError> {
    Ok(Watch {
        node: node(&request.node)?,
        labels: labels("labels", &request.labels)?,
    })
}

/// Checks a `Prefetch` request.
pub fn prefetch(request: &PrefetchRequest) -> Result<Prefetch, ValidationError> {
    let repository = RepositoryName::parse(&request.repository)
        .map_err(|e| refuse("repository", e.to_string()))?;
    ManifestReference::parse(&request.reference).map_err(|e| refuse("reference", e.to_string()))?;
    if !request.namespace.is_empty() {
        parse_namespace(&request.namespace).map_err(|e| refuse("namespace", e.to_string()))?;
    }
    let timeout = match request.timeout_seconds {
        0 => DEFAULT_TIMEOUT,
        s if s > MAX_TIMEOUT_SECONDS => {
            return Err(refuse(
                "timeout_seconds",
                format!("at most {MAX_TIMEOUT_SECONDS}, got {s}"),
            ));
        }
        s => Duration::from_secs(u64::from(s)),
    };
    Ok(Prefetch {
        repository,
        reference: request.reference.clone(),
        namespace: request.namespace.clone(),
        selector: labels("selector", &request.selector)?,
        timeout,
    })
}

/// Checks a `ReportProgress` request.
pub fn report(request: &ReportProgressRequest) -> Result<Report, ValidationError> {
    let job_id = job_id(&request.job_id)?;
    let node = node(&request.node)?;
    let state = match NodeState::try_from(request.state) {
        Ok(state @ (NodeState::Running | NodeState::Done | NodeState::Failed)) => state,
        _ => {
            return Err(refuse(
                "state",
                format!("must be RUNNING, DONE or FAILED, got {}", request.state),
            ));
        }
    };
    if request.blobs.len() > MAX_BLOBS {
        return Err(refuse(
            "blobs",
            format!("{} entries, at most {MAX_BLOBS}", request.blobs.len()),
        ));
    }
    for blob in &request.blobs {
        blob.digest
            .parse::<Digest>()
            .map_err(|e| refuse("blobs.digest", e.to_string()))?;
        if blob.done > blob.size {
            return Err(refuse(
                "blobs.done",
                format!("{} exceeds size {}", blob.done, blob.size),
            ));
        }
    }
    if request.message.len() > MAX_MESSAGE_LEN {
        return Err(refuse(
            "message",
            format!("longer than {MAX_MESSAGE_LEN} bytes"),
        ));
    }
    Ok(Report {
        job_id,
        node,
        state,
        blobs: request.blobs.clone(),
        message: request.message.clone(),
    })
}

fn job_id(raw: &str) -> Result<String, ValidationError> {
    let hex = raw.len() == 32 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !hex {
        return Err(refuse("job_id", "must be 32 lowercase hex characters"));
    }
    Ok(raw.to_string())
}

fn node(raw: &str) -> Result<String, ValidationError> {
    if raw.is_empty() {
        return Err(refuse("node", "required"));
    }
    if raw.len() > MAX_NODE_LEN {
        return Err(refuse("node", format!("longer than {MAX_NODE_LEN} bytes")));
    }
    if !raw
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-'))
    {
        return Err(refuse("node", "only a-z, 0-9, '.' and '-' are allowed"));
    }
    Ok(raw.to_string())
}

fn labels(field: &'static str, raw: &HashMap<String, String>) -> Result<Labels, ValidationError> {
    if raw.len() > MAX_LABELS {
        return Err(refuse(
            field,
            format!("{} pairs, at most {MAX_LABELS}", raw.len()),
        ));
    }
    let allowed = |text: &str| {
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
    };
    for (key, value) in raw {
        if key.is_empty() || key.len() > MAX_LABEL_KEY_LEN || !allowed(key) {
            return Err(refuse(
                field,
                format!(
                    "key {:?}: 1..={MAX_LABEL_KEY_LEN} of A-Z a-z 0-9 . _ - /",
                    key.chars().take(MAX_LABEL_KEY_LEN).collect::<String>()
                ),
            ));
        }
        if value.len() > MAX_LABEL_VALUE_LEN || !allowed(value) {
            return Err(refuse(
                field,
                format!("value of {key:?}: 0..={MAX_LABEL_VALUE_LEN} of A-Z a-z 0-9 . _ - /"),
            ));
        }
    }
    Ok(raw.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefetch_request() -> PrefetchRequest {
        PrefetchRequest {
            repository: "team/app".into(),
            reference: "v1".into(),
            namespace: String::new(),
            selector: HashMap::from([("zone".into(), "a".into())]),
            timeout_seconds: 0,
        }
    }

    fn report_request() -> ReportProgressRequest {
        ReportProgressRequest {
            job_id: "0123456789abcdef0123456789abcdef".into(),
            node: "node-1".into(),
            state: NodeState::Running as i32,
            blobs: vec![BlobProgress {
                digest: Digest::of(b"layer").to_string(),
                size: 10,
                done: 4,
            }],
            message: String::new(),
        }
    }

    #[test]
    fn good_requests_pass() {
        let p = prefetch(&prefetch_request()).unwrap();
        assert_eq!(p.timeout, DEFAULT_TIMEOUT);
        assert_eq!(p.selector["zone"], "a");
        assert_eq!(report(&report_request()).unwrap().state, NodeState::Running);
        let w = watch(&WatchJobsRequest {
            node: "ip-10-0-0-1.ec2.internal".into(),
            labels: HashMap::from([("topology.kubernetes.io/zone".into(), "eu-1a".into())]),
        })
        .unwrap();
        assert_eq!(w.labels.len(), 1);
    }

    #[test]
    fn each_bad_prefetch_field_is_named() {
        type Mutation = fn(&mut PrefetchRequest);
        let cases: [(Mutation, &str); 5] = [
            (|r| r.repository = "Team/App".into(), "repository:"),
            (|r| r.reference = "sha256:xyz".into(), "reference:"),
            (|r| r.namespace = "bad host!".into(), "namespace:"),
            (
                |r| r.timeout_seconds = 3601,
                "timeout_seconds: at most 3600",
            ),
            (
                |r| {
                    r.selector.insert("bad key".into(), "v".into());
                },
                "selector: key \"bad key\"",
            ),
        ];
        for (mutate, expected) in cases {
            let mut r = prefetch_request();
            mutate(&mut r);
            let message = prefetch(&r).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{message:?} vs {expected:?}");
        }
        let mut r = prefetch_request();
        r.selector = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(
            prefetch(&r).unwrap_err().to_string(),
            "selector: 33 pairs, at most 32"
        );
    }

    #[test]
    fn each_bad_report_field_is_named() {
        type Mutation = fn(&mut ReportProgressRequest);
        let cases: [(Mutation, &str); 8] = [
            (|r| r.job_id = "xyz".into(), "job_id:"),
            (|r| r.node.clear(), "node: required"),
            (|r| r.node = "Node_1".into(), "node: only"),
            (|r| r.state = NodeState::Pending as i32, "state:"),
            (|r| r.state = 99, "state:"),
            (|r| r.blobs[0].digest = "md5:1".into(), "blobs.digest:"),
            (|r| r.blobs[0].done = 11, "blobs.done: 11 exceeds size 10"),
            (|r| r.message = "x".repeat(1025), "message: longer"),
        ];
        for (mutate, expected) in cases {
            let mut r = report_request();
            mutate(&mut r);
            let message = report(&r).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{message:?} vs {expected:?}");
        }
        let mut r = report_request();
        r.blobs = vec![r.blobs[0].clone(); MAX_BLOBS + 1];
        assert!(report(&r).unwrap_err().to_string().starts_with("blobs:"));
    }

    #[test]
    fn watch_refuses_long_nodes_and_labels() {
        let long = WatchJobsRequest {
            node: "n".repeat(254),
            labels: HashMap::new(),
        };
        assert!(watch(&long).unwrap_err().to_string().starts_with("node:"));
        let value = WatchJobsRequest {
            node: "n".into(),
            labels: HashMap::from([("zone".into(), "v".repeat(64))]),
        };
        assert!(
            watch(&value)
                .unwrap_err()
                .to_string()
                .starts_with("labels: value of \"zone\"")
        );
    }
}
