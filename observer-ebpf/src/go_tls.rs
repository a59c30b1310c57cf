//! `--tls-probes` on Go programs: `crypto/tls.(*Conn).Write` at its entry
//! and `(*Conn).Read` at its entry and at each of its RET instructions
//! (userspace finds them by decoding the function: Go grows goroutine
//! stacks by moving them, which breaks return probes). Go passes arguments
//! in registers (ABIInternal, Go 1.17+): the receiver in RAX, the slice in
//! RBX (pointer) and RCX (length); results come back in RAX. The socket is
//! found through the connection's own fields (`GO_*_OFFSET`).
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::{map, uprobe},
    maps::LruHashMap,
    programs::ProbeContext,
};
use observer_common::{
    EVENT_TLS_IN, EVENT_TLS_OUT, GO_IFACE_DATA_OFFSET, GO_SYSFD_OFFSET, GoRead, GoroutineKey,
    TLS_CHUNKS_LITE, TLS_CHUNKS_MAX, TLS_THREADS_MAX,
};

use crate::{
    maps::OWN_TGID,
    tls::{emit, readable_cookie},
};

/// Reads in progress, by goroutine.
#[map]
static GO_READS: LruHashMap<GoroutineKey, GoRead> =
    LruHashMap::with_max_entries(TLS_THREADS_MAX, 0);

/// The registers Go's calling convention uses here.
struct Regs {
    rax: u64,
    rbx: u64,
    rcx: u64,
    r14: u64,
}

#[inline(always)]
fn regs(ctx: &ProbeContext) -> Regs {
    // SAFETY: a uprobe's context is the task's saved registers.
    let r = unsafe { &*ctx.regs };
    Regs {
        rax: r.rax,
        rbx: r.rbx,
        rcx: r.rcx,
        r14: r.r14,
    }
}

/// The descriptor of a `*tls.Conn` over a `*net.TCPConn`.
#[inline(always)]
fn conn_fd(conn: u64) -> Option<u32> {
    // SAFETY: reads of the process's memory; a fault is an error.
    unsafe {
        let tcp: u64 = bpf_probe_read_user((conn + GO_IFACE_DATA_OFFSET) as *const u64).ok()?;
        let netfd: u64 = bpf_probe_read_user(tcp as *const u64).ok()?;
        let fd: i64 = bpf_probe_read_user((netfd + GO_SYSFD_OFFSET) as *const i64).ok()?;
        u32::try_from(fd).ok()
    }
}

#[inline(always)]
fn tgid_unless_own() -> Option<u32> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    (tgid != OWN_TGID.load()).then_some(tgid)
}

#[uprobe]
pub fn go_tls_write(ctx: ProbeContext) -> u32 {
    write::<TLS_CHUNKS_MAX>(&ctx)
}

/// `go_tls_write` for kernels whose verifier gives up on the long copy.
#[uprobe]
pub fn go_tls_write_lite(ctx: ProbeContext) -> u32 {
    write::<TLS_CHUNKS_LITE>(&ctx)
}

#[inline(always)]
fn write<const CHUNKS: u32>(ctx: &ProbeContext) -> u32 {
    let Some(tgid) = tgid_unless_own() else {
        return 0;
    };
    let r = regs(ctx);
    if let Some(cookie) = conn_fd(r.rax).and_then(|fd| readable_cookie(tgid, fd)) {
        emit::<CHUNKS>(
            EVENT_TLS_OUT,
            cookie,
            r.rbx,
            r.rcx.min(u64::from(u32::MAX)) as u32,
        );
    }
    0
}

#[uprobe]
pub fn go_tls_read(ctx: ProbeContext) -> u32 {
    let Some(tgid) = tgid_unless_own() else {
        return 0;
    };
    let r = regs(&ctx);
    let key = GoroutineKey {
        tgid,
        _pad: 0,
        g: r.r14,
    };
    let _ = GO_READS.insert(
        &key,
        &GoRead {
            conn: r.rax,
            buf: r.rbx,
        },
        0,
    );
    0
}

/// At a RET of `(*Conn).Read`: RAX holds the bytes read.
#[uprobe]
pub fn go_tls_read_ret(ctx: ProbeContext) -> u32 {
    read_return::<TLS_CHUNKS_MAX>(&ctx)
}

/// `go_tls_read_ret` for kernels whose verifier gives up on the long copy.
#[uprobe]
pub fn go_tls_read_ret_lite(ctx: ProbeContext) -> u32 {
    read_return::<TLS_CHUNKS_LITE>(&ctx)
}

#[inline(always)]
fn read_return<const CHUNKS: u32>(ctx: &ProbeContext) -> u32 {
    let Some(tgid) = tgid_unless_own() else {
        return 0;
    };
    let r = regs(ctx);
    let key = GoroutineKey {
        tgid,
        _pad: 0,
        g: r.r14,
    };
    // SAFETY: a copy is taken before the entry is removed.
    let Some(read) = (unsafe { GO_READS.get(&key) }).copied() else {
        return 0;
    };
    let _ = GO_READS.remove(&key);
    let n = r.rax as i64;
    if n > 0
        && let Some(cookie) = conn_fd(read.conn).and_then(|fd| readable_cookie(tgid, fd))
    {
        emit::<CHUNKS>(
            EVENT_TLS_IN,
            cookie,
            read.buf,
            n.min(i64::from(u32::MAX)) as u32,
        );
    }
    0
}
