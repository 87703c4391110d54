//! A run's figures: the completion-time distribution, origin egress as a
//! multiple of F, the ratio to the P2P lower bound, and how fast the
//! simulator ran. Printed as a table or as JSON.

use serde::Serialize;

use crate::scenario::{Params, Plan};
use crate::sim::{MessageCounts, Outcome};

/// Everything a run reports; field names are the JSON keys.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: &'static str,
    /// Agents.
    pub agents: u32,
    /// Origins.
    pub origins: u32,
    /// Bytes each agent pulls (F), over every blob.
    pub f_bytes: u64,
    /// Blobs pulled at once.
    pub blobs: usize,
    /// Piece length.
    pub piece_bytes: u32,
    /// The tunables of the run.
    pub tunables: Tunables,
    /// The seed.
    pub seed: u64,
    /// Agents that completed.
    pub completed: usize,
    /// Agents that left mid-transfer.
    pub departed: u32,
    /// Agents neither complete nor departed when the run ended.
    pub incomplete: usize,
    /// Completion time from arrival, seconds: median.
    pub p50_s: f64,
    /// 99th percentile.
    pub p99_s: f64,
    /// Slowest agent.
    pub max_s: f64,
    /// P2P lower bound `max(F/u_s, F/min d_i, N F/(u_s + sum u_i))`, seconds.
    pub bound_s: f64,
    /// Client-server time `N F / u_s`, seconds.
    pub client_server_s: f64,
    /// `p50_s / bound_s`.
    pub ratio_p50: f64,
    /// `max_s / bound_s`: the figure the 1.3x target is about.
    pub ratio_max: f64,
    /// When the median agent and the slowest 1% reached each milestone:
    /// tells a straggler that started late from one that fell behind
    /// mid-transfer or at the end.
    pub milestones: Milestones,
    /// Bytes the origins sent, as a multiple of F (target <= 1.5).
    pub origin_egress_f: f64,
    /// Bytes agents discarded (duplicates, late blocks), as a multiple of
    /// N F.
    pub wasted_nf: f64,
    /// Virtual time when the run ended, seconds.
    pub virtual_s: f64,
    /// Events processed.
    pub events: u64,
    /// Wall-clock time of the run, seconds.
    pub wall_s: f64,
    /// Events per wall-clock second.
    pub events_per_s: f64,
    /// Messages delivered, by kind.
    pub messages: MessageCounts,
}

/// Seconds from arrival to each milestone, as `[median agent, mean of the
/// slowest 1%]`.
#[derive(Debug, Clone, Serialize)]
pub struct Milestones {
    /// First verified piece.
    pub first_piece_s: [f64; 2],
    /// Half of the pieces verified.
    pub half_s: [f64; 2],
    /// Every piece verified.
    pub complete_s: [f64; 2],
}

/// The knobs swept when tuning defaults.
#[derive(Debug, Clone, Serialize)]
pub struct Tunables {
    /// Block (request) size, bytes.
    pub block_bytes: u32,
    /// Requests in flight per peer.
    pub pipeline: usize,
    /// Handout size K.
    pub handout: usize,
    /// Regular unchoke slots.
    pub unchoke_slots: usize,
    /// Seconds between full rechokes.
    pub rechoke_s: f64,
    /// Seconds an optimistic unchoke lasts.
    pub optimistic_s: f64,
    /// Seconds between saturated-holder checks, 0 when off.
    pub rebalance_s: f64,
    /// Unchokers a leecher downloads from at once, 0 for no limit.
    pub max_unchokers: usize,
    /// Announce interval, seconds.
    pub announce_s: f64,
    /// Connections per blob.
    pub max_peers: u32,
    /// One-way latency, milliseconds.
    pub latency_ms: f64,
    /// Origins serve every piece once before any twice.
    pub origin_spread: bool,
    /// Links carry TCP/IP and Ethernet headers.
    pub tcp_headers: bool,
}

impl Report {
    /// Summarises a finished run.
    pub fn new(params: &Params, plan: &Plan, outcome: &Outcome, wall_s: f64) -> Report {
        let done = sorted(&outcome.completion);
        let f = plan.blobs.iter().sum::<u64>();
        let origins = plan.hosts.iter().filter(|h| h.origin).count() as u32;
        let incomplete =
            outcome.completion.iter().filter(|c| c.is_none()).count() - outcome.departed as usize;
        let (p50, p99, max) = (
            percentile(&done, 0.50),
            percentile(&done, 0.99),
            done.last().copied().unwrap_or(f64::NAN),
        );
        let nf = f as f64 * f64::from(params.agents);
        let milestones = start_up(outcome);
        Report {
            scenario: params.scenario.name(),
            agents: params.agents,
            origins,
            f_bytes: f,
            blobs: plan.blobs.len(),
            piece_bytes: plan.piece_length,
            tunables: Tunables {
                block_bytes: params.torrent.effective_block_size(),
                pipeline: params.torrent.max_requests_per_peer,
                handout: params.policy.max_peers,
                unchoke_slots: params.torrent.choker.upload_slots,
                rechoke_s: params.torrent.choker.rechoke_interval.as_secs_f64(),
                optimistic_s: params.torrent.choker.optimistic_interval.as_secs_f64(),
                rebalance_s: params.torrent.choker.rebalance_interval.as_secs_f64(),
                max_unchokers: params.torrent.max_unchokers,
                announce_s: params.announce_interval.as_secs_f64(),
                max_peers: params.max_peers,
                latency_ms: params.latency.as_secs_f64() * 1e3,
                origin_spread: params.origin_spread,
                tcp_headers: params.tcp_headers,
            },
            seed: params.seed,
            completed: done.len(),
            departed: outcome.departed,
            incomplete,
            p50_s: p50,
            p99_s: p99,
            max_s: max,
            bound_s: plan.bound_s,
            client_server_s: plan.client_server_s,
            ratio_p50: p50 / plan.bound_s,
            ratio_max: max / plan.bound_s,
            milestones,
            origin_egress_f: outcome.origin_bytes as f64 / f as f64,
            wasted_nf: outcome.wasted as f64 / nf,
            virtual_s: outcome.end_s,
            events: outcome.events,
            wall_s,
            events_per_s: outcome.events as f64 / wall_s.max(1e-9),
            messages: outcome.messages,
        }
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let t = &self.tunables;
        let rows: Vec<(&str, String)> = vec![
            ("scenario", self.scenario.to_string()),
            (
                "agents / origins",
                format!("{} / {}", self.agents, self.origins),
            ),
            (
                "F (blobs)",
                format!("{} MiB ({})", self.f_bytes >> 20, self.blobs),
            ),
            ("piece", format!("{} KiB", self.piece_bytes >> 10)),
            (
                "tunables",
                format!(
                    "block {} KiB, pipeline {}, K {}, slots {}, rechoke {} s, optimistic {} s, rebalance {} s, unchokers {}, announce {} s, peers {}, latency {} ms, origin spread {}, TCP headers {}",
                    t.block_bytes >> 10,
                    t.pipeline,
                    t.handout,
                    t.unchoke_slots,
                    t.rechoke_s,
                    t.optimistic_s,
                    t.rebalance_s,
                    t.max_unchokers,
                    t.announce_s,
                    t.max_peers,
                    t.latency_ms,
                    t.origin_spread,
                    t.tcp_headers
                ),
            ),
            ("seed", self.seed.to_string()),
            (
                "completed / departed / incomplete",
                format!(
                    "{} / {} / {}",
                    self.completed, self.departed, self.incomplete
                ),
            ),
            (
                "completion p50 / p99 / max",
                format!(
                    "{:.2} / {:.2} / {:.2} s",
                    self.p50_s, self.p99_s, self.max_s
                ),
            ),
            (
                "lower bound / client-server",
                format!("{:.2} s / {:.2} s", self.bound_s, self.client_server_s),
            ),
            (
                "ratio to bound p50 / max",
                format!("{:.3} / {:.3}", self.ratio_p50, self.ratio_max),
            ),
            (
                "median / slowest 1%: first piece, half, all",
                format!(
                    "{:.3} / {:.3} s, {:.2} / {:.2} s, {:.2} / {:.2} s",
                    self.milestones.first_piece_s[0],
                    self.milestones.first_piece_s[1],
                    self.milestones.half_s[0],
                    self.milestones.half_s[1],
                    self.milestones.complete_s[0],
                    self.milestones.complete_s[1],
                ),
            ),
            ("origin egress", format!("{:.3} F", self.origin_egress_f)),
            ("wasted", format!("{:.4} N F", self.wasted_nf)),
            ("virtual time", format!("{:.2} s", self.virtual_s)),
            (
                "events / wall / rate",
                format!(
                    "{} / {:.2} s / {:.0} per s",
                    self.events, self.wall_s, self.events_per_s
                ),
            ),
        ];
        let m = &self.messages;
        let mut rows = rows;
        rows.push((
            "messages have / request / piece / other",
            format!("{} / {} / {} / {}", m.have, m.request, m.piece, m.other),
        ));
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}

/// Milestones of the median agent and the mean of the slowest 1% of
/// completed agents (at least one), NaN when none completed.
fn start_up(outcome: &Outcome) -> Milestones {
    let median = |v: &[Option<f64>]| percentile(&sorted(v), 0.5);
    let mut done: Vec<usize> = (0..outcome.completion.len())
        .filter(|&i| outcome.completion[i].is_some())
        .collect();
    let at = |i: usize| outcome.completion[i].unwrap_or(f64::NAN);
    done.sort_by(|&a, &b| at(b).total_cmp(&at(a)));
    let slowest = &done[..done.len().div_ceil(100)];
    let mean = |v: &[Option<f64>]| {
        let sum: f64 = slowest.iter().map(|&i| v[i].unwrap_or(f64::NAN)).sum();
        sum / slowest.len() as f64
    };
    Milestones {
        first_piece_s: [median(&outcome.first_piece), mean(&outcome.first_piece)],
        half_s: [median(&outcome.half), mean(&outcome.half)],
        complete_s: [median(&outcome.completion), mean(&outcome.completion)],
    }
}

/// The values present, ascending.
fn sorted(values: &[Option<f64>]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().flatten().copied().collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Nearest-rank percentile of sorted values; NaN when empty.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
