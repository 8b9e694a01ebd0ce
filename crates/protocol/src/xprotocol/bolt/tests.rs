use super::*;
use crate::xprotocol::{codec, DEFAULT_MAX_FRAME};

fn fixture(name: &str) -> BytesMut {
    let path = format!(
        "{}/../../tests/fixtures/xprotocol/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    BytesMut::from(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))[..])
}

#[test]
fn reads_real_sofa_rpc_node_frames() {
    let mut buf = fixture("bolt_request.bin");
    let len = buf.len();
    let f = BoltV1.decode(&mut buf, DEFAULT_MAX_FRAME).unwrap().unwrap();
    assert!(buf.is_empty());
    assert_eq!(f.raw.len(), len);
    assert_eq!(f.kind, FrameKind::Request);
    assert_eq!(f.timeout_ms, Some(3000));
    let service = f.header(b"service").expect("service header");
    assert!(
        service.starts_with(b"com.mosn.test.EchoService"),
        "{service:?}"
    );

    let mut buf = fixture("bolt_response.bin");
    let f = BoltV1.decode(&mut buf, DEFAULT_MAX_FRAME).unwrap().unwrap();
    assert_eq!((f.kind, f.status), (FrameKind::Response, 0));

    let mut buf = fixture("bolt_heartbeat.bin");
    let hb = BoltV1.decode(&mut buf, DEFAULT_MAX_FRAME).unwrap().unwrap();
    assert_eq!(hb.kind, FrameKind::Heartbeat);
    // The ack is byte for byte what a sofa-rpc-node server answers.
    assert_eq!(
        &BoltV1.heartbeat_ack(&hb)[..],
        &fixture("bolt_heartbeat_ack.bin")[..]
    );
}

#[test]
fn every_prefix_waits_and_two_frames_come_apart() {
    let one = fixture("bolt_request.bin");
    for cut in 0..one.len() {
        let mut part = BytesMut::from(&one[..cut]);
        assert_eq!(
            BoltV1.decode(&mut part, DEFAULT_MAX_FRAME),
            Ok(None),
            "cut {cut}"
        );
        assert_eq!(part.len(), cut, "nothing consumed");
    }
    let mut two = one.clone();
    two.extend_from_slice(&fixture("bolt_heartbeat.bin"));
    let a = BoltV1.decode(&mut two, DEFAULT_MAX_FRAME).unwrap().unwrap();
    let b = BoltV1.decode(&mut two, DEFAULT_MAX_FRAME).unwrap().unwrap();
    assert_eq!((a.kind, b.kind), (FrameKind::Request, FrameKind::Heartbeat));
    assert!(two.is_empty());
}

#[test]
fn ids_are_rewritten_in_place() {
    let mut buf = fixture("bolt_request.bin");
    let original = buf.clone();
    let mut f = BoltV1.decode(&mut buf, DEFAULT_MAX_FRAME).unwrap().unwrap();
    BoltV1.set_id(&mut f, 0xDEAD_BEEF);
    assert_eq!(&f.raw[5..9], &[0xDE, 0xAD, 0xBE, 0xEF]);
    assert_eq!(&f.raw[..5], &original[..5]);
    assert_eq!(&f.raw[9..], &original[9..]);
    let mut again = f.raw.clone();
    assert_eq!(
        BoltV1
            .decode(&mut again, DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap()
            .id,
        0xDEAD_BEEF
    );
}

#[test]
fn limits_and_garbage_are_errors() {
    let mut big = fixture("bolt_request.bin");
    assert!(matches!(
        BoltV1.decode(&mut big, 64),
        Err(CodecError::TooLarge { .. })
    ));
    let mut garbage = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
    assert!(BoltV1.decode(&mut garbage, DEFAULT_MAX_FRAME).is_err());
    // A header map whose length runs past the section.
    let mut bad = fixture("bolt_request.bin");
    let header_len_at = 16;
    bad[header_len_at..header_len_at + 2].copy_from_slice(&3u16.to_be_bytes());
    let content_len_at = 18;
    let content = u32_at(&bad, content_len_at);
    let class = usize::from(u16_at(&bad, 14));
    // Keep the frame's total length: what was header map moves into content.
    let old_header = u16_at(&fixture("bolt_request.bin"), 16) as u32;
    bad[content_len_at..content_len_at + 4]
        .copy_from_slice(&(content + old_header - 3).to_be_bytes());
    let _ = class;
    assert!(matches!(
        BoltV1.decode(&mut bad, DEFAULT_MAX_FRAME),
        Err(CodecError::Malformed(_))
    ));
}

#[test]
fn hijacks_carry_the_request_id_and_mosns_statuses() {
    let mut buf = fixture("bolt_request.bin");
    let f = BoltV1.decode(&mut buf, DEFAULT_MAX_FRAME).unwrap().unwrap();
    for (why, want) in [
        (Hijack::NoRoute, status::NO_PROCESSOR),
        (Hijack::NoHealthyUpstream, status::NO_PROCESSOR),
        (Hijack::Overflow, status::SERVER_THREADPOOL_BUSY),
        (Hijack::Timeout, status::TIMEOUT),
        (Hijack::UpstreamClosed, status::UNKNOWN),
    ] {
        let mut out = BoltV1.hijack(&f, why).unwrap();
        assert_eq!(out.len(), 20);
        let r = BoltV1.decode(&mut out, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(
            (r.kind, r.id, r.status),
            (FrameKind::Response, f.id, u32::from(want))
        );
    }
}

#[test]
fn bolt_v2_with_crc_is_checked_and_kept_valid_after_an_id_rewrite() {
    // A v2 request built by hand: ver1 2, switch CRC on, one header pair, content "hi".
    let mut f = BytesMut::new();
    f.put_u8(2);
    f.put_u8(2);
    f.put_u8(TYPE_REQUEST);
    f.put_u16(CMD_REQUEST);
    f.put_u8(1);
    f.put_u32(7);
    f.put_u8(1);
    f.put_u8(1);
    f.put_i32(1000);
    let header: Vec<u8> = [
        &7u32.to_be_bytes()[..],
        b"service",
        &3u32.to_be_bytes(),
        b"a:1",
    ]
    .concat();
    f.put_u16(0);
    f.put_u16(header.len() as u16);
    f.put_u32(2);
    f.extend_from_slice(&header);
    f.extend_from_slice(b"hi");
    let crc = crc32fast::hash(&f);
    f.put_u32(crc);
    let mut buf = f.clone();
    let mut frame = BoltV2.decode(&mut buf, DEFAULT_MAX_FRAME).unwrap().unwrap();
    assert_eq!((frame.id, frame.header(b"service")), (7, Some(&b"a:1"[..])));
    BoltV2.set_id(&mut frame, 99);
    let mut again = frame.raw.clone();
    assert_eq!(
        BoltV2
            .decode(&mut again, DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap()
            .id,
        99
    );
    let mut corrupt = f.clone();
    let last = corrupt.len() - 5;
    corrupt[last] ^= 1;
    assert!(BoltV2.decode(&mut corrupt, DEFAULT_MAX_FRAME).is_err());
    // Detection and the registry.
    assert_eq!(codec("BOLT").map(|c| c.name()), Some("bolt"));
    assert_eq!(BoltV2.detect(&f), Detected::Yes);
    assert_eq!(BoltV1.detect(&f), Detected::No);
    assert_eq!(BoltV1.detect(&[]), Detected::NeedMore);
}
