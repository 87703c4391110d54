//! A hostile peer against a real session over loopback: each protocol abuse
//! from the bad-input list ends the connection (or bans the peer),
//! never panics, and leaves the session serving honest peers.

// Helpers here serve only tests: a panic in them is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::{RngCore, SeedableRng};
use shoal_swarm::session::{PeerAddr, Session, SessionConfig};
use shoal_swarm::store::Store;
use shoal_swarm::wire::{
    BlockRange, Handshake, Message, MessageReader, PROTOCOL_VERSION, encode, receive_handshake,
};
use shoal_swarm::{Digest, Metainfo, PeerId};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

const MIB: usize = 1 << 20;
const BLOB_LEN: usize = 3 * MIB;

struct Node {
    session: Session,
    _dir: TempDir,
}

fn blob() -> Vec<u8> {
    let mut data = vec![0u8; BLOB_LEN];
    rand::rngs::SmallRng::seed_from_u64(3).fill_bytes(&mut data);
    data
}

async fn seeder(data: &[u8]) -> (Node, Arc<Metainfo>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 0).await.unwrap();
    let mut writer = store
        .ingest(Digest::of(data), data.len() as u64)
        .await
        .unwrap();
    writer.write(data).await.unwrap();
    let (metainfo, _) = writer.finish().await.unwrap();
    let session = Session::start(SessionConfig::default(), store)
        .await
        .unwrap();
    session.seed(metainfo.digest()).await.unwrap();
    (Node { session, _dir: dir }, metainfo)
}

async fn empty_node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 0).await.unwrap();
    let session = Session::start(SessionConfig::default(), store)
        .await
        .unwrap();
    Node { session, _dir: dir }
}

type Evil = (MessageReader<OwnedReadHalf>, OwnedWriteHalf);

fn framed(stream: TcpStream) -> Evil {
    let (r, w) = stream.into_split();
    (MessageReader::new(r), w)
}

/// Writes messages straight to the socket; the evil peer mixes them with raw
/// bytes, so it keeps no buffer of its own.
async fn send(writer: &mut OwnedWriteHalf, messages: &[Message]) -> std::io::Result<()> {
    let mut buf = bytes::BytesMut::new();
    for message in messages {
        encode(message, &mut buf).map_err(std::io::Error::other)?;
    }
    writer.write_all(&buf).await
}

fn handshake(digest: Digest, peer_id: PeerId) -> Message {
    Message::Handshake(Handshake {
        version: PROTOCOL_VERSION,
        digest,
        peer_id,
    })
}

const NOTHING: Message = Message::Bitfield(Bytes::from_static(&[0]));

/// Connects to `node` and completes a handshake for `metainfo`'s blob.
async fn connect(node: &Node, metainfo: &Arc<Metainfo>, id: PeerId) -> Evil {
    let stream = TcpStream::connect(node.session.local_addr()).await.unwrap();
    let (mut reader, mut writer) = framed(stream);
    send(&mut writer, &[handshake(*metainfo.digest(), id)])
        .await
        .unwrap();
    receive_handshake(&mut reader).await.unwrap();
    reader.decoder_mut().set_geometry(Arc::clone(metainfo));
    (reader, writer)
}

/// True once the session closed the connection (EOF or reset) within 10 s;
/// messages it sends before that are skipped.
async fn closed_by_session(reader: &mut MessageReader<OwnedReadHalf>) -> bool {
    let wait = async {
        loop {
            match reader.read_message().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .is_ok()
}

/// Reads until the session unchokes us.
async fn await_unchoke(reader: &mut MessageReader<OwnedReadHalf>) {
    let wait = async {
        while let Some(message) = reader.read_message().await.unwrap() {
            if message == Message::Unchoke {
                return;
            }
        }
        panic!("closed before unchoking us");
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap();
}

/// An honest leecher can still download the whole blob from `node`.
async fn honest_download_works(node: &Node, metainfo: &Arc<Metainfo>, data: &[u8]) {
    let leecher = empty_node().await;
    let handle = leecher
        .session
        .download(Arc::clone(metainfo))
        .await
        .unwrap();
    handle.add_peers([PeerAddr::from(node.session.local_addr())]);
    let reader = tokio::time::timeout(Duration::from_secs(30), handle.wait_complete())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        reader.read_at(0, data.len()).await.unwrap(),
        Bytes::copy_from_slice(data)
    );
}

#[tokio::test]
async fn oversized_frame_disconnects() {
    let data = blob();
    let (node, metainfo) = seeder(&data).await;
    let (mut reader, mut writer) = connect(&node, &metainfo, PeerId::random()).await;
    writer
        .write_all(&[0xff, 0xff, 0xff, 0xff, 7])
        .await
        .unwrap();
    assert!(closed_by_session(&mut reader).await);
    honest_download_works(&node, &metainfo, &data).await;
}

#[tokio::test]
async fn message_before_handshake_disconnects() {
    let data = blob();
    let (node, _) = seeder(&data).await;
    let mut stream = TcpStream::connect(node.session.local_addr()).await.unwrap();
    // A well-formed "interested" frame, but as the very first message.
    stream.write_all(&[0, 0, 0, 1, 3]).await.unwrap();
    let (mut reader, _writer) = framed(stream);
    assert!(closed_by_session(&mut reader).await);
}

#[tokio::test]
async fn handshake_for_another_blob_is_refused() {
    let data = blob();
    let (node, _) = seeder(&data).await;
    let stream = TcpStream::connect(node.session.local_addr()).await.unwrap();
    let (mut reader, mut writer) = framed(stream);
    send(
        &mut writer,
        &[handshake(Digest::of(b"other blob"), PeerId::random())],
    )
    .await
    .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), reader.read_message())
        .await
        .unwrap();
    assert!(matches!(answer, Ok(None) | Err(_)), "got {answer:?}");
}

#[tokio::test]
async fn request_beyond_piece_end_disconnects() {
    let data = blob();
    let (node, metainfo) = seeder(&data).await;
    let (mut reader, mut writer) = connect(&node, &metainfo, PeerId::random()).await;
    send(&mut writer, &[NOTHING, Message::Interested])
        .await
        .unwrap();
    await_unchoke(&mut reader).await;
    // Encoded by hand: our own encoder would refuse to write it.
    let block = BlockRange {
        index: 2,
        begin: (MIB - 10) as u32,
        length: 256 << 10,
    };
    let body = prost::Message::encode_to_vec(&shoal_proto::peer::BlockRange {
        index: block.index,
        begin: block.begin,
        length: block.length,
    });
    let mut frame = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    frame.push(7);
    frame.extend_from_slice(&body);
    writer.write_all(&frame).await.unwrap();
    assert!(closed_by_session(&mut reader).await);
    honest_download_works(&node, &metainfo, &data).await;
}

#[tokio::test]
async fn request_flood_disconnects() {
    let data = blob();
    let (node, metainfo) = seeder(&data).await;
    let (mut reader, mut writer) = connect(&node, &metainfo, PeerId::random()).await;
    send(&mut writer, &[NOTHING, Message::Interested])
        .await
        .unwrap();
    await_unchoke(&mut reader).await;
    // Far past the pipeline limit, without reading a single piece back.
    let block = BlockRange {
        index: 0,
        begin: 0,
        length: 16 << 10,
    };
    let flood = vec![Message::Request(block); 1000];
    let _ = send(&mut writer, &flood).await;
    assert!(closed_by_session(&mut reader).await);
    honest_download_works(&node, &metainfo, &data).await;
}

#[tokio::test]
async fn request_for_piece_not_held_disconnects() {
    let data = blob();
    let (_, metainfo) = seeder(&data).await;
    // A leecher that holds nothing yet (no peers to download from).
    let leecher = empty_node().await;
    let _handle = leecher
        .session
        .download(Arc::clone(&metainfo))
        .await
        .unwrap();
    let (mut reader, mut writer) = connect(&leecher, &metainfo, PeerId::random()).await;
    send(&mut writer, &[NOTHING, Message::Interested])
        .await
        .unwrap();
    await_unchoke(&mut reader).await;
    let block = BlockRange {
        index: 0,
        begin: 0,
        length: 16 << 10,
    };
    send(&mut writer, &[Message::Request(block)]).await.unwrap();
    assert!(closed_by_session(&mut reader).await);
}

#[tokio::test]
async fn peer_sending_a_corrupt_piece_is_banned() {
    let data = blob();
    let digest = Digest::of(&data);
    let metainfo = Arc::new(
        Metainfo::compute(digest, data.len() as u64, &data[..])
            .await
            .unwrap(),
    );
    let leecher = empty_node().await;
    let handle = leecher
        .session
        .download(Arc::clone(&metainfo))
        .await
        .unwrap();

    // The evil peer listens; the leecher dials it like any tracker peer.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_id = PeerId::random();
    let evil = PeerAddr {
        addr: listener.local_addr().unwrap(),
        id: Some(evil_id),
    };
    handle.add_peers([evil]);
    let (stream, _) = listener.accept().await.unwrap();
    let (mut reader, mut writer) = framed(stream);
    receive_handshake(&mut reader).await.unwrap();
    reader.decoder_mut().set_geometry(Arc::clone(&metainfo));
    let all = Message::Bitfield(Bytes::from_static(&[0b1110_0000]));
    send(
        &mut writer,
        &[handshake(digest, evil_id), all, Message::Unchoke],
    )
    .await
    .unwrap();

    // Serve flipped bytes for whatever it asks until it hangs up on us.
    let serve = async {
        loop {
            match reader.read_message().await {
                Ok(Some(Message::Request(block))) => {
                    let start = block.index as usize * MIB + block.begin as usize;
                    let mut bytes = data[start..start + block.length as usize].to_vec();
                    bytes[0] ^= 0xff;
                    let piece = Message::Piece {
                        index: block.index,
                        begin: block.begin,
                        data: bytes.into(),
                    };
                    if send(&mut writer, &[piece]).await.is_err() {
                        return;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), serve)
        .await
        .expect("corrupt peer was never dropped");
    assert_eq!(handle.progress().pieces, 0, "a corrupt piece was accepted");
    // The bad piece's bytes are reported as wasted, as agents' stats show.
    let mut progress = handle.subscribe();
    let counted = tokio::time::timeout(Duration::from_secs(5), async {
        // Keep no borrow of the channel: the driver cannot publish past it.
        progress.wait_for(|p| p.wasted >= MIB as u64).await.is_ok()
    })
    .await;
    assert_eq!(
        counted,
        Ok(true),
        "the failed piece was not counted as wasted"
    );

    // Banned: dialing back in with the same id is refused.
    let (mut reader, mut writer) = framed(
        TcpStream::connect(leecher.session.local_addr())
            .await
            .unwrap(),
    );
    send(&mut writer, &[handshake(digest, evil_id)])
        .await
        .unwrap();
    receive_handshake(&mut reader).await.unwrap();
    reader.decoder_mut().set_geometry(Arc::clone(&metainfo));
    assert!(
        closed_by_session(&mut reader).await,
        "banned peer was let back in"
    );

    // The tracker hands it out again on every announce, with its id or,
    // from an older tracker, by address alone: neither is dialed while the
    // ban lasts (30 s by default).
    for (how, again) in [("by id", evil), ("by address", PeerAddr::from(evil.addr))] {
        handle.add_peers([again]);
        let redial = tokio::time::timeout(Duration::from_secs(1), listener.accept()).await;
        assert!(redial.is_err(), "the banned peer was dialed again ({how})");
    }
}
