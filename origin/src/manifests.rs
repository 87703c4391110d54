//! Manifests for agents: resolved upstream, cached.
//!
//! A manifest by digest never changes, so it is kept in an LRU bounded in
//! bytes. A tag moves, so its resolution to a digest is reused only for the
//! configured TTL; a TTL of zero asks upstream for every tag request.
//! Entries are keyed by namespace and repository too, so a digest cached
//! for one repository is never served for another the upstream might
//! refuse.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;
use shoal_registry::{ManifestReference, RepositoryName};
use shoal_swarm::Digest;
use tokio::time::Instant;

use crate::upstream::{Manifest, UpstreamError, Upstreams};

/// Bound on remembered tags (each a few hundred bytes).
const MAX_TAGS: usize = 65_536;

type DigestKey = (String, RepositoryName, Digest);
type TagKey = (String, RepositoryName, String);

/// The manifest cache in front of the upstreams.
pub(crate) struct Manifests {
    upstreams: Arc<Upstreams>,
    tag_ttl: Duration,
    max_bytes: u64,
    cache: Mutex<Cache>,
}

struct Cache {
    by_digest: LruCache<DigestKey, Manifest>,
    bytes: u64,
    tags: LruCache<TagKey, (Digest, Instant)>,
}

impl Manifests {
    pub(crate) fn new(upstreams: Arc<Upstreams>, tag_ttl: Duration, max_bytes: u64) -> Self {
        let max_tags = NonZeroUsize::new(MAX_TAGS).unwrap_or(NonZeroUsize::MIN);
        Manifests {
            upstreams,
            tag_ttl,
            max_bytes,
            cache: Mutex::new(Cache {
                by_digest: LruCache::unbounded(),
                bytes: 0,
                tags: LruCache::new(max_tags),
            }),
        }
    }

    /// The manifest `reference` names, from the cache or upstream.
    pub(crate) async fn get(
        &self,
        namespace: &str,
        name: &RepositoryName,
        reference: &ManifestReference,
    ) -> Result<Manifest, UpstreamError> {
        let cached_digest = match reference {
            ManifestReference::Digest(digest) => Some(*digest),
            ManifestReference::Tag(tag) => self.fresh_tag(namespace, name, tag),
        };
        if let Some(digest) = cached_digest
            && let Some(found) = self.cached(namespace, name, &digest)
        {
            return Ok(found);
        }
        let manifest = self.upstreams.manifest(namespace, name, reference).await?;
        if let ManifestReference::Digest(digest) = reference
            && *digest != manifest.digest
        {
            return Err(UpstreamError::Failed {
                namespace: namespace.to_owned(),
                message: format!(
                    "manifest asked for as {digest} has digest {}",
                    manifest.digest
                ),
            });
        }
        self.insert(namespace, name, reference, &manifest);
        Ok(manifest)
    }

    fn fresh_tag(&self, namespace: &str, name: &RepositoryName, tag: &str) -> Option<Digest> {
        if self.tag_ttl.is_zero() {
            return None;
        }
        let mut cache = self.cache.lock().ok()?;
        let key = (namespace.to_owned(), name.clone(), tag.to_owned());
        match cache.tags.get(&key) {
            Some((digest, at)) if at.elapsed() < self.tag_ttl => Some(*digest),
            _ => None,
        }
    }

    fn cached(&self, namespace: &str, name: &RepositoryName, digest: &Digest) -> Option<Manifest> {
        let mut cache = self.cache.lock().ok()?;
        let key = (namespace.to_owned(), name.clone(), *digest);
        cache.by_digest.get(&key).cloned()
    }

    fn insert(
        &self,
        namespace: &str,
        name: &RepositoryName,
        reference: &ManifestReference,
        manifest: &Manifest,
    ) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        let size = manifest.bytes.len() as u64;
        if size <= self.max_bytes {
            let key = (namespace.to_owned(), name.clone(), manifest.digest);
            if let Some(old) = cache.by_digest.put(key, manifest.clone()) {
                cache.bytes -= old.bytes.len() as u64;
            }
            cache.bytes += size;
            while cache.bytes > self.max_bytes {
                let Some((_, evicted)) = cache.by_digest.pop_lru() else {
                    break;
                };
                cache.bytes -= evicted.bytes.len() as u64;
            }
        }
        if let ManifestReference::Tag(tag) = reference
            && !self.tag_ttl.is_zero()
        {
            let key = (namespace.to_owned(), name.clone(), tag.clone());
            cache.tags.put(key, (manifest.digest, Instant::now()));
        }
    }
}
