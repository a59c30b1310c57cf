//! Records shared by gatewatch's kernel programs and its userspace agent.
//!
//! Every record is `#[repr(C)]` with explicit padding so both sides agree on
//! the layout byte for byte, and every record starts with a `u32` kind so
//! userspace can tell them apart in the one ring buffer they share.
#![no_std]

/// Bytes in the event ring buffer shared by every program (a power-of-two
/// multiple of the page size, as the kernel requires). Overridable at load
/// time with `gatewatch run --ring-bytes`.
pub const RING_BUF_BYTES: u32 = 8 << 20;

/// First bytes of a connection copied for naming: enough for a ClientHello
/// with a post-quantum key share (about 1.8 KiB) or an HTTP request head.
pub const PAYLOAD_CAPTURE_MAX: usize = 2048;

/// At most this many segments of one connection are copied, so a connection
/// whose first message never completes costs a bounded amount.
pub const PAYLOAD_SEGMENTS_MAX: u32 = 4;

/// DNS responses longer than this are cut; the question and the first
/// answers are at the front, which is what naming needs.
pub const DNS_CAPTURE_MAX: usize = PAYLOAD_CAPTURE_MAX;

/// Record kinds, the first `u32` of every ring buffer record.
pub const EVENT_CONNECT: u32 = 1;
pub const EVENT_PAYLOAD: u32 = 2;
pub const EVENT_DNS: u32 = 3;
pub const EVENT_STATE: u32 = 4;
/// A client's UDP datagram to a QUIC port while its handshake runs (long
/// header packets only): the QUIC Initial carries the ClientHello.
pub const EVENT_DATAGRAM: u32 = 5;
/// A DNS answer segment a workload received over TCP (port 53); `offset`
/// is its place in the answer stream, which starts with a 2-byte length.
pub const EVENT_DNS_TCP: u32 = 6;

/// UDP destination ports whose flows are followed as QUIC (load-time
/// global `QUIC_PORTS`; 0 marks an unused slot).
pub const QUIC_PORTS_MAX: usize = 4;
/// The port QUIC uses unless configured otherwise.
pub const QUIC_PORT_DEFAULT: u16 = 443;
/// Client datagrams copied per QUIC flow: enough for a ClientHello spread
/// over two Initials plus retransmits, bounded like TCP segments.
pub const QUIC_DATAGRAMS_MAX: u32 = 4;
/// Destinations one unconnected UDP socket reports; past this its sends
/// count towards its last flow (counted as `udp_destinations_over_limit`).
pub const UDP_DESTS_PER_SOCKET_MAX: u32 = 8;
/// DNS-over-TCP answer bytes and segments copied per connection.
pub const DNS_TCP_CAPTURE_MAX: u32 = 4096;
pub const DNS_TCP_SEGMENTS_MAX: u32 = 4;

/// Slots of the per-CPU loss counter: one per record kind that can be lost
/// when the ring buffer is full, then what the kernel side could not read.
pub const DROP_CONNECT: u32 = 0;
pub const DROP_PAYLOAD: u32 = 1;
pub const DROP_DNS: u32 = 2;
pub const DROP_STATE: u32 = 3;
/// `bpf_skb_load_bytes` failed: the bytes of a segment were not copied.
pub const DROP_SKB_LOAD: u32 = 4;
/// An IPv6 packet with extension headers was not parsed (no name from it).
pub const DROP_IPV6_EXT: u32 = 5;
/// A ClientHello or HTTP head longer than the segment limit was cut.
pub const DROP_HELLO_CUT: u32 = 6;
pub const DROP_DATAGRAM: u32 = 7;
pub const DROP_DNS_TCP: u32 = 8;
/// An unconnected UDP socket sent to more destinations than
/// `UDP_DESTS_PER_SOCKET_MAX`: the later ones are not reported as flows.
pub const DROP_UDP_DESTS: u32 = 9;
pub const DROP_SLOTS: u32 = 10;

/// Bits of `StateEvent::close_flags`.
/// The peer sent a RST (seen by the ingress program before the close).
pub const CLOSE_PEER_RESET: u32 = 1;
/// `connect()` never sent a SYN (no route, refused by another cgroup
/// program, or a deferred Fast Open connect never written to); the record
/// comes from the socket's release, or from the next `connect()` on it.
pub const CLOSE_NO_SYN: u32 = 2;
/// A UDP flow ended: its socket was released, or it started sending to
/// another destination. Bytes are UDP payload bytes, no TCP accounting.
pub const CLOSE_DATAGRAM: u32 = 4;

/// Bits of `SockState::flags`.
/// `connect()` was seen (and reported) on this socket.
pub const SOCK_WATCHED: u32 = 1;
/// The SYN was sent (`BPF_SOCK_OPS_TCP_CONNECT_CB`).
pub const SOCK_SYN_SENT: u32 = 2;
/// The first payload bytes are captured (or will not be): egress stops
/// looking at this socket after one lookup.
pub const SOCK_CAPTURE_DONE: u32 = 4;
/// A UDP socket sending to a QUIC port: its bytes are counted per packet
/// and its release ends the flow.
pub const SOCK_UDP: u32 = 8;
/// A TCP connection to port 53: the answers it receives are copied.
pub const SOCK_DNS_TCP: u32 = 16;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

pub const COMM_LEN: usize = 16;

/// One `connect()` by a process in the watched cgroup tree.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "user",
    derive(
        zerocopy::FromBytes,
        zerocopy::IntoBytes,
        zerocopy::Immutable,
        zerocopy::KnownLayout
    )
)]
pub struct ConnectEvent {
    pub kind: u32,
    /// `AF_INET` or `AF_INET6`; an IPv4-mapped IPv6 address arrives as `AF_INET6`.
    pub family: u16,
    pub protocol: u8,
    pub _pad0: u8,
    /// `bpf_ktime_get_ns()`: monotonic, nanoseconds since boot.
    pub ts_ns: u64,
    /// The kernel's socket cookie: joins this record with payload and
    /// lifecycle records of the same socket.
    pub cookie: u64,
    pub cgroup_id: u64,
    pub tgid: u32,
    pub pid: u32,
    pub uid: u32,
    /// Destination port, host byte order.
    pub dport: u16,
    pub _pad1: u16,
    /// Destination address in network byte order: IPv4 in the first 4 bytes,
    /// IPv6 in all 16.
    pub daddr: [u8; 16],
    pub comm: [u8; COMM_LEN],
}

/// What precedes the bytes of a `PayloadEvent`; the kernel sends the
/// header and only the `len` bytes copied.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "user",
    derive(
        zerocopy::FromBytes,
        zerocopy::IntoBytes,
        zerocopy::Immutable,
        zerocopy::KnownLayout
    )
)]
pub struct PayloadHeader {
    pub kind: u32,
    /// Valid bytes in `data`.
    pub len: u32,
    pub ts_ns: u64,
    pub cookie: u64,
    pub cgroup_id: u64,
    /// Where `data` starts in the connection's byte stream (0 for the first
    /// segment): lets userspace reassemble a message split over segments.
    pub offset: u32,
    /// Payload bytes the packet carried, of which `len` were copied.
    pub total: u32,
}

/// The first bytes a client sent on a connection (`EVENT_PAYLOAD`), or a DNS
/// response a workload received (`EVENT_DNS`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PayloadEvent {
    pub header: PayloadHeader,
    pub data: [u8; PAYLOAD_CAPTURE_MAX],
}

/// Bytes of a `PayloadEvent` before `data`.
pub const PAYLOAD_HEADER_LEN: usize = core::mem::size_of::<PayloadHeader>();

/// What a `StateEvent` reports.
pub const STATE_ESTABLISHED: u32 = 1;
pub const STATE_CLOSED: u32 = 2;

/// TCP states (include/net/tcp_states.h), as `StateEvent::old_state` holds them.
pub const TCP_ESTABLISHED: u32 = 1;
pub const TCP_SYN_SENT: u32 = 2;
pub const TCP_CLOSE: u32 = 7;

/// A watched connection was established, or closed (`EVENT_STATE`), from
/// `sock_ops`. Byte counts are the kernel's own TCP counters at close.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "user",
    derive(
        zerocopy::FromBytes,
        zerocopy::IntoBytes,
        zerocopy::Immutable,
        zerocopy::KnownLayout
    )
)]
pub struct StateEvent {
    pub kind: u32,
    /// `STATE_ESTABLISHED` or `STATE_CLOSED`.
    pub state: u32,
    pub ts_ns: u64,
    pub cookie: u64,
    /// `tcp_sock.bytes_acked`: payload bytes sent and acknowledged.
    pub bytes_sent: u64,
    /// `tcp_sock.bytes_received`.
    pub bytes_received: u64,
    /// The state the socket left when it closed (`TCP_SYN_SENT` for a
    /// failed connect, `TCP_ESTABLISHED` for a reset or abort).
    pub old_state: u32,
    /// Retransmissions on this socket (SYN retransmits before a timeout).
    pub total_retrans: u32,
    /// `CLOSE_*` bits: how the connection ended, as far as the kernel saw.
    pub close_flags: u32,
    pub _pad: u32,
}

/// Per-socket state of a watched socket, in socket-local storage:
/// created at `connect()` (or a UDP send to a QUIC port), freed with the
/// socket, so nothing is evicted and nothing leaks however many
/// connections are open.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockState {
    /// `CLOSE_*` bits gathered over the socket's life.
    pub close_flags: u32,
    /// `SOCK_*` bits.
    pub flags: u32,
    /// TCP sequence number of the first payload byte.
    pub first_seq: u32,
    /// Stop capturing once the stream has this many bytes (0 until the
    /// first segment).
    pub expected: u32,
    /// Segments (TCP) or datagrams (UDP) copied so far.
    pub segments: u32,
    /// DNS over TCP: sequence number of the first answer byte.
    pub rx_first_seq: u32,
    /// DNS over TCP: answer segments copied so far.
    pub rx_segments: u32,
    /// UDP: destinations reported for this socket.
    pub dests: u32,
    /// UDP: the current flow's destination (port in host order; address
    /// as the sock_addr context holds it).
    pub dport: u32,
    pub daddr: [u32; 4],
    pub _pad: u32,
    /// UDP: payload bytes of the current flow.
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data record with explicit padding and no pointers.
    unsafe impl aya::Pod for super::SockState {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn record_layouts_are_stable_and_eight_byte_aligned() {
        assert_eq!(core::mem::size_of::<ConnectEvent>(), 80);
        assert_eq!(core::mem::align_of::<ConnectEvent>(), 8);
        assert_eq!(PAYLOAD_HEADER_LEN, 40);
        assert_eq!(
            core::mem::offset_of!(PayloadEvent, data),
            PAYLOAD_HEADER_LEN
        );
        assert_eq!(core::mem::size_of::<PayloadEvent>() % 8, 0);
        assert_eq!(core::mem::size_of::<StateEvent>(), 56);
        assert_eq!(core::mem::size_of::<SockState>(), 72);
        assert_eq!(core::mem::offset_of!(SockState, bytes_sent), 56);
    }
}
