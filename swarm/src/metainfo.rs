//! A blob's metainfo: its digest and length, the piece length, and the
//! SHA-256 of every piece. Peers verify each piece against it before a byte
//! is stored, served or streamed to a client.
//!
//! Metainfo is computed in one streaming pass ([`Metainfo::compute`]), which
//! also checks the blob's own digest: the origin never publishes metainfo for
//! bytes that do not match what the registry promised.

use std::ops::Range;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::digest::Digest;

/// Smallest piece: below this the per-piece overhead (hash, have, request
/// round trips) dominates.
pub const MIN_PIECE_LENGTH: u32 = 1 << 20;
/// Largest piece: above this a single slow peer holds up a large share of the
/// blob and streaming latency to the client grows.
pub const MAX_PIECE_LENGTH: u32 = 16 << 20;
/// Aim for at most this many pieces: enough for rarest-first to spread load,
/// few enough that bitfields and hash lists stay small.
pub const TARGET_MAX_PIECES: u64 = 2000;

/// SHA-256 of one piece.
pub type PieceHash = [u8; 32];

/// Everything a peer needs to verify a blob piece by piece.
#[derive(Clone, PartialEq, Eq)]
pub struct Metainfo {
    digest: Digest,
    length: u64,
    piece_length: u32,
    piece_hashes: Vec<PieceHash>,
}

/// Why metainfo could not be built or computed.
#[derive(Debug, thiserror::Error)]
pub enum MetainfoError {
    /// The piece length is not a power of two within the allowed range.
    #[error("piece length {0} is not a power of two from 1 MiB to 16 MiB")]
    BadPieceLength(u32),
    /// The number of piece hashes does not match length / piece length.
    #[error("expected {expected} piece hashes for the blob length, got {got}")]
    PieceCountMismatch {
        /// Pieces implied by length and piece length.
        expected: u64,
        /// Hashes supplied.
        got: u64,
    },
    /// A serialized hash list is not a multiple of 32 bytes.
    #[error("piece hash list of {0} bytes is not a multiple of 32")]
    BadHashList(usize),
    /// A serialized digest was malformed.
    #[error("invalid digest: {0}")]
    Digest(#[from] crate::digest::DigestError),
    /// The bytes read hash to something other than the expected digest.
    #[error("content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Digest the caller promised.
        expected: Digest,
        /// Digest of the bytes actually read.
        actual: Digest,
    },
    /// The stream ended before or after the promised length.
    #[error("blob length mismatch: expected {expected} bytes, got {actual}")]
    LengthMismatch {
        /// Length the caller promised.
        expected: u64,
        /// Bytes actually read.
        actual: u64,
    },
    /// The reader failed.
    #[error("reading blob")]
    Io(#[from] std::io::Error),
}

impl Metainfo {
    /// Builds metainfo from parts received from elsewhere (the tracker, the
    /// disk), checking that they are consistent.
    pub fn new(
        digest: Digest,
        length: u64,
        piece_length: u32,
        piece_hashes: Vec<PieceHash>,
    ) -> Result<Self, MetainfoError> {
        if !piece_length.is_power_of_two()
            || !(MIN_PIECE_LENGTH..=MAX_PIECE_LENGTH).contains(&piece_length)
        {
            return Err(MetainfoError::BadPieceLength(piece_length));
        }
        let expected = length.div_ceil(u64::from(piece_length));
        if expected != piece_hashes.len() as u64 {
            return Err(MetainfoError::PieceCountMismatch {
                expected,
                got: piece_hashes.len() as u64,
            });
        }
        Ok(Metainfo {
            digest,
            length,
            piece_length,
            piece_hashes,
        })
    }

    /// The piece length for a blob of `length` bytes: the smallest power of
    /// two from 1 MiB to 16 MiB giving at most [`TARGET_MAX_PIECES`] pieces
    /// (blobs over ~32 GiB get 16 MiB pieces and more than the target).
    pub fn piece_length_for(length: u64) -> u32 {
        let mut piece = MIN_PIECE_LENGTH;
        while piece < MAX_PIECE_LENGTH && length.div_ceil(u64::from(piece)) > TARGET_MAX_PIECES {
            piece *= 2;
        }
        piece
    }

    /// The blob's content digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The blob's length in bytes.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Length of every piece but possibly the last.
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        // new() bounds this: length <= u64::MAX and piece >= 1 MiB gives < 2^44,
        // but hash lists come from the wire and are bounded by message size.
        self.piece_hashes.len() as u32
    }

    /// Byte range of piece `index` within the blob, or None if out of range.
    pub fn piece_range(&self, index: u32) -> Option<Range<u64>> {
        if index >= self.piece_count() {
            return None;
        }
        let start = u64::from(index) * u64::from(self.piece_length);
        let end = (start + u64::from(self.piece_length)).min(self.length);
        Some(start..end)
    }

    /// Length of piece `index`, or None if out of range.
    pub fn piece_len(&self, index: u32) -> Option<u32> {
        self.piece_range(index).map(|r| (r.end - r.start) as u32)
    }

    /// Expected SHA-256 of piece `index`, or None if out of range.
    pub fn piece_hash(&self, index: u32) -> Option<&PieceHash> {
        self.piece_hashes.get(index as usize)
    }

    /// All piece hashes in order.
    pub fn piece_hashes(&self) -> &[PieceHash] {
        &self.piece_hashes
    }

    /// True if `data` is exactly piece `index`. Costs one SHA-256 pass over
    /// `data`: call it off the async runtime for large pieces.
    pub fn verify_piece(&self, index: u32, data: &[u8]) -> bool {
        match (self.piece_hash(index), self.piece_len(index)) {
            (Some(expected), Some(len)) if len as usize == data.len() => {
                let actual: PieceHash = Sha256::digest(data).into();
                &actual == expected
            }
            _ => false,
        }
    }

    /// Hashes everything `reader` yields as blob `digest` of `length` bytes,
    /// in one pass, and checks the whole-blob digest and length.
    ///
    /// The piece hashes and the whole-blob hash each run on a thread of their
    /// own, fed the same chunks, while this task only reads: on two cores the
    /// two SHA-256 streams and the read all overlap, and the pass takes about
    /// as long as one SHA-256 of the blob.
    pub async fn compute<R>(
        digest: Digest,
        length: u64,
        mut reader: R,
    ) -> Result<Self, MetainfoError>
    where
        R: AsyncRead + Unpin,
    {
        const CHUNK: usize = 1 << 20;
        let whole = HashThread::spawn(Sha256::new(), |hasher, chunk| hasher.update(chunk));
        let pieces = HashThread::spawn(PieceHasher::new(length), |hasher, chunk| {
            hasher.update(chunk)
        });
        let read_result: Result<(), std::io::Error> = async {
            loop {
                let mut buf = bytes::BytesMut::with_capacity(CHUNK);
                while buf.len() < CHUNK {
                    if reader.read_buf(&mut buf).await? == 0 {
                        break;
                    }
                }
                if buf.is_empty() {
                    return Ok(());
                }
                let chunk = buf.freeze();
                whole.feed(chunk.clone());
                pieces.feed(chunk);
            }
        }
        .await;
        let actual = Digest::from_bytes(whole.join()?.finalize().into());
        let pieces = pieces.join()?;
        read_result?;
        pieces.finish(digest, actual)
    }

    /// The wire and on-disk form.
    pub fn to_proto(&self) -> shoal_proto::tracker::Metainfo {
        shoal_proto::tracker::Metainfo {
            digest: self.digest.to_string(),
            length: self.length,
            piece_length: self.piece_length,
            piece_hashes: self.piece_hashes.concat(),
        }
    }

    /// Parses and checks the wire and on-disk form.
    pub fn from_proto(proto: &shoal_proto::tracker::Metainfo) -> Result<Self, MetainfoError> {
        let digest = proto.digest.parse()?;
        if !proto.piece_hashes.len().is_multiple_of(32) {
            return Err(MetainfoError::BadHashList(proto.piece_hashes.len()));
        }
        let hashes = proto
            .piece_hashes
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        Metainfo::new(digest, proto.length, proto.piece_length, hashes)
    }
}

impl std::fmt::Debug for Metainfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metainfo")
            .field("digest", &self.digest)
            .field("length", &self.length)
            .field("piece_length", &self.piece_length)
            .field("pieces", &self.piece_hashes.len())
            .finish()
    }
}

/// A hasher running on its own thread, fed chunks through a short queue so
/// that the reader stays at most a few MiB ahead.
struct HashThread<H> {
    chunks: std::sync::mpsc::SyncSender<Bytes>,
    thread: std::thread::JoinHandle<H>,
}

impl<H: Send + 'static> HashThread<H> {
    fn spawn(mut hasher: H, update: fn(&mut H, &[u8])) -> Self {
        let (chunks, rx) = std::sync::mpsc::sync_channel::<Bytes>(8);
        let thread = std::thread::spawn(move || {
            for chunk in rx {
                update(&mut hasher, &chunk);
            }
            hasher
        });
        HashThread { chunks, thread }
    }

    /// Queues a chunk. The thread only stops when the sender is dropped, so
    /// a send error means it panicked, which `join` reports.
    fn feed(&self, chunk: Bytes) {
        let _ = self.chunks.send(chunk);
    }

    fn join(self) -> Result<H, MetainfoError> {
        drop(self.chunks);
        self.thread
            .join()
            .map_err(|_| MetainfoError::Io(std::io::Error::other("hashing thread panicked")))
    }
}

/// Incremental metainfo for bytes that arrive in order, for callers that
/// already stream the blob somewhere (the origin writing into the store) and
/// want the piece hashes and the digest check from that same pass.
pub struct MetainfoHasher {
    whole: Sha256,
    pieces: PieceHasher,
}

impl MetainfoHasher {
    /// Starts hashing a blob of `length` bytes (from a registry's
    /// Content-Length or a descriptor), which fixes the piece length.
    pub fn new(length: u64) -> Self {
        MetainfoHasher {
            whole: Sha256::new(),
            pieces: PieceHasher::new(length),
        }
    }

    /// Feeds the next bytes of the blob.
    pub fn update(&mut self, data: &[u8]) {
        self.whole.update(data);
        self.pieces.update(data);
    }

    /// Bytes fed so far.
    pub fn bytes_hashed(&self) -> u64 {
        self.pieces.total
    }

    /// Finishes, checking the bytes against `digest` and the promised length.
    pub fn finish(self, digest: Digest) -> Result<Metainfo, MetainfoError> {
        let actual = Digest::from_bytes(self.whole.finalize().into());
        self.pieces.finish(digest, actual)
    }
}

/// Per-piece SHA-256 over an in-order stream of known length.
struct PieceHasher {
    length: u64,
    piece_length: u32,
    current: Sha256,
    filled: u32,
    hashes: Vec<PieceHash>,
    total: u64,
}

impl PieceHasher {
    fn new(length: u64) -> Self {
        let piece_length = Metainfo::piece_length_for(length);
        PieceHasher {
            length,
            piece_length,
            current: Sha256::new(),
            filled: 0,
            hashes: Vec::with_capacity(
                length.div_ceil(u64::from(piece_length)).min(1 << 16) as usize
            ),
            total: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        while !data.is_empty() {
            let room = (self.piece_length - self.filled) as usize;
            let take = room.min(data.len());
            self.current.update(&data[..take]);
            self.filled += take as u32;
            data = &data[take..];
            if self.filled == self.piece_length {
                self.hashes.push(self.current.finalize_reset().into());
                self.filled = 0;
            }
        }
    }

    /// Checks length and digest, then closes the last partial piece.
    fn finish(mut self, expected: Digest, actual: Digest) -> Result<Metainfo, MetainfoError> {
        if self.total != self.length {
            return Err(MetainfoError::LengthMismatch {
                expected: self.length,
                actual: self.total,
            });
        }
        if actual != expected {
            return Err(MetainfoError::DigestMismatch { expected, actual });
        }
        if self.filled > 0 {
            self.hashes.push(self.current.finalize().into());
        }
        Metainfo::new(expected, self.length, self.piece_length, self.hashes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn piece_length_is_power_of_two_with_at_most_2000_pieces() {
        assert_eq!(Metainfo::piece_length_for(0), MIN_PIECE_LENGTH);
        assert_eq!(Metainfo::piece_length_for(2000 * MIB), 1 << 20);
        assert_eq!(Metainfo::piece_length_for(2000 * MIB + 1), 2 << 20);
        assert_eq!(Metainfo::piece_length_for(1 << 40), MAX_PIECE_LENGTH);
        for len in [1, MIB, 3 * 1024 * MIB, 20 * 1024 * MIB] {
            let p = Metainfo::piece_length_for(len);
            assert!(p.is_power_of_two());
            assert!(len.div_ceil(u64::from(p)) <= TARGET_MAX_PIECES);
        }
    }

    fn blob(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn compute_matches_hasher_and_verifies_pieces() {
        let data = blob(2 * MIB as usize + 12345);
        let digest = Digest::of(&data);
        let m = Metainfo::compute(digest, data.len() as u64, &data[..])
            .await
            .unwrap();
        assert_eq!(m.piece_count(), 3);
        assert_eq!(m.piece_len(2), Some(12345));
        assert_eq!(m.piece_len(3), None);
        for i in 0..3 {
            let r = m.piece_range(i).unwrap();
            assert!(m.verify_piece(i, &data[r.start as usize..r.end as usize]));
        }
        assert!(!m.verify_piece(0, &data[1..MIB as usize + 1]));

        let mut h = MetainfoHasher::new(data.len() as u64);
        for chunk in data.chunks(7777) {
            h.update(chunk);
        }
        assert_eq!(h.finish(digest).unwrap(), m);
        assert_eq!(Metainfo::from_proto(&m.to_proto()).unwrap(), m);
    }

    #[tokio::test]
    async fn compute_rejects_wrong_digest_and_short_stream() {
        let data = blob(1000);
        let wrong = Digest::of(b"other");
        assert!(matches!(
            Metainfo::compute(wrong, 1000, &data[..]).await,
            Err(MetainfoError::DigestMismatch { .. })
        ));
        assert!(matches!(
            Metainfo::compute(Digest::of(&data), 1001, &data[..]).await,
            Err(MetainfoError::LengthMismatch {
                expected: 1001,
                actual: 1000
            })
        ));
    }

    #[test]
    fn new_rejects_inconsistent_parts() {
        let d = Digest::of(b"");
        assert!(matches!(
            Metainfo::new(d, 10, 3 << 20, vec![[0; 32]]),
            Err(MetainfoError::BadPieceLength(_))
        ));
        assert!(matches!(
            Metainfo::new(d, 3 * MIB, 1 << 20, vec![[0; 32]]),
            Err(MetainfoError::PieceCountMismatch {
                expected: 3,
                got: 1
            })
        ));
    }
}
