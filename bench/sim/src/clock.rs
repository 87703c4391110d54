//! Virtual time: nanoseconds since the start of a run, and the mapping onto
//! the `std::time::Instant`s that the real state machines take.
//!
//! The torrent never reads the clock; it is handed `now`. The simulator hands
//! it `base + virtual elapsed`, where `base` is one `Instant` taken when the
//! run starts. Only differences of instants matter to the torrent, so results
//! do not depend on `base`.

use std::time::{Duration, Instant};

/// A point in virtual time: nanoseconds since the run began. Integer, so
/// event ordering is exact and identical on every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SimTime(pub u64);

impl SimTime {
    /// The start of the run.
    pub const ZERO: SimTime = SimTime(0);

    /// `secs` seconds after the start, rounded up to the next nanosecond so
    /// that an event is never scheduled before the instant it depends on.
    pub fn from_secs_f64(secs: f64) -> SimTime {
        SimTime((secs.max(0.0) * 1e9).ceil() as u64)
    }

    /// Seconds since the start.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// This time plus `d`.
    pub fn after(self, d: Duration) -> SimTime {
        SimTime(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }

    /// This time plus `secs` seconds (rounded up to a nanosecond).
    pub fn after_secs(self, secs: f64) -> SimTime {
        SimTime(self.0.saturating_add((secs.max(0.0) * 1e9).ceil() as u64))
    }
}

/// Converts between [`SimTime`] and the `Instant`s of the state machines.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Clock {
    /// A clock whose virtual zero is `base`.
    pub fn new(base: Instant) -> Self {
        Clock { base }
    }

    /// The `Instant` of a virtual time, as passed to `handle_*(now, ..)`.
    pub fn instant(&self, t: SimTime) -> Instant {
        self.base + Duration::from_nanos(t.0)
    }

    /// The virtual time of an `Instant` from `poll_timeout`; instants
    /// before the base map to zero.
    pub fn sim_time(&self, at: Instant) -> SimTime {
        let d = at.saturating_duration_since(self.base);
        SimTime(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip() {
        let clock = Clock::new(Instant::now());
        let t = SimTime(1_234_567_890);
        assert_eq!(clock.sim_time(clock.instant(t)), t);
        assert_eq!(SimTime::from_secs_f64(1.5), SimTime(1_500_000_000));
        assert_eq!(SimTime(10).after(Duration::from_nanos(5)), SimTime(15));
    }
}
