//! Addresses a cgroup learned from DNS answers, and whether `connect()` to
//! them may be refused: only while every name the cgroup got that address
//! for is a denied model endpoint. An address also learned for any other
//! name (a CDN, Azure Front Door) is never refused at connect; its first
//! bytes decide. Entries live as long as their DNS answers (TTL, clamped as
//! the name cache clamps it) and are bounded; a full table refuses nothing
//! new, so it fails open.
use std::{net::IpAddr, time::Instant};

use crate::fast_map::FastMap;

/// (cgroup id, address) pairs followed at once; as many as the kernel's
/// `DENY_ADDRS` table holds.
pub const DNS_ADDRS_MAX: usize = observer_common::DENY_ADDRS_MAX as usize;

/// What changed for the kernel's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrChange {
    /// Refuse `connect()` from this cgroup to this address.
    Deny(u64, IpAddr),
    /// No longer.
    Forget(u64, IpAddr),
}

/// An answer that holds at `now`.
fn alive(until: Option<Instant>, now: Instant) -> bool {
    until.is_some_and(|t| t > now)
}

#[derive(Clone, Copy, Debug, Default)]
struct Names {
    /// Until when a denied name's answer holds this address.
    denied_until: Option<Instant>,
    /// Until when any other name's answer holds it.
    allowed_until: Option<Instant>,
    /// Whether the kernel's table refuses it now (what was last reported).
    in_kernel: bool,
}

impl Names {
    fn denied(&self, now: Instant) -> bool {
        alive(self.denied_until, now) && !alive(self.allowed_until, now)
    }

    fn expired(&self, now: Instant) -> bool {
        !alive(self.denied_until, now) && !alive(self.allowed_until, now)
    }

    /// Brings the kernel's view in line with the answers alive at `now`.
    fn reconcile(&mut self, (cgroup, addr): (u64, IpAddr), now: Instant) -> Option<AddrChange> {
        let want = self.denied(now);
        if want == self.in_kernel {
            return None;
        }
        self.in_kernel = want;
        Some(if want {
            AddrChange::Deny(cgroup, addr)
        } else {
            AddrChange::Forget(cgroup, addr)
        })
    }
}

#[derive(Debug, Default)]
pub struct DnsAddrs {
    by_key: FastMap<(u64, IpAddr), Names>,
}

impl DnsAddrs {
    /// An answer the cgroup received for a name (`denied`: a model
    /// endpoint under the policy) giving `addr` until `expires`.
    pub fn learn(
        &mut self,
        cgroup_id: u64,
        addr: IpAddr,
        denied: bool,
        expires: Instant,
        now: Instant,
    ) -> Option<AddrChange> {
        let key = (cgroup_id, addr.to_canonical());
        if !self.by_key.contains_key(&key) && self.by_key.len() >= DNS_ADDRS_MAX {
            self.sweep_into(now, &mut Vec::new());
            if self.by_key.len() >= DNS_ADDRS_MAX {
                return None;
            }
        }
        let names = self.by_key.entry(key).or_default();
        let slot = if denied {
            &mut names.denied_until
        } else {
            &mut names.allowed_until
        };
        *slot = Some(slot.map_or(expires, |t| t.max(expires)));
        names.reconcile(key, now)
    }

    /// Forgets what expired, and reports what changed with it: a denied
    /// name's answer expired (forget), or the other name's answer did while
    /// a denied one holds (deny).
    pub fn sweep(&mut self, now: Instant) -> Vec<AddrChange> {
        let mut changes = Vec::new();
        self.sweep_into(now, &mut changes);
        changes
    }

    fn sweep_into(&mut self, now: Instant, changes: &mut Vec<AddrChange>) {
        self.by_key.retain(|&key, names| {
            changes.extend(names.reconcile(key, now));
            !names.expired(now)
        });
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const ADDR: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn an_address_only_denied_names_gave_is_refused_until_its_answer_expires() {
        let mut a = DnsAddrs::default();
        let now = Instant::now();
        let ttl = now + Duration::from_secs(60);
        assert_eq!(
            a.learn(1, ADDR, true, ttl, now),
            Some(AddrChange::Deny(1, ADDR))
        );
        assert_eq!(a.learn(1, ADDR, true, ttl, now), None, "already denied");
        assert_eq!(a.sweep(now + Duration::from_secs(30)), vec![]);
        assert_eq!(
            a.sweep(now + Duration::from_secs(61)),
            vec![AddrChange::Forget(1, ADDR)]
        );
        assert!(a.is_empty());
    }

    #[test]
    fn a_shared_address_is_never_refused_at_connect() {
        let mut a = DnsAddrs::default();
        let now = Instant::now();
        let ttl = now + Duration::from_secs(60);
        assert_eq!(a.learn(1, ADDR, false, ttl, now), None);
        assert_eq!(a.learn(1, ADDR, true, ttl, now), None, "a CDN address");
        // Learnt denied first, then shared: forgotten in the kernel.
        assert_eq!(
            a.learn(2, ADDR, true, ttl, now),
            Some(AddrChange::Deny(2, ADDR))
        );
        assert_eq!(
            a.learn(2, ADDR, false, ttl, now),
            Some(AddrChange::Forget(2, ADDR))
        );
        assert_eq!(a.sweep(now + Duration::from_secs(61)), vec![]);
    }

    #[test]
    fn when_the_shared_answer_expires_first_the_address_is_denied_until_its_own_does() {
        let mut a = DnsAddrs::default();
        let now = Instant::now();
        a.learn(1, ADDR, false, now + Duration::from_secs(30), now);
        assert_eq!(
            a.learn(1, ADDR, true, now + Duration::from_secs(90), now),
            None
        );
        assert_eq!(
            a.sweep(now + Duration::from_secs(31)),
            vec![AddrChange::Deny(1, ADDR)]
        );
        assert_eq!(
            a.sweep(now + Duration::from_secs(91)),
            vec![AddrChange::Forget(1, ADDR)]
        );
    }

    #[test]
    fn cgroups_are_apart_and_the_table_is_bounded() {
        let mut a = DnsAddrs::default();
        let now = Instant::now();
        let ttl = now + Duration::from_secs(60);
        for cgroup in 0..DNS_ADDRS_MAX as u64 {
            a.learn(cgroup, ADDR, true, ttl, now);
        }
        assert_eq!(
            a.learn(u64::MAX, ADDR, true, ttl, now),
            None,
            "full: fails open"
        );
        assert_eq!(a.len(), DNS_ADDRS_MAX);
    }
}
