//! TLS through the real binary: listener `tls_context` and `tls_context_set` (SNI),
//! ALPN choosing HTTP/2 or HTTP/1.1, client certificates (mTLS, SAN allow-list),
//! version, cipher and curve limits, plaintext on a TLS port, the `inspector`
//! (plaintext and TLS on one port), handshake timeouts, `filter_chain_match`, TLS to
//! upstreams (nginx, and mosn-rs itself), chains through an intermediate CA, TLS around
//! `tcp_proxy`, large bodies and keep-alive over TLS, SIGTERM with TLS connections,
//! certificate reload, config errors, and MOSN's own TLS example configs.
//!
//! Certificates are made per test by tests/common/tls.rs (openssl). Clients: curl,
//! `openssl s_client`, h2load; upstreams: the harness's HTTP/1 servers and nginx
//! (tests/common/nginx.rs).

mod common;
use common::cli::{refused_with_exit_2, run_on_config};
use common::nginx::{nginx_program, Nginx};
use common::peers::peer_program;
use common::tls::{curl, run_limited, CertPair, CurlOut, Pki, SClient, Usage};
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---- configs ---------------------------------------------------------------------

/// The proxy filter of a chain.
fn proxy_filter(router: &str, down: &str, up: &str) -> Value {
    json!({"type": "proxy", "config": {
        "downstream_protocol": down, "upstream_protocol": up, "router_config_name": router}})
}

/// A filter chain: an HTTP proxy (`down` in, HTTP/1.1 out) to `router`, with an
/// optional `tls_context` and `filter_chain_match`.
fn chain(router: &str, down: &str, tls: Option<Value>, matching: Option<Value>) -> Value {
    let mut c = json!({"filters": [proxy_filter(router, down, "Http1")]});
    if let Some(t) = tls {
        c["tls_context"] = t;
    }
    if let Some(m) = matching {
        c["filter_chain_match"] = m;
    }
    c
}

/// A router `name` sending every path to `cluster`.
fn router_to(name: &str, cluster: &str) -> Value {
    json!({"router_config_name": name, "virtual_hosts": [{"name": name, "domains": ["*"],
        "routers": [{"match": {"prefix": "/"}, "route": {"cluster_name": cluster}}]}]})
}

fn cluster(name: &str, host: SocketAddr) -> Value {
    json!({"name": name, "type": "SIMPLE", "lb_type": "LB_ROUNDROBIN",
        "hosts": [{"address": host.to_string()}]})
}

/// One server with listener `l` on `port` (its chains given), the routers and
/// clusters given, and an admin listener.
fn config(
    port: u16,
    admin: u16,
    chains: Vec<Value>,
    routers: Vec<Value>,
    clusters: Vec<Value>,
) -> Value {
    json!({
        "servers": [{
            "default_log_path": "stderr", "default_log_level": "DEBUG", "processor": 2,
            "routers": routers,
            "listeners": [{"name": "l", "address": format!("127.0.0.1:{port}"), "bind_port": true,
                "filter_chains": chains}]
        }],
        "cluster_manager": {"clusters": clusters},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}
    })
}

/// [`config`] with one chain (`down` in, over `tls` when given) sending every path to
/// cluster `up` of one host, `upstream`.
fn one_chain_config(
    port: u16,
    admin: u16,
    down: &str,
    tls: Option<Value>,
    upstream: SocketAddr,
) -> Value {
    config(
        port,
        admin,
        vec![chain("r", down, tls, None)],
        vec![router_to("r", "up")],
        vec![cluster("up", upstream)],
    )
}

/// A running proxy and its listener port.
struct Proxy {
    port: u16,
    admin: u16,
    mosn: Mosn,
}

impl Proxy {
    fn start(config: &Value, port: u16) -> Proxy {
        let admin = config["admin"]["address"]["socket_address"]["port_value"]
            .as_u64()
            .unwrap() as u16;
        Proxy {
            port,
            admin,
            mosn: Mosn::start(&config.to_string(), &[port, admin]),
        }
    }

    fn log(&self) -> String {
        self.mosn.log_text()
    }

    /// The log written since `from` (a length of [`Proxy::log`] taken before).
    fn log_since(&self, from: usize) -> String {
        let text = self.log();
        text.get(from..).unwrap_or(&text).to_string()
    }

    /// [`Proxy::log_since`] once `wanted` holds for it, or when `limit` has passed.
    fn log_since_when(
        &self,
        from: usize,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.log_since(from);
            if wanted(&log) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One listener, one chain (`down` in) with `tls`, proxying to `upstream`.
fn single(upstream: SocketAddr, down: &str, tls: Value) -> Proxy {
    let (port, admin) = (free_port(), free_port());
    Proxy::start(
        &one_chain_config(port, admin, down, Some(tls), upstream),
        port,
    )
}

/// A listener `tls_context` serving `pair`.
fn server_tls(pair: &CertPair) -> Value {
    json!({"status": true, "cert_chain": pair.cert_path(), "private_key": pair.key_path()})
}

/// [`server_tls`] that requires a client certificate signed by the test CA.
fn mtls_server_tls(pki: &Pki, pair: &CertPair) -> Value {
    let mut tls = server_tls(pair);
    tls["ca_cert"] = json!(pki.ca_cert_path());
    tls["verify_client"] = json!(true);
    tls["require_client_cert"] = json!(true);
    tls
}

/// A cluster `tls_context` that verifies the upstream's certificate against `ca` for
/// `server_name`.
fn verifying_tls(ca: &str, server_name: &str) -> Value {
    json!({"status": true, "ca_cert": ca, "server_name": server_name})
}

/// `tls` with `key` set to `value`.
fn with(mut tls: Value, key: &str, value: impl Into<Value>) -> Value {
    tls[key] = value.into();
    tls
}

// ---- clients ---------------------------------------------------------------------

/// The openssl Pki and curl, or None (the test skips itself outside CI).
fn tools() -> Option<Pki> {
    let pki = Pki::new()?;
    peer_program("curl")?;
    Some(pki)
}

/// [`tools`] and nginx, or None (the test skips itself outside CI).
fn tools_and_nginx() -> Option<(Pki, PathBuf)> {
    let pki = tools()?;
    Some((pki, nginx_program()?))
}

/// Asserts that less than `limit` has passed since `started`.
#[track_caller]
fn assert_took_less_than(started: Instant, limit: Duration) {
    let took = started.elapsed();
    assert!(took < limit, "took {took:?}");
}

/// What `curl https://NAME:PORT/` (trusting the test CA, NAME resolved to 127.0.0.1)
/// got: body, status (0: none), HTTP version ("1.1", "2"), curl's exit and errors.
#[derive(Debug)]
struct Got {
    body: String,
    status: u16,
    version: String,
    curl: CurlOut,
}

/// Checks of what curl got. Each panics with `context` (what was asked, a log) and
/// everything curl got.
impl Got {
    fn ok(&self) -> bool {
        self.curl.ok()
    }

    /// A 200, whatever the body.
    #[track_caller]
    fn assert_200(&self, context: &str) {
        assert_eq!(self.status, 200, "{context}\n{self:?}");
    }

    /// A 200 with `body`.
    #[track_caller]
    fn assert_body(&self, body: &str, context: &str) {
        assert_eq!(
            (self.status, self.body.as_str()),
            (200, body),
            "{context}\n{self:?}"
        );
    }

    /// A 200 over HTTP `version` ("1.1", "2"), whatever the body.
    #[track_caller]
    fn assert_200_over(&self, version: &str) {
        assert_eq!(
            (self.status, self.version.as_str()),
            (200, version),
            "{self:?}"
        );
    }

    /// A 200 over HTTP `version` with `body`.
    #[track_caller]
    fn assert_body_over(&self, version: &str, body: &str, context: &str) {
        assert_eq!(
            (self.status, self.version.as_str(), self.body.as_str()),
            (200, version, body),
            "{context}\n{self:?}"
        );
    }

    /// Refused: curl failed and no 200 came (the handshake failed, or the request
    /// after it).
    #[track_caller]
    fn assert_refused(&self, context: &str) {
        assert!(
            !self.ok() && self.status != 200,
            "{context}: not refused\n{self:?}"
        );
    }

    /// Refused before any HTTP response: curl failed, no status at all.
    #[track_caller]
    fn assert_no_response(&self) {
        assert!(!self.ok() && self.status == 0, "{self:?}");
    }

    /// A 502 or 503: the proxy could not use its upstream.
    #[track_caller]
    fn assert_upstream_failed(&self, context: &str) {
        assert!(
            matches!(self.status, 502 | 503),
            "{context}: 502 or 503 expected\n{self:?}"
        );
    }
}

const WRITE_OUT: &str = "\n@@%{http_code} %{http_version}";

fn parse_curl(out: CurlOut) -> Got {
    let (body, tail) = out
        .stdout
        .rsplit_once("\n@@")
        .map(|(b, t)| (b.to_string(), t.to_string()))
        .unwrap_or_else(|| (out.stdout.clone(), String::new()));
    let mut parts = tail.split_whitespace();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let version = parts.next().unwrap_or("").to_string();
    Got {
        body,
        status,
        version,
        curl: out,
    }
}

/// curl over TLS to `name` on the proxy's `port`, trusting `ca`; `extra` curl args
/// (e.g. `--http2`, `--cert`).
fn https(ca: &Path, name: &str, port: u16, path: &str, extra: &[&str]) -> Got {
    let resolve = format!("{name}:{port}:127.0.0.1");
    let url = format!("https://{name}:{port}{path}");
    let mut args = vec![
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-w",
        WRITE_OUT,
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    parse_curl(curl(&args).expect("curl"))
}

/// `GET /` of server.test on `port` over TLS (trusting the test CA), presenting
/// `client`'s certificate.
fn https_with_cert(pki: &Pki, port: u16, client: &CertPair) -> Got {
    let (cert, key) = (client.cert_path(), client.key_path());
    let args = ["--cert", &cert, "--key", &key];
    https(pki.ca_cert(), "server.test", port, "/", &args)
}

/// curl over plaintext to 127.0.0.1:`port`.
fn http(port: u16, path: &str, extra: &[&str]) -> Got {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut args = vec!["-w", WRITE_OUT];
    args.extend_from_slice(extra);
    args.push(&url);
    parse_curl(curl(&args).expect("curl"))
}

/// `CN = name` as openssl prints a subject.
fn cn(name: &str) -> String {
    format!("CN = {name}")
}

/// `openssl s_client` to `port` with `args` completes no handshake.
#[track_caller]
fn assert_no_handshake(pki: &Pki, port: u16, args: &[&str], what: &str) {
    let s = pki.s_client(port, args);
    assert!(!s.handshake_done(), "{what}: {}", s.text());
}

/// `openssl s_client` to `port` with `args` completes a handshake with `protocol`
/// (e.g. "TLSv1.3"); what it printed.
#[track_caller]
fn assert_handshake_with(pki: &Pki, port: u16, args: &[&str], protocol: &str) -> SClient {
    let s = pki.s_client(port, args);
    assert_eq!(s.protocol().as_deref(), Some(protocol), "{}", s.text());
    s
}

/// `openssl s_client` to `port` with SNI `sni` is shown the certificate of subject
/// `CN = subject_cn`; what it printed.
#[track_caller]
fn assert_certificate_for_sni(pki: &Pki, port: u16, sni: &str, subject_cn: &str) -> SClient {
    let s = pki.s_client(port, &["-servername", sni]);
    assert_eq!(s.subject(), Some(cn(subject_cn)), "SNI {sni}: {}", s.text());
    s
}

// ---- the certificates themselves -------------------------------------------------

#[test]
fn test_pki_makes_the_certificates_the_tests_need() {
    let Some(pki) = Pki::new() else { return };
    let ca = pki.ca_cert().to_path_buf();
    let server = pki.server(
        "server",
        "server.test",
        &["DNS:server.test", "IP:127.0.0.1"],
    );
    let wildcard = pki.server("wild", "*.b.example.com", &["DNS:*.b.example.com"]);
    let client = pki.client("client", "client", &["DNS:client.example.com"]);
    let expired = pki.expired("old", "old.test", &["DNS:old.test"], Usage::Server);
    let selfsigned = pki.self_signed("self", "self.test", &["DNS:self.test"]);
    let other_ca = pki.new_ca("other-ca", "another CA");

    for good in [&server, &wildcard, &client] {
        assert!(
            pki.verifies(&ca, &good.cert),
            "{}",
            pki.describe(&good.cert)
        );
        assert!(!pki.verifies(&other_ca.cert, &good.cert));
    }
    let inter = pki.intermediate("inter", "mosn-rs test intermediate");
    let chained = pki.issued_by(
        &inter,
        "chained",
        "chained.test",
        &["DNS:chained.test"],
        Usage::Server,
    );
    assert!(pki.verifies(&ca, &inter.cert));
    assert!(
        pki.verifies(&ca, &chained.cert),
        "{}",
        pki.describe(&chained.cert)
    );
    assert_eq!(chained.cert_pem().matches("BEGIN CERTIFICATE").count(), 2);
    assert!(!pki.verifies(&other_ca.cert, &chained.cert));
    assert!(!pki.verifies(&ca, &expired.cert), "expired verifies");
    assert!(!pki.verifies(&ca, &selfsigned.cert), "self-signed verifies");

    let text = pki.describe(&server.cert);
    assert!(text.contains("subject=CN = server.test"), "{text}");
    assert!(
        text.contains("DNS:server.test, IP Address:127.0.0.1"),
        "{text}"
    );
    assert!(pki
        .describe(&expired.cert)
        .contains("notAfter=Jan  2 00:00:00 2020 GMT"));
    assert!(pki
        .describe(&client.cert)
        .contains("DNS:client.example.com"));
    // EC P-256 keys, each certificate its own serial.
    assert!(std::fs::read_to_string(&server.key)
        .unwrap()
        .contains("PRIVATE KEY"));
    assert_ne!(
        pki.describe(&server.cert).lines().nth(1),
        pki.describe(&client.cert).lines().nth(1)
    );
    // The folder goes with the Pki.
    let dir = pki.path().to_path_buf();
    drop(pki);
    assert!(!dir.exists());
}

// ---- listener TLS ----------------------------------------------------------------

#[test]
fn curl_over_tls_through_the_proxy_to_a_plain_upstream() {
    let Some(pki) = tools() else { return };
    let pair = pki.server(
        "server",
        "server.test",
        &["DNS:server.test", "IP:127.0.0.1"],
    );
    let up = echo_upstream();
    let p = single(up.addr, "Http1", server_tls(&pair));

    let got = https(pki.ca_cert(), "server.test", p.port, "/hello", &[]);
    assert!(got.ok(), "{got:?}\n{}", p.log());
    assert_eq!(got.status, 200);
    assert_eq!(got.version, "1.1");
    assert!(
        got.body.starts_with("GET /hello HTTP/1.1\r\n"),
        "{}",
        got.body
    );
    // The certificate names 127.0.0.1 too.
    let url = format!("https://127.0.0.1:{}/ip", p.port);
    let out = curl(&["--cacert", &pki.ca_cert_path(), "-w", WRITE_OUT, &url]).unwrap();
    parse_curl(out).assert_200("");

    // A client that does not trust the test CA refuses the proxy's certificate.
    let other = pki.new_ca("other-ca", "another CA");
    https(&other.cert, "server.test", p.port, "/", &[]).assert_no_response();
    // ... and the proxy still serves.
    https(pki.ca_cert(), "server.test", p.port, "/again", &[]).assert_200("");
}

#[test]
fn certificate_paths_relative_to_the_config_file_and_inline_pem() {
    let Some(pki) = tools() else { return };
    let pair = pki.server("server", "server.test", &["DNS:server.test"]);
    let up = tagged_upstream("relative");
    let (port, admin) = (free_port(), free_port());
    // The config sits in conf/, its certificate in conf/certs/ (a relative path), the
    // key inline as PEM text.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(conf.join("certs")).unwrap();
    std::fs::copy(&pair.cert, conf.join("certs/server.pem")).unwrap();
    let tls =
        json!({"status": true, "cert_chain": "certs/server.pem", "private_key": pair.key_pem()});
    let cfg = one_chain_config(port, admin, "Http1", Some(tls), up.addr);
    let file = conf.join("config.json");
    std::fs::write(&file, cfg.to_string()).unwrap();
    // Started from another working directory.
    let m = Mosn::start_file(&file, dir, &[port, admin]);
    https(pki.ca_cert(), "server.test", port, "/", &[]).assert_body("relative", &m.log_text());
}

#[test]
fn sni_picks_the_certificate_of_tls_context_set_and_the_first_is_the_default() {
    let Some(pki) = tools() else { return };
    let a = pki.server("a", "a.example.com", &["DNS:a.example.com"]);
    let b = pki.server("b", "*.b.example.com", &["DNS:*.b.example.com"]);
    // Its certificate does not name alias.test; its server_name does.
    let c = pki.server("c", "c-cert", &["DNS:c.example.com"]);
    let up = tagged_upstream("sni");
    let (port, admin) = (free_port(), free_port());
    let mut ch = chain("r", "Http1", None, None);
    let ctx_c = with(server_tls(&c), "server_name", "alias.test");
    ch["tls_context_set"] = json!([server_tls(&a), server_tls(&b), ctx_c]);
    let cfg = config(
        port,
        admin,
        vec![ch],
        vec![router_to("r", "up")],
        vec![cluster("up", up.addr)],
    );
    let p = Proxy::start(&cfg, port);

    for (sni, subject) in [
        ("a.example.com", "a.example.com"),
        ("x.b.example.com", "*.b.example.com"),
        ("other.b.example.com", "*.b.example.com"),
        ("c.example.com", "c-cert"),
        ("alias.test", "c-cert"),
        ("A.EXAMPLE.COM", "a.example.com"),
        ("ALIAS.test", "c-cert"),
        // Unknown names and no SNI at all: the first context.
        ("unknown.test", "a.example.com"),
        ("b.example.com", "a.example.com"),
    ] {
        let s = assert_certificate_for_sni(&pki, p.port, sni, subject);
        assert!(s.handshake_done(), "SNI {sni}: {}", s.text());
    }
    let s = pki.s_client(p.port, &["-noservername"]);
    assert_eq!(s.subject(), Some(cn("a.example.com")), "{}", s.text());

    // curl verifies each name against the certificate it gets.
    for name in ["a.example.com", "x.b.example.com", "c.example.com"] {
        https(pki.ca_cert(), name, p.port, "/", &[]).assert_body("sni", name);
    }
}

#[test]
fn alpn_gives_http2_or_http1_with_auto_and_h2load_succeeds() {
    let Some(pki) = tools() else { return };
    let pair = pki.server(
        "server",
        "server.test",
        &["DNS:server.test", "IP:127.0.0.1"],
    );
    let up = tagged_upstream("alpn");
    let get = |port: u16, extra: &[&str]| https(pki.ca_cert(), "server.test", port, "/", extra);

    let auto = single(up.addr, "Auto", server_tls(&pair));
    get(auto.port, &["--http2"]).assert_body_over("2", "alpn", "");
    get(auto.port, &["--http1.1"]).assert_body_over("1.1", "alpn", "");

    // Http2 downstream: h2 by ALPN.
    let h2 = single(up.addr, "Http2", server_tls(&pair));
    get(h2.port, &["--http2"]).assert_200_over("2");

    // An Http1 chain never offers h2: curl --http2 falls back to HTTP/1.1.
    let h1 = single(up.addr, "Http1", server_tls(&pair));
    get(h1.port, &["--http2"]).assert_200_over("1.1");

    // The context's own alpn list limits what is offered.
    let only_h1 = single(up.addr, "Auto", with(server_tls(&pair), "alpn", "http/1.1"));
    get(only_h1.port, &["--http2"]).assert_200_over("1.1");

    // A client that offers no ALPN: Auto tells HTTP/1.1 by its first bytes.
    get(auto.port, &["--no-alpn", "--http1.1"]).assert_body_over("1.1", "alpn", "");

    // h2load over TLS: h2 and (--h1) HTTP/1.1, every request 2xx.
    let Some(h2load) = peer_program("h2load") else {
        return;
    };
    for extra in [&[][..], &["--h1"][..]] {
        let mut cmd = Command::new(&h2load);
        cmd.args(["-n100", "-c2"])
            .args(extra)
            .arg(format!("https://127.0.0.1:{}/", auto.port));
        let out = run_limited(cmd, Duration::from_secs(30));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("100 succeeded") && text.contains("status codes: 100 2xx"),
            "h2load {extra:?}:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let proto = if extra.is_empty() { "h2" } else { "http/1.1" };
        assert!(
            text.contains(&format!("Application protocol: {proto}")),
            "h2load {extra:?}:\n{text}"
        );
    }
}

#[test]
fn an_http1_chain_does_not_negotiate_h2_even_when_its_alpn_names_it() {
    let Some(pki) = tools() else { return };
    let pair = pki.server("server", "server.test", &["DNS:server.test"]);
    let up = tagged_upstream("alpn");
    // An Http1 chain does not offer h2 even when its context's alpn names it.
    let tls = with(server_tls(&pair), "alpn", "h2,http/1.1");
    let h1_named = single(up.addr, "Http1", tls);
    let got = https(
        pki.ca_cert(),
        "server.test",
        h1_named.port,
        "/",
        &["--http2"],
    );
    got.assert_body_over(
        "1.1",
        "alpn",
        &format!("Http1 chain with alpn \"h2,http/1.1\"\n{}", h1_named.log()),
    );
}

#[test]
fn certificate_chains_through_an_intermediate_ca() {
    let Some((pki, nginx)) = tools_and_nginx() else {
        return;
    };
    let inter = pki.intermediate("inter", "mosn-rs test intermediate");
    let server = pki.issued_by(
        &inter,
        "server",
        "server.test",
        &["DNS:server.test"],
        Usage::Server,
    );
    let client = pki.issued_by(
        &inter,
        "client",
        "client",
        &["DNS:client.example.com"],
        Usage::Client,
    );
    let upstream = pki.issued_by(
        &inter,
        "up",
        "upstream.test",
        &["DNS:upstream.test"],
        Usage::Server,
    );
    let up = tagged_upstream("chained");

    // Downstream: the proxy sends its chain; the client trusts the root only, and
    // presents its own chain to a listener that verifies against the root.
    let p = single(up.addr, "Http1", mtls_server_tls(&pki, &server));
    https_with_cert(&pki, p.port, &client).assert_body("chained", &p.log());

    // Upstream: nginx sends a chain; a cluster trusting the root verifies it, and a
    // cluster presents its chain to the proxy above.
    let (_nginx, nginx_port) = start_nginx_tls(&nginx, &upstream);
    let ca = pki.ca_cert_path();
    let outer = upstream_tls_proxy(
        vec![
            tls_cluster(
                "nginx",
                local(nginx_port),
                None,
                verifying_tls(&ca, "upstream.test"),
            ),
            tls_cluster(
                "mtls",
                local(p.port),
                None,
                with_client_cert(verifying_tls(&ca, "server.test"), &client),
            ),
        ],
        "Http1",
    );
    http(outer.port, "/nginx/", &[]).assert_body(NGINX_TLS_H1, &outer.log());
    http(outer.port, "/mtls/", &[]).assert_body("chained", &outer.log());
}

/// Asserts that `got` was a 200 and that the listener's byte counters (within 2 s)
/// count its connection both ways.
#[track_caller]
fn assert_bytes_counted(p: &Proxy, got: &Got, what: &str) {
    got.assert_200("");
    // Counters are added when a connection's traffic is accounted; give it a moment.
    let counters = || {
        (
            listener_stat(p.admin, "downstream_bytes_read_total"),
            listener_stat(p.admin, "downstream_bytes_write_total"),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    let (read, written) = loop {
        let (read, written) = counters();
        if (read > 0 && written > 0) || Instant::now() > deadline {
            break (read, written);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        read > 0 && written > 0,
        "{what}: downstream_bytes_read_total {read}, downstream_bytes_write_total {written}"
    );
}

#[test]
fn listener_byte_counters_count_tls_connections() {
    let Some(pki) = tools() else { return };
    let pair = pki.server("server", "server.test", &["DNS:server.test"]);
    let up = tagged_upstream("counted");
    // Plaintext HTTP/1.1 counts both ways: the reference.
    let (port, admin) = (free_port(), free_port());
    let plain = Proxy::start(&one_chain_config(port, admin, "Http1", None, up.addr), port);
    assert_bytes_counted(&plain, &http(plain.port, "/", &[]), "plaintext");

    let p = single(up.addr, "Http1", server_tls(&pair));
    let got = https(pki.ca_cert(), "server.test", p.port, "/", &[]);
    assert_bytes_counted(&p, &got, "HTTP/1.1 over TLS");

    let p = single(up.addr, "Auto", server_tls(&pair));
    let got = https(pki.ca_cert(), "server.test", p.port, "/", &["--http2"]);
    assert_bytes_counted(&p, &got, "HTTP/2 over TLS");
}

// ---- client certificates ---------------------------------------------------------

#[test]
fn mtls_requires_a_client_certificate_from_the_ca() {
    let Some(pki) = tools() else { return };
    let pair = pki.server("server", "server.test", &["DNS:server.test"]);
    let good = pki.client("client", "client", &["DNS:client.example.com"]);
    let selfsigned = pki.self_signed("self", "client", &["DNS:client.example.com"]);
    let expired = pki.expired("old", "client", &["DNS:client.example.com"], Usage::Client);
    let other_san = pki.client("other", "other", &["DNS:other.example.com"]);
    let up = tagged_upstream("mtls");
    let tls = mtls_server_tls(&pki, &pair);
    let p = single(up.addr, "Http1", tls.clone());
    let without_cert = |port: u16| https(pki.ca_cert(), "server.test", port, "/", &[]);

    without_cert(p.port).assert_refused("no client certificate");
    https_with_cert(&pki, p.port, &good).assert_body("mtls", &p.log());

    for (what, bad) in [("self-signed", &selfsigned), ("expired", &expired)] {
        let from = p.log().len();
        https_with_cert(&pki, p.port, bad).assert_refused(&format!("{what} client certificate"));
        // Rejected with a log line that says why.
        let mentions_certificate = |log: &str| log.to_ascii_lowercase().contains("certificate");
        let log = p.log_since_when(from, Duration::from_secs(2), mentions_certificate);
        assert!(
            mentions_certificate(&log),
            "{what} client certificate: no log line about it:\n{log}"
        );
    }
    // Still serving the good one.
    https_with_cert(&pki, p.port, &good).assert_200("");

    // match_subject_alt_names: a CA-signed certificate with another SAN is refused.
    let tls_san = with(
        tls.clone(),
        "match_subject_alt_names",
        json!(["client.example.com"]),
    );
    let p2 = single(up.addr, "Http1", tls_san);
    https_with_cert(&pki, p2.port, &good).assert_body("mtls", &p2.log());
    https_with_cert(&pki, p2.port, &other_san).assert_refused("SAN other.example.com");
    // Without the allow-list that certificate is fine.
    https_with_cert(&pki, p.port, &other_san).assert_200("");

    // verify_client alone: a certificate is optional, but verified when given.
    let p3 = single(up.addr, "Http1", with(tls, "require_client_cert", false));
    without_cert(p3.port).assert_200(&format!("optional, none given\n{}", p3.log()));
    https_with_cert(&pki, p3.port, &good).assert_200("optional, good one");
    https_with_cert(&pki, p3.port, &selfsigned).assert_refused("optional, self-signed");
}

#[test]
fn match_subject_alt_names_takes_ip_and_uri_sans() {
    let Some(pki) = tools() else { return };
    let pair = pki.server("server", "server.test", &["DNS:server.test"]);
    let by_ip = pki.client("ip", "by-ip", &["IP:127.0.0.1"]);
    let spiffe = "spiffe://cluster.local/ns/default/sa/client";
    let by_uri = pki.client("uri", "by-uri", &[&format!("URI:{spiffe}")]);
    let other_uri = pki.client(
        "other-uri",
        "other-uri",
        &["URI:spiffe://cluster.local/ns/default/sa/other"],
    );
    let up = tagged_upstream("san");
    let allowing = |sans: Value| {
        let tls = with(
            mtls_server_tls(&pki, &pair),
            "match_subject_alt_names",
            sans,
        );
        single(up.addr, "Http1", tls)
    };

    let p = allowing(json!(["127.0.0.1"]));
    https_with_cert(&pki, p.port, &by_ip).assert_200(&format!("IP SAN\n{}", p.log()));
    https_with_cert(&pki, p.port, &by_uri).assert_refused("URI SAN against an IP");

    // Istio's identities are URI SANs (SPIFFE IDs).
    let p = allowing(json!([spiffe]));
    https_with_cert(&pki, p.port, &by_uri).assert_200(&format!("URI SAN\n{}", p.log()));
    https_with_cert(&pki, p.port, &other_uri).assert_refused("another URI SAN");
}

// ---- versions, ciphers, curves -------------------------------------------------------

#[test]
fn min_and_max_version_ciphers_and_curves_are_enforced() {
    let Some(pki) = tools() else { return };
    let pair = pki.server(
        "server",
        "server.test",
        &["DNS:server.test", "IP:127.0.0.1"],
    );
    let up = tagged_upstream("v");

    let p = single(
        up.addr,
        "Http1",
        with(server_tls(&pair), "min_version", "tlsv1_3"),
    );
    assert_no_handshake(&pki, p.port, &["-tls1_2"], "TLS 1.2 against min tlsv1_3");
    assert_handshake_with(&pki, p.port, &["-tls1_3"], "TLSv1.3");
    // curl too.
    let get = |extra: &[&str]| https(pki.ca_cert(), "server.test", p.port, "/", extra);
    get(&["--tls-max", "1.2"]).assert_no_response();
    get(&["--tlsv1.3"]).assert_200("");

    let mut tls = server_tls(&pair);
    tls["max_version"] = json!("tlsv1_2");
    tls["cipher_suites"] = json!("ECDHE-ECDSA-AES128-GCM-SHA256");
    tls["ecdh_curves"] = json!("p256");
    let p = single(up.addr, "Http1", tls);
    assert_no_handshake(&pki, p.port, &["-tls1_3"], "TLS 1.3 against max tlsv1_2");
    let s = assert_handshake_with(&pki, p.port, &["-tls1_2"], "TLSv1.2");
    assert!(
        s.stdout.contains("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"),
        "{}",
        s.text()
    );
    // A cipher not in the list, a curve not in the list: no handshake.
    assert_no_handshake(
        &pki,
        p.port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"],
        "cipher outside cipher_suites",
    );
    assert_no_handshake(
        &pki,
        p.port,
        &["-tls1_2", "-groups", "X25519"],
        "curve outside ecdh_curves",
    );
    let s = pki.s_client(p.port, &["-tls1_2", "-groups", "P-256"]);
    assert!(s.handshake_done(), "{}", s.text());
}

// ---- plaintext on a TLS port, handshake timeout ----------------------------------

/// Asserts that the proxy closes `s`, opened at `started`, after its 1 s handshake
/// timeout: not before 800 ms, within 4 s.
#[track_caller]
fn assert_closed_by_the_1s_handshake_timeout(s: &mut TcpStream, started: Instant, what: &str) {
    assert!(
        closed_within(s, Duration::from_secs(5)),
        "{what} still open after 5 s"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "{what}: closed after {took:?}, handshake_timeout is 1s"
    );
}

#[test]
fn plaintext_to_a_tls_port_is_closed_at_once_and_a_silent_client_times_out() {
    let Some(pki) = tools() else { return };
    let pair = pki.server("server", "server.test", &["DNS:server.test"]);
    let up = tagged_upstream("after");
    let p = single(
        up.addr,
        "Http1",
        with(server_tls(&pair), "handshake_timeout", "1s"),
    );

    let started = Instant::now();
    let mut s = connect(p.port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(3)),
        "plaintext on a TLS port: not closed"
    );
    assert_took_less_than(started, Duration::from_secs(2));

    // A client that says nothing is closed after the handshake timeout (1 s).
    let started = Instant::now();
    let mut s = connect(p.port);
    assert_closed_by_the_1s_handshake_timeout(&mut s, started, "silent client");

    // The start of a ClientHello, then nothing: the same timeout.
    let started = Instant::now();
    let mut s = connect(p.port);
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    assert_closed_by_the_1s_handshake_timeout(&mut s, started, "half a ClientHello");

    https(pki.ca_cert(), "server.test", p.port, "/", &[]).assert_body("after", "");
    // Counted (docs/tls.md): the three failures above, one success at least.
    assert!(listener_stat(p.admin, "tls_handshake_failure") >= 3);
    assert!(listener_stat(p.admin, "tls_handshake_success") >= 1);
}

#[test]
fn the_default_handshake_timeout_is_10s() {
    let Some(pki) = tools() else { return };
    let pair = pki.server("server", "server.test", &["DNS:server.test"]);
    let up = tagged_upstream("x");
    let p = single(up.addr, "Http1", server_tls(&pair));
    let started = Instant::now();
    let mut s = connect(p.port);
    s.write_all(&[0x16, 0x03, 0x01]).unwrap();
    assert!(
        !closed_within(&mut s, Duration::from_secs(8)),
        "closed after {:?}, before the default 10 s",
        started.elapsed()
    );
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "still open after {:?}",
        started.elapsed()
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(12), "closed after {took:?}");
}

// ---- bodies and connections over TLS -----------------------------------------------

/// `len` bytes of a pattern that is not periodic in any small power of two.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

#[test]
fn large_bodies_both_ways_and_keep_alive_over_tls() {
    let Some(pki) = tools() else { return };
    let pair = pki.server("server", "server.test", &["DNS:server.test"]);
    const BIG: usize = 8 * 1024 * 1024;
    let download = Upstream::start(|mut s| {
        let body = pattern(BIG);
        while let Some((head, req_body)) = read_request(&mut s) {
            if head.starts_with("POST") {
                // Echo the upload.
                let out = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    req_body.len()
                );
                if s.write_all(out.as_bytes()).is_err() || s.write_all(&req_body).is_err() {
                    return;
                }
            } else {
                let out = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n");
                if s.write_all(out.as_bytes()).is_err() || s.write_all(&body).is_err() {
                    return;
                }
            }
        }
    });
    let p = single(download.addr, "Auto", server_tls(&pair));
    let dir = tempfile::tempdir().unwrap();
    let upload = dir.path().join("upload.bin");
    let up_len = 3 * 1024 * 1024 + 17;
    std::fs::write(&upload, pattern(up_len)).unwrap();
    let out = dir.path().join("out.bin");
    let out = out.to_str().unwrap();
    let ca = pki.ca_cert_path();
    let resolve = format!("server.test:{}:127.0.0.1", p.port);
    let url = format!("https://server.test:{}/big", p.port);
    for proto in ["--http1.1", "--http2"] {
        // curl with `proto` to server.test, trusting the test CA.
        let tls_curl = |args: &[&str]| {
            let mut all = vec![proto, "--cacert", &ca, "--resolve", &resolve];
            all.extend_from_slice(args);
            curl(&all).unwrap()
        };
        let got = tls_curl(&["-o", out, "-w", "%{http_code} %{size_download}", &url]);
        assert_eq!(
            got.stdout,
            format!("200 {BIG}"),
            "{proto} download: {got:?}"
        );
        assert!(
            std::fs::read(out).unwrap() == pattern(BIG),
            "{proto}: the download differs"
        );

        let data = format!("@{}", upload.display());
        let got = tls_curl(&[
            "--data-binary",
            &data,
            "-H",
            "Content-Type: application/octet-stream",
            "-o",
            out,
            "-w",
            "%{http_code} %{size_download}",
            &url,
        ]);
        assert_eq!(
            got.stdout,
            format!("200 {up_len}"),
            "{proto} upload: {got:?}"
        );
        assert!(
            std::fs::read(out).unwrap() == pattern(up_len),
            "{proto}: the upload came back different"
        );

        // Several requests on one TLS connection.
        let small = format!("https://server.test:{}/small", p.port);
        let mut args = vec!["-w", "%{http_code} %{num_connects}\n"];
        for _ in 0..3 {
            args.extend(["-o", "/dev/null", &small]);
        }
        let got = tls_curl(&args);
        assert_eq!(
            got.stdout, "200 1\n200 0\n200 0\n",
            "{proto} keep-alive: {got:?}"
        );
    }
}

#[test]
fn sigterm_lets_a_tls_request_finish_and_closes_idle_tls_connections() {
    let Some(pki) = tools() else { return };
    let pair = pki.server("server", "server.test", &["DNS:server.test"]);
    let slow = Upstream::start(|mut s| {
        while let Some((head, _)) = read_request(&mut s) {
            if head.starts_with("GET /slow") {
                std::thread::sleep(Duration::from_millis(1500));
            }
            if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
                .is_err()
            {
                return;
            }
        }
    });
    let mut p = single(slow.addr, "Http1", server_tls(&pair));
    let openssl = peer_program("openssl").unwrap();
    // An idle keep-alive TLS connection: s_client after one request, its stdin open.
    let mut idle = Command::new(&openssl)
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{}", p.port),
        ])
        .args(["-servername", "server.test"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    idle.stdin
        .as_mut()
        .unwrap()
        .write_all(b"GET / HTTP/1.1\r\nHost: server.test\r\n\r\n")
        .unwrap();
    let mut idle_out = idle.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut idle_out, &mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            let _ = tx.send(String::from_utf8_lossy(&all).into_owned());
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    assert!(first.starts_with("HTTP/1.1 200"), "{first:?}");

    // A slow request in flight over TLS when SIGTERM comes.
    let ca = pki.ca_cert_path();
    let port = p.port;
    let in_flight = std::thread::spawn(move || {
        let resolve = format!("server.test:{port}:127.0.0.1");
        let url = format!("https://server.test:{port}/slow");
        curl(&[
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
            "-w",
            "\n%{http_code}",
            &url,
        ])
        .unwrap()
    });
    std::thread::sleep(Duration::from_millis(500));
    p.mosn.signal(libc::SIGTERM);
    let got = in_flight.join().unwrap();
    assert_eq!(got.stdout, "done\n200", "the request in flight: {got:?}");
    let code = p.mosn.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", p.log());
    // The idle TLS connection was closed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while idle.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = idle.kill();
            let _ = idle.wait();
            panic!("the idle TLS connection stayed open after the proxy exited");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- inspector, filter_chain_match ---------------------------------------------------

#[test]
fn inspector_serves_plaintext_and_tls_on_one_port() {
    let Some(pki) = tools() else { return };
    let pair = pki.server("server", "server.test", &["DNS:server.test"]);
    let tls = with(server_tls(&pair), "handshake_timeout", "1s");
    let up = tagged_upstream("both");
    let (port, admin) = (free_port(), free_port());
    let mut cfg = one_chain_config(port, admin, "Auto", Some(tls), up.addr);
    cfg["servers"][0]["listeners"][0]["inspector"] = json!(true);
    let p = Proxy::start(&cfg, port);

    // A client that says nothing cannot hold the port open past the timeout.
    let started = Instant::now();
    let mut s = connect(p.port);
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "silent client still open after 5 s"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "closed after {:?}",
        started.elapsed()
    );

    http(p.port, "/", &[]).assert_body_over("1.1", "both", &p.log());
    http(p.port, "/", &["--http2-prior-knowledge"]).assert_body_over("2", "both", "");
    let get = |extra: &[&str]| https(pki.ca_cert(), "server.test", p.port, "/", extra);
    get(&["--http1.1"]).assert_body_over("1.1", "both", "");
    get(&["--http2"]).assert_body_over("2", "both", "");
}

#[test]
fn filter_chain_match_by_server_names_routes_to_different_upstreams() {
    let Some(pki) = tools() else { return };
    let a = pki.server("a", "a.example.com", &["DNS:a.example.com"]);
    let b = pki.server("b", "*.b.example.com", &["DNS:*.b.example.com"]);
    let (up_a, up_b) = (tagged_upstream("A"), tagged_upstream("B"));
    let (port, admin) = (free_port(), free_port());
    let cfg = config(
        port,
        admin,
        vec![
            chain(
                "ra",
                "Http1",
                Some(server_tls(&a)),
                Some(json!({"server_names": ["a.example.com"]})),
            ),
            chain(
                "rb",
                "Http1",
                Some(server_tls(&b)),
                Some(json!({"server_names": ["*.b.example.com"]})),
            ),
        ],
        vec![router_to("ra", "ca"), router_to("rb", "cb")],
        vec![cluster("ca", up_a.addr), cluster("cb", up_b.addr)],
    );
    let p = Proxy::start(&cfg, port);
    let get = |name: &str| https(pki.ca_cert(), name, p.port, "/", &[]);
    get("a.example.com").assert_body("A", &p.log());
    for name in ["x.b.example.com", "y.b.example.com"] {
        get(name).assert_body("B", name);
    }
    let got = get("a.example.com");
    assert_eq!(got.body, "A", "{got:?}");
    // No chain for this name and none without criteria: refused with a TLS alert,
    // no certificate.
    let s = pki.s_client(p.port, &["-servername", "unknown.test"]);
    assert!(!s.handshake_done() && s.subject().is_none(), "{}", s.text());
    let got = get("a.example.com");
    assert_eq!(got.body, "A", "still serving: {got:?}");
    assert!(
        s.stderr.contains("alert"),
        "unknown SNI: closed without a TLS alert:\n{}",
        s.text()
    );
}

#[test]
fn filter_chain_match_server_names_most_specific_wins_case_insensitively() {
    let Some(pki) = tools() else { return };
    let a = pki.server("a", "a.example.com", &["DNS:a.example.com"]);
    let b = pki.server("b", "*.b.example.com", &["DNS:*.b.example.com"]);
    let w = pki.server("w", "*.example.com", &["DNS:*.example.com"]);
    let (up_a, up_b, up_w) = (
        tagged_upstream("A"),
        tagged_upstream("B"),
        tagged_upstream("W"),
    );
    let (port, admin) = (free_port(), free_port());
    let names = |n: &[&str]| Some(json!({ "server_names": n }));
    let cfg = config(
        port,
        admin,
        vec![
            chain(
                "rw",
                "Http1",
                Some(server_tls(&w)),
                names(&["*.example.com"]),
            ),
            chain(
                "rb",
                "Http1",
                Some(server_tls(&b)),
                names(&["*.b.example.com"]),
            ),
            chain(
                "ra",
                "Http1",
                Some(server_tls(&a)),
                names(&["a.example.com"]),
            ),
        ],
        vec![
            router_to("ra", "ca"),
            router_to("rb", "cb"),
            router_to("rw", "cw"),
        ],
        vec![
            cluster("ca", up_a.addr),
            cluster("cb", up_b.addr),
            cluster("cw", up_w.addr),
        ],
    );
    let p = Proxy::start(&cfg, port);
    for (sni, body, subject) in [
        ("a.example.com", "A", "a.example.com"),
        ("x.b.example.com", "B", "*.b.example.com"),
        ("z.example.com", "W", "*.example.com"),
        // Envoy: a wildcard takes one or more leading labels.
        ("y.x.b.example.com", "B", "*.b.example.com"),
        // Names are case-insensitive.
        ("A.Example.COM", "A", "a.example.com"),
        ("X.B.EXAMPLE.COM", "B", "*.b.example.com"),
    ] {
        assert_certificate_for_sni(&pki, p.port, sni, subject);
        // Routed to that chain's upstream (the name need not be on the certificate).
        let resolve = format!("{sni}:{}:127.0.0.1", p.port);
        let url = format!("https://{sni}:{}/", p.port);
        let got = parse_curl(
            curl(&["--insecure", "--resolve", &resolve, "-w", WRITE_OUT, &url]).unwrap(),
        );
        got.assert_body(body, &format!("SNI {sni}\n{}", p.log()));
    }
}

#[test]
fn filter_chain_match_by_transport_and_application_protocol() {
    let Some(pki) = tools() else { return };
    let pair = pki.server("server", "server.test", &["DNS:server.test"]);
    let (up_tls, up_plain, up_h2) = (
        tagged_upstream("TLS"),
        tagged_upstream("PLAIN"),
        tagged_upstream("H2"),
    );
    let (port, admin) = (free_port(), free_port());
    let mut cfg = config(
        port,
        admin,
        vec![
            chain(
                "rt",
                "Http1",
                Some(server_tls(&pair)),
                Some(json!({"transport_protocol": "tls"})),
            ),
            chain(
                "rp",
                "Http1",
                None,
                Some(json!({"transport_protocol": "raw_buffer"})),
            ),
            chain(
                "rh",
                "Http2",
                Some(server_tls(&pair)),
                Some(json!({"transport_protocol": "tls", "application_protocols": ["h2"]})),
            ),
        ],
        vec![
            router_to("rt", "ct"),
            router_to("rp", "cp"),
            router_to("rh", "ch"),
        ],
        vec![
            cluster("ct", up_tls.addr),
            cluster("cp", up_plain.addr),
            cluster("ch", up_h2.addr),
        ],
    );
    cfg["servers"][0]["listeners"][0]["inspector"] = json!(true);
    let p = Proxy::start(&cfg, port);
    http(p.port, "/", &[]).assert_body("PLAIN", &p.log());
    let get = |extra: &[&str]| https(pki.ca_cert(), "server.test", p.port, "/", extra);
    get(&["--http1.1"]).assert_body_over("1.1", "TLS", "");
    // curl --http2 offers h2: the h2 chain, which speaks HTTP/2.
    get(&["--http2"]).assert_body_over("2", "H2", "");
}

#[test]
fn filter_chain_match_by_source_prefix_and_destination_port_most_specific_wins() {
    let Some(_pki) = tools() else { return };
    let (any, ten, lo, dst) = (
        tagged_upstream("any"),
        tagged_upstream("ten"),
        tagged_upstream("loopback"),
        tagged_upstream("dst"),
    );
    let range = |ip: &str, len: u8| json!({"source_prefix_ranges": [{"address_prefix": ip, "prefix_len": len}]});
    let chains = |port: u16, with_dst: bool| {
        let mut c = vec![
            chain("r_any", "Http1", None, None),
            chain("r_ten", "Http1", None, Some(range("10.0.0.0", 8))),
            chain("r_lo", "Http1", None, Some(range("127.0.0.1", 32))),
        ];
        if with_dst {
            c.push(chain(
                "r_dst",
                "Http1",
                None,
                Some(json!({"destination_port": port})),
            ));
        }
        c
    };
    let routers = || {
        vec![
            router_to("r_any", "c_any"),
            router_to("r_ten", "c_ten"),
            router_to("r_lo", "c_lo"),
            router_to("r_dst", "c_dst"),
        ]
    };
    let clusters = || {
        vec![
            cluster("c_any", any.addr),
            cluster("c_ten", ten.addr),
            cluster("c_lo", lo.addr),
            cluster("c_dst", dst.addr),
        ]
    };
    // A request from 127.0.0.1 to a proxy with those chains is answered by `body`.
    let assert_served_by = |with_dst: bool, body: &str| {
        let (port, admin) = (free_port(), free_port());
        let p = Proxy::start(
            &config(port, admin, chains(port, with_dst), routers(), clusters()),
            port,
        );
        http(p.port, "/", &[]).assert_body(body, &p.log());
    };
    // From 127.0.0.1: the /32 beats the catch-all, 10/8 does not match.
    assert_served_by(false, "loopback");
    // Envoy checks the destination port first: a chain naming the port wins.
    assert_served_by(true, "dst");
}

// ---- TLS to upstreams (nginx) ----------------------------------------------------

/// An nginx `server` block over TLS on `port` with `pair`; its answer names the
/// protocol and the client certificate's subject.
fn nginx_tls_server(port: u16, pair: &CertPair, extra: &str) -> String {
    format!(
        r#"server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {}; ssl_certificate_key {};
    {extra}
    location / {{ return 200 "nginx-tls $server_protocol client=$ssl_client_s_dn\n"; }}
  }}"#,
        pair.cert_path(),
        pair.key_path()
    )
}

/// What [`nginx_tls_server`] answers over HTTP/1.1 to a client without a certificate.
const NGINX_TLS_H1: &str = "nginx-tls HTTP/1.1 client=\n";

/// nginx with one [`nginx_tls_server`] serving `pair`, and its port.
fn start_nginx_tls(bin: &Path, pair: &CertPair) -> (Nginx, u16) {
    let port = free_port();
    let nginx = Nginx::start(bin, &nginx_tls_server(port, pair, ""), &[port]);
    (nginx, port)
}

/// A cluster `name` of one host (`addr`, optionally with a `hostname`) whose
/// connections use `tls` (a cluster `tls_context`).
fn tls_cluster(name: &str, addr: SocketAddr, hostname: Option<&str>, tls: Value) -> Value {
    let mut c = cluster(name, addr);
    if let Some(h) = hostname {
        c["hosts"][0]["hostname"] = json!(h);
    }
    c["tls_context"] = tls;
    c
}

/// A cluster `tls_context` that also presents `client`'s certificate.
fn with_client_cert(mut tls: Value, client: &CertPair) -> Value {
    tls["cert_chain"] = json!(client.cert_path());
    tls["private_key"] = json!(client.key_path());
    tls
}

/// A proxy listener routing `/NAME/...` to cluster NAME (HTTP/1.1 in, `up_proto`
/// out).
fn upstream_tls_proxy(clusters: Vec<Value>, up_proto: &str) -> Proxy {
    upstream_tls_proxy_behind(clusters, "Http1", None, up_proto)
}

/// [`upstream_tls_proxy`] with `down` in, over TLS when `listener_tls` is given.
fn upstream_tls_proxy_behind(
    clusters: Vec<Value>,
    down: &str,
    listener_tls: Option<Value>,
    up_proto: &str,
) -> Proxy {
    let (port, admin) = (free_port(), free_port());
    let routes: Vec<Value> = clusters
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap();
            json!({"match": {"prefix": format!("/{name}/")}, "route": {"cluster_name": name}})
        })
        .collect();
    let router = json!({"router_config_name": "r", "virtual_hosts": [{"name": "h", "domains": ["*"], "routers": routes}]});
    let mut ch = chain("r", down, listener_tls, None);
    ch["filters"][0] = proxy_filter("r", down, up_proto);
    Proxy::start(&config(port, admin, vec![ch], vec![router], clusters), port)
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn upstream_tls_to_nginx_verifies_the_certificate() {
    let Some((pki, nginx)) = tools_and_nginx() else {
        return;
    };
    let good = pki.server("up", "upstream.test", &["DNS:upstream.test"]);
    let expired = pki.expired("old", "old.test", &["DNS:old.test"], Usage::Server);
    let client = pki.client("client", "proxy-client", &["DNS:proxy.example.com"]);
    let other_ca = pki.new_ca("other-ca", "another CA");
    let (p_good, p_mtls, p_old, p_plain) = (free_port(), free_port(), free_port(), free_port());
    let ca = pki.ca_cert_path();
    let servers = [
        nginx_tls_server(p_good, &good, ""),
        nginx_tls_server(
            p_mtls,
            &good,
            &format!(
                "ssl_verify_client optional; ssl_client_certificate {ca};\n    \
                 if ($ssl_client_verify != SUCCESS) {{ return 403 \"no client certificate\\n\"; }}"
            ),
        ),
        nginx_tls_server(p_old, &expired, ""),
        format!(
            "server {{ listen 127.0.0.1:{p_plain}; location / {{ return 200 \"plain\\n\"; }} }}"
        ),
    ]
    .join("\n  ");
    let _nginx = Nginx::start(&nginx, &servers, &[p_good, p_mtls, p_old, p_plain]);
    let verified = verifying_tls(&ca, "upstream.test");
    let p = upstream_tls_proxy(
        vec![
            tls_cluster("good", local(p_good), None, verified.clone()),
            tls_cluster(
                "wrongca",
                local(p_good),
                None,
                verifying_tls(&other_ca.cert_path(), "upstream.test"),
            ),
            tls_cluster(
                "skip",
                local(p_good),
                None,
                with(
                    verifying_tls(&other_ca.cert_path(), "upstream.test"),
                    "insecure_skip",
                    true,
                ),
            ),
            tls_cluster(
                "wrongname",
                local(p_good),
                None,
                verifying_tls(&ca, "other.test"),
            ),
            tls_cluster(
                "sysroots",
                local(p_good),
                None,
                json!({"status": true, "server_name": "upstream.test"}),
            ),
            tls_cluster(
                "expired",
                local(p_old),
                None,
                verifying_tls(&ca, "old.test"),
            ),
            // No server_name: the host's hostname is the SNI and the name verified.
            tls_cluster(
                "hostname",
                local(p_good),
                Some("upstream.test"),
                json!({"status": true, "ca_cert": ca}),
            ),
            // No server_name, no hostname: the IP, which the certificate does not name.
            tls_cluster(
                "ip",
                local(p_good),
                None,
                json!({"status": true, "ca_cert": ca}),
            ),
            tls_cluster(
                "mtls",
                local(p_mtls),
                None,
                with_client_cert(verified.clone(), &client),
            ),
            tls_cluster("nocert", local(p_mtls), None, verified.clone()),
            // TLS to a port that answers plaintext.
            tls_cluster("plainport", local(p_plain), None, verified.clone()),
        ],
        "Http1",
    );

    for _ in 0..3 {
        http(p.port, "/good/", &[]).assert_body(NGINX_TLS_H1, &p.log());
    }

    for (path, why) in [
        (
            "/wrongca/",
            "a CA that did not sign the upstream's certificate",
        ),
        (
            "/wrongname/",
            "a server_name the certificate does not carry",
        ),
        (
            "/sysroots/",
            "no ca_cert: the system roots, which do not hold the test CA",
        ),
        ("/expired/", "an expired upstream certificate"),
        ("/ip/", "the host's IP, which the certificate does not name"),
    ] {
        let from = p.log().len();
        http(p.port, path, &[]).assert_upstream_failed(&format!("{why}\n{}", p.log()));
        let log = p.log_since(from).to_ascii_lowercase();
        assert!(
            log.contains("certificate"),
            "{why}: no log line about the certificate:\n{log}"
        );
    }

    http(p.port, "/skip/", &[]).assert_200(&format!("insecure_skip\n{}", p.log()));
    http(p.port, "/hostname/", &[]).assert_200(&format!("SNI from the hostname\n{}", p.log()));

    http(p.port, "/mtls/", &[])
        .assert_body("nginx-tls HTTP/1.1 client=CN=proxy-client\n", &p.log());
    let got = http(p.port, "/nocert/", &[]);
    assert_eq!(
        (got.status, got.body.as_str()),
        (403, "no client certificate\n"),
        "{got:?}"
    );

    // A plaintext server behind a TLS cluster: a quick failure, not a hang.
    let started = Instant::now();
    http(p.port, "/plainport/", &[]).assert_upstream_failed(&p.log());
    assert_took_less_than(started, Duration::from_secs(3));
}

#[test]
fn upstream_tls_with_alpn_h2_speaks_http2_to_nginx() {
    let Some((pki, nginx)) = tools_and_nginx() else {
        return;
    };
    let good = pki.server("up", "upstream.test", &["DNS:upstream.test"]);
    let (_nginx, port) = start_nginx_tls(&nginx, &good);
    let cluster_tls = with(
        verifying_tls(&pki.ca_cert_path(), "upstream.test"),
        "alpn",
        "h2",
    );
    let p = upstream_tls_proxy(
        vec![tls_cluster("h2", local(port), None, cluster_tls.clone())],
        "Http2",
    );
    for _ in 0..3 {
        http(p.port, "/h2/", &[]).assert_body("nginx-tls HTTP/2.0 client=\n", &p.log());
    }
    // TLS on both sides: h2 or HTTP/1.1 in (by ALPN), h2 out.
    let front = pki.server("front", "front.test", &["DNS:front.test"]);
    let p = upstream_tls_proxy_behind(
        vec![tls_cluster("h2", local(port), None, cluster_tls)],
        "Auto",
        Some(server_tls(&front)),
        "Http2",
    );
    for (proto, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let got = https(pki.ca_cert(), "front.test", p.port, "/h2/", &[proto]);
        got.assert_body_over(version, "nginx-tls HTTP/2.0 client=\n", &p.log());
    }
}

#[test]
fn tls_terminated_in_front_of_tcp_proxy_and_originated_by_it() {
    let Some((pki, nginx)) = tools_and_nginx() else {
        return;
    };
    let front = pki.server("front", "front.test", &["DNS:front.test"]);
    let back = pki.server("up", "upstream.test", &["DNS:upstream.test"]);
    let plain = tagged_upstream("plain behind tcp_proxy");
    let (_nginx, nginx_port) = start_nginx_tls(&nginx, &back);
    // A listener whose only chain is `tcp_chain`, to `cluster`.
    let tcp_proxy = |tcp_chain: Value, cluster: Value| {
        let (port, admin) = (free_port(), free_port());
        Proxy::start(
            &config(port, admin, vec![tcp_chain], vec![], vec![cluster]),
            port,
        )
    };

    // TLS in, plain TCP out.
    let p = tcp_proxy(
        json!({"tls_context": server_tls(&front),
            "filters": [{"type": "tcp_proxy", "config": {"cluster": "plain"}}]}),
        cluster("plain", plain.addr),
    );
    let got = https(pki.ca_cert(), "front.test", p.port, "/", &["--http1.1"]);
    got.assert_body("plain behind tcp_proxy", &p.log());

    // Plain TCP in, TLS out (the cluster's tls_context).
    let p = tcp_proxy(
        json!({"filters": [{"type": "tcp_proxy", "config": {"cluster": "tls"}}]}),
        tls_cluster(
            "tls",
            local(nginx_port),
            None,
            verifying_tls(&pki.ca_cert_path(), "upstream.test"),
        ),
    );
    http(p.port, "/", &[]).assert_body(NGINX_TLS_H1, &p.log());
}

#[test]
fn an_upstream_that_refuses_the_missing_client_certificate_fails_fast() {
    let Some(pki) = tools() else { return };
    let server = pki.server("server", "server.test", &["DNS:server.test"]);
    let client = pki.client("client", "client", &["DNS:client.example.com"]);
    let up = tagged_upstream("behind mTLS");
    // The inner proxy requires a client certificate (TLS 1.3: it refuses one only
    // after the client has finished its handshake).
    let inner = single(up.addr, "Http1", mtls_server_tls(&pki, &server));
    let verified = verifying_tls(&pki.ca_cert_path(), "server.test");
    let with_cert = with_client_cert(verified.clone(), &client);
    let outer = upstream_tls_proxy(
        vec![
            tls_cluster("nocert", local(inner.port), None, verified),
            tls_cluster("cert", local(inner.port), None, with_cert),
        ],
        "Http1",
    );
    for _ in 0..2 {
        let started = Instant::now();
        http(outer.port, "/nocert/", &[]).assert_upstream_failed(&format!(
            "outer:\n{}\ninner:\n{}",
            outer.log(),
            inner.log()
        ));
        assert_took_less_than(started, Duration::from_secs(3));
        http(outer.port, "/cert/", &[]).assert_body("behind mTLS", &outer.log());
    }
}

// ---- certificate reload ----------------------------------------------------------

#[test]
fn a_changed_certificate_is_served_without_restart_and_a_bad_one_is_refused() {
    let Some(pki) = tools() else { return };
    let first = pki.server("first", "first.test", &["DNS:server.test"]);
    let second = pki.server("second", "second.test", &["DNS:server.test"]);
    let stray = pki.server("stray", "stray.test", &["DNS:server.test"]);
    let third = pki.server("third", "third.test", &["DNS:server.test"]);
    let live = CertPair {
        cert: pki.path().join("live.pem"),
        key: pki.path().join("live.key"),
    };
    std::fs::copy(&first.cert, &live.cert).unwrap();
    std::fs::copy(&first.key, &live.key).unwrap();
    let up = tagged_upstream("reload");
    let p = single(up.addr, "Http1", server_tls(&live));
    let subject = || {
        pki.s_client(p.port, &["-servername", "server.test"])
            .subject()
    };
    // The proxy serves the certificate of subject `CN = want` within 10 s of `what`.
    let wait_for_subject = |want: &str, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while subject() != Some(cn(want)) {
            assert!(
                Instant::now() < deadline,
                "still {:?} 10 s after {what}\n{}",
                subject(),
                p.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    let get = || https(pki.ca_cert(), "server.test", p.port, "/", &[]);
    assert_eq!(subject(), Some(cn("first.test")));

    // Overwritten in place, certificate first, then key.
    std::fs::write(&live.cert, second.cert_pem()).unwrap();
    std::fs::write(&live.key, second.key_pem()).unwrap();
    wait_for_subject("second.test", "the files changed");
    get().assert_body("reload", "");

    // A key that does not match the certificate: logged, the old pair stays.
    let from = p.log().len();
    std::fs::write(&live.key, stray.key_pem()).unwrap();
    let names_the_context = |log: &str| {
        log.lines().any(|l| {
            (l.contains("ERROR") || l.contains("WARN"))
                && (l.contains("live.key")
                    || l.contains("live.pem")
                    || l.contains("servers[0].listeners[0].filter_chains[0].tls_context"))
        })
    };
    let log = p.log_since_when(from, Duration::from_secs(10), names_the_context);
    assert!(
        names_the_context(&log),
        "a bad pair was not logged (naming the file or the context) within 10 s:\n{log}"
    );
    for _ in 0..3 {
        assert_eq!(subject(), Some(cn("second.test")));
        get().assert_200("");
        std::thread::sleep(Duration::from_millis(300));
    }

    // Replaced by renames (how tools and Kubernetes swap files): a good pair again.
    let staged = pki.path().join("staged");
    std::fs::write(&staged, third.key_pem()).unwrap();
    std::fs::rename(&staged, &live.key).unwrap();
    std::fs::write(&staged, third.cert_pem()).unwrap();
    std::fs::rename(&staged, &live.cert).unwrap();
    wait_for_subject("third.test", "the files were renamed into place");
    get().assert_body("reload", "");
}

// ---- config errors ---------------------------------------------------------------

/// Both `validate` and `start` refuse `config` with exit code 2 and an issue line
/// that starts with one of `paths` followed by ": ".
#[track_caller]
fn assert_refused(config: &Value, paths: &[&str]) {
    for verb in ["validate", "start"] {
        let text = refused_with_exit_2(verb, &config.to_string()).output();
        let named = text.lines().any(|l| {
            let l = l.trim();
            paths.iter().any(|p| l.starts_with(&format!("{p}: ")))
        });
        assert!(named, "{verb}: expected an issue at {paths:?}:\n{text}");
    }
}

#[test]
fn bad_certificates_are_config_errors_naming_the_json_path() {
    let Some(pki) = Pki::new() else { return };
    let a = pki.server("a", "a.test", &["DNS:a.test"]);
    let b = pki.server("b", "b.test", &["DNS:b.test"]);
    let up: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let base = |tls: Value| one_chain_config(free_port(), free_port(), "Http1", Some(tls), up);
    const CTX: &str = "servers[0].listeners[0].filter_chains[0].tls_context";

    // Sanity: the good pair is accepted.
    let run = run_on_config("validate", &base(server_tls(&a)).to_string());
    assert_eq!(run.code, Some(0), "{}", run.output());

    let missing = pki.path().join("missing.pem").display().to_string();
    let tls = with(server_tls(&a), "cert_chain", missing.as_str());
    assert_refused(&base(tls), &[&format!("{CTX}.cert_chain")]);

    let missing_key = pki.path().join("missing.key").display().to_string();
    let tls = with(server_tls(&a), "private_key", missing_key);
    assert_refused(&base(tls), &[&format!("{CTX}.private_key")]);

    // A key that is not the certificate's.
    let tls = with(server_tls(&a), "private_key", b.key_path());
    assert_refused(
        &base(tls),
        &[&format!("{CTX}.cert_chain"), &format!("{CTX}.private_key")],
    );

    // A file that holds no certificate.
    let junk = pki.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let tls = with(server_tls(&a), "cert_chain", junk.display().to_string());
    assert_refused(&base(tls), &[&format!("{CTX}.cert_chain")]);

    // A missing CA file for client certificates.
    let mut tls = server_tls(&a);
    tls["ca_cert"] = json!(missing);
    tls["verify_client"] = json!(true);
    assert_refused(&base(tls), &[&format!("{CTX}.ca_cert")]);

    // In tls_context_set, the context's index.
    let mut cfg = base(server_tls(&a));
    let chain0 = &mut cfg["servers"][0]["listeners"][0]["filter_chains"][0];
    chain0.as_object_mut().unwrap().remove("tls_context");
    let bad = with(server_tls(&b), "cert_chain", missing.as_str());
    chain0["tls_context_set"] = json!([server_tls(&a), bad]);
    assert_refused(
        &cfg,
        &["servers[0].listeners[0].filter_chains[0].tls_context_set[1].cert_chain"],
    );

    // A cluster's CA file.
    let mut cfg = one_chain_config(free_port(), free_port(), "Http1", None, up);
    cfg["cluster_manager"]["clusters"][0]["tls_context"] = verifying_tls(&missing, "x.test");
    assert_refused(&cfg, &["cluster_manager.clusters[0].tls_context.ca_cert"]);
    // A cluster's client certificate whose key is another's.
    cfg["cluster_manager"]["clusters"][0]["tls_context"] = json!({"status": true,
        "ca_cert": pki.ca_cert_path(), "cert_chain": a.cert_path(), "private_key": b.key_path()});
    assert_refused(
        &cfg,
        &[
            "cluster_manager.clusters[0].tls_context.cert_chain",
            "cluster_manager.clusters[0].tls_context.private_key",
        ],
    );

    // Names that are not MOSN's.
    for (key, value) in [
        ("min_version", "tlsv1_9"),
        ("cipher_suites", "NOT-A-CIPHER"),
        ("ecdh_curves", "curve9"),
    ] {
        assert_refused(
            &base(with(server_tls(&a), key, value)),
            &[&format!("{CTX}.{key}")],
        );
    }
    let mut cfg = base(server_tls(&a));
    cfg["servers"][0]["listeners"][0]["filter_chains"][0]["filter_chain_match"] =
        json!({"transport_protocol": "quic"});
    assert_refused(
        &cfg,
        &["servers[0].listeners[0].filter_chains[0].filter_chain_match.transport_protocol"],
    );
    // Two chains a connection could not be told apart by.
    let mut cfg = base(server_tls(&a));
    let chains = &mut cfg["servers"][0]["listeners"][0]["filter_chains"];
    let twin = chains[0].clone();
    chains.as_array_mut().unwrap().push(twin);
    assert_refused(
        &cfg,
        &["servers[0].listeners[0].filter_chains[1].filter_chain_match"],
    );
}

// ---- MOSN's example configs ------------------------------------------------------

/// MOSN's `SAMPLE/tls_server_config.json` and `tls_client_config.json`, unchanged but
/// for their ports, chained: a plain request to the client's listener goes over TLS
/// (mutual, with ../certs) to the server's listener and on to a plain upstream.
fn corpus_tls_pair_serves(sample: &str) {
    let Some(root) = require_mosn_corpus() else {
        return;
    };
    let up = tagged_upstream("through MOSN's TLS samples");
    let (client_port, server_port) = (free_port(), free_port());
    let (client_admin, server_admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root.join("certs"), dir.path().join("certs")).unwrap();
    std::fs::create_dir(dir.path().join(sample)).unwrap();
    let rewrite = |text: String| {
        let out = text
            .replace(
                "\"127.0.0.1:2045\"",
                &format!("\"127.0.0.1:{client_port}\""),
            )
            .replace(
                "\"127.0.0.1:2046\"",
                &format!("\"127.0.0.1:{server_port}\""),
            )
            .replace("\"127.0.0.1:8080\"", &format!("\"{}\"", up.addr))
            .replace(
                "\"port_value\": 34901",
                &format!("\"port_value\": {client_admin}"),
            )
            .replace(
                "\"port_value\": 34902",
                &format!("\"port_value\": {server_admin}"),
            );
        for old in [
            "\"127.0.0.1:2045\"",
            "\"127.0.0.1:2046\"",
            "\"127.0.0.1:8080\"",
            "\"port_value\": 34901",
            "\"port_value\": 34902",
        ] {
            assert!(!out.contains(old), "{old} left in:\n{out}");
        }
        out
    };
    let mut started = Vec::new();
    for (file, ports) in [
        ("tls_server_config.json", [server_port, server_admin]),
        ("tls_client_config.json", [client_port, client_admin]),
    ] {
        let text = std::fs::read_to_string(root.join(sample).join(file)).unwrap();
        let copy = dir.path().join(sample).join(file);
        std::fs::write(&copy, rewrite(text)).unwrap();
        let d = tempfile::tempdir().unwrap();
        started.push(Mosn::start_file(&copy, d, &ports));
    }
    for _ in 0..3 {
        let resp = http_exchange(client_port, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            (resp.status, resp.body_text().as_str()),
            (200, "through MOSN's TLS samples"),
            "{sample}\nserver log:\n{}\nclient log:\n{}",
            started[0].log_text(),
            started[1].log_text()
        );
    }
    // The server's port speaks TLS only.
    let mut s = connect(server_port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let plain = read_response(&mut s, false);
    assert!(
        plain.is_none(),
        "plaintext answered on the TLS port: {plain:?}"
    );
}

#[test]
fn mosn_http_sample_tls_configs_chain_client_to_server() {
    corpus_tls_pair_serves("http-sample");
}

#[test]
fn mosn_protocol_auto_sample_tls_configs_chain_client_to_server() {
    corpus_tls_pair_serves("protocol-auto-sample");
}

/// TLS passthrough: a tcp_proxy chain chosen by SNI (no `tls_context`) forwards the
/// ClientHello and everything after it untouched; the backend (here a second mosn-rs
/// terminating TLS) does the handshake, so the client sees the backend's certificate.
#[test]
fn a_tcp_proxy_chain_chosen_by_sni_passes_tls_through() {
    let Some(pki) = tools() else { return };
    let backend_pair = pki.server("backend", "pass.test", &["DNS:pass.test"]);
    let front_pair = pki.server("front", "front.test", &["DNS:front.test"]);
    let up = tagged_upstream("behind-passthrough");
    let backend = single(up.addr, "Http1", server_tls(&backend_pair));
    let (port, admin) = (free_port(), free_port());
    let tcp_chain = json!({
        "filter_chain_match": {"server_names": ["pass.test"]},
        "filters": [{"type": "tcp_proxy", "config": {"cluster": "backend"}}]
    });
    let cfg = config(
        port,
        admin,
        vec![
            tcp_chain,
            chain("r", "Http1", Some(server_tls(&front_pair)), None),
        ],
        vec![router_to("r", "up")],
        vec![
            cluster("backend", local(backend.port)),
            cluster("up", up.addr),
        ],
    );
    let front = Proxy::start(&cfg, port);
    let get = |name: &str| https(pki.ca_cert(), name, front.port, "/", &[]);
    get("pass.test").assert_body("behind-passthrough", &front.log());
    // Other names are terminated by the front proxy itself.
    get("front.test").assert_body("behind-passthrough", "");
    let s = pki.s_client(front.port, &["-servername", "pass.test"]);
    assert!(
        s.subject().is_some_and(|subj| subj.contains("pass.test")),
        "the backend's certificate: {}",
        s.text()
    );
}
