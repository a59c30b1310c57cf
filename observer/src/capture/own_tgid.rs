//! gatewatch's own process id as the kernel programs see it.
//!
//! The programs skip gatewatch's own sockets by comparing
//! `bpf_get_current_pid_tgid() >> 32` with `OWN_TGID`. That helper returns
//! the tgid in the initial (host) PID namespace, while
//! [`std::process::id`] is the pid in gatewatch's own namespace: in a
//! container without hostPID they differ (as pid 1 there, gatewatch would
//! hide the host's pid 1 and count its own connections). procfs resolves
//! `self` in the PID namespace of the procfs mount, so `{proc_root}/self`
//! on the host's procfs (/host/proc in the DaemonSet) names the host tgid.
use std::path::Path;

/// Where the tgid came from, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TgidSource {
    /// `{proc_root}/self`: the tgid in the PID namespace of that procfs.
    ProcRoot,
    /// `std::process::id()`: right only when gatewatch shares the host's
    /// PID namespace (or proc_root is not the host's procfs).
    OwnNamespace,
}

/// The tgid a `/proc/self` link target names ("1234"); None for anything
/// else (an empty or non-numeric target, or pid 0, which no process has).
pub fn parse_self_link(target: &str) -> Option<u32> {
    match target.trim().parse::<u32>() {
        Ok(0) | Err(_) => None,
        Ok(tgid) => Some(tgid),
    }
}

/// gatewatch's tgid in the PID namespace of the procfs at `proc_root`,
/// falling back to [`std::process::id`] with a warning when
/// `{proc_root}/self` cannot be read.
pub fn own_host_tgid(proc_root: &Path) -> (u32, TgidSource) {
    let link = proc_root.join("self");
    let read = std::fs::read_link(&link);
    match read
        .as_ref()
        .ok()
        .and_then(|t| t.to_str())
        .and_then(parse_self_link)
    {
        Some(tgid) => (tgid, TgidSource::ProcRoot),
        None => {
            let why = match read {
                Ok(t) => format!("it points to {}", t.display()),
                Err(e) => e.to_string(),
            };
            log::warn!(
                "cannot read gatewatch's host pid from {} ({why}); using its own pid {}: \
                 without the host's /proc as --proc-root, gatewatch may count its own \
                 connections and hide another process's",
                link.display(),
                std::process::id()
            );
            (std::process::id(), TgidSource::OwnNamespace)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::test_support::TempDir;

    #[test]
    fn a_numeric_self_link_names_the_tgid() {
        assert_eq!(parse_self_link("48213"), Some(48213));
        assert_eq!(parse_self_link("1"), Some(1));
    }

    #[test]
    fn anything_but_a_positive_pid_is_refused() {
        for target in ["", "0", "self", "-3", "12/task", "4294967296"] {
            assert_eq!(parse_self_link(target), None, "{target:?}");
        }
    }

    #[test]
    fn the_tgid_is_read_from_the_given_proc_root() {
        let root = TempDir::new("own-tgid");
        root.symlink("31337", "self");
        assert_eq!(own_host_tgid(root.path()), (31337, TgidSource::ProcRoot));
    }

    #[test]
    fn an_unreadable_self_link_falls_back_to_the_own_pid() {
        let root = TempDir::new("own-tgid-missing");
        assert_eq!(
            own_host_tgid(root.path()),
            (std::process::id(), TgidSource::OwnNamespace)
        );
        root.symlink("not-a-pid", "self");
        assert_eq!(own_host_tgid(root.path()).1, TgidSource::OwnNamespace);
    }

    #[test]
    fn on_this_hosts_proc_the_tgid_is_the_own_pid() {
        // The tests share the host's PID namespace, so both agree here.
        assert_eq!(
            own_host_tgid(Path::new("/proc")),
            (std::process::id(), TgidSource::ProcRoot)
        );
    }
}
