//! Ring buffer records → typed events. A record of the wrong size or an
//! unknown kind is an error value (counted by the caller), never a panic.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use observer_common as common;
use zerocopy::FromBytes;

/// A `connect()` by a watched process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectEvent {
    pub ts_ns: u64,
    pub cookie: u64,
    pub cgroup_id: u64,
    pub tgid: u32,
    pub pid: u32,
    pub uid: u32,
    pub protocol: u8,
    /// IPv4-mapped IPv6 destinations are reported as IPv4.
    pub dst: SocketAddr,
    pub comm: String,
    /// `--enforce deny` refused this `connect()` (EPERM).
    pub refused: bool,
}

/// What `--enforce deny` did at a connection's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnforceAction {
    /// Held until userspace decides this process's policy.
    Held,
    /// Dropped: the process may not call this model endpoint directly.
    Denied,
}

/// `--enforce deny` acted on a connection's first segment; the addresses
/// are as its packet carried them (what `SOCK_DESTROY` needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnforceEvent {
    pub ts_ns: u64,
    pub cookie: u64,
    pub cgroup_id: u64,
    pub tgid: u32,
    pub action: EnforceAction,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

/// Bytes copied by the kernel: the start of a connection's outbound stream
/// or a DNS response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub ts_ns: u64,
    pub cookie: u64,
    pub cgroup_id: u64,
    /// Position of `data` in the stream.
    pub offset: u32,
    /// Bytes the packet carried (`data` may be a prefix).
    pub total: u32,
    pub data: Bytes,
}

/// The kernel's TCP counters when a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// The TCP state left for CLOSE.
    pub old_state: u32,
    pub total_retrans: u32,
    /// The peer sent a RST before the close.
    pub peer_reset: bool,
    /// `connect()` never sent a SYN.
    pub no_syn: bool,
    /// The end of a UDP flow: bytes are UDP payload bytes.
    pub datagram: bool,
}

/// How a connection moved on, from the kernel's TCP state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange {
    Established,
    Closed(Closed),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateEvent {
    pub ts_ns: u64,
    pub cookie: u64,
    pub change: StateChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Connect(ConnectEvent),
    Payload(Chunk),
    Dns(Chunk),
    State(StateEvent),
    /// A client datagram of a QUIC flow's handshake; `offset` is its
    /// index among the flow's copied datagrams.
    Datagram(Chunk),
    /// A segment of DNS answers received over TCP.
    DnsTcp(Chunk),
    Enforce(EnforceEvent),
    /// `--tls-probes`: plaintext a client wrote into its TLS library;
    /// `offset` is the chunk's place in the call, `total` the call's bytes.
    TlsOut(Chunk),
    /// Plaintext a client read from its TLS library.
    TlsIn(Chunk),
}

impl Event {
    /// Every `kind` label value, for counters that start at 0.
    pub const KINDS: [&'static str; 9] = [
        "connect", "payload", "dns", "state", "datagram", "dns_tcp", "enforce", "tls_out", "tls_in",
    ];

    /// The `kind` label of `gatewatch_events_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Connect(_) => "connect",
            Event::Payload(_) => "payload",
            Event::Dns(_) => "dns",
            Event::State(_) => "state",
            Event::Datagram(_) => "datagram",
            Event::DnsTcp(_) => "dns_tcp",
            Event::Enforce(_) => "enforce",
            Event::TlsOut(_) => "tls_out",
            Event::TlsIn(_) => "tls_in",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is too short for a kind")]
    Short(usize),
    #[error("record kind {kind} has {len} bytes, expected {want}")]
    Size { kind: u32, len: usize, want: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    #[error("unknown connection state {0}")]
    UnknownState(u32),
    #[error("unknown enforcement action {0}")]
    UnknownAction(u32),
    #[error("unknown address family {0}")]
    Family(u16),
    #[error("payload length {len} exceeds the {max}-byte capture buffer")]
    PayloadLen { len: u32, max: usize },
}

/// Decodes one ring buffer record.
pub fn decode(record: &[u8]) -> Result<Event, DecodeError> {
    let (kind, _) = u32::read_from_prefix(record).map_err(|_| DecodeError::Short(record.len()))?;
    match kind {
        common::EVENT_CONNECT => {
            let raw: common::ConnectEvent = read_exact(record, kind)?;
            Ok(Event::Connect(connect_from_raw(&raw)?))
        }
        common::EVENT_PAYLOAD => Ok(Event::Payload(chunk_from_record(record, kind)?)),
        common::EVENT_DNS => Ok(Event::Dns(chunk_from_record(record, kind)?)),
        common::EVENT_DATAGRAM => Ok(Event::Datagram(chunk_from_record(record, kind)?)),
        common::EVENT_DNS_TCP => Ok(Event::DnsTcp(chunk_from_record(record, kind)?)),
        common::EVENT_TLS_OUT => Ok(Event::TlsOut(chunk_from_record(record, kind)?)),
        common::EVENT_TLS_IN => Ok(Event::TlsIn(chunk_from_record(record, kind)?)),
        common::EVENT_STATE => {
            let raw: common::StateEvent = read_exact(record, kind)?;
            let change = match raw.state {
                common::STATE_ESTABLISHED => StateChange::Established,
                common::STATE_CLOSED => StateChange::Closed(Closed {
                    bytes_sent: raw.bytes_sent,
                    bytes_received: raw.bytes_received,
                    old_state: raw.old_state,
                    total_retrans: raw.total_retrans,
                    peer_reset: raw.close_flags & common::CLOSE_PEER_RESET != 0,
                    no_syn: raw.close_flags & common::CLOSE_NO_SYN != 0,
                    datagram: raw.close_flags & common::CLOSE_DATAGRAM != 0,
                }),
                other => return Err(DecodeError::UnknownState(other)),
            };
            Ok(Event::State(StateEvent {
                ts_ns: raw.ts_ns,
                cookie: raw.cookie,
                change,
            }))
        }
        common::EVENT_ENFORCE => {
            let raw: common::EnforceEvent = read_exact(record, kind)?;
            let action = match raw.action {
                common::ENFORCE_HELD => EnforceAction::Held,
                common::ENFORCE_DENIED => EnforceAction::Denied,
                other => return Err(DecodeError::UnknownAction(other)),
            };
            Ok(Event::Enforce(EnforceEvent {
                ts_ns: raw.ts_ns,
                cookie: raw.cookie,
                cgroup_id: raw.cgroup_id,
                tgid: raw.tgid,
                action,
                src: SocketAddr::new(ip_of(raw.family, raw.saddr)?, raw.sport),
                dst: SocketAddr::new(ip_of(raw.family, raw.daddr)?, raw.dport),
            }))
        }
        other => Err(DecodeError::UnknownKind(other)),
    }
}

/// An address as the kernel records carry it: IPv4 in the first 4 bytes;
/// IPv4-mapped IPv6 is reported as IPv4.
fn ip_of(family: u16, addr: [u8; 16]) -> Result<IpAddr, DecodeError> {
    match family {
        common::AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(
            addr[0], addr[1], addr[2], addr[3],
        ))),
        common::AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(addr)).to_canonical()),
        other => Err(DecodeError::Family(other)),
    }
}

/// A fixed-size record, exactly.
fn read_exact<T: FromBytes>(record: &[u8], kind: u32) -> Result<T, DecodeError> {
    T::read_from_bytes(record).map_err(|_| DecodeError::Size {
        kind,
        len: record.len(),
        want: size_of::<T>(),
    })
}

fn connect_from_raw(raw: &common::ConnectEvent) -> Result<ConnectEvent, DecodeError> {
    let ip = ip_of(raw.family, raw.daddr)?;
    let comm_len = raw
        .comm
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(raw.comm.len());
    Ok(ConnectEvent {
        ts_ns: raw.ts_ns,
        cookie: raw.cookie,
        cgroup_id: raw.cgroup_id,
        tgid: raw.tgid,
        pid: raw.pid,
        uid: raw.uid,
        protocol: raw.protocol,
        dst: SocketAddr::new(ip, raw.dport),
        comm: String::from_utf8_lossy(&raw.comm[..comm_len]).into_owned(),
        refused: raw.refused != 0,
    })
}

/// Payload records carry only the bytes copied: the header and `len` bytes
/// (the kernel may pad the record to 8 bytes; a full-size record is
/// accepted too).
fn chunk_from_record(record: &[u8], kind: u32) -> Result<Chunk, DecodeError> {
    let size_error = |want| DecodeError::Size {
        kind,
        len: record.len(),
        want,
    };
    if record.len() > size_of::<common::PayloadEvent>() {
        return Err(size_error(size_of::<common::PayloadEvent>()));
    }
    let (header, data) = common::PayloadHeader::read_from_prefix(record)
        .map_err(|_| size_error(common::PAYLOAD_HEADER_LEN))?;
    let len = header.len as usize;
    if len > common::PAYLOAD_CAPTURE_MAX {
        return Err(DecodeError::PayloadLen {
            len: header.len,
            max: common::PAYLOAD_CAPTURE_MAX,
        });
    }
    let data = data
        .get(..len)
        .ok_or_else(|| size_error(common::PAYLOAD_HEADER_LEN + len))?;
    Ok(Chunk {
        ts_ns: header.ts_ns,
        cookie: header.cookie,
        cgroup_id: header.cgroup_id,
        offset: header.offset,
        total: header.total,
        data: Bytes::copy_from_slice(data),
    })
}

/// Encodes records as the kernel does: for tests, benchmarks and fuzzing.
pub mod encode {
    use observer_common as common;
    use zerocopy::IntoBytes as _;

    pub fn connect(raw: &common::ConnectEvent) -> Vec<u8> {
        raw.as_bytes().to_vec()
    }

    pub fn state(raw: &common::StateEvent) -> Vec<u8> {
        raw.as_bytes().to_vec()
    }

    pub fn enforce(raw: &common::EnforceEvent) -> Vec<u8> {
        raw.as_bytes().to_vec()
    }

    /// As the kernel sends it: the header and just the copied bytes.
    pub fn chunk(kind: u32, cookie: u64, cgroup_id: u64, offset: u32, data: &[u8]) -> Vec<u8> {
        let len = data.len().min(common::PAYLOAD_CAPTURE_MAX);
        let header = common::PayloadHeader {
            kind,
            len: len as u32,
            ts_ns: 1,
            cookie,
            cgroup_id,
            offset,
            total: data.len() as u32,
        };
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(&data[..len]);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_connect(family: u16, daddr: [u8; 16], port: u16) -> common::ConnectEvent {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        common::ConnectEvent {
            kind: common::EVENT_CONNECT,
            family,
            protocol: common::IPPROTO_TCP,
            refused: 0,
            ts_ns: 7,
            cookie: 42,
            cgroup_id: 9,
            tgid: 100,
            pid: 101,
            uid: 0,
            dport: port,
            _pad1: 0,
            daddr,
            comm,
        }
    }

    #[test]
    fn decodes_ipv4_connect() {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[127, 0, 0, 2]);
        let ev =
            decode(&encode::connect(&raw_connect(common::AF_INET, addr, 443))).expect("decodes");
        let Event::Connect(c) = ev else {
            panic!("expected a connect event")
        };
        assert_eq!(c.dst, "127.0.0.2:443".parse().unwrap());
        assert_eq!((c.comm.as_str(), c.cookie, c.tgid), ("curl", 42, 100));
    }

    #[test]
    fn ipv4_mapped_ipv6_connect_is_reported_as_ipv4() {
        let v6: Ipv6Addr = "::ffff:127.0.0.2".parse().unwrap();
        let ev = decode(&encode::connect(&raw_connect(
            common::AF_INET6,
            v6.octets(),
            443,
        )))
        .unwrap();
        let Event::Connect(c) = ev else {
            panic!("expected a connect event")
        };
        assert_eq!(c.dst, "127.0.0.2:443".parse().unwrap());
    }

    #[test]
    fn decodes_payload_and_dns_chunks() {
        let rec = encode::chunk(common::EVENT_PAYLOAD, 5, 6, 0, b"GET / HTTP/1.1\r\n");
        let Event::Payload(c) = decode(&rec).unwrap() else {
            panic!("expected payload")
        };
        assert_eq!(
            (&c.data[..], c.cookie, c.cgroup_id),
            (&b"GET / HTTP/1.1\r\n"[..], 5, 6)
        );
        let rec = encode::chunk(common::EVENT_DNS, 5, 6, 0, b"\x00\x01");
        assert!(matches!(decode(&rec), Ok(Event::Dns(_))));
        let rec = encode::chunk(common::EVENT_DATAGRAM, 5, 0, 1, b"\xc0\x00\x00\x00\x01");
        let Event::Datagram(c) = decode(&rec).unwrap() else {
            panic!("expected a datagram")
        };
        assert_eq!((c.offset, c.data.len()), (1, 5));
        let rec = encode::chunk(common::EVENT_DNS_TCP, 5, 6, 2, b"\x00\x01");
        assert!(matches!(decode(&rec), Ok(Event::DnsTcp(c)) if c.offset == 2));
    }

    fn raw_enforce(action: u32, family: u16) -> common::EnforceEvent {
        let (mut saddr, mut daddr) = ([0u8; 16], [0u8; 16]);
        saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
        common::EnforceEvent {
            kind: common::EVENT_ENFORCE,
            action,
            ts_ns: 3,
            cookie: 77,
            cgroup_id: 5,
            tgid: 900,
            family,
            sport: 40000,
            dport: 443,
            _pad: [0; 6],
            saddr,
            daddr,
        }
    }

    #[test]
    fn decodes_enforcement_with_the_connection_addresses() {
        let rec = encode::enforce(&raw_enforce(common::ENFORCE_DENIED, common::AF_INET));
        let Ok(Event::Enforce(e)) = decode(&rec) else {
            panic!("expected an enforcement record")
        };
        assert_eq!(e.action, EnforceAction::Denied);
        assert_eq!(e.src, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(e.dst, "10.0.0.2:443".parse().unwrap());
        assert_eq!((e.cookie, e.cgroup_id, e.tgid), (77, 5, 900));
    }

    #[test]
    fn an_unknown_enforcement_action_or_family_is_an_error() {
        let rec = encode::enforce(&raw_enforce(9, common::AF_INET));
        assert_eq!(decode(&rec), Err(DecodeError::UnknownAction(9)));
        let rec = encode::enforce(&raw_enforce(common::ENFORCE_HELD, 3));
        assert_eq!(decode(&rec), Err(DecodeError::Family(3)));
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        assert_eq!(decode(&[]), Err(DecodeError::Short(0)));
        assert_eq!(decode(&[99, 0, 0, 0, 1]), Err(DecodeError::UnknownKind(99)));
        let rec = encode::connect(&raw_connect(common::AF_INET, [0; 16], 1));
        assert!(matches!(decode(&rec[..40]), Err(DecodeError::Size { .. })));
        let bad_family = encode::connect(&raw_connect(99, [0; 16], 1));
        assert_eq!(decode(&bad_family), Err(DecodeError::Family(99)));
        let mut rec = encode::chunk(common::EVENT_PAYLOAD, 1, 1, 0, b"x");
        rec[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(matches!(decode(&rec), Err(DecodeError::PayloadLen { .. })));
        // A record shorter than its own length field says.
        let mut rec = encode::chunk(common::EVENT_PAYLOAD, 1, 1, 0, b"abcd");
        rec[4..8].copy_from_slice(&100u32.to_ne_bytes());
        assert!(matches!(decode(&rec), Err(DecodeError::Size { .. })));
        assert!(matches!(decode(&rec[..20]), Err(DecodeError::Size { .. })));
        let mut state = common::StateEvent {
            kind: common::EVENT_STATE,
            state: 9,
            ts_ns: 0,
            cookie: 0,
            bytes_sent: 0,
            bytes_received: 0,
            old_state: 0,
            total_retrans: 0,
            close_flags: 0,
            _pad: 0,
        };
        assert_eq!(
            decode(&encode::state(&state)),
            Err(DecodeError::UnknownState(9))
        );
        state.state = common::STATE_CLOSED;
        assert!(matches!(
            decode(&encode::state(&state)),
            Ok(Event::State(_))
        ));
    }
}
