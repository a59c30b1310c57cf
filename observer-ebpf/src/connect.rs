//! `connect()` on TCP sockets: one record per connection attempt.
use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{bpf_get_current_cgroup_id, bpf_get_socket_cookie, bpf_ktime_get_ns},
    },
    programs::SockAddrContext,
};
use aya_log_ebpf::debug;
use core::ptr::{addr_of, read_volatile};
use observer_common::{
    AF_INET, CLOSE_NO_SYN, COMM_LEN, ConnectEvent, DROP_CONNECT, EVENT_CONNECT, IPPROTO_TCP,
    SOCK_SYN_SENT, SOCK_WATCHED, SockState, TCP_CLOSE,
};

use crate::{
    lifecycle::emit_unsent,
    maps::{EVENTS, OWN_TGID, count_drop, sock_state, submit_flags},
};

const SOCK_STREAM: u32 = 1;

pub fn try_connect(ctx: &SockAddrContext, family: u16) -> Result<(), i64> {
    // SAFETY: the kernel hands every sock_addr program a valid context.
    let sa = unsafe { &*ctx.sock_addr };
    // Context fields must be read one aligned u32 at a time (the verifier
    // rejects merged loads), hence the volatile reads.
    let sock_type = unsafe { read_volatile(addr_of!(sa.type_)) };
    if sock_type != SOCK_STREAM {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == OWN_TGID.load() {
        return Ok(());
    }
    // SAFETY: helper calls on the program's own context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // Socket-local state asks egress for this connection's first bytes and
    // lets release tell a connect that never sent its SYN.
    // SAFETY: reading a field of the program's own context.
    let state = sock_state(
        unsafe { read_volatile(addr_of!(sa.__bindgen_anon_1.sk)) },
        true,
    );
    if !state.is_null() {
        // SAFETY: socket-local storage of this socket, valid for the run.
        let state = unsafe { &mut *state };
        // A second connect() on a socket whose first one never sent a SYN
        // (retrying after ENETUNREACH): end the first attempt now.
        if state.flags & (SOCK_WATCHED | SOCK_SYN_SENT) == SOCK_WATCHED {
            emit_unsent(cookie, TCP_CLOSE, CLOSE_NO_SYN);
        }
        *state = SockState {
            flags: SOCK_WATCHED,
            ..SockState::default()
        };
    }

    let mut daddr = [0u8; 16];
    if family == AF_INET {
        let ip4 = unsafe { read_volatile(addr_of!(sa.user_ip4)) };
        daddr[..4].copy_from_slice(&ip4.to_ne_bytes());
    } else {
        for i in 0..4 {
            let word = unsafe { read_volatile(addr_of!(sa.user_ip6[i])) };
            daddr[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
        }
    }
    let user_port = unsafe { read_volatile(addr_of!(sa.user_port)) };
    let dport = u16::from_be(user_port as u16);

    let Some(mut entry) = EVENTS.reserve::<ConnectEvent>(0) else {
        count_drop(DROP_CONNECT);
        return Ok(());
    };
    entry.write(ConnectEvent {
        kind: EVENT_CONNECT,
        family,
        protocol: IPPROTO_TCP,
        _pad0: 0,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        cookie,
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        tgid,
        pid: pid_tgid as u32,
        uid: bpf_get_current_uid_gid() as u32,
        dport,
        _pad1: 0,
        daddr,
        comm: bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]),
    });
    entry.submit(submit_flags());
    debug!(ctx, "connect tgid={} port={}", tgid, dport);
    Ok(())
}
