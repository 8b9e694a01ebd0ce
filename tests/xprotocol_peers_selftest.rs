//! The SOFA Bolt and Dubbo test peers on their own, without mosn-rs: every client of
//! tests/peers (bolt_client.js; dubbo_client.js and dubbo_client.py) against its
//! server (bolt_server.js; dubbo_server.js) directly. When a proxy test fails, this
//! tells whether the harness or the proxy is at fault.
//!
//! It also records, through a TCP relay, the bytes one real client and server
//! exchange (a call, a failing call, a heartbeat) and checks them against
//! tests/fixtures/xprotocol/*.bin, which the Bolt and Dubbo codecs are tested with.
//! Rerun with `MOSN_WRITE_FIXTURES=1` to rewrite those files (after a peer upgrade);
//! see tests/fixtures/xprotocol/README.md.

mod common;
use common::peers::*;
use common::repo_root;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Runs a case that must hold, within 10 s.
#[track_caller]
fn expect_ok(client: XClient, port: u16, case: &[&str]) -> Value {
    let start = Instant::now();
    let (ok, v) = x_client(client, port, case);
    assert!(ok, "{client:?} {case:?} failed: {v}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{client:?} {case:?} took {:?}",
        start.elapsed()
    );
    v
}

#[track_caller]
fn assert_all_matched(v: &Value, n: u64, tag: &str) {
    assert_eq!(v["calls"], n, "{v}");
    assert_eq!(v["matched"], n, "{v}");
    assert_eq!(v["mismatched"], 0, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["tags"][tag], n, "{v}");
    assert_eq!(v["connections"], 1, "{v}");
}

#[test]
fn bolt_200_calls_64_in_flight_on_one_connection_all_matched() {
    let Some(_) = node_peers() else { return };
    let s = XServer::bolt("A");
    let v = expect_ok(XClient::BoltNode, s.port, &["echo", "200", "64"]);
    assert_all_matched(&v, 200, "A");
    assert_eq!(s.calls_when("echo", 200), 200);
    assert_eq!(s.connections(), 1, "{:?}", s.events_of("CONN"));
    // sofa-rpc-node names the target service in the Bolt header map (key "service")
    // and again in the hessian SofaRequest (targetServiceUniqueName, requestProps).
    let call = &s.events_of("CALL")[0];
    assert_eq!(call["service"], "com.mosn.test.EchoService:1.0", "{call}");
    assert_eq!(call["props"]["service"], "com.mosn.test.EchoService:1.0");
    assert_eq!(
        call["timeout"], 3000,
        "the Bolt header carries the client's timeout"
    );
    // Bolt request ids are the client's own counter, from 1.
    let mut ids: Vec<u64> = s
        .events_of("CALL")
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=200).collect::<Vec<u64>>());
}

#[test]
fn bolt_sleep_timeout_fail_unknown_method_and_heartbeat() {
    let Some(_) = node_peers() else { return };
    let s = XServer::bolt("B");
    let v = expect_ok(XClient::BoltNode, s.port, &["sleep", "150"]);
    assert_eq!(v["result"], "B:slept 150");
    assert!(v["ms"].as_u64().unwrap() >= 150, "{v}");

    let v = expect_ok(XClient::BoltNode, s.port, &["timeout", "1500", "300"]);
    assert_eq!(v["error_name"], "RpcResponseTimeoutError");
    let ms = v["ms"].as_u64().unwrap();
    assert!((300..1400).contains(&ms), "timed out after {ms} ms: {v}");

    let v = expect_ok(XClient::BoltNode, s.port, &["fail"]);
    assert!(
        v["error"].as_str().unwrap().contains("RpcServerException"),
        "{v}"
    );
    let v = expect_ok(XClient::BoltNode, s.port, &["no_method"]);
    assert!(
        v["error"].as_str().unwrap().contains("Can not find method"),
        "{v}"
    );

    let v = expect_ok(XClient::BoltNode, s.port, &["heartbeat"]);
    assert_eq!(v["id"], v["ack_id"], "{v}");
    let hb = s
        .wait_event("HEARTBEAT ", Duration::from_secs(2))
        .expect("the server saw the heartbeat");
    assert!(hb.contains(&format!("\"id\":{}", v["id"])), "{hb}");
}

#[test]
fn bolt_client_names_other_services_and_the_server_refuses_unknown_ones() {
    let Some(_) = node_peers() else { return };
    let s = XServer::start(
        XProtocol::Bolt,
        0,
        &["--service", "com.mosn.test.Other", "--tag", "O"],
    );
    let target = format!("127.0.0.1:{}", s.port);
    let args = [
        "--service",
        "com.mosn.test.Other",
        "--expect-tag",
        "O",
        &target,
        "echo",
        "5",
        "2",
    ];
    let (ok, v) = x_client_args(XClient::BoltNode, &args, CLIENT_LIMIT);
    assert!(ok, "{v}");
    assert_eq!(s.events_of("CALL")[0]["service"], "com.mosn.test.Other:1.0");

    // The default service is not there: every call fails, and says why.
    let (ok, v) = x_client(XClient::BoltNode, s.port, &["echo", "3", "1"]);
    assert!(!ok, "{v}");
    assert_eq!(v["errors"], 3, "{v}");
    let sample = v["error_samples"][0].as_str().unwrap();
    assert!(sample.contains("not found service"), "{v}");
}

#[test]
fn dubbo_node_client_200_calls_64_in_flight_all_matched() {
    let Some(_) = node_peers() else { return };
    let s = XServer::dubbo("D");
    let v = expect_ok(XClient::DubboNode, s.port, &["echo", "200", "64"]);
    assert_all_matched(&v, 200, "D");
    assert_eq!(s.calls_when("echo", 200), 200);
    assert_eq!(s.connections(), 1);
    // The service is found by "path:version" from the Dubbo body; the attachments
    // dubbo-remoting sends come back as "props".
    let call = &s.events_of("CALL")[0];
    assert_eq!(call["service"], "com.mosn.test.DubboEcho:1.0.0", "{call}");
    assert_eq!(call["props"]["path"], "com.mosn.test.DubboEcho");
    assert_eq!(call["props"]["version"], "1.0.0");
    assert_eq!(call["props"]["group"], "");
}

#[test]
fn dubbo_node_client_sleep_timeout_fail_unknown_method_and_heartbeat() {
    let Some(_) = node_peers() else { return };
    let s = XServer::dubbo("E");
    let v = expect_ok(XClient::DubboNode, s.port, &["sleep", "150"]);
    assert_eq!(v["result"], "E:slept 150");
    let v = expect_ok(XClient::DubboNode, s.port, &["timeout", "1500", "300"]);
    assert_eq!(v["error_name"], "RpcResponseTimeoutError");
    let v = expect_ok(XClient::DubboNode, s.port, &["fail"]);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("requested failure from E"),
        "{v}"
    );
    expect_ok(XClient::DubboNode, s.port, &["no_method"]);
    let v = expect_ok(XClient::DubboNode, s.port, &["heartbeat"]);
    assert_eq!(v["id"], v["ack_id"], "{v}");
    s.wait_event("HEARTBEAT ", Duration::from_secs(2))
        .expect("the server saw the heartbeat");
}

#[test]
fn dubbo_python_client_200_calls_64_in_flight_all_matched() {
    let Some(_) = node_peers() else { return };
    let Some(_) = dubbo_python() else { return };
    let s = XServer::dubbo("P");
    let v = expect_ok(XClient::DubboPython, s.port, &["echo", "200", "64"]);
    assert_all_matched(&v, 200, "P");
    assert_eq!(s.calls_when("echo", 200), 200);
    assert_eq!(
        s.connections(),
        1,
        "dubbo-ssl-python multiplexes one connection"
    );
    let call = &s.events_of("CALL")[0];
    assert_eq!(call["service"], "com.mosn.test.DubboEcho:1.0.0", "{call}");
    assert_eq!(call["props"]["dubbo"], "2.0.2");
    assert_eq!(call["props"]["interface"], "com.mosn.test.DubboEcho");
}

#[test]
fn dubbo_python_client_sleep_timeout_fail_and_heartbeat() {
    let Some(_) = node_peers() else { return };
    let Some(_) = dubbo_python() else { return };
    let s = XServer::dubbo("Q");
    let v = expect_ok(XClient::DubboPython, s.port, &["sleep", "150"]);
    assert_eq!(v["result"], "Q:slept 150");
    let v = expect_ok(XClient::DubboPython, s.port, &["timeout", "1500", "300"]);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("DubboRequestTimeoutException"),
        "{v}"
    );
    let v = expect_ok(XClient::DubboPython, s.port, &["fail"]);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("requested failure from Q"),
        "{v}"
    );
    expect_ok(XClient::DubboPython, s.port, &["heartbeat"]);
    s.wait_event("HEARTBEAT ", Duration::from_secs(2))
        .expect("the server saw the heartbeat");
}

#[test]
fn dubbo_group_and_version_reach_the_server_from_both_clients() {
    let Some(_) = node_peers() else { return };
    let Some(_) = dubbo_python() else { return };
    let s = XServer::start(XProtocol::Dubbo, 0, &["--version", "2.0.0", "--tag", "G"]);
    let target = format!("127.0.0.1:{}", s.port);
    for client in [XClient::DubboNode, XClient::DubboPython] {
        let args = [
            "--version",
            "2.0.0",
            "--group",
            "blue",
            &target,
            "echo",
            "3",
            "3",
        ];
        let (ok, v) = x_client_args(client, &args, CLIENT_LIMIT);
        assert!(ok, "{client:?}: {v}");
    }
    // The server's event lines are read on another thread: give the last one a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.events_of("CALL").len() < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let calls = s.events_of("CALL");
    assert_eq!(calls.len(), 6);
    for c in &calls {
        assert_eq!(c["service"], "com.mosn.test.DubboEcho:2.0.0", "{c}");
        assert_eq!(c["props"]["group"], "blue", "{c}");
    }
    // A version the server does not have: an error answer, not a hang.
    let (ok, v) = x_client(XClient::DubboPython, s.port, &["echo", "1", "1"]);
    assert!(!ok, "{v}");
    assert_eq!(v["errors"], 1, "{v}");
}

// ---- captures -------------------------------------------------------------------

/// A TCP relay on 127.0.0.1 in front of `upstream` for one connection; it records
/// the bytes of each direction.
struct Relay {
    port: u16,
    done: mpsc::Receiver<(Vec<u8>, Vec<u8>)>,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            let (down, _) = listener.accept().unwrap();
            let up = TcpStream::connect(upstream).unwrap();
            down.set_nodelay(true).unwrap();
            up.set_nodelay(true).unwrap();
            let to_server = pump(down.try_clone().unwrap(), up.try_clone().unwrap());
            let to_client = pump(up, down);
            let _ = tx.send((to_server.join().unwrap(), to_client.join().unwrap()));
        });
        Relay { port, done }
    }

    /// (client to server, server to client) once both sides have closed.
    fn finish(self) -> (Vec<u8>, Vec<u8>) {
        self.done
            .recv_timeout(Duration::from_secs(10))
            .expect("the relayed connection closed")
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    seen.extend_from_slice(&buf[..n]);
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        seen
    })
}

fn be16(b: &[u8], at: usize) -> usize {
    u16::from_be_bytes([b[at], b[at + 1]]) as usize
}

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Splits a Bolt v1 stream into its frames: a request (type 1 or 2) has a 22-byte
/// head with classLen at 14, headerLen at 16 and contentLen at 18; a response
/// (type 0) a 20-byte head with them at 12, 14, 16.
fn bolt_frames(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while !b.is_empty() {
        assert_eq!(b[0], 0x01, "Bolt v1 starts with proto 0x01");
        let (head, at) = if b[1] == 0 { (20, 12) } else { (22, 14) };
        let len = head + be16(b, at) + be16(b, at + 2) + be32(b, at + 4);
        frames.push(b[..len].to_vec());
        b = &b[len..];
    }
    frames
}

/// Splits a Dubbo stream into its frames: a 16-byte head (magic 0xdabb, flag, status,
/// 8-byte id, 4-byte body length), then the body.
fn dubbo_frames(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while !b.is_empty() {
        assert_eq!(&b[..2], &[0xda, 0xbb], "Dubbo magic");
        let len = 16 + be32(b, 12);
        frames.push(b[..len].to_vec());
        b = &b[len..];
    }
    frames
}

/// The Bolt header map (SimpleMapSerializer: int32 length + bytes, key then value).
fn bolt_header_map(h: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < h.len() {
        let kl = be32(h, i);
        let k = String::from_utf8_lossy(&h[i + 4..i + 4 + kl]).into_owned();
        i += 4 + kl;
        let vl = be32(h, i);
        let v = String::from_utf8_lossy(&h[i + 4..i + 4 + vl]).into_owned();
        i += 4 + vl;
        out.push((k, v));
    }
    out
}

fn fixtures_dir() -> PathBuf {
    repo_root().join("tests/fixtures/xprotocol")
}

/// Compares a capture with its committed fixture; writes it instead when
/// `MOSN_WRITE_FIXTURES` is set, or when it is missing outside CI.
#[track_caller]
fn check_fixture(name: &str, bytes: &[u8]) {
    let path = fixtures_dir().join(name);
    let rewrite = std::env::var_os("MOSN_WRITE_FIXTURES").is_some();
    if rewrite || (!path.exists() && std::env::var_os("CI").is_none()) {
        std::fs::create_dir_all(fixtures_dir()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        eprintln!("wrote {} ({} bytes)", path.display(), bytes.len());
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        committed == bytes,
        "{name}: the fresh capture ({} bytes) differs from the committed fixture ({} \
         bytes). If a peer changed on purpose, rerun with MOSN_WRITE_FIXTURES=1 and \
         review the diff.\nfresh: {:02x?}",
        bytes.len(),
        committed.len(),
        bytes
    );
}

/// Runs the `capture` case of `client` through a relay to `server` and returns the
/// bytes (client to server, server to client).
fn capture(client: XClient, server: &XServer) -> (Vec<u8>, Vec<u8>) {
    let relay = Relay::start(server.addr());
    let (ok, v) = x_client(client, relay.port, &["capture"]);
    assert!(ok, "{client:?} capture: {v}");
    relay.finish()
}

#[test]
fn bolt_capture_matches_the_fixtures() {
    let Some(_) = node_peers() else { return };
    let s = XServer::bolt("bolt");
    let (up, down) = capture(XClient::BoltNode, &s);
    let reqs = bolt_frames(&up);
    let resps = bolt_frames(&down);
    assert_eq!((reqs.len(), resps.len()), (3, 3), "echo, fail, heartbeat");

    // echo("hello"): a request (type 1, cmdcode 1 RPC_REQUEST, ver2 1), id 1,
    // codec 1 (hessian2), timeout 3000, class SofaRequest, the header map
    // {service: "com.mosn.test.EchoService:1.0"}, then the hessian2 SofaRequest and
    // its argument.
    let r = &reqs[0];
    assert_eq!(&r[..5], &[0x01, 0x01, 0x00, 0x01, 0x01]);
    assert_eq!((be32(r, 5), r[9], be32(r, 10)), (1, 1, 3000));
    let (cl, hl) = (be16(r, 14), be16(r, 16));
    assert_eq!(
        &r[22..22 + cl],
        b"com.alipay.sofa.rpc.core.request.SofaRequest"
    );
    assert_eq!(
        bolt_header_map(&r[22 + cl..22 + cl + hl]),
        [(
            "service".to_string(),
            "com.mosn.test.EchoService:1.0".to_string()
        )]
    );
    assert!(contains(r, "hello") && contains(r, "echo"));

    // Its answer: type 0, cmdcode 2 RPC_RESPONSE, id 1, status 0 SUCCESS, class
    // SofaResponse, no header map.
    let a = &resps[0];
    assert_eq!(&a[..4], &[0x01, 0x00, 0x00, 0x02]);
    assert_eq!((be32(a, 5), a[9], be16(a, 10)), (1, 1, 0));
    assert_eq!(be16(a, 14), 0, "no header map in a hessian2 response");
    assert!(contains(
        a,
        "com.alipay.sofa.rpc.core.response.SofaResponse"
    ));
    assert!(contains(a, "bolt:hello"));

    // fail(): status 2 SERVER_EXCEPTION, an RpcServerException in the content.
    let e = &resps[1];
    assert_eq!((be32(e, 5), be16(e, 10)), (2, 2));
    assert!(contains(e, "RpcServerException") && contains(e, "requested failure"));

    // The heartbeat: cmdcode 0, id 3, timeout 3000, nothing after the 22-byte head;
    // its ack: a 20-byte response with cmdcode 0 and the same id.
    let h = &reqs[2];
    assert_eq!(h.len(), 22);
    assert_eq!((h[1], be16(h, 2), be32(h, 5), be32(h, 10)), (1, 0, 3, 3000));
    let k = &resps[2];
    assert_eq!(k.len(), 20);
    assert_eq!((k[1], be16(k, 2), be32(k, 5)), (0, 0, 3));

    for (name, frame) in [
        ("bolt_request.bin", &reqs[0]),
        ("bolt_response.bin", &resps[0]),
        ("bolt_request_fail.bin", &reqs[1]),
        ("bolt_response_error.bin", &resps[1]),
        ("bolt_heartbeat.bin", &reqs[2]),
        ("bolt_heartbeat_ack.bin", &resps[2]),
    ] {
        check_fixture(name, frame);
    }
}

/// Checks one Dubbo capture (echo, fail, heartbeat) and returns the six frames in
/// fixture order: request, response, fail request, error response, heartbeat, ack.
fn check_dubbo_capture(up: &[u8], down: &[u8], first_id: u64) -> Vec<Vec<u8>> {
    let reqs = dubbo_frames(up);
    let resps = dubbo_frames(down);
    assert_eq!((reqs.len(), resps.len()), (3, 3), "echo, fail, heartbeat");
    let id = |f: &[u8]| u64::from_be_bytes(f[4..12].try_into().unwrap());

    // echo: flag 0xc2 = request | two-way | serialization 2 (hessian2), status 0.
    let r = &reqs[0];
    assert_eq!(&r[..4], &[0xda, 0xbb, 0xc2, 0x00]);
    assert_eq!(id(r), first_id);
    for s in [
        "com.mosn.test.DubboEcho",
        "1.0.0",
        "echo",
        "Ljava/lang/String;",
        "hello",
    ] {
        assert!(contains(r, s), "{s} in the request");
    }
    // Its answer: flag 0x02, status 20 OK, the same id; the body starts with the
    // result flag 1 (RESPONSE_VALUE, hessian int 0x91) and then the string.
    let a = &resps[0];
    assert_eq!(&a[..4], &[0xda, 0xbb, 0x02, 20]);
    assert_eq!(id(a), first_id);
    assert_eq!(a[16], 0x91);
    assert!(contains(a, "dubbo:hello"));
    // fail: status 80 SERVER_ERROR, the message as a hessian string.
    let e = &resps[1];
    assert_eq!(&e[..4], &[0xda, 0xbb, 0x02, 80]);
    assert_eq!(id(e), first_id + 1);
    assert!(contains(e, "requested failure"));
    // The heartbeat: flag 0xe2 (request | two-way | event | hessian2), body "N"
    // (hessian null); the ack: flag 0x22 (event | hessian2), status 20, body "N".
    let h = &reqs[2];
    assert_eq!(&h[..4], &[0xda, 0xbb, 0xe2, 0x00]);
    assert_eq!(&h[12..], &[0, 0, 0, 1, b'N']);
    let k = &resps[2];
    assert_eq!(&k[..4], &[0xda, 0xbb, 0x22, 20]);
    assert_eq!(id(k), id(h));
    assert_eq!(&k[12..], &[0, 0, 0, 1, b'N']);
    vec![
        reqs[0].clone(),
        resps[0].clone(),
        reqs[1].clone(),
        resps[1].clone(),
        reqs[2].clone(),
        resps[2].clone(),
    ]
}

const DUBBO_FIXTURES: [&str; 6] = [
    "request.bin",
    "response.bin",
    "request_fail.bin",
    "response_error.bin",
    "heartbeat.bin",
    "heartbeat_ack.bin",
];

#[test]
fn dubbo_node_capture_matches_the_fixtures() {
    let Some(_) = node_peers() else { return };
    let s = XServer::dubbo("dubbo");
    let (up, down) = capture(XClient::DubboNode, &s);
    // sofa-rpc-node numbers its requests from 1.
    let frames = check_dubbo_capture(&up, &down, 1);
    for (name, frame) in DUBBO_FIXTURES.iter().zip(&frames) {
        check_fixture(&format!("dubbo_{name}"), frame);
    }
}

#[test]
fn dubbo_python_capture_matches_the_fixtures() {
    let Some(_) = node_peers() else { return };
    let Some(_) = dubbo_python() else { return };
    let s = XServer::dubbo("dubbo");
    let (up, down) = capture(XClient::DubboPython, &s);
    // dubbo-ssl-python numbers its requests (and heartbeats) from 0.
    let frames = check_dubbo_capture(&up, &down, 0);
    for (name, frame) in DUBBO_FIXTURES.iter().zip(&frames) {
        check_fixture(&format!("dubbo_py_{name}"), frame);
    }
}
