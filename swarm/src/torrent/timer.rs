//! The torrent's timers: a small table indexed by an enum, the earliest of
//! which is what `poll_timeout` returns (quinn-proto's `connection/timer.rs`).

use std::time::Instant;

/// Something the torrent must do at a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// The oldest outstanding request times out.
    Request = 0,
    /// The choker's next rechoke or optimistic rotation.
    Rechoke = 1,
    /// The earliest ban ends.
    BanExpiry = 2,
    /// The oldest piece a seed refused may be asked for again.
    Refusal = 3,
}

const COUNT: usize = 4;

/// Deadlines per [`Timer`]; None when the timer is not armed.
#[derive(Debug, Clone, Default)]
pub(super) struct TimerTable {
    at: [Option<Instant>; COUNT],
}

impl TimerTable {
    pub(super) fn set(&mut self, timer: Timer, at: Option<Instant>) {
        self.at[timer as usize] = at;
    }

    /// The earliest armed deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::torrent::tests::epoch;

    #[test]
    fn next_is_the_earliest_armed_timer() {
        let t0 = epoch();
        let mut table = TimerTable::default();
        assert_eq!(table.next(), None);
        table.set(Timer::Rechoke, Some(t0 + Duration::from_secs(10)));
        table.set(Timer::Request, Some(t0 + Duration::from_secs(4)));
        assert_eq!(table.next(), Some(t0 + Duration::from_secs(4)));
        table.set(Timer::Request, None);
        table.set(Timer::BanExpiry, Some(t0 + Duration::from_secs(30)));
        assert_eq!(table.next(), Some(t0 + Duration::from_secs(10)));
    }
}
