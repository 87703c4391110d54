//! The flow-level network: each host has an upload and a download capacity,
//! and every busy pipe (one direction of one connection, sending a block) is
//! a flow whose rate is a fair share of both ends.
//!
//! Rates are a one-pass approximation of max-min fairness, cheap enough to
//! recompute on every flow start and stop with 10,000 hosts:
//! 1. each receiver offers every incoming flow an equal share of its
//!    download, `down(r) / flows into r`;
//! 2. each sender water-fills its upload over its flows, each capped by the
//!    receiver's offer: flows to a busy receiver take less and the sender's
//!    leftover goes to its other flows.
//!
//! The result is feasible at both ends (no host sends or receives more than
//! its capacity) and exact in the cases that dominate a swarm (one
//! bottleneck per flow). What it does not do: a receiver whose offer one
//! sender cannot use does not hand the leftover to its other senders, so a
//! receiver fed partly by slow peers may be under-used. A start or stop of
//! flow (s -> r) changes the offer of `r` and the share of `s`: only `s` and
//! the senders into `r` are re-filled, O(their flows).
//!
//! A pipe that goes on to its next block without idling keeps its flow, so
//! back-to-back blocks (the normal case with pipelined requests) cost no
//! recomputation.

use crate::clock::SimTime;

/// Index of a pipe: `2 * connection + direction`.
pub type PipeId = u32;

/// A flow whose finish time changed: schedule `FlowDone` at `at` with
/// `version`; earlier versions are stale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reschedule {
    /// The pipe.
    pub pipe: PipeId,
    /// When its current block will be fully sent at the new rate.
    pub at: SimTime,
    /// The flow's version after the change.
    pub version: u32,
}

#[derive(Debug, Clone)]
struct Links {
    up: f64,
    down: f64,
    /// Pipes this host is sending on.
    up_flows: Vec<PipeId>,
    /// Pipes this host is receiving on.
    down_flows: Vec<PipeId>,
}

#[derive(Debug, Clone)]
struct Flow {
    sender: u32,
    receiver: u32,
    active: bool,
    /// Bytes per second while active.
    rate: f64,
    /// Bytes of the current block still to send, as of `updated`.
    remaining: f64,
    updated: SimTime,
    version: u32,
}

/// Host capacities and active flows.
#[derive(Debug, Default)]
pub struct Network {
    hosts: Vec<Links>,
    flows: Vec<Flow>,
    /// Reused by the water-fill: (cap, flow) pairs.
    scratch: Vec<(f64, PipeId)>,
    senders: Vec<u32>,
}

impl Network {
    /// Adds a host with capacities in bytes per second (both > 0); returns
    /// its index, which must match the simulator's host index.
    pub fn add_host(&mut self, up: f64, down: f64) -> u32 {
        self.hosts.push(Links {
            up,
            down,
            up_flows: Vec::new(),
            down_flows: Vec::new(),
        });
        (self.hosts.len() - 1) as u32
    }

    /// Adds an idle pipe from `sender` to `receiver`; returns its id, which
    /// is `2 * connection + direction` when pipes are added in that order.
    pub fn add_pipe(&mut self, sender: u32, receiver: u32) -> PipeId {
        self.flows.push(Flow {
            sender,
            receiver,
            active: false,
            rate: 0.0,
            remaining: 0.0,
            updated: SimTime::ZERO,
            version: 0,
        });
        (self.flows.len() - 1) as PipeId
    }

    /// Starts sending a block of `bytes` on `pipe`. An idle pipe becomes a
    /// flow (rates around it are recomputed); a busy one keeps its rate.
    /// Every flow whose finish time changed is pushed to `out`.
    pub fn send_block(
        &mut self,
        pipe: PipeId,
        bytes: u64,
        now: SimTime,
        out: &mut Vec<Reschedule>,
    ) {
        let Some(flow) = self.flows.get_mut(pipe as usize) else {
            return;
        };
        flow.remaining = bytes as f64;
        flow.updated = now;
        if flow.active {
            out.push(reschedule(pipe, flow, now));
            return;
        }
        flow.active = true;
        let (s, r) = (flow.sender, flow.receiver);
        self.hosts[s as usize].up_flows.push(pipe);
        self.hosts[r as usize].down_flows.push(pipe);
        self.recompute(s, r, now, Some(pipe), out);
    }

    /// The block on `pipe` is fully sent (its `FlowDone` fired). The flow
    /// stays until [`Network::idle`] or the next [`Network::send_block`].
    pub fn block_sent(&mut self, pipe: PipeId, now: SimTime) {
        if let Some(flow) = self.flows.get_mut(pipe as usize) {
            flow.remaining = 0.0;
            flow.updated = now;
            flow.version = flow.version.wrapping_add(1);
        }
    }

    /// `pipe` has nothing more to send (or its connection closed): its flow
    /// ends and the rates around it are recomputed.
    pub fn idle(&mut self, pipe: PipeId, now: SimTime, out: &mut Vec<Reschedule>) {
        let Some(flow) = self.flows.get_mut(pipe as usize) else {
            return;
        };
        if !flow.active {
            return;
        }
        flow.active = false;
        flow.remaining = 0.0;
        flow.version = flow.version.wrapping_add(1);
        let (s, r) = (flow.sender, flow.receiver);
        remove(&mut self.hosts[s as usize].up_flows, pipe);
        remove(&mut self.hosts[r as usize].down_flows, pipe);
        self.recompute(s, r, now, None, out);
    }

    /// True if `version` is the current one of `pipe`'s block.
    pub fn is_current(&self, pipe: PipeId, version: u32) -> bool {
        self.flows
            .get(pipe as usize)
            .is_some_and(|f| f.active && f.version == version)
    }

    /// Current rate of `pipe` in bytes per second (0 when idle).
    pub fn rate(&self, pipe: PipeId) -> f64 {
        self.flows
            .get(pipe as usize)
            .filter(|f| f.active)
            .map_or(0.0, |f| f.rate)
    }

    /// Re-fills `s` and every sender into `r`; `fresh` is a flow that must be
    /// rescheduled even if its rate happens to equal the old one.
    fn recompute(
        &mut self,
        s: u32,
        r: u32,
        now: SimTime,
        fresh: Option<PipeId>,
        out: &mut Vec<Reschedule>,
    ) {
        let mut senders = std::mem::take(&mut self.senders);
        senders.clear();
        senders.push(s);
        for &p in &self.hosts[r as usize].down_flows {
            let x = self.flows[p as usize].sender;
            if !senders.contains(&x) {
                senders.push(x);
            }
        }
        for &x in &senders {
            self.refill(x, now, fresh, out);
        }
        self.senders = senders;
    }

    /// Water-fills the upload of `sender` over its flows, each capped by its
    /// receiver's equal share, and applies the new rates.
    fn refill(
        &mut self,
        sender: u32,
        now: SimTime,
        fresh: Option<PipeId>,
        out: &mut Vec<Reschedule>,
    ) {
        let mut caps = std::mem::take(&mut self.scratch);
        caps.clear();
        let links = &self.hosts[sender as usize];
        for &p in &links.up_flows {
            let receiver = &self.hosts[self.flows[p as usize].receiver as usize];
            let offer = receiver.down / receiver.down_flows.len().max(1) as f64;
            caps.push((offer, p));
        }
        caps.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut left = links.up;
        let mut count = caps.len();
        for &(cap, p) in &caps {
            let rate = cap.min(left / count as f64);
            left -= rate;
            count -= 1;
            let flow = &mut self.flows[p as usize];
            let changed = (flow.rate - rate).abs() > rate * 1e-12;
            if changed || fresh == Some(p) {
                if flow.remaining > 0.0 {
                    let elapsed = (now.0 - flow.updated.0.min(now.0)) as f64 / 1e9;
                    flow.remaining = (flow.remaining - flow.rate * elapsed).max(0.0);
                }
                flow.updated = now;
                flow.rate = rate;
                if flow.remaining > 0.0 || fresh == Some(p) {
                    out.push(reschedule(p, flow, now));
                }
            }
        }
        self.scratch = caps;
    }
}

/// Bumps the flow's version and computes its new finish time.
fn reschedule(pipe: PipeId, flow: &mut Flow, now: SimTime) -> Reschedule {
    flow.version = flow.version.wrapping_add(1);
    let secs = if flow.rate > 0.0 {
        flow.remaining / flow.rate
    } else {
        f64::MAX / 4.0
    };
    Reschedule {
        pipe,
        at: now.after_secs(secs.min(1e9)),
        version: flow.version,
    }
}

fn remove(list: &mut Vec<PipeId>, pipe: PipeId) {
    if let Some(i) = list.iter().position(|&p| p == pipe) {
        list.swap_remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(t: SimTime) -> f64 {
        t.as_secs_f64()
    }

    /// The latest reschedule of `pipe` in `out`.
    fn finish(out: &[Reschedule], pipe: PipeId) -> f64 {
        secs(out.iter().rev().find(|r| r.pipe == pipe).unwrap().at)
    }

    #[test]
    fn one_flow_runs_at_the_slower_end() {
        let mut net = Network::default();
        let s = net.add_host(10.0, 10.0);
        let r = net.add_host(10.0, 5.0);
        let p = net.add_pipe(s, r);
        let mut out = Vec::new();
        net.send_block(p, 100, SimTime::ZERO, &mut out);
        assert_eq!(net.rate(p), 5.0);
        assert_eq!(finish(&out, p), 20.0);
    }

    #[test]
    fn sender_leftover_goes_to_its_other_flows() {
        // Upload 10 to a receiver that can take 3 and one that can take 100:
        // max-min gives 3 and 7.
        let mut net = Network::default();
        let s = net.add_host(10.0, 10.0);
        let a = net.add_host(10.0, 3.0);
        let b = net.add_host(10.0, 100.0);
        let (pa, pb) = (net.add_pipe(s, a), net.add_pipe(s, b));
        let mut out = Vec::new();
        net.send_block(pa, 1000, SimTime::ZERO, &mut out);
        net.send_block(pb, 1000, SimTime::ZERO, &mut out);
        assert_eq!((net.rate(pa), net.rate(pb)), (3.0, 7.0));
    }

    #[test]
    fn receiver_download_is_split_among_senders() {
        let mut net = Network::default();
        let s1 = net.add_host(10.0, 10.0);
        let s2 = net.add_host(10.0, 10.0);
        let r = net.add_host(10.0, 10.0);
        let (p1, p2) = (net.add_pipe(s1, r), net.add_pipe(s2, r));
        let mut out = Vec::new();
        net.send_block(p1, 100, SimTime::ZERO, &mut out);
        assert_eq!(net.rate(p1), 10.0);
        net.send_block(p2, 100, SimTime::ZERO, &mut out);
        assert_eq!((net.rate(p1), net.rate(p2)), (5.0, 5.0));
    }

    #[test]
    fn a_flow_joining_midway_slows_the_first_by_hand() {
        // Sender upload 10 B/s. Block A of 100 B starts at 0 alone (10 B/s);
        // at 5 s block B of 100 B starts: both get 5 B/s. A has 50 B left,
        // so it ends at 15 s; then B, with 50 B left, runs alone at 10 B/s
        // and ends at 15 + 5 = 20 s.
        let mut net = Network::default();
        let s = net.add_host(10.0, 10.0);
        let a = net.add_host(100.0, 100.0);
        let b = net.add_host(100.0, 100.0);
        let (pa, pb) = (net.add_pipe(s, a), net.add_pipe(s, b));
        let mut out = Vec::new();
        net.send_block(pa, 100, SimTime::ZERO, &mut out);
        assert_eq!(finish(&out, pa), 10.0);
        out.clear();
        net.send_block(pb, 100, SimTime::from_secs_f64(5.0), &mut out);
        assert_eq!(finish(&out, pa), 15.0);
        assert_eq!(finish(&out, pb), 25.0);
        let va = out.iter().rev().find(|r| r.pipe == pa).unwrap().version;
        assert!(net.is_current(pa, va));
        out.clear();
        let t15 = SimTime::from_secs_f64(15.0);
        net.block_sent(pa, t15);
        assert!(!net.is_current(pa, va), "a sent block's event is spent");
        net.idle(pa, t15, &mut out);
        assert_eq!(net.rate(pb), 10.0);
        assert_eq!(finish(&out, pb), 20.0);
    }

    #[test]
    fn capacities_are_never_exceeded() {
        // Three senders into two receivers, crossed, with uneven capacities.
        let mut net = Network::default();
        let s: Vec<u32> = [12.0, 3.0, 8.0]
            .iter()
            .map(|&u| net.add_host(u, 1.0))
            .collect();
        let r: Vec<u32> = [9.0, 4.0].iter().map(|&d| net.add_host(1.0, d)).collect();
        let mut pipes = Vec::new();
        let mut out = Vec::new();
        for &x in &s {
            for &y in &r {
                let p = net.add_pipe(x, y);
                net.send_block(p, 1 << 20, SimTime::ZERO, &mut out);
                pipes.push((x, y, p));
            }
        }
        for host in s.iter().chain(&r) {
            let up: f64 = pipes
                .iter()
                .filter(|f| f.0 == *host)
                .map(|f| net.rate(f.2))
                .sum();
            let down: f64 = pipes
                .iter()
                .filter(|f| f.1 == *host)
                .map(|f| net.rate(f.2))
                .sum();
            assert!(up <= net.hosts[*host as usize].up + 1e-9);
            assert!(down <= net.hosts[*host as usize].down + 1e-9);
        }
        // Receivers offer 9/3 = 3 and 4/3 per flow. Sender 0 (12) and
        // sender 2 (8) take both offers: 3 and 4/3. Sender 1 (3) fills 4/3
        // first, then the rest, 5/3, towards receiver 0.
        let rates: Vec<f64> = pipes.iter().map(|f| net.rate(f.2)).collect();
        let third = 1.0 / 3.0;
        let want = [3.0, 4.0 * third, 5.0 * third, 4.0 * third, 3.0, 4.0 * third];
        for (got, want) in rates.iter().zip(want) {
            assert!((got - want).abs() < 1e-9, "{rates:?}");
        }
    }
}
