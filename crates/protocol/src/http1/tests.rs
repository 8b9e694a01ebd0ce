use super::*;
use bytes::BytesMut;

fn req(raw: &str) -> Result<Option<RequestHead>, ParseError> {
    let mut buf = BytesMut::from(raw.as_bytes());
    parse_request(&mut buf, &HeadLimits::default())
}

fn status_of(raw: &str) -> u16 {
    match req(raw) {
        Ok(Some(_)) => 200,
        Ok(None) => 0,
        Err(e) => e.status,
    }
}

#[test]
fn parses_a_simple_request() {
    let head = req("GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(head.method(), b"GET");
    assert_eq!(head.path(), b"/a/b");
    assert_eq!(head.path_and_query(), b"/a/b?x=1");
    assert_eq!(head.method_and_path_text(), ("GET", "/a/b?x=1"));
    assert_eq!(head.host(), b"example.com");
    assert_eq!(head.header("x-a"), Some(&b"1"[..]));
    assert_eq!(request_framing(&head), BodyFraming::None);
    assert!(head.wants_keep_alive());
}

#[test]
fn partial_head_waits() {
    assert_eq!(status_of("GET / HTTP/1.1\r\nHost: a\r\n"), 0);
}

#[test]
fn absolute_form_gives_authority_and_origin_path() {
    let head = req("GET http://up.example:8080 HTTP/1.1\r\nHost: other\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(head.host(), b"up.example:8080");
    assert_eq!(head.path_and_query(), b"/");
    assert_eq!(head.method_and_path_text(), ("GET", "/"));
    let head = req("OPTIONS http://up.example/p?q HTTP/1.1\r\nHost: other\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(head.method_and_path_text(), ("OPTIONS", "/p?q"));
    let head = req("CONNECT up.example:443 HTTP/1.1\r\nHost: up.example:443\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(head.method_and_path_text().0, "CONNECT");
}

#[test]
fn framing_violations_get_400() {
    let cases = [
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 5\r\n\r\n",
    ];
    for c in cases {
        assert_eq!(status_of(c), 400, "{c:?}");
    }
}

#[test]
fn identical_repeated_lengths_are_accepted() {
    let head = req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(request_framing(&head), BodyFraming::Length(3));
}

#[test]
fn unknown_transfer_coding_gets_501() {
    assert_eq!(
        status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: bogus, chunked\r\n\r\n"),
        501
    );
}

#[test]
fn chunked_length_allowed_when_configured() {
    let mut buf = BytesMut::from(
        &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
    );
    let limits = HeadLimits {
        allow_chunked_length: true,
        ..HeadLimits::default()
    };
    let head = parse_request(&mut buf, &limits).unwrap().unwrap();
    assert_eq!(request_framing(&head), BodyFraming::Chunked);
}

#[test]
fn malformed_heads_get_400() {
    let cases = [
        "GET / HTTP/1.10\r\nHost: a\r\n\r\n",
        "GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX : a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET a HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        "G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    for c in cases {
        assert_eq!(status_of(c), 400, "{c:?}");
    }
}

#[test]
fn http10_needs_no_host() {
    let head = req("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
    assert_eq!(head.version, Version::Http10);
    assert!(!head.wants_keep_alive());
}

#[test]
fn limits_give_414_and_431() {
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
    assert_eq!(status_of(&long_target), 414);
    let partial_long_target = format!("GET /{}", "a".repeat(9000));
    assert_eq!(status_of(&partial_long_target), 414);
    let many = format!(
        "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
        "X-A: 1\r\n".repeat(100)
    );
    assert_eq!(status_of(&many), 431);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: {}\r\n\r\n",
        "b".repeat(61 * 1024)
    );
    assert_eq!(status_of(&big), 431);
}

fn resp(raw: &str) -> Result<Option<ResponseHead>, ParseError> {
    let mut buf = BytesMut::from(raw.as_bytes());
    parse_response(&mut buf, &HeadLimits::default())
}

#[test]
fn response_framing_rules() {
    let r = resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(response_framing(&r, false), BodyFraming::Length(5));
    assert_eq!(response_framing(&r, true), BodyFraming::None);
    let r = resp("HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
    assert_eq!(response_framing(&r, false), BodyFraming::UntilClose);
    let r = resp("HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
    assert_eq!(response_framing(&r, false), BodyFraming::None);
    let r = resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(response_framing(&r, false), BodyFraming::Chunked);
    let r = resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!r.allows_reuse());
}

#[test]
fn ambiguous_responses_get_502() {
    for c in [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTX/1.1 200 OK\r\n\r\n",
    ] {
        assert_eq!(resp(c).unwrap_err().status, 502, "{c:?}");
    }
}

fn decode_all(input: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ChunkError> {
    let mut dec = ChunkedDecoder::new(1024);
    let mut body = Vec::new();
    // Feed one byte at a time to exercise every partial state.
    let mut buf = BytesMut::new();
    for &b in input {
        buf.extend_from_slice(&[b]);
        while let Some(item) = dec.next(&mut buf)? {
            match item {
                ChunkedItem::Data(d) => body.extend_from_slice(&d),
                ChunkedItem::End(t) => return Ok((body, t.to_vec())),
            }
        }
    }
    Err(ChunkError("incomplete"))
}

#[test]
fn chunked_decodes_incrementally() {
    let (body, trailers) =
        decode_all(b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n").unwrap();
    assert_eq!(body, b"hello world");
    assert_eq!(trailers, b"X-T: 1\r\n");
}

#[test]
fn chunked_rejects_ambiguity() {
    for bad in [
        &b"5\nhello\r\n0\r\n\r\n"[..],
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"zz\r\n",
        b"1234567890abcdef0\r\n",
        b"0\r\nbad trailer\r\n\r\n",
        b"5 x\r\nhello\r\n",
    ] {
        assert!(
            decode_all(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn chunk_prefix_is_hex() {
    let mut out = [0u8; 20];
    let n = write_chunk_prefix(0x1f3a, &mut out);
    assert_eq!(&out[..n], b"1f3a\r\n");
    let n = write_chunk_prefix(0, &mut out);
    assert_eq!(&out[..n], b"0\r\n");
}

#[test]
fn header_limits_above_the_stack_slots_use_the_heap() {
    let limits = HeadLimits {
        max_headers: 200,
        ..HeadLimits::default()
    };
    let ok = format!(
        "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
        "X-A: 1\r\n".repeat(150)
    );
    let head = parse_request(&mut BytesMut::from(ok.as_bytes()), &limits)
        .unwrap()
        .unwrap();
    assert_eq!(head.headers.len(), 151);
    let too_many = format!(
        "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
        "X-A: 1\r\n".repeat(200)
    );
    assert_eq!(
        parse_request(&mut BytesMut::from(too_many.as_bytes()), &limits)
            .unwrap_err()
            .status,
        431
    );
}
