//! Carrying out a torrent's actions, as the session driver's
//! `drain_actions` does: messages and served blocks go to the connection's
//! pipe, assembled pieces are "hashed" for a while, disconnects and bans
//! close the connection at once (and tell the torrent), completion is
//! recorded and announced.

use shoal_swarm::torrent::Action;

use super::Sim;
use crate::conn::Outgoing;
use crate::events::{BlobId, Event, HostId};

impl Sim {
    /// Drains every action of (host, blob) in order, then re-arms its timer.
    pub(super) fn drain(&mut self, host: HostId, blob: BlobId) {
        loop {
            let Some(swarm) = self.swarm_mut(host, blob) else {
                return;
            };
            let Some(action) = swarm.torrent.poll_action() else {
                break;
            };
            match action {
                Action::Send { peer, message } => {
                    if let Some(conn) = swarm.conn_of(peer) {
                        self.enqueue(conn, host, Outgoing::Message(message.into()));
                    }
                }
                Action::Serve { peer, block } => {
                    if let Some(conn) = swarm.conn_of(peer) {
                        self.enqueue(conn, host, Outgoing::Serve(block));
                    }
                }
                Action::Verify { index, .. } => {
                    let len = swarm.torrent.metainfo().piece_len(index).unwrap_or(0);
                    let secs = f64::from(len) / self.params.hash_bytes_per_s;
                    let at = self.now.after_secs(secs);
                    self.queue.push(at, Event::Verified { host, blob, index });
                }
                Action::Disconnect { peer, .. } | Action::Ban { peer, .. } => {
                    if let Some(conn) = swarm.conn_of(peer) {
                        self.close_end(conn, host);
                    }
                }
                Action::PieceVerified { .. } => self.on_piece_verified(host),
                Action::Completed => self.on_completed(host, blob),
            }
        }
        self.rearm(host, blob);
    }

    /// Records the start-up milestones the report compares stragglers by.
    fn on_piece_verified(&mut self, host: HostId) {
        let now = self.now;
        let h = &mut self.hosts[host as usize];
        h.first_piece_at.get_or_insert(now);
        if h.half_at.is_none() {
            let (have, total) = self
                .swarms_of(host)
                .iter()
                .flatten()
                .map(|s| s.torrent.bitfield())
                .fold((0, 0), |(have, total), b| {
                    (have + b.count(), total + b.len())
                });
            if 2 * have >= total {
                self.hosts[host as usize].half_at = Some(now);
            }
        }
    }

    /// Every piece of `blob` is verified: the host may be done, and it
    /// announces at once (the agent's announcer wakes on completion).
    fn on_completed(&mut self, host: HostId, blob: BlobId) {
        let now = self.now;
        let Some(swarm) = self.swarm_mut(host, blob) else {
            return;
        };
        swarm.completed_at = Some(now);
        swarm.announce_generation += 1;
        let generation = swarm.announce_generation;
        self.queue.push(
            now,
            Event::Announce {
                host,
                blob,
                generation,
            },
        );
        let all = self
            .swarms_of(host)
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.completed_at.is_some()));
        let h = &mut self.hosts[host as usize];
        if all && h.done_at.is_none() && !h.origin {
            h.done_at = Some(now);
            self.settled += 1;
        }
    }
}
