//! Recent answers of workload identification, per (cgroup, process): a
//! process opening thousands of connections a second is identified once
//! per `RECENT_TTL` instead of once per connection (cgroup path, pod
//! directory and executable lookups, and the strings they copy). Short
//! enough that a pod's names, once known, show within a moment.
use std::time::{Duration, Instant};

use crate::fast_map::FastMap;

/// How long an answer is reused.
pub const RECENT_TTL: Duration = Duration::from_millis(500);
/// Answers kept at most; when full, the expired go, then all.
pub const RECENT_MAX: usize = 4096;

/// Answers by (cgroup id, tgid), each with the `comm` it was made for (a
/// reused tgid or an `exec` changes it) and when.
pub struct Recent<T> {
    entries: FastMap<(u64, u32), (String, Instant, T)>,
}

impl<T: Clone> Default for Recent<T> {
    fn default() -> Self {
        Self {
            entries: FastMap::default(),
        }
    }
}

impl<T: Clone> Recent<T> {
    /// The answer for this process if it is recent.
    pub fn get(&self, cgroup_id: u64, tgid: u32, comm: &str, now: Instant) -> Option<T> {
        let (seen_comm, at, answer) = self.entries.get(&(cgroup_id, tgid))?;
        (seen_comm == comm && now.saturating_duration_since(*at) < RECENT_TTL)
            .then(|| answer.clone())
    }

    pub fn put(&mut self, cgroup_id: u64, tgid: u32, comm: &str, now: Instant, answer: T) {
        if self.entries.len() >= RECENT_MAX {
            self.entries
                .retain(|_, (_, at, _)| now.saturating_duration_since(*at) < RECENT_TTL);
            if self.entries.len() >= RECENT_MAX {
                self.entries.clear();
            }
        }
        self.entries
            .insert((cgroup_id, tgid), (comm.to_owned(), now, answer));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_reused_for_the_same_process_until_it_is_old() {
        let t0 = Instant::now();
        let mut r = Recent::default();
        r.put(7, 100, "python3", t0, "pod-a");
        assert_eq!(r.get(7, 100, "python3", t0 + RECENT_TTL / 2), Some("pod-a"));
        assert_eq!(r.get(7, 100, "python3", t0 + RECENT_TTL), None, "expired");
        assert_eq!(
            r.get(7, 100, "node", t0),
            None,
            "another comm: exec or reuse"
        );
        assert_eq!(r.get(8, 100, "python3", t0), None, "another cgroup");
        assert_eq!(r.get(7, 101, "python3", t0), None, "another process");
    }

    #[test]
    fn a_full_cache_drops_the_expired_then_everything() {
        let t0 = Instant::now();
        let mut r = Recent::default();
        for tgid in 0..RECENT_MAX as u32 {
            r.put(1, tgid, "p", t0, tgid);
        }
        assert_eq!(r.len(), RECENT_MAX);
        let later = t0 + RECENT_TTL;
        r.put(2, 0, "p", later, 0);
        assert_eq!(r.len(), 1, "every older answer had expired");
        for tgid in 1..RECENT_MAX as u32 {
            r.put(2, tgid, "p", later, tgid);
        }
        r.put(3, 0, "p", later, 0);
        assert_eq!(r.len(), 1, "none expired: all dropped");
        assert_eq!(r.get(3, 0, "p", later), Some(0));
    }
}
