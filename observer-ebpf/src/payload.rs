//! Egress: the first bytes each watched TCP connection sends (a TLS
//! ClientHello or an HTTP request head), reassembled in userspace from at
//! most `PAYLOAD_SEGMENTS_MAX` segments; for QUIC flows, the bytes of every
//! datagram and the first long-header datagrams. Connections that are
//! done, or were never watched, leave after one socket-local storage
//! lookup. With `--enforce deny`, a first segment naming a model endpoint
//! may be dropped here (see `enforce`).
use aya_ebpf::{
    EbpfContext as _,
    helpers::generated::{bpf_get_socket_cookie, bpf_ktime_get_ns, bpf_skb_load_bytes},
    programs::SkBuffContext,
};
use observer_common::{
    DROP_DATAGRAM, DROP_HELLO_CUT, DROP_PAYLOAD, DROP_SKB_LOAD, EVENT_DATAGRAM, EVENT_PAYLOAD,
    IPPROTO_TCP, IPPROTO_UDP, PAYLOAD_CAPTURE_MAX, PAYLOAD_SEGMENTS_MAX, PayloadHeader,
    QUIC_DATAGRAMS_MAX, SOCK_CAPTURE_DONE, SOCK_DENIED, SOCK_ENFORCE_DONE, SOCK_HELD, SOCK_UDP,
    SockState,
};

use crate::{
    enforce::{self, FirstBytes},
    maps::{EVENTS, count_drop, sock_state, submit_flags},
    net::{l4_offset, read},
};

pub const UDP_HDR_LEN: usize = 8;
/// First bit of a QUIC packet: set in long-header (handshake) packets.
const QUIC_LONG_HEADER: u8 = 0x80;
const TLS_HANDSHAKE: u8 = 0x16;
const TLS_MAJOR: u8 = 0x03;
const TLS_RECORD_HEADER: u32 = 5;
const HANDSHAKE_HEADER: u32 = 4;
const TLS_HEADERS: u32 = TLS_RECORD_HEADER + HANDSHAKE_HEADER;
const CAPTURE_MAX: u32 = PAYLOAD_CAPTURE_MAX as u32;
const _: () = assert!(
    CAPTURE_MAX.is_power_of_two(),
    "the length mask needs a power of two"
);

/// Returns false when the segment must not leave (`--enforce deny`).
pub fn try_egress(ctx: &SkBuffContext) -> Result<bool, i64> {
    // SAFETY: reading a field of the program's own context.
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    let state = sock_state(sk, false);
    if state.is_null() {
        return Ok(true);
    }
    // SAFETY: socket-local storage of this socket, valid for the run; the
    // socket lock serialises egress of one connection.
    let state = unsafe { &mut *state };
    if state.flags & SOCK_UDP != 0 {
        return udp_egress(ctx, state).map(|()| true);
    }
    let enforcing = state.flags & SOCK_ENFORCE_DONE == 0 && enforce::enabled();
    if state.flags & (SOCK_CAPTURE_DONE | SOCK_DENIED) == SOCK_CAPTURE_DONE && !enforcing {
        return Ok(true);
    }

    let l4 = l4_offset(ctx, IPPROTO_TCP).ok_or(0)?;
    let tcp: [u8; 13] = read(ctx, l4).ok_or(0)?;
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let doff = tcp[12];
    let payload_off = l4 + ((doff >> 4) as usize) * 4;
    let total = ctx.len().saturating_sub(payload_off as u32);
    if total == 0 {
        return Ok(true); // SYN, pure ACK, and the FIN or RST that ends a denied socket
    }
    if state.flags & SOCK_DENIED != 0 {
        return Ok(false);
    }
    let mut allow = true;
    if enforcing && (state.segments == 0 || seq == state.first_seq) {
        let held_before = state.flags & SOCK_HELD != 0;
        if let FirstBytes::Drop = enforce::first_bytes(ctx, state, l4, payload_off, total) {
            if held_before || state.segments != 0 {
                return Ok(false); // a resend: its bytes were copied the first time
            }
            allow = false;
        }
    }
    if state.flags & SOCK_CAPTURE_DONE != 0 {
        return Ok(allow);
    }

    let offset = if state.segments == 0 {
        state.first_seq = seq;
        state.expected = expected_len(ctx, payload_off, total);
        0
    } else {
        seq.wrapping_sub(state.first_seq)
    };
    if offset >= CAPTURE_MAX {
        state.flags |= SOCK_CAPTURE_DONE;
        return Ok(allow);
    }
    state.segments += 1;
    let end = offset.saturating_add(total);
    if end >= state.expected || state.segments >= PAYLOAD_SEGMENTS_MAX {
        if end < state.expected {
            count_drop(DROP_HELLO_CUT);
        }
        state.flags |= SOCK_CAPTURE_DONE;
    }
    // SAFETY: helper call on the program's own context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    emit(
        ctx,
        EVENT_PAYLOAD,
        cookie,
        0,
        offset,
        payload_off,
        total,
        DROP_PAYLOAD,
    );
    Ok(allow)
}

/// A datagram of a followed UDP flow: its payload bytes are counted, and
/// while the QUIC handshake runs (long-header packets) the first
/// `QUIC_DATAGRAMS_MAX` are copied for the ClientHello in their Initials.
/// A GSO send is one buffer holding several datagrams of `gso_size`
/// bytes: the first two are copied as datagrams of their own.
#[inline(always)]
fn udp_egress(ctx: &SkBuffContext, state: &mut SockState) -> Result<(), i64> {
    let l4 = l4_offset(ctx, IPPROTO_UDP).ok_or(0)?;
    let payload_off = l4 + UDP_HDR_LEN;
    let total = ctx.len().saturating_sub(payload_off as u32);
    state.bytes_sent += u64::from(total);
    if total == 0 || state.flags & SOCK_CAPTURE_DONE != 0 {
        return Ok(());
    }
    let first: u8 = ctx.load(payload_off)?;
    if first & QUIC_LONG_HEADER == 0 {
        // A short header: the handshake is over, nothing more to read.
        state.flags |= SOCK_CAPTURE_DONE;
        return Ok(());
    }
    // SAFETY: reading a field of the program's own context; helper call.
    let (gso, cookie) = unsafe { ((*ctx.skb.skb).gso_size, bpf_get_socket_cookie(ctx.as_ptr())) };
    let datagram = if gso != 0 && gso < total { gso } else { total };
    emit(
        ctx,
        EVENT_DATAGRAM,
        cookie,
        0,
        state.segments,
        payload_off,
        datagram,
        DROP_DATAGRAM,
    );
    state.segments += 1;
    if datagram < total && state.segments < QUIC_DATAGRAMS_MAX {
        emit(
            ctx,
            EVENT_DATAGRAM,
            cookie,
            0,
            state.segments,
            payload_off + datagram as usize,
            (total - datagram).min(datagram),
            DROP_DATAGRAM,
        );
        state.segments += 1;
    }
    if state.segments >= QUIC_DATAGRAMS_MAX {
        state.flags |= SOCK_CAPTURE_DONE;
    }
    Ok(())
}

/// How many stream bytes naming needs: the whole ClientHello when the
/// stream starts with a TLS handshake record (one record, or two when the
/// hello is longer than its first record); for an HTTP request whose first
/// segment does not end its head, up to the capture limit (userspace stops
/// as soon as it has the Host header); otherwise this first segment.
#[inline(always)]
fn expected_len(ctx: &SkBuffContext, payload_off: usize, total: u32) -> u32 {
    if total >= TLS_HEADERS {
        if let Ok(head) = ctx.load::<[u8; 9]>(payload_off) {
            if head[0] == TLS_HANDSHAKE && head[1] == TLS_MAJOR {
                let record = u16::from_be_bytes([head[3], head[4]]) as u32;
                let hello = u32::from_be_bytes([0, head[6], head[7], head[8]]);
                let needed = if record >= hello + HANDSHAKE_HEADER {
                    record + TLS_RECORD_HEADER
                } else {
                    // The rest follows in a second record with its own header.
                    hello + HANDSHAKE_HEADER + 2 * TLS_RECORD_HEADER
                };
                return needed.min(CAPTURE_MAX);
            }
        }
    }
    if head_continues(ctx, payload_off, total) {
        CAPTURE_MAX
    } else {
        total.min(CAPTURE_MAX)
    }
}

/// True when the segment starts like an HTTP request (an upper-case
/// method) but does not end with the blank line that closes the head.
#[inline(always)]
fn head_continues(ctx: &SkBuffContext, payload_off: usize, total: u32) -> bool {
    const END_OF_HEAD: [u8; 4] = *b"\r\n\r\n";
    if total < 4 {
        return false;
    }
    let Ok(first) = ctx.load::<u8>(payload_off) else {
        return false;
    };
    if !first.is_ascii_uppercase() {
        return false;
    }
    let tail = payload_off + total as usize - 4;
    !matches!(ctx.load::<[u8; 4]>(tail), Ok(end) if end == END_OF_HEAD)
}

/// Copies up to `PAYLOAD_CAPTURE_MAX` bytes from `payload_off` into a ring
/// record of the smallest size class that holds them (so a 200-byte HTTP
/// head costs 296 bytes of ring, not 2 KiB), or counts a drop when the ring
/// is full. Each record is reserved in the ring and filled in place, so a
/// program interrupted by another (egress in a task, ingress in softirq)
/// never shares a buffer with it.
#[inline(always)]
#[expect(
    clippy::too_many_arguments,
    reason = "flat helper keeps the verifier's view simple"
)]
pub fn emit(
    ctx: &SkBuffContext,
    kind: u32,
    cookie: u64,
    cgroup_id: u64,
    offset: u32,
    payload_off: usize,
    total: u32,
    drop_slot: u32,
) {
    let header = PayloadHeader {
        kind,
        len: 0,
        ts_ns: 0,
        cookie,
        cgroup_id,
        offset,
        total,
    };
    match total {
        0 => {}
        1..=256 => emit_sized::<256>(ctx, header, payload_off, drop_slot),
        257..=512 => emit_sized::<512>(ctx, header, payload_off, drop_slot),
        513..=1024 => emit_sized::<1024>(ctx, header, payload_off, drop_slot),
        _ => emit_sized::<{ PAYLOAD_CAPTURE_MAX }>(ctx, header, payload_off, drop_slot),
    }
}

/// A payload record with room for `N` bytes.
#[repr(C)]
struct Sized<const N: usize> {
    header: PayloadHeader,
    data: [u8; N],
}

#[inline(always)]
fn emit_sized<const N: usize>(
    ctx: &SkBuffContext,
    mut header: PayloadHeader,
    payload_off: usize,
    drop_slot: u32,
) {
    let Some(mut entry) = EVENTS.reserve::<Sized<N>>(0) else {
        count_drop(drop_slot);
        return;
    };
    // The verifier must see 1..=N in the register passed to the helper. LLVM
    // knows `total != 0` and folds any check away, so the value is laundered
    // through the stack and then masked: the mask gives the verifier both
    // bounds and is the identity on 1..=N (N is a power of two).
    let clamped = header.total.min(N as u32);
    // SAFETY: volatile read of a local.
    let clamped = unsafe { core::ptr::read_volatile(&clamped) };
    let len = (clamped.wrapping_sub(1) & (N as u32 - 1)) + 1;
    let record = entry.as_mut_ptr();
    // SAFETY: `record` is this program's own reservation; `len` is in 1..=N,
    // the size of `data`.
    let ret = unsafe {
        bpf_skb_load_bytes(
            ctx.as_ptr(),
            payload_off as u32,
            (*record).data.as_mut_ptr().cast(),
            len,
        )
    };
    if ret != 0 {
        entry.discard(0);
        count_drop(DROP_SKB_LOAD);
        return;
    }
    header.len = len;
    // SAFETY: helper call.
    header.ts_ns = unsafe { bpf_ktime_get_ns() };
    // SAFETY: writing the header of this program's own reservation.
    unsafe { (*record).header = header };
    entry.submit(submit_flags());
}
