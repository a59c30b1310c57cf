//! Maps and load-time globals shared by the programs.
use aya_ebpf::{
    Global,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, bpf_sock},
    btf_maps::SkStorage,
    helpers::generated::bpf_sk_storage_get,
    macros::{btf_map, map},
    maps::{PerCpuArray, RingBuf},
};
use observer_common::{DROP_SLOTS, QUIC_PORT_DEFAULT, QUIC_PORTS_MAX, RING_BUF_BYTES, SockState};

/// Every record for userspace, in arrival order.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BUF_BYTES, 0);

/// Records lost because `EVENTS` was full, per CPU and per record kind.
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DROP_SLOTS, 0);

/// State of each watched socket: created at `connect()`, read by egress
/// (capture progress), ingress (a peer's RST), sock_ops and release, and
/// freed by the kernel with the socket. Unlike a map keyed by cookie it
/// cannot fill up, so no connection is ever evicted unseen, and a lookup
/// from a socket is a pointer walk, not a hash.
#[btf_map]
pub static SOCKS: SkStorage<SockState> = SkStorage::new();

/// The socket-local state of `sk`, created when `create`; null when there
/// is none (or no memory for it).
#[inline(always)]
pub fn sock_state(sk: *mut bpf_sock, create: bool) -> *mut SockState {
    if sk.is_null() {
        return core::ptr::null_mut();
    }
    let map = core::ptr::from_ref(&SOCKS).cast_mut().cast();
    let flags = if create {
        aya_ebpf::bindings::BPF_SK_STORAGE_GET_F_CREATE.into()
    } else {
        0
    };
    // SAFETY: helper call with a socket pointer from the program's context.
    unsafe { bpf_sk_storage_get(map, sk.cast(), core::ptr::null_mut(), flags) }.cast()
}

/// The agent's own process id: its connections are not observed.
#[unsafe(no_mangle)]
pub static OWN_TGID: Global<u32> = Global::new(0);

/// UDP destination ports followed as QUIC flows; 0 is an unused slot.
#[unsafe(no_mangle)]
pub static QUIC_PORTS: Global<[u16; QUIC_PORTS_MAX]> = Global::new([QUIC_PORT_DEFAULT, 0, 0, 0]);

/// Wake the reader only once this much is waiting; it also drains on a
/// short timer, so a wakeup per record (an IPI and a context switch each)
/// is not needed. Set at load to a fraction of the ring.
#[unsafe(no_mangle)]
pub static WAKEUP_BYTES: Global<u64> = Global::new(1 << 20);

/// Flags for submitting a record: no wakeup until `WAKEUP_BYTES` are waiting.
#[inline(always)]
pub fn submit_flags() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA.into()) >= WAKEUP_BYTES.load() {
        BPF_RB_FORCE_WAKEUP.into()
    } else {
        BPF_RB_NO_WAKEUP.into()
    }
}

/// Counts one record lost in slot `slot`. Never blocks, never retries.
#[inline(always)]
pub fn count_drop(slot: u32) {
    if let Some(counter) = DROPS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, so no other writer runs concurrently.
        unsafe { *counter += 1 };
    }
}
