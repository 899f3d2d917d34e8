//! The tick schedule: ticks sit on a fixed grid, `anchor + k × interval`, so a slow
//! `INCR` never pushes later ticks back, and a tick that was missed is skipped rather
//! than replayed, so the counter never jumps.

use std::time::Duration;

use tokio::time::Instant;

/// The first grid point strictly after `now`, on the grid that starts at `anchor` and
/// steps by `interval`.
///
/// When the last tick ran on time this is simply `anchor + interval`; when it overran
/// (Redis answered slowly), the missed grid points are skipped. `interval` must be
/// non-zero.
pub fn next_tick(anchor: Instant, interval: Duration, now: Instant) -> Instant {
    let elapsed = now.saturating_duration_since(anchor).as_nanos();
    let steps = elapsed / interval.as_nanos() + 1;
    let offset = interval.as_nanos() * steps;
    // An interval is at most a day and a tick overruns by seconds, so this fits easily.
    anchor + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(2);

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn an_on_time_tick_is_followed_one_interval_after_its_anchor() {
        let anchor = Instant::now();
        assert_eq!(next_tick(anchor, INTERVAL, anchor), anchor + INTERVAL);
        assert_eq!(
            next_tick(anchor, INTERVAL, anchor + ms(5)),
            anchor + INTERVAL
        );
    }

    #[test]
    fn a_slow_tick_does_not_push_the_next_one_back() {
        let anchor = Instant::now();
        assert_eq!(
            next_tick(anchor, INTERVAL, anchor + ms(1_900)),
            anchor + INTERVAL
        );
    }

    #[test]
    fn missed_ticks_are_skipped_not_replayed() {
        let anchor = Instant::now();
        assert_eq!(
            next_tick(anchor, INTERVAL, anchor + ms(4_500)),
            anchor + INTERVAL * 3
        );
    }

    #[test]
    fn a_tick_ending_exactly_on_a_grid_point_moves_to_the_following_one() {
        let anchor = Instant::now();
        assert_eq!(
            next_tick(anchor, INTERVAL, anchor + INTERVAL),
            anchor + INTERVAL * 2
        );
    }

    #[test]
    fn ticks_stay_on_the_grid_over_many_intervals() {
        let interval = ms(50);
        let anchor = Instant::now();
        let mut tick = anchor;
        for _ in 0..100 {
            // Each INCR takes 7 ms; the grid must not drift by it.
            tick = next_tick(tick, interval, tick + ms(7));
        }
        assert_eq!(tick, anchor + interval * 100);
    }
}
