//! Ends a denied socket as `ss -K` does: a netlink `SOCK_DESTROY` request
//! (needs `CONFIG_INET_DIAG_DESTROY`), sent from the socket's own network
//! namespace. The kernel aborts the connection: the client's blocked read
//! or write fails with ECONNABORTED at once instead of waiting for its own
//! timeout. The request names the socket by its addresses and its cookie,
//! so a reused port is never hit.
//!
//! No kept crate builds `SOCK_DESTROY` requests, so the two netlink
//! records are laid out here (`linux/inet_diag.h`).
use std::{
    fs::File,
    io,
    net::{IpAddr, SocketAddr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const SOCK_DESTROY: u16 = 21;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const ALL_STATES: u32 = u32::MAX;
/// Replies read per dump before giving up: a namespace with more sockets
/// than this many pages of replies is not scanned to the end.
const DUMP_READS_MAX: usize = 4096;
const RECV_BUF: usize = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DestroyError {
    #[error("cannot enter the socket's network namespace {path}: {source}")]
    Namespace { path: String, source: io::Error },
    #[error("netlink socket: {0}")]
    Netlink(io::Error),
    #[error(
        "the kernel refused SOCK_DESTROY: {0} (needs CONFIG_INET_DIAG_DESTROY and CAP_NET_ADMIN)"
    )]
    Refused(io::Error),
    #[error("socket not found in its namespace (already closed)")]
    NotFound,
}

/// One socket, as netlink names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketId {
    pub protocol: u8,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub cookie: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct NlMsgHdr {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
}

/// `struct inet_diag_sockid`: ports and addresses in network order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct DiagSockId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u8; 16],
    dst: [u8; 16],
    interface: u32,
    cookie: [u32; 2],
}

/// `struct inet_diag_req_v2`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct DiagReq {
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: DiagSockId,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct Request {
    header: NlMsgHdr,
    req: DiagReq,
}

/// The start of `struct inet_diag_msg`.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, Immutable, KnownLayout)]
struct DiagMsgHead {
    family: u8,
    state: u8,
    timer: u8,
    retrans: u8,
    id: DiagSockId,
}

fn family_of(addr: &SocketAddr) -> u8 {
    if addr.is_ipv4() {
        libc::AF_INET as u8
    } else {
        libc::AF_INET6 as u8
    }
}

fn addr_bytes(ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

fn sock_id(id: &SocketId) -> DiagSockId {
    DiagSockId {
        sport: id.src.port().to_be_bytes(),
        dport: id.dst.port().to_be_bytes(),
        src: addr_bytes(id.src.ip()),
        dst: addr_bytes(id.dst.ip()),
        interface: 0,
        cookie: [id.cookie as u32, (id.cookie >> 32) as u32],
    }
}

fn request(kind: u16, flags: u16, family: u8, protocol: u8, id: DiagSockId) -> Request {
    Request {
        header: NlMsgHdr {
            len: size_of::<Request>() as u32,
            kind,
            flags,
            seq: 1,
            pid: 0,
        },
        req: DiagReq {
            family,
            protocol,
            ext: 0,
            pad: 0,
            states: ALL_STATES,
            id,
        },
    }
}

/// A netlink sock_diag socket opened inside the namespace at `netns`
/// (`/proc/PID/ns/net`). Entering a namespace changes only the calling
/// thread, so it is done on a short-lived thread of its own; the socket
/// keeps its namespace after that thread ends.
pub fn diag_socket_in(netns: &Path) -> Result<OwnedFd, DestroyError> {
    let path = netns.to_owned();
    std::thread::scope(|s| {
        s.spawn(|| {
            let ns = File::open(&path).map_err(|source| DestroyError::Namespace {
                path: path.display().to_string(),
                source,
            })?;
            // SAFETY: setns on a namespace fd we own, for this thread only.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(DestroyError::Namespace {
                    path: path.display().to_string(),
                    source: io::Error::last_os_error(),
                });
            }
            // SAFETY: plain socket(2) call; the fd is owned at once.
            let fd = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    NETLINK_SOCK_DIAG,
                )
            };
            if fd < 0 {
                return Err(DestroyError::Netlink(io::Error::last_os_error()));
            }
            // SAFETY: fd is a new descriptor nobody else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .join()
        .unwrap_or_else(|_| {
            Err(DestroyError::Netlink(io::Error::other(
                "namespace thread panicked",
            )))
        })
    })
}

fn send(fd: &OwnedFd, req: &Request) -> Result<(), DestroyError> {
    let bytes = req.as_bytes();
    // SAFETY: sending a buffer we own to the kernel (netlink, no address).
    let n = unsafe { libc::send(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
    if n < 0 {
        return Err(DestroyError::Netlink(io::Error::last_os_error()));
    }
    Ok(())
}

fn recv(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, DestroyError> {
    // SAFETY: receiving into a buffer we own.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(DestroyError::Netlink(io::Error::last_os_error()));
    }
    Ok(n as usize)
}

/// Destroys the socket `id` through `fd` (a sock_diag socket in its
/// namespace).
pub fn destroy(fd: &OwnedFd, id: &SocketId) -> Result<(), DestroyError> {
    let family = family_of(&id.dst);
    send(
        fd,
        &request(
            SOCK_DESTROY,
            NLM_F_REQUEST | NLM_F_ACK,
            family,
            id.protocol,
            sock_id(id),
        ),
    )?;
    let mut buf = [0u8; 1024];
    let n = recv(fd, &mut buf)?;
    match ack_errno(&buf[..n]) {
        Some(0) => Ok(()),
        Some(errno) if errno == -libc::ENOENT => Err(DestroyError::NotFound),
        Some(errno) => Err(DestroyError::Refused(io::Error::from_raw_os_error(-errno))),
        None => Err(DestroyError::Netlink(io::Error::other(
            "no acknowledgement",
        ))),
    }
}

/// The error code of a netlink acknowledgement (0 is success).
fn ack_errno(reply: &[u8]) -> Option<i32> {
    let (header, rest) = NlMsgHdr::read_from_prefix(reply).ok()?;
    if header.kind != NLMSG_ERROR {
        return None;
    }
    let (errno, _) = i32::read_from_prefix(rest).ok()?;
    Some(errno)
}

/// Finds the addresses of the socket with `cookie` (TCP, to `dst`) by
/// dumping the namespace's sockets of both families (a dual-stack socket
/// to an IPv4 peer is listed as IPv6).
pub fn find(
    fd: &OwnedFd,
    protocol: u8,
    dst: SocketAddr,
    cookie: u64,
) -> Result<SocketId, DestroyError> {
    let families: &[u8] = if dst.is_ipv4() {
        &[libc::AF_INET as u8, libc::AF_INET6 as u8]
    } else {
        &[libc::AF_INET6 as u8]
    };
    let want = [cookie as u32, (cookie >> 32) as u32];
    let mut buf = vec![0u8; RECV_BUF];
    for &family in families {
        let req = request(
            SOCK_DIAG_BY_FAMILY,
            NLM_F_REQUEST | NLM_F_DUMP,
            family,
            protocol,
            DiagSockId::default(),
        );
        send(fd, &req)?;
        let mut found = None;
        'reads: for _ in 0..DUMP_READS_MAX {
            let n = recv(fd, &mut buf)?;
            let mut rest = &buf[..n];
            while let Ok((header, _)) = NlMsgHdr::read_from_prefix(rest) {
                let len = (header.len as usize).max(size_of::<NlMsgHdr>());
                if header.kind == NLMSG_DONE || header.kind == NLMSG_ERROR {
                    break 'reads;
                }
                let body = rest
                    .get(size_of::<NlMsgHdr>()..len.min(rest.len()))
                    .unwrap_or(&[]);
                if let Ok((msg, _)) = DiagMsgHead::read_from_prefix(body)
                    && msg.id.cookie == want
                    && found.is_none()
                {
                    found = Some(socket_id_of(msg.family, protocol, &msg.id, cookie));
                }
                // Records are 4-byte aligned.
                let step = (len + 3) & !3;
                rest = rest.get(step..).unwrap_or(&[]);
            }
        }
        if let Some(id) = found {
            return Ok(id);
        }
    }
    Err(DestroyError::NotFound)
}

fn socket_id_of(family: u8, protocol: u8, id: &DiagSockId, cookie: u64) -> SocketId {
    let ip = |b: &[u8; 16]| -> IpAddr {
        if family == libc::AF_INET as u8 {
            IpAddr::from([b[0], b[1], b[2], b[3]])
        } else {
            IpAddr::from(*b)
        }
    };
    SocketId {
        protocol,
        src: SocketAddr::new(ip(&id.src), u16::from_be_bytes(id.sport)),
        dst: SocketAddr::new(ip(&id.dst), u16::from_be_bytes(id.dport)),
        cookie,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_kernel_layout() {
        assert_eq!(size_of::<DiagSockId>(), 48);
        assert_eq!(size_of::<DiagReq>(), 56);
        assert_eq!(size_of::<Request>(), 72);
        let id = SocketId {
            protocol: 6,
            src: "10.0.0.1:40000".parse().unwrap(),
            dst: "10.0.0.2:443".parse().unwrap(),
            cookie: 0x1122_3344_5566_7788,
        };
        let r = request(SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, 2, 6, sock_id(&id));
        let bytes = r.as_bytes();
        assert_eq!(&bytes[4..6], &SOCK_DESTROY.to_ne_bytes());
        // family, protocol; then sport and dport in network order.
        assert_eq!(&bytes[16..18], &[2, 6]);
        assert_eq!(&bytes[24..28], &[0x9c, 0x40, 0x01, 0xbb]);
        assert_eq!(&bytes[28..32], &[10, 0, 0, 1]);
        assert_eq!(
            &bytes[64..72],
            &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );
    }

    #[test]
    fn an_acknowledgement_gives_its_error_code_and_anything_else_none() {
        let mut ack = NlMsgHdr {
            len: 36,
            kind: NLMSG_ERROR,
            ..NlMsgHdr::default()
        }
        .as_bytes()
        .to_vec();
        ack.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(ack_errno(&ack), Some(-libc::ENOENT));
        assert_eq!(ack_errno(&ack[..10]), None);
        let done = NlMsgHdr {
            len: 20,
            kind: NLMSG_DONE,
            ..NlMsgHdr::default()
        };
        assert_eq!(ack_errno(done.as_bytes()), None);
    }
}
