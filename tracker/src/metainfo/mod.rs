//! A blob's metainfo, as the tracker serves it: asked of the blob's owning
//! origins, then cached.
//!
//! - Cached by digest with a byte bound ([`cache`]): metainfo is immutable.
//! - Single-flight: concurrent asks for one blob share one origin call. The
//!   call runs in its own task, so a caller that gives up does not cancel
//!   it for the others.
//! - Origins are asked in ring preference order: owners first, then the
//!   other origins as fallbacks. An origin that fails (no answer, bad status,
//!   bad body) passes the question on to the next; an answer that the blob is
//!   being fetched (202) or unknown upstream (404) is final, because another
//!   origin would only start the same upstream fetch or get the same 404.

mod cache;
mod origin;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use shoal_proto::tracker::Metainfo as MetainfoProto;
use shoal_swarm::Digest;
use shoal_swarm::ring::RingWatch;
use shoal_swarm::tls::Tls;
use tokio::sync::watch;
use tonic::Status;

use self::cache::MetainfoCache;
use self::origin::{Answer, OriginClient};
use crate::validate::MetainfoQuery;

pub(crate) use self::origin::error_chain;

/// Why no metainfo could be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    /// The configuration lists no origin.
    #[error("no origins are configured")]
    NoOrigins,
    /// The origin is still pulling the blob from upstream.
    #[error("origin {origin} is fetching the blob from upstream; retry after {}s", retry_after.as_secs())]
    Fetching {
        /// The origin that answered.
        origin: String,
        /// When to ask again.
        retry_after: Duration,
    },
    /// Upstream does not have the blob.
    #[error("origin {origin} found no such blob upstream")]
    NotFound {
        /// The origin that answered.
        origin: String,
    },
    /// Every origin failed.
    #[error("no origin answered ({tried} tried; last: {last})")]
    Unreachable {
        /// How many origins were asked.
        tried: usize,
        /// The last failure.
        last: String,
    },
    /// The fetch task ended without an outcome (it panicked).
    #[error("metainfo fetch was abandoned")]
    Abandoned,
}

impl From<MetainfoError> for Status {
    /// UNAVAILABLE with a `retry-after` metadata key (seconds) while an
    /// origin fetches, so that agents retry on the origin's schedule.
    fn from(error: MetainfoError) -> Self {
        match &error {
            MetainfoError::NotFound { .. } => Status::not_found(error.to_string()),
            MetainfoError::Fetching { retry_after, .. } => {
                let mut status = Status::unavailable(error.to_string());
                status
                    .metadata_mut()
                    .insert("retry-after", retry_after.as_secs().into());
                status
            }
            MetainfoError::NoOrigins
            | MetainfoError::Unreachable { .. }
            | MetainfoError::Abandoned => Status::unavailable(error.to_string()),
        }
    }
}

/// The HTTP client for origins could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the HTTP client for origins")]
pub struct ClientError(#[source] reqwest::Error);

type Outcome = Result<Arc<MetainfoProto>, MetainfoError>;

/// Serves metainfo from the cache or the origins. Cheap to clone.
#[derive(Clone)]
pub struct MetainfoSource {
    inner: Arc<Inner>,
}

struct Inner {
    ring: RingWatch,
    client: OriginClient,
    /// Lock order: `inflight`, then `cache`.
    cache: Mutex<MetainfoCache>,
    inflight: Mutex<HashMap<Digest, watch::Receiver<Option<Outcome>>>>,
}

impl MetainfoSource {
    /// A source asking `ring`'s origins (as the ring stands at each call),
    /// each call limited to `timeout`, caching up to `cache_bytes`; with
    /// `tls`, over HTTPS presenting our certificate.
    pub fn new(
        ring: RingWatch,
        cache_bytes: usize,
        timeout: Duration,
        tls: Option<&Tls>,
    ) -> Result<Self, ClientError> {
        Ok(MetainfoSource {
            inner: Arc::new(Inner {
                ring,
                client: OriginClient::new(timeout, tls).map_err(ClientError)?,
                cache: Mutex::new(MetainfoCache::new(cache_bytes)),
                inflight: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The metainfo of `query.digest`. Concurrent calls for one digest share
    /// one origin call, made with the first caller's repository and namespace.
    pub async fn get(&self, query: &MetainfoQuery) -> Outcome {
        if let Some(hit) = self.inner.cache.lock().get(&query.digest) {
            return Ok(hit);
        }
        let mut outcome = {
            let mut inflight = self.inner.inflight.lock();
            // A fetch may have finished between the two locks.
            if let Some(hit) = self.inner.cache.lock().get(&query.digest) {
                return Ok(hit);
            }
            match inflight.get(&query.digest) {
                Some(receiver) => receiver.clone(),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    inflight.insert(query.digest, receiver.clone());
                    tokio::spawn(self.clone().fetch(query.clone(), sender));
                    receiver
                }
            }
        };
        let settled = outcome.wait_for(Option::is_some).await;
        match settled.as_deref() {
            Ok(Some(result)) => result.clone(),
            _ => Err(MetainfoError::Abandoned),
        }
    }

    async fn fetch(self, query: MetainfoQuery, sender: watch::Sender<Option<Outcome>>) {
        let outcome = self.ask_origins(&query).await;
        {
            let mut inflight = self.inner.inflight.lock();
            if let Ok(metainfo) = &outcome {
                self.inner
                    .cache
                    .lock()
                    .insert(query.digest, metainfo.clone());
            }
            inflight.remove(&query.digest);
        }
        sender.send_replace(Some(outcome));
    }

    async fn ask_origins(&self, query: &MetainfoQuery) -> Outcome {
        let mut tried = 0;
        let mut last = String::new();
        let ring = self.inner.ring.borrow().clone();
        for origin in ring.preference(&query.digest) {
            tried += 1;
            match self.inner.client.metainfo(origin, query).await {
                Ok(Answer::Ready(metainfo)) => return Ok(Arc::new(metainfo)),
                Ok(Answer::Fetching(retry_after)) => {
                    return Err(MetainfoError::Fetching {
                        origin: origin.name.clone(),
                        retry_after,
                    });
                }
                Ok(Answer::NotFound) => {
                    return Err(MetainfoError::NotFound {
                        origin: origin.name.clone(),
                    });
                }
                Err(error) => {
                    last = format!("{}: {}", origin.name, error_chain(&error));
                    tracing::warn!(digest = %query.digest, error = %last, "origin gave no metainfo; trying the next");
                }
            }
        }
        if tried == 0 {
            Err(MetainfoError::NoOrigins)
        } else {
            Err(MetainfoError::Unreachable { tried, last })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetching_maps_to_unavailable_with_retry_after_metadata() {
        let status = Status::from(MetainfoError::Fetching {
            origin: "origin-0".into(),
            retry_after: Duration::from_secs(7),
        });
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().contains("retry after 7s"));
        assert_eq!(status.metadata().get("retry-after").unwrap(), "7");
        let status = Status::from(MetainfoError::NotFound { origin: "o".into() });
        assert_eq!(status.code(), tonic::Code::NotFound);
    }

    #[tokio::test]
    async fn no_origins_is_unavailable() {
        let source = MetainfoSource::new(
            shoal_swarm::ring::fixed(shoal_swarm::ring::Ring::new(vec![], 2).unwrap()),
            1 << 20,
            Duration::from_secs(1),
            None,
        )
        .unwrap();
        let query = MetainfoQuery {
            digest: Digest::of(b"x"),
            repository: String::new(),
            namespace: String::new(),
        };
        assert_eq!(source.get(&query).await, Err(MetainfoError::NoOrigins));
    }
}
