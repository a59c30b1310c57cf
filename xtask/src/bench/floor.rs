//! The floor: what the hooks themselves cost. Programs of two instructions
//! (`r0 = 1; exit`: let everything through) are attached at the cgroup v2
//! root at every hook gatewatch uses, with nothing behind them: no map, no
//! helper, no daemon. The kernel then runs its cgroup-BPF dispatch on every
//! packet, connect and socket event, which is the part of gatewatch's
//! overhead no program at these hooks can avoid.
//!
//! Loaded with bpf(2) directly, so the bench needs no compiler for them,
//! and attached through BPF links, which the kernel detaches when their
//! file descriptors close (on drop, and if the bench dies).
use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
};

use anyhow::Context as _;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

const PROG_CGROUP_SKB: u32 = 8;
const PROG_CGROUP_SOCK: u32 = 9;
const PROG_SOCK_OPS: u32 = 13;
const PROG_CGROUP_SOCK_ADDR: u32 = 18;

const INET_INGRESS: u32 = 0;
const INET_EGRESS: u32 = 1;
const SOCK_OPS: u32 = 3;
const INET4_CONNECT: u32 = 10;
const INET6_CONNECT: u32 = 11;
const UDP4_SENDMSG: u32 = 14;
const UDP6_SENDMSG: u32 = 15;
const INET_SOCK_RELEASE: u32 = 34;

/// gatewatch's hooks (observer-ebpf's `main.rs`), as (program type,
/// attach type).
const HOOKS: [(u32, u32); 8] = [
    (PROG_CGROUP_SOCK_ADDR, INET4_CONNECT),
    (PROG_CGROUP_SOCK_ADDR, INET6_CONNECT),
    (PROG_CGROUP_SOCK_ADDR, UDP4_SENDMSG),
    (PROG_CGROUP_SOCK_ADDR, UDP6_SENDMSG),
    (PROG_CGROUP_SKB, INET_EGRESS),
    (PROG_CGROUP_SKB, INET_INGRESS),
    (PROG_SOCK_OPS, SOCK_OPS),
    (PROG_CGROUP_SOCK, INET_SOCK_RELEASE),
];

/// `r0 = 1` (BPF_ALU64 | BPF_MOV | BPF_K), then `exit`.
const ALLOW_ALL: [u64; 2] = [0x0000_0001_0000_00b7, 0x0000_0000_0000_0095];

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`; the
/// tail is zero, which the kernel requires of fields it is not given.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    _tail: [u64; 8],
}

/// `union bpf_attr` for BPF_LINK_CREATE.
#[repr(C)]
#[derive(Default)]
struct LinkCreate {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    _tail: [u64; 8],
}

/// bpf(2) with `attr`, a zero-tailed `union bpf_attr` for `cmd`.
fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-tailed bpf_attr of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// A bpf(2) command that returns a new descriptor.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<OwnedFd> {
    let fd = sys_bpf(cmd, attr)?;
    // SAFETY: a new descriptor the kernel just returned to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Empty programs attached at every gatewatch hook of one cgroup, detached
/// on drop.
pub struct Floor {
    _links: Vec<OwnedFd>,
}

impl Floor {
    pub fn attach(cgroup: &Path) -> anyhow::Result<Self> {
        let cg = std::fs::File::open(cgroup)
            .with_context(|| format!("open cgroup {}", cgroup.display()))?;
        let license = CString::new("GPL").expect("no NUL");
        let mut links = Vec::with_capacity(HOOKS.len());
        for (prog_type, attach_type) in HOOKS {
            let mut load = ProgLoad {
                prog_type,
                insn_cnt: ALLOW_ALL.len() as u32,
                insns: ALLOW_ALL.as_ptr() as u64,
                license: license.as_ptr() as u64,
                expected_attach_type: attach_type,
                ..ProgLoad::default()
            };
            load.prog_name[..5].copy_from_slice(b"floor");
            let prog = bpf(BPF_PROG_LOAD, &mut load).with_context(|| {
                format!("load an empty program of type {prog_type} (attach type {attach_type})")
            })?;
            let mut link = LinkCreate {
                prog_fd: prog.as_raw_fd() as u32,
                target_fd: cg.as_raw_fd() as u32,
                attach_type,
                ..LinkCreate::default()
            };
            // The link holds the program; its own descriptor can close.
            links.push(bpf(BPF_LINK_CREATE, &mut link).with_context(|| {
                format!(
                    "attach an empty program at {} (attach type {attach_type})",
                    cgroup.display()
                )
            })?);
        }
        Ok(Self { _links: links })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Programs attached at `cgroup` for `attach_type` (BPF_PROG_QUERY).
    fn attached(cgroup: &Path, attach_type: u32) -> u32 {
        #[repr(C)]
        #[derive(Default)]
        struct Query {
            target_fd: u32,
            attach_type: u32,
            query_flags: u32,
            attach_flags: u32,
            prog_ids: u64,
            prog_cnt: u32,
            _tail: [u32; 15],
        }
        const BPF_PROG_QUERY: libc::c_long = 16;
        let cg = std::fs::File::open(cgroup).expect("open the test cgroup");
        let mut q = Query {
            target_fd: cg.as_raw_fd() as u32,
            attach_type,
            ..Query::default()
        };
        if let Err(e) = sys_bpf(BPF_PROG_QUERY, &mut q) {
            panic!("BPF_PROG_QUERY: {e}");
        }
        q.prog_cnt
    }

    #[test]
    fn empty_programs_attach_at_every_hook_and_leave_on_drop() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var("CI").is_err(),
                "attaching BPF programs needs root, and CI runs as root"
            );
            eprintln!("skipped: needs root");
            return;
        }
        let cg =
            super::super::procs::Cgroup::new(&format!("gatewatch-floor-{}", std::process::id()))
                .expect("create a test cgroup");
        let floor = Floor::attach(&cg.path).expect("attach the empty programs");
        for (_, attach_type) in HOOKS {
            assert_eq!(
                attached(&cg.path, attach_type),
                1,
                "attach type {attach_type}"
            );
        }
        drop(floor);
        for (_, attach_type) in HOOKS {
            assert_eq!(
                attached(&cg.path, attach_type),
                0,
                "attach type {attach_type} after drop"
            );
        }
    }
}
