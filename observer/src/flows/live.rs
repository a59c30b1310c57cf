//! Counted connections that have not closed yet, tracked for their close
//! (bytes, duration, failure, the active gauge). Bounded: when full, the
//! oldest is evicted and handed back so its gauge share can be undone.
use std::collections::VecDeque;

use crate::fast_map::FastMap;

use super::labels::SharedLabels;

/// Closed cookies tolerated in the order queue before it is compacted.
const LIVE_ORDER_SLACK: usize = 1024;

/// Open connections tracked for their close, at most (`FlowSettings::max_live`).
pub const DEFAULT_MAX_LIVE: usize = 262_144;

/// A counted connection that has not closed yet.
pub struct Live {
    /// Shared by every flow with the same labels.
    pub labels: SharedLabels,
    pub connect_ts_ns: u64,
    pub established: bool,
    /// `--tls-probes`: the requests being read from its plaintext.
    pub exchange: Option<Box<crate::inspection::Exchange>>,
}

pub struct LiveTable {
    map: FastMap<u64, Live>,
    /// Live cookies, oldest first, for eviction when `map` is full.
    order: VecDeque<u64>,
    max: usize,
}

impl LiveTable {
    pub fn new(max: usize) -> Self {
        Self {
            map: FastMap::default(),
            order: VecDeque::new(),
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Tracks `live`, first evicting the oldest flows (passed to `evicted`)
    /// while the table is full.
    pub fn insert(&mut self, cookie: u64, live: Live, mut evicted: impl FnMut(u64, Live)) {
        while self.map.len() >= self.max {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.map.remove(&oldest) {
                evicted(oldest, old);
            }
        }
        self.map.insert(cookie, live);
        self.order.push_back(cookie);
        // Keep the order queue from growing with closed cookies: compact once
        // stale entries outnumber live ones (amortised O(1) per insert).
        if self.order.len() > 2 * self.map.len() + LIVE_ORDER_SLACK {
            let map = &self.map;
            self.order.retain(|c| map.contains_key(c));
        }
    }

    pub fn get_mut(&mut self, cookie: u64) -> Option<&mut Live> {
        self.map.get_mut(&cookie)
    }

    pub fn remove(&mut self, cookie: u64) -> Option<Live> {
        self.map.remove(&cookie)
    }
}
