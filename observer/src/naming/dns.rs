//! DNS response → question, CNAME chain, addresses.
//!
//! Input is one DNS message a workload received over UDP, cut by the kernel
//! at 2 KiB. `simple-dns` decodes it. Only the question and the answer
//! section matter here, and a cut (or a record `simple-dns` cannot read)
//! costs only the answers from that point on: the answers before it are
//! kept. Every input gives a value or an error, never a panic.
//!
//! Choices:
//! - A response whose rcode is not NOERROR (NXDOMAIN, SERVFAIL...) is
//!   `Ok` with no addresses: it names nothing, but it is a valid answer.
//! - Only responses to standard queries (opcode QUERY) count; a query or
//!   any other opcode is [`DnsError::NotResponse`].
//! - Names are lower-case, without the trailing dot. A name whose labels
//!   hold dots or bytes outside printable ASCII is no host name: as the
//!   question it makes the message malformed, in a record it is skipped.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use simple_dns::{
    CLASS, Packet, RCODE, ResourceRecord,
    rdata::{RData, SVCParam},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The name the client asked for, lower-case, no trailing dot.
    pub question: String,
    /// CNAME chain from the question, in order (evidence only, never used to classify).
    pub cnames: Vec<String>,
    /// A/AAAA answers for the question or its chain, with TTL seconds.
    pub addrs: Vec<(IpAddr, u32)>,
    /// What `HTTPS`/`SVCB` answers for the question or its chain advertised,
    /// with their smallest TTL: evidence only, never used to classify.
    pub service: Option<(ServiceHint, u32)>,
}

/// What a name's `HTTPS` or `SVCB` records (RFC 9460) advertise: the
/// protocols its endpoints speak (`h3` means a client may come over QUIC)
/// and whether they publish an ECH configuration (the client's SNI may
/// then be an outer, public name).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceHint {
    pub alpn: Vec<String>,
    pub ech: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    #[error("not a DNS response")]
    NotResponse,
    #[error("malformed DNS message: {0}")]
    Malformed(String),
}

const HEADER_LEN: usize = 12;
/// Smallest resource record: a root or pointer name, then type, class, TTL
/// and an empty rdata. Bounds how many answers a message can hold.
const MIN_RECORD_LEN: usize = 11;

pub fn parse_response(bytes: &[u8]) -> Result<DnsAnswer, DnsError> {
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Err(DnsError::Malformed(format!(
            "{} bytes is shorter than a header",
            bytes.len()
        )));
    };
    let flags = u16::from_be_bytes([header[2], header[3]]);
    let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    // QR set, opcode QUERY.
    if flags & 0x8000 == 0 || (flags >> 11) & 0xf != 0 {
        return Err(DnsError::NotResponse);
    }
    if count(4) != 1 {
        // RFC 9619: QDCOUNT is 1 in every query and response that matters.
        return Err(DnsError::Malformed(format!("{} questions", count(4))));
    }

    // Keep only the question and answer sections: the authority and
    // additional sections (EDNS, glue) are never needed, and are what a cut
    // at 2 KiB usually lands in. Clamping the answer count to what the bytes
    // can hold also keeps a lying header from costing a large allocation.
    let mut message = bytes.to_vec();
    message[3] &= !0x40; // the reserved Z bit, which simple-dns refuses
    message[8..HEADER_LEN].fill(0);
    let max_answers = (bytes.len() - HEADER_LEN) / MIN_RECORD_LEN;
    let answers = count(6).min(u16::try_from(max_answers).unwrap_or(u16::MAX));
    keep_decodable_answers(&mut message, answers)?;
    let packet = Packet::parse(&message).map_err(|e| DnsError::Malformed(e.to_string()))?;

    let question = packet
        .questions
        .first()
        .and_then(|q| host_name(&q.qname))
        .ok_or_else(|| DnsError::Malformed("question is not a host name".into()))?;
    let cnames = cname_chain(&question, &packet.answers);
    let (addrs, service) = if packet.rcode() == RCODE::NoError {
        (
            addresses(&question, &cnames, &packet.answers),
            service(&question, &cnames, &packet.answers),
        )
    } else {
        (Vec::new(), None)
    };
    Ok(DnsAnswer {
        question,
        cnames,
        addrs,
        service,
    })
}

/// ALPN ids kept from a service answer; real records list two or three.
const SERVICE_ALPN_MAX: usize = 8;

/// The service hints of the question's (or its chain's) `HTTPS` and `SVCB`
/// records in ServiceMode (priority > 0; AliasMode records advertise
/// nothing themselves), merged.
fn service(
    question: &str,
    cnames: &[String],
    answers: &[ResourceRecord<'_>],
) -> Option<(ServiceHint, u32)> {
    let mut found: Option<(ServiceHint, u32)> = None;
    for r in answers.iter().filter(|r| is_internet(r)) {
        let svcb = match &r.rdata {
            RData::HTTPS(https) => &**https,
            RData::SVCB(svcb) => svcb,
            _ => continue,
        };
        let Some(owner) = host_name(&r.name) else {
            continue;
        };
        if svcb.priority == 0 || (owner != question && !cnames.contains(&owner)) {
            continue;
        }
        let (hint, ttl) = found.get_or_insert_with(|| (ServiceHint::default(), u32::MAX));
        *ttl = (*ttl).min(ttl_seconds(r.ttl));
        for param in svcb.iter_params() {
            match param {
                SVCParam::Alpn(ids) => {
                    for id in ids {
                        let id = id.to_string();
                        if hint.alpn.len() < SERVICE_ALPN_MAX && !hint.alpn.contains(&id) {
                            hint.alpn.push(id);
                        }
                    }
                }
                SVCParam::Ech(_) => hint.ech = true,
                _ => {}
            }
        }
    }
    found
}

/// Sets the answer count of `message` to the largest prefix of its first
/// `answers` answers that decodes. Decoding the first k answers succeeds
/// exactly when each of them does, so a binary search finds it.
fn keep_decodable_answers(message: &mut [u8], answers: u16) -> Result<(), DnsError> {
    let mut decodes = |n: u16| {
        message[6..8].copy_from_slice(&n.to_be_bytes());
        Packet::parse(message).map(|_| ())
    };
    if decodes(answers).is_ok() {
        return Ok(());
    }
    if let Err(e) = decodes(0) {
        return Err(DnsError::Malformed(format!("header or question: {e}")));
    }
    let (mut good, mut bad) = (0u16, answers);
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if decodes(mid).is_ok() {
            good = mid;
        } else {
            bad = mid;
        }
    }
    // Leaves the count at `good`, whatever was tried last.
    decodes(good).map_err(|e| DnsError::Malformed(e.to_string()))
}

/// `name` as a lower-case host name without the trailing dot, or `None`
/// when a label could not be one (a dot inside it, or unprintable bytes).
fn host_name(name: &simple_dns::Name<'_>) -> Option<String> {
    let mut out = String::new();
    for label in name.get_labels() {
        let bytes = label.as_ref();
        if bytes.is_empty() || !bytes.iter().all(|&b| b.is_ascii_graphic() && b != b'.') {
            return None;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.extend(bytes.iter().map(|&b| char::from(b.to_ascii_lowercase())));
    }
    // The root name is no host anyone connects to.
    (!out.is_empty()).then_some(out)
}

fn is_internet(record: &ResourceRecord<'_>) -> bool {
    record.class == CLASS::IN
}

/// Follows CNAMEs from `question` through the answers, in order. A loop or
/// a second CNAME for one owner ends the chain rather than branching it.
fn cname_chain(question: &str, answers: &[ResourceRecord<'_>]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::new();
    let mut owner = question.to_owned();
    // Each step uses up one record, so this ends.
    for _ in 0..answers.len() {
        let next = answers.iter().find_map(|r| match &r.rdata {
            RData::CNAME(target) if is_internet(r) && host_name(&r.name)? == owner => {
                host_name(target)
            }
            _ => None,
        });
        match next {
            Some(target) if target != question && !chain.contains(&target) => {
                owner.clone_from(&target);
                chain.push(target);
            }
            _ => break,
        }
    }
    chain
}

fn addresses(
    question: &str,
    cnames: &[String],
    answers: &[ResourceRecord<'_>],
) -> Vec<(IpAddr, u32)> {
    answers
        .iter()
        .filter(|r| is_internet(r))
        .filter_map(|r| {
            let ip = match &r.rdata {
                RData::A(a) => IpAddr::V4(Ipv4Addr::from(a.address)),
                RData::AAAA(aaaa) => IpAddr::V6(Ipv6Addr::from(aaaa.address)),
                _ => return None,
            };
            let owner = host_name(&r.name)?;
            (owner == question || cnames.contains(&owner)).then_some((ip, ttl_seconds(r.ttl)))
        })
        .collect()
}

/// RFC 2181 §8: a TTL with the top bit set is read as zero.
fn ttl_seconds(ttl: u32) -> u32 {
    if ttl > i32::MAX as u32 { 0 } else { ttl }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::{Label, Name, QCLASS, QTYPE, Question, TYPE, rdata};

    // Real responses from dnsmasq 2.90 on loopback, made offline by
    // fixtures/gen_dns.py.
    /// contoso.openai.azure.com → contoso.privatelink.openai.azure.com →
    /// cognitiveweprod.azure-api.net → cognitiveweprod-eastus-01.regional.azure-api.net
    /// → A 10.20.30.40
    const CONTOSO_CHAIN: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/dns_contoso_cname_chain_a.bin"
    ));
    /// Question as sent: API.OpenAI.com; two A records.
    const OPENAI_A: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/dns_api_openai_a.bin"
    ));
    const OPENAI_AAAA: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/dns_api_openai_aaaa.bin"
    ));
    const NXDOMAIN: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/dns_blocked_nxdomain.bin"
    ));
    /// The query that CONTOSO_CHAIN answers.
    const QUERY: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/dns_query_contoso_a.bin"
    ));
    const REAL: [&[u8]; 5] = [CONTOSO_CHAIN, OPENAI_A, OPENAI_AAAA, NXDOMAIN, QUERY];
    // DNS-over-TCP answers of dnsmasq 2.90 to `dig +tcp` (the 2-byte length
    // prefix included), captured with tshark in a network namespace;
    // dnsmasq served them from `--dns-rr=NAME,65|64,<rdata hex>`.
    /// good.example.test HTTPS 1 . alpn="h3,h2" ipv4hint=127.0.0.2 ech=fe0d0000
    const TCP_HTTPS_ECH: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tcpdns_https_good_ech.bin"
    ));
    /// The same with an ech value that is not an ECHConfigList.
    const TCP_HTTPS_BAD_ECH: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tcpdns_https_bad_ech.bin"
    ));
    /// An SVCB (type 64) answer with one ALPN id and port 4444.
    const TCP_SVCB: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tcpdns_svcb_port.bin"
    ));

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn record<'a>(owner: &'a str, ttl: u32, rdata: RData<'a>) -> ResourceRecord<'a> {
        ResourceRecord::new(Name::new_unchecked(owner), CLASS::IN, ttl, rdata)
    }

    fn cname<'a>(owner: &'a str, target: &'a str) -> ResourceRecord<'a> {
        record(
            owner,
            60,
            RData::CNAME(rdata::CNAME(Name::new_unchecked(target))),
        )
    }

    fn a<'a>(owner: &'a str, addr: &str, ttl: u32) -> ResourceRecord<'a> {
        let addr: Ipv4Addr = addr.parse().unwrap();
        record(owner, ttl, RData::A(rdata::A::from(addr)))
    }

    /// A compressed response to an A query for `question`.
    fn response(question: &str, answers: Vec<ResourceRecord<'_>>) -> Vec<u8> {
        let mut packet = Packet::new_reply(7);
        packet.questions.push(Question::new(
            Name::new_unchecked(question),
            QTYPE::TYPE(TYPE::A),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        packet.answers = answers;
        packet.build_bytes_vec_compressed().unwrap()
    }

    #[test]
    fn an_https_answer_over_tcp_advertises_h3_and_ech() {
        let answer = parse_response(&TCP_HTTPS_ECH[2..]).unwrap();
        assert_eq!(answer.question, "good.example.test");
        let (hint, _ttl) = answer.service.expect("the HTTPS record's hints");
        assert_eq!(hint.alpn, ["h3", "h2"]);
        assert!(hint.ech);
        assert!(answer.addrs.is_empty(), "ipv4hint is no answer");
    }

    #[test]
    fn an_svcb_answer_gives_its_alpn_and_a_bad_ech_value_costs_only_the_record() {
        let answer = parse_response(&TCP_SVCB[2..]).unwrap();
        let (hint, _) = answer.service.expect("the SVCB record's hints");
        assert_eq!(hint.alpn.len(), 1);
        assert!(!hint.ech);
        // simple-dns refuses the whole record: the message still parses.
        let answer = parse_response(&TCP_HTTPS_BAD_ECH[2..]).unwrap();
        assert_eq!(answer.service, None);
    }

    #[test]
    fn cname_chain_is_followed_to_the_address() {
        let answer = parse_response(CONTOSO_CHAIN).unwrap();
        assert_eq!(answer.question, "contoso.openai.azure.com");
        assert_eq!(
            answer.cnames,
            [
                "contoso.privatelink.openai.azure.com",
                "cognitiveweprod.azure-api.net",
                "cognitiveweprod-eastus-01.regional.azure-api.net",
            ]
        );
        assert_eq!(answer.addrs, [(ip("10.20.30.40"), 300)]);
    }

    #[test]
    fn question_is_lowercased_and_all_a_records_kept() {
        let answer = parse_response(OPENAI_A).unwrap();
        assert_eq!(answer.question, "api.openai.com");
        assert!(answer.cnames.is_empty());
        assert_eq!(
            answer.addrs,
            [(ip("162.159.140.245"), 300), (ip("172.66.0.243"), 300)]
        );
    }

    #[test]
    fn aaaa_records_give_ipv6_addresses() {
        let answer = parse_response(OPENAI_AAAA).unwrap();
        assert_eq!(answer.question, "api.openai.com");
        assert_eq!(answer.addrs, [(ip("2606:4700:3032::ac43:8c10"), 300)]);
    }

    #[test]
    fn nxdomain_is_ok_without_addresses() {
        let answer = parse_response(NXDOMAIN).unwrap();
        assert_eq!(answer.question, "blocked.test");
        assert!(answer.addrs.is_empty());
    }

    #[test]
    fn error_rcode_drops_addresses_even_if_present() {
        let mut bytes = OPENAI_A.to_vec();
        bytes[3] = (bytes[3] & 0xf0) | 2; // SERVFAIL
        let answer = parse_response(&bytes).unwrap();
        assert_eq!(answer.question, "api.openai.com");
        assert!(answer.addrs.is_empty());
    }

    #[test]
    fn query_is_not_a_response() {
        assert_eq!(parse_response(QUERY), Err(DnsError::NotResponse));
    }

    #[test]
    fn other_opcodes_are_not_responses() {
        let mut bytes = OPENAI_A.to_vec();
        bytes[2] = (bytes[2] & 0x87) | (4 << 3); // NOTIFY
        assert_eq!(parse_response(&bytes), Err(DnsError::NotResponse));
    }

    #[test]
    fn cut_inside_answers_keeps_the_answers_before_the_cut() {
        // The chain's last CNAME ends at 0xc5; its A record follows.
        let chain_end = 0xc5;
        let answer = parse_response(&CONTOSO_CHAIN[..chain_end]).unwrap();
        assert_eq!(answer.cnames.len(), 3);
        assert!(answer.addrs.is_empty());
        for cut in chain_end..CONTOSO_CHAIN.len() {
            let answer = parse_response(&CONTOSO_CHAIN[..cut]).unwrap();
            assert_eq!(answer.cnames.len(), 3, "cut {cut}");
            assert!(answer.addrs.is_empty(), "cut {cut}");
        }
        // First A record whole, second cut.
        let answer = parse_response(&OPENAI_A[..OPENAI_A.len() - 3]).unwrap();
        assert_eq!(answer.addrs, [(ip("162.159.140.245"), 300)]);
    }

    #[test]
    fn cut_inside_the_question_is_malformed() {
        for cut in 0..0x2a {
            assert!(
                matches!(
                    parse_response(&CONTOSO_CHAIN[..cut]),
                    Err(DnsError::Malformed(_))
                ),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn garbage_is_malformed() {
        for bytes in [
            &b""[..],
            b"\x00",
            b"\xff\xff\x81\x80 this is not dns at all",
            // Response header promising a question that is not there.
            b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00",
            // Compression pointer to itself.
            b"\x12\x34\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",
        ] {
            assert!(
                matches!(parse_response(bytes), Err(DnsError::Malformed(_))),
                "{bytes:?}"
            );
        }
        // Text has the QR bit clear: not even a response.
        assert_eq!(
            parse_response(b"hello, this is not dns at all"),
            Err(DnsError::NotResponse)
        );
    }

    #[test]
    fn response_without_question_is_malformed() {
        let mut bytes = OPENAI_A[..HEADER_LEN].to_vec();
        bytes[4..].copy_from_slice(&[0; 8]);
        assert!(matches!(
            parse_response(&bytes),
            Err(DnsError::Malformed(_))
        ));
    }

    #[test]
    fn more_than_one_question_is_malformed() {
        let mut bytes = OPENAI_A.to_vec();
        bytes[5] = 2;
        assert!(matches!(
            parse_response(&bytes),
            Err(DnsError::Malformed(_))
        ));
    }

    #[test]
    fn addresses_of_unrelated_owners_are_ignored() {
        let bytes = response(
            "api.openai.com",
            vec![
                a("evil.example", "203.0.113.9", 60),
                a("api.openai.com", "162.159.140.245", 60),
            ],
        );
        let answer = parse_response(&bytes).unwrap();
        assert_eq!(answer.addrs, [(ip("162.159.140.245"), 60)]);
    }

    #[test]
    fn chain_follows_owners_not_record_order() {
        let bytes = response(
            "Q.example.",
            vec![
                a("c.example", "192.0.2.1", 30),
                cname("b.example", "c.example"),
                cname("q.example", "B.example"),
                cname("unrelated.example", "x.example"),
            ],
        );
        let answer = parse_response(&bytes).unwrap();
        assert_eq!(answer.question, "q.example");
        assert_eq!(answer.cnames, ["b.example", "c.example"]);
        assert_eq!(answer.addrs, [(ip("192.0.2.1"), 30)]);
    }

    #[test]
    fn cname_loop_ends_the_chain() {
        let bytes = response(
            "a.example",
            vec![
                cname("a.example", "b.example"),
                cname("b.example", "a.example"),
            ],
        );
        let answer = parse_response(&bytes).unwrap();
        assert_eq!(answer.cnames, ["b.example"]);
        assert!(answer.addrs.is_empty());
    }

    #[test]
    fn ttl_with_top_bit_set_reads_as_zero() {
        let bytes = response("a.example", vec![a("a.example", "192.0.2.1", 0x8000_0001)]);
        assert_eq!(
            parse_response(&bytes).unwrap().addrs,
            [(ip("192.0.2.1"), 0)]
        );
    }

    #[test]
    fn undecodable_record_keeps_the_answers_before_it() {
        let mut bytes = response(
            "a.example",
            vec![
                a("a.example", "192.0.2.1", 30),
                a("a.example", "192.0.2.2", 30),
            ],
        );
        // Second record's class (after its 2-byte name pointer and type)
        // becomes an unknown class, which simple-dns refuses.
        let second = bytes.len() - 16;
        bytes[second + 4..second + 6].copy_from_slice(&[0x12, 0x34]);
        assert_eq!(
            parse_response(&bytes).unwrap().addrs,
            [(ip("192.0.2.1"), 30)]
        );
    }

    #[test]
    fn lying_answer_count_costs_nothing() {
        let mut bytes = OPENAI_A.to_vec();
        bytes[6..8].copy_from_slice(&[0xff, 0xff]);
        let answer = parse_response(&bytes).unwrap();
        assert_eq!(answer.addrs.len(), 2);
    }

    #[test]
    fn non_host_question_name_is_malformed() {
        let mut packet = Packet::new_reply(7);
        let labels = [
            Label::new_unchecked(&b"a.b"[..]),
            Label::new_unchecked(&b"example"[..]),
        ];
        packet.questions.push(Question::new(
            Name::new_with_labels(&labels),
            QTYPE::TYPE(TYPE::A),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        let bytes = packet.build_bytes_vec().unwrap();
        assert!(matches!(
            parse_response(&bytes),
            Err(DnsError::Malformed(_))
        ));
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn mutated_real_messages_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15;
        for bytes in REAL {
            for _ in 0..3000 {
                let mut v = bytes.to_vec();
                for _ in 0..1 + xorshift(&mut state) % 4 {
                    let at = (xorshift(&mut state) as usize) % v.len();
                    v[at] = xorshift(&mut state) as u8;
                }
                let cut = (xorshift(&mut state) as usize) % (v.len() + 1);
                let _ = parse_response(&v);
                let _ = parse_response(&v[..cut]);
            }
        }
    }

    #[test]
    fn random_bytes_behind_a_response_header_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5000 {
            let len = (xorshift(&mut state) % 300) as usize;
            let mut v: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
            if v.len() >= HEADER_LEN {
                v[2..6].copy_from_slice(&[0x81, 0x80, 0x00, 0x01]);
            }
            let _ = parse_response(&v);
        }
    }
}
