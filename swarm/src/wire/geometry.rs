//! The blob layout the decoder checks messages against.

use std::sync::Arc;

use crate::bitfield::Bitfield;
use crate::metainfo::Metainfo;

/// The piece layout of a blob: all the decoder needs to bounds-check piece
/// indices and block ranges, without holding on to the piece hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    piece_count: u32,
    piece_length: u32,
    last_piece_length: u32,
}

impl Geometry {
    /// For a blob known by its length and piece length only (the simulator,
    /// tests). Unlike [`Metainfo`] it accepts any non-zero piece length.
    /// `None` if `piece_length` is 0 or the blob has more than `u32::MAX`
    /// pieces.
    pub fn new(length: u64, piece_length: u32) -> Option<Self> {
        let piece_count = u32::try_from(length.checked_div(u64::from(piece_length))?).ok()?;
        let tail = (length % u64::from(piece_length)) as u32;
        Some(match (piece_count, tail) {
            (0, 0) => Geometry {
                piece_count: 0,
                piece_length,
                last_piece_length: 0,
            },
            (n, 0) => Geometry {
                piece_count: n,
                piece_length,
                last_piece_length: piece_length,
            },
            (n, tail) => Geometry {
                piece_count: n.checked_add(1)?,
                piece_length,
                last_piece_length: tail,
            },
        })
    }

    pub(super) fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// Length of piece `index`, or `None` past the end of the blob.
    pub(super) fn piece_len(&self, index: u32) -> Option<u32> {
        match index.checked_add(1)?.cmp(&self.piece_count) {
            std::cmp::Ordering::Less => Some(self.piece_length),
            std::cmp::Ordering::Equal => Some(self.last_piece_length),
            std::cmp::Ordering::Greater => None,
        }
    }

    /// Frame length of this blob's bitfield message (an upper bound for an
    /// empty blob), so that the frame limit never refuses a legitimate one.
    pub(super) fn bitfield_frame_len(&self) -> u32 {
        let bits = Bitfield::byte_len(self.piece_count) as u64;
        // Type byte, field tag, varint length, bits.
        let len = 1 + 1 + prost::encoding::encoded_len_varint(bits) as u64 + bits;
        u32::try_from(len).unwrap_or(u32::MAX)
    }
}

impl From<&Metainfo> for Geometry {
    fn from(meta: &Metainfo) -> Self {
        let piece_count = meta.piece_count();
        Geometry {
            piece_count,
            piece_length: meta.piece_length(),
            last_piece_length: piece_count
                .checked_sub(1)
                .and_then(|last| meta.piece_len(last))
                .unwrap_or(0),
        }
    }
}

impl From<Arc<Metainfo>> for Geometry {
    fn from(meta: Arc<Metainfo>) -> Self {
        Geometry::from(meta.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use super::*;
    use crate::digest::Digest;
    use crate::wire::frame::LENGTH_PREFIX_LEN;
    use crate::wire::{Message, encode};

    #[test]
    fn geometry_of_metainfo_matches_its_pieces() {
        let meta = Metainfo::new(Digest::of(b"x"), (3 << 20) + 5, 1 << 20, vec![[0; 32]; 4])
            .expect("consistent metainfo");
        let geometry = Geometry::from(&meta);
        assert_eq!(Some(geometry), Geometry::new((3 << 20) + 5, 1 << 20));
        assert_eq!(geometry.piece_len(3), Some(5));
        assert_eq!(geometry.piece_len(4), None);
        assert_eq!(Geometry::new(1, 0), None);
        assert_eq!(Geometry::new(0, 1).map(|g| g.piece_count), Some(0));
        assert_eq!(Geometry::new(u64::MAX, 1), None);
    }

    #[test]
    fn bitfield_frame_len_matches_the_encoder() {
        // Zero pieces is the exception: proto3 omits the empty field.
        for pieces in [1, 8, 9, 1000, 1 << 20] {
            let geometry = Geometry::new(pieces, 1).expect("valid geometry");
            let bits = Bytes::from(vec![0; Bitfield::byte_len(pieces as u32)]);
            let mut buf = BytesMut::new();
            encode(&Message::Bitfield(bits), &mut buf).expect("encodes");
            let frame_len = buf.len() - LENGTH_PREFIX_LEN;
            assert_eq!(
                geometry.bitfield_frame_len() as usize,
                frame_len,
                "{pieces} pieces"
            );
        }
    }
}
