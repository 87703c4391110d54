//! Assembled pieces out to the driver, hash results back: new pieces,
//! blame and bans, completion.
//!
//! Blame rule: a failed piece whose blocks all came from one peer is that
//! peer's fault: it counts one attributable failure, and reaching
//! `max_hash_failures` (default 1) bans it at once. A failed piece with
//! several contributors is nobody's fault for certain: each gets a strike,
//! and a peer with more than `max_hash_failures` strikes is banned (so by
//! default, one implicated in two shared failures). The piece is then
//! re-downloaded from a single peer, so that a repeat failure is
//! attributable. A store failure blames nobody.

use std::time::Instant;

use crate::peer_id::PeerId;
use crate::wire::Message;

use super::{Action, DisconnectReason, Torrent, VerifyResult, after};

/// Hash failures a peer id was involved in; see the module doc.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Failures {
    sole: u32,
    shared: u32,
}

impl Torrent {
    /// The driver's answer to [`Action::Verify`] for piece `index`. On `Ok`
    /// the piece is ours: Have goes to every peer, then `PieceVerified`, and
    /// after the last piece `Completed`. Otherwise the piece is downloaded
    /// again. Answers for pieces not being verified are ignored.
    pub fn handle_verified(&mut self, now: Instant, index: u32, result: VerifyResult) {
        let was_full = self.verify_backlog_full();
        let Some(contributors) = self.verifying.remove(&index) else {
            return;
        };
        let len = u64::from(self.metainfo.piece_len(index).unwrap_or(0));
        match result {
            VerifyResult::Ok => {
                if self.picker.verified(index).is_ok() {
                    self.have.set(index);
                    self.single_source.clear(index);
                    self.downloaded += len;
                    self.announce_have(index);
                    self.actions.push_back(Action::PieceVerified { index });
                    if self.have.is_complete() {
                        self.completed();
                    }
                }
            }
            VerifyResult::HashMismatch => {
                if self.picker.failed(index).is_ok() {
                    self.wasted += len;
                    self.blame(now, index, &contributors);
                    self.fill_all(now, &[]);
                }
            }
            VerifyResult::StoreFailed => {
                if self.picker.failed(index).is_ok() {
                    self.fill_all(now, &[]);
                }
            }
        }
        if was_full && !self.have.is_complete() {
            self.fill_all(now, &[]);
        }
        self.after_event(now);
    }

    /// Whether enough assembled pieces wait for verification that no more
    /// blocks should be requested (see `max_verifying_bytes`).
    pub(super) fn verify_backlog_full(&self) -> bool {
        self.verifying.len()
            >= self
                .config
                .max_verifying_pieces(self.metainfo.piece_length())
    }

    /// The last block of `index` arrived: hand the piece to the driver.
    pub(super) fn assembled(&mut self, index: u32) {
        let Some(mut download) = self
            .downloads
            .get_mut(index as usize)
            .and_then(Option::take)
        else {
            return;
        };
        if self.picker.assembled(index).is_err() {
            return;
        }
        let data = download.take_data();
        self.verifying
            .insert(index, std::mem::take(&mut download.contributors));
        self.actions.push_back(Action::Verify { index, data });
    }

    /// We hold every piece: tell everyone, drop the other seeders (seed to
    /// seed carries nothing), and rechoke as a seeder.
    fn completed(&mut self) {
        self.actions.push_back(Action::Completed);
        // A seeder assembles nothing more: its idle piece buffers go now
        // rather than for as long as it seeds.
        self.buffers = None;
        for k in 0..self.peers.capacity() {
            let Some(peer) = self.peers.get(k) else {
                continue;
            };
            if peer.closing {
                continue;
            }
            let key = crate::peer_key::PeerKey(k);
            let seeder = peer.is_seeder();
            self.send(key, Message::Complete);
            if seeder {
                self.disconnect(key, DisconnectReason::BothSeeders);
            }
        }
        self.rechoke_needed = true;
    }

    /// Applies the blame rule of the module doc to the contributors of a
    /// piece that failed its hash check.
    fn blame(&mut self, now: Instant, index: u32, contributors: &[PeerId]) {
        let limit = self.config.max_hash_failures.max(1);
        let sole = contributors.len() == 1;
        if !sole {
            self.single_source.set(index);
        }
        for &id in contributors {
            let failures = self.failures.entry(id).or_default();
            let ban = if sole {
                failures.sole += 1;
                failures.sole >= limit
            } else {
                failures.shared += 1;
                failures.shared > limit
            };
            if ban {
                self.ban(now, id, DisconnectReason::BadPiece);
            }
        }
    }

    /// Refuses `id` for `ban_duration` and, if it is connected, emits Ban.
    fn ban(&mut self, now: Instant, id: PeerId, reason: DisconnectReason) {
        self.failures.remove(&id);
        self.banned.insert(id, after(now, self.config.ban_duration));
        if let Some(&key) = self.ids.get(&id)
            && self.close(key)
        {
            self.actions.push_back(Action::Ban {
                peer: key,
                id,
                reason,
            });
        }
    }
}
