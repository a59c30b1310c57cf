//! sock_ops: established and closed, with the kernel's own byte counters,
//! for actively opened TCP connections. State callbacks are switched on per
//! socket at connect, so passive and unwatched sockets cost nothing more.
use aya_ebpf::{
    EbpfContext as _,
    bindings::{
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_STATE_CB, BPF_SOCK_OPS_STATE_CB_FLAG,
        BPF_SOCK_OPS_TCP_CONNECT_CB,
    },
    helpers::generated::{bpf_get_socket_cookie, bpf_ktime_get_ns},
    programs::SockOpsContext,
};
use observer_common::{
    DROP_STATE, EVENT_STATE, STATE_CLOSED, STATE_ESTABLISHED, StateEvent, TCP_CLOSE,
};

use crate::maps::{CAPTURE, EVENTS, count_drop, sock_state, submit_flags};

pub fn try_sock_ops(ctx: &SockOpsContext) -> Result<(), i64> {
    match ctx.op() {
        BPF_SOCK_OPS_TCP_CONNECT_CB => {
            let flags = ctx.cb_flags() | BPF_SOCK_OPS_STATE_CB_FLAG;
            ctx.set_cb_flags(flags as i32).map_err(i64::from)?;
        }
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB => emit(ctx, STATE_ESTABLISHED, 0),
        BPF_SOCK_OPS_STATE_CB if ctx.arg(1) == TCP_CLOSE => {
            // A connection that closes before sending anything is no longer
            // waited for.
            // SAFETY: helper call on the program's own context.
            let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
            let _ = CAPTURE.remove(cookie);
            emit(ctx, STATE_CLOSED, ctx.arg(0));
        }
        _ => {}
    }
    Ok(())
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
