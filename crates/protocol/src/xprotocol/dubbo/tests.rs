use super::*;
use crate::xprotocol::{bolt, codec, example, DEFAULT_MAX_FRAME};

fn fixture(name: &str) -> BytesMut {
    let path = format!(
        "{}/../../tests/fixtures/xprotocol/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    BytesMut::from(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))[..])
}

fn decode_one(mut buf: BytesMut) -> Frame {
    let f = Dubbo
        .decode(&mut buf, DEFAULT_MAX_FRAME)
        .unwrap()
        .expect("a whole frame");
    assert!(buf.is_empty(), "one frame, all consumed");
    f
}

fn header<'a>(f: &'a Frame, name: &str) -> Option<&'a str> {
    f.header(name.as_bytes())
        .map(|v| std::str::from_utf8(v).unwrap())
}

/// A hessian2 string body's text.
fn body_text(f: &Frame) -> String {
    hessian2::Reader::new_at(&f.raw, HEAD)
        .read_string()
        .unwrap()
}

/// A request frame: `flag`, id, the body fields, the descriptor, `args` (encoded) and
/// `attachments` (an encoded map).
fn request(
    flag: u8,
    id: u64,
    fields: [Option<&str>; 4],
    desc: &str,
    args: &[u8],
    att: &[u8],
) -> BytesMut {
    let mut body = BytesMut::new();
    for f in fields {
        match f {
            Some(s) => hessian2::write_string(&mut body, s),
            None => hessian2::write_null(&mut body),
        }
    }
    hessian2::write_string(&mut body, desc);
    body.extend_from_slice(args);
    body.extend_from_slice(att);
    let mut out = BytesMut::new();
    head(&mut out, flag, 0, id, body.len());
    out.extend_from_slice(&body);
    out
}

/// An attachments map `H k v ... Z` of strings.
fn map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = vec![b'H'];
    for (k, v) in pairs {
        hessian2::write_string(&mut out, k);
        hessian2::write_string(&mut out, v);
    }
    out.push(b'Z');
    out
}

const FIELDS: [Option<&str>; 4] = [
    Some("2.0.2"),
    Some("com.foo.Svc"),
    Some("1.0"),
    Some("call"),
];

#[test]
fn reads_the_node_clients_frames() {
    let f = decode_one(fixture("dubbo_request.bin"));
    assert_eq!((f.kind, f.id, f.timeout_ms), (FrameKind::Request, 1, None));
    assert_eq!(header(&f, "dubbo"), Some("5.3.0"));
    // The body's path, not the `service` attachment (`path:version`).
    assert_eq!(header(&f, "service"), Some("com.mosn.test.DubboEcho"));
    assert_eq!(header(&f, "version"), Some("1.0.0"));
    assert_eq!(header(&f, "method"), Some("echo"));
    assert_eq!(header(&f, "group"), Some(""));
    assert_eq!(header(&f, "path"), Some("com.mosn.test.DubboEcho"));
    assert_eq!(header(&f, "interface"), None);
    let names: Vec<_> = f.header_pairs().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            &b"dubbo"[..],
            b"service",
            b"version",
            b"method",
            b"group",
            b"path"
        ]
    );

    let f = decode_one(fixture("dubbo_request_fail.bin"));
    assert_eq!((f.kind, f.id), (FrameKind::Request, 2));
    assert_eq!(header(&f, "method"), Some("fail"));
    assert_eq!(header(&f, "path"), Some("com.mosn.test.DubboEcho"));

    let f = decode_one(fixture("dubbo_response.bin"));
    assert_eq!((f.kind, f.id, f.status), (FrameKind::Response, 1, 20));
    assert!(f.headers.is_empty());
    let f = decode_one(fixture("dubbo_response_error.bin"));
    assert_eq!((f.kind, f.id, f.status), (FrameKind::Response, 2, 80));
    assert_eq!(body_text(&f), "requested failure from dubbo");

    let hb = decode_one(fixture("dubbo_heartbeat.bin"));
    assert_eq!((hb.kind, hb.id), (FrameKind::Heartbeat, 3));
    let ack = decode_one(fixture("dubbo_heartbeat_ack.bin"));
    assert_eq!(
        (ack.kind, ack.id, ack.status),
        (FrameKind::HeartbeatAck, 3, 20)
    );
    // Our ack is byte for byte what the real server answered.
    assert_eq!(
        &Dubbo.heartbeat_ack(&hb)[..],
        &fixture("dubbo_heartbeat_ack.bin")[..]
    );
    // Our heartbeat is byte for byte what the real client sends.
    assert_eq!(
        &Dubbo.heartbeat(3).unwrap()[..],
        &fixture("dubbo_heartbeat.bin")[..]
    );
}

#[test]
fn reads_the_python_clients_frames() {
    let f = decode_one(fixture("dubbo_py_request.bin"));
    assert_eq!((f.kind, f.id), (FrameKind::Request, 0));
    assert_eq!(header(&f, "dubbo"), Some("2.0.2"));
    assert_eq!(header(&f, "service"), Some("com.mosn.test.DubboEcho"));
    assert_eq!(header(&f, "interface"), Some("com.mosn.test.DubboEcho"));
    assert_eq!(header(&f, "version"), Some("1.0.0"));
    assert_eq!(header(&f, "method"), Some("echo"));
    assert_eq!(header(&f, "group"), Some(""));
    // `service` takes the `interface` attachment's bytes (MOSN's rule).
    let service = f
        .headers
        .iter()
        .find(|(k, _)| *k == derived::SERVICE)
        .unwrap();
    let interface = f
        .headers
        .iter()
        .find(|(k, _)| f.key(k) == b"interface")
        .unwrap();
    assert_eq!(service.1, interface.1);

    let f = decode_one(fixture("dubbo_py_request_fail.bin"));
    assert_eq!((f.id, header(&f, "method")), (1, Some("fail")));
    assert_eq!(header(&f, "interface"), Some("com.mosn.test.DubboEcho"));

    let f = decode_one(fixture("dubbo_py_response.bin"));
    assert_eq!((f.kind, f.id, f.status), (FrameKind::Response, 0, 20));
    let f = decode_one(fixture("dubbo_py_response_error.bin"));
    assert_eq!((f.kind, f.id, f.status), (FrameKind::Response, 1, 80));
    assert_eq!(body_text(&f), "requested failure from dubbo");

    let hb = decode_one(fixture("dubbo_py_heartbeat.bin"));
    assert_eq!((hb.kind, hb.id), (FrameKind::Heartbeat, 2));
    let ack = decode_one(fixture("dubbo_py_heartbeat_ack.bin"));
    assert_eq!((ack.kind, ack.id), (FrameKind::HeartbeatAck, 2));
    assert_eq!(
        &Dubbo.heartbeat_ack(&hb)[..],
        &fixture("dubbo_py_heartbeat_ack.bin")[..]
    );
}

const FIXTURES: [&str; 12] = [
    "dubbo_request.bin",
    "dubbo_request_fail.bin",
    "dubbo_response.bin",
    "dubbo_response_error.bin",
    "dubbo_heartbeat.bin",
    "dubbo_heartbeat_ack.bin",
    "dubbo_py_request.bin",
    "dubbo_py_request_fail.bin",
    "dubbo_py_response.bin",
    "dubbo_py_response_error.bin",
    "dubbo_py_heartbeat.bin",
    "dubbo_py_heartbeat_ack.bin",
];

#[test]
fn every_prefix_waits_and_frames_back_to_back_come_apart() {
    for name in FIXTURES {
        let one = fixture(name);
        for cut in 0..one.len() {
            let mut part = BytesMut::from(&one[..cut]);
            assert_eq!(
                Dubbo.decode(&mut part, DEFAULT_MAX_FRAME),
                Ok(None),
                "{name} cut {cut}"
            );
            assert_eq!(part.len(), cut, "nothing consumed");
        }
    }
    let mut all = BytesMut::new();
    for name in FIXTURES {
        all.extend_from_slice(&fixture(name));
    }
    for name in FIXTURES {
        let f = Dubbo.decode(&mut all, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(&f.raw[..], &fixture(name)[..], "{name}");
    }
    assert!(all.is_empty());
    assert_eq!(Dubbo.decode(&mut all, DEFAULT_MAX_FRAME), Ok(None));
}

#[test]
fn ids_are_rewritten_in_place() {
    let original = fixture("dubbo_request.bin");
    let mut f = decode_one(original.clone());
    let headers = f.headers.clone();
    Dubbo.set_id(&mut f, 0x0102_0304_0506_0708);
    assert_eq!(f.id, 0x0102_0304_0506_0708);
    assert_eq!(&f.raw[4..12], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&f.raw[..4], &original[..4]);
    assert_eq!(&f.raw[12..], &original[12..]);
    let again = decode_one(f.raw.clone());
    assert_eq!((again.id, again.headers), (0x0102_0304_0506_0708, headers));
    Dubbo.set_id(&mut f, u64::MAX);
    assert_eq!(decode_one(f.raw.clone()).id, u64::MAX);
    assert_eq!(Dubbo.max_id(), u64::MAX);
}

#[test]
fn hijacks_are_mosns_statuses_with_a_readable_message() {
    let req = decode_one(fixture("dubbo_request.bin"));
    // docs/xprotocol-wire.md 4.12: MOSN's "no route" reply to id 1, which a
    // dubbo-remoting client reported as `Error: 404|router unavailable`.
    let no_route = Dubbo.hijack(&req, Hijack::NoRoute).unwrap();
    let mut want = vec![
        0xda, 0xbb, 0x02, 0x3c, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x17, 0x16,
    ];
    want.extend_from_slice(b"404|router unavailable");
    assert_eq!(&no_route[..], &want[..]);
    for (why, st, text) in [
        (
            Hijack::NoRoute,
            status::SERVICE_NOT_FOUND,
            "404|router unavailable",
        ),
        (
            Hijack::NoHealthyUpstream,
            status::SERVICE_NOT_FOUND,
            "502|no health upstream",
        ),
        (
            Hijack::Overflow,
            status::BAD_REQUEST,
            "503|upstream overflow",
        ),
        (Hijack::Timeout, status::CLIENT_TIMEOUT, "504|timeout"),
        (
            Hijack::UpstreamClosed,
            status::SERVICE_ERROR,
            "500|internal error",
        ),
        (
            Hijack::BadRequest,
            status::SERVICE_ERROR,
            "0|codec exception",
        ),
    ] {
        let r = decode_one(Dubbo.hijack(&req, why).unwrap());
        assert_eq!(
            (r.kind, r.id, r.status),
            (FrameKind::Response, 1, u32::from(st)),
            "{why:?}"
        );
        // Shaped like the real server's error answer: flag 02, the message as a string.
        assert_eq!(r.raw[2], fixture("dubbo_response_error.bin")[2]);
        assert_eq!(body_text(&r), text);
    }
    // With the Python client's id 0.
    let py = decode_one(fixture("dubbo_py_request.bin"));
    assert_eq!(
        decode_one(Dubbo.hijack(&py, Hijack::Timeout).unwrap()).id,
        0
    );
    // Nothing for one-way requests and heartbeats.
    let mut oneway = fixture("dubbo_request.bin");
    oneway[2] = 0x82;
    let ow = decode_one(oneway);
    assert_eq!(ow.kind, FrameKind::OneWay);
    assert_eq!(header(&ow, "service"), Some("com.mosn.test.DubboEcho"));
    assert_eq!(Dubbo.hijack(&ow, Hijack::NoRoute), None);
    let hb = decode_one(fixture("dubbo_heartbeat.bin"));
    assert_eq!(Dubbo.hijack(&hb, Hijack::NoRoute), None);
}

#[test]
fn detection_limits_and_garbage() {
    assert_eq!(Dubbo.detect(&[]), Detected::NeedMore);
    assert_eq!(Dubbo.detect(&[0xda]), Detected::NeedMore);
    assert_eq!(Dubbo.detect(&[0xda, 0xbb]), Detected::Yes);
    assert_eq!(Dubbo.detect(&[0xda, 0xbc]), Detected::No);
    assert_eq!(Dubbo.detect(&[0x01]), Detected::No);
    assert_eq!(Dubbo.detect(b"GET /"), Detected::No);
    assert_eq!(codec("Dubbo").map(|c| c.name()), Some("dubbo"));
    assert!(matches!(
        crate::xprotocol::detect(crate::xprotocol::codecs(), &fixture("dubbo_request.bin")),
        crate::xprotocol::Detection::Found(c) if c.name() == "dubbo"
    ));

    // Too large: known from the head alone, before the body arrives.
    let req = fixture("dubbo_request.bin");
    let mut head_only = BytesMut::from(&req[..HEAD]);
    assert_eq!(
        Dubbo.decode(&mut head_only, 64),
        Err(CodecError::TooLarge {
            len: req.len(),
            max: 64
        })
    );
    let mut huge = BytesMut::from(
        &[
            0xda, 0xbb, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff,
        ][..],
    );
    assert!(matches!(
        Dubbo.decode(&mut huge, DEFAULT_MAX_FRAME),
        Err(CodecError::TooLarge { .. })
    ));
    // Exactly at the limit is fine.
    let mut exact = req.clone();
    assert!(Dubbo.decode(&mut exact, req.len()).unwrap().is_some());

    // Garbage: refused at its first wrong byte.
    for bad in [&b"GET / HTTP/1.1\r\n\r\n"[..], &[0xda, 0x00], &[0x00]] {
        let mut b = BytesMut::from(bad);
        assert!(matches!(
            Dubbo.decode(&mut b, DEFAULT_MAX_FRAME),
            Err(CodecError::Malformed(_))
        ));
    }
    let mut one = BytesMut::from(&[0xda][..]);
    assert_eq!(Dubbo.decode(&mut one, DEFAULT_MAX_FRAME), Ok(None));
    let mut empty = BytesMut::new();
    assert_eq!(Dubbo.decode(&mut empty, DEFAULT_MAX_FRAME), Ok(None));
}

#[test]
fn unreadable_bodies_give_fewer_headers_not_errors() {
    // Another serialization (6, fastjson): a frame without headers.
    let mut other = fixture("dubbo_request.bin");
    other[2] = 0xc6;
    let f = decode_one(other);
    assert_eq!((f.kind, f.headers.len()), (FrameKind::Request, 0));
    assert_eq!(
        decode_one(Dubbo.hijack(&f, Hijack::NoRoute).unwrap()).status,
        u32::from(status::SERVICE_NOT_FOUND)
    );
    // A body cut inside the method name (the frame's length still fits it).
    let full = fixture("dubbo_request.bin");
    let cut_at = 0x37; // inside "echo"
    let mut cut = BytesMut::from(&full[..cut_at]);
    cut[12..16].copy_from_slice(&((cut_at - HEAD) as u32).to_be_bytes());
    let f = decode_one(cut);
    assert_eq!(header(&f, "service"), Some("com.mosn.test.DubboEcho"));
    assert_eq!(header(&f, "method"), None);
    // An empty body.
    let mut empty = BytesMut::new();
    head(&mut empty, 0xc2, 0, 9, 0);
    assert!(decode_one(empty).headers.is_empty());
    // A first field that is not a string.
    let mut body = BytesMut::new();
    head(&mut body, 0xc2, 0, 5, 1);
    body.put_u8(0x91);
    assert!(decode_one(body).headers.is_empty());
    // Arguments that disagree with the descriptor: the four body fields, no attachments.
    let f = decode_one(request(
        0xc2,
        7,
        FIELDS,
        "II",
        b"\x91",
        &map(&[("group", "g")]),
    ));
    assert_eq!(header(&f, "method"), Some("call"));
    assert_eq!(header(&f, "group"), None);
    // A map cut short: no attachments at all.
    let mut att = map(&[("interface", "com.other.Svc"), ("group", "g")]);
    att.pop();
    let f = decode_one(request(0xc2, 7, FIELDS, "", &[], &att));
    assert_eq!(header(&f, "service"), Some("com.foo.Svc"));
    assert_eq!(header(&f, "group"), None);
}

#[test]
fn attachments_follow_mosns_rules_with_body_fields_kept() {
    let att = map(&[
        ("service", "com.foo.Svc:1.0"),
        ("version", "9.9"),
        ("group", "g1"),
        ("interface", "com.foo.Iface"),
        ("timeout", "3000"),
        ("group", "g2"),
        ("x-mosn-global-timeout", "150"),
    ]);
    let f = decode_one(request(0xc2, 7, FIELDS, "", &[], &att));
    // `interface` replaces the body's service path; the other body fields stay.
    assert_eq!(header(&f, "service"), Some("com.foo.Iface"));
    assert_eq!(header(&f, "interface"), Some("com.foo.Iface"));
    assert_eq!(header(&f, "version"), Some("1.0"));
    assert_eq!(header(&f, "dubbo"), Some("2.0.2"));
    // A repeated key: the later value.
    assert_eq!(header(&f, "group"), Some("g2"));
    assert_eq!(header(&f, "timeout"), Some("3000"));
    assert_eq!(header(&f, "x-mosn-global-timeout"), Some("150"));
    let names: Vec<_> = f
        .header_pairs()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "dubbo",
            "service",
            "version",
            "method",
            "group",
            "interface",
            "timeout",
            "x-mosn-global-timeout"
        ]
    );

    // A null version reads as "" (MOSN); non-string entries and a value that is not
    // UTF-8 (a CESU-8 surrogate pair) are left out; a typed map `M` is read too.
    let mut att = b"M\x0djava.util.Map".to_vec();
    hessian2::write_string(&mut att, "n");
    att.push(0x91);
    att.push(0x91);
    hessian2::write_string(&mut att, "x");
    hessian2::write_string(&mut att, "emoji");
    hessian2::write_string(&mut att, "😀");
    hessian2::write_string(&mut att, "group");
    hessian2::write_string(&mut att, "é");
    att.push(b'Z');
    let f = decode_one(request(
        0xc2,
        7,
        [Some("2.0.2"), Some("S"), None, Some("m")],
        "",
        &[],
        &att,
    ));
    assert_eq!(header(&f, "version"), Some(""));
    assert_eq!(header(&f, "n"), None);
    assert_eq!(header(&f, "emoji"), None);
    assert_eq!(header(&f, "group"), Some("é"));

    // A service path too long for one chunk is not exposed, and without an
    // `interface` routing on it fails.
    let long = "a".repeat(40000);
    let f = decode_one(request(
        0xc2,
        7,
        [Some("2.0.2"), Some(&long), Some("1"), Some("m")],
        "",
        &[],
        b"N",
    ));
    assert_eq!(header(&f, "service"), None);
    assert_eq!(header(&f, "method"), Some("m"));
    let f = decode_one(request(
        0xc2,
        7,
        [Some("2.0.2"), Some(&long), Some("1"), Some("m")],
        "",
        &[],
        &map(&[("interface", "com.x.Y")]),
    ));
    assert_eq!(header(&f, "service"), Some("com.x.Y"));
}

#[test]
fn the_header_map_is_capped_whatever_a_client_sends() {
    // 200 000 distinct attachments (2 MB): linear work, at most MAX_ATTACHMENTS kept,
    // and an `interface` after them still counts.
    let mut att = vec![b'H'];
    for i in 0..200_000u32 {
        hessian2::write_string(&mut att, &format!("k{i}"));
        hessian2::write_string(&mut att, "");
    }
    hessian2::write_string(&mut att, "k5");
    hessian2::write_string(&mut att, "later");
    hessian2::write_string(&mut att, "interface");
    hessian2::write_string(&mut att, "com.x.Y");
    att.push(b'Z');
    let f = decode_one(request(0xc2, 1, FIELDS, "", &[], &att));
    assert_eq!(f.headers.len(), 4 + MAX_ATTACHMENTS);
    assert_eq!(header(&f, "service"), Some("com.x.Y"));
    assert_eq!(header(&f, "k5"), Some("later"));
    assert_eq!(header(&f, "k0"), Some(""));
    assert_eq!(header(&f, "interface"), None);
    // The same map cut short: none of it, and `service` is the body's again.
    let cut = &att[..att.len() - 1];
    let f = decode_one(request(0xc2, 1, FIELDS, "", &[], cut));
    assert_eq!(f.headers.len(), 4);
    assert_eq!(header(&f, "service"), Some("com.foo.Svc"));
}

#[test]
fn arguments_of_every_kind_are_skipped_to_the_attachments() {
    // The eight-argument request of docs/xprotocol-wire.md 5.3.
    let mut args: Vec<u8> = vec![0x93, 0x59, 0x00, 0x04, 0x93, 0xe0];
    args.extend_from_slice(b"C\x14com.alipay.test.User\x92\x04name\x03age");
    args.extend_from_slice(b"\x60\x03bob\x97");
    args.extend_from_slice(b"\x60\x03amy\x99");
    args.extend_from_slice(b"\x72\x0ejava.util.List\x91\x92");
    args.extend_from_slice(b"H\x01k\x01vZ");
    args.extend_from_slice(b"T");
    args.extend_from_slice(&[0x5f, 0x00, 0x00, 0x05, 0xdc]);
    let desc = "IJLcom/alipay/test/User;Lcom/alipay/test/User;Ljava/util/List;Ljava/util/Map;ZD";
    assert_eq!(argument_count(desc.as_bytes()), 8);
    // An attachment value that is an object of the class defined in the arguments.
    let mut att = map(&[
        ("group", "g1"),
        ("interface", "com.alipay.test.DemoService"),
    ]);
    att.pop();
    hessian2::write_string(&mut att, "user");
    att.extend_from_slice(b"\x60\x01x\x90Z");
    let f = decode_one(request(0xc2, 1, FIELDS, desc, &args, &att));
    assert_eq!(header(&f, "group"), Some("g1"));
    assert_eq!(header(&f, "service"), Some("com.alipay.test.DemoService"));
    assert_eq!(header(&f, "user"), None);
    // A descriptor over 1023 chars (the `S` form) or chunked still counts.
    let many = "I".repeat(40000);
    let ints = vec![0x90; 40000];
    let f = decode_one(request(
        0xc2,
        1,
        FIELDS,
        &many,
        &ints,
        &map(&[("group", "g")]),
    ));
    assert_eq!(header(&f, "group"), Some("g"));
}

#[test]
fn argument_count_is_mosns() {
    for (desc, n) in [
        ("", 0),
        ("Ljava/lang/String;", 1),
        ("[I", 1),
        ("IJLcom/foo/User;[I", 4),
        ("[[Ljava/lang/Object;Z", 2),
        ("VZBCDFIJS", 9),
        // Letters inside a class name do not count.
        ("Lcom/IJZ/Foo;", 1),
        ("Ljava/lang/String;Ljava/lang/String;[Ljava/lang/Object;", 3),
    ] {
        assert_eq!(argument_count(desc.as_bytes()), n, "{desc}");
    }
}

#[test]
fn event_and_direction_bits() {
    for (flag, kind) in [
        (0xc2, FrameKind::Request),
        (0x82, FrameKind::OneWay),
        (0xe2, FrameKind::Heartbeat),
        // A read-only event (no two-way bit) is answered as a heartbeat too (MOSN).
        (0xa2, FrameKind::Heartbeat),
        (0x02, FrameKind::Response),
        (0x42, FrameKind::Response),
        (0x22, FrameKind::HeartbeatAck),
    ] {
        let mut b = fixture("dubbo_heartbeat.bin");
        b[2] = flag;
        assert_eq!(decode_one(b).kind, kind, "{flag:02x}");
    }
    // Status only counts in responses.
    let mut b = fixture("dubbo_request.bin");
    b[3] = 0x50;
    assert_eq!(decode_one(b).status, 0);
}

/// A small deterministic generator (xorshift64*) for the mutation test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// What each fuzz target does with one input: decode frames until none or an error,
/// and on each frame read every header, rewrite the id and build every reply.
pub(crate) fn exercise(codec: &dyn Codec, input: &[u8]) {
    let mut buf = BytesMut::from(input);
    for _ in 0..input.len() + 1 {
        match codec.decode(&mut buf, 1 << 16) {
            Ok(Some(mut f)) => {
                for (k, v) in f.header_pairs() {
                    let _ = (k.len(), v.len());
                }
                let _ = f.header(b"service");
                let id = f.id;
                codec.set_id(&mut f, id.wrapping_add(1) & codec.max_id());
                for why in [Hijack::NoRoute, Hijack::Timeout, Hijack::Overflow] {
                    if let Some(mut out) = codec.hijack(&f, why) {
                        let reply = codec.decode(&mut out, 1 << 16);
                        assert!(matches!(reply, Ok(Some(_))), "{reply:?}");
                    }
                }
                let mut ack = codec.heartbeat_ack(&f);
                assert!(matches!(codec.decode(&mut ack, 1 << 16), Ok(Some(_))));
            }
            Ok(None) | Err(_) => break,
        }
    }
}

pub(crate) fn exercise_hessian2(input: &[u8]) {
    let mut r = hessian2::Reader::new(input);
    while !r.is_at_end() && r.skip_value().is_ok() {}
    let _ = hessian2::Reader::new(input).read_string();
    let _ = hessian2::Reader::new(input).string_map(|_, _| ());
}

/// Mutations of every fixture (bit flips, byte changes, cuts, splices, length-field
/// changes) and random bytes, through every decoder. The fuzz targets in fuzz/ do the
/// same with coverage guidance; this runs in `cargo test`.
#[test]
fn mutated_and_random_inputs_never_panic() {
    let names = std::fs::read_dir(format!(
        "{}/../../tests/fixtures/xprotocol",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .filter_map(|e| e.ok()?.file_name().into_string().ok())
    .filter(|n| n.ends_with(".bin"))
    .collect::<Vec<_>>();
    let seeds: Vec<Vec<u8>> = names.iter().map(|n| fixture(n).to_vec()).collect();
    assert!(seeds.len() >= 18);
    let codecs: [&dyn Codec; 4] = [&bolt::BoltV1, &bolt::BoltV2, &Dubbo, &example::Example];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..20_000 {
        let mut b = seeds[rng.below(seeds.len())].clone();
        if case % 10 == 0 {
            b = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            if case % 20 == 0 && b.len() >= 2 {
                b[0] = 0xda;
                b[1] = 0xbb;
            }
        }
        for _ in 0..1 + rng.below(4) {
            if b.is_empty() {
                break;
            }
            let at = rng.below(b.len());
            match rng.below(6) {
                0 => b[at] ^= 1 << rng.below(8),
                1 => b[at] = rng.next() as u8,
                2 => b.truncate(at),
                3 => {
                    let other = &seeds[rng.below(seeds.len())];
                    let from = rng.below(other.len());
                    b.splice(at..at, other[from..].iter().copied().take(rng.below(40)));
                }
                4 => {
                    // Make the body length agree with what is there (Dubbo), so the
                    // body itself gets parsed.
                    if b.len() >= HEAD {
                        let n = (b.len() - HEAD) as u32;
                        b[12..16].copy_from_slice(&n.to_be_bytes());
                    }
                }
                _ => b.insert(
                    at,
                    [0x43, 0x48, 0x4f, 0x51, 0x52, 0x56, 0x5a, 0x60][rng.below(8)],
                ),
            }
        }
        for c in codecs {
            exercise(c, &b);
        }
        exercise_hessian2(&b);
        if b.len() > HEAD {
            exercise_hessian2(&b[HEAD..]);
        }
    }
}
