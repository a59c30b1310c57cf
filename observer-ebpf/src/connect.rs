//! `connect()` on TCP sockets, and UDP flows to QUIC ports (`connect()` or
//! unconnected sends): one record per connection attempt or UDP flow.
use aya_ebpf::{
    EbpfContext as _,
    bindings::bpf_sock_addr,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{bpf_get_current_cgroup_id, bpf_get_socket_cookie, bpf_ktime_get_ns},
    },
    programs::SockAddrContext,
};
use aya_log_ebpf::debug;
use core::ptr::{addr_of, read_volatile};
use observer_common::{
    AF_INET, CLOSE_NO_SYN, COMM_LEN, ConnectEvent, DROP_CONNECT, DROP_UDP_DESTS, EVENT_CONNECT,
    IPPROTO_TCP, IPPROTO_UDP, SOCK_DNS_TCP, SOCK_SYN_SENT, SOCK_UDP, SOCK_WATCHED, SockState,
    TCP_CLOSE, UDP_DESTS_PER_SOCKET_MAX,
};

use crate::{
    enforce,
    lifecycle::{emit_close, end_udp_flow},
    maps::{EVENTS, OWN_TGID, QUIC_PORTS, count_drop, sock_state, submit_flags},
    tls,
};

const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const DNS_PORT: u16 = 53;

/// Where a sock_addr call is going.
struct Dest {
    daddr: [u32; 4],
    dport: u16,
}

/// Returns false when `--enforce deny` refuses the connect.
pub fn try_connect(ctx: &SockAddrContext, family: u16) -> Result<bool, i64> {
    // SAFETY: the kernel hands every sock_addr program a valid context.
    let sa = unsafe { &*ctx.sock_addr };
    // Context fields must be read one aligned u32 at a time (the verifier
    // rejects merged loads), hence the volatile reads.
    let sock_type = unsafe { read_volatile(addr_of!(sa.type_)) };
    if sock_type == SOCK_DGRAM {
        return try_udp(ctx, family).map(|()| true);
    }
    if sock_type != SOCK_STREAM {
        return Ok(true);
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == OWN_TGID.load() {
        return Ok(true);
    }
    // SAFETY: helper calls on the program's own context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let dest = dest(sa, family);
    tls::remember_fd(pid_tgid, cookie);
    // Socket-local state asks egress for this connection's first bytes and
    // lets release tell a connect that never sent its SYN.
    let state = sock_state(sk_of(sa), true);
    if !state.is_null() {
        // SAFETY: socket-local storage of this socket, valid for the run.
        let state = unsafe { &mut *state };
        // A second connect() on a socket whose first one never sent a SYN
        // (retrying after ENETUNREACH): end the first attempt now.
        if state.flags & (SOCK_WATCHED | SOCK_SYN_SENT) == SOCK_WATCHED {
            emit_close(cookie, TCP_CLOSE, CLOSE_NO_SYN, 0, 0);
        }
        let dns = if dest.dport == DNS_PORT {
            SOCK_DNS_TCP
        } else {
            0
        };
        *state = SockState {
            flags: SOCK_WATCHED | dns,
            tgid,
            ..SockState::default()
        };
    }
    let refused = enforce::refuse_connect(family, &dest.daddr, dest.dport, tgid);
    emit_connect(ctx, family, IPPROTO_TCP, cookie, &dest, pid_tgid, refused);
    Ok(!refused)
}

/// A UDP `connect()` or unconnected send: a flow starts when a socket
/// first sends to a QUIC port, and again when it moves to another
/// destination (ending the one before). Sends to the same destination
/// cost one socket-local storage lookup.
pub fn try_udp(ctx: &SockAddrContext, family: u16) -> Result<(), i64> {
    // SAFETY: the kernel hands every sock_addr program a valid context.
    let sa = unsafe { &*ctx.sock_addr };
    let dest = dest(sa, family);
    if !is_quic_port(dest.dport) {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == OWN_TGID.load() {
        return Ok(());
    }
    let state = sock_state(sk_of(sa), true);
    if state.is_null() {
        return Ok(());
    }
    // SAFETY: socket-local storage of this socket, valid for the run; the
    // socket lock serialises its sends.
    let state = unsafe { &mut *state };
    let following = state.flags & SOCK_UDP != 0;
    if following && state.dport == u32::from(dest.dport) && state.daddr == dest.daddr {
        return Ok(());
    }
    if following && state.dests >= UDP_DESTS_PER_SOCKET_MAX {
        count_drop(DROP_UDP_DESTS);
        return Ok(());
    }
    // SAFETY: helper call on the program's own context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    if following {
        end_udp_flow(cookie, state);
    }
    *state = SockState {
        flags: SOCK_WATCHED | SOCK_UDP,
        dests: state.dests + 1,
        dport: u32::from(dest.dport),
        daddr: dest.daddr,
        tgid: (pid_tgid >> 32) as u32,
        ..SockState::default()
    };
    emit_connect(ctx, family, IPPROTO_UDP, cookie, &dest, pid_tgid, false);
    Ok(())
}

#[inline(always)]
fn is_quic_port(port: u16) -> bool {
    let ports = QUIC_PORTS.load();
    port != 0 && ports.contains(&port)
}

#[inline(always)]
fn sk_of(sa: &bpf_sock_addr) -> *mut aya_ebpf::bindings::bpf_sock {
    // SAFETY: reading a field of the program's own context.
    unsafe { read_volatile(addr_of!(sa.__bindgen_anon_1.sk)) }
}

#[inline(always)]
fn dest(sa: &bpf_sock_addr, family: u16) -> Dest {
    let mut daddr = [0u32; 4];
    // SAFETY: reads of the program's own context, one u32 at a time.
    unsafe {
        if family == AF_INET {
            daddr[0] = read_volatile(addr_of!(sa.user_ip4));
        } else {
            for (i, word) in daddr.iter_mut().enumerate() {
                *word = read_volatile(addr_of!(sa.user_ip6[i]));
            }
        }
    }
    let user_port = unsafe { read_volatile(addr_of!(sa.user_port)) };
    Dest {
        daddr,
        dport: u16::from_be(user_port as u16),
    }
}

#[inline(always)]
fn emit_connect(
    ctx: &SockAddrContext,
    family: u16,
    protocol: u8,
    cookie: u64,
    dest: &Dest,
    pid_tgid: u64,
    refused: bool,
) {
    let mut daddr = [0u8; 16];
    for (i, word) in dest.daddr.iter().enumerate() {
        daddr[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    let Some(mut entry) = EVENTS.reserve::<ConnectEvent>(0) else {
        count_drop(DROP_CONNECT);
        return;
    };
    let tgid = (pid_tgid >> 32) as u32;
    entry.write(ConnectEvent {
        kind: EVENT_CONNECT,
        family,
        protocol,
        refused: u8::from(refused),
        ts_ns: unsafe { bpf_ktime_get_ns() },
        cookie,
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        tgid,
        pid: pid_tgid as u32,
        uid: bpf_get_current_uid_gid() as u32,
        dport: dest.dport,
        _pad1: 0,
        daddr,
        comm: bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]),
    });
    entry.submit(submit_flags());
    debug!(ctx, "connect tgid={} port={}", tgid, dest.dport);
}
