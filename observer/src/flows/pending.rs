//! Connections waiting for their name: joined by socket cookie with the
//! segments and state changes that arrive before they are counted. Bounded:
//! the caller counts the oldest early when the table is full.
use std::{collections::VecDeque, time::Instant};

use super::{lifecycle::Close, record::WorkloadInfo};
use crate::{
    capture::ConnectEvent,
    enforcement::KernelDid,
    fast_map::FastMap,
    naming::{Segments, quic::QuicOpening},
};

pub struct Pending {
    pub conn: ConnectEvent,
    pub deadline: Instant,
    pub segments: Segments,
    /// A QUIC flow's Initials read so far (boxed: most flows are TCP).
    pub quic: Option<Box<QuicOpening>>,
    pub established: bool,
    pub closed: Option<Close>,
    /// Resolved at connect, while a short-lived client still exists.
    pub workload: std::sync::Arc<WorkloadInfo>,
    /// What `--enforce deny` did in the kernel so far.
    pub kernel: KernelDid,
}

pub struct PendingTable {
    map: FastMap<u64, Pending>,
    /// Cookies in connect order; deadlines are monotonic because the name
    /// wait is constant. Stale cookies (already counted) are skipped.
    order: VecDeque<u64>,
    max: usize,
}

impl PendingTable {
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

    pub fn is_full(&self) -> bool {
        self.map.len() >= self.max
    }

    /// Adds a connection; returns the one it replaces (a second `connect()`
    /// on the same socket has the same cookie).
    pub fn insert(&mut self, pending: Pending) -> Option<Pending> {
        let cookie = pending.conn.cookie;
        self.order.push_back(cookie);
        self.map.insert(cookie, pending)
    }

    pub fn get_mut(&mut self, cookie: u64) -> Option<&mut Pending> {
        self.map.get_mut(&cookie)
    }

    pub fn remove(&mut self, cookie: u64) -> Option<Pending> {
        self.map.remove(&cookie)
    }

    /// The oldest waiting connection, to make room.
    pub fn pop_oldest(&mut self) -> Option<Pending> {
        while let Some(cookie) = self.order.pop_front() {
            if let Some(p) = self.map.remove(&cookie) {
                return Some(p);
            }
        }
        None
    }

    /// The oldest connection whose wait is over at `now`, if any.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Pending> {
        while let Some(&cookie) = self.order.front() {
            match self.map.get(&cookie) {
                None => {
                    self.order.pop_front();
                }
                Some(p) if p.deadline <= now => {
                    self.order.pop_front();
                    return self.map.remove(&cookie);
                }
                Some(_) => return None,
            }
        }
        None
    }
}
