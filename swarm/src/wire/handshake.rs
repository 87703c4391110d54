//! Opening a connection: both sides send a handshake first, then each checks
//! the other's before anything else happens.

use tokio::io::{AsyncRead, AsyncWrite};

use super::error::WireError;
use super::frame::MessageType;
use super::io::{MessageReader, MessageWriter};
use super::message::{Handshake, Message, PROTOCOL_VERSION};
use crate::digest::Digest;
use crate::peer_id::PeerId;

/// Sends our handshake for `digest` and flushes it, so that the peer can
/// answer before we send anything else.
pub async fn send_handshake<W: AsyncWrite + Unpin>(
    writer: &mut MessageWriter<W>,
    digest: Digest,
    our_id: PeerId,
) -> Result<(), WireError> {
    let handshake = Handshake {
        version: PROTOCOL_VERSION,
        digest,
        peer_id: our_id,
    };
    writer.write_message(&Message::Handshake(handshake)).await?;
    writer.flush().await
}

/// Reads the peer's handshake, the first message on the connection. The
/// decoder has already refused other versions and malformed fields; the
/// caller still owes it [`check_handshake`].
pub async fn receive_handshake<R: AsyncRead + Unpin>(
    reader: &mut MessageReader<R>,
) -> Result<Handshake, WireError> {
    match reader.read_message().await? {
        Some(Message::Handshake(handshake)) => Ok(handshake),
        // Only reachable if the reader already consumed a handshake.
        Some(other) => Err(WireError::MessageBeforeHandshake(
            MessageType::of(&other).name(),
        )),
        None => Err(WireError::ClosedBeforeHandshake),
    }
}

/// Decides whether to keep a connection after the peer's handshake.
/// `expected_digest` is the blob we dialled for; `None` on an accepted
/// connection, where the handshake is how we learn which blob is wanted.
pub fn check_handshake(
    theirs: &Handshake,
    expected_digest: Option<&Digest>,
    our_id: &PeerId,
) -> Result<(), WireError> {
    if theirs.version != PROTOCOL_VERSION {
        return Err(WireError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: theirs.version,
        });
    }
    if let Some(expected) = expected_digest
        && *expected != theirs.digest
    {
        return Err(WireError::WrongBlob {
            expected: *expected,
            theirs: theirs.digest,
        });
    }
    if theirs.peer_id == *our_id {
        return Err(WireError::SelfConnection);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::duplex;

    use super::*;

    fn theirs(digest: Digest, id: u8) -> Handshake {
        Handshake {
            version: PROTOCOL_VERSION,
            digest,
            peer_id: PeerId::from_array([id; PeerId::LEN]),
        }
    }

    #[test]
    fn check_refuses_wrong_blob_self_and_other_versions() {
        let blob = Digest::of(b"blob");
        let us = PeerId::from_array([1; PeerId::LEN]);
        assert!(check_handshake(&theirs(blob, 2), Some(&blob), &us).is_ok());
        assert!(check_handshake(&theirs(Digest::of(b"other"), 2), None, &us).is_ok());
        assert!(matches!(
            check_handshake(&theirs(Digest::of(b"other"), 2), Some(&blob), &us),
            Err(WireError::WrongBlob { .. })
        ));
        assert!(matches!(
            check_handshake(&theirs(blob, 1), Some(&blob), &us),
            Err(WireError::SelfConnection)
        ));
        let old = Handshake {
            version: 0,
            ..theirs(blob, 2)
        };
        assert!(matches!(
            check_handshake(&old, Some(&blob), &us),
            Err(WireError::VersionMismatch { theirs: 0, .. })
        ));
    }

    #[tokio::test]
    async fn handshakes_cross_and_a_silent_peer_is_reported() {
        let (a, b) = duplex(1024);
        let blob = Digest::of(b"blob");
        let id = PeerId::from_array([4; PeerId::LEN]);
        let mut writer = MessageWriter::new(a);
        send_handshake(&mut writer, blob, id).await.expect("send");
        drop(writer);
        let mut reader = MessageReader::new(b);
        let got = receive_handshake(&mut reader).await.expect("receive");
        assert_eq!(got, theirs(blob, 4));

        let (a, b) = duplex(1024);
        drop(a);
        let mut reader = MessageReader::new(b);
        assert!(matches!(
            receive_handshake(&mut reader).await,
            Err(WireError::ClosedBeforeHandshake)
        ));
    }
}
