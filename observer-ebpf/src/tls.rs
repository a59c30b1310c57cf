//! `--tls-probes`: the plaintext side of TLS libraries (OpenSSL's
//! `SSL_write`/`SSL_read` and their `_ex` forms), for the requests inside
//! AI connections. Uprobes see a session (`SSL *`), not a socket, so three
//! small joins lead from one to the other, all on the calling thread:
//! `connect(fd)` → the cgroup connect hook's socket cookie (`FD_COOKIES`),
//! and `SSL_set_fd(ssl, fd)` (`SSL_FDS`). A library that moves its bytes
//! itself (Node.js through memory BIOs, curl through its own BIO) is
//! joined by the first send on a client socket the same thread makes
//! after a call on a session not joined yet: its handshake's ClientHello.
//! A session with no client socket (a server's accepted one) is not read. Userspace marks the cookies it does not want (`TLS_SKIP`: flows
//! counted as `other`), so a non-AI connection costs a lookup per call.
use aya_ebpf::{
    Global,
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_user,
        generated::{bpf_get_current_cgroup_id, bpf_ktime_get_ns},
    },
    macros::{map, tracepoint, uprobe, uretprobe},
    maps::LruHashMap,
    programs::{ProbeContext, RetProbeContext, TracePointContext},
};
use observer_common::{
    DROP_TLS, EVENT_TLS_IN, EVENT_TLS_OUT, FdKey, PAYLOAD_CAPTURE_MAX, PayloadHeader,
    SYS_ENTER_FD_OFFSET, SslCall, SslKey, TLS_CHUNKS_LITE, TLS_CHUNKS_MAX, TLS_SOCKETS_MAX,
    TLS_THREADS_MAX,
};

use crate::maps::{EVENTS, OWN_TGID, count_drop, submit_flags};

/// 1 when `--tls-probes` is on: the connect hooks then record which
/// descriptor each socket is.
#[unsafe(no_mangle)]
pub static TLS_PROBES: Global<u32> = Global::new(0);

/// The descriptor a thread is calling `connect()` on, until the connect
/// hook reads it.
#[map]
static CONNECT_FDS: LruHashMap<u64, u32> = LruHashMap::with_max_entries(TLS_THREADS_MAX, 0);

/// Each client socket's cookie by its process and descriptor.
#[map]
static FD_COOKIES: LruHashMap<FdKey, u64> = LruHashMap::with_max_entries(TLS_SOCKETS_MAX, 0);

/// Each TLS session's descriptor (`SSL_set_fd`).
#[map]
static SSL_FDS: LruHashMap<SslKey, u32> = LruHashMap::with_max_entries(TLS_SOCKETS_MAX, 0);

/// A read or write call's arguments, from its entry to its return.
#[map]
static SSL_CALLS: LruHashMap<u64, SslCall> = LruHashMap::with_max_entries(TLS_THREADS_MAX, 0);

/// A session not joined to a socket yet that this thread just used: its
/// next send on a client socket joins them.
#[map]
static UNJOINED: LruHashMap<u64, u64> = LruHashMap::with_max_entries(TLS_THREADS_MAX, 0);

/// Cookies whose plaintext userspace does not read (non-AI flows).
#[map]
pub static TLS_SKIP: LruHashMap<u64, u8> = LruHashMap::with_max_entries(TLS_SOCKETS_MAX, 0);

#[tracepoint]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == OWN_TGID.load() {
        return 0;
    }
    // SAFETY: the offset of `fd` in this tracepoint's record.
    if let Ok(fd) = unsafe { ctx.read_at::<u64>(SYS_ENTER_FD_OFFSET) } {
        let _ = CONNECT_FDS.insert(&pid_tgid, &(fd as u32), 0);
    }
    0
}

/// Called by the connect hooks: the socket being connected is the
/// descriptor this thread passed to `connect()`.
#[inline(always)]
pub fn remember_fd(pid_tgid: u64, cookie: u64) {
    if TLS_PROBES.load() == 0 {
        return;
    }
    // SAFETY: a copy of the value is taken before the entry is removed.
    let Some(fd) = (unsafe { CONNECT_FDS.get(&pid_tgid) }).copied() else {
        return;
    };
    let _ = CONNECT_FDS.remove(&pid_tgid);
    let key = FdKey {
        tgid: (pid_tgid >> 32) as u32,
        fd,
    };
    // A reused descriptor gets its new socket's cookie here; cookies are
    // never reused, so `TLS_SKIP` needs no cleaning for it.
    let _ = FD_COOKIES.insert(&key, &cookie, 0);
}

#[uprobe]
pub fn ssl_set_fd(ctx: ProbeContext) -> u32 {
    let (Some(ssl), Some(fd)) = (ctx.arg::<u64>(0), ctx.arg::<i32>(1)) else {
        return 0;
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if fd >= 0 {
        let _ = SSL_FDS.insert(&ssl_key(tgid, ssl), &(fd as u32), 0);
    }
    0
}

/// `write`, `writev`, `sendto`, `sendmsg`: after a call on a session not
/// joined yet, the thread's first send on a client socket joins them.
#[tracepoint]
pub fn sys_enter_send(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: a copy is taken.
    let Some(ssl) = (unsafe { UNJOINED.get(&pid_tgid) }).copied() else {
        return 0;
    };
    // SAFETY: the offset of `fd` in these tracepoints' records.
    let Ok(fd) = (unsafe { ctx.read_at::<u64>(SYS_ENTER_FD_OFFSET) }) else {
        return 0;
    };
    let tgid = (pid_tgid >> 32) as u32;
    let fd = fd as u32;
    // Only a client socket (a pipe or a log file write does not join).
    if unsafe { FD_COOKIES.get(&FdKey { tgid, fd }) }.is_some() {
        let _ = SSL_FDS.insert(&ssl_key(tgid, ssl), &fd, 0);
        let _ = UNJOINED.remove(&pid_tgid);
    }
    0
}

/// `SSL_do_handshake` and `SSL_connect`: a session's first call.
#[uprobe]
pub fn ssl_handshake(ctx: ProbeContext) -> u32 {
    if let Some(ssl) = ctx.arg::<u64>(0) {
        mark_unjoined(bpf_get_current_pid_tgid(), ssl);
    }
    0
}

#[inline(always)]
fn mark_unjoined(pid_tgid: u64, ssl: u64) {
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == OWN_TGID.load() {
        return;
    }
    if unsafe { SSL_FDS.get(&ssl_key(tgid, ssl)) }.is_none() {
        let _ = UNJOINED.insert(&pid_tgid, &ssl, 0);
    }
}

#[uprobe]
pub fn ssl_write(ctx: ProbeContext) -> u32 {
    enter(&ctx, EVENT_TLS_OUT, false);
    0
}

#[uprobe]
pub fn ssl_write_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, EVENT_TLS_OUT, true);
    0
}

#[uprobe]
pub fn ssl_read(ctx: ProbeContext) -> u32 {
    enter(&ctx, EVENT_TLS_IN, false);
    0
}

#[uprobe]
pub fn ssl_read_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, EVENT_TLS_IN, true);
    0
}

/// The return of any of the four: the bytes written or read are known now.
#[uretprobe]
pub fn ssl_return(ctx: RetProbeContext) -> u32 {
    let _ = try_return::<TLS_CHUNKS_MAX>(&ctx);
    0
}

/// `ssl_return` for kernels whose verifier gives up on the long copy.
#[uretprobe]
pub fn ssl_return_lite(ctx: RetProbeContext) -> u32 {
    let _ = try_return::<TLS_CHUNKS_LITE>(&ctx);
    0
}

#[inline(always)]
fn ssl_key(tgid: u32, ssl: u64) -> SslKey {
    SslKey { tgid, _pad: 0, ssl }
}

#[inline(always)]
fn enter(ctx: &ProbeContext, kind: u32, ex: bool) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == OWN_TGID.load() {
        return;
    }
    let (Some(ssl), Some(buf)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) else {
        return;
    };
    let len_ptr = if ex {
        ctx.arg::<u64>(3).unwrap_or(0)
    } else {
        0
    };
    let call = SslCall {
        ssl,
        buf,
        len_ptr,
        kind,
        _pad: 0,
    };
    let _ = SSL_CALLS.insert(&pid_tgid, &call, 0);
    mark_unjoined(pid_tgid, ssl);
}

#[inline(always)]
fn try_return<const CHUNKS: u32>(ctx: &RetProbeContext) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: a copy is taken before the entry is removed.
    let call = unsafe { SSL_CALLS.get(&pid_tgid) }.copied().ok_or(0)?;
    let _ = SSL_CALLS.remove(&pid_tgid);
    let ret: i64 = ctx.ret::<i32>().into();
    if ret <= 0 {
        return Ok(());
    }
    let bytes = if call.len_ptr != 0 {
        // `_ex`: returns 1 on success, the count is behind the pointer.
        // SAFETY: a read of the caller's memory; a fault returns an error.
        unsafe { bpf_probe_read_user(call.len_ptr as *const u64) }.map_err(i64::from)?
    } else {
        ret as u64
    };
    let tgid = (pid_tgid >> 32) as u32;
    // SAFETY: a copy of a map value.
    let fd = unsafe { SSL_FDS.get(&ssl_key(tgid, call.ssl)) }
        .copied()
        .ok_or(0)?;
    let cookie = readable_cookie(tgid, fd).ok_or(0)?;
    emit::<CHUNKS>(
        call.kind,
        cookie,
        call.buf,
        bytes.min(u64::from(u32::MAX)) as u32,
    );
    Ok(())
}

/// The cookie of a process's client socket, unless userspace does not
/// read it.
#[inline(always)]
pub fn readable_cookie(tgid: u32, fd: u32) -> Option<u64> {
    // SAFETY: copies of map values.
    let cookie = unsafe { FD_COOKIES.get(&FdKey { tgid, fd }) }.copied()?;
    if unsafe { TLS_SKIP.get(&cookie) }.is_some() {
        return None;
    }
    Some(cookie)
}

/// A chunk record: the same layout as a payload record.
#[repr(C)]
struct TlsChunk {
    header: PayloadHeader,
    data: [u8; PAYLOAD_CAPTURE_MAX],
}

/// Bytes of one chunk record.
const CHUNK: u32 = PAYLOAD_CAPTURE_MAX as u32;

/// Copies up to `CHUNKS` chunks of the call's buffer: whole chunks in the
/// loop, whose body has no branch on the data (so the verifier carries one
/// state from one turn to the next, not one per outcome of a `min`), then
/// the last, shorter piece once.
#[inline(always)]
pub fn emit<const CHUNKS: u32>(kind: u32, cookie: u64, buf: u64, total: u32) {
    // SAFETY: helper calls.
    let (ts_ns, cgroup_id) = unsafe { (bpf_ktime_get_ns(), bpf_get_current_cgroup_id()) };
    let at = Chunk {
        kind,
        cookie,
        cgroup_id,
        ts_ns,
        buf,
        total,
    };
    let whole = total / CHUNK;
    let mut i = 0;
    while i < CHUNKS {
        if i >= whole || !at.copy(i * CHUNK, CHUNK) {
            break;
        }
        i += 1;
    }
    if i == whole && i < CHUNKS {
        let rest = total % CHUNK;
        // SAFETY: volatile read of a local, so the mask below is kept:
        // it gives the verifier the bound (0..N) LLVM already knows.
        let rest = unsafe { core::ptr::read_volatile(&rest) } & (CHUNK - 1);
        if rest > 0 {
            at.copy(i * CHUNK, rest);
        }
    }
}

/// Where a call's chunks come from and what their records say.
struct Chunk {
    kind: u32,
    cookie: u64,
    cgroup_id: u64,
    ts_ns: u64,
    buf: u64,
    total: u32,
}

impl Chunk {
    /// One record of `len` bytes (at most `CHUNK`) from `offset`; false
    /// when it could not be made (counted).
    #[inline(always)]
    fn copy(&self, offset: u32, len: u32) -> bool {
        let Some(mut entry) = EVENTS.reserve::<TlsChunk>(0) else {
            count_drop(DROP_TLS);
            return false;
        };
        let record = entry.as_mut_ptr();
        // SAFETY: this program's own reservation; `len` ≤ its data's size.
        let ret = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_user(
                (*record).data.as_mut_ptr().cast(),
                len,
                (self.buf + u64::from(offset)) as *const core::ffi::c_void,
            )
        };
        if ret != 0 {
            entry.discard(0);
            count_drop(DROP_TLS);
            return false;
        }
        // SAFETY: writing the header of this program's own reservation.
        unsafe {
            (*record).header = PayloadHeader {
                kind: self.kind,
                len,
                ts_ns: self.ts_ns,
                cookie: self.cookie,
                cgroup_id: self.cgroup_id,
                offset,
                total: self.total,
            };
        }
        entry.submit(submit_flags());
        true
    }
}
