//! Selectors naming the sanctioned AI gateway's own workloads, so their
//! provider traffic is not reported as a bypass.
//!
//! Syntax: `KEY=VALUE[,KEY=VALUE…]`; every term must match. Keys:
//!
//! | key | matches | value |
//! | --- | --- | --- |
//! | `namespace` | Kubernetes namespace | glob |
//! | `pod` | pod name | glob |
//! | `container` | container name | glob |
//! | `process` | process comm (the kernel's 15-byte name) | glob |
//! | `exe` | executable path | glob |
//! | `label` | pod label, `label=NAME=VALUE` | exact |
//!
//! Keys are case-insensitive, values are not. Globs: `*` any run, `?` one
//! character. A term never matches an empty (unknown) field, so
//! `namespace=*` means "in any namespace", not "anywhere".
//!
//! `label` needs pod labels, which only the Kubernetes API has (`--kube-api`,
//! see [`KubePods`](super::KubePods)); without it a selector with a `label`
//! term never matches. [`GatewaySelector::needs_kubernetes_api`] tells a
//! caller to warn about that.
use std::{fmt, str::FromStr};

use super::{Workload, glob::Glob};

/// The keys a selector accepts, as listed in error messages.
pub const SELECTOR_KEYS: &str = "namespace, pod, container, process, exe, label";

/// The kernel truncates comm to 15 bytes (TASK_COMM_LEN 16 with the NUL).
const COMM_MAX_LEN: usize = 15;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error("empty selector: expected KEY=VALUE with KEY one of: {SELECTOR_KEYS}")]
    Empty,
    #[error("{term:?} is not KEY=VALUE (keys: {SELECTOR_KEYS})")]
    NotKeyValue { term: String },
    #[error("unknown selector key {key:?} (allowed keys: {SELECTOR_KEYS})")]
    UnknownKey { key: String },
    #[error("selector key {key:?} has an empty value")]
    EmptyValue { key: String },
    #[error("selector key {key:?} is given twice; write one selector per alternative")]
    DuplicateKey { key: String },
    #[error("bad selector key \"label\": {value:?} is not NAME=VALUE (e.g. label=app=litellm)")]
    BadLabel { value: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Term {
    Namespace(Glob),
    Pod(Glob),
    Container(Glob),
    Process(Glob),
    Exe(Glob),
    Label { name: String, value: String },
}

impl Term {
    fn parse(term: &str) -> Result<Self, SelectorError> {
        let (key, value) = term
            .split_once('=')
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()))
            .ok_or_else(|| SelectorError::NotKeyValue { term: term.into() })?;
        // `None` for label, which takes NAME=VALUE rather than a glob.
        let glob_term: Option<fn(Glob) -> Self> = match key.as_str() {
            "namespace" => Some(Self::Namespace),
            "pod" => Some(Self::Pod),
            "container" => Some(Self::Container),
            "process" => Some(Self::Process),
            "exe" => Some(Self::Exe),
            "label" => None,
            _ => return Err(SelectorError::UnknownKey { key }),
        };
        if value.is_empty() {
            return Err(SelectorError::EmptyValue { key });
        }
        match glob_term {
            Some(make) => Ok(make(Glob::new(value))),
            None => Self::parse_label(value),
        }
    }

    fn parse_label(value: &str) -> Result<Self, SelectorError> {
        let bad = || SelectorError::BadLabel {
            value: value.into(),
        };
        let (name, v) = value.split_once('=').ok_or_else(bad)?;
        let (name, v) = (name.trim(), v.trim());
        if name.is_empty() || v.is_empty() {
            return Err(bad());
        }
        Ok(Self::Label {
            name: name.into(),
            value: v.into(),
        })
    }

    fn key(&self) -> &'static str {
        match self {
            Self::Namespace(_) => "namespace",
            Self::Pod(_) => "pod",
            Self::Container(_) => "container",
            Self::Process(_) => "process",
            Self::Exe(_) => "exe",
            Self::Label { .. } => "label",
        }
    }

    fn matches(&self, w: &Workload, comm: &str) -> bool {
        let field = |glob: &Glob, value: &str| !value.is_empty() && glob.matches(value);
        match self {
            Self::Namespace(g) => field(g, &w.namespace),
            Self::Pod(g) => field(g, &w.pod),
            Self::Container(g) => field(g, &w.container),
            Self::Process(g) => field(g, comm) || comm_prefix_matches(g, comm),
            Self::Exe(g) => field(g, &w.exe),
            // Pod labels come only from the Kubernetes API: none without it.
            Self::Label { name, value } => w.labels.get(name) == Some(value),
        }
    }
}

/// `process=some-long-name` still matches its truncated comm.
fn comm_prefix_matches(glob: &Glob, comm: &str) -> bool {
    let want = glob.as_str();
    glob.is_literal()
        && comm.len() == COMM_MAX_LEN
        && want.len() > COMM_MAX_LEN
        && want.as_bytes().starts_with(comm.as_bytes())
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Namespace(g)
            | Self::Pod(g)
            | Self::Container(g)
            | Self::Process(g)
            | Self::Exe(g) => {
                write!(f, "{}={g}", self.key())
            }
            Self::Label { name, value } => write!(f, "label={name}={value}"),
        }
    }
}

/// A conjunction of terms identifying gateway workloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewaySelector {
    terms: Vec<Term>,
}

impl GatewaySelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut terms: Vec<Term> = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let term = Term::parse(raw)?;
            // Several labels can all hold; two values of one field cannot.
            let key = term.key();
            if key != "label" && terms.iter().any(|t| t.key() == key) {
                return Err(SelectorError::DuplicateKey { key: key.into() });
            }
            terms.push(term);
        }
        if terms.is_empty() {
            return Err(SelectorError::Empty);
        }
        Ok(Self { terms })
    }

    /// True when every term matches the workload and its process comm.
    pub fn matches(&self, w: &Workload, comm: &str) -> bool {
        self.terms.iter().all(|t| t.matches(w, comm))
    }

    /// True when a term (`label`) can only match with the Kubernetes API.
    pub fn needs_kubernetes_api(&self) -> bool {
        self.terms.iter().any(|t| matches!(t, Term::Label { .. }))
    }
}

impl FromStr for GatewaySelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A workload described in selector syntax, each value taken literally
/// (`namespace=team-a,process=python3`), for `gatewatch classify --as`:
/// the workload and its process comm.
pub fn describe_workload(s: &str) -> Result<(Workload, String), SelectorError> {
    let selector = GatewaySelector::parse(s)?;
    let mut w = Workload::default();
    let mut comm = String::new();
    let mut labels = std::collections::BTreeMap::new();
    for term in selector.terms {
        match term {
            Term::Namespace(g) => w.namespace = g.as_str().to_owned(),
            Term::Pod(g) => w.pod = g.as_str().to_owned(),
            Term::Container(g) => w.container = g.as_str().to_owned(),
            Term::Process(g) => comm = g.as_str().to_owned(),
            Term::Exe(g) => w.exe = g.as_str().to_owned(),
            Term::Label { name, value } => {
                labels.insert(name, value);
            }
        }
    }
    w.labels = std::sync::Arc::new(labels);
    Ok((w, comm))
}

impl fmt::Display for GatewaySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, term) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{term}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
