//! Sans-IO transfer-rate meters.
//!
//! The choker ranks peers by how fast they send to us (or we to them), and
//! status output reports throughput. Both need "bytes per second lately",
//! measured on the caller's clock so that the simulator can run the same code
//! in virtual time: [`RateMeter`] never reads the clock, every call takes
//! `now`.
//!
//! # Why a bucketed sliding window and not an EWMA
//!
//! The window is cut into [`BUCKETS`] fixed buckets kept in an inline ring
//! with a running sum (no allocation, `O(1)` per record and, while the
//! window has not moved past the newest record, per rate query; at most
//! `O(BUCKETS)` otherwise). Compared
//! with an exponentially weighted moving average it:
//! - falls to exactly zero once a peer has been silent for a whole window,
//!   which snub detection and the choker's ranking rely on (an EWMA only
//!   decays towards zero, so a stalled peer keeps outranking a slow one);
//! - needs no floating point `exp()` to decay over irregular gaps between
//!   records;
//! - has one obvious meaning ("bytes in the last `window`, per second"),
//!   which makes tests and the simulator's expectations exact.
//!
//! The price is a step of at most one bucket (a tenth of the window) in how
//! fast old traffic leaves the average, which is irrelevant at a rechoke
//! period of seconds.

use std::time::{Duration, Instant};

/// How many buckets a window is cut into; the window's resolution is
/// `window / BUCKETS`.
pub const BUCKETS: usize = 10;

/// The window of [`RateMeter::default`]: as long as the choker's default
/// rechoke interval, so each rechoke ranks peers by what they did in exactly
/// the last round.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// Bytes per second over a sliding window, on a clock supplied by the caller.
///
/// Keep one per direction per peer (and one per torrent for totals). Call
/// [`record`](Self::record) whenever bytes move (it is cheap enough to call per
/// block) and [`rate`](Self::rate) when deciding or reporting. Time starts at
/// the first `record`: before the meter has seen a full window, the rate is
/// averaged over the time since that first record, so a fresh fast peer is not
/// reported at a tenth of its speed.
///
/// Instants earlier than one already seen are tolerated: their bytes land in
/// the bucket they belong to if it is still inside the window, and otherwise
/// only count towards [`total`](Self::total). Arithmetic saturates, so no
/// input panics.
#[derive(Debug, Clone)]
pub struct RateMeter {
    /// Width of one bucket in nanoseconds, at least 1.
    bucket_nanos: u64,
    /// Bytes per bucket; bucket with absolute index `i` lives at `i % BUCKETS`.
    buckets: [u64; BUCKETS],
    /// The sum of `buckets`, kept up to date so that a rate query, which the
    /// choker makes for every peer at every rechoke, need not add them up.
    sum: u128,
    /// The instant of the first record: absolute bucket indices count from it.
    origin: Option<Instant>,
    /// Absolute index of the newest bucket in `buckets`; buckets
    /// `head - BUCKETS + 1 ..= head` are live, later ones are implicitly empty.
    head: u64,
    /// Every byte ever recorded, saturating.
    total: u64,
}

impl Default for RateMeter {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

impl RateMeter {
    /// A meter averaging over the last `window`. Shorter windows react faster
    /// and jitter more; a zero window is treated as the shortest possible one
    /// rather than rejected.
    pub fn new(window: Duration) -> Self {
        let window_nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        Self {
            bucket_nanos: (window_nanos / BUCKETS as u64).max(1),
            buckets: [0; BUCKETS],
            sum: 0,
            origin: None,
            head: 0,
            total: 0,
        }
    }

    /// The window this meter averages over (rounded down to whole buckets).
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.bucket_nanos.saturating_mul(BUCKETS as u64))
    }

    /// Counts `bytes` as moved at `now`. Call it per block received or sent.
    pub fn record(&mut self, now: Instant, bytes: u64) {
        self.total = self.total.saturating_add(bytes);
        let origin = *self.origin.get_or_insert(now);
        let index = self.index(origin, now);
        if index > self.head {
            self.advance(index);
        }
        if self.head - index < BUCKETS as u64 {
            let slot = &mut self.buckets[slot(index)];
            let before = *slot;
            *slot = before.saturating_add(bytes);
            self.sum += u128::from(*slot - before);
        }
    }

    /// Bytes per second over the window ending at `now`; zero before the first
    /// record and after a whole window without one. A `now` earlier than the
    /// latest record is read as the time of that record.
    pub fn rate(&self, now: Instant) -> u64 {
        let Some(origin) = self.origin else {
            return 0;
        };
        let now_nanos = nanos_since(origin, now);
        let index = (now_nanos / self.bucket_nanos).max(self.head);
        let first = index.saturating_sub(BUCKETS as u64 - 1);
        let oldest_live = self.head.saturating_sub(BUCKETS as u64 - 1);
        // The live buckets before `first` have left the window ending at
        // `now`: none when `now` is in the newest bucket, the common case.
        let bytes = if first > self.head {
            0
        } else {
            (oldest_live..first).fold(self.sum, |sum, i| sum - u128::from(self.buckets[slot(i)]))
        };
        if bytes == 0 {
            return 0;
        }
        let end = now_nanos.max(self.head.saturating_mul(self.bucket_nanos));
        let start = first.saturating_mul(self.bucket_nanos);
        let span = end.saturating_sub(start).max(self.bucket_nanos);
        let per_second = bytes.saturating_mul(1_000_000_000) / u128::from(span);
        u64::try_from(per_second).unwrap_or(u64::MAX)
    }

    /// Every byte recorded since construction, saturating at `u64::MAX`.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Absolute bucket index of `now`; instants before `origin` map to 0.
    fn index(&self, origin: Instant, now: Instant) -> u64 {
        nanos_since(origin, now) / self.bucket_nanos
    }

    /// Moves the head forward to `index`, emptying the buckets it passes.
    /// Touches at most `BUCKETS` slots however far time jumped.
    fn advance(&mut self, index: u64) {
        if index - self.head >= BUCKETS as u64 {
            self.buckets = [0; BUCKETS];
            self.sum = 0;
        } else {
            for i in self.head + 1..=index {
                let bucket = &mut self.buckets[slot(i)];
                self.sum -= u128::from(*bucket);
                *bucket = 0;
            }
        }
        self.head = index;
    }
}

/// Ring position of the bucket with absolute index `index`.
fn slot(index: u64) -> usize {
    // The remainder is below BUCKETS, so the cast cannot truncate.
    (index % BUCKETS as u64) as usize
}

/// Nanoseconds from `origin` to `now`, 0 if `now` is earlier, saturating.
fn nanos_since(origin: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Records `per_tick` bytes every 100 ms for `ticks` ticks from `start`.
    fn feed(meter: &mut RateMeter, start: Instant, ticks: u32, per_tick: u64) -> Instant {
        let mut now = start;
        for _ in 0..ticks {
            now += ms(100);
            meter.record(now, per_tick);
        }
        now
    }

    fn assert_near(actual: u64, expected: u64, tolerance_pct: u64) {
        let diff = actual.abs_diff(expected);
        assert!(
            diff * 100 <= expected * tolerance_pct,
            "rate {actual} not within {tolerance_pct}% of {expected}"
        );
    }

    #[test]
    fn empty_meter_reports_zero() {
        let meter = RateMeter::default();
        assert_eq!(meter.rate(Instant::now()), 0);
        assert_eq!(meter.total(), 0);
        assert_eq!(meter.window(), DEFAULT_WINDOW);
    }

    #[test]
    fn steady_stream_reports_its_rate() {
        let t0 = Instant::now();
        let mut meter = RateMeter::new(Duration::from_secs(5));
        // 100 KB every 100 ms = 1 MB/s, for 20 s.
        let now = feed(&mut meter, t0, 200, 100_000);
        assert_near(meter.rate(now), 1_000_000, 3);
        assert_near(meter.rate(now + ms(50)), 1_000_000, 3);
        assert_eq!(meter.total(), 20_000_000);
    }

    #[test]
    fn young_meter_averages_since_first_record() {
        let t0 = Instant::now();
        let mut meter = RateMeter::default();
        meter.record(t0, 1_000);
        let now = feed(&mut meter, t0, 20, 1_000);
        // 21 000 bytes in 2 s.
        assert_near(meter.rate(now), 10_500, 1);
    }

    #[test]
    fn rate_decays_as_traffic_leaves_the_window() {
        let t0 = Instant::now();
        let mut meter = RateMeter::new(Duration::from_secs(10));
        let now = feed(&mut meter, t0, 100, 1_000);
        assert_near(meter.rate(now), 10_000, 2);
        assert_near(meter.rate(now + 5 * SEC), 5_000, 12);
        assert_eq!(meter.rate(now + 11 * SEC), 0);
        assert_eq!(meter.total(), 100_000);
    }

    #[test]
    fn long_jump_forward_clears_the_window() {
        let t0 = Instant::now();
        let mut meter = RateMeter::default();
        feed(&mut meter, t0, 50, 1_000);
        let later = t0 + Duration::from_secs(10 * 365 * 24 * 3600);
        assert_eq!(meter.rate(later), 0);
        meter.record(later, 5_000);
        meter.record(later + SEC, 5_000);
        // 10 000 bytes over a full window (9.9 s: nine buckets and 0.9 of one).
        assert_near(meter.rate(later + SEC), 1_010, 1);
        assert_eq!(meter.total(), 60_000);
    }

    #[test]
    fn earlier_instants_are_tolerated() {
        let t0 = Instant::now();
        let mut meter = RateMeter::new(Duration::from_secs(10));
        meter.record(t0 + 5 * SEC, 1_000);
        // Before the origin, inside the window, and far outside it.
        meter.record(t0, 1_000);
        meter.record(t0 + 4 * SEC, 1_000);
        meter.record(t0 + 30 * SEC, 1_000);
        meter.record(t0 + 10 * SEC, 1_000);
        meter.record(t0 + 25 * SEC, 1_000);
        assert_eq!(meter.total(), 6_000);
        // Only the records at 30 s and 25 s are inside the window ending at
        // 30 s, which sits on a bucket boundary: nine full buckets, 9 s.
        assert_near(meter.rate(t0 + 30 * SEC), 222, 1);
        // A query before the latest record reads as of that record.
        assert_eq!(meter.rate(t0), meter.rate(t0 + 30 * SEC));
    }

    #[test]
    fn extreme_values_saturate_instead_of_panicking() {
        let t0 = Instant::now();
        let mut meter = RateMeter::new(Duration::ZERO);
        meter.record(t0, u64::MAX);
        meter.record(t0, u64::MAX);
        assert_eq!(meter.total(), u64::MAX);
        assert_eq!(meter.rate(t0), u64::MAX);
        assert_eq!(meter.rate(t0 + SEC), 0);

        let mut huge = RateMeter::new(Duration::MAX);
        huge.record(t0, u64::MAX);
        huge.record(t0 + SEC, 1);
        assert!(huge.rate(t0 + SEC) > 0);
    }

    #[test]
    fn running_sum_matches_the_buckets() {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};

        let mut rng = SmallRng::seed_from_u64(11);
        let t0 = Instant::now() + 100 * SEC;
        let mut meter = RateMeter::new(Duration::from_secs(10));
        let mut now = t0;
        for _ in 0..20_000 {
            // Mostly forward by up to three buckets, sometimes back or far.
            now = match rng.random_range(0..20) {
                0 => now - ms(rng.random_range(0..5_000)),
                1 => now + ms(rng.random_range(0..30_000)),
                _ => now + ms(rng.random_range(0..3_000)),
            };
            meter.record(now, rng.random_range(0..1 << 20));
            let held: u128 = meter.buckets.iter().map(|&b| u128::from(b)).sum();
            assert_eq!(meter.sum, held);
            let query = now + ms(rng.random_range(0..15_000));
            // The rate as the sum over the window's buckets would give it.
            let nanos = nanos_since(meter.origin.expect("recorded"), query);
            let index = (nanos / meter.bucket_nanos).max(meter.head);
            let first = index.saturating_sub(BUCKETS as u64 - 1);
            let oldest_live = meter.head.saturating_sub(BUCKETS as u64 - 1);
            let bytes: u128 = (first.max(oldest_live)..=meter.head)
                .map(|i| u128::from(meter.buckets[slot(i)]))
                .sum();
            assert_eq!(meter.rate(query) == 0, bytes == 0);
            if bytes > 0 {
                let end = nanos.max(meter.head * meter.bucket_nanos);
                let span = (end - first * meter.bucket_nanos).max(meter.bucket_nanos);
                let expected = bytes * 1_000_000_000 / u128::from(span);
                assert_eq!(u128::from(meter.rate(query)), expected);
            }
        }
    }

    #[test]
    fn partial_bucket_is_not_overweighted() {
        let t0 = Instant::now();
        let mut meter = RateMeter::new(Duration::from_secs(10));
        let now = feed(&mut meter, t0, 200, 1_000);
        // Right after a bucket boundary the newest bucket is nearly empty and
        // the span shrinks with it, so the rate stays put.
        for offset in [1, 10, 50, 99] {
            assert_near(meter.rate(now + ms(offset)), 10_000, 2);
        }
    }
}
