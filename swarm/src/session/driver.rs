//! The per-blob driver task: owns one [`Torrent`], feeds it what its
//! connections, timers and the store report, and carries out its actions.
//!
//! Everything that can wait (disk reads, hashing, slow sockets) happens in
//! other tasks, so that one loop iteration is pure bookkeeping and the torrent
//! sees events in the order they happened.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::bitfield::Bitfield;
use crate::metainfo::Metainfo;
use crate::peer_id::PeerId;
use crate::peer_key::PeerKey;
use crate::store::{BlobReader, PartialBlob, StoreError};
use crate::torrent::{Action, Torrent, VerifyResult};

use super::candidates::Candidates;
use super::conn::{self, ConnEvent, ConnId, Established, Outgoing, WriterTask};
use super::handle::{Progress, TorrentHandle, TransferState};
use super::{PeerAddr, Shared};

/// Where served blocks are read from: the partial file while downloading,
/// the complete blob afterwards.
#[derive(Clone)]
pub(crate) enum Source {
    Partial(Arc<PartialBlob>),
    Complete(BlobReader),
}

impl Source {
    pub(crate) async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, StoreError> {
        match self {
            Source::Partial(p) => p.read_at(offset, len).await,
            Source::Complete(r) => r.read_at(offset, len).await,
        }
    }
}

/// Requests from handles, the listener and dial tasks.
pub(crate) enum Command {
    AddPeers(Vec<PeerAddr>),
    Connected(Box<Established>),
    DialFailed(SocketAddr),
    StreamPosition(u32),
    Stop,
}

/// Results of work the driver handed to other tasks.
enum Internal {
    Verified {
        index: u32,
        result: VerifyResult,
        error: Option<String>,
    },
    Finished(Result<BlobReader, StoreError>),
}

/// Messages a connection's writer may have queued before it is considered
/// stuck: the torrent bounds served blocks per peer, so only a peer that
/// stopped reading fills this.
const QUEUE_SLACK: usize = 512;
/// Connection events handled per loop iteration before timers and commands
/// get a turn.
const EVENT_BATCH: usize = 64;

struct Conn {
    key: PeerKey,
    peer: PeerId,
    addr: SocketAddr,
    outbound: bool,
    queue: mpsc::Sender<Outgoing>,
    cancel: CancellationToken,
}

struct Driver {
    shared: Arc<Shared>,
    torrent: Torrent,
    metainfo: Arc<Metainfo>,
    partial: Option<Arc<PartialBlob>>,
    source: watch::Sender<Source>,
    progress: watch::Sender<Progress>,
    state: TransferState,
    commands: mpsc::Receiver<Command>,
    command_tx: mpsc::Sender<Command>,
    events: mpsc::Receiver<ConnEvent>,
    event_tx: mpsc::Sender<ConnEvent>,
    internal: mpsc::Receiver<Internal>,
    internal_tx: mpsc::Sender<Internal>,
    conns: HashMap<ConnId, Conn>,
    by_key: HashMap<PeerKey, ConnId>,
    by_peer: HashMap<PeerId, ConnId>,
    candidates: Candidates,
    next_conn: ConnId,
    cancel: CancellationToken,
}

/// Starts the driver for one blob and returns its handle.
pub(crate) fn spawn(shared: Arc<Shared>, metainfo: Arc<Metainfo>, source: Source) -> TorrentHandle {
    let (have, partial, state) = match &source {
        Source::Partial(p) => (
            p.bitfield(),
            Some(Arc::clone(p)),
            TransferState::Downloading,
        ),
        Source::Complete(_) => (
            Bitfield::full(metainfo.piece_count()),
            None,
            TransferState::Seeding,
        ),
    };
    let seed = rng_seed(&shared.peer_id, &metainfo);
    tracing::debug!(digest = %metainfo.digest(), seed, "starting torrent");
    let now = tokio::time::Instant::now().into_std();
    let torrent = Torrent::new(
        Arc::clone(&metainfo),
        have,
        shared.peer_id,
        shared.config.torrent.clone(),
        now,
        seed,
    );
    let (command_tx, commands) = mpsc::channel(256);
    let (event_tx, events) = mpsc::channel(1024);
    let (internal_tx, internal) = mpsc::channel(256);
    let (progress, progress_rx) = watch::channel(snapshot(&torrent, &state));
    let handle = TorrentHandle::new(
        Arc::clone(&metainfo),
        command_tx.clone(),
        progress_rx,
        partial.clone(),
        shared.store.clone(),
    );
    let driver = Driver {
        cancel: shared.shutdown.child_token(),
        source: watch::channel(source).0,
        shared: Arc::clone(&shared),
        torrent,
        metainfo,
        partial,
        progress,
        state,
        commands,
        command_tx,
        events,
        event_tx,
        internal,
        internal_tx,
        conns: HashMap::new(),
        by_key: HashMap::new(),
        by_peer: HashMap::new(),
        candidates: Candidates::new(shared.peer_id, shared.local_addr),
        next_conn: 0,
    };
    shared.tasks.spawn(driver.run(handle.clone()));
    handle
}

/// Seeds the torrent's RNG from who we are and what we swarm: distinct per
/// process and blob (so peers do not all pick the same random first piece),
/// yet reproducible from a log line.
fn rng_seed(peer_id: &PeerId, metainfo: &Metainfo) -> u64 {
    let mut seed = [0u8; 8];
    for (i, b) in peer_id
        .as_bytes()
        .iter()
        .chain(metainfo.digest().as_bytes())
        .enumerate()
    {
        seed[i % 8] ^= b;
    }
    u64::from_le_bytes(seed)
}

fn snapshot(torrent: &Torrent, state: &TransferState) -> Progress {
    let stats = torrent.stats();
    Progress {
        pieces: torrent.bitfield().count(),
        piece_count: torrent.bitfield().len(),
        downloaded: stats.downloaded,
        uploaded: stats.uploaded,
        wasted: stats.wasted,
        peers: stats.peers,
        state: state.clone(),
    }
}

/// The peers no candidate may be dialed for: those connected already and
/// those the torrent has banned.
fn refuses<'a>(
    torrent: &'a Torrent,
    connected: &'a HashMap<PeerId, ConnId>,
    now: std::time::Instant,
) -> impl Fn(&PeerId) -> bool + 'a {
    move |id| connected.contains_key(id) || torrent.is_banned(now, id)
}

/// One wake-up of the loop.
enum Wake {
    Cancelled,
    Internal(Internal),
    Event(ConnEvent),
    Command(Command),
    Timer,
}

impl Driver {
    async fn run(mut self, handle: TorrentHandle) {
        loop {
            let deadline = self.torrent.poll_timeout();
            let timer = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let wake = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => Wake::Cancelled,
                Some(internal) = self.internal.recv() => Wake::Internal(internal),
                Some(event) = self.events.recv() => Wake::Event(event),
                Some(command) = self.commands.recv() => Wake::Command(command),
                _ = timer => Wake::Timer,
            };
            match wake {
                Wake::Cancelled => break,
                Wake::Internal(internal) => self.on_internal(internal),
                Wake::Event(event) => {
                    self.on_event(event);
                    for _ in 1..EVENT_BATCH {
                        self.drain_actions();
                        match self.events.try_recv() {
                            Ok(event) => self.on_event(event),
                            Err(_) => break,
                        }
                    }
                }
                Wake::Command(Command::Stop) => break,
                Wake::Command(command) => self.on_command(command),
                Wake::Timer => self.torrent.handle_timeout(now()),
            }
            self.drain_actions();
            self.publish();
            if matches!(self.state, TransferState::Failed(_)) {
                break;
            }
        }
        self.close();
        self.shared.remove_torrent(&handle);
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::AddPeers(peers) => {
                {
                    let refused = refuses(&self.torrent, &self.by_peer, now());
                    for peer in peers {
                        self.candidates.add(peer, &refused);
                    }
                }
                self.dial_more();
            }
            Command::Connected(established) => self.on_connected(*established),
            Command::DialFailed(addr) => {
                tracing::debug!(digest = %self.metainfo.digest(), %addr, "dial failed");
                self.candidates.dial_failed(addr);
                self.dial_more();
            }
            Command::StreamPosition(piece) => self.torrent.set_stream_position(piece),
            Command::Stop => {}
        }
    }

    /// Dials queued candidates up to the connection limit, never one that
    /// is connected already or banned (by its id, or by the address a
    /// banned peer was dialed at).
    fn dial_more(&mut self) {
        let limit = self.shared.config.max_peers_per_torrent;
        let refused = refuses(&self.torrent, &self.by_peer, now());
        while let Some(peer) = self.candidates.next_dial(self.conns.len(), limit, &refused) {
            let shared = Arc::clone(&self.shared);
            let commands = self.command_tx.clone();
            let digest = *self.metainfo.digest();
            self.shared.tasks.spawn(async move {
                let command = match conn::dial(shared, peer.addr, digest).await {
                    Ok(established) => Command::Connected(Box::new(established)),
                    Err(e) => {
                        tracing::debug!(addr = %peer.addr, error = %conn::error_chain(&e), "dial failed");
                        Command::DialFailed(peer.addr)
                    }
                };
                let _ = commands.send(command).await;
            });
        }
    }

    fn on_connected(&mut self, mut established: Established) {
        if established.outbound {
            self.candidates.dial_succeeded();
        }
        if let Some(&existing) = self.by_peer.get(&established.remote) {
            if !self.replaces(&established, existing) {
                tracing::debug!(peer = %established.remote, "dropping duplicate connection");
                if established.outbound {
                    self.candidates.forget(established.addr);
                }
                return;
            }
            if let Some(old) = self.conns.get(&existing).map(|c| c.key) {
                self.close_peer(old, "replaced by crossing connection");
            }
        }
        let now = now();
        let Some(key) = self.torrent.handle_peer_connected(now, established.remote) else {
            tracing::debug!(peer = %established.remote, "torrent refused peer (banned, self or duplicate)");
            if established.outbound {
                self.candidates.forget(established.addr);
            }
            return;
        };
        established
            .reader
            .decoder_mut()
            .set_geometry(Arc::clone(&self.metainfo));
        let id = self.next_conn;
        self.next_conn += 1;
        let cancel = self.cancel.child_token();
        let capacity = self.shared.config.torrent.max_inbound_requests + QUEUE_SLACK;
        let (queue, queue_rx) = mpsc::channel(capacity);
        let tasks = &self.shared.tasks;
        tasks.spawn(conn::run_reader(
            established.reader,
            id,
            self.event_tx.clone(),
            Arc::clone(&self.shared.download),
            self.shared.config.torrent.inbound_piece_budget(),
            cancel.clone(),
        ));
        tasks.spawn(
            WriterTask {
                writer: established.writer,
                conn: id,
                queue: queue_rx,
                source: self.source.subscribe(),
                metainfo: Arc::clone(&self.metainfo),
                events: self.event_tx.clone(),
                upload: Arc::clone(&self.shared.upload),
                cancel: cancel.clone(),
            }
            .run(),
        );
        tracing::debug!(digest = %self.metainfo.digest(), peer = %established.remote, addr = %established.addr, outbound = established.outbound, "peer connected");
        self.by_key.insert(key, id);
        self.by_peer.insert(established.remote, id);
        self.conns.insert(
            id,
            Conn {
                key,
                peer: established.remote,
                addr: established.addr,
                outbound: established.outbound,
                queue,
                cancel,
            },
        );
    }

    /// Whether a new connection to an already connected peer should replace
    /// the existing one. Both ends apply the same rule, keeping the connection
    /// dialed by the lower peer id, so crossing dials settle on one socket.
    fn replaces(&self, new: &Established, existing: ConnId) -> bool {
        let Some(old) = self.conns.get(&existing) else {
            return true;
        };
        if old.outbound == new.outbound {
            return false;
        }
        let ours = self.shared.peer_id;
        let new_dialer = if new.outbound { ours } else { new.remote };
        new_dialer == ours.min(new.remote)
    }

    fn on_event(&mut self, event: ConnEvent) {
        match event {
            ConnEvent::Message {
                conn,
                message,
                budget,
            } => {
                if let Some(c) = self.conns.get(&conn) {
                    let key = c.key;
                    self.torrent.handle_message(now(), key, message);
                }
                // The torrent has copied or dropped the payload by now.
                drop(budget);
            }
            ConnEvent::Served { conn, block } => {
                if let Some(c) = self.conns.get(&conn) {
                    let key = c.key;
                    self.shared.counters.uploaded(u64::from(block.length));
                    self.torrent.handle_served(now(), key, block);
                }
            }
            ConnEvent::Closed { conn, reason } => {
                if let Some(c) = self.conns.get(&conn) {
                    let key = c.key;
                    tracing::debug!(digest = %self.metainfo.digest(), peer = %c.peer, %reason, "peer connection closed");
                    self.close_peer(key, "connection closed");
                }
            }
        }
    }

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::Verified {
                index,
                result,
                error,
            } => {
                if let Some(error) = error {
                    self.fail(format!("storing piece {index}: {error}"));
                }
                match result {
                    VerifyResult::Ok => {
                        let bytes = self
                            .metainfo
                            .piece_range(index)
                            .map_or(0, |r| r.end - r.start);
                        self.shared.counters.verified(bytes);
                    }
                    VerifyResult::HashMismatch => self.shared.counters.hash_mismatch(),
                    VerifyResult::StoreFailed => {}
                }
                self.torrent.handle_verified(now(), index, result);
            }
            Internal::Finished(Ok(reader)) => {
                tracing::info!(digest = %self.metainfo.digest(), "blob complete and verified");
                self.source.send_replace(Source::Complete(reader));
                self.state = TransferState::Seeding;
            }
            Internal::Finished(Err(e)) => {
                self.fail(format!("finishing blob: {}", conn::error_chain(&e)))
            }
        }
    }

    fn drain_actions(&mut self) {
        while let Some(action) = self.torrent.poll_action() {
            match action {
                Action::Send { peer, message } => self.enqueue(peer, Outgoing::Message(message)),
                Action::Serve { peer, block } => self.enqueue(peer, Outgoing::Serve(block)),
                Action::Verify { index, data } => self.verify(index, data),
                Action::Disconnect { peer, reason } => {
                    tracing::info!(digest = %self.metainfo.digest(), peer = ?self.peer_of(peer), %reason, "disconnecting peer");
                    self.close_peer(peer, "disconnected by torrent");
                }
                Action::Ban { peer, id, reason } => {
                    tracing::warn!(digest = %self.metainfo.digest(), peer = %id, %reason, "banning peer");
                    if let Some(conn) = self.by_key.get(&peer).and_then(|c| self.conns.get(c))
                        && conn.outbound
                    {
                        self.candidates.banned(conn.addr, id);
                    }
                    self.close_peer(peer, "banned");
                }
                Action::PieceVerified { .. } => {}
                Action::Completed => self.finish(),
            }
        }
    }

    fn peer_of(&self, key: PeerKey) -> Option<PeerId> {
        self.by_key
            .get(&key)
            .and_then(|c| self.conns.get(c))
            .map(|c| c.peer)
    }

    fn enqueue(&mut self, key: PeerKey, outgoing: Outgoing) {
        let Some(conn) = self.by_key.get(&key).and_then(|c| self.conns.get(c)) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = conn.queue.try_send(outgoing) {
            tracing::warn!(peer = %conn.peer, "peer is not reading its queue; disconnecting");
            self.close_peer(key, "send queue full");
        }
    }

    /// Has the store hash an assembled piece off the runtime and write it if
    /// it matches, before telling the torrent: a piece is never announced or
    /// uploaded before it is both verified and on disk (a local client
    /// streaming the blob may read it once verified).
    fn verify(&mut self, index: u32, data: Bytes) {
        let Some(partial) = self.partial.clone() else {
            return;
        };
        let results = self.internal_tx.clone();
        self.shared.tasks.spawn(async move {
            let (result, error) = match partial.write_piece(index, data).await {
                Ok(()) => (VerifyResult::Ok, None),
                Err(StoreError::PieceHash(_)) => (VerifyResult::HashMismatch, None),
                Err(e) => (VerifyResult::StoreFailed, Some(conn::error_chain(&e))),
            };
            let _ = results
                .send(Internal::Verified {
                    index,
                    result,
                    error,
                })
                .await;
        });
    }

    fn finish(&mut self) {
        let Some(partial) = self.partial.clone() else {
            return;
        };
        let results = self.internal_tx.clone();
        self.shared.tasks.spawn(async move {
            let _ = results
                .send(Internal::Finished(partial.finish().await))
                .await;
        });
    }

    fn fail(&mut self, reason: String) {
        if matches!(self.state, TransferState::Failed(_)) {
            return;
        }
        tracing::error!(digest = %self.metainfo.digest(), %reason, "download failed");
        if let Some(partial) = &self.partial {
            partial.fail(reason.clone());
        }
        self.state = TransferState::Failed(reason);
    }

    fn close_peer(&mut self, key: PeerKey, why: &str) {
        let Some(id) = self.by_key.remove(&key) else {
            return;
        };
        if let Some(conn) = self.conns.remove(&id) {
            conn.cancel.cancel();
            if self.by_peer.get(&conn.peer) == Some(&id) {
                self.by_peer.remove(&conn.peer);
            }
            if conn.outbound {
                self.candidates.forget(conn.addr);
            }
            tracing::trace!(peer = %conn.peer, why, "peer removed");
        }
        self.torrent.handle_peer_disconnected(now(), key);
        self.dial_more();
    }

    fn publish(&self) {
        let next = snapshot(&self.torrent, &self.state);
        self.progress.send_if_modified(|p| {
            let changed = *p != next;
            *p = next;
            changed
        });
    }

    fn close(&mut self) {
        for conn in self.conns.values() {
            conn.cancel.cancel();
        }
        self.cancel.cancel();
        if self.state == TransferState::Downloading {
            self.fail("torrent stopped".into());
            self.publish();
        }
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
