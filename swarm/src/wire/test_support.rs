//! Proptest strategies and helpers shared by the wire tests: geometries,
//! message streams that are valid for them, and stream encoding/decoding.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::decoder::Decoder;
use super::encoder::encode;
use super::error::WireError;
use super::frame::MAX_BLOCK_LENGTH;
use super::geometry::Geometry;
use super::message::{BlockRange, Handshake, Message, PROTOCOL_VERSION};
use crate::bitfield::Bitfield;
use crate::digest::Digest;
use crate::peer_id::PeerId;

/// Piece payloads stay small so that split-point tests stay fast; block
/// ranges in requests still span the whole piece length.
const MAX_TEST_PAYLOAD: u32 = 300;

/// A blob layout with its piece lengths, which `Geometry` keeps private.
#[derive(Debug, Clone, Copy)]
pub(super) struct TestBlob {
    pub(super) geometry: Geometry,
    pub(super) piece_count: u32,
    pub(super) piece_length: u32,
    pub(super) last_piece_length: u32,
}

impl TestBlob {
    pub(super) fn new(piece_count: u32, piece_length: u32, last_piece_length: u32) -> Self {
        let length =
            u64::from(piece_count - 1) * u64::from(piece_length) + u64::from(last_piece_length);
        TestBlob {
            geometry: Geometry::new(length, piece_length).expect("valid test geometry"),
            piece_count,
            piece_length,
            last_piece_length,
        }
    }

    pub(super) fn piece_len(&self, index: u32) -> u32 {
        if index + 1 == self.piece_count {
            self.last_piece_length
        } else {
            self.piece_length
        }
    }

    pub(super) fn decoder(&self) -> Decoder {
        let mut decoder = Decoder::new();
        decoder.set_geometry(self.geometry);
        decoder
    }
}

pub(super) fn handshake(seed: u8) -> Message {
    Message::Handshake(Handshake {
        version: PROTOCOL_VERSION,
        digest: Digest::of(&[seed]),
        peer_id: PeerId::from_array([seed; PeerId::LEN]),
    })
}

pub(super) fn arb_blob() -> impl Strategy<Value = TestBlob> {
    (1u32..=3000, 1u32..=(4 << 20))
        .prop_flat_map(|(count, piece)| (Just(count), Just(piece), 1..=piece))
        .prop_map(|(count, piece, last)| TestBlob::new(count, piece, last))
}

fn arb_index(blob: TestBlob) -> impl Strategy<Value = u32> {
    0..blob.piece_count
}

fn arb_range(blob: TestBlob) -> impl Strategy<Value = BlockRange> {
    arb_index(blob)
        .prop_flat_map(move |index| {
            let piece = blob.piece_len(index);
            (Just(index), Just(piece), 1..=piece.min(MAX_BLOCK_LENGTH))
        })
        .prop_flat_map(|(index, piece, length)| {
            (0..=piece - length).prop_map(move |begin| BlockRange {
                index,
                begin,
                length,
            })
        })
}

fn arb_piece(blob: TestBlob) -> impl Strategy<Value = Message> {
    arb_index(blob)
        .prop_flat_map(move |index| {
            let piece = blob.piece_len(index);
            let len = 1..=piece.min(MAX_TEST_PAYLOAD);
            (Just(index), Just(piece), len)
        })
        .prop_flat_map(|(index, piece, len)| {
            let data = proptest::collection::vec(any::<u8>(), len as usize);
            (0..=piece - len, data).prop_map(move |(begin, data)| Message::Piece {
                index,
                begin,
                data: Bytes::from(data),
            })
        })
}

pub(super) fn arb_bitfield(blob: TestBlob) -> impl Strategy<Value = Message> {
    proptest::collection::vec(any::<bool>(), blob.piece_count as usize).prop_map(|bits| {
        let mut set = Bitfield::new(bits.len() as u32);
        for (i, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
            set.set(i as u32);
        }
        Message::Bitfield(Bytes::copy_from_slice(set.as_bytes()))
    })
}

/// Any message but handshake and bitfield, valid for `blob`.
pub(super) fn arb_body_message(blob: TestBlob) -> impl Strategy<Value = Message> {
    prop_oneof![
        arb_index(blob).prop_map(Message::Have),
        Just(Message::Interested),
        Just(Message::NotInterested),
        Just(Message::Choke),
        Just(Message::Unchoke),
        arb_range(blob).prop_map(Message::Request),
        arb_range(blob).prop_map(Message::Cancel),
        arb_range(blob).prop_map(Message::Reject),
        arb_piece(blob),
        Just(Message::Complete),
    ]
}

/// A valid conversation: handshake, maybe a bitfield, then up to 12 others.
pub(super) fn arb_stream() -> impl Strategy<Value = (TestBlob, Vec<Message>)> {
    arb_blob().prop_flat_map(|blob| {
        let bitfield = proptest::option::of(arb_bitfield(blob));
        let rest = proptest::collection::vec(arb_body_message(blob), 0..12);
        (Just(blob), any::<u8>(), bitfield, rest).prop_map(|(blob, seed, bitfield, rest)| {
            let mut messages = vec![handshake(seed)];
            messages.extend(bitfield);
            messages.extend(rest);
            (blob, messages)
        })
    })
}

pub(super) fn encode_all(messages: &[Message]) -> BytesMut {
    let mut buf = BytesMut::new();
    for message in messages {
        encode(message, &mut buf).expect("test messages encode");
    }
    buf
}

/// Decodes every complete frame in `buf`, stopping at the first error.
pub(super) fn decode_all(
    decoder: &mut Decoder,
    buf: &mut BytesMut,
) -> Result<Vec<Message>, WireError> {
    let mut out = Vec::new();
    while let Some(message) = decoder.decode(buf)? {
        out.push(message);
    }
    Ok(out)
}
