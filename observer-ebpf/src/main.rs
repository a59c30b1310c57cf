//! gatewatch's kernel programs. They observe and never decide: every program
//! allows the operation it sees, copies a bounded record into the ring buffer
//! and returns. Names, classification and counting happen in userspace.
#![no_std]
#![no_main]

mod connect;
mod dns;
mod lifecycle;
mod maps;
mod net;
mod payload;

use aya_ebpf::{
    macros::{cgroup_skb, cgroup_sock, cgroup_sock_addr, sock_ops},
    programs::{SkBuffContext, SockAddrContext, SockContext, SockOpsContext},
};
use observer_common::{AF_INET, AF_INET6};

/// Return value of cgroup programs that lets the packet or call through.
const ALLOW: i32 = 1;

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    let _ = connect::try_connect(&ctx, AF_INET);
    ALLOW
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    let _ = connect::try_connect(&ctx, AF_INET6);
    ALLOW
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
    let _ = payload::try_egress(&ctx);
    ALLOW
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
