//! Peer protocol: messages, framing codec, handshake.
//!
//! - [`message`]: the [`Message`] enum the engine works with.
//! - `frame`: the byte layout and its pure parser.
//! - `encoder`: the way back, [`encode`] and [`encode_piece_header`].
//! - `decoder`: the [`Decoder`], which also enforces message order and the
//!   blob's [`Geometry`] (`geometry`).
//! - `io`: [`MessageReader`] / [`MessageWriter`] over tokio streams.
//! - `handshake`: opening a connection.
//! - `error`: [`WireError`].
//!
//! # Frame layout
//!
//! ```text
//! +-----------------+---------+---------------------+
//! | length: u32 BE  | type: u8| body                |
//! +-----------------+---------+---------------------+
//!                   \_______ length bytes _________/
//! ```
//!
//! `length` counts the type byte and the body, so it is at least 1; a zero
//! length is an error (there are no keep-alives). Frames longer than the
//! decoder's limit are refused as soon as the prefix arrives: 1 KiB before
//! the handshake, afterwards [`DEFAULT_MAX_FRAME_LEN`] (configurable, never
//! less than the blob's bitfield frame).
//!
//! | type | message        | body                                         |
//! |-----:|----------------|----------------------------------------------|
//! | 0    | handshake      | protobuf `shoal.peer.v1.Handshake`           |
//! | 1    | bitfield       | protobuf `Bitfield`                          |
//! | 2    | have           | protobuf `Have`                              |
//! | 3    | interested     | empty                                        |
//! | 4    | not-interested | empty                                        |
//! | 5    | choke          | empty                                        |
//! | 6    | unchoke        | empty                                        |
//! | 7    | request        | protobuf `BlockRange`                        |
//! | 8    | cancel         | protobuf `BlockRange`                        |
//! | 9    | reject         | protobuf `BlockRange`                        |
//! | 10   | piece          | `u16 BE` header length, protobuf `PieceHeader`, raw payload |
//! | 11   | complete       | empty                                        |
//!
//! A piece's payload runs to the end of the frame: its length is
//! `length - 1 - 2 - header length`. It is never inside a protobuf, so
//! neither side copies it: the writer sends it from the caller's buffer and
//! the reader hands out a slice of its read buffer.
//!
//! # Order
//!
//! Each side sends a handshake first, then optionally a bitfield (only
//! there), then anything but a handshake. Requested blocks are 1 to
//! [`MAX_BLOCK_LENGTH`] bytes inside one piece.

mod decoder;
mod encoder;
mod error;
mod frame;
mod geometry;
mod handshake;
mod io;
pub mod message;

#[cfg(test)]
mod test_support;

pub use decoder::Decoder;
pub use encoder::{encode, encode_piece_header};
pub use error::WireError;
pub use frame::{DEFAULT_MAX_FRAME_LEN, MAX_BLOCK_LENGTH};
pub use geometry::Geometry;
pub use handshake::{check_handshake, receive_handshake, send_handshake};
pub use io::{MessageReader, MessageWriter};
pub use message::{BlockRange, Handshake, Message, PROTOCOL_VERSION};
