//! The engine: pops events in virtual-time order and feeds them to the real
//! torrents, the tracker's real handout policy and the network model,
//! mirroring what the tokio session driver (`swarm/src/session/driver.rs`)
//! does with sockets:
//! - a decoded message goes to `handle_message`, a written block to
//!   `handle_served`, a closed connection to `handle_peer_disconnected`,
//!   a hash result to `handle_verified`; after each, actions are drained in
//!   order and the timer is re-armed (`actions`);
//! - connections are dialed while connections plus dials stay under the
//!   per-blob limit, from the peers each announce hands back (`dial`);
//! - each connection direction is a FIFO pipe; blocks are flows of the
//!   network model, control messages only pay the latency (`pipes`).
//!
//! Simplifications, all on the I/O side: hashing always succeeds and takes
//! `piece length / hash speed`; a handshake takes one one-way latency to
//! reach the acceptor and another to come back; crossing dials cannot
//! happen (a pair is connected once, as the driver's duplicate rule ends
//! up); the final whole-blob digest and fsync are not modelled.

mod actions;
mod dial;
mod pipes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_swarm::torrent::{Torrent, TorrentConfig};
use shoal_swarm::{Bitfield, Digest, Metainfo, PeerId};

use crate::clock::{Clock, SimTime};
use crate::conn::Conn;
use crate::error::SimError;
use crate::events::{BlobId, ConnId, Event, HostId};
use crate::host::{Host, Swarm};
use crate::network::{Network, Reschedule};
use crate::queue::EventQueue;
use crate::scenario::{Params, Plan};
use crate::tracker::{Announce, SimTracker};

/// What a finished run measured, before it is summarised in a report.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Per agent: completion time from its arrival, None if it never
    /// completed (left, or the run hit its time limit).
    pub completion: Vec<Option<f64>>,
    /// Per agent, in the same order: its first verified piece, seconds
    /// from its arrival.
    pub first_piece: Vec<Option<f64>>,
    /// Per agent: when half its pieces were verified, from its arrival.
    pub half: Vec<Option<f64>>,
    /// Agents that left mid-transfer.
    pub departed: u32,
    /// Payload bytes sent by origins.
    pub origin_bytes: u64,
    /// Payload bytes sent by agents.
    pub agent_bytes: u64,
    /// Bytes agents received and threw away (duplicates, late blocks).
    pub wasted: u64,
    /// Virtual time of the last event processed, seconds.
    pub end_s: f64,
    /// Events processed.
    pub events: u64,
    /// True if the run stopped at its time limit with agents incomplete.
    pub timed_out: bool,
    /// Messages delivered, by kind: where the events go.
    pub messages: MessageCounts,
}

/// Messages delivered during a run, by kind.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct MessageCounts {
    /// `Have`: one per verified piece per connected peer.
    pub have: u64,
    /// `Request`.
    pub request: u64,
    /// `Piece` (blocks).
    pub piece: u64,
    /// Everything else (bitfield, interest, choke, cancel, complete...).
    pub other: u64,
}

/// One simulation run.
pub struct Sim {
    params: Params,
    plan: Plan,
    clock: Clock,
    now: SimTime,
    queue: EventQueue,
    net: Network,
    tracker: SimTracker,
    hosts: Vec<Host>,
    /// One swarm per (host, blob) at `host * blobs + blob`, `None` before
    /// joining and after leaving. One flat table rather than a vector per
    /// host: an event reaches its torrent with one cache miss fewer.
    swarms: Vec<Option<Swarm>>,
    /// Blobs in the run.
    blobs: usize,
    conns: Vec<Conn>,
    /// Connected or dialing pairs per blob, smaller host first.
    pairs: HashMap<(HostId, HostId, BlobId), ConnId>,
    metainfo: Vec<Arc<Metainfo>>,
    /// Reused buffer of flow reschedules from the network.
    reschedules: Vec<Reschedule>,
    latency: Duration,
    /// Agents done or departed; the run ends when all are.
    settled: u32,
    agents: u32,
    events: u64,
    messages: MessageCounts,
}

impl Sim {
    /// Lays out the run; nothing is simulated yet.
    pub fn new(params: Params) -> Result<Sim, SimError> {
        let plan = Plan::build(&params)?;
        let metainfo = plan
            .blobs
            .iter()
            .enumerate()
            .map(|(i, &len)| dummy_metainfo(i, len, plan.piece_length).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let mut net = Network::default();
        let mut queue = EventQueue::default();
        let mut hosts = Vec::with_capacity(plan.hosts.len());
        for (i, h) in plan.hosts.iter().enumerate() {
            let host = i as HostId;
            net.add_host(h.up, h.down);
            queue.push(h.join_at, Event::Join { host });
            if let Some(at) = h.leave_at {
                queue.push(at, Event::Leave { host });
            }
            hosts.push(Host {
                id: peer_id(params.seed, host),
                origin: h.origin,
                up: h.up,
                down: h.down,
                join_at: h.join_at,
                leave_at: h.leave_at,
                active: false,
                departed: false,
                done_at: None,
                first_piece_at: None,
                half_at: None,
                sent: 0,
            });
        }
        let origins: Vec<HostId> = (0..hosts.len() as HostId)
            .filter(|&h| hosts[h as usize].origin)
            .collect();
        let ttl = params.announce_interval * params.ttl_intervals.max(1);
        let tracker = SimTracker::new(
            plan.blobs.len(),
            &origins,
            params.policy.clone(),
            ttl,
            mix(params.seed, u64::MAX),
        );
        Ok(Sim {
            latency: params.latency,
            agents: params.agents,
            clock: Clock::new(Instant::now()),
            now: SimTime::ZERO,
            queue,
            net,
            tracker,
            swarms: (0..hosts.len() * plan.blobs.len()).map(|_| None).collect(),
            blobs: plan.blobs.len(),
            hosts,
            conns: Vec::new(),
            pairs: HashMap::new(),
            metainfo,
            reschedules: Vec::new(),
            settled: 0,
            events: 0,
            messages: MessageCounts::default(),
            plan,
            params,
        })
    }

    /// The laid-out plan (hosts, blobs, bounds).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The parameters of the run.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Runs until every agent has completed or left, or the time limit.
    pub fn run(mut self) -> Outcome {
        let mut timed_out = false;
        while self.settled < self.agents {
            let Some((at, event)) = self.queue.pop() else {
                break;
            };
            if at > self.plan.max_time {
                timed_out = true;
                break;
            }
            self.now = at;
            self.events += 1;
            self.handle(event);
        }
        self.outcome(timed_out)
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Join { host } => self.on_join(host),
            Event::Leave { host } => self.on_leave(host),
            Event::Announce {
                host,
                blob,
                generation,
            } => self.on_announce(host, blob, generation),
            Event::Handout { host, blob, peers } => self.on_handout(host, blob, peers),
            Event::Accept { conn } => self.on_accept(conn),
            Event::Established { conn } => self.on_established(conn),
            Event::Deliver {
                conn,
                from,
                message,
            } => self.on_deliver(conn, from, message),
            Event::FlowDone {
                conn,
                from,
                version,
            } => self.on_flow_done(conn, from, version),
            Event::Closed { conn, side } => self.on_closed(conn, side),
            Event::Timer { host, blob, at } => self.on_timer(host, blob, at),
            Event::Verified { host, blob, index } => self.on_verified(host, blob, index),
        }
    }

    fn instant(&self) -> Instant {
        self.clock.instant(self.now)
    }

    /// Index of (host, blob) in `swarms`; out of range for a bad blob.
    fn slot(&self, host: HostId, blob: BlobId) -> usize {
        let blob = usize::from(blob);
        if blob >= self.blobs {
            return usize::MAX;
        }
        host as usize * self.blobs + blob
    }

    fn swarm_mut(&mut self, host: HostId, blob: BlobId) -> Option<&mut Swarm> {
        let slot = self.slot(host, blob);
        self.swarms.get_mut(slot)?.as_mut()
    }

    /// Every blob's swarm slot of `host`.
    fn swarms_of(&self, host: HostId) -> &[Option<Swarm>] {
        let start = host as usize * self.blobs;
        &self.swarms[start..start + self.blobs]
    }

    /// An agent starts pulling every blob; an origin starts seeding.
    fn on_join(&mut self, host: HostId) {
        let now = self.instant();
        let h = &mut self.hosts[host as usize];
        h.active = true;
        for (b, metainfo) in self.metainfo.iter().enumerate() {
            let pieces = metainfo.piece_count();
            let have = if h.origin {
                Bitfield::full(pieces)
            } else {
                Bitfield::new(pieces)
            };
            let seed = mix(self.params.seed, (u64::from(host) << 16) | b as u64);
            let config = TorrentConfig {
                spread_first: h.origin && self.params.origin_spread,
                ..self.params.torrent.clone()
            };
            let torrent = Torrent::new(Arc::clone(metainfo), have, h.id, config, now, seed);
            self.swarms[host as usize * self.blobs + b] = Some(Swarm::new(torrent));
        }
        let blobs = self.metainfo.len() as BlobId;
        for blob in 0..blobs {
            self.rearm(host, blob);
            if !self.hosts[host as usize].origin {
                self.queue.push(
                    self.now,
                    Event::Announce {
                        host,
                        blob,
                        generation: 0,
                    },
                );
            }
        }
    }

    /// Announces what `host` holds of `blob`; the answer arrives one round
    /// trip later. The next announce follows the interval, as the agent's.
    fn on_announce(&mut self, host: HostId, blob: BlobId, generation: u32) {
        let id = self.hosts[host as usize].id;
        let Some(swarm) = self.swarm_mut(host, blob) else {
            return;
        };
        if swarm.announce_generation != generation {
            return;
        }
        let bitfield = swarm.torrent.bitfield();
        let who = Announce {
            host,
            id,
            pieces: bitfield.count(),
            total_pieces: bitfield.len(),
        };
        let peers = self.tracker.announce(self.now, usize::from(blob), who);
        let rtt = self.latency * 2;
        self.queue.push(
            self.now.after(rtt),
            Event::Handout {
                host,
                blob,
                peers: peers.into_boxed_slice(),
            },
        );
        let next = self.now.after(self.params.announce_interval);
        self.queue.push(
            next,
            Event::Announce {
                host,
                blob,
                generation,
            },
        );
    }

    /// The torrent's timer fired (or a stale arming did: then re-arm).
    fn on_timer(&mut self, host: HostId, blob: BlobId, at: SimTime) {
        let now = self.instant();
        let Some(swarm) = self.swarm_mut(host, blob) else {
            return;
        };
        if swarm.timer != Some(at) {
            return;
        }
        swarm.timer = None;
        if swarm.torrent.poll_timeout().is_some_and(|t| t <= now) {
            swarm.torrent.handle_timeout(now);
            self.drain(host, blob);
        } else {
            self.rearm(host, blob);
        }
    }

    /// Hashing finished: always a match (the hash itself is not simulated).
    fn on_verified(&mut self, host: HostId, blob: BlobId, index: u32) {
        let now = self.instant();
        let Some(swarm) = self.swarm_mut(host, blob) else {
            return;
        };
        swarm
            .torrent
            .handle_verified(now, index, shoal_swarm::torrent::VerifyResult::Ok);
        self.drain(host, blob);
    }

    /// Churn: the agent vanishes. Its peers learn after one latency.
    fn on_leave(&mut self, host: HostId) {
        let h = &mut self.hosts[host as usize];
        if !h.active || h.done_at.is_some() {
            return;
        }
        h.active = false;
        h.departed = true;
        let start = host as usize * self.blobs;
        let swarms: Vec<Swarm> = self.swarms[start..start + self.blobs]
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for swarm in swarms {
            for conn in swarm.by_key.iter().flatten() {
                self.drop_end(*conn, host);
            }
        }
        self.settled += 1;
    }

    /// Pushes the timer event if the torrent wants one sooner than armed.
    fn rearm(&mut self, host: HostId, blob: BlobId) {
        let now = self.now;
        let clock = self.clock;
        let Some(swarm) = self.swarm_mut(host, blob) else {
            return;
        };
        let Some(at) = swarm.torrent.poll_timeout() else {
            return;
        };
        let at = clock.sim_time(at).max(now);
        if swarm.timer.is_none_or(|armed| at < armed) {
            swarm.timer = Some(at);
            self.queue.push(at, Event::Timer { host, blob, at });
        }
    }

    fn outcome(self, timed_out: bool) -> Outcome {
        let mut completion = Vec::new();
        let mut first_piece = Vec::new();
        let mut half = Vec::new();
        let (mut origin_bytes, mut agent_bytes, mut wasted, mut departed) = (0, 0, 0, 0);
        for (i, h) in self.hosts.iter().enumerate() {
            if h.origin {
                origin_bytes += h.sent;
                continue;
            }
            agent_bytes += h.sent;
            departed += u32::from(h.departed);
            wasted += self
                .swarms_of(i as HostId)
                .iter()
                .flatten()
                .map(|s| s.torrent.stats().wasted)
                .sum::<u64>();
            let since_join = |t: SimTime| t.as_secs_f64() - h.join_at.as_secs_f64();
            completion.push(h.done_at.map(since_join));
            first_piece.push(h.first_piece_at.map(since_join));
            half.push(h.half_at.map(since_join));
        }
        let pending = completion
            .iter()
            .zip(self.hosts.iter().filter(|h| !h.origin))
            .any(|(c, h)| c.is_none() && !h.departed);
        Outcome {
            completion,
            first_piece,
            half,
            departed,
            origin_bytes,
            agent_bytes,
            wasted,
            end_s: self.now.as_secs_f64(),
            events: self.events,
            timed_out: timed_out || pending,
            messages: self.messages,
        }
    }
}

/// Metainfo for a blob of `len` bytes with dummy piece hashes: the
/// simulator answers verification itself, so the hashes are never checked.
fn dummy_metainfo(blob: usize, len: u64, piece: u32) -> Result<Metainfo, SimError> {
    let pieces = len.div_ceil(u64::from(piece)) as usize;
    let mut digest = [0u8; 32];
    digest[..8].copy_from_slice(&(blob as u64).to_be_bytes());
    Ok(Metainfo::new(
        Digest::from_bytes(digest),
        len,
        piece,
        vec![[0u8; 32]; pieces],
    )?)
}

/// A distinct, reproducible peer id: the host index, then seeded noise.
fn peer_id(seed: u64, host: HostId) -> PeerId {
    let mut id = [0u8; PeerId::LEN];
    id[..4].copy_from_slice(&host.to_be_bytes());
    id[4..12].copy_from_slice(&mix(seed, u64::from(host)).to_le_bytes());
    id[12..20].copy_from_slice(&mix(seed ^ 1, u64::from(host)).to_le_bytes());
    PeerId::from_array(id)
}

/// SplitMix64 of `seed` and `salt`: independent-looking seeds per host.
pub(crate) fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
