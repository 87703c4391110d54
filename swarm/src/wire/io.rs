//! Async framing over any byte stream: [`MessageReader`] pulls frames
//! through a [`Decoder`], [`MessageWriter`] queues small frames so that they
//! leave in few syscalls and writes piece payloads without copying them.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::decoder::Decoder;
use super::encoder::{encode, encode_piece_header};
use super::error::WireError;
use super::frame;
use super::message::Message;

/// Smallest read: enough for a burst of control frames in one syscall.
const READ_CHUNK: usize = 8 * 1024;

/// Queued control frames are written out once they reach this size, so a
/// caller that never flushes still cannot grow the queue without bound.
const MAX_QUEUED: usize = 64 * 1024;

/// Reads [`Message`]s from one peer connection.
#[derive(Debug)]
pub struct MessageReader<R> {
    reader: R,
    buf: BytesMut,
    decoder: Decoder,
    bytes_read: u64,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// A reader for a fresh connection, expecting the handshake first.
    pub fn new(reader: R) -> Self {
        Self::with_decoder(reader, Decoder::new())
    }

    /// A reader with a configured decoder (frame limit, geometry known in
    /// advance).
    pub fn with_decoder(reader: R, decoder: Decoder) -> Self {
        MessageReader {
            reader,
            buf: BytesMut::with_capacity(READ_CHUNK),
            decoder,
            bytes_read: 0,
        }
    }

    /// The decoder, to [`set_geometry`](Decoder::set_geometry) once the
    /// handshake has named the blob.
    pub fn decoder_mut(&mut self) -> &mut Decoder {
        &mut self.decoder
    }

    /// Bytes taken off the stream so far, framing included, some possibly
    /// still buffered. Monotonic: a download rate limiter charges the
    /// difference between two calls.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next message; `Ok(None)` when the peer closed the stream cleanly
    /// between frames. Cancel-safe: if the future is dropped, bytes already
    /// read stay buffered for the next call, so it can sit in a `select!`.
    pub async fn read_message(&mut self) -> Result<Option<Message>, WireError> {
        loop {
            if let Some(message) = self.decoder.decode(&mut self.buf)? {
                return Ok(Some(message));
            }
            // decode() has vetted the announced length against the frame
            // limit, so reserving the whole frame is safe, and makes a large
            // piece one allocation instead of a series of doublings.
            let frame_end = frame::announced_len(&self.buf)
                .map_or(0, |len| frame::LENGTH_PREFIX_LEN + len as usize);
            let missing = frame_end.saturating_sub(self.buf.len()).max(READ_CHUNK);
            self.buf.reserve(missing);
            let n = self.reader.read_buf(&mut self.buf).await?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(WireError::Truncated)
                };
            }
            self.bytes_read += n as u64;
        }
    }
}

/// Writes [`Message`]s to one peer connection.
///
/// Control frames are queued and go out on [`flush`](Self::flush), with the
/// next piece, or when the queue reaches 64 KiB. A piece goes out at once,
/// queued frames first, its payload written from the caller's `Bytes`.
/// Neither method is cancel-safe: after a dropped future the stream may hold
/// half a frame, so drop the connection too.
#[derive(Debug)]
pub struct MessageWriter<W> {
    writer: W,
    queue: BytesMut,
    bytes_written: u64,
}

impl<W: AsyncWrite + Unpin> MessageWriter<W> {
    /// A writer with an empty queue.
    pub fn new(writer: W) -> Self {
        MessageWriter {
            writer,
            queue: BytesMut::new(),
            bytes_written: 0,
        }
    }

    /// Frame bytes accepted so far, queued or written. Monotonic: an upload
    /// rate limiter charges the difference between two calls.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Queues `message`, or for a piece writes it out with everything queued
    /// before it.
    pub async fn write_message(&mut self, message: &Message) -> Result<(), WireError> {
        let before = self.queue.len();
        match message {
            Message::Piece { index, begin, data } => {
                encode_piece_header(*index, *begin, data.len(), &mut self.queue)?;
                self.bytes_written += (self.queue.len() - before + data.len()) as u64;
                let mut payload = data.clone();
                let mut frames = (&mut self.queue).chain(&mut payload);
                self.writer.write_all_buf(&mut frames).await?;
            }
            _ => {
                encode(message, &mut self.queue)?;
                self.bytes_written += (self.queue.len() - before) as u64;
                if self.queue.len() >= MAX_QUEUED {
                    self.writer.write_all_buf(&mut self.queue).await?;
                }
            }
        }
        Ok(())
    }

    /// Writes out queued frames and flushes the stream: call after a batch
    /// of messages, and before waiting for the peer.
    pub async fn flush(&mut self) -> Result<(), WireError> {
        self.writer.write_all_buf(&mut self.queue).await?;
        self.writer.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::io::duplex;

    use super::*;
    use crate::wire::test_support::{TestBlob, encode_all, handshake};
    use crate::wire::{DEFAULT_MAX_FRAME_LEN, MAX_BLOCK_LENGTH};

    fn blob() -> TestBlob {
        TestBlob::new(2, 4 << 20, 100)
    }

    #[tokio::test]
    async fn messages_cross_a_stream_intact() {
        let (client, server) = duplex(64 << 10);
        let big = Bytes::from((0..MAX_BLOCK_LENGTH).map(|i| i as u8).collect::<Vec<u8>>());
        let sent = vec![
            handshake(3),
            Message::Interested,
            Message::Have(1),
            Message::Piece {
                index: 0,
                begin: 1 << 20,
                data: big.clone(),
            },
            Message::Choke,
            Message::Piece {
                index: 1,
                begin: 0,
                data: Bytes::from_static(b"tail"),
            },
            Message::Complete,
        ];
        let expected_len = encode_all(&sent).len() as u64;
        let to_send = sent.clone();
        let writer = tokio::spawn(async move {
            let mut writer = MessageWriter::new(client);
            for message in &to_send {
                writer.write_message(message).await?;
            }
            writer.flush().await?;
            Ok::<_, WireError>(writer.bytes_written())
        });

        let mut reader = MessageReader::new(server);
        let mut got = Vec::new();
        while let Some(message) = reader.read_message().await.expect("valid stream") {
            if got.is_empty() {
                reader.decoder_mut().set_geometry(blob().geometry);
            }
            got.push(message);
        }
        assert_eq!(got, sent);
        assert_eq!(reader.bytes_read(), expected_len);
        assert_eq!(
            writer.await.expect("writer task").expect("writes"),
            expected_len
        );
    }

    #[tokio::test]
    async fn clean_eof_between_frames_is_none() {
        let (mut client, server) = duplex(1024);
        client
            .write_all(&encode_all(&[handshake(1)]))
            .await
            .expect("write");
        drop(client);
        let mut reader = MessageReader::new(server);
        assert!(matches!(
            reader.read_message().await,
            Ok(Some(Message::Handshake(_)))
        ));
        assert!(matches!(reader.read_message().await, Ok(None)));
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_truncated() {
        let frame = encode_all(&[handshake(1)]);
        for cut in [1, 4, frame.len() - 1] {
            let (mut client, server) = duplex(1024);
            client.write_all(&frame[..cut]).await.expect("write");
            drop(client);
            let mut reader = MessageReader::new(server);
            assert!(
                matches!(reader.read_message().await, Err(WireError::Truncated)),
                "cut {cut}"
            );
        }
    }

    #[tokio::test]
    async fn control_frames_wait_for_flush() {
        let (client, mut server) = duplex(1024);
        let mut writer = MessageWriter::new(client);
        writer
            .write_message(&Message::Interested)
            .await
            .expect("queue");
        writer
            .write_message(&Message::Unchoke)
            .await
            .expect("queue");
        let mut probe = [0u8; 16];
        // A zero timeout polls the read once: it must find nothing yet.
        let early = tokio::time::timeout(Duration::ZERO, server.read(&mut probe)).await;
        assert!(early.is_err(), "nothing may leave before flush");
        writer.flush().await.expect("flush");
        let n = server.read(&mut probe).await.expect("read");
        assert_eq!(
            &probe[..n],
            &encode_all(&[Message::Interested, Message::Unchoke])[..]
        );
    }

    #[tokio::test]
    async fn oversized_frame_is_refused_before_its_body_arrives() {
        let (mut client, server) = duplex(1024);
        let mut reader = MessageReader::new(server);
        client
            .write_all(&encode_all(&[handshake(1)]))
            .await
            .expect("write");
        client
            .write_all(&(DEFAULT_MAX_FRAME_LEN + 1).to_be_bytes())
            .await
            .expect("write");
        assert!(matches!(reader.read_message().await, Ok(Some(_))));
        reader.decoder_mut().set_geometry(blob().geometry);
        // The client never sends the body: the error must not wait for it.
        assert!(matches!(
            reader.read_message().await,
            Err(WireError::FrameTooLarge { .. })
        ));
    }
}
