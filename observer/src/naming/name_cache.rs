//! Names learnt from DNS answers, by destination IP.
//!
//! A connection to an IP is named by the DNS answer that gave that IP out:
//! first the answer its own cgroup received, else any answer seen on the
//! node. The name kept is always the question (what the client asked
//! for), never a CNAME target: Azure OpenAI names CNAME into
//! `*.azure-api.net`, the API Management gateway's domain, and naming a
//! direct call by the end of its chain would pass it off as a gateway call.
//! The chain is kept as evidence only.
//!
//! Both maps are LRU-bounded, so memory stays capped whatever the traffic;
//! entries also expire with their (clamped) TTL. Time is a parameter, so
//! tests and replays control it.
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;

use super::dns::{DnsAnswer, ServiceHint};

/// Names whose `HTTPS`/`SVCB` hints are remembered, per cgroup.
pub const SERVICE_HINTS_MAX: usize = 4096;

/// Shortest time a learnt address is kept, whatever its TTL. Load-balanced
/// names are served with TTLs of 0 to a few seconds, and clients keep using
/// an answer past its TTL (the JVM caches lookups for 30 s by default), so
/// the connect that follows a lookup must still find its name.
pub const MIN_TTL: Duration = Duration::from_secs(30);

/// Longest time a learnt address is kept. Cloud addresses are reassigned,
/// and a TTL may be as large as 68 years: the cap bounds how long a stale
/// answer can name someone else's address.
pub const MAX_TTL: Duration = Duration::from_secs(60 * 60);

/// Where a name was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// From an answer the connecting cgroup itself received.
    Cgroup,
    /// From an answer another cgroup on the node received: weaker evidence
    /// (a shared CDN address may serve many names).
    Node,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameHit {
    /// The question of the answer that gave out the address.
    pub name: String,
    /// That answer's CNAME chain, evidence only.
    pub cnames: Vec<String>,
    pub scope: Scope,
}

/// One DNS answer, shared by the entries of all its addresses.
#[derive(Debug)]
struct Learnt {
    name: String,
    cnames: Vec<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    learnt: Arc<Learnt>,
    expires: Instant,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        now < self.expires
    }
}

pub struct NameCache {
    by_cgroup: LruCache<(u64, IpAddr), Entry>,
    by_ip: LruCache<IpAddr, Entry>,
    /// `HTTPS`/`SVCB` hints by (cgroup, name), evidence for flow records.
    services: LruCache<(u64, String), (Arc<ServiceHint>, Instant)>,
    evictions: u64,
}

impl NameCache {
    /// Each of the two maps (per cgroup, node-wide) holds at most `capacity`
    /// addresses.
    pub fn new(capacity: NonZeroUsize) -> Self {
        Self {
            by_cgroup: LruCache::new(capacity),
            by_ip: LruCache::new(capacity),
            services: LruCache::new(
                NonZeroUsize::new(SERVICE_HINTS_MAX).unwrap_or(NonZeroUsize::MIN),
            ),
            evictions: 0,
        }
    }

    /// Remembers the addresses of `answer`, received by `cgroup_id` at `now`.
    /// A newer answer for an address replaces the older one.
    pub fn learn(&mut self, cgroup_id: u64, answer: &DnsAnswer, now: Instant) {
        if let Some((hint, ttl)) = &answer.service {
            let ttl = Duration::from_secs((*ttl).into()).clamp(MIN_TTL, MAX_TTL);
            let expires = now.checked_add(ttl).unwrap_or(now);
            self.services.push(
                (cgroup_id, answer.question.clone()),
                (Arc::new(hint.clone()), expires),
            );
        }
        if answer.addrs.is_empty() {
            return;
        }
        let learnt = Arc::new(Learnt {
            name: answer.question.clone(),
            cnames: answer.cnames.clone(),
        });
        for &(ip, ttl) in &answer.addrs {
            let ip = ip.to_canonical();
            let ttl = Duration::from_secs(ttl.into()).clamp(MIN_TTL, MAX_TTL);
            let entry = Entry {
                learnt: Arc::clone(&learnt),
                // No panic even for an Instant near the end of its range.
                expires: now.checked_add(ttl).unwrap_or(now),
            };
            let key = (cgroup_id, ip);
            if self
                .by_cgroup
                .push(key, entry.clone())
                .is_some_and(|(old, _)| old != key)
            {
                self.evictions += 1;
            }
            if self.by_ip.push(ip, entry).is_some_and(|(old, _)| old != ip) {
                self.evictions += 1;
            }
        }
    }

    /// The name for a connection from `cgroup_id` to `ip` at `now`: the
    /// cgroup's own answer first, then the node's. Expired entries are
    /// dropped on the way.
    pub fn lookup(&mut self, cgroup_id: u64, ip: IpAddr, now: Instant) -> Option<NameHit> {
        let ip = ip.to_canonical();
        let key = (cgroup_id, ip);
        if let Some(hit) = live(&mut self.by_cgroup, &key, now, Scope::Cgroup) {
            // The address is in use: keep its node-wide entry too.
            self.by_ip.promote(&ip);
            return Some(hit);
        }
        live(&mut self.by_ip, &ip, now, Scope::Node)
    }

    /// What `name`'s `HTTPS`/`SVCB` records advertised to `cgroup_id`, if it
    /// asked for them and they are still live.
    pub fn service(
        &mut self,
        cgroup_id: u64,
        name: &str,
        now: Instant,
    ) -> Option<Arc<ServiceHint>> {
        if self.services.is_empty() {
            return None;
        }
        let key = (cgroup_id, name.to_owned());
        match self.services.get(&key) {
            Some((hint, expires)) if now < *expires => Some(Arc::clone(hint)),
            Some(_) => {
                self.services.pop(&key);
                None
            }
            None => None,
        }
    }

    /// Entries held in both maps, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.by_cgroup.len() + self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries pushed out by the capacity bound (not by expiry) so far: a
    /// rising count means the cache is too small for the node's traffic.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Drops every expired entry and returns how many; for a periodic sweep,
    /// since lookups only drop the entries they meet.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        let before = self.len();
        self.by_cgroup.retain(|_, entry| entry.live(now));
        self.by_ip.retain(|_, entry| entry.live(now));
        self.services.retain(|_, (_, expires)| now < *expires);
        before - self.len()
    }
}

/// A hit for `key` if it is live; an expired entry is removed.
fn live<K: std::hash::Hash + Eq>(
    map: &mut LruCache<K, Entry>,
    key: &K,
    now: Instant,
    scope: Scope,
) -> Option<NameHit> {
    match map.get(key) {
        Some(entry) if entry.live(now) => Some(NameHit {
            name: entry.learnt.name.clone(),
            cnames: entry.learnt.cnames.clone(),
            scope,
        }),
        Some(_) => {
            map.pop(key);
            None
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::dns::parse_response;

    const CONTOSO_CHAIN: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/dns_contoso_cname_chain_a.bin"
    ));

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn answer(question: &str, addrs: &[(&str, u32)]) -> DnsAnswer {
        DnsAnswer {
            question: question.into(),
            cnames: Vec::new(),
            addrs: addrs.iter().map(|&(a, ttl)| (ip(a), ttl)).collect(),
            service: None,
        }
    }

    fn cache(capacity: usize) -> NameCache {
        NameCache::new(NonZeroUsize::new(capacity).unwrap())
    }

    const POD_A: u64 = 101;
    const POD_B: u64 = 202;

    #[test]
    fn service_hints_are_kept_per_cgroup_and_expire() {
        let mut cache = NameCache::new(NonZeroUsize::new(4).unwrap());
        let now = Instant::now();
        let hint = ServiceHint {
            alpn: vec!["h3".into()],
            ech: true,
        };
        let mut a = answer("api.example.test", &[]);
        a.service = Some((hint.clone(), 60));
        cache.learn(7, &a, now);
        assert_eq!(
            cache.service(7, "api.example.test", now).as_deref(),
            Some(&hint)
        );
        assert_eq!(cache.service(8, "api.example.test", now), None);
        assert_eq!(cache.service(7, "other.test", now), None);
        let later = now + Duration::from_secs(61);
        assert_eq!(cache.purge_expired(later), 0, "addresses only");
        assert_eq!(cache.service(7, "api.example.test", later), None);
    }

    #[test]
    fn cname_trap_names_the_question_not_the_gateway_domain() {
        let t0 = Instant::now();
        let mut names = cache(16);
        names.learn(POD_A, &parse_response(CONTOSO_CHAIN).unwrap(), t0);
        let hit = names.lookup(POD_A, ip("10.20.30.40"), t0).unwrap();
        assert_eq!(hit.name, "contoso.openai.azure.com");
        assert_eq!(hit.scope, Scope::Cgroup);
        assert_eq!(
            hit.cnames.last().map(String::as_str),
            Some("cognitiveweprod-eastus-01.regional.azure-api.net")
        );
    }

    #[test]
    fn own_cgroup_answer_beats_node_wide_one() {
        let t0 = Instant::now();
        let mut names = cache(16);
        names.learn(
            POD_A,
            &answer("api.openai.com", &[("162.159.140.245", 300)]),
            t0,
        );
        // A later answer elsewhere on the node for the same shared address.
        names.learn(
            POD_B,
            &answer("other.example", &[("162.159.140.245", 300)]),
            t0,
        );
        let hit = names.lookup(POD_A, ip("162.159.140.245"), t0).unwrap();
        assert_eq!(
            (hit.name.as_str(), hit.scope),
            ("api.openai.com", Scope::Cgroup)
        );
        let hit = names.lookup(POD_B, ip("162.159.140.245"), t0).unwrap();
        assert_eq!(
            (hit.name.as_str(), hit.scope),
            ("other.example", Scope::Cgroup)
        );
    }

    #[test]
    fn other_cgroup_finds_node_wide_name() {
        let t0 = Instant::now();
        let mut names = cache(16);
        names.learn(
            POD_A,
            &answer("api.openai.com", &[("162.159.140.245", 300)]),
            t0,
        );
        let hit = names.lookup(POD_B, ip("162.159.140.245"), t0).unwrap();
        assert_eq!(
            (hit.name.as_str(), hit.scope),
            ("api.openai.com", Scope::Node)
        );
        assert_eq!(names.lookup(POD_B, ip("192.0.2.1"), t0), None);
    }

    #[test]
    fn entries_expire_with_their_ttl() {
        let t0 = Instant::now();
        let mut names = cache(16);
        names.learn(POD_A, &answer("a.example", &[("192.0.2.1", 120)]), t0);
        let before = t0 + Duration::from_secs(119);
        assert!(names.lookup(POD_A, ip("192.0.2.1"), before).is_some());
        let after = t0 + Duration::from_secs(120);
        assert_eq!(names.lookup(POD_A, ip("192.0.2.1"), after), None);
        assert_eq!(names.lookup(POD_B, ip("192.0.2.1"), after), None);
    }

    #[test]
    fn expired_own_entry_falls_back_to_a_live_node_entry() {
        let t0 = Instant::now();
        let mut names = cache(16);
        names.learn(POD_A, &answer("a.example", &[("192.0.2.1", 60)]), t0);
        let t1 = t0 + Duration::from_secs(50);
        names.learn(POD_B, &answer("b.example", &[("192.0.2.1", 60)]), t1);
        let hit = names.lookup(POD_A, ip("192.0.2.1"), t0 + Duration::from_secs(70));
        assert_eq!(
            hit.map(|h| (h.name, h.scope)),
            Some(("b.example".into(), Scope::Node))
        );
    }

    #[test]
    fn tiny_ttl_is_raised_to_the_floor() {
        let t0 = Instant::now();
        let mut names = cache(16);
        names.learn(POD_A, &answer("lb.example", &[("192.0.2.1", 0)]), t0);
        let just_before = t0 + MIN_TTL - Duration::from_millis(1);
        assert!(names.lookup(POD_A, ip("192.0.2.1"), just_before).is_some());
        assert_eq!(names.lookup(POD_A, ip("192.0.2.1"), t0 + MIN_TTL), None);
    }

    #[test]
    fn huge_ttl_is_capped() {
        let t0 = Instant::now();
        let mut names = cache(16);
        names.learn(POD_A, &answer("a.example", &[("192.0.2.1", u32::MAX)]), t0);
        let just_before = t0 + MAX_TTL - Duration::from_millis(1);
        assert!(names.lookup(POD_A, ip("192.0.2.1"), just_before).is_some());
        assert_eq!(names.lookup(POD_A, ip("192.0.2.1"), t0 + MAX_TTL), None);
    }

    #[test]
    fn newer_answer_replaces_older_for_the_same_address() {
        let t0 = Instant::now();
        let mut names = cache(16);
        names.learn(POD_A, &answer("old.example", &[("192.0.2.1", 300)]), t0);
        names.learn(POD_A, &answer("new.example", &[("192.0.2.1", 300)]), t0);
        assert_eq!(
            names.lookup(POD_A, ip("192.0.2.1"), t0).unwrap().name,
            "new.example"
        );
        assert_eq!(names.len(), 2);
        assert_eq!(names.evictions(), 0, "a replacement is not an eviction");
    }

    #[test]
    fn capacity_bounds_both_maps_and_counts_evictions() {
        let t0 = Instant::now();
        let mut names = cache(3);
        for i in 0..10u8 {
            let addr = format!("192.0.2.{i}");
            names.learn(POD_A, &answer("a.example", &[(addr.as_str(), 300)]), t0);
        }
        assert_eq!(names.len(), 6);
        assert_eq!(names.evictions(), 14);
        // The least recently used went first.
        assert_eq!(names.lookup(POD_B, ip("192.0.2.0"), t0), None);
        assert!(names.lookup(POD_A, ip("192.0.2.9"), t0).is_some());
    }

    #[test]
    fn lookup_refreshes_recency() {
        let t0 = Instant::now();
        let mut names = cache(2);
        names.learn(POD_A, &answer("one.example", &[("192.0.2.1", 300)]), t0);
        names.learn(POD_A, &answer("two.example", &[("192.0.2.2", 300)]), t0);
        assert!(names.lookup(POD_A, ip("192.0.2.1"), t0).is_some());
        names.learn(POD_A, &answer("three.example", &[("192.0.2.3", 300)]), t0);
        assert!(names.lookup(POD_A, ip("192.0.2.1"), t0).is_some());
        assert_eq!(names.lookup(POD_A, ip("192.0.2.2"), t0), None);
    }

    #[test]
    fn ipv4_mapped_ipv6_is_the_same_address() {
        let t0 = Instant::now();
        let mut names = cache(16);
        names.learn(
            POD_A,
            &answer("a.example", &[("::ffff:192.0.2.1", 300)]),
            t0,
        );
        let hit = names.lookup(POD_A, ip("192.0.2.1"), t0).unwrap();
        assert_eq!(hit.name, "a.example");
        names.learn(POD_A, &answer("b.example", &[("192.0.2.7", 300)]), t0);
        let hit = names.lookup(POD_A, ip("::ffff:192.0.2.7"), t0).unwrap();
        assert_eq!(hit.name, "b.example");
    }

    #[test]
    fn answer_without_addresses_learns_nothing() {
        let t0 = Instant::now();
        let mut names = cache(16);
        names.learn(POD_A, &answer("nx.example", &[]), t0);
        assert!(names.is_empty());
    }

    #[test]
    fn purge_drops_only_expired_entries() {
        let t0 = Instant::now();
        let mut names = cache(16);
        names.learn(POD_A, &answer("short.example", &[("192.0.2.1", 60)]), t0);
        names.learn(POD_A, &answer("long.example", &[("192.0.2.2", 600)]), t0);
        assert_eq!(names.len(), 4);
        assert_eq!(names.purge_expired(t0 + Duration::from_secs(61)), 2);
        assert_eq!(names.len(), 2);
        assert!(names.lookup(POD_A, ip("192.0.2.2"), t0).is_some());
    }
}
