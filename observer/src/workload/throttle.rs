//! A gate that lets an expensive directory rescan run at most once per
//! interval, so a burst of lookups for unknown ids costs one scan, not many.
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct RescanGate {
    interval: Duration,
    last: Option<Instant>,
}

impl RescanGate {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
        }
    }

    /// True when a rescan may run now; the caller must then do it.
    pub(crate) fn try_begin(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_call_opens_then_closes_until_interval_passes() {
        let mut gate = RescanGate::new(Duration::from_secs(2));
        let t0 = Instant::now();
        assert!(gate.try_begin(t0));
        assert!(!gate.try_begin(t0 + Duration::from_millis(1999)));
        assert!(gate.try_begin(t0 + Duration::from_secs(2)));
        assert!(!gate.try_begin(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn zero_interval_always_opens() {
        let mut gate = RescanGate::new(Duration::ZERO);
        let t0 = Instant::now();
        assert!(gate.try_begin(t0));
        assert!(gate.try_begin(t0));
    }

    #[test]
    fn clock_going_backwards_keeps_gate_closed() {
        let mut gate = RescanGate::new(Duration::from_secs(2));
        let t0 = Instant::now() + Duration::from_secs(10);
        assert!(gate.try_begin(t0));
        assert!(!gate.try_begin(t0 - Duration::from_secs(5)));
    }
}
