//! Ingress: DNS responses (UDP from port 53) delivered to watched sockets,
//! so userspace learns which names the workloads resolved to which
//! addresses; and RSTs from peers, so a reset connection is told from one
//! its own client aborted.
use aya_ebpf::{
    EbpfContext as _,
    helpers::generated::{bpf_get_socket_cookie, bpf_skb_cgroup_id},
    programs::SkBuffContext,
};
use observer_common::{CLOSE_PEER_RESET, DROP_DNS, EVENT_DNS, IPPROTO_TCP, IPPROTO_UDP};

use crate::{maps::sock_state, net::l4_offset_any, payload::emit};

const DNS_PORT: u16 = 53;
const UDP_HDR_LEN: usize = 8;

const TCP_FLAGS_OFFSET: usize = 13;
const TCP_RST: u8 = 0x04;

pub fn try_ingress(ctx: &SkBuffContext) -> Result<(), i64> {
    let (proto, l4) = l4_offset_any(ctx).ok_or(0)?;
    if proto == IPPROTO_TCP {
        let flags: u8 = ctx.load(l4 + TCP_FLAGS_OFFSET)?;
        if flags & TCP_RST != 0 {
            note_peer_reset(ctx);
        }
        return Ok(());
    }
    if proto != IPPROTO_UDP {
        return Ok(());
    }
    let sport = u16::from_be(ctx.load::<u16>(l4)?);
    if sport != DNS_PORT {
        return Ok(());
    }
    let payload_off = l4 + UDP_HDR_LEN;
    let total = ctx.len().saturating_sub(payload_off as u32);
    // SAFETY: helper calls on the program's own context; during the program
    // the skb's socket is the receiving one.
    let (cookie, cgroup_id) = unsafe {
        (
            bpf_get_socket_cookie(ctx.as_ptr()),
            bpf_skb_cgroup_id(ctx.skb.skb),
        )
    };
    emit(
        ctx,
        EVENT_DNS,
        cookie,
        cgroup_id,
        0,
        payload_off,
        total,
        DROP_DNS,
    );
    Ok(())
}

/// Marks the receiving socket, if watched, as reset by its peer; read when
/// it closes.
#[inline(always)]
fn note_peer_reset(ctx: &SkBuffContext) {
    // SAFETY: reading a field of the program's own context.
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    let state = sock_state(sk, false);
    if !state.is_null() {
        // SAFETY: socket-local storage of this socket, valid for the run.
        unsafe { (*state).close_flags |= CLOSE_PEER_RESET };
    }
}
