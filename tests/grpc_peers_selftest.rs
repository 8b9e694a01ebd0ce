//! The gRPC and HTTP/2 test peers on their own, without mosn-rs: every case of
//! tests/peers/grpc_client.py against tests/peers/grpc_server.py directly, and the
//! HTTP/2 command-line clients (h2load, nghttp, curl) against the same server. When
//! a proxy test fails, this tells whether the harness or the proxy is at fault.

mod common;
use common::peers::*;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The server, or None (skip) outside CI when the venv is not built.
fn server(health: bool) -> Option<GrpcServer> {
    venv_python()?;
    Some(GrpcServer::start(health))
}

#[track_caller]
fn expect_ok(port: u16, case: &[&str]) -> Value {
    let start = Instant::now();
    let (ok, v) = grpc_client(port, case);
    assert!(ok, "case {case:?} failed: {v}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "case {case:?} took {:?}",
        start.elapsed()
    );
    v
}

#[test]
fn unary_echo_with_text_and_binary_trailers() {
    let Some(s) = server(false) else { return };
    let v = expect_ok(s.port, &["unary"]);
    assert_eq!(v["code"], "OK");
    assert_eq!(v["text"], "hello");
    assert_eq!(v["trailing_metadata"]["x-trailer"], "done");
    assert_eq!(v["trailing_metadata"]["x-bin-bin"], "000102");
    let v = expect_ok(s.port, &["unary", "grüße"]);
    assert_eq!(v["text"], "grüße");
    assert_eq!(s.calls("Unary"), 2);
    // Each event names the client's address and its metadata.
    let call = s.wait_event("CALL Unary", Duration::from_secs(1)).unwrap();
    assert!(call.contains("\"peer\": \"ipv4:127.0.0.1:"), "{call}");
    assert!(call.contains("grpc-python"), "{call}");
}

#[test]
fn unary_status_codes_come_back_with_message_and_trailers() {
    let Some(s) = server(false) else { return };
    for (n, name) in [
        ("2", "UNKNOWN"),
        ("3", "INVALID_ARGUMENT"),
        ("5", "NOT_FOUND"),
        ("8", "RESOURCE_EXHAUSTED"),
        ("13", "INTERNAL"),
        ("14", "UNAVAILABLE"),
        ("16", "UNAUTHENTICATED"),
    ] {
        let v = expect_ok(s.port, &["unary_status", n]);
        assert_eq!(v["code"], name, "{v}");
        assert_eq!(v["details"], "requested", "{v}");
        assert_eq!(v["trailing_metadata"]["x-trailer"], "done", "{v}");
    }
}

#[test]
fn streaming_in_all_three_directions() {
    let Some(s) = server(false) else { return };
    let v = expect_ok(s.port, &["client_stream", "50"]);
    assert_eq!(v["count"], 50);
    let v = expect_ok(s.port, &["server_stream", "200"]);
    assert_eq!(v["received"], 200);
    // Ping-pong: each message goes out only after the previous echo came back.
    let v = expect_ok(s.port, &["bidi", "30"]);
    assert_eq!(v["round_trips"], 30);
    let v = expect_ok(s.port, &["client_stream", "0"]);
    assert_eq!(v["count"], 0);
    expect_ok(s.port, &["server_stream", "0"]);
}

#[test]
fn large_messages_up_to_the_8_mib_limit() {
    let Some(s) = server(false) else { return };
    let v = expect_ok(s.port, &["large", "1048576"]);
    assert_eq!(v["bytes"], 1048576);
    // Largest payload that fits in 8 MiB with the message's own framing.
    let v = expect_ok(s.port, &["large", "8388590"]);
    assert_eq!(v["bytes"], 8388590);
    let (ok, v) = grpc_client(s.port, &["large", "9000000"]);
    assert!(!ok, "{v}");
    assert_eq!(v["code"], "RESOURCE_EXHAUSTED", "{v}");
}

#[test]
fn deadline_ends_the_call_early_on_both_sides() {
    let Some(s) = server(false) else { return };
    let v = expect_ok(s.port, &["deadline", "300"]);
    assert_eq!(v["code"], "DEADLINE_EXCEEDED");
    let ms = v["elapsed_ms"].as_u64().unwrap();
    assert!((250..1500).contains(&ms), "{v}");
    // The server saw the call end before its 2 s sleep was over.
    let e = s.wait_event("CANCEL Unary", Duration::from_secs(2));
    assert!(e.is_some(), "{:?}", s.events());
}

#[test]
fn cancel_reaches_the_server() {
    let Some(s) = server(false) else { return };
    let v = expect_ok(s.port, &["cancel"]);
    assert_eq!(v["code"], "CANCELLED");
    assert_eq!(v["received"], 1);
    let e = s
        .wait_event("CANCEL ServerStream", Duration::from_secs(2))
        .unwrap_or_else(|| panic!("no cancel seen: {:?}", s.events()));
    // The server had sent one message, or two if the second was already under way.
    let info: Value = serde_json::from_str(e.trim_start_matches("CANCEL ServerStream ")).unwrap();
    let sent = info["sent"].as_u64().unwrap();
    assert!((1..=2).contains(&sent), "{e}");
}

#[test]
fn concurrent_calls_share_one_connection() {
    let Some(s) = server(false) else { return };
    let v = expect_ok(s.port, &["concurrent", "100"]);
    assert_eq!(v["succeeded"], 100);
    let peers = s.call_peers();
    assert_eq!(peers.len(), 100);
    let mut distinct = peers.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        1,
        "one channel, one connection: {distinct:?}"
    );
}

#[test]
fn health_service_and_its_switch() {
    let Some(s) = server(true) else { return };
    let v = expect_ok(s.port, &["health", ""]);
    assert_eq!(v["status"], "SERVING");
    expect_ok(s.port, &["health", "mosn.test.Echo"]);
    let v = expect_ok(s.port, &["health", "no.such.Service", "NOT_FOUND"]);
    assert_eq!(v["code"], "NOT_FOUND");
    let (ok, v) = grpc_client(s.port, &["health", "no.such.Service"]);
    assert!(!ok, "{v}");

    s.set_serving(false);
    let (ok, v) = grpc_client(s.port, &["health", ""]);
    assert!(!ok, "{v}");
    assert_eq!(v["status"], "NOT_SERVING");
    expect_ok(s.port, &["health", "mosn.test.Echo", "NOT_SERVING"]);
    s.set_serving(true);
    expect_ok(s.port, &["health", ""]);

    // Without --health the service does not exist.
    let Some(plain) = server(false) else { return };
    let v = expect_ok(plain.port, &["health", "", "UNIMPLEMENTED"]);
    assert_eq!(v["code"], "UNIMPLEMENTED");
}

#[test]
fn failures_still_print_one_json_line() {
    let Some(_) = venv_python() else { return };
    // Nothing listens there.
    let (ok, v) = grpc_client(free_port(), &["unary"]);
    assert!(!ok);
    assert_eq!(v["code"], "UNAVAILABLE", "{v}");
    let (ok, v) = grpc_client(free_port(), &["no_such_case"]);
    assert!(!ok);
    assert!(v["error"].as_str().unwrap().contains("unknown case"), "{v}");
}

#[test]
fn metadata_option_reaches_the_server() {
    let Some(s) = server(false) else { return };
    let target = format!("127.0.0.1:{}", s.port);
    let (ok, v) = grpc_client_args(&[
        "--metadata",
        "x-test=abc",
        "--authority",
        "echo.test",
        &target,
        "unary",
    ]);
    assert!(ok, "{v}");
    let call = s.wait_event("CALL Unary", Duration::from_secs(1)).unwrap();
    assert!(call.contains("\"x-test\": \"abc\""), "{call}");
}

#[test]
fn server_stops_on_sigterm_and_restarts_on_its_port() {
    let Some(mut s) = server(false) else { return };
    let port = s.port;
    let start = Instant::now();
    s.stop();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let (ok, _) = grpc_client(port, &["unary"]);
    assert!(!ok);
    let again = GrpcServer::start_on(port, false);
    assert_eq!(again.port, port);
    expect_ok(port, &["unary"]);
}

/// Writes one gRPC message frame (uncompressed) holding Msg{text}.
fn grpc_frame(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let mut msg = vec![0x0a, text.len() as u8];
    msg.extend_from_slice(text.as_bytes());
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    let path = dir.join("msg.bin");
    std::fs::write(&path, frame).unwrap();
    path
}

#[test]
fn http2_clients_exist_and_speak_h2c_to_the_grpc_server() {
    let (Some(h2load), Some(nghttp), Some(curl)) = (
        peer_program("h2load"),
        peer_program("nghttp"),
        peer_program("curl"),
    ) else {
        return;
    };
    let out = std::process::Command::new(&nghttp)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let Some(s) = server(false) else { return };
    let dir = tempfile::tempdir().unwrap();
    let body = grpc_frame(dir.path(), "hi");
    let url = format!("http://127.0.0.1:{}/mosn.test.Echo/Unary", s.port);

    // curl with HTTP/2 prior knowledge: a gRPC call by hand, status in the trailers.
    let out = std::process::Command::new(&curl)
        .args(["-sS", "--http2-prior-knowledge", "-o"])
        .arg(dir.path().join("resp.bin"))
        .args(["-D", "-", "-w", "%{http_version} %{http_code}\n"])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(&url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("2 200"), "{text}");
    assert!(text.contains("grpc-status: 0"), "{text}");
    assert!(text.contains("x-trailer: done"), "{text}");
    let resp = std::fs::read(dir.path().join("resp.bin")).unwrap();
    assert_eq!(
        resp,
        std::fs::read(&body).unwrap(),
        "the echo is the request frame"
    );

    // h2load: 40 gRPC calls over 2 connections, 4 streams at once on each.
    let out = std::process::Command::new(&h2load)
        .args(["-n", "40", "-c", "2", "-m", "4"])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg("-d")
        .arg(&body)
        .arg(&url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("40 succeeded, 0 failed, 0 errored"), "{text}");
    assert_eq!(s.calls("Unary"), 41, "{:?}", s.events().len());
}
