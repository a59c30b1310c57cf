//! sock_ops: established and closed, with the kernel's own byte counters,
//! for actively opened TCP connections. State callbacks are switched on per
//! socket at connect, so passive and unwatched sockets cost nothing more.
//! sock_release: the end of a watched socket whose `connect()` never sent a
//! SYN, which the TCP state machine never reports, and of UDP flows.
use aya_ebpf::{
    EbpfContext as _,
    bindings::{
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_STATE_CB, BPF_SOCK_OPS_STATE_CB_FLAG,
        BPF_SOCK_OPS_TCP_CONNECT_CB,
    },
    helpers::generated::{bpf_get_socket_cookie, bpf_ktime_get_ns},
    programs::{SockContext, SockOpsContext},
};
use core::ptr::{addr_of, read_volatile};
use observer_common::{
    CLOSE_DATAGRAM, CLOSE_NO_SYN, DROP_STATE, EVENT_STATE, SOCK_SYN_SENT, SOCK_UDP, SOCK_WATCHED,
    STATE_CLOSED, STATE_ESTABLISHED, SockState, StateEvent, TCP_CLOSE,
};

use crate::maps::{EVENTS, count_drop, sock_state, submit_flags};

pub fn try_sock_ops(ctx: &SockOpsContext) -> Result<(), i64> {
    match ctx.op() {
        BPF_SOCK_OPS_TCP_CONNECT_CB => {
            let flags = ctx.cb_flags() | BPF_SOCK_OPS_STATE_CB_FLAG;
            ctx.set_cb_flags(flags as i32).map_err(i64::from)?;
            // SAFETY: reading a field of the program's own context.
            let state = sock_state(unsafe { (*ctx.ops).__bindgen_anon_2.sk }, false);
            if !state.is_null() {
                // SAFETY: socket-local storage of this socket, valid for the run.
                unsafe { (*state).flags |= SOCK_SYN_SENT };
            }
        }
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB => emit(ctx, STATE_ESTABLISHED, 0),
        BPF_SOCK_OPS_STATE_CB if ctx.arg(1) == TCP_CLOSE => emit(ctx, STATE_CLOSED, ctx.arg(0)),
        _ => {}
    }
    Ok(())
}

/// A watched socket released without its SYN ever sent: report its end,
/// with the state it is in (`TCP_CLOSE` after a failed connect,
/// `TCP_SYN_SENT` for a deferred Fast Open connect never written to).
/// A followed UDP socket: its flow ends, with the bytes counted.
pub fn try_release(ctx: &SockContext) -> Result<(), i64> {
    let state = sock_state(ctx.sock, false);
    if state.is_null() {
        return Ok(());
    }
    // SAFETY: socket-local storage of this socket, valid for the run.
    let state = unsafe { &*state };
    let flags = state.flags;
    if flags & SOCK_UDP != 0 {
        // SAFETY: helper call on the program's own context.
        end_udp_flow(unsafe { bpf_get_socket_cookie(ctx.as_ptr()) }, state);
        return Ok(());
    }
    if flags & (SOCK_WATCHED | SOCK_SYN_SENT) != SOCK_WATCHED {
        return Ok(());
    }
    // SAFETY: reading fields of the program's own context.
    let (tcp_state, cookie) = unsafe {
        (
            read_volatile(addr_of!((*ctx.sock).state)),
            bpf_get_socket_cookie(ctx.as_ptr()),
        )
    };
    emit_close(cookie, tcp_state, CLOSE_NO_SYN, 0, 0);
    Ok(())
}

/// The end of a UDP flow, with the payload bytes counted on its socket.
#[inline(always)]
pub fn end_udp_flow(cookie: u64, state: &SockState) {
    emit_close(
        cookie,
        TCP_CLOSE,
        CLOSE_DATAGRAM,
        state.bytes_sent,
        state.bytes_received,
    );
}

/// A close record the TCP state machine does not make: a connect that
/// sent nothing, or the end of a UDP flow with its payload bytes.
#[inline(always)]
pub fn emit_close(
    cookie: u64,
    old_state: u32,
    close_flags: u32,
    bytes_sent: u64,
    bytes_received: u64,
) {
    let Some(mut entry) = EVENTS.reserve::<StateEvent>(0) else {
        count_drop(DROP_STATE);
        return;
    };
    entry.write(StateEvent {
        kind: EVENT_STATE,
        state: STATE_CLOSED,
        // SAFETY: helper call.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        cookie,
        bytes_sent,
        bytes_received,
        old_state,
        total_retrans: 0,
        close_flags,
        _pad: 0,
    });
    entry.submit(submit_flags());
}

#[inline(always)]
fn emit(ctx: &SockOpsContext, state: u32, old_state: u32) {
    let Some(mut entry) = EVENTS.reserve::<StateEvent>(0) else {
        count_drop(DROP_STATE);
        return;
    };
    // SAFETY: reading fields of the program's own context; these callbacks
    // run on full sockets, where the byte counters are valid.
    let ops = unsafe { &*ctx.ops };
    // SAFETY: as above.
    let sock = sock_state(unsafe { ops.__bindgen_anon_2.sk }, false);
    let close_flags = if sock.is_null() {
        0
    } else {
        // SAFETY: socket-local storage of this socket, valid for the run.
        unsafe { (*sock).close_flags }
    };
    entry.write(StateEvent {
        kind: EVENT_STATE,
        state,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        cookie: unsafe { bpf_get_socket_cookie(ctx.as_ptr()) },
        bytes_sent: ops.bytes_acked,
        bytes_received: ops.bytes_received,
        old_state,
        total_retrans: ops.total_retrans,
        close_flags,
        _pad: 0,
    });
    entry.submit(submit_flags());
}
