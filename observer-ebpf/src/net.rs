//! Header offsets in a packet as cgroup_skb programs see it: the buffer
//! starts at the IP header.
use aya_ebpf::programs::SkBuffContext;
use observer_common::DROP_IPV6_EXT;

use crate::maps::count_drop;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPV6_HDR_LEN: usize = 40;

/// IPv6 extension headers walked before giving up on a packet (counted as
/// `ipv6_extension_headers`). Real traffic carries one or two.
const IPV6_EXT_HEADERS_MAX: usize = 8;
/// The transport header must start within this many bytes; keeps offsets
/// small and bounded for the verifier.
const IPV6_L4_OFFSET_MAX: usize = 512;

const NEXT_HOP_BY_HOP: u8 = 0;
const NEXT_ROUTING: u8 = 43;
const NEXT_FRAGMENT: u8 = 44;
const NEXT_AUTH: u8 = 51;
const NEXT_DEST_OPTS: u8 = 60;
/// Fragment offset bits of a fragment header: non-zero in a fragment that
/// is not the first, which carries no transport header.
const FRAGMENT_OFFSET_MASK: u16 = 0xfff8;

/// `N` bytes of the packet at `off`. Headers sit in the buffer's linear
/// part, which the program reads directly (no helper call: this runs on
/// every packet); bytes beyond it (payload in page fragments) come through
/// `bpf_skb_load_bytes`.
#[inline(always)]
pub fn read<const N: usize>(ctx: &SkBuffContext, off: usize) -> Option<[u8; N]> {
    // SAFETY: reading fields of the program's own context.
    let (start, end) = unsafe {
        (
            (*ctx.skb.skb).data as usize,
            (*ctx.skb.skb).data_end as usize,
        )
    };
    if start + off + N <= end {
        // SAFETY: the bounds were checked against data_end just above (the
        // verifier checks it too).
        Some(unsafe { core::ptr::read_unaligned((start + off) as *const [u8; N]) })
    } else {
        ctx.load(off).ok()
    }
}

/// The transport protocol and header offset of any IP packet. IPv6
/// extension headers are walked (bounded); a packet with too many, or a
/// non-first fragment, gives `None`.
#[inline(always)]
pub fn l4_offset_any(ctx: &SkBuffContext) -> Option<(u8, usize)> {
    // SAFETY: reading a field of the program's own context.
    let ethertype = u16::from_be(unsafe { (*ctx.skb.skb).protocol } as u16);
    if ethertype == ETH_P_IP {
        let head: [u8; 10] = read(ctx, 0)?;
        Some((head[9], ((head[0] & 0x0f) as usize) * 4))
    } else if ethertype == ETH_P_IPV6 {
        let [next]: [u8; 1] = read(ctx, 6)?;
        if is_extension(next) {
            ipv6_walk(ctx, next)
        } else {
            Some((next, IPV6_HDR_LEN))
        }
    } else {
        None
    }
}

#[inline(always)]
fn is_extension(next: u8) -> bool {
    matches!(
        next,
        NEXT_HOP_BY_HOP | NEXT_ROUTING | NEXT_FRAGMENT | NEXT_AUTH | NEXT_DEST_OPTS
    )
}

/// Walks the extension header chain starting with `next` after the fixed
/// header.
#[inline(always)]
fn ipv6_walk(ctx: &SkBuffContext, mut next: u8) -> Option<(u8, usize)> {
    let mut off = IPV6_HDR_LEN;
    for _ in 0..IPV6_EXT_HEADERS_MAX {
        match next {
            NEXT_HOP_BY_HOP | NEXT_ROUTING | NEXT_DEST_OPTS => {
                let h: [u8; 2] = read(ctx, off)?;
                next = h[0];
                off += (h[1] as usize + 1) * 8;
            }
            NEXT_FRAGMENT => {
                let h: [u8; 4] = read(ctx, off)?;
                if u16::from_be_bytes([h[2], h[3]]) & FRAGMENT_OFFSET_MASK != 0 {
                    return None;
                }
                next = h[0];
                off += 8;
            }
            NEXT_AUTH => {
                let h: [u8; 2] = read(ctx, off)?;
                next = h[0];
                off += (h[1] as usize + 2) * 4;
            }
            _ => return Some((next, off)),
        }
        if off > IPV6_L4_OFFSET_MAX {
            break;
        }
    }
    count_drop(DROP_IPV6_EXT);
    None
}

/// Returns the offset of the transport header when the packet's transport
/// protocol is `proto`.
#[inline(always)]
pub fn l4_offset(ctx: &SkBuffContext, proto: u8) -> Option<usize> {
    match l4_offset_any(ctx) {
        Some((p, off)) if p == proto => Some(off),
        _ => None,
    }
}
