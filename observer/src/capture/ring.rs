//! Reading the kernel's ring buffer: every waiting record decoded in order,
//! and the per-CPU counters of records the kernel could not queue.
use aya::maps::{MapData, RingBuf};
use observer_common::DROP_SLOTS;

use super::{
    decode::{DecodeError, Event, decode},
    loader::{LoadError, Probes},
};

/// `source` labels of the kernel drop slots, in slot order.
pub const KERNEL_DROP_SOURCES: [&str; DROP_SLOTS as usize] = [
    "ringbuf_connect",
    "ringbuf_payload",
    "ringbuf_dns",
    "ringbuf_state",
    "skb_load_failed",
    "ipv6_extension_headers",
    "hello_over_segment_limit",
    "ringbuf_datagram",
    "ringbuf_dns_tcp",
    "udp_destinations_over_limit",
    "ringbuf_enforce",
    "tls_plaintext",
];

/// Hands every record waiting in `ring` to `each`, decoded (a malformed
/// record is an error value, never a panic).
pub fn drain(ring: &mut RingBuf<MapData>, mut each: impl FnMut(Result<Event, DecodeError>)) {
    while let Some(item) = ring.next() {
        each(decode(&item));
    }
}

/// The kernel's drop counters as deltas since the last reading.
#[derive(Default)]
pub struct DropCounters {
    last: [u64; DROP_SLOTS as usize],
}

impl DropCounters {
    /// Records lost per `source` since the last call (zero deltas included).
    pub fn deltas(
        &mut self,
        probes: &Probes,
    ) -> Result<[(&'static str, u64); DROP_SLOTS as usize], LoadError> {
        let now = probes.drop_counts()?;
        let mut out = [("", 0); DROP_SLOTS as usize];
        for (slot, source) in KERNEL_DROP_SOURCES.iter().enumerate() {
            out[slot] = (source, now[slot].saturating_sub(self.last[slot]));
        }
        self.last = now;
        Ok(out)
    }
}
