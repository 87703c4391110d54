//! The connection-aware half of decoding: frames go through
//! [`frame::check`] and [`frame::parse`], then the [`Decoder`] enforces the
//! order of the conversation and the blob's geometry, so that nothing the
//! engine receives can name a piece or a byte range that does not exist.

use bytes::{Buf, BytesMut};

use super::error::WireError;
use super::frame::{
    self, DEFAULT_MAX_FRAME_LEN, HANDSHAKE_MAX_FRAME_LEN, MAX_BLOCK_LENGTH, MessageType,
};
use super::geometry::Geometry;
use super::message::{BlockRange, Message};
use crate::bitfield::Bitfield;

/// Turns the bytes of one connection into checked [`Message`]s.
///
/// Calling order: [`decode`](Self::decode) until the handshake comes out,
/// look up the blob it names, [`set_geometry`](Self::set_geometry), then
/// keep decoding. (A dialler that knows the blob may set the geometry up
/// front.) Any error is fatal to the connection: drop the decoder with it.
#[derive(Debug, Default)]
pub struct Decoder {
    handshake_seen: bool,
    /// True between the handshake and the next message: the only place a
    /// bitfield may appear.
    bitfield_allowed: bool,
    geometry: Option<Geometry>,
    configured_max_frame_len: Option<u32>,
}

impl Decoder {
    /// A decoder for a fresh connection, expecting a handshake first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Overrides [`DEFAULT_MAX_FRAME_LEN`], e.g. for a peer that only
    /// requests small blocks. The limit never drops below the size of the
    /// blob's bitfield frame, and before the handshake it is at most 1 KiB
    /// whatever is configured.
    pub fn with_max_frame_len(mut self, max: u32) -> Self {
        self.configured_max_frame_len = Some(max);
        self
    }

    /// Supplies the blob's layout (a [`Geometry`], or the blob's
    /// [`Metainfo`](crate::Metainfo)), needed to check everything after the
    /// handshake. Call it once the handshake has named the blob.
    pub fn set_geometry(&mut self, geometry: impl Into<Geometry>) {
        self.geometry = Some(geometry.into());
    }

    /// The largest frame (type byte and body) the next decode accepts.
    pub fn max_frame_len(&self) -> u32 {
        let configured = self
            .configured_max_frame_len
            .unwrap_or(DEFAULT_MAX_FRAME_LEN);
        if !self.handshake_seen {
            return configured.min(HANDSHAKE_MAX_FRAME_LEN);
        }
        match &self.geometry {
            Some(g) => configured.max(g.bitfield_frame_len()),
            None => configured,
        }
    }

    /// Takes one message off the front of `buf`. `Ok(None)` means the frame
    /// is not complete yet: read more into `buf` and call again; nothing was
    /// consumed. A piece's payload is split out of `buf` without copying.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
        let Some(total) = frame::check(buf, self.max_frame_len())? else {
            return Ok(None);
        };
        buf.advance(frame::LENGTH_PREFIX_LEN);
        let message = frame::parse(buf.split_to(total - frame::LENGTH_PREFIX_LEN).freeze())?;
        self.admit(&message)?;
        Ok(Some(message))
    }

    /// Checks `message` against the conversation so far and the geometry.
    fn admit(&mut self, message: &Message) -> Result<(), WireError> {
        match (message, self.handshake_seen) {
            (Message::Handshake(_), false) => {
                self.handshake_seen = true;
                self.bitfield_allowed = true;
                return Ok(());
            }
            (Message::Handshake(_), true) => return Err(WireError::DuplicateHandshake),
            (_, false) => {
                return Err(WireError::MessageBeforeHandshake(
                    MessageType::of(message).name(),
                ));
            }
            (_, true) => {}
        }
        let bitfield_allowed = std::mem::replace(&mut self.bitfield_allowed, false);
        let geometry = self.geometry.ok_or(WireError::GeometryNotSet)?;
        match message {
            Message::Bitfield(bits) => {
                if !bitfield_allowed {
                    return Err(WireError::UnexpectedBitfield);
                }
                Bitfield::from_bytes(bits, geometry.piece_count())
                    .map_err(WireError::BadBitfield)?;
            }
            Message::Have(index) => {
                check_index(&geometry, *index)?;
            }
            Message::Request(range) | Message::Cancel(range) | Message::Reject(range) => {
                check_block(&geometry, *range)?;
            }
            Message::Piece { index, begin, data } => {
                let range = BlockRange {
                    index: *index,
                    begin: *begin,
                    // A frame is at most u32::MAX bytes; MAX saturates into a refusal.
                    length: u32::try_from(data.len()).unwrap_or(u32::MAX),
                };
                check_block(&geometry, range)?;
            }
            Message::Handshake(_)
            | Message::Interested
            | Message::NotInterested
            | Message::Choke
            | Message::Unchoke
            | Message::Complete => {}
        }
        Ok(())
    }
}

fn check_index(geometry: &Geometry, index: u32) -> Result<u32, WireError> {
    geometry.piece_len(index).ok_or(WireError::IndexOutOfRange {
        index,
        piece_count: geometry.piece_count(),
    })
}

fn check_block(geometry: &Geometry, range: BlockRange) -> Result<(), WireError> {
    let piece_len = check_index(geometry, range.index)?;
    let end = u64::from(range.begin) + u64::from(range.length);
    if range.length == 0 || range.length > MAX_BLOCK_LENGTH || end > u64::from(piece_len) {
        return Err(WireError::BlockOutOfRange { range, piece_len });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes};
    use proptest::prelude::*;

    use super::*;
    use crate::wire::test_support::{
        TestBlob, arb_blob, arb_body_message, arb_stream, decode_all, encode_all, handshake,
    };

    /// Three pieces of 64 KiB and a last one of 1000 bytes.
    fn blob() -> TestBlob {
        TestBlob::new(4, 64 << 10, 1000)
    }

    /// A decoder that has seen a handshake and knows `blob()`.
    fn ready() -> Decoder {
        let mut decoder = blob().decoder();
        let mut buf = encode_all(&[handshake(1)]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Ok(Some(Message::Handshake(_)))
        ));
        decoder
    }

    fn decode_one(decoder: &mut Decoder, message: &Message) -> Result<Option<Message>, WireError> {
        decoder.decode(&mut encode_all(std::slice::from_ref(message)))
    }

    fn range(index: u32, begin: u32, length: u32) -> BlockRange {
        BlockRange {
            index,
            begin,
            length,
        }
    }

    #[test]
    fn every_variant_round_trips() {
        let mut bits = Bitfield::new(4);
        bits.set(3);
        let messages = vec![
            handshake(9),
            Message::Bitfield(Bytes::copy_from_slice(bits.as_bytes())),
            Message::Have(3),
            Message::Interested,
            Message::NotInterested,
            Message::Choke,
            Message::Unchoke,
            Message::Request(range(0, 0, 64 << 10)),
            Message::Cancel(range(1, 100, 1)),
            Message::Reject(range(3, 999, 1)),
            Message::Piece {
                index: 3,
                begin: 0,
                data: Bytes::from(vec![5; 1000]),
            },
            Message::Complete,
        ];
        let mut buf = encode_all(&messages);
        let got = decode_all(&mut blob().decoder(), &mut buf).expect("valid stream");
        assert_eq!(got, messages);
        assert!(buf.is_empty());
    }

    #[test]
    fn piece_payload_stays_in_the_read_buffer() {
        let data = Bytes::from(vec![7; 1000]);
        let piece = Message::Piece {
            index: 3,
            begin: 0,
            data: data.clone(),
        };
        let mut buf = encode_all(&[piece]);
        let read_buffer = buf.as_ptr_range();
        let Ok(Some(Message::Piece { data: got, .. })) = ready().decode(&mut buf) else {
            panic!("piece did not decode");
        };
        assert_eq!(got, data);
        assert!(read_buffer.contains(&got.as_ptr()), "payload was copied");
    }

    #[test]
    fn handshake_must_come_first_and_once() {
        let err = decode_one(&mut blob().decoder(), &Message::Interested);
        assert!(matches!(
            err,
            Err(WireError::MessageBeforeHandshake("interested"))
        ));
        let err = decode_one(&mut ready(), &handshake(2));
        assert!(matches!(err, Err(WireError::DuplicateHandshake)));
    }

    #[test]
    fn geometry_is_required_after_the_handshake() {
        let mut decoder = Decoder::new();
        assert!(matches!(
            decode_one(&mut decoder, &handshake(1)),
            Ok(Some(_))
        ));
        let err = decode_one(&mut decoder, &Message::Have(0));
        assert!(matches!(err, Err(WireError::GeometryNotSet)));
    }

    #[test]
    fn bitfield_is_checked_against_the_piece_count() {
        let err = decode_one(
            &mut ready(),
            &Message::Bitfield(Bytes::from_static(&[0, 0])),
        );
        assert!(matches!(err, Err(WireError::BadBitfield(_))));
        // Four pieces: the low four bits of the only byte are spare.
        let err = decode_one(
            &mut ready(),
            &Message::Bitfield(Bytes::from_static(&[0x01])),
        );
        assert!(matches!(err, Err(WireError::BadBitfield(_))));
        let mut decoder = ready();
        assert!(decode_one(&mut decoder, &Message::Interested).is_ok());
        let err = decode_one(
            &mut decoder,
            &Message::Bitfield(Bytes::from_static(&[0xf0])),
        );
        assert!(matches!(err, Err(WireError::UnexpectedBitfield)));
    }

    #[test]
    fn indices_beyond_the_blob_are_refused() {
        let piece = Message::Piece {
            index: 4,
            begin: 0,
            data: Bytes::from_static(b"x"),
        };
        for message in [
            Message::Have(4),
            Message::Request(range(4, 0, 1)),
            Message::Cancel(range(u32::MAX, 0, 1)),
            Message::Reject(range(4, 0, 1)),
            piece,
        ] {
            let err = decode_one(&mut ready(), &message);
            assert!(
                matches!(err, Err(WireError::IndexOutOfRange { piece_count: 4, .. })),
                "{message:?}: {err:?}"
            );
        }
    }

    #[test]
    fn blocks_outside_their_piece_are_refused() {
        let big = TestBlob::new(2, 4 << 20, 4 << 20);
        for (blob, block) in [
            (blob(), range(0, 0, 0)),
            (blob(), range(0, (64 << 10) - 1, 2)),
            (blob(), range(3, 0, 1001)),
            (blob(), range(3, u32::MAX, u32::MAX)),
            (big, range(0, 0, MAX_BLOCK_LENGTH + 1)),
        ] {
            for message in [
                Message::Request(block),
                Message::Cancel(block),
                Message::Reject(block),
            ] {
                let mut decoder = blob.decoder();
                assert!(decode_one(&mut decoder, &handshake(1)).is_ok());
                let err = decode_one(&mut decoder, &message);
                assert!(
                    matches!(err, Err(WireError::BlockOutOfRange { .. })),
                    "{message:?}: {err:?}"
                );
            }
        }
        let piece = Message::Piece {
            index: 3,
            begin: 999,
            data: Bytes::from_static(b"xy"),
        };
        assert!(matches!(
            decode_one(&mut ready(), &piece),
            Err(WireError::BlockOutOfRange { .. })
        ));
        let empty = Message::Piece {
            index: 0,
            begin: 0,
            data: Bytes::new(),
        };
        assert!(matches!(
            decode_one(&mut ready(), &empty),
            Err(WireError::BlockOutOfRange { .. })
        ));
    }

    #[test]
    fn oversized_frames_are_refused_from_the_prefix() {
        let mut decoder = blob().decoder();
        let mut buf = BytesMut::new();
        buf.put_u32(HANDSHAKE_MAX_FRAME_LEN + 1);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(WireError::FrameTooLarge { .. })
        ));

        let mut buf = BytesMut::new();
        buf.put_u32(DEFAULT_MAX_FRAME_LEN + 1);
        assert!(matches!(
            ready().decode(&mut buf),
            Err(WireError::FrameTooLarge { .. })
        ));

        let mut decoder = ready().with_max_frame_len(100);
        let piece = Message::Piece {
            index: 0,
            begin: 0,
            data: Bytes::from(vec![0; 100]),
        };
        assert!(matches!(
            decode_one(&mut decoder, &piece),
            Err(WireError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn frame_limit_always_admits_the_bitfield() {
        // 2^24 pieces: a 2 MiB bitfield, larger than the default limit.
        let mut decoder = TestBlob::new(1 << 24, 1, 1).decoder();
        assert!(decode_one(&mut decoder, &handshake(1)).is_ok());
        let bits = Message::Bitfield(Bytes::from(vec![0xff; 1 << 21]));
        assert!(matches!(decode_one(&mut decoder, &bits), Ok(Some(_))));
    }

    #[test]
    fn empty_and_unknown_frames_are_refused() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert!(matches!(
            ready().decode(&mut buf),
            Err(WireError::EmptyFrame)
        ));
        let mut buf = BytesMut::from(&[0u8, 0, 0, 1, 200][..]);
        assert!(matches!(
            ready().decode(&mut buf),
            Err(WireError::UnknownMessageType(200))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn valid_streams_round_trip((blob, messages) in arb_stream()) {
            let mut buf = encode_all(&messages);
            let got = decode_all(&mut blob.decoder(), &mut buf);
            prop_assert_eq!(got.ok(), Some(messages));
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn every_split_point_decodes_the_same((blob, messages) in arb_stream()) {
            let whole = encode_all(&messages).freeze();
            for split in 0..=whole.len() {
                let mut decoder = blob.decoder();
                let mut buf = BytesMut::from(&whole[..split]);
                let mut got = decode_all(&mut decoder, &mut buf).expect("valid prefix");
                buf.extend_from_slice(&whole[split..]);
                got.extend(decode_all(&mut decoder, &mut buf).expect("valid rest"));
                prop_assert_eq!(&got, &messages, "split at {}", split);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            blob in arb_blob(),
            after_handshake: bool,
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut buf = BytesMut::new();
            if after_handshake {
                buf = encode_all(&[handshake(1)]);
            }
            buf.extend_from_slice(&bytes);
            let _ = decode_all(&mut blob.decoder(), &mut buf);
        }

        #[test]
        fn well_framed_garbage_never_panics(
            blob in arb_blob(),
            frames in proptest::collection::vec(
                (0u8..14, proptest::collection::vec(any::<u8>(), 0..64)),
                0..8,
            ),
        ) {
            // Valid lengths and (mostly) known types, so that the body
            // parsers see the garbage instead of the length check.
            let mut buf = encode_all(&[handshake(1)]);
            for (kind, body) in frames {
                buf.put_u32(1 + body.len() as u32);
                buf.put_u8(kind);
                buf.extend_from_slice(&body);
            }
            let _ = decode_all(&mut blob.decoder(), &mut buf);
        }

        #[test]
        fn mutated_frames_never_panic(
            (blob, messages) in arb_stream(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut buf = encode_all(&messages);
            for (at, byte) in edits {
                let at = at.index(buf.len());
                buf[at] = byte;
            }
            buf.truncate(cut.index(buf.len() + 1));
            let _ = decode_all(&mut blob.decoder(), &mut buf);
        }

        #[test]
        fn messages_for_another_blob_never_panic(
            blob in arb_blob(),
            message in arb_blob().prop_flat_map(arb_body_message),
        ) {
            // Messages valid for one blob are either accepted by another or
            // refused with a typed error, never a panic.
            let mut buf = encode_all(&[handshake(1), message]);
            let _ = decode_all(&mut blob.decoder(), &mut buf);
        }
    }
}
