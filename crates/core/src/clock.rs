//! Time as a dependency. Detectors, the incident engine and deadlines ask a `Clock` for "now"
//! so that tests and drills can run them on simulated time.

use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to: for tests and simulated drills.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// A fixed, readable starting point for tests: 2026-01-01T00:00:00Z.
    pub fn at_epoch_2026() -> Self {
        Self::new(Timestamp::from_second(1_767_225_600).expect("valid timestamp"))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().expect("clock lock");
        *now = now
            .checked_add(jiff::SignedDuration::try_from(by).expect("duration fits"))
            .expect("time within range");
    }

    pub fn set(&self, to: Timestamp) {
        *self.now.lock().expect("clock lock") = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().expect("clock lock")
    }
}

/// Milliseconds from `earlier` to `later` (0 when `later` is before `earlier`).
pub fn millis_between(earlier: Timestamp, later: Timestamp) -> u64 {
    let d = later.as_millisecond() - earlier.as_millisecond();
    d.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_epoch_2026();
        let t0 = c.now();
        assert_eq!(c.now(), t0);
        c.advance(Duration::from_millis(1500));
        assert_eq!(millis_between(t0, c.now()), 1500);
        assert_eq!(millis_between(c.now(), t0), 0);
    }
}
