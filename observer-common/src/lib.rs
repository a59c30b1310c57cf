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
/// `--enforce deny`: the kernel held or denied a connection's first bytes
/// (`EnforceEvent`).
pub const EVENT_ENFORCE: u32 = 7;

/// `--tls-probes`: plaintext a process wrote into (`EVENT_TLS_OUT`) or
/// read from (`EVENT_TLS_IN`) a TLS library, as `PayloadEvent`s: `offset`
/// is the chunk's place in the library call's buffer, `total` the call's
/// bytes.
pub const EVENT_TLS_OUT: u32 = 8;
pub const EVENT_TLS_IN: u32 = 9;

/// Plaintext copied per TLS library call, in `PAYLOAD_CAPTURE_MAX` chunks;
/// the rest of a longer call is reported as skipped.
pub const TLS_CHUNKS_MAX: u32 = 32;
/// The same on kernels whose verifier gives up on that long a copy (6.1
/// does): the `_lite` programs copy this many chunks per call.
pub const TLS_CHUNKS_LITE: u32 = 4;
/// Threads in a `connect()` or a TLS library call at once (`CONNECT_FDS`,
/// `SSL_CALLS`, LRU).
pub const TLS_THREADS_MAX: u32 = 16384;
/// Client sockets and TLS sessions the probes can join (`FD_COOKIES`,
/// `SSL_FDS`, `TLS_SKIP`, LRU).
pub const TLS_SOCKETS_MAX: u32 = 65536;

/// Offset of `fd` in the `syscalls/sys_enter_connect` tracepoint record
/// (after the common header and the syscall number, as its format file says).
pub const SYS_ENTER_FD_OFFSET: usize = 16;

/// Go's `crypto/tls.(*Conn)` → its socket's descriptor, through fields
/// whose places have not moved since Go 1.12: `tls.Conn.conn` (a
/// `net.Conn` interface: its data pointer after the type word) → a
/// `*net.TCPConn`, whose first word is its `*net.netFD` → `pfd poll.FD`,
/// whose `Sysfd` follows the 16-byte `fdMutex`.
pub const GO_IFACE_DATA_OFFSET: u64 = 8;
pub const GO_SYSFD_OFFSET: u64 = 16;

/// The key of `GO_READS`: one goroutine (its `g`, which Go keeps in R14)
/// of one process: a goroutine may move to another thread between a
/// call's entry and its return.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GoroutineKey {
    pub tgid: u32,
    pub _pad: u32,
    pub g: u64,
}

/// A `(*tls.Conn).Read` in progress: the connection and the buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoRead {
    pub conn: u64,
    pub buf: u64,
}

/// The key of `FD_COOKIES`: one file descriptor of one process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FdKey {
    pub tgid: u32,
    pub fd: u32,
}

/// The key of `SSL_FDS`: one TLS session (an `SSL *`) of one process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SslKey {
    pub tgid: u32,
    pub _pad: u32,
    pub ssl: u64,
}

/// A TLS library call in progress, kept from its entry to its return.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SslCall {
    pub ssl: u64,
    pub buf: u64,
    /// `SSL_*_ex`: where the library writes the byte count; 0 otherwise.
    pub len_ptr: u64,
    /// `EVENT_TLS_OUT` or `EVENT_TLS_IN`.
    pub kind: u32,
    pub _pad: u32,
}

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
/// An `EnforceEvent` was lost: the connection is still stopped, but its
/// socket is not ended until userspace learns of it another way.
pub const DROP_ENFORCE: u32 = 10;
/// A TLS plaintext chunk was lost (the ring was full, or the process's
/// memory could not be read).
pub const DROP_TLS: u32 = 11;
pub const DROP_SLOTS: u32 = 12;

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
/// `--enforce deny`: the policy for this socket's first bytes is decided
/// (allowed, or not a model endpoint); egress does not look again.
pub const SOCK_ENFORCE_DONE: u32 = 32;
/// `--enforce deny`: the first bytes named a model endpoint and this
/// socket's workload may not call one directly: every segment it sends
/// is dropped until userspace ends the socket.
pub const SOCK_DENIED: u32 = 64;
/// `--enforce deny`: the first bytes named a model endpoint before
/// userspace had decided this process's policy; they are dropped (TCP
/// sends them again) and userspace has been asked once.
pub const SOCK_HELD: u32 = 128;

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
    /// 1 when `--enforce deny` refused this `connect()` (EPERM): the
    /// address is a provider's by a user's rule and the process may not
    /// call providers directly.
    pub refused: u8,
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
    /// The process that called `connect()`: the key of its policy.
    pub tgid: u32,
    /// UDP: payload bytes of the current flow.
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// `ENFORCE` load-time global: what the kernel does with first bytes that
/// name a model endpoint from a workload that may not call one directly.
/// Off and audit leave every packet alone (audit is counted in userspace).
pub const ENFORCE_OFF: u32 = 0;
pub const ENFORCE_DENY: u32 = 2;

/// Entries of the kernel's model-endpoint name table (`DENY_NAMES`).
pub const DENY_NAMES_MAX: u32 = 8192;
/// Entries of the kernel's address-rule table (`ADDR_RULES`).
pub const ADDR_RULES_MAX: u32 = 1024;
/// (cgroup, address) pairs `connect()` refuses because only denied model
/// endpoints' DNS answers gave them to that cgroup (`DENY_ADDRS`, LRU).
pub const DENY_ADDRS_MAX: u32 = 16384;
/// Processes whose policy the kernel remembers (`POLICY`, LRU).
pub const POLICY_ENTRIES: u32 = 16384;
/// Longest server name the kernel reads from a ClientHello (a DNS name is
/// at most 253 bytes).
pub const SNI_MAX: usize = 256;
/// TLS extensions the kernel walks looking for `server_name`.
pub const TLS_EXTENSIONS_MAX: u32 = 32;
/// Bytes of an HTTP/1.x request head the kernel scans for its `Host`
/// header (in the first segment only), in chunks of `HTTP_SCAN_CHUNK`.
pub const HTTP_HOST_SCAN_MAX: usize = 1024;
pub const HTTP_SCAN_CHUNK: usize = 64;

/// Bits of a `DENY_NAMES` value. A name is matched from its last label
/// backwards: every suffix at a label boundary, then the whole name; the
/// longest match decides, an exact match over any suffix, as userspace's
/// classifier does. `ALLOW` entries are the more specific patterns of a
/// gateway, agent platform or ignored host under a model wildcard.
pub const NAME_EXACT_DENY: u8 = 1;
pub const NAME_EXACT_ALLOW: u8 = 2;
pub const NAME_SUFFIX_DENY: u8 = 4;
pub const NAME_SUFFIX_ALLOW: u8 = 8;

/// Values of `POLICY`: may this process call model endpoints directly?
pub const POLICY_MAY_DIRECT: u8 = 1;
pub const POLICY_NOT_DIRECT: u8 = 2;

/// Values of an `ADDR_RULES` entry's `verdict`.
pub const ADDR_DENY: u8 = 1;
pub const ADDR_ALLOW: u8 = 2;

/// FNV-1a over a host name's bytes read from the last to the first,
/// ASCII lower-cased: the kernel folds each byte as it walks back, so
/// every suffix's hash is known at its dot without reading it twice.
pub const NAME_HASH_SEED: u64 = 0xcbf2_9ce4_8422_2325;
const NAME_HASH_PRIME: u64 = 0x0000_0100_0000_01b3;

#[inline(always)]
pub fn name_hash_step(hash: u64, byte: u8) -> u64 {
    (hash ^ u64::from(byte.to_ascii_lowercase())).wrapping_mul(NAME_HASH_PRIME)
}

/// The hash of `name` (no trailing dot) as the kernel computes it.
pub fn name_hash(name: &[u8]) -> u64 {
    name.iter()
        .rev()
        .fold(NAME_HASH_SEED, |h, b| name_hash_step(h, *b))
}

/// The key of `POLICY`: one process in one cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolicyKey {
    pub cgroup_id: u64,
    pub tgid: u32,
    pub _pad: u32,
}

/// The key of `DENY_ADDRS`: an address (IPv4 as IPv4-mapped IPv6) as one
/// cgroup learned it from DNS.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrKey {
    pub cgroup_id: u64,
    pub addr: [u8; 16],
}

/// A value of `ADDR_RULES`, an LPM trie keyed by 16-byte addresses: IPv4
/// as IPv4-mapped IPv6 (`::ffff:a.b.c.d`, prefix + 96).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrRuleValue {
    /// `ADDR_DENY` or `ADDR_ALLOW`.
    pub verdict: u8,
    pub _pad: u8,
    /// The rule's port, or 0 for every port.
    pub port: u16,
}

/// What an `EnforceEvent` reports.
/// First bytes named a model endpoint before this process's policy was
/// known: they were dropped for now, userspace should decide.
pub const ENFORCE_HELD: u32 = 1;
/// First bytes named a model endpoint from a process that may not call it
/// directly: they were dropped; userspace should end the socket.
pub const ENFORCE_DENIED: u32 = 2;

/// `--enforce deny` at a connection's first bytes (`EVENT_ENFORCE`), with
/// the connection's addresses as its packet carried them, which is what a
/// `SOCK_DESTROY` request needs to find the socket.
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
pub struct EnforceEvent {
    pub kind: u32,
    /// `ENFORCE_HELD` or `ENFORCE_DENIED`.
    pub action: u32,
    pub ts_ns: u64,
    pub cookie: u64,
    pub cgroup_id: u64,
    pub tgid: u32,
    pub family: u16,
    /// Ports in host byte order.
    pub sport: u16,
    pub dport: u16,
    pub _pad: [u8; 6],
    /// Addresses in network byte order: IPv4 in the first 4 bytes.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data keys and values with explicit padding.
    unsafe impl aya::Pod for super::PolicyKey {}
    unsafe impl aya::Pod for super::AddrKey {}
    unsafe impl aya::Pod for super::AddrRuleValue {}
    // SAFETY: plain-old-data record with explicit padding and no pointers.
    unsafe impl aya::Pod for super::SockState {}
    unsafe impl aya::Pod for super::FdKey {}
    unsafe impl aya::Pod for super::SslKey {}
    unsafe impl aya::Pod for super::SslCall {}
    unsafe impl aya::Pod for super::GoroutineKey {}
    unsafe impl aya::Pod for super::GoRead {}
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
        assert_eq!(core::mem::size_of::<EnforceEvent>(), 80);
        assert_eq!(core::mem::size_of::<PolicyKey>(), 16);
        assert_eq!(core::mem::size_of::<AddrKey>(), 24);
        assert_eq!(core::mem::size_of::<AddrRuleValue>(), 4);
        assert_eq!(core::mem::size_of::<FdKey>(), 8);
        assert_eq!(core::mem::size_of::<SslKey>(), 16);
        assert_eq!(core::mem::size_of::<SslCall>(), 32);
    }

    #[test]
    fn name_hash_folds_case_and_reads_from_the_end() {
        assert_eq!(name_hash(b"API.OpenAI.com"), name_hash(b"api.openai.com"));
        assert_ne!(name_hash(b"api.openai.com"), name_hash(b"moc.ianepo.ipa"));
        // The walk from the end passes the suffix's hash at its dot.
        let suffix = name_hash(b"openai.azure.com");
        let mut h = NAME_HASH_SEED;
        let name = b"x.openai.azure.com";
        let mut at_dots = std::vec::Vec::new();
        for b in name.iter().rev() {
            if *b == b'.' {
                at_dots.push(h);
            }
            h = name_hash_step(h, *b);
        }
        assert!(at_dots.contains(&suffix));
        assert_eq!(h, name_hash(name));
    }
}
