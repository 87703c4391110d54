//! Process-wide bandwidth caps for the tokio driver.
//!
//! One [`RateLimiter`] caps egress and another ingress, each shared through an
//! `Arc` by every connection of every blob, so that an operator's
//! "`--upload-limit 100MB`" holds for the node however many peers it serves.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The smallest burst: four 16 KiB blocks, so a writer can always send a
/// block without waiting, and a few back to back after a pause.
const MIN_BURST: u64 = 64 * 1024;

/// Waits longer than this are clamped, so that absurd requests cannot
/// overflow an `Instant`; at any real rate they never occur.
const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// A token bucket of `bytes_per_second`, shared by every connection that
/// sends (or receives) through it.
///
/// Burst: `max(64 KiB, bytes_per_second / 10)`, i.e. at least four blocks and
/// otherwise 100 ms of traffic. That absorbs timer and scheduling jitter
/// (tokio timers tick in milliseconds) without letting the link run above the
/// cap for a noticeable time.
///
/// How it works (the GCRA form of a token bucket): the limiter keeps
/// `paid_until`, the instant at which every byte granted so far is paid for at
/// the configured rate. [`acquire`](Self::acquire) pushes it forward by the
/// request's cost under a short synchronous lock, then sleeps, holding no
/// lock, until `paid_until` is at most one burst ahead of the clock. A request
/// larger than the burst therefore still completes; it simply waits for its
/// excess, and later requests wait behind it.
///
/// Fairness: reservations are made in call order and each waiter's wake time
/// is the previous one's plus its own cost, so waiters are served FIFO and
/// concurrent connections acquiring block-sized chunks share the rate evenly.
/// Acquire per block (16 KiB), not per piece, or a big request delays small
/// ones behind it.
///
/// Cancellation: a dropped `acquire` keeps its reservation; the bytes count as
/// spent. That errs on the side of the cap and only matters at shutdown.
#[derive(Debug)]
pub struct RateLimiter {
    bytes_per_second: u64,
    burst: u64,
    paid_until: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter of `bytes_per_second`; 0 means unlimited, and then
    /// [`acquire`](Self::acquire) returns at once without locking.
    pub fn new(bytes_per_second: u64) -> Self {
        Self {
            bytes_per_second,
            burst: MIN_BURST.max(bytes_per_second / 10),
            paid_until: Mutex::new(None),
        }
    }

    /// Whether this limiter lets everything through; callers may then skip
    /// calling [`acquire`](Self::acquire) altogether.
    pub fn is_unlimited(&self) -> bool {
        self.bytes_per_second == 0
    }

    /// The cap in bytes per second, 0 for unlimited, for status output.
    pub fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second
    }

    /// Waits until `bytes` may be sent (or have been received) under the cap.
    /// Call it just before writing a block, or just after reading one so that
    /// the reader stops pulling from the socket and TCP flow control slows the
    /// sender.
    pub async fn acquire(&self, bytes: usize) {
        if self.is_unlimited() || bytes == 0 {
            return;
        }
        let now = Instant::now();
        let wake = self.reserve(now, bytes);
        if wake > now {
            tokio::time::sleep_until(wake).await;
        }
    }

    /// Charges `bytes` at `now` and returns when the caller may proceed.
    fn reserve(&self, now: Instant, bytes: usize) -> Instant {
        let cost = self.cost(u64::try_from(bytes).unwrap_or(u64::MAX));
        let burst = self.cost(self.burst);
        let mut paid_until = self.paid_until.lock().unwrap_or_else(|e| e.into_inner());
        let start = paid_until.map_or(now, |t| t.max(now));
        let end = start.checked_add(cost).unwrap_or(start);
        *paid_until = Some(end);
        end.checked_sub(burst).unwrap_or(now)
    }

    /// How long `bytes` take at the configured rate, rounded up to the
    /// nanosecond and clamped to [`MAX_WAIT`].
    fn cost(&self, bytes: u64) -> Duration {
        let rate = u128::from(self.bytes_per_second.max(1));
        let nanos = (u128::from(bytes) * 1_000_000_000).div_ceil(rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)).min(MAX_WAIT)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const MIB: usize = 1024 * 1024;
    const BLOCK: usize = 16 * 1024;

    fn assert_secs_near(elapsed: Duration, expected: f64, tolerance: f64) {
        let secs = elapsed.as_secs_f64();
        assert!(
            (secs - expected).abs() <= expected * tolerance,
            "took {secs:.3} s, expected {expected} s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ten_mib_at_one_mib_per_second_takes_ten_seconds() {
        let limiter = RateLimiter::new(MIB as u64);
        let start = Instant::now();
        for _ in 0..10 * MIB / BLOCK {
            limiter.acquire(BLOCK).await;
        }
        // The first burst (0.1 s) is free.
        assert_secs_near(start.elapsed(), 9.9, 0.02);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_larger_than_the_burst_complete() {
        let limiter = RateLimiter::new(MIB as u64);
        let start = Instant::now();
        limiter.acquire(10 * MIB).await;
        assert_secs_near(start.elapsed(), 9.9, 0.02);
        // The next request pays for the previous one's excess first.
        let again = Instant::now();
        limiter.acquire(BLOCK).await;
        assert!(again.elapsed() > Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_and_empty_requests_return_at_once() {
        let unlimited = RateLimiter::new(0);
        assert!(unlimited.is_unlimited());
        let start = Instant::now();
        unlimited.acquire(usize::MAX).await;
        unlimited.acquire(usize::MAX).await;
        let limited = RateLimiter::new(1);
        assert!(!limited.is_unlimited());
        limited.acquire(0).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn burst_refills_after_idle() {
        let limiter = RateLimiter::new(10 * MIB as u64);
        // Burst at 10 MiB/s is 1 MiB.
        limiter.acquire(MIB).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = Instant::now();
        limiter.acquire(MIB).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire(MIB).await;
        assert_secs_near(start.elapsed(), 0.1, 0.02);
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_rates_and_sizes_do_not_panic() {
        let fast = RateLimiter::new(u64::MAX);
        fast.acquire(usize::MAX).await;
        let slow = RateLimiter::new(1);
        let start = Instant::now();
        tokio::select! {
            () = slow.acquire(usize::MAX) => panic!("cannot finish"),
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
        assert_secs_near(start.elapsed(), 3600.0, 0.01);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_consumers_share_the_rate_evenly() {
        let limiter = Arc::new(RateLimiter::new(MIB as u64));
        let deadline = Instant::now() + Duration::from_secs(20);
        let consumer = |limiter: Arc<RateLimiter>| async move {
            let mut bytes = 0;
            while Instant::now() < deadline {
                limiter.acquire(BLOCK).await;
                bytes += BLOCK;
            }
            bytes
        };
        let a = tokio::spawn(consumer(limiter.clone()));
        let b = tokio::spawn(consumer(limiter));
        let (a, b) = (a.await.expect("a"), b.await.expect("b"));
        let total = (a + b) as f64 / MIB as f64;
        assert!((19.5..=20.5).contains(&total), "{total} MiB in 20 s");
        let share = a as f64 / (a + b) as f64;
        assert!((0.45..=0.55).contains(&share), "a got {share:.2}");
    }
}
