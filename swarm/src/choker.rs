//! Who gets upload slots: BitTorrent choking, sans-IO.
//!
//! Uploading to everyone at once splits our bandwidth so thinly that no peer
//! finishes early; uploading to a few at a time gets whole pieces out fast so
//! that those peers can serve them onwards. [`Choker`] decides which
//! interested peers hold one of [`ChokerConfig::upload_slots`] regular slots,
//! plus one optimistic slot that rotates so that newcomers get a first piece
//! to trade with and faster peers can be discovered.
//!
//! Policy, per rechoke:
//! - Regular slots go to the interested peers with the best rate: while we
//!   download, the rate they send to us (tit-for-tat reciprocation, and
//!   snubbed peers are passed over); once we seed, the rate we send to them,
//!   so the fastest receivers fill first and start serving the rest of the
//!   swarm.
//! - The optimistic slot goes to a random choked interested peer, peers
//!   connected for less than one optimistic interval weighted three times, as
//!   in the BitTorrent spec. It rotates every
//!   [`ChokerConfig::optimistic_interval`]. An optimistic peer that earns a
//!   regular slot on its merits frees the optimistic slot for another peer.
//! - Uninterested peers are choked and hold no slot: they request nothing, so
//!   an unchoke would do nothing for them, and the torrent rechokes the moment
//!   one becomes interested while a slot is free (otherwise it waits for the
//!   next full rechoke like any other choked peer). This keeps "unchoked"
//!   equal to "holds a slot".
//! - Ties are broken first in favour of peers already unchoked (no choke /
//!   unchoke churn between equals), then by the injected RNG.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::peer_key::PeerKey;

/// Tuning of a [`Choker`]; the defaults suit a datacenter swarm.
#[derive(Debug, Clone)]
pub struct ChokerConfig {
    /// Regular upload slots, not counting the optimistic one. More slots
    /// spread bandwidth thinner. 4: an uploader (an origin above all) that
    /// serves few peers at a time completes pieces sooner, and a complete
    /// piece is what the rest of the swarm can share (simulator sweep,
    /// bench/sim/RESULTS.md: 8 against 4 slots at 1,000 agents x 256 MiB,
    /// p50 1.81 against 1.69 bounds, origin egress 3.65 F against 3.20 F).
    pub upload_slots: usize,
    /// How often regular slots are re-ranked by rate. Shorter reacts faster
    /// to changing rates but churns connections that just got going.
    pub rechoke_interval: Duration,
    /// How long an optimistic unchoke lasts, and how long a peer counts as new
    /// (weighted 3x in the optimistic draw).
    pub optimistic_interval: Duration,
    /// How long a peer may leave our requests unanswered while unchoking us
    /// before it counts as snubbing us; see [`ChokerConfig::is_snubbed`].
    pub snub_timeout: Duration,
    /// How often, between full rechokes, the slowest regular slot holder is
    /// checked for a saturated download; zero turns the check off. In a flash
    /// crowd slots are taken first come, first served and a full rechoke
    /// comes too late to matter, so some peers end up served by many
    /// uploaders and others by few; moving slots away from the saturated
    /// ones evens that out (simulator, bench/sim/RESULTS.md, 1,000 agents x
    /// 1 GiB with `max_unchokers`: p99 1.24 -> 1.15 bounds, slowest agent
    /// 1.36 -> 1.22). 1 s.
    pub rebalance_interval: Duration,
    /// A holder is saturated when we send to it at less than this fraction
    /// of the mean rate to the other holders: more uploaders share its
    /// download than ours. 0.75.
    pub rebalance_ratio: f64,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        Self {
            upload_slots: 4,
            rechoke_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
            snub_timeout: Duration::from_secs(60),
            rebalance_interval: Duration::from_secs(1),
            rebalance_ratio: 0.75,
        }
    }
}

impl ChokerConfig {
    /// Whether a peer should be passed to [`Choker::rechoke`] as snubbing us.
    /// `waiting_since` is when we last heard a block from it or, if later,
    /// when it unchoked us; `None` when it chokes us or we requested nothing,
    /// as such a peer owes us nothing.
    pub fn is_snubbed(&self, now: Instant, waiting_since: Option<Instant>) -> bool {
        waiting_since.is_some_and(|since| now.saturating_duration_since(since) >= self.snub_timeout)
    }
}

/// One connected peer as the torrent sees it at rechoke time.
#[derive(Debug, Clone)]
pub struct ChokeCandidate {
    /// The peer; keys are expected to be unique within one call.
    pub key: PeerKey,
    /// Whether the peer wants something we have; only these get slots.
    pub interested: bool,
    /// Bytes/s it sends us (e.g. a [`RateMeter`](crate::rate::RateMeter)),
    /// ranks peers while we download.
    pub rate_from_peer: u64,
    /// Bytes/s we send it, ranks peers while we seed.
    pub rate_to_peer: u64,
    /// Bytes/s we send it over the last two seconds or so: a saturated
    /// holder shows here long before in `rate_to_peer`.
    pub recent_rate_to_peer: u64,
    /// When the connection was established; newer than one optimistic
    /// interval weighs 3x in the optimistic draw.
    pub connected_at: Instant,
    /// Whether we currently unchoke it: the choker reports only changes.
    pub unchoked: bool,
    /// Whether it snubs us (see [`ChokerConfig::is_snubbed`]); snubbed peers
    /// get no regular slot while we download.
    pub snubbed: bool,
}

/// The choking state of one torrent: the rechoke timer and the optimistic
/// unchoke with its rotation timer.
///
/// Calling order: after [`new`](Self::new), call [`rechoke`](Self::rechoke)
/// once [`poll_timeout`](Self::poll_timeout) has passed, and also whenever a
/// peer holding a slot (unchoked) disconnects or loses interest, and whenever
/// a peer becomes interested while [`has_free_slot`](Self::has_free_slot);
/// apply the changes it returns (send choke/unchoke, set `unchoked`). A call
/// at or after the timeout re-ranks all regular slots; an earlier call only
/// fills free slots and replaces a departed optimistic peer, leaving existing
/// slots and the rotation timer alone.
///
/// Other events (a choked peer connecting or leaving, a peer becoming
/// interested while every slot is held) need no call: an early call would
/// keep every holder, so it could change nothing, yet it costs O(peers),
/// which an origin with thousands of connections would pay per message. The
/// one difference skipping makes: a holder that started snubbing us since
/// the last full rechoke keeps its slot until the next full rechoke (at most
/// `rechoke_interval`) instead of losing it at the next unrelated event.
#[derive(Debug, Clone)]
pub struct Choker {
    config: ChokerConfig,
    next_rechoke: Instant,
    /// The optimistic peer and its `connected_at`, which tells it apart from
    /// a later peer given the same reused key.
    optimistic: Option<(PeerKey, Instant)>,
    next_optimistic: Instant,
    /// When the next saturated-holder check is due.
    next_rebalance: Instant,
    /// Whether the last rechoke left two regular holders or more, without
    /// which there is nothing to compare: an idle seed sets no timer for it.
    rebalance_armed: bool,
}

impl Choker {
    /// A choker for a torrent starting at `now`; the first full rechoke is one
    /// rechoke interval away, event-driven calls fill slots before then.
    pub fn new(config: ChokerConfig, now: Instant) -> Self {
        Self {
            next_rechoke: after(now, config.rechoke_interval),
            next_optimistic: now,
            next_rebalance: after(now, config.rebalance_interval),
            rebalance_armed: false,
            optimistic: None,
            config,
        }
    }

    /// The configuration this choker runs with.
    pub fn config(&self) -> &ChokerConfig {
        &self.config
    }

    /// When [`rechoke`](Self::rechoke) must next be called: the next full
    /// rechoke or, if sooner, the end of the current optimistic unchoke or
    /// the next saturated-holder check.
    /// Always later than the `now` of the last `rechoke` (for non-zero
    /// intervals), so a driver never spins.
    pub fn poll_timeout(&self) -> Instant {
        let next = match self.optimistic {
            Some(_) => self.next_rechoke.min(self.next_optimistic),
            None => self.next_rechoke,
        };
        if self.rebalance_armed {
            next.min(self.next_rebalance)
        } else {
            next
        }
    }

    /// Whether a peer that just became interested could get a slot from an
    /// early [`rechoke`](Self::rechoke), with `unchoked` peers unchoked now:
    /// only while fewer than `upload_slots` + 1 (the optimistic slot) are.
    /// Otherwise the newcomer waits for the next full rechoke, as it would
    /// have anyway: an early call keeps current holders first.
    pub fn has_free_slot(&self, unchoked: usize) -> bool {
        unchoked <= self.config.upload_slots
    }

    /// The peer holding the optimistic slot, for status and tests.
    pub fn optimistic(&self) -> Option<PeerKey> {
        self.optimistic.map(|(key, _)| key)
    }

    /// Decides who is unchoked and returns only the changes against each
    /// candidate's `unchoked`, chokes first (`false`) so that slots are
    /// released before new ones are granted. `candidates` must list every
    /// connected peer; a peer absent from it is treated as gone.
    pub fn rechoke(
        &mut self,
        now: Instant,
        candidates: &[ChokeCandidate],
        seeding: bool,
        rng: &mut impl Rng,
    ) -> Vec<(PeerKey, bool)> {
        let full = now >= self.next_rechoke;
        if full {
            self.next_rechoke = after(now, self.config.rechoke_interval);
        }
        let rebalance = self.rebalance_armed && now >= self.next_rebalance;
        if rebalance || full || !self.rebalance_armed {
            self.next_rebalance = after(now, self.config.rebalance_interval);
        }
        let tiebreak: Vec<u64> = candidates.iter().map(|_| rng.random()).collect();
        let mut optimistic = self.optimistic.and_then(|(key, since)| {
            candidates
                .iter()
                .position(|c| c.key == key && c.connected_at == since && c.interested)
        });

        let demoted = if rebalance && !full {
            self.saturated_holder(candidates, optimistic)
        } else {
            None
        };
        let regular = self.regular_slots(candidates, seeding, full, optimistic, demoted, &tiebreak);
        self.rebalance_armed = !self.config.rebalance_interval.is_zero()
            && regular.iter().filter(|&&r| r).count() >= 2;
        if optimistic.is_some_and(|i| regular[i]) {
            // Earned a regular slot on its rate: the optimistic slot is free.
            optimistic = None;
        }
        if optimistic.is_none() || now >= self.next_optimistic {
            optimistic = self.draw_optimistic(now, candidates, &regular, optimistic, rng);
        }
        self.optimistic = optimistic.map(|i| (candidates[i].key, candidates[i].connected_at));

        let unchoke = |i: usize| regular[i] || optimistic == Some(i);
        let changes = candidates.iter().enumerate();
        let chokes = changes.clone().filter(|&(i, c)| c.unchoked && !unchoke(i));
        let unchokes = changes.filter(|&(i, c)| !c.unchoked && unchoke(i));
        chokes
            .map(|(_, c)| (c.key, false))
            .chain(unchokes.map(|(_, c)| (c.key, true)))
            .collect()
    }

    /// Marks the candidates that get a regular slot. A full rechoke ranks by
    /// rate; an event-driven one keeps current holders first and only fills
    /// free slots. The optimistic peer competes only in a full rechoke, the
    /// `demoted` holder in none.
    fn regular_slots(
        &self,
        candidates: &[ChokeCandidate],
        seeding: bool,
        full: bool,
        optimistic: Option<usize>,
        demoted: Option<usize>,
        tiebreak: &[u64],
    ) -> Vec<bool> {
        let rate = |c: &ChokeCandidate| {
            if seeding {
                c.rate_to_peer
            } else {
                c.rate_from_peer
            }
        };
        let mut ranked: Vec<usize> = (0..candidates.len())
            .filter(|&i| {
                let c = &candidates[i];
                c.interested
                    && (seeding || !c.snubbed)
                    && (full || optimistic != Some(i))
                    && demoted != Some(i)
            })
            .collect();
        // Only the set of the best `upload_slots` matters, not their order:
        // a selection is O(peers) where a sort was O(peers log peers), which
        // counts at an origin with thousands of connections. The index ends
        // the key so that it is unique and the chosen set is the one a stable
        // sort would have put first.
        let slots = self.config.upload_slots;
        if full {
            top(&mut ranked, slots, |i| {
                let c = &candidates[i];
                (Reverse(rate(c)), Reverse(c.unchoked), tiebreak[i], i)
            });
        } else {
            top(&mut ranked, slots, |i| {
                let c = &candidates[i];
                (Reverse(c.unchoked), Reverse(rate(c)), tiebreak[i], i)
            });
        }
        let mut regular = vec![false; candidates.len()];
        for &i in ranked.iter().take(self.config.upload_slots) {
            regular[i] = true;
        }
        regular
    }

    /// The regular holder we send to far slower than to the others, when a
    /// choked interested peer could use its slot instead: other uploaders
    /// saturate its download, so our upload is better spent on a peer that
    /// fewer of them serve. A holder that has not received anything yet is
    /// left alone: it may have been unchoked a moment ago.
    fn saturated_holder(
        &self,
        candidates: &[ChokeCandidate],
        optimistic: Option<usize>,
    ) -> Option<usize> {
        let holders: Vec<usize> = (0..candidates.len())
            .filter(|&i| {
                candidates[i].unchoked && candidates[i].interested && optimistic != Some(i)
            })
            .collect();
        let waiting = (0..candidates.len())
            .any(|i| !candidates[i].unchoked && candidates[i].interested && optimistic != Some(i));
        if holders.len() < 2 || !waiting {
            return None;
        }
        let slowest = *holders
            .iter()
            .filter(|&&i| candidates[i].recent_rate_to_peer > 0)
            .min_by_key(|&&i| candidates[i].recent_rate_to_peer)?;
        let others: u64 = holders
            .iter()
            .filter(|&&i| i != slowest)
            .map(|&i| candidates[i].recent_rate_to_peer)
            .sum();
        let mean = others as f64 / (holders.len() - 1) as f64;
        ((candidates[slowest].recent_rate_to_peer as f64) < self.config.rebalance_ratio * mean)
            .then_some(slowest)
    }

    /// Picks the next optimistic peer among interested peers without a
    /// regular slot, other than the current one, choked ones preferred, new
    /// ones weighted 3x. Keeps the current one if nobody else qualifies.
    /// Starts a fresh rotation period whenever it is called with a holder.
    fn draw_optimistic(
        &mut self,
        now: Instant,
        candidates: &[ChokeCandidate],
        regular: &[bool],
        current: Option<usize>,
        rng: &mut impl Rng,
    ) -> Option<usize> {
        let mut pool: Vec<usize> = (0..candidates.len())
            .filter(|&i| candidates[i].interested && !regular[i] && current != Some(i))
            .collect();
        if pool.iter().any(|&i| !candidates[i].unchoked) {
            pool.retain(|&i| !candidates[i].unchoked);
        }
        let weight = |i: usize| {
            let age = now.saturating_duration_since(candidates[i].connected_at);
            if age < self.config.optimistic_interval {
                3
            } else {
                1
            }
        };
        let total: u64 = pool.iter().map(|&i| weight(i)).sum();
        let chosen = if total == 0 {
            current
        } else {
            let mut ticket = rng.random_range(0..total);
            pool.into_iter().find(|&i| {
                let w = weight(i);
                let hit = ticket < w;
                ticket -= w.min(ticket);
                hit
            })
        };
        if chosen.is_some() {
            self.next_optimistic = after(now, self.config.optimistic_interval);
        }
        chosen
    }
}

/// Moves the `k` smallest items of `items` by `key` to its front, in no
/// particular order.
fn top<K: Ord>(items: &mut [usize], k: usize, key: impl Fn(usize) -> K) {
    if k > 0 && k < items.len() {
        items.select_nth_unstable_by_key(k - 1, |&i| key(i));
    }
}

/// `now + interval`, clamped so that absurd intervals cannot overflow.
fn after(now: Instant, interval: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    now.checked_add(interval)
        .or_else(|| now.checked_add(YEAR))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    /// A base instant with room before it for "connected long ago".
    fn start() -> Instant {
        Instant::now() + Duration::from_secs(3_600)
    }

    fn peer(key: usize, rate_from: u64, rate_to: u64, connected_at: Instant) -> ChokeCandidate {
        ChokeCandidate {
            key: PeerKey(key),
            interested: true,
            rate_from_peer: rate_from,
            rate_to_peer: rate_to,
            recent_rate_to_peer: rate_to,
            connected_at,
            unchoked: false,
            snubbed: false,
        }
    }

    fn config(slots: usize) -> ChokerConfig {
        ChokerConfig {
            upload_slots: slots,
            ..ChokerConfig::default()
        }
    }

    /// Applies changes as the torrent would, checking each is a real change.
    fn apply(peers: &mut [ChokeCandidate], changes: &[(PeerKey, bool)]) {
        for &(key, unchoke) in changes {
            let p = peers.iter_mut().find(|p| p.key == key).expect("known peer");
            assert_ne!(p.unchoked, unchoke, "{key:?} reported without a change");
            p.unchoked = unchoke;
        }
    }

    /// One rechoke with its changes applied; returns the changes.
    fn step(
        choker: &mut Choker,
        now: Instant,
        peers: &mut [ChokeCandidate],
        seeding: bool,
        rng: &mut SmallRng,
    ) -> Vec<(PeerKey, bool)> {
        let changes = choker.rechoke(now, peers, seeding, rng);
        apply(peers, &changes);
        changes
    }

    fn unchoked(peers: &[ChokeCandidate]) -> BTreeSet<usize> {
        peers
            .iter()
            .filter(|p| p.unchoked)
            .map(|p| p.key.0)
            .collect()
    }

    /// Twelve old peers: rate from peer i is i, rate to peer i is 100 - i.
    fn twelve(t0: Instant) -> Vec<ChokeCandidate> {
        (0..12)
            .map(|i| peer(i, i as u64, 100 - i as u64, t0 - 60 * SEC))
            .collect()
    }

    /// `n` old peers, interested, that nothing has been sent to or from.
    fn idle(n: usize, t0: Instant) -> Vec<ChokeCandidate> {
        (0..n).map(|i| peer(i, 0, 0, t0 - 60 * SEC)).collect()
    }

    fn regulars(choker: &Choker, peers: &[ChokeCandidate]) -> BTreeSet<usize> {
        let mut set = unchoked(peers);
        if let Some(o) = choker.optimistic() {
            set.remove(&o.0);
        }
        set
    }

    #[test]
    fn leeching_ranks_by_rate_from_peer_seeding_by_rate_to_peer() {
        for (seeding, expected) in [(false, [9, 10, 11]), (true, [0, 1, 2])] {
            let t0 = start();
            let mut rng = SmallRng::seed_from_u64(1);
            let mut choker = Choker::new(config(3), t0);
            let mut peers = twelve(t0);
            let now = choker.poll_timeout();
            step(&mut choker, now, &mut peers, seeding, &mut rng);
            assert_eq!(regulars(&choker, &peers), BTreeSet::from(expected));
            let optimistic = choker.optimistic().expect("an optimistic peer");
            assert!(!expected.contains(&optimistic.0));
            assert_eq!(unchoked(&peers).len(), 4);
        }
    }

    #[test]
    fn uninterested_peers_hold_no_slot() {
        let t0 = start();
        let mut rng = SmallRng::seed_from_u64(2);
        let mut choker = Choker::new(config(2), t0);
        let mut peers = twelve(t0);
        for p in &mut peers[6..] {
            p.interested = false;
            p.unchoked = true;
        }
        step(&mut choker, t0, &mut peers, false, &mut rng);
        let set = unchoked(&peers);
        assert_eq!(set.len(), 3);
        assert!(set.iter().all(|&k| k < 6));
        assert!(set.contains(&4) && set.contains(&5));
    }

    #[test]
    fn snubbed_peers_lose_regular_slots_only_while_leeching() {
        let t0 = start();
        let cfg = config(2);
        assert!(cfg.is_snubbed(t0 + 60 * SEC, Some(t0)));
        assert!(!cfg.is_snubbed(t0 + 59 * SEC, Some(t0)));
        assert!(!cfg.is_snubbed(t0 + 600 * SEC, None));
        for (seeding, fastest_kept) in [(false, false), (true, true)] {
            let mut rng = SmallRng::seed_from_u64(3);
            let mut choker = Choker::new(cfg.clone(), t0);
            let mut peers = twelve(t0);
            peers[11].rate_to_peer = 1_000;
            peers[11].snubbed = true;
            step(&mut choker, t0, &mut peers, seeding, &mut rng);
            assert_eq!(regulars(&choker, &peers).contains(&11), fastest_kept);
        }
    }

    #[test]
    fn a_saturated_holder_loses_its_slot_at_the_next_check() {
        let t0 = start();
        let mut rng = SmallRng::seed_from_u64(7);
        let mut choker = Choker::new(config(3), t0);
        let mut peers = idle(6, t0);
        step(&mut choker, t0, &mut peers, false, &mut rng);
        let holders = regulars(&choker, &peers);
        assert_eq!(holders.len(), 3);
        assert_eq!(choker.poll_timeout(), t0 + SEC, "armed: holders to compare");
        let slow = *holders.first().expect("a holder");
        for p in peers.iter_mut().filter(|p| holders.contains(&p.key.0)) {
            p.recent_rate_to_peer = if p.key.0 == slow { 80 } else { 100 };
        }
        assert!(
            step(&mut choker, t0 + SEC, &mut peers, false, &mut rng).is_empty(),
            "80% of the others' rate is not saturated"
        );
        peers[slow].recent_rate_to_peer = 70;
        assert!(
            step(&mut choker, t0 + SEC + SEC / 2, &mut peers, false, &mut rng).is_empty(),
            "no check before the interval"
        );
        let changes = step(&mut choker, t0 + 2 * SEC, &mut peers, false, &mut rng);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0], (PeerKey(slow), false));
        let now_held = regulars(&choker, &peers);
        assert_eq!(now_held.len(), 3);
        assert!(!now_held.contains(&slow));
    }

    #[test]
    fn an_idle_choker_sets_no_rebalance_timer() {
        let t0 = start();
        let mut rng = SmallRng::seed_from_u64(8);
        let mut choker = Choker::new(config(3), t0);
        let mut peers = idle(6, t0);
        for p in &mut peers {
            p.interested = false;
        }
        step(&mut choker, t0, &mut peers, true, &mut rng);
        assert_eq!(
            choker.poll_timeout(),
            t0 + 10 * SEC,
            "only the full rechoke"
        );
    }

    #[test]
    fn optimistic_rotates_after_its_interval_to_a_choked_peer() {
        let t0 = start();
        let mut rng = SmallRng::seed_from_u64(4);
        let mut choker = Choker::new(config(3), t0);
        let mut peers = twelve(t0);
        step(&mut choker, t0, &mut peers, false, &mut rng);
        let mut now = t0;
        let mut optimistic = choker.optimistic().expect("an optimistic peer");
        let mut rotated_at = t0;
        for _ in 0..12 {
            let choked_before = BTreeSet::from_iter((0..12).filter(|k| !peers[*k].unchoked));
            let due = choker.poll_timeout();
            assert!(due > now, "timeout must move forward");
            assert!(due <= now + 10 * SEC);
            now = due;
            step(&mut choker, now, &mut peers, false, &mut rng);
            let current = choker.optimistic().expect("an optimistic peer");
            if now - rotated_at >= 30 * SEC {
                assert_ne!(current, optimistic);
                assert!(choked_before.contains(&current.0));
                (optimistic, rotated_at) = (current, now);
            } else {
                assert_eq!(current, optimistic);
            }
        }
    }

    #[test]
    fn events_fill_free_slots_without_resetting_timers() {
        let t0 = start();
        let mut rng = SmallRng::seed_from_u64(5);
        // The saturated-holder check has a timer of its own, tested above.
        let no_rebalance = ChokerConfig {
            rebalance_interval: Duration::ZERO,
            ..config(3)
        };
        let mut choker = Choker::new(no_rebalance, t0);
        let mut peers = twelve(t0);
        step(&mut choker, t0, &mut peers, false, &mut rng);
        let (optimistic, timeout) = (choker.optimistic(), choker.poll_timeout());
        let before = regulars(&choker, &peers);

        // A regular leaves: its slot goes to the best remaining choked peer.
        let leaver = *before.last().expect("a regular");
        peers.retain(|p| p.key.0 != leaver);
        let changes = choker.rechoke(t0 + SEC, &peers, false, &mut rng);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].1);
        apply(&mut peers, &changes);
        assert_eq!(regulars(&choker, &peers).len(), 3);

        // A faster newcomer waits for the next full rechoke.
        peers.push(peer(50, 1_000, 0, t0 + 2 * SEC));
        let changes = choker.rechoke(t0 + 2 * SEC, &peers, false, &mut rng);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(
            (choker.optimistic(), choker.poll_timeout()),
            (optimistic, timeout)
        );

        // The optimistic peer leaves: a fresh one gets a full period.
        let gone = optimistic.expect("an optimistic peer");
        peers.retain(|p| p.key != gone);
        let now = t0 + 3 * SEC;
        step(&mut choker, now, &mut peers, false, &mut rng);
        assert!(choker.optimistic().is_some_and(|o| o != gone));
        assert_eq!(choker.poll_timeout(), timeout);
        assert_eq!(unchoked(&peers).len(), 4);
    }

    /// The claim behind `has_free_slot`: with every slot held, an early
    /// rechoke after a peer becomes interested changes nothing, whatever its
    /// rate, so a torrent may skip it.
    #[test]
    fn with_no_free_slot_a_newly_interested_peer_changes_nothing() {
        let t0 = start();
        let mut rng = SmallRng::seed_from_u64(12);
        let mut world = SmallRng::seed_from_u64(13);
        let mut checked = 0;
        for round in 0..200 {
            let mut choker = Choker::new(config(3), t0);
            let mut peers = twelve(t0);
            for p in &mut peers {
                p.interested = world.random_ratio(2, 3);
            }
            let now = choker.poll_timeout();
            step(&mut choker, now, &mut peers, world.random(), &mut rng);
            let held = unchoked(&peers).len();
            let Some(newcomer) = peers.iter().position(|p| !p.interested) else {
                continue;
            };
            peers[newcomer].interested = true;
            peers[newcomer].rate_from_peer = 1_000;
            peers[newcomer].rate_to_peer = 1_000;
            let later = now + SEC;
            if choker.has_free_slot(held) {
                continue;
            }
            let changes = choker.rechoke(later, &peers, round % 2 == 0, &mut rng);
            assert!(changes.is_empty(), "round {round}: {changes:?}");
            checked += 1;
        }
        assert!(checked > 100, "only {checked} rounds had every slot held");
    }

    #[test]
    fn a_reused_key_does_not_inherit_the_optimistic_slot() {
        let t0 = start();
        let mut rng = SmallRng::seed_from_u64(10);
        let mut choker = Choker::new(config(0), t0);
        let mut peers = vec![peer(0, 0, 0, t0), peer(1, 0, 0, t0)];
        step(&mut choker, t0, &mut peers, false, &mut rng);
        let holder = choker.optimistic().expect("an optimistic peer");
        let slot = peers.iter_mut().find(|p| p.key == holder).expect("holder");
        *slot = peer(holder.0, 0, 0, t0 + SEC);
        let changes = step(&mut choker, t0 + SEC, &mut peers, false, &mut rng);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(unchoked(&peers).len(), 1);
    }

    #[test]
    fn never_more_than_slots_plus_one_unchoked() {
        let t0 = start();
        let mut rng = SmallRng::seed_from_u64(6);
        let mut world = SmallRng::seed_from_u64(7);
        let mut choker = Choker::new(config(4), t0);
        let mut peers: Vec<ChokeCandidate> = Vec::new();
        let mut now = t0;
        for id in 0..2_000 {
            now += Duration::from_millis(world.random_range(0..4_000));
            match world.random_range(0..4) {
                0 if peers.len() < 30 => peers.push(peer(id, 0, 0, now)),
                1 if !peers.is_empty() => {
                    peers.swap_remove(world.random_range(0..peers.len()));
                }
                _ => {}
            }
            for p in &mut peers {
                p.interested = world.random_ratio(4, 5);
                p.rate_from_peer = world.random_range(0..5);
                p.rate_to_peer = world.random_range(0..5);
                p.snubbed = world.random_ratio(1, 10);
            }
            step(&mut choker, now, &mut peers, world.random(), &mut rng);
            assert!(peers.iter().all(|p| p.interested || !p.unchoked));
            assert!(unchoked(&peers).len() <= 5);
        }
    }

    #[test]
    fn ties_are_broken_by_the_rng() {
        let t0 = start();
        let outcomes: BTreeSet<BTreeSet<usize>> = (0..20)
            .map(|seed| {
                let mut rng = SmallRng::seed_from_u64(seed);
                let mut choker = Choker::new(config(2), t0);
                let mut peers: Vec<_> = (0..10).map(|i| peer(i, 7, 7, t0)).collect();
                step(&mut choker, t0, &mut peers, false, &mut rng);
                regulars(&choker, &peers)
            })
            .collect();
        assert!(outcomes.len() > 5, "{outcomes:?}");
    }

    #[test]
    fn same_seed_same_decisions() {
        let run = |seed: u64| {
            let t0 = start();
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut choker = Choker::new(config(3), t0);
            let mut peers: Vec<_> = (0..15).map(|i| peer(i, (i % 4) as u64, 0, t0)).collect();
            let mut log = Vec::new();
            for round in 0..10 {
                let changes = choker.rechoke(t0 + round * 10 * SEC, &peers, false, &mut rng);
                apply(&mut peers, &changes);
                log.push(changes);
            }
            log
        };
        assert_eq!(run(8), run(8));
        assert_ne!(run(8), run(9));
    }

    #[test]
    fn new_peers_are_three_times_as_likely_to_be_optimistic() {
        let t0 = start();
        let draws = 2_000;
        let new_wins = (0..draws)
            .filter(|&seed| {
                let mut rng = SmallRng::seed_from_u64(seed);
                let mut choker = Choker::new(config(0), t0);
                let mut peers: Vec<_> = (0..3).map(|i| peer(i, 0, 0, t0 - 60 * SEC)).collect();
                peers.push(peer(3, 0, 0, t0 - SEC));
                choker.rechoke(t0, &peers, false, &mut rng);
                choker.optimistic() == Some(PeerKey(3))
            })
            .count();
        // Weight 3 of 6: about half, where a uniform draw would give a quarter.
        assert!((850..1_150).contains(&new_wins), "{new_wins}");
    }
}
