//! `--enforce deny`: a model endpoint is reached directly only by processes
//! userspace allowed. Two places decide, both on the client's own socket:
//! `connect()` to an address of a user's provider rule, or one only a denied
//! name's DNS answer gave the cgroup (refused at once), and the first segment a connection sends (its ClientHello's server
//! name, matched against `DENY_NAMES`). Only userspace knows workloads, so
//! a process it has not judged yet has its first bytes held (dropped; TCP
//! sends them again after its retransmission timer) while it is asked.
//! With `ENFORCE` off these programs read one global and return.
use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext as _, Global,
    helpers::generated::{
        bpf_get_current_cgroup_id, bpf_get_socket_cookie, bpf_ktime_get_ns, bpf_loop,
        bpf_skb_cgroup_id, bpf_skb_load_bytes,
    },
    macros::map,
    maps::{HashMap, LpmTrie, LruHashMap, lpm_trie::Key},
    programs::SkBuffContext,
};
use observer_common::{
    ADDR_DENY, ADDR_RULES_MAX, AF_INET, AF_INET6, AddrKey, AddrRuleValue, DENY_ADDRS_MAX,
    DENY_NAMES_MAX, DROP_ENFORCE, ENFORCE_DENIED, ENFORCE_DENY, ENFORCE_HELD, EVENT_ENFORCE,
    EnforceEvent, NAME_EXACT_ALLOW, NAME_EXACT_DENY, NAME_HASH_SEED, NAME_SUFFIX_ALLOW,
    NAME_SUFFIX_DENY, POLICY_ENTRIES, POLICY_MAY_DIRECT, POLICY_NOT_DIRECT, PolicyKey, SNI_MAX,
    SOCK_DENIED, SOCK_ENFORCE_DONE, SOCK_HELD, SockState, TLS_EXTENSIONS_MAX, name_hash_step,
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
    if !names_model_endpoint(ctx, payload_off, total) || gateway_address(ctx) {
        state.flags |= SOCK_ENFORCE_DONE;
        return FirstBytes::Pass;
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

/// True when the segment is a ClientHello whose server name is a model
/// endpoint in `DENY_NAMES` (the most specific pattern decides).
#[inline(always)]
fn names_model_endpoint(ctx: &SkBuffContext, payload_off: usize, total: u32) -> bool {
    let Some((name_off, name_len)) = server_name(ctx, payload_off, total) else {
        return false;
    };
    if name_len == 0 || name_len as usize > SNI_MAX {
        return false;
    }
    // The verifier must see 1..=SNI_MAX: launder, then mask (identity on
    // that range, SNI_MAX being a power of two).
    // SAFETY: volatile read of a local.
    let len = unsafe { core::ptr::read_volatile(&name_len) };
    let len = (len.wrapping_sub(1) & (SNI_MAX as u32 - 1)) + 1;
    let mut walk = Walk {
        name: [0u8; SNI_MAX],
        start: 0,
        end: u64::from(len),
        hash: NAME_HASH_SEED,
        deny: 0,
    };
    // SAFETY: `walk.name` holds SNI_MAX bytes and `len` is at most that.
    let ret = unsafe {
        bpf_skb_load_bytes(
            ctx.as_ptr(),
            name_off as u32,
            walk.name.as_mut_ptr().cast(),
            len,
        )
    };
    if ret != 0 {
        return false;
    }
    if walk.name[(len as usize - 1) & (SNI_MAX - 1)] == b'.' {
        walk.end -= 1;
    }
    // SAFETY: `walk_step` takes the `Walk` on this stack, as passed.
    unsafe {
        bpf_loop(
            SNI_MAX as u32,
            walk_step as *const () as *mut c_void,
            (&raw mut walk).cast(),
            0,
        );
    }
    // SAFETY: the value is copied out at once.
    match unsafe { DENY_NAMES.get(&walk.hash) }.copied() {
        Some(bits) if bits & NAME_EXACT_DENY != 0 => true,
        Some(bits) if bits & NAME_EXACT_ALLOW != 0 => false,
        _ => walk.deny != 0,
    }
}

/// The walk over a host name from its end, as `bpf_loop` steps it: the
/// verifier checks one step, not each of `SNI_MAX` (walked inline, the
/// name made the program too complex for 6.1's verifier).
#[repr(C)]
struct Walk {
    name: [u8; SNI_MAX],
    /// The name is `name[start..end]`.
    start: u64,
    end: u64,
    hash: u64,
    /// 1 when the longest suffix matched so far is a model endpoint's.
    deny: u64,
}

/// Byte `k` from the name's end: at each label boundary the suffix so far
/// is looked up. Returns 1 (stop) past the name's start.
extern "C" fn walk_step(k: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Walk` the caller passed to `bpf_loop`.
    let w = unsafe { &mut *ctx.cast::<Walk>() };
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
