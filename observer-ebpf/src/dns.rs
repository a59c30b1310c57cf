//! Ingress: DNS responses (UDP from port 53) delivered to watched sockets.
//! Userspace learns which names the workloads resolved to which addresses.
use aya_ebpf::{
    EbpfContext as _,
    helpers::generated::{bpf_get_socket_cookie, bpf_skb_cgroup_id},
    programs::SkBuffContext,
};
use observer_common::{DROP_DNS, EVENT_DNS, IPPROTO_UDP};

use crate::{net::l4_offset, payload::emit};

const DNS_PORT: u16 = 53;
const UDP_HDR_LEN: usize = 8;

pub fn try_ingress(ctx: &SkBuffContext) -> Result<(), i64> {
    let l4 = l4_offset(ctx, IPPROTO_UDP).ok_or(0)?;
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
