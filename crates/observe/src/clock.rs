//! Wall-clock times without reading the wall clock: a thread's anchor pairs one
//! reading of the monotonic clock with one of the wall clock, and a monotonic
//! instant is turned into wall-clock time by its distance from the anchor. A
//! request reads the (monotonic) clock once at its start for its latency anyway;
//! its start time for access logs and spans then costs no second reading. The
//! anchor is renewed when an instant is more than a second from it, so a
//! wall-clock step or slew shows within a second, and the error from the two
//! clocks' drift stays far below a millisecond.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime};

/// How far an instant may be from the anchor before the anchor is renewed.
const ANCHOR_SPAN: Duration = Duration::from_secs(1);

thread_local! {
    static ANCHOR: Cell<Option<(Instant, SystemTime)>> = const { Cell::new(None) };
}

/// The wall-clock time of `at`, a monotonic instant of about now (within a few
/// minutes: further off, the clocks' drift would show).
pub fn wall_at(at: Instant) -> SystemTime {
    let anchor = ANCHOR.try_with(Cell::get).ok().flatten();
    if let Some((mono, wall)) = anchor {
        if let Some(ahead) = at.checked_duration_since(mono) {
            if ahead <= ANCHOR_SPAN {
                return wall + ahead;
            }
        } else if let Some(behind) = mono.checked_duration_since(at) {
            if behind <= ANCHOR_SPAN {
                return wall - behind;
            }
        }
    }
    let (mono, wall) = (Instant::now(), SystemTime::now());
    let _ = ANCHOR.try_with(|a| a.set(Some((mono, wall))));
    match mono.checked_duration_since(at) {
        Some(behind) => wall - behind,
        None => wall + at.duration_since(mono),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: SystemTime, b: SystemTime, within: Duration) -> bool {
        let d = a.duration_since(b).or_else(|e| Ok::<_, ()>(e.duration()));
        d.is_ok_and(|d| d <= within)
    }

    #[test]
    fn instants_map_to_the_wall_clock() {
        let now = Instant::now();
        let wall = SystemTime::now();
        assert!(close(wall_at(now), wall, Duration::from_millis(5)));
        // From the same anchor, distances are kept exactly.
        let later = now + Duration::from_millis(300);
        assert_eq!(
            wall_at(later).duration_since(wall_at(now)).unwrap(),
            Duration::from_millis(300)
        );
        // Far from the anchor: a new one, still the right time.
        let earlier = now.checked_sub(Duration::from_secs(5)).unwrap_or(now);
        let want = wall - now.duration_since(earlier);
        assert!(close(wall_at(earlier), want, Duration::from_millis(5)));
    }
}
