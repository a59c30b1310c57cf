//! What the kernel programs need from the process: capabilities, and on
//! old kernels a locked-memory limit high enough for the maps.
/// Capabilities the programs need, by bit number in `CapEff`.
pub const REQUIRED_CAPS: [(u32, &str); 3] = [
    (39, "CAP_BPF"),
    (38, "CAP_PERFMON"),
    (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
];
pub const CAP_SYS_ADMIN: u32 = 21;
const CAP_NET_ADMIN: u32 = 12;

/// Names the required capabilities missing from a `/proc/self/status` text.
pub fn missing_capabilities(status: &str) -> Vec<&'static str> {
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| eff & (1u64 << bit) != 0;
    REQUIRED_CAPS
        .iter()
        // CAP_SYS_ADMIN covers BPF and PERFMON (kernels before 5.8 only know it).
        .filter(|(bit, _)| !(has(*bit) || has(CAP_SYS_ADMIN) && *bit != CAP_NET_ADMIN))
        .map(|(_, name)| *name)
        .collect()
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK.
pub fn raise_memlock_limit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        log::debug!(
            "could not raise RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_missing_capability_by_name() {
        assert!(missing_capabilities("CapEff:\t000001ffffffffff\n").is_empty());
        assert_eq!(
            missing_capabilities("CapEff:\t0000000000000000\n"),
            ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"]
        );
        // BPF + PERFMON + NET_ADMIN only.
        let minimal = (1u64 << 39) | (1 << 38) | (1 << 12);
        assert!(missing_capabilities(&format!("CapEff:\t{minimal:016x}\n")).is_empty());
        let no_net = (1u64 << 39) | (1 << 38);
        assert_eq!(
            missing_capabilities(&format!("CapEff:\t{no_net:016x}\n")),
            ["CAP_NET_ADMIN"]
        );
        // SYS_ADMIN stands in for BPF and PERFMON, not NET_ADMIN.
        let sys_admin = 1u64 << 21;
        assert_eq!(
            missing_capabilities(&format!("CapEff:\t{sys_admin:016x}\n")),
            ["CAP_NET_ADMIN"]
        );
    }
}
