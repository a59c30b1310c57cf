//! The parser on reference and real bytes: the client Initial vectors of
//! RFC 9001 Appendix A (v1) and RFC 9369 Appendix A (v2), typed in from the
//! RFC text (quicwg/base-drafts rfc9001.md, quicwg/quic-v2 rfc9369.md), and
//! the aioquic 1.7.2 datagrams in `fixtures/quic` (see its README). Names
//! are read back with gatewatch's own TLS parser, as the agent will.
use super::*;
use crate::naming::{Opening, Reading, read_opening, tls};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/quic/",
            $name
        ))
    };
}

// --- RFC 9001 / RFC 9369 Appendix A -------------------------------------

/// The Destination Connection ID of both RFCs' client Initial.
const DCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

/// The CRYPTO frame both RFCs put in the client Initial (then PADDING to 1162 bytes).
const CRYPTO_FRAME: &str = concat!(
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868",
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578",
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005",
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba",
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400",
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100",
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000",
    "75300901100f088394c8f03e51570806048000ffff",
);

/// RFC 9001 A.2: the protected 1200-byte client Initial.
const V1_PACKET: &str = concat!(
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11",
    "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399",
    "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c",
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212",
    "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5",
    "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208",
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec",
    "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3",
    "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db",
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c",
    "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8",
    "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556",
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74",
    "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a",
    "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00",
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632",
    "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964",
    "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd",
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff",
    "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198",
    "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd",
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73",
    "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f",
    "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e",
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade",
    "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047",
    "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2",
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4",
    "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0",
    "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e",
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0",
    "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400",
    "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab",
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9",
    "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4",
    "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064",
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241",
    "e221af44860018ab0856972e194cd934",
);

/// RFC 9369 A.2: the protected 1200-byte client Initial.
const V2_PACKET: &str = concat!(
    "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485",
    "dd04de806071bf03dceebfa162e75d6c96058bdbfb127cdfcbf903388e99ad04",
    "9f9a3dd4425ae4d0992cfff18ecf0fdb5a842d09747052f17ac2053d21f57c5d",
    "250f2c4f0e0202b70785b7946e992e58a59ac52dea6774d4f03b55545243cf1a",
    "12834e3f249a78d395e0d18f4d766004f1a2674802a747eaa901c3f10cda5500",
    "cb9122faa9f1df66c392079a1b40f0de1c6054196a11cbea40afb6ef5253cd68",
    "18f6625efce3b6def6ba7e4b37a40f7732e093daa7d52190935b8da58976ff33",
    "12ae50b187c1433c0f028edcc4c2838b6a9bfc226ca4b4530e7a4ccee1bfa2a3",
    "d396ae5a3fb512384b2fdd851f784a65e03f2c4fbe11a53c7777c023462239dd",
    "6f7521a3f6c7d5dd3ec9b3f233773d4b46d23cc375eb198c63301c21801f6520",
    "bcfb7966fc49b393f0061d974a2706df8c4a9449f11d7f3d2dcbb90c6b877045",
    "636e7c0c0fe4eb0f697545460c806910d2c355f1d253bc9d2452aaa549e27a1f",
    "ac7cf4ed77f322e8fa894b6a83810a34b361901751a6f5eb65a0326e07de7c12",
    "16ccce2d0193f958bb3850a833f7ae432b65bc5a53975c155aa4bcb4f7b2c4e5",
    "4df16efaf6ddea94e2c50b4cd1dfe06017e0e9d02900cffe1935e0491d77ffb4",
    "fdf85290fdd893d577b1131a610ef6a5c32b2ee0293617a37cbb08b847741c3b",
    "8017c25ca9052ca1079d8b78aebd47876d330a30f6a8c6d61dd1ab5589329de7",
    "14d19d61370f8149748c72f132f0fc99f34d766c6938597040d8f9e2bb522ff9",
    "9c63a344d6a2ae8aa8e51b7b90a4a806105fcbca31506c446151adfeceb51b91",
    "abfe43960977c87471cf9ad4074d30e10d6a7f03c63bd5d4317f68ff325ba3bd",
    "80bf4dc8b52a0ba031758022eb025cdd770b44d6d6cf0670f4e990b22347a7db",
    "848265e3e5eb72dfe8299ad7481a408322cac55786e52f633b2fb6b614eaed18",
    "d703dd84045a274ae8bfa73379661388d6991fe39b0d93debb41700b41f90a15",
    "c4d526250235ddcd6776fc77bc97e7a417ebcb31600d01e57f32162a8560cacc",
    "7e27a096d37a1a86952ec71bd89a3e9a30a2a26162984d7740f81193e8238e61",
    "f6b5b984d4d3dfa033c1bb7e4f0037febf406d91c0dccf32acf423cfa1e70710",
    "10d3f270121b493ce85054ef58bada42310138fe081adb04e2bd901f2f13458b",
    "3d6758158197107c14ebb193230cd1157380aa79cae1374a7c1e5bbcb80ee23e",
    "06ebfde206bfb0fcbc0edc4ebec309661bdd908d532eb0c6adc38b7ca7331dce",
    "8dfce39ab71e7c32d318d136b6100671a1ae6a6600e3899f31f0eed19e3417d1",
    "34b90c9058f8632c798d4490da4987307cba922d61c39805d072b589bd52fdf1",
    "e86215c2d54e6670e07383a27bbffb5addf47d66aa85a0c6f9f32e59d85a44dd",
    "5d3b22dc2be80919b490437ae4f36a0ae55edf1d0b5cb4e9a3ecabee93dfc6e3",
    "8d209d0fa6536d27a5d6fbb17641cde27525d61093f1b28072d111b2b4ae5f89",
    "d5974ee12e5cf7d5da4d6a31123041f33e61407e76cffcdcfd7e19ba58cf4b53",
    "6f4c4938ae79324dc402894b44faf8afbab35282ab659d13c93f70412e85cb19",
    "9a37ddec600545473cfb5a05e08d0b209973b2172b4d21fb69745a262ccde96b",
    "a18b2faa745b6fe189cf772a9f84cbfc",
);

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The ClientHello inside the RFC's CRYPTO frame (type, 2-byte varint
/// offset 0, 2-byte varint length 0xf1, then the message).
fn rfc_hello() -> Vec<u8> {
    let frame = hex(CRYPTO_FRAME);
    assert_eq!(&frame[..4], &[0x06, 0x00, 0x40, 0xf1]);
    frame[4..].to_vec()
}

#[test]
fn v1_keys_match_rfc_9001_a1() {
    let s = initial_secrets(Version::V1, &DCID);
    assert_eq!(
        s,
        InitialSecrets {
            client_secret: hex("c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea")
                .try_into()
                .unwrap(),
            key: hex("1f369613dd76d5467730efcbe3b1a22d").try_into().unwrap(),
            iv: hex("fa044b2f42a3fd3b46fb255c").try_into().unwrap(),
            hp: hex("9f50449e04a0e810283a1e9933adedd2").try_into().unwrap(),
        }
    );
}

#[test]
fn v2_keys_match_rfc_9369_a1() {
    let s = initial_secrets(Version::V2, &DCID);
    assert_eq!(
        s,
        InitialSecrets {
            client_secret: hex("14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b")
                .try_into()
                .unwrap(),
            key: hex("8b1a0bc121284290a29e0971b5cd045d").try_into().unwrap(),
            iv: hex("91f73e2351d8fa91660e909f").try_into().unwrap(),
            hp: hex("45b95e15235d6f45a6b19cbcb0294ba9").try_into().unwrap(),
        }
    );
}

#[test]
fn v1_client_initial_gives_the_rfc_client_hello() {
    let packet = hex(V1_PACKET);
    let hello = client_hello([packet.as_slice()]).unwrap();
    assert_eq!(hello.version, Version::V1);
    assert_eq!(hello.handshake, rfc_hello());
}

#[test]
fn v2_client_initial_gives_the_rfc_client_hello() {
    let packet = hex(V2_PACKET);
    let hello = client_hello([packet.as_slice()]).unwrap();
    assert_eq!(hello.version, Version::V2);
    assert_eq!(hello.handshake, rfc_hello());
}

#[test]
fn peek_reads_the_header_without_keys() {
    for (packet, version) in [(V1_PACKET, Version::V1), (V2_PACKET, Version::V2)] {
        let packet = hex(packet);
        let Ok(Peek::Long(h)) = peek(&packet) else {
            panic!("long header");
        };
        assert_eq!((h.version, h.kind), (version, LongType::Initial));
        assert_eq!(h.dcid, DCID);
        assert!(h.scid.is_empty());
        assert_eq!(h.pn_offset, 18);
        assert_eq!(h.packet_len, 1200);
    }
}

#[test]
fn sealing_the_rfc_frames_gives_the_rfc_packets() {
    // Checks the test-only packet builder the other tests rely on.
    for (packet, version) in [(V1_PACKET, Version::V1), (V2_PACKET, Version::V2)] {
        let sealed = seal::seal_initial(version, &DCID, &[], 2, 4, &hex(CRYPTO_FRAME), 1200);
        assert_eq!(sealed, hex(packet));
    }
}

#[test]
fn a_v1_packet_read_with_v2_rules_does_not_decrypt() {
    // Same bytes, version field rewritten: the v2 type bits make it a
    // 0-RTT packet, so it is not an Initial at all.
    let mut packet = hex(V1_PACKET);
    packet[1..5].copy_from_slice(&Version::V2_WIRE.to_be_bytes());
    assert_eq!(
        client_hello([packet.as_slice()]),
        Err(QuicError::NotInitial)
    );
    // With the Initial type bits of v2 it is an Initial that fails to open.
    packet[0] = (packet[0] & 0xcf) | 0x10;
    assert_eq!(client_hello([packet.as_slice()]), Err(QuicError::Decrypt));
}

#[test]
fn one_flipped_ciphertext_bit_fails_decryption() {
    let mut packet = hex(V1_PACKET);
    packet[600] ^= 0x01;
    assert_eq!(client_hello([packet.as_slice()]), Err(QuicError::Decrypt));
}

#[test]
fn unknown_version_is_reported_with_its_number() {
    let mut packet = hex(V1_PACKET);
    packet[1..5].copy_from_slice(&0xff00_001du32.to_be_bytes()); // draft-29
    assert_eq!(
        client_hello([packet.as_slice()]),
        Err(QuicError::UnknownVersion(0xff00_001d))
    );
    assert!(matches!(
        peek(&packet),
        Ok(Peek::OtherVersion {
            version: 0xff00_001d,
            ..
        })
    ));
}

#[test]
fn cut_packets_are_short_or_fail_to_open_never_panic() {
    let packet = hex(V1_PACKET);
    for cut in 0..packet.len() {
        let r = Assembler::new().push(&packet[..cut]);
        assert!(
            matches!(r, Err(QuicError::Short(_) | QuicError::NotInitial)),
            "cut {cut}: {r:?}"
        );
    }
    assert_eq!(Assembler::new().push(&packet), Ok(Progress::Complete));
}

#[test]
fn rfc_hello_names_example_com_through_the_tls_parser() {
    let hello = client_hello([hex(V1_PACKET).as_slice()]).unwrap();
    let parsed = tls::parse_client_hello(&hello.tls_records()).unwrap();
    assert_eq!(parsed.sni.as_deref(), Some("example.com"));
    assert_eq!(parsed.alpn, ["alpn"]);
    assert!(!parsed.ech);
}

// --- aioquic 1.7.2 -------------------------------------------------------

/// One 1200-byte client datagram each (`gen_initials.py`, no network).
const V1_API_OPENAI: &[u8] = fixture!("aioquic_v1_api_openai_0.bin");
const V2_API_OPENAI: &[u8] = fixture!("aioquic_v2_api_openai_0.bin");
/// A 1681-byte ClientHello (40 extra ALPN ids): CRYPTO 0..1152 in the first
/// datagram's Initial, 1152..1681 in the second's (tshark 4.0.17 agrees).
const V1_TWO: [&[u8]; 2] = [
    fixture!("aioquic_v1_two_initials_0.bin"),
    fixture!("aioquic_v1_two_initials_1.bin"),
];
const V2_TWO: [&[u8]; 2] = [
    fixture!("aioquic_v2_two_initials_0.bin"),
    fixture!("aioquic_v2_two_initials_1.bin"),
];
const TWO_HELLO_LEN: usize = 1681;

/// Client datagrams captured with tshark while an aioquic HTTP/3 client
/// fetched from an aioquic server: the first flight, then the second flight
/// (an Initial carrying only an ACK coalesced with a Handshake packet, both
/// to the server's chosen connection ID), then a 1-RTT short-header packet.
const H3RUN_V1: [&[u8]; 3] = [
    fixture!("h3run_v1_api_openai_0.bin"),
    fixture!("h3run_v1_api_openai_1.bin"),
    fixture!("h3run_v1_api_openai_2.bin"),
];
const H3RUN_V2: [&[u8]; 2] = [
    fixture!("h3run_v2_api_openai_0.bin"),
    fixture!("h3run_v2_api_openai_1.bin"),
];
const H3RUN_TWO: [&[u8]; 3] = [
    fixture!("h3run_v1_two_initials_0.bin"),
    fixture!("h3run_v1_two_initials_1.bin"),
    fixture!("h3run_v1_two_initials_2.bin"),
];

/// Every datagram file, for the no-panic tests.
const ALL_DATAGRAMS: [&[u8]; 14] = [
    V1_API_OPENAI,
    V2_API_OPENAI,
    V1_TWO[0],
    V1_TWO[1],
    V2_TWO[0],
    V2_TWO[1],
    H3RUN_V1[0],
    H3RUN_V1[1],
    H3RUN_V1[2],
    H3RUN_V2[0],
    H3RUN_V2[1],
    H3RUN_TWO[0],
    H3RUN_TWO[1],
    H3RUN_TWO[2],
];

/// The hello as gatewatch's TLS path reads it: the synthetic record stream
/// must be exactly what `tls` asks for, and parse.
fn named(hello: &InitialHello) -> tls::ClientHello {
    let records = hello.tls_records();
    assert!(tls::looks_like_tls(&records));
    assert_eq!(tls::needed_len(&records), Some(records.len()));
    tls::parse_client_hello(&records).unwrap()
}

#[test]
fn v1_initial_names_api_openai_com_with_h3_through_the_tls_parser() {
    let hello = client_hello([V1_API_OPENAI]).unwrap();
    assert_eq!(hello.version, Version::V1);
    let parsed = named(&hello);
    assert_eq!(parsed.sni.as_deref(), Some("api.openai.com"));
    assert_eq!(parsed.alpn, ["h3"]);
    assert!(!parsed.ech);
}

#[test]
fn v2_initial_names_api_openai_com_with_h3_through_the_tls_parser() {
    let hello = client_hello([V2_API_OPENAI]).unwrap();
    assert_eq!(hello.version, Version::V2);
    let parsed = named(&hello);
    assert_eq!(parsed.sni.as_deref(), Some("api.openai.com"));
    assert_eq!(parsed.alpn, ["h3"]);
}

#[test]
fn record_stream_reads_as_a_tcp_opening_would() {
    // The same entry point the flow table uses for a TCP stream prefix.
    let hello = client_hello([V1_API_OPENAI]).unwrap();
    assert_eq!(
        read_opening(&hello.tls_records()),
        Reading::Named(Opening {
            sni: Some("api.openai.com".into()),
            host: None,
            alpn: vec!["h3".into()],
            ech: false,
        })
    );
}

#[test]
fn bare_handshake_message_is_not_a_record_stream() {
    // Why the records: QUIC CRYPTO frames carry the message without the
    // 5-byte record header the TCP path expects.
    let hello = client_hello([V1_API_OPENAI]).unwrap();
    assert_eq!(
        tls::parse_client_hello(&hello.handshake),
        Err(tls::TlsError::NotHandshake)
    );
}

#[test]
fn record_stream_is_one_record_with_the_hello() {
    let hello = client_hello(V1_TWO).unwrap();
    let records = tls_records(&hello.handshake);
    assert_eq!(records[..3], [0x16, 0x03, 0x01]);
    assert_eq!(
        usize::from(u16::from_be_bytes([records[3], records[4]])),
        TWO_HELLO_LEN
    );
    assert_eq!(&records[5..], hello.handshake);
}

#[test]
fn hello_spanning_two_initials_needs_both_datagrams() {
    for (two, version) in [(V1_TWO, Version::V1), (V2_TWO, Version::V2)] {
        let mut a = Assembler::new();
        assert_eq!(
            a.push(two[0]),
            Ok(Progress::NeedMore {
                have: 1152,
                need: Some(TWO_HELLO_LEN)
            })
        );
        assert_eq!(
            a.finish(),
            Err(QuicError::Incomplete {
                have: 1152,
                need: Some(TWO_HELLO_LEN)
            })
        );
        assert_eq!(a.push(two[1]), Ok(Progress::Complete));
        let hello = a.finish().unwrap();
        assert_eq!(hello.version, version);
        assert_eq!(hello.handshake.len(), TWO_HELLO_LEN);
        let parsed = named(&hello);
        assert_eq!(parsed.sni.as_deref(), Some("contoso.openai.azure.com"));
        assert_eq!(parsed.alpn.len(), 41);
        assert_eq!(parsed.alpn[0], "h3");
    }
}

#[test]
fn second_datagram_first_still_gives_the_hello() {
    let mut a = Assembler::new();
    assert_eq!(
        a.push(V1_TWO[1]),
        Ok(Progress::NeedMore {
            have: 0,
            need: None
        })
    );
    assert_eq!(a.push(V1_TWO[0]), Ok(Progress::Complete));
    assert_eq!(
        named(&a.finish().unwrap()).sni.as_deref(),
        Some("contoso.openai.azure.com")
    );
}

#[test]
fn two_initials_coalesced_in_one_datagram_are_both_read() {
    let mut datagram = [V1_TWO[0], V1_TWO[1]].concat();
    // Trailing zeros after the last packet are datagram padding.
    datagram.extend_from_slice(&[0; 30]);
    let hello = client_hello([datagram.as_slice()]).unwrap();
    assert_eq!(hello.handshake.len(), TWO_HELLO_LEN);
}

#[test]
fn retransmitted_first_datagram_changes_nothing() {
    let mut a = Assembler::new();
    for _ in 0..2 {
        assert_eq!(
            a.push(V1_TWO[0]),
            Ok(Progress::NeedMore {
                have: 1152,
                need: Some(TWO_HELLO_LEN)
            })
        );
    }
    assert_eq!(a.push(V1_TWO[1]), Ok(Progress::Complete));
}

#[test]
fn a_flow_reads_at_most_max_datagrams() {
    let mut a = Assembler::new();
    for _ in 0..MAX_DATAGRAMS {
        assert!(a.push(V1_TWO[0]).is_ok());
    }
    assert!(matches!(a.push(V1_TWO[1]), Err(QuicError::Limit(_))));
}

#[test]
fn an_initial_of_another_connection_is_refused_not_mixed_in() {
    // Each fixture has its own random DCID. One UDP socket may carry
    // several connections (and a Retry starts over with a new DCID): a
    // packet that opens only with its own DCID's keys is another flow.
    let mut a = Assembler::new();
    assert!(a.push(V1_TWO[0]).is_ok());
    assert_eq!(a.push(V1_API_OPENAI), Err(QuicError::OtherConnection));
    assert_eq!(a.push(V1_TWO[1]), Ok(Progress::Complete));
    assert_eq!(a.finish().unwrap().handshake.len(), TWO_HELLO_LEN);
}

#[test]
fn short_header_and_garbage_are_not_initial() {
    assert_eq!(
        client_hello([&[0x40u8, 1, 2, 3][..]]),
        Err(QuicError::NotInitial)
    );
    assert_eq!(client_hello([&[][..]]), Err(QuicError::NotInitial));
    assert_eq!(
        client_hello([&b"GET / HTTP/1.1\r\n"[..]]),
        Err(QuicError::NotInitial)
    );
}

#[test]
fn captured_h3_flow_is_named_by_its_first_datagram() {
    let mut a = Assembler::new();
    assert_eq!(a.push(H3RUN_V1[0]), Ok(Progress::Complete));
    // The second flight's Initial (ACK only, server-chosen DCID) opens with
    // the first Initial's keys; the coalesced Handshake packet is skipped.
    assert_eq!(a.push(H3RUN_V1[1]), Ok(Progress::Complete));
    assert_eq!(a.push(H3RUN_V1[2]), Err(QuicError::NotInitial));
    assert_eq!(
        named(&a.finish().unwrap()).sni.as_deref(),
        Some("api.openai.com")
    );
}

#[test]
fn captured_v2_flow_is_named() {
    let hello = client_hello(H3RUN_V2).unwrap();
    assert_eq!(hello.version, Version::V2);
    assert_eq!(named(&hello).sni.as_deref(), Some("api.openai.com"));
}

#[test]
fn captured_flow_with_a_hello_over_two_initials_is_named() {
    let mut a = Assembler::new();
    assert!(matches!(
        a.push(H3RUN_TWO[0]),
        Ok(Progress::NeedMore { .. })
    ));
    assert_eq!(a.push(H3RUN_TWO[1]), Ok(Progress::Complete));
    assert_eq!(a.push(H3RUN_TWO[2]), Ok(Progress::Complete));
    assert_eq!(
        named(&a.finish().unwrap()).sni.as_deref(),
        Some("contoso.openai.azure.com")
    );
}

// --- No panic --------------------------------------------------------------

/// Feeds `data` as datagrams (whole, and split where its first byte says)
/// and as the frames of sealed Initials (one packet; two packets pushed in
/// reverse order), since random bytes almost never pass the AEAD. Any hello
/// that comes out is one whole ClientHello message within the bound. The
/// `quic_initial` fuzz target does the same with more checks.
fn exercise(data: &[u8]) {
    const FUZZ_DCID: &[u8] = &[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (a, b) = data.split_at(split);
    check(client_hello([data]));
    check(client_hello([a, b]));
    let version = if data.len().is_multiple_of(2) {
        Version::V1
    } else {
        Version::V2
    };
    let one = seal::seal_initial(version, FUZZ_DCID, &[], 0, 4, data, 1200);
    check(client_hello([one.as_slice()]));
    let first = seal::seal_initial(version, FUZZ_DCID, &[], 0, 1, a, 0);
    let second = seal::seal_initial(version, FUZZ_DCID, &[], 1, 2, b, 0);
    let mut assembler = Assembler::new();
    for datagram in [&second, &first] {
        if let Ok(Progress::NeedMore {
            have,
            need: Some(need),
        }) = assembler.push(datagram)
        {
            assert!(have < need);
        }
    }
    check(assembler.finish());
}

fn check(result: Result<InitialHello, QuicError>) {
    match result {
        Ok(hello) => {
            let m = &hello.handshake;
            assert_eq!(m[0], 0x01, "a ClientHello");
            let len = usize::from(m[1]) << 16 | usize::from(m[2]) << 8 | usize::from(m[3]);
            assert_eq!(m.len(), 4 + len, "exactly one message");
            assert!(m.len() <= MAX_CRYPTO_BYTES);
        }
        Err(QuicError::Incomplete {
            have,
            need: Some(need),
        }) => assert!(have < need),
        Err(_) => {}
    }
}

/// A deterministic byte source (no rand crate), as `tls`'s tests use.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn random_inputs_never_panic() {
    let mut state = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        let len = (xorshift(&mut state) % 1400) as usize;
        let mut v: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
        // Half the time, frame-like bytes: CRYPTO, PADDING and PING types.
        if xorshift(&mut state).is_multiple_of(2) {
            for i in (0..v.len()).step_by(7) {
                v[i] = [0x06, 0x00, 0x02, 0x01][(xorshift(&mut state) % 4) as usize];
            }
        }
        exercise(&v);
    }
}

#[test]
fn mutated_real_datagrams_never_panic() {
    let mut state = 0x2545_f491_4f6c_dd1d;
    for datagram in ALL_DATAGRAMS {
        for _ in 0..200 {
            let mut v = datagram.to_vec();
            for _ in 0..1 + xorshift(&mut state) % 4 {
                let at = (xorshift(&mut state) as usize) % v.len();
                v[at] = xorshift(&mut state) as u8;
            }
            let cut = (xorshift(&mut state) as usize) % (v.len() + 1);
            exercise(&v[..cut]);
        }
    }
}

#[test]
fn mutated_crypto_frames_behind_the_aead_never_panic() {
    let m = rfc_hello();
    let mut frames = seal::crypto_frame(100, &m[100..]);
    frames.extend(seal::crypto_frame(0, &m[..100]));
    let mut state = 0x5851_f42d_4c95_7f2d;
    for _ in 0..2000 {
        let mut v = frames.clone();
        for _ in 0..1 + xorshift(&mut state) % 4 {
            let at = (xorshift(&mut state) as usize) % v.len();
            v[at] = xorshift(&mut state) as u8;
        }
        let cut = (xorshift(&mut state) as usize) % (v.len() + 1);
        exercise(&v[..cut]);
    }
}
