//! The mirror of `frame`: whole frames for any message, and the
//! header alone for a piece so that its payload can be written from the
//! caller's buffer instead of being copied into ours.

use bytes::{BufMut, BytesMut};
use prost::Message as _;
use shoal_proto::peer as proto;

use super::error::WireError;
use super::frame::{LENGTH_PREFIX_LEN, MessageType, PIECE_HEADER_LEN_LEN};
use super::message::{BlockRange, Message};

/// Checks that a frame of `len` bytes after the prefix fits the u32 prefix.
fn frame_len(len: u64) -> Result<u32, WireError> {
    u32::try_from(len).map_err(|_| WireError::OutgoingTooLarge { len })
}

/// Appends one protobuf-bodied frame; nothing is appended on error.
fn encode_proto(
    kind: MessageType,
    body: &impl prost::Message,
    dst: &mut BytesMut,
) -> Result<(), WireError> {
    let body_len = body.encoded_len();
    let len = frame_len(1 + body_len as u64)?;
    dst.reserve(LENGTH_PREFIX_LEN + len as usize);
    dst.put_u32(len);
    dst.put_u8(kind as u8);
    // Cannot fail: a BytesMut grows on demand and was reserved above.
    body.encode(dst).map_err(|_| WireError::OutgoingTooLarge {
        len: u64::from(len),
    })
}

fn range_proto(r: &BlockRange) -> proto::BlockRange {
    proto::BlockRange {
        index: r.index,
        begin: r.begin,
        length: r.length,
    }
}

/// Appends `message` as one complete frame to `dst`. Piece payloads are
/// copied; to send a piece without copying use [`encode_piece_header`] and
/// write the payload after it, as [`MessageWriter`](super::MessageWriter)
/// does. The encoder does not check blob geometry: that is the sender's
/// business, and the receiving peer's decoder checks it anyway.
pub fn encode(message: &Message, dst: &mut BytesMut) -> Result<(), WireError> {
    let kind = MessageType::of(message);
    match message {
        Message::Handshake(hs) => {
            let body = proto::Handshake {
                version: hs.version,
                blob_digest: hs.digest.to_string(),
                peer_id: hs.peer_id.as_bytes().to_vec(),
            };
            encode_proto(kind, &body, dst)
        }
        Message::Bitfield(bits) => {
            let body = proto::Bitfield {
                bits: bits.to_vec(),
            };
            encode_proto(kind, &body, dst)
        }
        Message::Have(index) => encode_proto(kind, &proto::Have { index: *index }, dst),
        Message::Request(r) | Message::Cancel(r) | Message::Reject(r) => {
            encode_proto(kind, &range_proto(r), dst)
        }
        Message::Piece { index, begin, data } => {
            encode_piece_header(*index, *begin, data.len(), dst)?;
            dst.extend_from_slice(data);
            Ok(())
        }
        Message::Interested
        | Message::NotInterested
        | Message::Choke
        | Message::Unchoke
        | Message::Complete => {
            dst.reserve(LENGTH_PREFIX_LEN + 1);
            dst.put_u32(1);
            dst.put_u8(kind as u8);
            Ok(())
        }
    }
}

/// Appends everything of a piece frame except its payload, so that the
/// caller can write the payload straight from its own buffer afterwards.
/// The frame is only valid once exactly `payload_len` bytes follow.
pub fn encode_piece_header(
    index: u32,
    begin: u32,
    payload_len: usize,
    dst: &mut BytesMut,
) -> Result<(), WireError> {
    let header = proto::PieceHeader { index, begin };
    let header_len = header.encoded_len();
    // A PieceHeader of two varints is at most 12 bytes.
    let header_len_u16 = u16::try_from(header_len).map_err(|_| WireError::OutgoingTooLarge {
        len: header_len as u64,
    })?;
    let len = frame_len((1 + PIECE_HEADER_LEN_LEN + header_len) as u64 + payload_len as u64)?;
    dst.reserve(LENGTH_PREFIX_LEN + 1 + PIECE_HEADER_LEN_LEN + header_len);
    dst.put_u32(len);
    dst.put_u8(MessageType::Piece as u8);
    dst.put_u16(header_len_u16);
    header.encode(dst).map_err(|_| WireError::OutgoingTooLarge {
        len: u64::from(len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_outgoing_frames_are_refused_before_writing() {
        assert!(matches!(frame_len(u64::from(u32::MAX)), Ok(u32::MAX)));
        assert!(matches!(
            frame_len(u64::from(u32::MAX) + 1),
            Err(WireError::OutgoingTooLarge { .. })
        ));
        let mut buf = BytesMut::new();
        let huge = u32::MAX as usize;
        assert!(matches!(
            encode_piece_header(0, 0, huge, &mut buf),
            Err(WireError::OutgoingTooLarge { .. })
        ));
        assert!(buf.is_empty());
    }
}
