//! `--enforce deny`: a model endpoint is reached directly only by processes
//! userspace allowed. Two places decide, both on the client's own socket:
//! `connect()` to an address of a user's provider rule, or one only a denied
//! name's DNS answer gave the cgroup (refused at once), and the first
//! segment a connection sends (its ClientHello's server name, or its HTTP
//! request head's `Host`, matched against `DENY_NAMES`). Only userspace knows workloads, so
//! a process it has not judged yet has its first bytes held (dropped; TCP
//! sends them again after its retransmission timer) while it is asked.
//! With `ENFORCE` off these programs read one global and return.
use core::{
    ffi::c_void,
    ptr::{read_volatile, write_volatile},
};

use aya_ebpf::{
    EbpfContext as _, Global,
    helpers::generated::{
        bpf_get_current_cgroup_id, bpf_get_socket_cookie, bpf_ktime_get_ns, bpf_loop,
        bpf_skb_cgroup_id, bpf_skb_load_bytes,
    },
    macros::map,
    maps::{HashMap, LpmTrie, LruHashMap, PerCpuArray, lpm_trie::Key},
    programs::SkBuffContext,
};
use observer_common::{
    ADDR_DENY, ADDR_RULES_MAX, AF_INET, AF_INET6, AddrKey, AddrRuleValue, DENY_ADDRS_MAX,
    DENY_NAMES_MAX, DROP_ENFORCE, ENFORCE_DENIED, ENFORCE_DENY, ENFORCE_HELD, EVENT_ENFORCE,
    EnforceEvent, HTTP_HOST_SCAN_MAX, HTTP_SCAN_CHUNK, NAME_EXACT_ALLOW, NAME_EXACT_DENY,
    NAME_HASH_SEED, NAME_SUFFIX_ALLOW, NAME_SUFFIX_DENY, POLICY_ENTRIES, POLICY_MAY_DIRECT,
    POLICY_NOT_DIRECT, PolicyKey, SNI_MAX, SOCK_DENIED, SOCK_ENFORCE_DONE, SOCK_HELD, SockState,
    TLS_EXTENSIONS_MAX, name_hash_step,
};

use crate::maps::{EVENTS, count_drop, submit_flags};

/// `ENFORCE_OFF` or `ENFORCE_DENY`, set at load.
#[unsafe(no_mangle)]
pub static ENFORCE: Global<u32> = Global::new(0);

/// Host names and suffixes of model endpoints (`NAME_*_DENY`) and the more
/// specific non-model patterns under them (`NAME_*_ALLOW`), by
/// `name_hash`; written once by userspace at load.
#[map]
pub static DENY_NAMES: HashMap<u64, u8> = HashMap::with_max_entries(DENY_NAMES_MAX, 0);

/// The user's address rules: a provider's addresses are refused at
/// connect, a gateway's are never held or denied whatever name is sent.
#[map]
pub static ADDR_RULES: LpmTrie<[u8; 16], AddrRuleValue> =
    LpmTrie::with_max_entries(ADDR_RULES_MAX, 0);

/// Addresses only denied model endpoints' DNS answers gave a cgroup;
/// written and aged by userspace.
#[map]
pub static DENY_ADDRS: LruHashMap<AddrKey, u8> = LruHashMap::with_max_entries(DENY_ADDRS_MAX, 0);

/// Userspace's answer per process: may it call model endpoints directly?
#[map]
pub static POLICY: LruHashMap<PolicyKey, u8> = LruHashMap::with_max_entries(POLICY_ENTRIES, 0);

/// What the first bytes decide.
pub enum FirstBytes {
    Pass,
    /// Dropped now; the verdict is not known yet (or the socket is denied).
    Drop,
}

#[inline(always)]
pub fn enabled() -> bool {
    ENFORCE.load() == ENFORCE_DENY
}

/// True when `connect()` to `daddr:dport` must fail: a provider address
/// rule covers it, or only denied model endpoints' DNS answers gave it to
/// this cgroup, and this process may not call providers directly. A
/// gateway's address (a user rule) is never refused.
#[inline(always)]
pub fn refuse_connect(family: u16, daddr: &[u32; 4], dport: u16, tgid: u32) -> bool {
    if !enabled() {
        return false;
    }
    let addr = mapped(family, daddr);
    let by_rule = match addr_rule(Key::new(0, addr)) {
        Some(rule) if rule.verdict != ADDR_DENY => return false,
        Some(rule) => rule.port == 0 || rule.port == dport,
        None => false,
    };
    // SAFETY: helper call.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is only tested for presence.
    if !by_rule && unsafe { DENY_ADDRS.get(&AddrKey { cgroup_id, addr }) }.is_none() {
        return false;
    }
    let policy = PolicyKey {
        cgroup_id,
        tgid,
        _pad: 0,
    };
    // SAFETY: the value is copied out at once.
    matches!(unsafe { POLICY.get(&policy) }, Some(&POLICY_NOT_DIRECT))
}

/// Decides a TCP connection's first segment (or its resend while held).
/// `l4` is the TCP header's offset, `payload_off` and `total` the bytes.
#[inline(always)]
pub fn first_bytes(
    ctx: &SkBuffContext,
    state: &mut SockState,
    l4: usize,
    payload_off: usize,
    total: u32,
) -> FirstBytes {
    if state.flags & SOCK_DENIED != 0 {
        return FirstBytes::Drop;
    }
    match names_model_endpoint(ctx, payload_off, total) {
        // Sent again after TCP's retransmission timer, and decided then.
        Named::Unsure => return FirstBytes::Drop,
        Named::Other => {
            state.flags |= SOCK_ENFORCE_DONE;
            return FirstBytes::Pass;
        }
        Named::ModelEndpoint if gateway_address(ctx) => {
            state.flags |= SOCK_ENFORCE_DONE;
            return FirstBytes::Pass;
        }
        Named::ModelEndpoint => {}
    }
    // SAFETY: helper call on the program's own context.
    let cgroup_id = unsafe { bpf_skb_cgroup_id(ctx.skb.skb) };
    let key = PolicyKey {
        cgroup_id,
        tgid: state.tgid,
        _pad: 0,
    };
    // SAFETY: the value is copied out at once.
    match unsafe { POLICY.get(&key) }.copied() {
        Some(POLICY_MAY_DIRECT) => {
            state.flags |= SOCK_ENFORCE_DONE;
            FirstBytes::Pass
        }
        Some(_) => {
            state.flags |= SOCK_DENIED | SOCK_ENFORCE_DONE;
            report(ctx, ENFORCE_DENIED, cgroup_id, state.tgid, l4);
            FirstBytes::Drop
        }
        None => {
            if state.flags & SOCK_HELD == 0 {
                state.flags |= SOCK_HELD;
                report(ctx, ENFORCE_HELD, cgroup_id, state.tgid, l4);
            }
            FirstBytes::Drop
        }
    }
}

/// What a first segment names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Named {
    /// No model endpoint (or no name the kernel can read).
    Other,
    ModelEndpoint,
    /// Another run on this CPU used the scratch meanwhile: not decided.
    Unsure,
}

/// Per-CPU scratch for the name walk: a 256-byte name does not fit on the
/// BPF stack beside egress's own state and the `bpf_loop` frames (6.1
/// counts them all against 512 bytes). A softirq or a preempting task on
/// the same CPU can run a program that uses it too, so each use stamps a
/// token and trusts its result only if the token is still there.
#[map]
static SCRATCH: PerCpuArray<Walk> = PerCpuArray::with_max_entries(1, 0);

/// Whether the segment names a model endpoint in `DENY_NAMES` (the most
/// specific pattern decides): a ClientHello by its server name, an
/// HTTP/1.x request head (plain HTTP, or a `CONNECT` to a forward proxy)
/// by its `Host` header.
#[inline(always)]
fn names_model_endpoint(ctx: &SkBuffContext, payload_off: usize, total: u32) -> Named {
    let Ok(first) = ctx.load::<u8>(payload_off) else {
        return Named::Other;
    };
    let Some(w) = SCRATCH.get_ptr_mut(0) else {
        return Named::Other;
    };
    // The scratch is only reached through raw pointers and volatile
    // accesses: the `bpf_loop` steps and other runs on this CPU write it
    // behind the compiler's back (a `&mut` would let it assume otherwise).
    // SAFETY: this CPU's scratch, valid for the run; see `SCRATCH`.
    let token = unsafe {
        let token = read_volatile(&raw const (*w).owner).wrapping_add(1);
        write_volatile(&raw mut (*w).owner, token);
        token
    };
    let named = read_and_walk(ctx, w, first, payload_off, total);
    // SAFETY: as above.
    if unsafe { read_volatile(&raw const (*w).owner) } != token {
        return Named::Unsure;
    }
    if named {
        Named::ModelEndpoint
    } else {
        Named::Other
    }
}

#[inline(always)]
fn read_and_walk(ctx: &SkBuffContext, w: *mut Walk, first: u8, p: usize, total: u32) -> bool {
    let http = first != TLS_HANDSHAKE;
    let found = if !http {
        server_name(ctx, p, total)
    } else if first.is_ascii_uppercase() {
        http_host(ctx, w, p, total)
    } else {
        None // neither a ClientHello nor a request line (methods are upper case)
    };
    let Some((name_off, name_len)) = found else {
        return false;
    };
    // A Host value is read up to SNI_MAX bytes and cut at its end below.
    if name_len == 0 || (!http && name_len as usize > SNI_MAX) {
        return false;
    }
    // The verifier must see 1..=SNI_MAX: launder, then mask (identity on
    // that range, SNI_MAX being a power of two).
    // SAFETY: volatile read of a local.
    let len = unsafe { core::ptr::read_volatile(&name_len.min(SNI_MAX as u32)) };
    let len = (len.wrapping_sub(1) & (SNI_MAX as u32 - 1)) + 1;
    // SAFETY (this block and below): `w` is this CPU's scratch, valid for
    // the run; `name` holds SNI_MAX bytes and `len` is at most that.
    let name = unsafe { &raw mut (*w).name };
    let ret = unsafe { bpf_skb_load_bytes(ctx.as_ptr(), name_off as u32, name.cast(), len) };
    if ret != 0 {
        return false;
    }
    // SAFETY: as above.
    let end = unsafe {
        if http {
            // The value: after at most two leading blanks, up to the port,
            // a blank or the line's end (found by `value_step`; 0 when the
            // line does not end within the bytes read).
            let blank = |b: u8| b == b' ' || b == b'\t';
            let (b0, b1) = ((*name)[0], (*name)[1]);
            let start = u64::from(blank(b0)) + u64::from(blank(b0) && blank(b1));
            write_volatile(&raw mut (*w).start, start);
            write_volatile(&raw mut (*w).limit, u64::from(len));
            write_volatile(&raw mut (*w).end, 0);
            bpf_loop(
                SNI_MAX as u32,
                value_step as *const () as *mut c_void,
                core::ptr::null_mut(),
                0,
            );
        } else {
            write_volatile(&raw mut (*w).start, 0);
            write_volatile(&raw mut (*w).end, u64::from(len));
        }
        read_volatile(&raw const (*w).end)
    };
    if end == 0 {
        return false;
    }
    // 1..=SNI_MAX: `host_value` ends a value after its first byte.
    let last = (end.wrapping_sub(1) & (SNI_MAX as u64 - 1)) as usize;
    // SAFETY: as above.
    unsafe {
        if read_volatile(&raw const (*w).name[last]) == b'.' {
            write_volatile(&raw mut (*w).end, end - 1);
        }
        write_volatile(&raw mut (*w).hash, NAME_HASH_SEED);
        write_volatile(&raw mut (*w).deny, 0);
    }
    // SAFETY: `walk_step` reads this CPU's scratch; it takes no context.
    unsafe {
        bpf_loop(
            SNI_MAX as u32,
            walk_step as *const () as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    // SAFETY: as above; the steps wrote these.
    let (hash, deny) = unsafe {
        (
            read_volatile(&raw const (*w).hash),
            read_volatile(&raw const (*w).deny),
        )
    };
    // SAFETY: the value is copied out at once.
    match unsafe { DENY_NAMES.get(&hash) }.copied() {
        Some(bits) if bits & NAME_EXACT_DENY != 0 => true,
        Some(bits) if bits & NAME_EXACT_ALLOW != 0 => false,
        _ => deny != 0,
    }
}

/// The walk over a host name from its end, as `bpf_loop` steps it: the
/// verifier checks one step, not each of `SNI_MAX` (walked inline, the
/// name made the program too complex for 6.1's verifier). The `Host` scan
/// uses `name` for its chunks before the name is read.
#[repr(C)]
pub struct Walk {
    name: [u8; SNI_MAX],
    /// The name is `name[start..end]`.
    start: u64,
    end: u64,
    hash: u64,
    /// 1 when the longest suffix matched so far is a model endpoint's.
    deny: u64,
    /// The `Host` scan: the head's offset in the packet and how many of
    /// its bytes to scan, the last six bytes seen (lower-cased), and the
    /// offset of the `Host` value from the head (0 while not found).
    head: u64,
    limit: u64,
    window: u64,
    found: u64,
    /// The token of the run using this scratch (see `SCRATCH`).
    owner: u64,
}

/// Byte `k` from the name's end: at each label boundary the suffix so far
/// is looked up. Returns 1 (stop) past the name's start.
extern "C" fn walk_step(k: u64, _: *mut c_void) -> i64 {
    let Some(w) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's scratch, valid for the run.
    let w = unsafe { &mut *w };
    let k = k & (SNI_MAX as u64 - 1);
    if w.start + k >= w.end {
        return 1;
    }
    let byte = w.name[((w.end - 1 - k) & (SNI_MAX as u64 - 1)) as usize];
    if byte == b'.' {
        // SAFETY: the value is copied out at once.
        if let Some(&bits) = unsafe { DENY_NAMES.get(&w.hash) } {
            if bits & NAME_SUFFIX_DENY != 0 {
                w.deny = 1;
            } else if bits & NAME_SUFFIX_ALLOW != 0 {
                w.deny = 0;
            }
        }
    }
    w.hash = name_hash_step(w.hash, byte);
    0
}

/// Byte `i` of a `Host` header's value (in `name`, `limit` bytes of it):
/// the first blank, port or line end after `start` ends the host name
/// there (`end`). Returns 1 (stop) at it or past the bytes read.
extern "C" fn value_step(i: u64, _: *mut c_void) -> i64 {
    let Some(w) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's scratch, valid for the run.
    let w = unsafe { &mut *w };
    let i = i & (SNI_MAX as u64 - 1);
    if i >= w.limit {
        return 1;
    }
    let b = w.name[i as usize];
    if i > w.start && matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b':') {
        w.end = i;
        return 1;
    }
    0
}

/// `\nhost:` as the window of the last six bytes, lower-cased, holds it.
const HOST_HEADER: u64 = u64::from_be_bytes([0, 0, b'\n', b'h', b'o', b's', b't', b':']);
const WINDOW_MASK: u64 = 0xffff_ffff_ffff;
const _: () = assert!(
    HTTP_HOST_SCAN_MAX.is_power_of_two() && HTTP_SCAN_CHUNK.is_power_of_two(),
    "the scan's masks need powers of two"
);

/// The `Host` scan's context on the stack: the program's `__sk_buff`.
#[repr(C)]
struct ScanCtx {
    skb: *mut c_void,
}

/// Offset of the `Host` header's value in an HTTP/1.x request head that
/// starts this segment (found in its first `HTTP_HOST_SCAN_MAX` bytes),
/// and how many bytes of the segment follow it.
#[inline(always)]
fn http_host(ctx: &SkBuffContext, w: *mut Walk, p: usize, total: u32) -> Option<(usize, u32)> {
    // SAFETY: `w` is this CPU's scratch, valid for the run.
    unsafe {
        write_volatile(&raw mut (*w).head, p as u64);
        write_volatile(
            &raw mut (*w).limit,
            u64::from(total).min(HTTP_HOST_SCAN_MAX as u64),
        );
        write_volatile(&raw mut (*w).window, 0);
        write_volatile(&raw mut (*w).found, 0);
    }
    let mut scan = ScanCtx { skb: ctx.as_ptr() };
    // SAFETY: `scan_step` takes the `ScanCtx` on this stack, as passed.
    unsafe {
        bpf_loop(
            HTTP_HOST_SCAN_MAX as u32,
            scan_step as *const () as *mut c_void,
            (&raw mut scan).cast(),
            0,
        );
    }
    // SAFETY: as above; the steps wrote it.
    let found = unsafe { read_volatile(&raw const (*w).found) } as u32;
    (found != 0 && found <= total).then(|| (p + found as usize, total - found))
}

/// Byte `j` of the head (its chunk loaded into `name` at the chunk's
/// first byte): the window moves on by it. Returns 1 (stop) once `Host:`
/// is found or the head is over. One byte a step, so the verifier checks
/// one small step (a loop inside a step is checked once per way out).
extern "C" fn scan_step(j: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `ScanCtx` the caller passed to `bpf_loop`.
    let skb = unsafe { (*ctx.cast::<ScanCtx>()).skb };
    let Some(w) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's scratch, valid for the run.
    let w = unsafe { &mut *w };
    let j = j & (HTTP_HOST_SCAN_MAX as u64 - 1);
    if j >= w.limit {
        return 1;
    }
    let at = j & (HTTP_SCAN_CHUNK as u64 - 1);
    if at == 0 {
        // 1..=HTTP_SCAN_CHUNK for the verifier (identity on that range).
        let n =
            (((w.limit - j).min(HTTP_SCAN_CHUNK as u64) - 1) & (HTTP_SCAN_CHUNK as u64 - 1)) + 1;
        // SAFETY: `name` holds more than HTTP_SCAN_CHUNK bytes and `n` is
        // at most that.
        let ret = unsafe {
            bpf_skb_load_bytes(
                skb,
                (w.head + j) as u32,
                w.name.as_mut_ptr().cast(),
                n as u32,
            )
        };
        if ret != 0 {
            return 1;
        }
    }
    let b = w.name[at as usize];
    w.window = ((w.window << 8) | u64::from(b.to_ascii_lowercase())) & WINDOW_MASK;
    if w.window == HOST_HEADER {
        w.found = j + 1;
        return 1;
    }
    0
}

const TLS_HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const HOST_NAME: u8 = 0;
/// Record header, handshake header, client version and random.
const HELLO_FIXED: usize = 5 + 4 + 2 + 32;

/// Offset and length of the host name in a ClientHello that starts this
/// segment, when the `server_name` extension is within the segment.
#[inline(always)]
fn server_name(ctx: &SkBuffContext, p: usize, total: u32) -> Option<(usize, u32)> {
    let head: [u8; 6] = ctx.load(p).ok()?;
    if head[0] != TLS_HANDSHAKE || head[1] != 3 || head[5] != CLIENT_HELLO {
        return None;
    }
    let end = p + total as usize;
    let mut off = p + HELLO_FIXED;
    let session: u8 = ctx.load(off).ok()?;
    off += 1 + session as usize;
    off += 2 + be16(ctx.load(off).ok()?) as usize; // cipher suites
    let compression: u8 = ctx.load(off).ok()?;
    off += 1 + compression as usize;
    let extensions = be16(ctx.load(off).ok()?) as usize;
    off += 2;
    let end = end.min(off + extensions);
    for _ in 0..TLS_EXTENSIONS_MAX {
        if off + 4 > end {
            return None;
        }
        let ext: [u8; 4] = ctx.load(off).ok()?;
        off += 4;
        if be16([ext[0], ext[1]]) == EXT_SERVER_NAME {
            // list length (2), name type (1), name length (2)
            let sn: [u8; 5] = ctx.load(off).ok()?;
            let len = be16([sn[3], sn[4]]) as usize;
            if sn[2] != HOST_NAME || off + 5 + len > end {
                return None;
            }
            return Some((off + 5, len as u32));
        }
        off += be16([ext[2], ext[3]]) as usize;
    }
    None
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// True when the packet goes to an address a user's gateway rule names.
#[inline(always)]
fn gateway_address(ctx: &SkBuffContext) -> bool {
    let Some((family, _, daddr)) = addresses(ctx) else {
        return false;
    };
    let mut words = [0u32; 4];
    for (i, w) in words.iter_mut().enumerate() {
        *w = u32::from_ne_bytes([
            daddr[i * 4],
            daddr[i * 4 + 1],
            daddr[i * 4 + 2],
            daddr[i * 4 + 3],
        ]);
    }
    matches!(addr_rule(Key::new(0, mapped(family, &words))), Some(r) if r.verdict != ADDR_DENY)
}

#[inline(always)]
fn addr_rule(mut key: Key<[u8; 16]>) -> Option<AddrRuleValue> {
    key.prefix_len = 128;
    ADDR_RULES.get(&key).copied()
}

/// An address as the trie holds it: IPv4 as `::ffff:a.b.c.d`.
#[inline(always)]
fn mapped(family: u16, daddr: &[u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    if family == AF_INET {
        out[10] = 0xff;
        out[11] = 0xff;
        out[12..16].copy_from_slice(&daddr[0].to_ne_bytes());
    } else {
        for (i, w) in daddr.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
        }
    }
    out
}

/// Family, source and destination address of the packet (IPv4 in the
/// first 4 bytes).
#[inline(always)]
fn addresses(ctx: &SkBuffContext) -> Option<(u16, [u8; 16], [u8; 16])> {
    // Whole headers are read: a one-byte read at offset 0 gives the
    // verifier no packet range to check it against.
    let v4: [u8; 20] = crate::net::read(ctx, 0)?;
    let (mut saddr, mut daddr) = ([0u8; 16], [0u8; 16]);
    if v4[0] >> 4 == 4 {
        saddr[..4].copy_from_slice(&v4[12..16]);
        daddr[..4].copy_from_slice(&v4[16..20]);
        Some((AF_INET, saddr, daddr))
    } else {
        let v6: [u8; 40] = crate::net::read(ctx, 0)?;
        saddr.copy_from_slice(&v6[8..24]);
        daddr.copy_from_slice(&v6[24..40]);
        Some((AF_INET6, saddr, daddr))
    }
}

/// Tells userspace, with what `SOCK_DESTROY` needs to find the socket.
#[inline(always)]
fn report(ctx: &SkBuffContext, action: u32, cgroup_id: u64, tgid: u32, l4: usize) {
    let Some((family, saddr, daddr)) = addresses(ctx) else {
        return;
    };
    let Some(ports) = crate::net::read::<4>(ctx, l4) else {
        return;
    };
    let Some(mut entry) = EVENTS.reserve::<EnforceEvent>(0) else {
        count_drop(DROP_ENFORCE);
        return;
    };
    entry.write(EnforceEvent {
        kind: EVENT_ENFORCE,
        action,
        // SAFETY: helper calls.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        cookie: unsafe { bpf_get_socket_cookie(ctx.as_ptr()) },
        cgroup_id,
        tgid,
        family,
        sport: be16([ports[0], ports[1]]),
        dport: be16([ports[2], ports[3]]),
        _pad: [0; 6],
        saddr,
        daddr,
    });
    entry.submit(submit_flags());
}
