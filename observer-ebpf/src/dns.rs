//! Ingress: DNS answers delivered to watched sockets (UDP from port 53,
//! and TCP connections to port 53), so userspace learns which names the
//! workloads resolved to which addresses; RSTs from peers, so a reset
//! connection is told from one its own client aborted; and the bytes
//! followed UDP flows receive.
use aya_ebpf::{
    EbpfContext as _,
    helpers::generated::{bpf_get_socket_cookie, bpf_skb_cgroup_id},
    programs::SkBuffContext,
};
use observer_common::{
    CLOSE_PEER_RESET, DNS_TCP_CAPTURE_MAX, DNS_TCP_SEGMENTS_MAX, DROP_DNS, DROP_DNS_TCP, EVENT_DNS,
    EVENT_DNS_TCP, IPPROTO_TCP, IPPROTO_UDP, SOCK_DNS_TCP, SOCK_UDP,
};

use crate::{
    maps::sock_state,
    net::{l4_offset_any, read},
    payload::{UDP_HDR_LEN, emit},
};

const DNS_PORT: u16 = 53;

/// The first bytes of a TCP header: ports, sequence number, data offset
/// and flags, read with one load.
const TCP_HEAD: usize = 14;
const TCP_SEQ_OFFSET: usize = 4;
const TCP_DOFF_OFFSET: usize = 12;
const TCP_FLAGS_OFFSET: usize = 13;
const TCP_RST: u8 = 0x04;

pub fn try_ingress(ctx: &SkBuffContext) -> Result<(), i64> {
    let (proto, l4) = l4_offset_any(ctx).ok_or(0)?;
    if proto == IPPROTO_TCP {
        let head: [u8; TCP_HEAD] = read(ctx, l4).ok_or(0)?;
        if head[TCP_FLAGS_OFFSET] & TCP_RST != 0 {
            note_peer_reset(ctx);
        }
        if u16::from_be_bytes([head[0], head[1]]) == DNS_PORT {
            dns_over_tcp(ctx, l4, &head);
        }
        return Ok(());
    }
    if proto != IPPROTO_UDP {
        return Ok(());
    }
    let payload_off = l4 + UDP_HDR_LEN;
    let total = ctx.len().saturating_sub(payload_off as u32);
    // SAFETY: reading a field of the program's own context.
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    let state = sock_state(sk, false);
    if !state.is_null() {
        // SAFETY: socket-local storage of this socket, valid for the run.
        let state = unsafe { &mut *state };
        if state.flags & SOCK_UDP != 0 {
            state.bytes_received += u64::from(total);
        }
    }
    let sport: [u8; 2] = read(ctx, l4).ok_or(0)?;
    if u16::from_be_bytes(sport) == DNS_PORT {
        emit_dns(ctx, EVENT_DNS, 0, payload_off, total, DROP_DNS);
    }
    Ok(())
}

/// Copies DNS answer bytes, with the receiving socket's cookie and cgroup.
#[inline(always)]
fn emit_dns(
    ctx: &SkBuffContext,
    kind: u32,
    offset: u32,
    payload_off: usize,
    total: u32,
    drop_slot: u32,
) {
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
        kind,
        cookie,
        cgroup_id,
        offset,
        payload_off,
        total,
        drop_slot,
    );
}

/// A segment of DNS answers on a watched TCP connection to port 53: copied
/// with its place in the answer stream, at most `DNS_TCP_SEGMENTS_MAX`
/// segments and `DNS_TCP_CAPTURE_MAX` bytes per connection.
#[inline(always)]
fn dns_over_tcp(ctx: &SkBuffContext, l4: usize, head: &[u8; TCP_HEAD]) {
    // SAFETY: reading a field of the program's own context.
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    let state = sock_state(sk, false);
    if state.is_null() {
        return;
    }
    // SAFETY: socket-local storage of this socket, valid for the run.
    let state = unsafe { &mut *state };
    if state.flags & SOCK_DNS_TCP == 0 || state.rx_segments >= DNS_TCP_SEGMENTS_MAX {
        return;
    }
    let payload_off = l4 + ((head[TCP_DOFF_OFFSET] >> 4) as usize) * 4;
    let total = ctx.len().saturating_sub(payload_off as u32);
    if total == 0 {
        return;
    }
    let seq = u32::from_be_bytes([
        head[TCP_SEQ_OFFSET],
        head[TCP_SEQ_OFFSET + 1],
        head[TCP_SEQ_OFFSET + 2],
        head[TCP_SEQ_OFFSET + 3],
    ]);
    if state.rx_segments == 0 {
        state.rx_first_seq = seq;
    }
    let offset = seq.wrapping_sub(state.rx_first_seq);
    if offset >= DNS_TCP_CAPTURE_MAX {
        return;
    }
    state.rx_segments += 1;
    emit_dns(ctx, EVENT_DNS_TCP, offset, payload_off, total, DROP_DNS_TCP);
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
