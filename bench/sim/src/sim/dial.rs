//! Connections: dialing handed-out peers under the per-blob limit,
//! handshakes at both ends (`handle_peer_connected`), and closes from either
//! end, as `session/driver.rs` and `session/candidates.rs` do.

use shoal_swarm::PeerKey;

use super::Sim;
use crate::conn::{Conn, End};
use crate::events::{BlobId, ConnId, Event, HostId};

impl Sim {
    /// The tracker's answer: queue unknown peers and dial up to the limit.
    pub(super) fn on_handout(&mut self, host: HostId, blob: BlobId, peers: Box<[HostId]>) {
        let slot = self.slot(host, blob);
        let Some(swarm) = self.swarms.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        for peer in peers {
            let pair = pair_key(host, peer, blob);
            if peer == host || self.pairs.contains_key(&pair) || !swarm.known.insert(peer) {
                continue;
            }
            swarm.queue.push_back(peer);
        }
        self.dial_more(host, blob);
    }

    /// Dials queued peers while connections plus dials stay under the limit.
    pub(super) fn dial_more(&mut self, host: HostId, blob: BlobId) {
        let limit = self.params.max_peers;
        loop {
            let slot = self.slot(host, blob);
            let Some(swarm) = self.swarms.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            if swarm.connections + swarm.dialing >= limit {
                return;
            }
            let Some(peer) = swarm.queue.pop_front() else {
                return;
            };
            let pair = pair_key(host, peer, blob);
            if self.pairs.contains_key(&pair) {
                // It connected to us meanwhile.
                swarm.known.remove(&peer);
                continue;
            }
            swarm.dialing += 1;
            let conn = self.conns.len() as ConnId;
            self.conns.push(Conn::dial(blob, host, peer));
            self.net.add_pipe(host, peer);
            self.net.add_pipe(peer, host);
            self.pairs.insert(pair, conn);
            self.queue
                .push(self.now.after(self.latency), Event::Accept { conn });
        }
    }

    /// The dialer's handshake reached the acceptor.
    pub(super) fn on_accept(&mut self, conn: ConnId) {
        let now = self.instant();
        let c = &self.conns[conn as usize];
        let (blob, [dialer, acceptor]) = (c.blob, c.ends);
        if c.state[0] == End::Closed {
            return;
        }
        let dialer_id = self.hosts[dialer as usize].id;
        let key = self
            .swarm_mut(acceptor, blob)
            .and_then(|s| s.torrent.handle_peer_connected(now, dialer_id));
        let Some(key) = key else {
            // Refused (gone, banned, duplicate): the dialer sees a failure.
            self.conns[conn as usize].state[1] = End::Closed;
            self.unpair(conn);
            self.queue.push(
                self.now.after(self.latency),
                Event::Closed { conn, side: 0 },
            );
            return;
        };
        self.open(conn, 1, key);
        // Before the acceptor's bitfield, which leaves after this.
        self.queue
            .push(self.now.after(self.latency), Event::Established { conn });
        self.drain(acceptor, blob);
    }

    /// The acceptor's handshake reached the dialer.
    pub(super) fn on_established(&mut self, conn: ConnId) {
        let now = self.instant();
        let c = &self.conns[conn as usize];
        let (blob, [dialer, acceptor]) = (c.blob, c.ends);
        if c.state[0] != End::Pending {
            return;
        }
        let acceptor_id = self.hosts[acceptor as usize].id;
        let Some(swarm) = self.swarm_mut(dialer, blob) else {
            // The dialer left while its handshake was in flight.
            self.conns[conn as usize].state[0] = End::Closed;
            self.unpair(conn);
            self.queue.push(
                self.now.after(self.latency),
                Event::Closed { conn, side: 1 },
            );
            return;
        };
        swarm.dialing -= 1;
        match swarm.torrent.handle_peer_connected(now, acceptor_id) {
            Some(key) => {
                self.open(conn, 0, key);
                self.drain(dialer, blob);
            }
            None => {
                swarm.known.remove(&acceptor);
                self.conns[conn as usize].state[0] = End::Closed;
                self.unpair(conn);
                self.queue.push(
                    self.now.after(self.latency),
                    Event::Closed { conn, side: 1 },
                );
                self.dial_more(dialer, blob);
            }
        }
    }

    fn open(&mut self, conn: ConnId, side: u8, key: PeerKey) {
        let c = &mut self.conns[conn as usize];
        c.state[usize::from(side)] = End::Open(key);
        let (host, blob) = (c.ends[usize::from(side)], c.blob);
        if let Some(swarm) = self.swarm_mut(host, blob) {
            swarm.bind(key, conn);
        }
    }

    /// `host`'s torrent closes `conn` (Disconnect, Ban): it forgets the peer
    /// now, the other end learns one latency later.
    pub(super) fn close_end(&mut self, conn: ConnId, host: HostId) {
        let side = self.conns[conn as usize].side_of(host);
        self.finish_end(conn, side, true);
        self.queue.push(
            self.now.after(self.latency),
            Event::Closed {
                conn,
                side: 1 - side,
            },
        );
    }

    /// `host` left the run: like a close, without telling its torrent, which
    /// is gone.
    pub(super) fn drop_end(&mut self, conn: ConnId, host: HostId) {
        let side = self.conns[conn as usize].side_of(host);
        self.finish_end(conn, side, false);
        self.queue.push(
            self.now.after(self.latency),
            Event::Closed {
                conn,
                side: 1 - side,
            },
        );
    }

    /// The other end closed: this end forgets the peer (or its dial failed).
    pub(super) fn on_closed(&mut self, conn: ConnId, side: u8) {
        self.finish_end(conn, side, true);
    }

    /// Closes `side` of `conn`: its pipe stops, its torrent forgets the key
    /// (if `tell`), a dialer forgets the address and dials someone else.
    fn finish_end(&mut self, conn: ConnId, side: u8, tell: bool) {
        let now = self.instant();
        let c = &mut self.conns[conn as usize];
        let s = usize::from(side);
        let previous = std::mem::replace(&mut c.state[s], End::Closed);
        if previous == End::Closed {
            return;
        }
        let (host, other, blob) = (c.ends[s], c.ends[1 - s], c.blob);
        c.pipes[s].queue.clear();
        c.pipes[s].sending = None;
        self.unpair(conn);
        self.stop_pipe(conn, side);
        let Some(swarm) = self.swarm_mut(host, blob) else {
            return;
        };
        if side == 0 {
            swarm.known.remove(&other);
        }
        match previous {
            End::Pending if side == 0 => swarm.dialing -= 1,
            End::Open(key) => {
                swarm.unbind(key);
                if tell {
                    swarm.torrent.handle_peer_disconnected(now, key);
                }
            }
            _ => {}
        }
        if tell {
            self.drain(host, blob);
            self.dial_more(host, blob);
        }
    }

    fn unpair(&mut self, conn: ConnId) {
        let c = &self.conns[conn as usize];
        let pair = pair_key(c.ends[0], c.ends[1], c.blob);
        if self.pairs.get(&pair) == Some(&conn) {
            self.pairs.remove(&pair);
        }
    }
}

/// The pair map's key: the two hosts in order, and the blob.
fn pair_key(a: HostId, b: HostId, blob: BlobId) -> (HostId, HostId, BlobId) {
    (a.min(b), a.max(b), blob)
}
