//! A flow's metric labels as one typed value, the caps that bound how many
//! distinct values each label may take, and the interner that lets live
//! flows with the same labels share one copy.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use crate::classification::Route;

/// Value that replaces a label value once its label reached its cap.
pub const OVERFLOW_VALUE: &str = "_other";

/// Default number of distinct values kept per capped label.
pub const DEFAULT_LABEL_CAP: usize = 1000;

/// Labels that identify a flow's destination and workload, in order; the
/// per-flow metrics share them so series join cleanly.
pub const FLOW_LABELS: [&str; 7] = [
    "route",
    "provider",
    "endpoint",
    "namespace",
    "pod",
    "container",
    "process",
];

/// Distinct label sets kept for sharing between live flows; past this the
/// interner starts over (flows keep their own copies).
const INTERNED_LABEL_SETS: usize = 65_536;

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
}

impl FlowLabels {
    /// Values in `FLOW_LABELS` order.
    pub fn values(&self) -> [&str; 7] {
        [
            self.route.as_str(),
            &self.provider,
            &self.endpoint,
            &self.namespace,
            &self.pod,
            &self.container,
            &self.process,
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
        }
    }
}

/// Label sets shared by the flows that carry them.
pub type SharedLabels = Arc<FlowLabels>;

/// What [`LabelCaps::admit`] decided.
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

/// Caps the number of distinct values per label.
#[derive(Debug)]
pub struct LabelCaps {
    cap: usize,
    seen: HashMap<&'static str, HashSet<String>>,
}

impl LabelCaps {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            seen: HashMap::new(),
        }
    }

    /// Keeps `value`, or folds it once `label` has `cap` other values.
    /// Empty values (unknown) are always kept.
    pub fn admit<'a>(&mut self, label: &'static str, value: &'a str) -> Admit<'a> {
        if value.is_empty() {
            return Admit::Kept(value);
        }
        let seen = self.seen.entry(label).or_default();
        if seen.contains(value) {
            return Admit::Kept(value);
        }
        if seen.len() < self.cap {
            seen.insert(value.to_owned());
            return Admit::Kept(value);
        }
        Admit::Folded
    }
}

/// One copy per distinct label set among live flows.
#[derive(Debug, Default)]
pub struct Interner {
    sets: HashSet<SharedLabels>,
}

impl Interner {
    pub fn intern(&mut self, labels: FlowLabels) -> SharedLabels {
        if let Some(shared) = self.sets.get(&labels) {
            return shared.clone();
        }
        if self.sets.len() >= INTERNED_LABEL_SETS {
            self.sets.clear();
        }
        let shared = Arc::new(labels);
        self.sets.insert(shared.clone());
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_past_the_cap_fold_into_other() {
        let mut caps = LabelCaps::new(2);
        assert_eq!(caps.admit("endpoint", "a"), Admit::Kept("a"));
        assert_eq!(caps.admit("endpoint", "b"), Admit::Kept("b"));
        assert_eq!(caps.admit("endpoint", "a"), Admit::Kept("a"));
        assert_eq!(caps.admit("endpoint", "c"), Admit::Folded);
        assert_eq!(caps.admit("endpoint", "c").value(), OVERFLOW_VALUE);
        assert_eq!(caps.admit("process", "c"), Admit::Kept("c"));
        assert_eq!(caps.admit("endpoint", ""), Admit::Kept(""));
    }

    #[test]
    fn equal_label_sets_share_one_copy() {
        let labels = FlowLabels::direct_openai("curl");
        let mut interner = Interner::default();
        let a = interner.intern(labels.clone());
        let b = interner.intern(labels);
        assert!(Arc::ptr_eq(&a, &b));
    }
}
