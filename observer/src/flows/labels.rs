//! A flow's metric labels as one typed value, and the registry of label
//! sets in use: it caps how many distinct values each label takes, lets
//! flows with the same labels share one copy, and expires what ended.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use super::record::Transport;
use crate::classification::Route;
use crate::fast_map::FastMap;

/// Value that replaces a label value once its label reached its cap.
pub const OVERFLOW_VALUE: &str = "_other";

/// Default number of distinct values kept per capped label.
pub const DEFAULT_LABEL_CAP: usize = 1000;

/// The `endpoint` value of a flow: `name:port`, or the address when it has
/// no name. Written digit by digit for IPv4 (the formatting machinery cost
/// about 7% of the daemon's time per connection).
pub fn endpoint_value(name: Option<&str>, dst: std::net::SocketAddr) -> String {
    let mut out = String::with_capacity(name.map_or(21, |n| n.len() + 6));
    match (name, dst) {
        (Some(name), _) => out.push_str(name),
        (None, std::net::SocketAddr::V4(v4)) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(&mut out, u32::from(octet));
            }
        }
        (None, std::net::SocketAddr::V6(v6)) => {
            use std::fmt::Write as _;
            let _ = write!(out, "[{}]", v6.ip());
        }
    }
    out.push(':');
    push_decimal(&mut out, u32::from(dst.port()));
    out
}

fn push_decimal(out: &mut String, n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// Labels that identify a flow's destination and workload, in order; the
/// per-flow metrics share them so series join cleanly.
pub const FLOW_LABELS: [&str; 8] = [
    "route",
    "provider",
    "endpoint",
    "namespace",
    "pod",
    "container",
    "process",
    "transport",
];

/// The labels [`LabelCaps`] bounds (`label` of `gatewatch_label_values_folded_total`).
pub const CAPPED_LABELS: [&str; 5] = ["endpoint", "namespace", "pod", "container", "process"];

/// The `FLOW_LABELS` values of one flow, capped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowLabels {
    pub route: Route,
    pub provider: String,
    pub endpoint: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub process: String,
    pub transport: Transport,
}

impl FlowLabels {
    /// Values in `FLOW_LABELS` order.
    pub fn values(&self) -> [&str; 8] {
        [
            self.route.as_str(),
            &self.provider,
            &self.endpoint,
            &self.namespace,
            &self.pod,
            &self.container,
            &self.process,
            self.transport.as_str(),
        ]
    }
}

#[cfg(test)]
impl FlowLabels {
    /// A direct flow to OpenAI by `process`, with no workload labels.
    pub fn direct_openai(process: &str) -> Self {
        FlowLabels {
            route: Route::Direct,
            provider: "openai".into(),
            endpoint: "api.openai.com:443".into(),
            namespace: String::new(),
            pod: String::new(),
            container: String::new(),
            process: process.into(),
            transport: Transport::Tcp,
        }
    }
}

/// Label sets shared by the flows that carry them.
pub type SharedLabels = Arc<FlowLabels>;

/// What [`LabelRegistry::admit`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit<'a> {
    Kept(&'a str),
    /// The label is full: the value is folded into [`OVERFLOW_VALUE`].
    Folded,
}

impl<'a> Admit<'a> {
    pub fn value(&self) -> &'a str {
        match self {
            Admit::Kept(v) => v,
            Admit::Folded => OVERFLOW_VALUE,
        }
    }
}

/// A registered set as the map's key: equal by address first, so a flow
/// handing back its shared copy costs no string comparison.
#[derive(Debug)]
struct SetKey(SharedLabels);

impl std::hash::Hash for SetKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for SetKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}

impl Eq for SetKey {}

impl std::borrow::Borrow<FlowLabels> for SetKey {
    fn borrow(&self) -> &FlowLabels {
        &self.0
    }
}

/// Label sets kept at most; past this, idle sets leave before their time.
pub const MAX_LABEL_SETS: usize = 65_536;

/// How a registered label set is used.
#[derive(Debug)]
struct Use {
    /// The shared copy (also in `sets`).
    shared: SharedLabels,
    /// Live flows carrying it.
    live: u32,
    /// When a flow last took or left it.
    last_used: Instant,
}

/// The label sets in use and the values they hold, so that what ended
/// leaves: a set no live flow carries expires `ttl` after its last use, and
/// a capped label's values count only while a set holds them. A node where
/// pods come and go keeps naming new pods, and the series of pods that
/// ended leave `/metrics`.
#[derive(Debug)]
pub struct LabelRegistry {
    cap: usize,
    ttl: Duration,
    /// Per capped label: each value alive, with how many sets hold it.
    /// In `CAPPED_LABELS` order.
    values: [HashMap<String, u32>; CAPPED_LABELS.len()],
    /// The sets by value (keyed SipHash: values come from the network).
    sets: HashSet<SetKey>,
    /// Their use, by the shared copy's address: a flow handing its copy
    /// back costs no hashing of its strings.
    uses: FastMap<usize, Use>,
}

impl LabelRegistry {
    pub fn new(cap: usize, ttl: Duration) -> Self {
        Self {
            cap,
            ttl,
            values: Default::default(),
            sets: HashSet::new(),
            uses: FastMap::default(),
        }
    }

    /// Keeps `value`, or folds it while `label` has `cap` other values
    /// alive. Empty values (unknown) are always kept.
    pub fn admit<'a>(&self, label: &'static str, value: &'a str) -> Admit<'a> {
        if value.is_empty() || value == OVERFLOW_VALUE {
            return Admit::Kept(value);
        }
        // Below the cap (the usual case) the value needs no lookup.
        match capped_slot(label).map(|slot| &self.values[slot]) {
            Some(alive) if alive.len() >= self.cap && !alive.contains_key(value) => Admit::Folded,
            _ => Admit::Kept(value),
        }
    }

    /// Registers one more live flow with `labels`; returns the shared copy
    /// and whether the set is new (its series do not exist yet).
    pub fn acquire(&mut self, labels: FlowLabels, now: Instant) -> (SharedLabels, bool) {
        if let Some(SetKey(shared)) = self.sets.get(&labels)
            && let Some(used) = self.uses.get_mut(&address(shared))
        {
            used.live += 1;
            used.last_used = now;
            return (used.shared.clone(), false);
        }
        for (alive, value) in self.values.iter_mut().zip(capped(&labels)) {
            if !value.is_empty() && value != OVERFLOW_VALUE {
                *alive.entry(value.to_owned()).or_default() += 1;
            }
        }
        let shared = Arc::new(labels);
        self.sets.insert(SetKey(shared.clone()));
        self.uses.insert(
            address(&shared),
            Use {
                shared: shared.clone(),
                live: 1,
                last_used: now,
            },
        );
        (shared, true)
    }

    /// A flow with `labels` closed (or was counted already closed).
    pub fn release(&mut self, labels: &SharedLabels, now: Instant) {
        // The registry holds each set's copy, so its address names it alone.
        if let Some(used) = self.uses.get_mut(&address(labels))
            && Arc::ptr_eq(&used.shared, labels)
        {
            used.live = used.live.saturating_sub(1);
            used.last_used = now;
        }
    }

    /// Removes the sets idle for `ttl` (all idle ones when there are too
    /// many sets) and returns them, so their series can go too.
    pub fn expire(&mut self, now: Instant) -> Vec<SharedLabels> {
        let crowded = self.uses.len() >= MAX_LABEL_SETS;
        let ttl = self.ttl;
        let gone: Vec<SharedLabels> = self
            .uses
            .values()
            .filter(|u| u.live == 0 && (crowded || now.duration_since(u.last_used) >= ttl))
            .map(|u| u.shared.clone())
            .collect();
        for labels in &gone {
            self.sets.remove(&**labels);
            self.uses.remove(&address(labels));
            for (alive, value) in self.values.iter_mut().zip(capped(labels)) {
                if let Some(n) = alive.get_mut(value) {
                    *n -= 1;
                    if *n == 0 {
                        alive.remove(value);
                    }
                }
            }
        }
        gone
    }

    /// Label sets registered (in use or idle within `ttl`).
    pub fn sets_len(&self) -> usize {
        self.uses.len()
    }

    /// Values alive for `label`.
    pub fn values_len(&self, label: &str) -> usize {
        capped_slot(label).map_or(0, |slot| self.values[slot].len())
    }
}

/// The values of a set's capped labels, in `CAPPED_LABELS` order.
fn capped(labels: &FlowLabels) -> [&str; CAPPED_LABELS.len()] {
    [
        &labels.endpoint,
        &labels.namespace,
        &labels.pod,
        &labels.container,
        &labels.process,
    ]
}

/// A shared set's address: its identity while the registry holds it.
fn address(labels: &SharedLabels) -> usize {
    Arc::as_ptr(labels) as usize
}

/// Where `label` is in `CAPPED_LABELS`.
fn capped_slot(label: &str) -> Option<usize> {
    CAPPED_LABELS.iter().position(|l| *l == label)
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoint_value_is_what_display_writes() {
        use std::net::SocketAddr;
        for dst in [
            "0.0.0.0:0",
            "10.0.0.1:443",
            "255.255.255.255:65535",
            "127.0.0.1:18080",
            "[::1]:443",
            "[2001:db8::7]:8443",
            "[::ffff:10.0.0.1]:80",
        ] {
            let addr: SocketAddr = dst.parse().expect("valid address");
            assert_eq!(endpoint_value(None, addr), addr.to_string(), "{dst}");
            assert_eq!(
                endpoint_value(Some("api.openai.com"), addr),
                format!("api.openai.com:{}", addr.port())
            );
        }
    }

    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn pod(name: &str) -> FlowLabels {
        FlowLabels {
            pod: name.into(),
            ..FlowLabels::direct_openai("agent")
        }
    }

    #[test]
    fn label_values_past_the_cap_fold_into_other() {
        let mut reg = LabelRegistry::new(2, TTL);
        let now = Instant::now();
        for p in ["a", "b"] {
            assert_eq!(reg.admit("pod", p), Admit::Kept(p));
            reg.acquire(pod(p), now);
        }
        assert_eq!(reg.admit("pod", "a"), Admit::Kept("a"));
        assert_eq!(reg.admit("pod", "c"), Admit::Folded);
        assert_eq!(reg.admit("pod", "c").value(), OVERFLOW_VALUE);
        assert_eq!(reg.admit("namespace", "c"), Admit::Kept("c"));
        assert_eq!(reg.admit("pod", ""), Admit::Kept(""));
    }

    #[test]
    fn values_of_sets_that_ended_leave_after_the_ttl() {
        let mut reg = LabelRegistry::new(2, TTL);
        let t0 = Instant::now();
        for p in ["a", "b"] {
            let (labels, new) = reg.acquire(pod(p), t0);
            assert!(new);
            reg.release(&labels, t0);
        }
        assert_eq!(reg.admit("pod", "c"), Admit::Folded, "the cap is full");
        assert!(reg.expire(t0 + TTL / 2).is_empty(), "not yet");
        let gone = reg.expire(t0 + TTL);
        assert_eq!(gone.len(), 2);
        assert_eq!(reg.admit("pod", "c"), Admit::Kept("c"), "room again");
        assert_eq!((reg.sets_len(), reg.values_len("pod")), (0, 0));
    }

    #[test]
    fn a_set_with_a_live_flow_never_expires() {
        let mut reg = LabelRegistry::new(10, TTL);
        let t0 = Instant::now();
        let (a, _) = reg.acquire(pod("a"), t0);
        let (b, new) = reg.acquire(pod("a"), t0);
        assert!(!new && Arc::ptr_eq(&a, &b), "equal sets share one copy");
        reg.release(&a, t0);
        assert!(reg.expire(t0 + 10 * TTL).is_empty(), "one flow still live");
        reg.release(&b, t0 + 10 * TTL);
        assert!(
            reg.expire(t0 + 10 * TTL).is_empty(),
            "idle from its last use"
        );
        assert_eq!(reg.expire(t0 + 11 * TTL).len(), 1);
    }
}
