//! Scenarios: who joins when, with what capacity, who leaves, which blobs.
//! A [`Params`] (the CLI's flags) becomes a [`Plan`] (concrete hosts and
//! blobs) using only the run's seed, so a plan is reproducible.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use shoal_swarm::choker::ChokerConfig;
use shoal_swarm::metainfo::{MAX_PIECE_LENGTH, MIN_PIECE_LENGTH, Metainfo};
use shoal_swarm::torrent::TorrentConfig;
use shoal_tracker::handout::Policy;

use crate::clock::SimTime;
use crate::error::SimError;

/// Which situation to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Every agent starts at once.
    FlashCrowd,
    /// Agents arrive uniformly over `stagger_s`.
    Staggered,
    /// Like a flash crowd, but `churn_fraction` of agents leave mid-transfer.
    Churn,
    /// Like a flash crowd, but `slow_fraction` of agents have
    /// `1/slow_factor` of the bandwidth.
    Hetero,
    /// A flash crowd served by a single origin (compare with `--origins`).
    OneOrigin,
    /// A flash crowd pulling an image: `layers` blobs at once.
    MultiBlob,
}

impl Scenario {
    /// Every scenario, for help texts and sweeps.
    pub const ALL: [Scenario; 6] = [
        Scenario::FlashCrowd,
        Scenario::Staggered,
        Scenario::Churn,
        Scenario::Hetero,
        Scenario::OneOrigin,
        Scenario::MultiBlob,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::FlashCrowd => "flash-crowd",
            Scenario::Staggered => "staggered",
            Scenario::Churn => "churn",
            Scenario::Hetero => "hetero",
            Scenario::OneOrigin => "one-origin",
            Scenario::MultiBlob => "multi-blob",
        }
    }
}

/// Everything a run is configured by; defaults follow production.
#[derive(Debug, Clone)]
pub struct Params {
    /// The situation.
    pub scenario: Scenario,
    /// Agents (not counting origins).
    pub agents: u32,
    /// Origins seeding every blob from the start.
    pub origins: u32,
    /// Total bytes pulled per agent (split into layers for multi-blob).
    pub blob_bytes: u64,
    /// Agent upload, bits per second.
    pub upload_bps: f64,
    /// Agent download, bits per second.
    pub download_bps: f64,
    /// Each origin's upload, bits per second.
    pub origin_upload_bps: f64,
    /// One-way latency of every message.
    pub latency: Duration,
    /// Seeds every random choice of the run.
    pub seed: u64,
    /// Piece length; None: production's `Metainfo::piece_length_for`.
    pub piece_length: Option<u32>,
    /// The torrent's tunables (block size, pipeline depth, unchoke slots...).
    pub torrent: TorrentConfig,
    /// The tracker's handout policy (K...).
    pub policy: Policy,
    /// Announce interval (production: 3 s).
    pub announce_interval: Duration,
    /// Announce intervals an entry survives without a refresh (production: 3).
    pub ttl_intervals: u32,
    /// Connections per blob (production `SessionConfig`: 20).
    pub max_peers: u32,
    /// Arrival window of the staggered scenario; None: the lower bound.
    pub stagger: Option<Duration>,
    /// Share of agents that leave (churn).
    pub churn_fraction: f64,
    /// Share of slow agents (hetero).
    pub slow_fraction: f64,
    /// How many times slower the slow agents are.
    pub slow_factor: f64,
    /// Layers of the multi-blob scenario.
    pub layers: u32,
    /// Piece hashing speed, bytes per second: sets when `Verify` answers.
    pub hash_bytes_per_s: f64,
    /// Give up at this virtual time; None: 50x the lower bound.
    pub max_time: Option<Duration>,
    /// What-if for the session driver, off by default (production sends in
    /// queue order): control messages skip blocks queued on the same
    /// connection, as a writer with a priority lane for control frames
    /// would. Measures what head-of-line blocking costs.
    pub control_first: bool,
    /// Origins serve every piece once before any twice
    /// (`TorrentConfig::spread_first`), as production's origins do.
    pub origin_spread: bool,
    /// Links carry TCP/IP and Ethernet headers too (4.6% more bytes per
    /// block), as a tbf-shaped link counts them; off, links carry frames
    /// only. For calibration against `bench/swarm-netns`.
    pub tcp_headers: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            scenario: Scenario::FlashCrowd,
            agents: 100,
            origins: 2,
            blob_bytes: 1 << 30,
            upload_bps: 1e9,
            download_bps: 1e9,
            origin_upload_bps: 1e9,
            latency: Duration::from_millis(1),
            seed: 1,
            piece_length: None,
            torrent: TorrentConfig {
                assemble_payload: false,
                ..TorrentConfig::default()
            },
            policy: Policy::default(),
            announce_interval: Duration::from_secs(3),
            ttl_intervals: 3,
            max_peers: 20,
            stagger: None,
            churn_fraction: 0.1,
            slow_fraction: 0.1,
            slow_factor: 10.0,
            layers: 5,
            hash_bytes_per_s: 1024.0 * 1024.0 * 1024.0,
            max_time: None,
            control_first: false,
            origin_spread: true,
            tcp_headers: false,
        }
    }
}

impl Params {
    /// Sets the unchoke slots (the knob lives inside the choker config).
    pub fn with_unchoke_slots(mut self, slots: usize) -> Self {
        self.torrent.choker = ChokerConfig {
            upload_slots: slots,
            ..self.torrent.choker
        };
        self
    }
}

/// One host of the plan.
#[derive(Debug, Clone)]
pub struct HostPlan {
    /// Seeds everything from the start.
    pub origin: bool,
    /// Upload, bytes per second.
    pub up: f64,
    /// Download, bytes per second.
    pub down: f64,
    /// Arrival.
    pub join_at: SimTime,
    /// Departure, for churned agents.
    pub leave_at: Option<SimTime>,
}

/// A concrete run: hosts (origins first) and blob lengths.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Origins then agents.
    pub hosts: Vec<HostPlan>,
    /// Length of each blob in bytes.
    pub blobs: Vec<u64>,
    /// Piece length used for every blob.
    pub piece_length: u32,
    /// The P2P lower bound for the whole pull, seconds.
    pub bound_s: f64,
    /// The client-server time `N * F / u_s`, seconds.
    pub client_server_s: f64,
    /// Give up at this virtual time.
    pub max_time: SimTime,
}

impl Plan {
    /// Checks `params` and lays out the run.
    pub fn build(params: &Params) -> Result<Plan, SimError> {
        check(params)?;
        let mut rng = SmallRng::seed_from_u64(params.seed ^ 0x5eed_51a7);
        let blobs = blob_lengths(params);
        let total: u64 = blobs.iter().sum();
        let piece_length = match params.piece_length {
            Some(p) => p,
            None => Metainfo::piece_length_for(blobs.iter().copied().max().unwrap_or(total)),
        };
        if !piece_length.is_power_of_two()
            || !(MIN_PIECE_LENGTH..=MAX_PIECE_LENGTH).contains(&piece_length)
        {
            return Err(SimError::PieceLength(piece_length));
        }
        let origins = if params.scenario == Scenario::OneOrigin {
            1
        } else {
            params.origins
        };
        let n = params.agents as usize;
        let (up, down) = (params.upload_bps / 8.0, params.download_bps / 8.0);
        let origin_up = params.origin_upload_bps / 8.0;
        let mut hosts: Vec<HostPlan> = (0..origins)
            .map(|_| HostPlan {
                origin: true,
                up: origin_up,
                down: origin_up.max(down),
                join_at: SimTime::ZERO,
                leave_at: None,
            })
            .collect();
        hosts.extend((0..n).map(|_| HostPlan {
            origin: false,
            up,
            down,
            join_at: SimTime::ZERO,
            leave_at: None,
        }));
        let agents: Vec<usize> = (origins as usize..hosts.len()).collect();
        let chosen = |rng: &mut SmallRng, fraction: f64| {
            let mut pick = agents.clone();
            pick.shuffle(rng);
            pick.truncate((fraction * n as f64).round() as usize);
            pick.sort_unstable();
            pick
        };
        if params.scenario == Scenario::Hetero {
            for i in chosen(&mut rng, params.slow_fraction) {
                hosts[i].up /= params.slow_factor;
                hosts[i].down /= params.slow_factor;
            }
        }
        let (bound_s, client_server_s) = bounds(&hosts, total);
        if params.scenario == Scenario::Staggered {
            let window = params.stagger.map_or(bound_s, |d| d.as_secs_f64());
            for &i in &agents {
                hosts[i].join_at = SimTime::from_secs_f64(rng.random_range(0.0..=window));
            }
        }
        if params.scenario == Scenario::Churn {
            // Mid-transfer: between a quarter and three quarters of the time
            // the whole swarm needs at best.
            for i in chosen(&mut rng, params.churn_fraction) {
                let at = rng.random_range(0.25 * bound_s..=0.75 * bound_s);
                hosts[i].leave_at = Some(SimTime::from_secs_f64(at));
            }
        }
        let max_time = match params.max_time {
            Some(d) => SimTime::ZERO.after(d),
            None => SimTime::from_secs_f64(50.0 * bound_s + 60.0),
        };
        Ok(Plan {
            hosts,
            blobs,
            piece_length,
            bound_s,
            client_server_s,
            max_time,
        })
    }
}

fn check(p: &Params) -> Result<(), SimError> {
    let positive = [
        ("agents", f64::from(p.agents)),
        ("origins", f64::from(p.origins)),
        ("blob size", p.blob_bytes as f64),
        ("upload", p.upload_bps),
        ("download", p.download_bps),
        ("origin upload", p.origin_upload_bps),
        ("slow factor", p.slow_factor),
        ("layers", f64::from(p.layers)),
        ("hash speed", p.hash_bytes_per_s),
        ("announce interval", p.announce_interval.as_secs_f64()),
        ("max peers", f64::from(p.max_peers)),
        ("handout size", p.policy.max_peers as f64),
    ];
    for (what, value) in positive {
        if !(value.is_finite() && value > 0.0) {
            return Err(SimError::NotPositive(what));
        }
    }
    for (what, value) in [
        ("churn fraction", p.churn_fraction),
        ("slow fraction", p.slow_fraction),
    ] {
        if !(0.0..=1.0).contains(&value) {
            return Err(SimError::Fraction(what, value));
        }
    }
    if p.agents > 1_000_000 {
        return Err(SimError::TooMany(p.agents));
    }
    Ok(())
}

/// One blob, or for multi-blob an image's layers: halving sizes (1/2, 1/4,
/// ...) with the last two equal, like a base layer and thinner app layers.
fn blob_lengths(p: &Params) -> Vec<u64> {
    if p.scenario != Scenario::MultiBlob || p.layers == 1 {
        return vec![p.blob_bytes];
    }
    let layers = p.layers.min(16);
    let mut left = p.blob_bytes;
    let mut out = Vec::new();
    for i in 0..layers {
        let len = if i + 1 == layers {
            left
        } else {
            (left / 2).max(1)
        };
        out.push(len);
        left -= len;
    }
    out.retain(|&l| l > 0);
    out
}

/// `max(F/u_s, F/min d_i, N F/(u_s + sum u_i))` and `N F / u_s`.
fn bounds(hosts: &[HostPlan], total: u64) -> (f64, f64) {
    let f = total as f64;
    let u_s: f64 = hosts.iter().filter(|h| h.origin).map(|h| h.up).sum();
    let agents = hosts.iter().filter(|h| !h.origin);
    let n = agents.clone().count() as f64;
    let sum_u: f64 = agents.clone().map(|h| h.up).sum();
    let d_min = agents.map(|h| h.down).fold(f64::INFINITY, f64::min);
    let bound = (f / u_s).max(f / d_min).max(n * f / (u_s + sum_u));
    (bound, n * f / u_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_of_a_symmetric_flash_crowd() {
        // 100 agents at 1 Gbit/s, 2 origins at 1 Gbit/s, 1 GiB:
        // F/u_s = 4.29 s, F/d = 8.59 s, N F/(u_s + N u) = 8.42 s.
        let plan = Plan::build(&Params::default()).unwrap();
        let f = (1u64 << 30) as f64;
        assert!((plan.bound_s - f / 125e6).abs() < 1e-9);
        assert!((plan.client_server_s - 100.0 * f / 250e6).abs() < 1e-6);
        assert_eq!(plan.piece_length, 1 << 20);
    }

    #[test]
    fn layers_split_the_total_and_bad_input_is_an_error() {
        let p = Params {
            scenario: Scenario::MultiBlob,
            blob_bytes: 64 << 20,
            ..Params::default()
        };
        let blobs = Plan::build(&p).unwrap().blobs;
        assert_eq!(blobs, [32 << 20, 16 << 20, 8 << 20, 4 << 20, 4 << 20]);
        let bad = Params {
            agents: 0,
            ..Params::default()
        };
        assert!(matches!(
            Plan::build(&bad),
            Err(SimError::NotPositive("agents"))
        ));
        let bad = Params {
            piece_length: Some(3 << 20),
            ..Params::default()
        };
        assert!(matches!(Plan::build(&bad), Err(SimError::PieceLength(_))));
    }

    #[test]
    fn churn_and_hetero_pick_ten_percent() {
        let churn = Plan::build(&Params {
            scenario: Scenario::Churn,
            ..Params::default()
        })
        .unwrap();
        assert_eq!(
            churn.hosts.iter().filter(|h| h.leave_at.is_some()).count(),
            10
        );
        let hetero = Plan::build(&Params {
            scenario: Scenario::Hetero,
            ..Params::default()
        })
        .unwrap();
        assert_eq!(hetero.hosts.iter().filter(|h| h.up < 1e8).count(), 10);
    }
}
