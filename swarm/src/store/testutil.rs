//! Blobs and downloads for the store's tests.

use std::sync::Arc;

use bytes::Bytes;

use super::{BlobReader, Store};
use crate::digest::Digest;
use crate::metainfo::{Metainfo, MetainfoHasher};

pub(crate) const MIB: usize = 1 << 20;

/// `len` bytes that differ per `seed`.
pub(crate) fn blob(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64 * 31 + u64::from(seed) * 7 + (i as u64 >> 20)) as u8)
        .collect()
}

pub(crate) fn metainfo(data: &[u8]) -> Arc<Metainfo> {
    let mut hasher = MetainfoHasher::new(data.len() as u64);
    hasher.update(data);
    Arc::new(hasher.finish(Digest::of(data)).unwrap())
}

pub(crate) fn piece(data: &[u8], metainfo: &Metainfo, index: u32) -> Bytes {
    let r = metainfo.piece_range(index).unwrap();
    Bytes::copy_from_slice(&data[r.start as usize..r.end as usize])
}

/// Downloads `data` completely through a partial blob.
pub(crate) async fn download(store: &Store, data: &[u8]) -> BlobReader {
    let m = metainfo(data);
    let partial = store.partial(Arc::clone(&m)).await.unwrap();
    for i in (0..m.piece_count()).rev() {
        partial.write_piece(i, piece(data, &m, i)).await.unwrap();
    }
    partial.finish().await.unwrap()
}
