//! Jittered exponential back-off between failed exports: many proxies restarting a
//! collector together should not reconnect in step.

use std::time::Duration;

pub(crate) const MIN_DELAY: Duration = Duration::from_millis(200);
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: MIN_DELAY }
    }
}

impl Backoff {
    /// The wait before the next try: the current step, scaled by a random 50-100%;
    /// the step doubles up to `MAX_DELAY`.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        step.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    pub fn reset(&mut self) {
        self.next = MIN_DELAY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_jittered_and_capped() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first >= MIN_DELAY / 2 && first <= MIN_DELAY, "{first:?}");
        for _ in 0..20 {
            assert!(b.next_delay() <= MAX_DELAY);
        }
        assert!(b.next_delay() >= MAX_DELAY / 2);
        b.reset();
        assert!(b.next_delay() <= MIN_DELAY);
    }
}
