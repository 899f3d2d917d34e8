//! Keeping a long outage readable: the first failure of a kind is logged in full, the
//! same failure again only as a periodic count, and the recovery says how many attempts
//! it took.
//!
//! At a 1 ms interval a Redis outage would otherwise write a thousand identical lines a
//! second, burying the one line that matters and filling the log pipeline. A repeat is
//! told from a new failure by a key the caller derives from the error's kind and stable
//! fields, never from its text: a text may carry a time, a port or a counter that changes
//! on every attempt (rustls writes the current time into an expired certificate's error).

use std::time::Duration;

use tokio::time::Instant;

/// How often repeats of the same failure are summarised.
pub const SUMMARY_PERIOD: Duration = Duration::from_secs(10);

/// What to log about one failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    /// A failure unlike the previous one: log it in full.
    New,
    /// The same failure, repeated this many more times since the last report.
    Repeated(u64),
    /// Nothing now: it repeats the previous failure and will be counted in a summary.
    Quiet,
}

/// The failures since the last success, each known by its kind `K`.
#[derive(Debug)]
pub struct FailureLog<K> {
    last: Option<K>,
    unreported: u64,
    total: u64,
    reported_at: Option<Instant>,
}

impl<K> Default for FailureLog<K> {
    fn default() -> Self {
        Self {
            last: None,
            unreported: 0,
            total: 0,
            reported_at: None,
        }
    }
}

impl<K: PartialEq> FailureLog<K> {
    /// Notes a failure of kind `kind` at `now`, and says what to log.
    pub fn failed(&mut self, kind: K, now: Instant) -> Report {
        self.total += 1;
        if self.last.as_ref() != Some(&kind) {
            self.last = Some(kind);
            self.unreported = 0;
            self.reported_at = Some(now);
            return Report::New;
        }
        self.unreported += 1;
        let due = self
            .reported_at
            .is_none_or(|at| now.duration_since(at) >= SUMMARY_PERIOD);
        if due {
            self.reported_at = Some(now);
            Report::Repeated(std::mem::take(&mut self.unreported))
        } else {
            Report::Quiet
        }
    }

    /// Notes a success; returns how many failures came before it, if any.
    pub fn recovered(&mut self) -> Option<u64> {
        let total = std::mem::take(&mut self.total);
        *self = Self::default();
        (total > 0).then_some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_summarised_every_period_and_new_failures_logged_at_once() {
        let start = Instant::now();
        let mut log = FailureLog::default();
        assert_eq!(log.failed("refused", start), Report::New);
        for ms in (100..10_000).step_by(100) {
            assert_eq!(
                log.failed("refused", start + Duration::from_millis(ms)),
                Report::Quiet
            );
        }
        assert_eq!(
            log.failed("refused", start + SUMMARY_PERIOD),
            Report::Repeated(100)
        );
        assert_eq!(log.failed("timed out", start + SUMMARY_PERIOD), Report::New);
        assert_eq!(log.recovered(), Some(102));
        assert_eq!(log.recovered(), None);
        assert_eq!(log.failed("timed out", start), Report::New, "a fresh start");
    }
}
