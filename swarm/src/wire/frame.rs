//! The frame layout and its pure parser: [`check`] tells "need more bytes"
//! from "invalid" before anything is consumed, and [`parse`] turns one
//! complete frame into a [`Message`]. The way back is in `encoder`. Nothing
//! here knows about connection state or blob geometry; that is the
//! [`Decoder`](super::Decoder)'s job.

use bytes::{Buf, Bytes};
use shoal_proto::peer as proto;

use super::error::WireError;
use super::message::{BlockRange, Handshake, Message, PROTOCOL_VERSION};
use crate::digest::Digest;
use crate::peer_id::PeerId;

/// Largest block a request may ask for or a piece frame may carry. Bounds
/// what one frame makes us buffer while leaving room for the 1 MiB transfers
/// that keep per-frame overhead negligible.
pub const MAX_BLOCK_LENGTH: u32 = 1 << 20;

/// Default frame limit: a maximal block plus generous room for the type
/// byte, header length and piece header (at most 15 bytes today).
pub const DEFAULT_MAX_FRAME_LEN: u32 = MAX_BLOCK_LENGTH + 64;

/// Frame limit before the handshake: a handshake is about 100 bytes, and a
/// stranger must not make us buffer a megabyte before saying who it is.
pub(super) const HANDSHAKE_MAX_FRAME_LEN: u32 = 1024;

/// Bytes of the big-endian length prefix.
pub(super) const LENGTH_PREFIX_LEN: usize = 4;

/// Bytes of the piece header's big-endian length.
pub(super) const PIECE_HEADER_LEN_LEN: usize = 2;

/// The type byte of each message. Values are wire format: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum MessageType {
    Handshake = 0,
    Bitfield = 1,
    Have = 2,
    Interested = 3,
    NotInterested = 4,
    Choke = 5,
    Unchoke = 6,
    Request = 7,
    Cancel = 8,
    Reject = 9,
    Piece = 10,
    Complete = 11,
}

impl MessageType {
    fn from_byte(byte: u8) -> Option<Self> {
        use MessageType::*;
        [
            Handshake,
            Bitfield,
            Have,
            Interested,
            NotInterested,
            Choke,
            Unchoke,
            Request,
            Cancel,
            Reject,
            Piece,
            Complete,
        ]
        .get(usize::from(byte))
        .copied()
    }

    pub(super) fn of(message: &Message) -> Self {
        match message {
            Message::Handshake(_) => Self::Handshake,
            Message::Bitfield(_) => Self::Bitfield,
            Message::Have(_) => Self::Have,
            Message::Interested => Self::Interested,
            Message::NotInterested => Self::NotInterested,
            Message::Choke => Self::Choke,
            Message::Unchoke => Self::Unchoke,
            Message::Request(_) => Self::Request,
            Message::Cancel(_) => Self::Cancel,
            Message::Reject(_) => Self::Reject,
            Message::Piece { .. } => Self::Piece,
            Message::Complete => Self::Complete,
        }
    }

    /// Lower-case name for errors and logs.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Handshake => "handshake",
            Self::Bitfield => "bitfield",
            Self::Have => "have",
            Self::Interested => "interested",
            Self::NotInterested => "not-interested",
            Self::Choke => "choke",
            Self::Unchoke => "unchoke",
            Self::Request => "request",
            Self::Cancel => "cancel",
            Self::Reject => "reject",
            Self::Piece => "piece",
            Self::Complete => "complete",
        }
    }
}

/// The length a buffered frame announces (type byte and body), once its
/// prefix has arrived.
pub(super) fn announced_len(buf: &[u8]) -> Option<u32> {
    let prefix: [u8; LENGTH_PREFIX_LEN] = buf.get(..LENGTH_PREFIX_LEN)?.try_into().ok()?;
    Some(u32::from_be_bytes(prefix))
}

/// Whether `buf` starts with a complete frame, without consuming anything.
/// `Ok(None)`: more bytes needed. `Ok(Some(n))`: the first `n` bytes
/// (prefix included) are one frame. The length is judged against `max_len`
/// as soon as the prefix is in, so an oversized frame is refused before its
/// body is buffered.
pub(super) fn check(buf: &[u8], max_len: u32) -> Result<Option<usize>, WireError> {
    let Some(len) = announced_len(buf) else {
        return Ok(None);
    };
    if len == 0 {
        return Err(WireError::EmptyFrame);
    }
    if len > max_len {
        return Err(WireError::FrameTooLarge { len, max: max_len });
    }
    let total = LENGTH_PREFIX_LEN + len as usize;
    Ok((buf.len() >= total).then_some(total))
}

/// Parses one frame without its length prefix: the type byte, then the body.
/// The piece payload is a slice of `frame`, not a copy.
pub(super) fn parse(mut frame: Bytes) -> Result<Message, WireError> {
    if frame.is_empty() {
        return Err(WireError::EmptyFrame);
    }
    let byte = frame.get_u8();
    let kind = MessageType::from_byte(byte).ok_or(WireError::UnknownMessageType(byte))?;
    let body = frame;
    let message = match kind {
        MessageType::Handshake => Message::Handshake(parse_handshake(decode_proto(kind, body)?)?),
        MessageType::Bitfield => {
            Message::Bitfield(decode_proto::<proto::Bitfield>(kind, body)?.bits.into())
        }
        MessageType::Have => Message::Have(decode_proto::<proto::Have>(kind, body)?.index),
        MessageType::Request => Message::Request(parse_range(kind, body)?),
        MessageType::Cancel => Message::Cancel(parse_range(kind, body)?),
        MessageType::Reject => Message::Reject(parse_range(kind, body)?),
        MessageType::Piece => parse_piece(body)?,
        MessageType::Interested
        | MessageType::NotInterested
        | MessageType::Choke
        | MessageType::Unchoke
        | MessageType::Complete => {
            if !body.is_empty() {
                return Err(malformed(kind, "unexpected body", None));
            }
            match kind {
                MessageType::Interested => Message::Interested,
                MessageType::NotInterested => Message::NotInterested,
                MessageType::Choke => Message::Choke,
                MessageType::Unchoke => Message::Unchoke,
                _ => Message::Complete,
            }
        }
    };
    Ok(message)
}

fn malformed(
    kind: MessageType,
    reason: &'static str,
    source: Option<prost::DecodeError>,
) -> WireError {
    WireError::Malformed {
        message: kind.name(),
        reason,
        source,
    }
}

fn decode_proto<M: prost::Message + Default>(
    kind: MessageType,
    body: Bytes,
) -> Result<M, WireError> {
    M::decode(body).map_err(|e| malformed(kind, "invalid protobuf", Some(e)))
}

fn parse_handshake(hs: proto::Handshake) -> Result<Handshake, WireError> {
    // The version first: a peer of another version may lay out the rest
    // differently, and "wrong version" is the useful diagnosis.
    if hs.version != PROTOCOL_VERSION {
        return Err(WireError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: hs.version,
        });
    }
    Ok(Handshake {
        version: hs.version,
        digest: hs
            .blob_digest
            .parse::<Digest>()
            .map_err(WireError::InvalidDigest)?,
        peer_id: PeerId::from_slice(&hs.peer_id).map_err(WireError::InvalidPeerId)?,
    })
}

fn parse_range(kind: MessageType, body: Bytes) -> Result<BlockRange, WireError> {
    let r: proto::BlockRange = decode_proto(kind, body)?;
    Ok(BlockRange {
        index: r.index,
        begin: r.begin,
        length: r.length,
    })
}

fn parse_piece(mut body: Bytes) -> Result<Message, WireError> {
    let kind = MessageType::Piece;
    if body.len() < PIECE_HEADER_LEN_LEN {
        return Err(malformed(kind, "missing header length", None));
    }
    let header_len = usize::from(body.get_u16());
    if header_len > body.len() {
        return Err(malformed(kind, "header runs past the frame", None));
    }
    let data = body.split_off(header_len);
    let header: proto::PieceHeader = decode_proto(kind, body)?;
    Ok(Message::Piece {
        index: header.index,
        begin: header.begin,
        data,
    })
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use prost::Message as _;

    use super::*;
    use crate::wire::encode;

    fn frame(kind: u8, body: &[u8]) -> Bytes {
        let mut f = vec![kind];
        f.extend_from_slice(body);
        Bytes::from(f)
    }

    #[test]
    fn check_separates_incomplete_from_invalid() {
        assert!(matches!(check(&[0, 0, 0], 10), Ok(None)));
        assert!(matches!(check(&[0, 0, 0, 2, 3], 10), Ok(None)));
        assert!(matches!(check(&[0, 0, 0, 2, 3, 4, 9], 10), Ok(Some(6))));
        assert!(matches!(
            check(&[0, 0, 0, 0], 10),
            Err(WireError::EmptyFrame)
        ));
        // Refused from the prefix alone, before any body byte arrives.
        assert!(matches!(
            check(&[0, 0, 0, 11], 10),
            Err(WireError::FrameTooLarge { len: 11, max: 10 })
        ));
    }

    #[test]
    fn unknown_type_is_refused() {
        assert!(matches!(
            parse(frame(12, &[])),
            Err(WireError::UnknownMessageType(12))
        ));
        assert!(matches!(
            parse(frame(255, &[1])),
            Err(WireError::UnknownMessageType(255))
        ));
        assert!(matches!(parse(Bytes::new()), Err(WireError::EmptyFrame)));
    }

    #[test]
    fn bad_bodies_are_malformed() {
        let cases: [(u8, &[u8]); 5] = [
            (MessageType::Choke as u8, &[0]),
            (MessageType::Have as u8, &[0x08]),
            (MessageType::Piece as u8, &[0]),
            (MessageType::Piece as u8, &[0, 5, 1]),
            (MessageType::Piece as u8, &[0, 1, 0xff, 1, 2]),
        ];
        for (kind, body) in cases {
            let err = parse(frame(kind, body));
            assert!(
                matches!(err, Err(WireError::Malformed { .. })),
                "{kind} {body:?}: {err:?}"
            );
        }
    }

    fn handshake_frame(version: u32, digest: &str, peer_id: &[u8]) -> Bytes {
        let hs = proto::Handshake {
            version,
            blob_digest: digest.into(),
            peer_id: peer_id.to_vec(),
        };
        frame(MessageType::Handshake as u8, &hs.encode_to_vec())
    }

    #[test]
    fn handshake_fields_are_validated() {
        let digest = Digest::of(b"blob").to_string();
        let id = [7u8; PeerId::LEN];
        assert!(matches!(
            parse(handshake_frame(PROTOCOL_VERSION, &digest, &id)),
            Ok(Message::Handshake(_))
        ));
        assert!(matches!(
            parse(handshake_frame(PROTOCOL_VERSION + 1, &digest, &id)),
            Err(WireError::VersionMismatch { theirs, .. }) if theirs == PROTOCOL_VERSION + 1
        ));
        assert!(matches!(
            parse(handshake_frame(PROTOCOL_VERSION, "sha512:00", &id)),
            Err(WireError::InvalidDigest(_))
        ));
        assert!(matches!(
            parse(handshake_frame(PROTOCOL_VERSION, &digest, &id[1..])),
            Err(WireError::InvalidPeerId(_))
        ));
    }

    #[test]
    fn piece_payload_is_a_view_of_the_frame() {
        let mut buf = BytesMut::new();
        let data = Bytes::from(vec![9u8; 1000]);
        encode(
            &Message::Piece {
                index: 3,
                begin: 16,
                data: data.clone(),
            },
            &mut buf,
        )
        .expect("encodes");
        buf.advance(LENGTH_PREFIX_LEN);
        let frame = buf.freeze();
        let start = frame.as_ptr() as usize;
        let Ok(Message::Piece {
            index: 3,
            begin: 16,
            data: got,
        }) = parse(frame.clone())
        else {
            panic!("not the piece we sent");
        };
        assert_eq!(got, data);
        let offset = got.as_ptr() as usize - start;
        assert_eq!(
            offset,
            frame.len() - data.len(),
            "payload must alias the frame"
        );
    }
}
