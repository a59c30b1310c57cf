//! Ring buffer records. Random bytes almost never have a record's exact
//! size, so the first byte picks how the rest becomes a record: as is, or
//! fitted to one kind's size so the decoder's field checks are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::capture::decode::{Chunk, Event, decode, encode};
use observer_common as common;

/// `rest` after the record's kind, zero-padded or cut to `size` bytes.
fn fitted(kind: u32, size: usize, rest: &[u8]) -> Vec<u8> {
    let mut record = kind.to_ne_bytes().to_vec();
    record.extend_from_slice(rest);
    record.resize(size, 0);
    record
}

/// What any decoded event must satisfy.
fn check(record: &[u8]) {
    match decode(record) {
        Ok(
            Event::Payload(chunk)
            | Event::Dns(chunk)
            | Event::Datagram(chunk)
            | Event::DnsTcp(chunk)
            | Event::TlsOut(chunk)
            | Event::TlsIn(chunk),
        ) => {
            assert!(chunk.data.len() <= common::PAYLOAD_CAPTURE_MAX);
        }
        Ok(Event::Connect(c)) => {
            // IPv4-mapped destinations are reported as IPv4.
            if let std::net::IpAddr::V6(v6) = c.dst.ip() {
                assert!(v6.to_ipv4_mapped().is_none(), "{c:?}");
            }
            assert!(c.comm.len() <= 3 * common::COMM_LEN, "{c:?}");
        }
        Ok(Event::Enforce(e)) => {
            for addr in [e.src, e.dst] {
                if let std::net::IpAddr::V6(v6) = addr.ip() {
                    assert!(v6.to_ipv4_mapped().is_none(), "{e:?}");
                }
            }
        }
        Ok(Event::State(_)) | Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let payload_size = size_of::<common::PayloadEvent>();
    match mode % 7 {
        0 => check(rest),
        1 => check(&fitted(
            common::EVENT_CONNECT,
            size_of::<common::ConnectEvent>(),
            rest,
        )),
        2 => check(&fitted(common::EVENT_PAYLOAD, payload_size, rest)),
        3 => check(&fitted(common::EVENT_DNS, payload_size, rest)),
        4 => check(&fitted(
            common::EVENT_STATE,
            size_of::<common::StateEvent>(),
            rest,
        )),
        6 => check(&fitted(
            common::EVENT_ENFORCE,
            size_of::<common::EnforceEvent>(),
            rest,
        )),
        // What the kernel writes decodes to what it was given: 20 bytes of
        // header fields, then the captured bytes.
        _ => {
            let Some((header, bytes)) = rest.split_first_chunk::<20>() else {
                return;
            };
            // Even first byte: a payload; odd: a DNS response; the next
            // bit picks the datagram and DNS-over-TCP kinds instead.
            let kind = match header[0] & 3 {
                0 => common::EVENT_PAYLOAD,
                1 => common::EVENT_DNS,
                2 => common::EVENT_DATAGRAM,
                _ => common::EVENT_DNS_TCP,
            };
            let cookie = u64::from_le_bytes(header[..8].try_into().unwrap());
            let cgroup_id = u64::from_le_bytes(header[8..16].try_into().unwrap());
            let offset = u32::from_le_bytes(header[16..20].try_into().unwrap());
            let record = encode::chunk(kind, cookie, cgroup_id, offset, bytes);
            let captured = bytes.len().min(common::PAYLOAD_CAPTURE_MAX);
            let want = Chunk {
                ts_ns: 1,
                cookie,
                cgroup_id,
                offset,
                total: bytes.len() as u32,
                data: bytes[..captured].to_vec().into(),
            };
            let got = decode(&record).expect("an encoded chunk decodes");
            match got {
                Event::Payload(c) if kind == common::EVENT_PAYLOAD => assert_eq!(c, want),
                Event::Dns(c) if kind == common::EVENT_DNS => assert_eq!(c, want),
                Event::Datagram(c) if kind == common::EVENT_DATAGRAM => assert_eq!(c, want),
                Event::DnsTcp(c) if kind == common::EVENT_DNS_TCP => assert_eq!(c, want),
                other => panic!("kind {kind} decoded as {other:?}"),
            }
        }
    }
});
