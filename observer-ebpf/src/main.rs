//! gatewatch's kernel programs. They observe: every program copies a
//! bounded record into the ring buffer and returns. Names, classification
//! and counting happen in userspace. They decide only with `--enforce deny`
//! (see `enforce`), and any failure to decide lets the traffic through.
#![no_std]
#![no_main]

mod connect;
mod dns;
mod enforce;
mod go_tls;
mod lifecycle;
mod maps;
mod net;
mod payload;
mod tls;

use aya_ebpf::{
    macros::{cgroup_skb, cgroup_sock, cgroup_sock_addr, sock_ops},
    programs::{SkBuffContext, SockAddrContext, SockContext, SockOpsContext},
};
use observer_common::{AF_INET, AF_INET6};

/// Return value of cgroup programs that lets the packet or call through.
const ALLOW: i32 = 1;
/// Return value that drops the packet or fails the call with EPERM
/// (`--enforce deny` only).
const DENY: i32 = 0;

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    verdict(connect::try_connect(&ctx, AF_INET))
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    verdict(connect::try_connect(&ctx, AF_INET6))
}

/// Only an explicit `false` denies: any failure to decide lets through.
#[inline(always)]
fn verdict(allow: Result<bool, i64>) -> i32 {
    let v = if matches!(allow, Ok(false)) {
        DENY
    } else {
        ALLOW
    };
    // LLVM would return the flag byte itself, which the verifier cannot
    // bound to 0..=1; the opaque read and mask give it both bounds.
    // SAFETY: volatile read of a local.
    unsafe { core::ptr::read_volatile(&v) & ALLOW }
}

/// Unconnected UDP sends to QUIC ports: the start of each UDP flow.
#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    let _ = connect::try_udp(&ctx, AF_INET);
    ALLOW
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    let _ = connect::try_udp(&ctx, AF_INET6);
    ALLOW
}

/// First payload bytes of connections seen by `connect*`, for TLS SNI and HTTP Host.
#[cgroup_skb(egress)]
pub fn egress(ctx: SkBuffContext) -> i32 {
    verdict(payload::try_egress(&ctx))
}

/// DNS responses received by workloads, for names of destination IPs.
#[cgroup_skb(ingress)]
pub fn ingress(ctx: SkBuffContext) -> i32 {
    let _ = dns::try_ingress(&ctx);
    ALLOW
}

/// Established and closed, with byte counts, for connections seen by `connect*`.
#[sock_ops]
pub fn lifecycle(ctx: SockOpsContext) -> u32 {
    let _ = lifecycle::try_sock_ops(&ctx);
    // sock_ops return values only matter for a few ops; 1 means "ok".
    1
}

/// The end of a watched socket whose `connect()` never sent a SYN, or of a
/// UDP flow.
#[cgroup_sock(sock_release)]
pub fn release(ctx: SockContext) -> i32 {
    let _ = lifecycle::try_release(&ctx);
    ALLOW
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
