//! Classification: which route a connection took.
//!
//! [`pattern`] (host, `*.suffix`, IP, CIDR, with a port) → [`rules`] (the
//! user's) and [`catalog`] (built in, from `catalog.toml`) say what an
//! endpoint is ([`kind::Kind`]) → [`classifier`] decides the
//! [`kind::Route`] by precedence. Pure: no I/O, no clocks.
pub mod catalog;
pub mod classifier;
pub mod kind;
pub mod pattern;
pub mod rules;

pub use catalog::Catalog;
pub use classifier::{Classifier, Matched, Verdict};
pub use kind::{Kind, Route};
pub use pattern::{HostPattern, Pattern};
pub use rules::{Rule, rule};
