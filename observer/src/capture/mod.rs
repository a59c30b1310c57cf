//! Capture: the kernel side's records, into userspace.
//!
//! [`privileges`] and [`cgroup`] check what attaching needs → [`loader`]
//! loads the embedded programs (observer-ebpf) and attaches them to the
//! cgroup v2 tree, and with `--tls-probes` [`tls_libs`] finds and probes
//! TLS libraries (their syscall tracepoints found through [`tracefs`]) →
//! [`ring`] drains the one ring buffer they share and reads their drop
//! counters → [`decode`] turns each record into a typed [`Event`].
pub mod cgroup;
pub mod decode;
pub mod enforce_maps;
pub mod go_binary;
pub mod loader;
pub mod own_tgid;
pub mod privileges;
pub mod ring;
pub mod tls_libs;
pub mod tracefs;

pub use cgroup::find_cgroup2_root;
pub use decode::{
    Chunk, Closed, ConnectEvent, DecodeError, EnforceAction, EnforceEvent, Event, StateChange,
    StateEvent, decode,
};
pub use enforce_maps::{DenyAddrsMap, KernelTables, PolicyMap, mapped_octets};
pub use loader::{LoadError, LoadOptions, PROGRAMS, Probes};
