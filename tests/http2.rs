//! HTTP/2 through the real binary: h2c with prior knowledge and by `Auto` detection,
//! to HTTP/2 and HTTP/1.1 upstreams, driven by curl.

mod common;
use common::nginx::{nginx_program, Nginx};
use common::*;
use std::process::Command;

fn curl() -> Option<&'static str> {
    let path = "/usr/bin/curl";
    if std::path::Path::new(path).exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "curl missing; scripts/setup.sh installs it"
    );
    None
}

/// A proxy listener with the given protocols in front of `up`, plus an app listener
/// answering by direct response over `app_protocol` for chains.
fn config(port: u16, down: &str, up_proto: &str, cluster_host: &str, routes: &str) -> String {
    format!(
        r#"{{"servers": [{{"default_log_level": "WARN", "processor": 1,
  "routers": [{{"router_config_name": "r", "virtual_hosts": [{{"name": "h", "domains": ["*"], "routers": {routes}}}]}}],
  "listeners": [{{"name": "l", "address": "127.0.0.1:{port}", "bind_port": true,
    "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "{down}", "upstream_protocol": "{up_proto}", "router_config_name": "r"}}}}]}}]}}]}}],
  "cluster_manager": {{"clusters": [{{"name": "up", "hosts": [{{"address": "{cluster_host}"}}]}}]}}}}"#
    )
}

const TO_UP: &str = r#"[{"match": {"prefix": "/"}, "route": {"cluster_name": "up"}}]"#;

/// A mosn-rs with one listener ([`config`]: `down` in, `up_proto` out, `routes` to
/// cluster `up` of one host, `upstream`); its port.
fn start_proxy(down: &str, up_proto: &str, upstream: &str, routes: &str) -> (Mosn, u16) {
    let port = free_port();
    let m = Mosn::start(&config(port, down, up_proto, upstream, routes), &[port]);
    (m, port)
}

/// `curl -sS --http2-prior-knowledge ARGS URL`: h2c without an upgrade.
fn h2c(curl: &str, args: &[&str], url: String) -> std::process::Output {
    Command::new(curl)
        .args(["-sS", "--http2-prior-knowledge"])
        .args(args)
        .arg(url)
        .output()
        .unwrap()
}

#[test]
fn h2c_client_to_http1_upstream() {
    let Some(curl) = curl() else { return };
    let up = echo_upstream();
    let (_m, port) = start_proxy("Http2", "Http1", &up.addr.to_string(), TO_UP);
    let out = h2c(
        curl,
        &["-d", "hello h2", "-H", "X-Test: 1"],
        format!("http://127.0.0.1:{port}/p?q=1"),
    );
    let seen = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        seen.starts_with("POST /p?q=1 HTTP/1.1\r\n"),
        "{seen} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        seen.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
        "{seen}"
    );
    assert!(
        seen.to_ascii_lowercase().contains("x-test: 1\r\n"),
        "{seen}"
    );
    assert!(seen.ends_with("hello h2"), "{seen}");
}

#[test]
fn h2c_chain_through_an_http2_upstream() {
    let Some(curl) = curl() else { return };
    // front (h2 to h2) -> app (h2, answers itself)
    let (front, app) = (free_port(), free_port());
    let app_routes = r#"[{"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": "from h2 app"}}]"#;
    let _app = Mosn::start(&config(app, "Http2", "", "127.0.0.1:9", app_routes), &[app]);
    let _front = Mosn::start(
        &config(front, "Http2", "Http2", &format!("127.0.0.1:{app}"), TO_UP),
        &[front],
    );
    for _ in 0..3 {
        let out = h2c(curl, &[], format!("http://127.0.0.1:{front}/x"));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "from h2 app",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn auto_listener_serves_http1_and_h2c_on_one_port() {
    let Some(curl) = curl() else { return };
    let up = tagged_upstream("up");
    let (_m, port) = start_proxy("Auto", "Http1", &up.addr.to_string(), TO_UP);
    for version in ["--http2-prior-knowledge", "--http1.1"] {
        let out = Command::new(curl)
            .args([
                "-sS",
                version,
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{http_code}",
            ])
            .arg(format!("http://127.0.0.1:{port}/"))
            .output()
            .unwrap();
        let expected = if version == "--http1.1" {
            "1.1 200"
        } else {
            "2 200"
        };
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn h2_local_replies_and_large_bodies() {
    let Some(curl) = curl() else { return };
    let up = echo_upstream();
    let port = free_port();
    let routes = r#"[{"match": {"prefix": "/echo"}, "route": {"cluster_name": "up"}}]"#;
    let _m = Mosn::start(
        &config(port, "Http2", "Http1", &up.addr.to_string(), routes),
        &[port],
    );
    let out = h2c(
        curl,
        &["-o", "/dev/null", "-w", "%{http_code}"],
        format!("http://127.0.0.1:{port}/nope"),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    // 3 MiB through HTTP/2 flow control (64 KiB stream windows) and back.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    let payload: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &payload).unwrap();
    let out = h2c(
        curl,
        &["--data-binary", &format!("@{}", file.display())],
        format!("http://127.0.0.1:{port}/echo"),
    );
    assert!(
        out.stdout.ends_with(&payload),
        "echoed {} bytes: {}",
        out.stdout.len(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn http1_client_through_an_http2_hop_and_back_to_http1() {
    // client (HTTP/1.1) -> front (h1 in, h2 out) -> mid (h2 in, h1 out) -> echo upstream
    let up = echo_upstream();
    let (front, mid) = (free_port(), free_port());
    let _mid = Mosn::start(
        &config(mid, "Http2", "Http1", &up.addr.to_string(), TO_UP),
        &[mid],
    );
    let _front = Mosn::start(
        &config(front, "Http1", "Http2", &format!("127.0.0.1:{mid}"), TO_UP),
        &[front],
    );
    let r = http_exchange(front, b"POST /chain?x=1 HTTP/1.1\r\nHost: svc.local\r\nX-Keep: yes\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(r.status, 200);
    let seen = r.body_text();
    assert!(seen.starts_with("POST /chain?x=1 HTTP/1.1\r\n"), "{seen}");
    assert!(seen.contains("Host: svc.local\r\n"), "{seen}");
    assert!(
        seen.to_ascii_lowercase().contains("x-keep: yes\r\n"),
        "{seen}"
    );
    assert!(seen.ends_with("hello"), "{seen}");
    // Chunked request bodies cross too, and the connection stays usable.
    let mut s = connect(front);
    use std::io::Write;
    // Keep-alive across the HTTP/2 hop.
    s.write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, false).unwrap().status, 200);
    s.write_all(
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s, false).unwrap();
    // The echo upstream reads no chunked body; the head shows the body went on chunked.
    assert!(
        r.body_text().contains("Transfer-Encoding: chunked\r\n"),
        "{}",
        r.body_text()
    );
}

#[test]
fn cookie_crumbs_are_joined_for_http1_upstreams() {
    let Some(curl) = curl() else { return };
    let up = echo_upstream();
    let (_m, port) = start_proxy("Http2", "Http1", &up.addr.to_string(), TO_UP);
    let out = h2c(
        curl,
        &["-H", "Cookie: a=1", "-H", "Cookie: b=2"],
        format!("http://127.0.0.1:{port}/c"),
    );
    let seen = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(seen.contains("Cookie: a=1; b=2\r\n"), "{seen}");
}

/// An upstream that allows 2 concurrent streams gets more connections, not a queue.
#[test]
fn a_full_upstream_connection_gets_a_sibling() {
    let Some(h2load) = common::peers::peer_program("h2load") else {
        return;
    };
    let (front, app, app_admin) = (free_port(), free_port(), free_port());
    let slow_app = Upstream::start(|mut s| {
        while read_request(&mut s).is_some() {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if std::io::Write::write_all(&mut s, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .is_err()
            {
                return;
            }
        }
    });
    // app: h2 in (2 streams per connection), HTTP/1 out to a slow server.
    let app_config = config(app, "Http2", "Http1", &slow_app.addr.to_string(), TO_UP)
        .replace(r#""router_config_name": "r"}"#, r#""router_config_name": "r", "http2": {"max_concurrent_streams": 2}}"#)
        .replace(r#""cluster_manager""#, &format!(r#""admin": {{"address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {app_admin}}}}}}}, "cluster_manager""#));
    let _app = Mosn::start(&app_config, &[app, app_admin]);
    let _front = Mosn::start(
        &config(front, "Http2", "Http2", &format!("127.0.0.1:{app}"), TO_UP),
        &[front],
    );
    let out = std::process::Command::new(h2load)
        .args(["-n", "40", "-c", "1", "-m", "8"])
        .arg(format!("http://127.0.0.1:{front}/"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("40 succeeded"), "{text}");
    let connections = admin_stats(app_admin)["listener"]["l"]["downstream_connection_total"]
        .as_u64()
        .unwrap();
    assert!(
        connections >= 3,
        "8 concurrent streams over connections of 2 streams used {connections} connection(s)"
    );
}

/// h2load (`-n requests -c connections -m streams`) through a proxy with an HTTP/2
/// upstream (`down`: its listener's protocol, `Http2`, or `Http1` driven by `h2load
/// --h1`) to an nginx that closes each HTTP/2 connection with GOAWAY after
/// `keepalive_requests` streams (streams it got after that are never processed);
/// h2load's summary and the nginx, or None when h2load or nginx is missing. With
/// `bodies`, nginx reads each request's body (it proxies to an HTTP/1 server of its
/// own) and logs it, one line each, in `bodies.log`.
fn through_goaway_upstream(
    down: &str,
    keepalive_requests: u32,
    bodies: bool,
    h2load_args: &[&str],
) -> Option<(String, Nginx)> {
    let h2load = common::peers::peer_program("h2load")?;
    let nginx_bin = nginx_program()?;
    let up_port = free_port();
    let location = if bodies {
        let back_port = free_port();
        format!(
            "client_body_buffer_size 128k; access_log bodies.log body;
    proxy_pass http://127.0.0.1:{back_port}; }} }}
  server {{ listen 127.0.0.1:{back_port}; location / {{ return 200 \"nginx h1\"; }} }}"
        )
    } else {
        "return 200 \"nginx h2\"; } }".to_string()
    };
    let nginx = Nginx::start(
        &nginx_bin,
        &format!(
            "access_log off; keepalive_requests {keepalive_requests}; log_format body '$request_body';
  server {{ listen 127.0.0.1:{up_port} http2; location / {{ {location}"
        ),
        &[up_port],
    );
    let (_m, port) = start_proxy(down, "Http2", &format!("127.0.0.1:{up_port}"), TO_UP);
    let h1 = down == "Http1";
    let h2load = |args: &[&str]| {
        let out = std::process::Command::new(&h2load)
            .args(h1.then_some("--h1"))
            .args(args)
            .arg(format!("http://127.0.0.1:{port}/"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // One request first: the proxy learns how many streams nginx takes on a connection
    // (until then each stream may open a connection of its own, and none is refused).
    let first = h2load(&["-n", "1"]);
    assert!(first.contains("1 succeeded, 0 failed"), "{first}");
    let text = h2load(h2load_args);
    Some((text, nginx))
}

/// nginx closes an HTTP/2 connection with GOAWAY every few requests; streams it never
/// processed are sent again on a new connection, so no request fails.
#[test]
fn upstream_goaway_loses_no_bodyless_request() {
    let Some((text, _)) =
        through_goaway_upstream("Http2", 7, false, &["-n", "300", "-c", "2", "-m", "8"])
    else {
        return;
    };
    assert!(text.contains("300 succeeded, 0 failed"), "{text}");
}

/// The worst case of the GOAWAY race, made deterministic: nginx processes only the
/// first stream of each connection (GOAWAY with last stream id 1 as soon as it reads
/// it), so of the 16 streams sent at once on a connection 15 are turned away, every
/// time. A request turned away keeps losing to the others unless it is the first
/// stream of a connection: it must get that (on a connection of its own) before its
/// resends run out.
#[test]
fn upstream_serving_one_stream_per_connection_loses_no_request() {
    let Some((text, _)) =
        through_goaway_upstream("Http2", 1, false, &["-n", "48", "-c", "3", "-m", "16"])
    else {
        return;
    };
    assert!(text.contains("48 succeeded, 0 failed"), "{text}");
}

/// The same for HTTP/1.1 clients of an HTTP/1 listener with an HTTP/2 upstream: 32
/// clients' requests share the proxy's upstream connections, where nginx processes
/// only the first stream; the others are sent again (on a connection of their own
/// after two turns), never answered 503 or 502.
#[test]
fn http1_clients_lose_no_request_to_an_upstream_goaway() {
    let Some((text, _)) = through_goaway_upstream("Http1", 1, false, &["-n", "640", "-c", "32"])
    else {
        return;
    };
    assert!(text.contains("640 succeeded, 0 failed"), "{text}");
    assert!(text.contains("status codes: 640 2xx"), "{text}");
}

/// HTTP/1.1 clients' POSTs with bodies of 20 KiB (several DATA frames) through the
/// same GOAWAY race: a request turned away is sent again with its whole body, which
/// the proxy kept, and nginx gets every body intact.
#[test]
fn http1_posts_turned_away_by_an_upstream_goaway_are_resent_whole() {
    let dir = tempfile::tempdir().unwrap();
    let body: String = (0..20 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let file = dir.path().join("body");
    std::fs::write(&file, &body).unwrap();
    let file = file.to_str().unwrap();
    let Some((text, nginx)) =
        through_goaway_upstream("Http1", 1, true, &["-n", "320", "-c", "16", "-d", file])
    else {
        return;
    };
    assert!(text.contains("320 succeeded, 0 failed"), "{text}");
    assert!(text.contains("status codes: 320 2xx"), "{text}");
    let log = std::fs::read_to_string(nginx.path().join("bodies.log")).unwrap();
    // The warm-up request has no body.
    let lines: Vec<&str> = log.lines().filter(|l| *l != "-").collect();
    assert_eq!(lines.len(), 320, "nginx got {} bodies", lines.len());
    assert!(lines.iter().all(|l| *l == body), "a body arrived altered");
}

/// A slow HTTP/2 reader slows the upstream instead of filling the proxy's memory:
/// the proxy holds at most about one stream window of the body.
#[test]
fn a_slow_h2_reader_keeps_proxy_memory_bounded() {
    let Some(curl) = curl() else { return };
    const SIZE: usize = 64 * 1024 * 1024;
    let up = Upstream::start(|mut s| {
        if read_request(&mut s).is_none() {
            return;
        }
        let _ = std::io::Write::write_all(
            &mut s,
            format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes(),
        );
        let block = vec![b'x'; 256 * 1024];
        for _ in 0..SIZE / block.len() {
            if std::io::Write::write_all(&mut s, &block).is_err() {
                return;
            }
        }
    });
    let (m, port) = start_proxy("Http2", "Http1", &up.addr.to_string(), TO_UP);
    let before = m.rss_kib();
    // 2 MiB/s for 3 s: about 6 MiB of 64 read, the rest held back by flow control.
    let out = h2c(
        curl,
        &[
            "--limit-rate",
            "2M",
            "--max-time",
            "3",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
        ],
        format!("http://127.0.0.1:{port}/big"),
    );
    let downloaded: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        downloaded > 1024 * 1024 && downloaded < 16 * 1024 * 1024,
        "downloaded {downloaded}"
    );
    let grown = m.peak_rss_kib().saturating_sub(before);
    assert!(
        grown < 8 * 1024,
        "the proxy grew by {grown} KiB while the client read slowly"
    );
}

/// An HTTP/1.1 upstream that promises 100 bytes of body, sends 3 and closes.
fn upstream_dying_mid_body() -> Upstream {
    Upstream::start(|mut s| {
        if read_request(&mut s).is_some() {
            let _ = std::io::Write::write_all(
                &mut s,
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc",
            );
        }
    })
}

/// An upstream that dies mid-body: the client's stream is reset (not ended cleanly).
#[test]
fn an_upstream_failing_mid_body_resets_the_client_stream() {
    let Some(curl) = curl() else { return };
    let up = upstream_dying_mid_body();
    let (_m, port) = start_proxy("Http2", "Http1", &up.addr.to_string(), TO_UP);
    let out = h2c(
        curl,
        &["--max-time", "5"],
        format!("http://127.0.0.1:{port}/"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a truncated body must not look complete"
    );
    assert!(
        err.contains("INTERNAL_ERROR") || err.contains("stream"),
        "{err}"
    );
}

/// An HTTP/2 upstream that resets a stream mid-response: the reset reaches the client.
#[test]
fn an_h2_upstream_reset_mid_response_reaches_the_client() {
    let Some(curl) = curl() else { return };
    // client -> front (h2 -> h2) -> mid (h2 -> h1) -> a server that dies mid-body;
    // mid resets its stream, and front must pass that reset on.
    let up = upstream_dying_mid_body();
    let (front, mid) = (free_port(), free_port());
    let _mid = Mosn::start(
        &config(mid, "Http2", "Http1", &up.addr.to_string(), TO_UP),
        &[mid],
    );
    let _front = Mosn::start(
        &config(front, "Http2", "Http2", &format!("127.0.0.1:{mid}"), TO_UP),
        &[front],
    );
    let out = h2c(
        curl,
        &["--max-time", "5"],
        format!("http://127.0.0.1:{front}/"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a reset stream must not look complete"
    );
    assert!(err.contains("INTERNAL_ERROR"), "{err}");
}
