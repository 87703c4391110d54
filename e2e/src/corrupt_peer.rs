//! A misbehaving peer for fault tests: it speaks the real peer protocol
//! through `shoal_swarm::wire`, announces itself to the tracker as a
//! complete seeder of one blob, and serves every requested block either
//! with one byte flipped ([`Behaviour::Corrupt`]) or correct but throttled
//! ([`Behaviour::Slow`]). What it did is counted, so a test can check that
//! agents asked it for pieces (the test means something) and what they did
//! next.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use shoal_proto::tracker::announce_request::Pieces;
use shoal_proto::tracker::tracker_client::TrackerClient;
use shoal_proto::tracker::{AnnounceRequest, PeerInfo};
use shoal_swarm::metainfo::MetainfoHasher;
use shoal_swarm::wire::{
    Message, MessageReader, MessageWriter, check_handshake, receive_handshake, send_handshake,
};
use shoal_swarm::{Bitfield, Digest, Metainfo, PeerId};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How the peer serves blocks.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// One byte of every block flipped.
    Corrupt,
    /// Correct bytes, at most this many per second over all connections.
    Slow {
        /// The upload rate.
        bytes_per_second: u64,
    },
}

/// What the peer served, per downloader (by the peer id in its handshake).
#[derive(Debug, Default, Clone)]
pub struct Served {
    /// Block requests received.
    pub requests: u64,
    /// Blocks sent.
    pub blocks: u64,
    /// Pieces of which every block was sent.
    pub whole_pieces: u64,
    /// Connections the downloader opened.
    pub connections: u64,
    /// Of those, connections on which it requested anything.
    pub connections_with_requests: u64,
}

/// A running corrupt peer; its tasks stop when it is dropped.
pub struct CorruptPeer {
    /// Its identity (the tracker and the agents' logs show the first 6 bytes
    /// in hex: [`CorruptPeer::short_id`]).
    pub id: PeerId,
    /// Where it accepts connections.
    pub addr: SocketAddr,
    served: Arc<Mutex<HashMap<PeerId, Served>>>,
    _tasks: JoinSet<()>,
}

impl CorruptPeer {
    /// Computes the metainfo of `blob` (whose digest is `digest`), announces
    /// once to the tracker at `tracker` (then every second), and serves.
    pub async fn start(blob: Bytes, digest: Digest, tracker: SocketAddr) -> anyhow::Result<Self> {
        Self::start_with(blob, digest, tracker, Behaviour::Corrupt).await
    }

    /// [`CorruptPeer::start`] with another behaviour.
    pub async fn start_with(
        blob: Bytes,
        digest: Digest,
        tracker: SocketAddr,
        behaviour: Behaviour,
    ) -> anyhow::Result<Self> {
        let pace = Arc::new(tokio::sync::Mutex::new(tokio::time::Instant::now()));
        let mut hasher = MetainfoHasher::new(blob.len() as u64);
        hasher.update(&blob);
        let metainfo = Arc::new(hasher.finish(digest).context("metainfo of the blob")?);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let id = PeerId::random();
        let request = AnnounceRequest {
            digest: digest.to_string(),
            peer: Some(PeerInfo {
                id: id.as_bytes().to_vec(),
                address: "127.0.0.1".into(),
                port: u32::from(addr.port()),
                zone: String::new(),
            }),
            pieces: Some(Pieces::Bitfield(
                Bitfield::full(metainfo.piece_count()).as_bytes().to_vec(),
            )),
            total_pieces: metainfo.piece_count(),
            complete: true,
            uploaded: 0,
            downloaded: 0,
            origin: false,
        };
        let mut client = TrackerClient::connect(format!("http://{tracker}"))
            .await
            .context("connecting to the tracker")?;
        client
            .announce(request.clone())
            .await
            .context("announcing to the tracker")?;

        let served = Arc::new(Mutex::new(HashMap::new()));
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = client.announce(request.clone()).await;
            }
        });
        let accepted = Arc::clone(&served);
        tasks.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (metainfo, blob) = (Arc::clone(&metainfo), blob.clone());
                let served = Arc::clone(&accepted);
                let pace = Arc::clone(&pace);
                tokio::spawn(async move {
                    let _ = serve(stream, metainfo, blob, id, served, behaviour, pace).await;
                });
            }
        });
        Ok(CorruptPeer {
            id,
            addr,
            served,
            _tasks: tasks,
        })
    }

    /// The id as the agents log it.
    pub fn short_id(&self) -> String {
        self.id.to_string()
    }

    /// What it served so far, per downloader.
    pub fn served(&self) -> HashMap<PeerId, Served> {
        self.served.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// One connection: handshake, "I have everything", unchoke, then corrupt
/// blocks for every request until the downloader hangs up.
async fn serve(
    stream: TcpStream,
    metainfo: Arc<Metainfo>,
    blob: Bytes,
    id: PeerId,
    served: Arc<Mutex<HashMap<PeerId, Served>>>,
    behaviour: Behaviour,
    pace: Arc<tokio::sync::Mutex<tokio::time::Instant>>,
) -> anyhow::Result<()> {
    let (read, write) = stream.into_split();
    let mut reader = MessageReader::new(read);
    let mut writer = MessageWriter::new(write);
    let theirs = receive_handshake(&mut reader).await?;
    check_handshake(&theirs, Some(metainfo.digest()), &id)?;
    send_handshake(&mut writer, *metainfo.digest(), id).await?;
    reader.decoder_mut().set_geometry(&*metainfo);
    let them = theirs.peer_id;
    if let Ok(mut served) = served.lock() {
        served.entry(them).or_default().connections += 1;
    }
    let bitfield = Bitfield::full(metainfo.piece_count());
    writer
        .write_message(&Message::Bitfield(Bytes::copy_from_slice(
            bitfield.as_bytes(),
        )))
        .await?;
    writer.write_message(&Message::Unchoke).await?;
    writer.flush().await?;
    let mut blocks_sent: HashMap<u32, HashMap<u32, u32>> = HashMap::new();
    let mut requested = false;
    while let Some(message) = reader.read_message().await? {
        match message {
            Message::Interested => {
                writer.write_message(&Message::Unchoke).await?;
                writer.flush().await?;
            }
            Message::Request(range) => {
                if let Ok(mut served) = served.lock() {
                    served.entry(them).or_default().requests += 1;
                }
                let piece = metainfo
                    .piece_range(range.index)
                    .context("bad piece index")?;
                let start = piece.start + u64::from(range.begin);
                let end = start + u64::from(range.length);
                anyhow::ensure!(end <= piece.end, "request past the piece");
                let mut data = blob[start as usize..end as usize].to_vec();
                match behaviour {
                    Behaviour::Corrupt => {
                        let middle = data.len() / 2;
                        if let Some(byte) = data.get_mut(middle) {
                            *byte ^= 0x5a;
                        }
                    }
                    Behaviour::Slow { bytes_per_second } => {
                        // One shared clock: the next block leaves when the
                        // previous ones have had their time on the uplink.
                        let cost = Duration::from_secs_f64(
                            data.len() as f64 / bytes_per_second.max(1) as f64,
                        );
                        let at = {
                            let mut next = pace.lock().await;
                            let at = (*next).max(tokio::time::Instant::now()) + cost;
                            *next = at;
                            at
                        };
                        tokio::time::sleep_until(at).await;
                    }
                }
                writer
                    .write_message(&Message::Piece {
                        index: range.index,
                        begin: range.begin,
                        data: Bytes::from(data),
                    })
                    .await?;
                writer.flush().await?;
                let sent = blocks_sent.entry(range.index).or_default();
                sent.insert(range.begin, range.length);
                let piece_len = piece.end - piece.start;
                let covered: u64 = sent.values().map(|&l| u64::from(l)).sum();
                let whole = covered >= piece_len;
                if let Ok(mut served) = served.lock() {
                    let entry = served.entry(them).or_default();
                    entry.blocks += 1;
                    if !requested {
                        entry.connections_with_requests += 1;
                    }
                    if whole {
                        entry.whole_pieces += 1;
                        blocks_sent.remove(&range.index);
                    }
                }
                requested = true;
            }
            _ => {}
        }
    }
    Ok(())
}
