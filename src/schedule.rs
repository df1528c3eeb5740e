//! When each check runs: first runs spread over one interval, then a fixed
//! grid per check, retries while a problem is unconfirmed.
//!
//! Pure arithmetic on instants: no timers, no I/O. The daemon asks
//! [`Slot::next`] for the next planned start after a run finishes and keeps
//! the slots in a heap. Invariants: a check never overlaps itself (the next
//! start is never before the previous run finished), and a slow run does not
//! shift the grid (missed slots are skipped, not postponed).

use std::time::Duration;
use tokio::time::Instant;

/// Which cadence a check follows next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cadence {
    /// Every `interval`, on the check's grid.
    Normal,
    /// Every `retry_interval` while a problem is SOFT.
    Retry,
}

/// The timing of one check.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// Grid origin: the check's first planned start.
    pub anchor: Instant,
    /// Normal interval.
    pub interval: Duration,
    /// Retry interval.
    pub retry_interval: Duration,
    /// The planned start of the run that happened last (or is due next, before the first run).
    pub planned: Instant,
    /// Slots skipped because a run took longer than its interval.
    pub skipped: u64,
}

impl Slot {
    /// The slot of check `index` out of `count`: first runs spread evenly over
    /// one interval from `start`, so that no two checks start together.
    pub(crate) fn spread(
        start: Instant,
        index: usize,
        count: usize,
        interval: Duration,
        retry_interval: Duration,
    ) -> Slot {
        let count = count.max(1) as u128;
        let offset_ns = interval.as_nanos() * (index as u128 % count) / count;
        let anchor = start + Duration::from_nanos(offset_ns.min(u64::MAX as u128) as u64);
        Slot {
            anchor,
            interval,
            retry_interval,
            planned: anchor,
            skipped: 0,
        }
    }

    /// Plans the run after the one planned at `self.planned`, which finished at
    /// `finished`; returns the new planned start.
    ///
    /// Normal cadence: the first grid point (`anchor + k * interval`) after the
    /// previous planned start that is not before `finished`. Retry cadence:
    /// `retry_interval` after the previous planned start, or `finished` if that
    /// is later (a retry is never skipped). When returning from retries to
    /// normal, the check rejoins its grid.
    pub(crate) fn next(&mut self, cadence: Cadence, finished: Instant) -> Instant {
        let next = match cadence {
            Cadence::Retry => (self.planned + self.retry_interval).max(finished),
            Cadence::Normal => {
                let step = self.interval.as_nanos().max(1);
                let since_anchor = self
                    .planned
                    .saturating_duration_since(self.anchor)
                    .as_nanos();
                let mut k = since_anchor / step + 1;
                let not_before = finished.saturating_duration_since(self.anchor).as_nanos();
                if self.anchor + nanos(k * step) < finished {
                    let needed = not_before.div_ceil(step);
                    self.skipped += (needed - k) as u64;
                    k = needed;
                }
                self.anchor + nanos(k * step)
            }
        };
        self.planned = next;
        next
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(n.min(u64::MAX as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn first_runs_are_spread_over_one_interval() {
        let t0 = Instant::now();
        let starts: Vec<Duration> = (0..4)
            .map(|i| Slot::spread(t0, i, 4, 60 * S, 10 * S).planned - t0)
            .collect();
        assert_eq!(starts, vec![Duration::ZERO, 15 * S, 30 * S, 45 * S]);
    }

    #[test]
    fn runs_stay_on_their_grid() {
        let t0 = Instant::now();
        let mut slot = Slot::spread(t0, 1, 2, 60 * S, 10 * S);
        assert_eq!(slot.planned - t0, 30 * S);
        // a run that took 2 s does not shift the next start
        assert_eq!(slot.next(Cadence::Normal, t0 + 32 * S) - t0, 90 * S);
        assert_eq!(
            slot.next(
                Cadence::Normal,
                t0 + 90 * S + 100 * Duration::from_millis(1)
            ) - t0,
            150 * S
        );
        assert_eq!(slot.skipped, 0);
    }

    #[test]
    fn slow_runs_skip_slots_instead_of_overlapping() {
        let t0 = Instant::now();
        let mut slot = Slot::spread(t0, 0, 1, 10 * S, 10 * S);
        // the run planned at 0 took 25 s: slots at 10 and 20 are skipped
        assert_eq!(slot.next(Cadence::Normal, t0 + 25 * S) - t0, 30 * S);
        assert_eq!(slot.skipped, 2);
        // finishing exactly on a grid point may start there
        assert_eq!(slot.next(Cadence::Normal, t0 + 40 * S) - t0, 40 * S);
    }

    #[test]
    fn retries_follow_retry_interval_then_rejoin_the_grid() {
        let t0 = Instant::now();
        let mut slot = Slot::spread(t0, 0, 1, 60 * S, 10 * S);
        assert_eq!(slot.next(Cadence::Retry, t0 + S) - t0, 10 * S);
        assert_eq!(slot.next(Cadence::Retry, t0 + 11 * S) - t0, 20 * S);
        // a retry that ran long starts right after the previous one finished
        assert_eq!(slot.next(Cadence::Retry, t0 + 35 * S) - t0, 35 * S);
        assert_eq!(slot.next(Cadence::Normal, t0 + 36 * S) - t0, 60 * S);
    }
}
