//! Header offsets in a packet as cgroup_skb programs see it: the buffer
//! starts at the IP header.
use aya_ebpf::programs::SkBuffContext;
use observer_common::DROP_IPV6_EXT;

use crate::maps::count_drop;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPV6_HDR_LEN: usize = 40;

/// IPv6 next-header values of extension headers (hop-by-hop, routing,
/// fragment, destination options, authentication).
const IPV6_EXT_HEADERS: [u8; 5] = [0, 43, 44, 60, 51];

/// The transport protocol and header offset of any packet; an IPv6 packet
/// with extension headers is counted (`DROP_IPV6_EXT`) and skipped.
#[inline(always)]
pub fn l4_offset_any(ctx: &SkBuffContext) -> Option<(u8, usize)> {
    // SAFETY: reading a field of the program's own context.
    let ethertype = u16::from_be(unsafe { (*ctx.skb.skb).protocol } as u16);
    if ethertype == ETH_P_IP {
        let vihl: u8 = ctx.load(0).ok()?;
        let ip_proto: u8 = ctx.load(9).ok()?;
        Some((ip_proto, ((vihl & 0x0f) as usize) * 4))
    } else if ethertype == ETH_P_IPV6 {
        let next: u8 = ctx.load(6).ok()?;
        if IPV6_EXT_HEADERS.contains(&next) {
            count_drop(DROP_IPV6_EXT);
            return None;
        }
        Some((next, IPV6_HDR_LEN))
    } else {
        None
    }
}

/// Returns the offset of the transport header when the packet's transport
/// protocol is `proto`. IPv6 extension headers are not walked: packets that
/// carry them are skipped (they are rare on TCP and DNS traffic).
#[inline(always)]
pub fn l4_offset(ctx: &SkBuffContext, proto: u8) -> Option<usize> {
    // SAFETY: reading a field of the program's own context.
    let ethertype = u16::from_be(unsafe { (*ctx.skb.skb).protocol } as u16);
    if ethertype == ETH_P_IP {
        let vihl: u8 = ctx.load(0).ok()?;
        let ip_proto: u8 = ctx.load(9).ok()?;
        if ip_proto != proto {
            return None;
        }
        Some(((vihl & 0x0f) as usize) * 4)
    } else if ethertype == ETH_P_IPV6 {
        let next: u8 = ctx.load(6).ok()?;
        if next != proto {
            return None;
        }
        Some(IPV6_HDR_LEN)
    } else {
        None
    }
}
