//! Differential test: the same xDS snapshot (delta ADS) goes to the real Envoy 1.40
//! and to mosn-rs, and a table of requests gets the same outcome from both: status,
//! which upstream answered (tagged upstreams answer their name; an echo upstream
//! sends back the request it got), the response headers and the upstream's request
//! headers each case names, and, for weights, the proportions over 1000 requests.
//!
//! Each proxy has its own control plane (two `XdsServer`s fed identical snapshots but
//! for the listener's port: a snapshot is shared by every client of a server, and
//! both proxies would bind every listener of it).
//!
//! A case where mosn-rs answers differently and mosn-rs looks at fault is kept in the
//! table, marked `// KNOWN GAP:` with `.gap(..)`: it is still run and printed, but
//! left out of the assertion.

mod common;

use common::xds::*;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(15);
/// Requests per proportion check.
const WEIGHTED_REQUESTS: usize = 1000;
/// How far a proportion may stray from the configured one (4 sigma at 1000 draws).
const TOLERANCE: f64 = 0.06;

// ---------------------------------------------------------------------------
// Upstreams

/// An upstream that echoes the request head it got as its body, with a few
/// response headers the routes keep, drop or overwrite.
fn echo_headers_upstream() -> Upstream {
    Upstream::start(|mut s| {
        while let Some((head, _)) = read_request(&mut s) {
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Upstream: echo\r\nX-Up-Drop-Vh: 1\r\n\
                 X-Up-Drop-Route: 1\r\nX-Up-Keep: 1\r\n\r\n",
                head.len()
            )
            .into_bytes();
            out.extend_from_slice(head.as_bytes());
            if s.write_all(&out).is_err() {
                return;
            }
        }
    })
}

/// Attempts per `x-try` + `x-proxy` key.
type Attempts = Arc<Mutex<HashMap<String, usize>>>;

/// An upstream that fails (503, body "fail") the first attempt of every request
/// (keyed by its `x-try` and `x-proxy` headers) and answers 200 "flaky-ok" to the
/// next ones; counts the attempts.
fn flaky_upstream() -> (Upstream, Attempts) {
    let attempts: Attempts = Arc::default();
    let seen = attempts.clone();
    let up = Upstream::start(move |mut s| {
        while let Some((head, _)) = read_request(&mut s) {
            let key = format!(
                "{}/{}",
                head_values(&head, "x-try").join(","),
                head_values(&head, "x-proxy").join(",")
            );
            let n = {
                let mut m = seen.lock().unwrap();
                let n = m.entry(key).or_insert(0);
                *n += 1;
                *n
            };
            let resp: &[u8] = if n == 1 {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nfail"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nflaky-ok"
            };
            if s.write_all(resp).is_err() {
                return;
            }
        }
    });
    (up, attempts)
}

/// An upstream that answers "slow" 1.5 s after each request.
fn slow_upstream() -> Upstream {
    Upstream::start(|mut s| {
        while read_request(&mut s).is_some() {
            std::thread::sleep(Duration::from_millis(1500));
            if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
                .is_err()
            {
                return;
            }
        }
    })
}

struct Upstreams {
    a: Upstream,
    b: Upstream,
    c: Upstream,
    d: Upstream,
    echo: Upstream,
    flaky: Upstream,
    attempts: Attempts,
    slow: Upstream,
}

// ---------------------------------------------------------------------------
// The snapshot

/// A header to add (append: APPEND_IF_EXISTS_OR_ADD, the default).
fn add(k: &str, v: &str) -> Value {
    json!({"header": {"key": k, "value": v}})
}

/// A header to set (OVERWRITE_IF_EXISTS_OR_ADD).
fn set(k: &str, v: &str) -> Value {
    json!({"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"})
}

fn prefix(p: &str) -> Value {
    json!({"prefix": p})
}

fn to(m: Value, cluster: &str) -> Value {
    json!({"match": m, "route": {"cluster": cluster}})
}

fn with_headers(mut m: Value, headers: Value) -> Value {
    m["headers"] = headers;
    m
}

fn with_query(mut m: Value, query: Value) -> Value {
    m["query_parameters"] = query;
    m
}

/// A virtual host for `domains` routing "/" to `cluster`, naming itself in the
/// response header x-vh.
fn domain_vhost(name: &str, domains: &[&str], cluster: &str) -> Value {
    json!({
        "name": name,
        "domains": domains,
        "routes": [to(prefix("/"), cluster)],
        "response_headers_to_add": [add("x-vh", name)]
    })
}

/// The routes of the "features" virtual host (features.test), in match order. No
/// catch-all: a path none of them matches gets 404. With `unknown`, "/unknown" goes
/// to a cluster that does not exist (the second snapshot).
fn feature_routes(unknown: bool) -> Value {
    let mut routes = json!([
        // path, case-insensitive prefix, safe_regex
        to(json!({"path": "/exact"}), "ca"),
        to(json!({"prefix": "/CaSe", "case_sensitive": false}), "cb"),
        to(json!({"safe_regex": {"regex": "/re/[0-9]+"}}), "cc"),
        // header matches, first match wins
        to(with_headers(prefix("/hdr"), json!([{"name": "x-env", "string_match": {"exact": "canary"}}])), "cb"),
        to(with_headers(prefix("/hdr"), json!([{"name": "x-debug", "present_match": true}])), "cc"),
        to(with_headers(prefix("/hdr"), json!([{"name": "x-user", "string_match": {"prefix": "admin-"}}])), "cd"),
        to(with_headers(prefix("/hdr"), json!([{"name": "x-env", "string_match": {"exact": "prod", "ignore_case": true}}])), "echo"),
        to(prefix("/hdr"), "ca"),
        // every header matcher must hold
        to(with_headers(prefix("/and"), json!([
            {"name": "x-a", "present_match": true},
            {"name": "x-b", "string_match": {"exact": "1"}}
        ])), "cb"),
        to(prefix("/and"), "ca"),
        // invert_match of an exact match (a missing header does not match)
        to(with_headers(prefix("/inv"), json!([{"name": "x-tier", "string_match": {"exact": "gold"}, "invert_match": true}])), "cb"),
        to(prefix("/inv"), "ca"),
        // invert_match of a presence test; present_match false
        to(with_headers(prefix("/notpresent"), json!([{"name": "x-p", "present_match": true, "invert_match": true}])), "cb"),
        to(prefix("/notpresent"), "ca"),
        to(with_headers(prefix("/absent"), json!([{"name": "x-p", "present_match": false}])), "cb"),
        to(prefix("/absent"), "ca"),
        // query parameters
        to(with_query(prefix("/q"), json!([{"name": "v", "string_match": {"exact": "2"}}])), "cb"),
        to(with_query(prefix("/q"), json!([{"name": "flag", "present_match": true}])), "cc"),
        to(prefix("/q"), "ca"),
        // weights
        {"match": prefix("/weighted"), "route": {"weighted_clusters": {"clusters": [
            {"name": "ca", "weight": 70}, {"name": "cb", "weight": 30}]}}},
        to(prefix("/lbw"), "cab"),
        // redirects and direct responses
        {"match": prefix("/redirect"), "redirect": {"host_redirect": "new.example", "response_code": "MOVED_PERMANENTLY"}},
        {"match": prefix("/https"), "redirect": {"https_redirect": true}},
        {"match": {"path": "/moved"}, "redirect": {"path_redirect": "/new-place", "response_code": "FOUND", "strip_query": true}},
        {"match": prefix("/pr-redirect/"), "redirect": {"prefix_rewrite": "/landing/", "response_code": "TEMPORARY_REDIRECT"}},
        {"match": prefix("/direct"), "direct_response": {"status": 200, "body": {"inline_string": "direct hello"}}},
        {"match": prefix("/teapot"), "direct_response": {"status": 418, "body": {"inline_string": "short and stout"}}},
        {"match": prefix("/nobody"), "direct_response": {"status": 204}},
        // rewrites
        {"match": prefix("/old"), "route": {"cluster": "echo", "prefix_rewrite": "/new"}},
        {"match": prefix("/strip/"), "route": {"cluster": "echo", "prefix_rewrite": "/"}},
        {"match": prefix("/rx/"), "route": {"cluster": "echo", "regex_rewrite": {
            "pattern": {"regex": "^/rx/(\\w+)/(\\w+)$"}, "substitution": "/swapped/\\2/\\1"}}},
        {"match": prefix("/hostrw"), "route": {"cluster": "echo", "host_rewrite_literal": "rewritten.example"}},
        // header mutations at route level (the vhost and the route configuration add theirs)
        {"match": prefix("/headers"), "route": {"cluster": "echo"},
         "request_headers_to_add": [add("x-route-req", "r"), set("x-level", "route"), add("x-multi", "route"), add("x-pct", "100%%")],
         "request_headers_to_remove": ["x-drop-me"],
         "response_headers_to_add": [add("x-route-resp", "r"), set("x-resp-level", "route")],
         "response_headers_to_remove": ["x-up-drop-route"]},
        to(prefix("/levels"), "echo"),
        // cluster from a header
        {"match": prefix("/by-header"), "route": {"cluster_header": "x-cluster"}},
        // retries (longest prefix first: first match wins)
        {"match": prefix("/retry-codes"), "route": {"cluster": "flaky", "retry_policy": {
            "retry_on": "retriable-status-codes", "retriable_status_codes": [503], "num_retries": 2}}},
        {"match": prefix("/retry"), "route": {"cluster": "flaky", "retry_policy": {"retry_on": "5xx", "num_retries": 2}}},
        to(prefix("/noretry"), "flaky"),
        // timeouts
        {"match": prefix("/slow"), "route": {"cluster": "slow", "timeout": "0.5s"}},
        {"match": prefix("/patient"), "route": {"cluster": "slow", "timeout": "3s"}},
        // a cluster that cannot serve
        to(prefix("/empty"), "empty"),
    ]);
    if unknown {
        routes
            .as_array_mut()
            .unwrap()
            .push(to(prefix("/unknown"), "does-not-exist"));
    }
    routes
}

/// Every resource of the snapshot, the listener on 127.0.0.1:`port`; `unknown`:
/// see [`feature_routes`]; `exact_to`: the cluster of exact.example.com.
fn snapshot(port: u16, u: &Upstreams, unknown: bool, exact_to: &str) -> Vec<Value> {
    let mut rc = route_config(
        "rc",
        json!([
            domain_vhost("exact", &["exact.example.com"], exact_to),
            domain_vhost("wild", &["*.example.com"], "cb"),
            domain_vhost("deep", &["*.deep.example.com"], "cc"),
            domain_vhost("api", &["api.*"], "echo"),
            domain_vhost("port", &["port.example.com:8080"], "cd"),
            {
                "name": "features",
                "domains": ["features.test"],
                "routes": feature_routes(unknown),
                "request_headers_to_add": [add("x-vhost-req", "v"), set("x-level", "vhost"), add("x-multi", "vhost")],
                "request_headers_to_remove": ["x-vhost-drop"],
                "response_headers_to_add": [add("x-vhost-resp", "v"), set("x-resp-level", "vhost")],
                "response_headers_to_remove": ["x-up-drop-vh"]
            },
            {
                "name": "retryhost",
                "domains": ["retry.test"],
                "retry_policy": {"retry_on": "5xx", "num_retries": 1},
                "routes": [to(prefix("/"), "flaky")]
            },
            domain_vhost("default", &["*"], "cd"),
        ]),
    );
    rc["request_headers_to_add"] = json!([
        add("x-rc-req", "g"),
        set("x-level", "global"),
        add("x-multi", "global")
    ]);
    rc["request_headers_to_remove"] = json!(["x-rc-drop"]);
    rc["response_headers_to_add"] = json!([add("x-rc-resp", "g"), set("x-resp-level", "global")]);
    vec![
        listener_http("l", port, "rc"),
        rc,
        cluster_eds("ca"),
        cla("ca", &[(u.a.addr, 1)]),
        cluster_eds("cb"),
        cla("cb", &[(u.b.addr, 1)]),
        cluster_static("cc", &[u.c.addr]),
        cluster_static("cd", &[u.d.addr]),
        cluster_eds("cab"),
        cla("cab", &[(u.a.addr, 3), (u.b.addr, 1)]),
        cluster_eds("echo"),
        cla("echo", &[(u.echo.addr, 1)]),
        cluster_static("flaky", &[u.flaky.addr]),
        cluster_static("slow", &[u.slow.addr]),
        cluster_eds("empty"),
        cla("empty", &[]),
    ]
}

// ---------------------------------------------------------------------------
// The table

#[derive(Clone)]
struct Case {
    name: &'static str,
    host: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    /// Compare the body (or, from the echo upstream, its request line).
    body: bool,
    /// Response headers to compare (all their values).
    resp: Vec<&'static str>,
    /// Request headers the echo upstream got, to compare.
    up: Vec<&'static str>,
    /// Why mosn-rs is expected to differ (left out of the assertion).
    gap: Option<&'static str>,
}

fn case(name: &'static str, host: &'static str, path: &'static str) -> Case {
    Case {
        name,
        host,
        path,
        headers: vec![],
        body: true,
        resp: vec![],
        up: vec![],
        gap: None,
    }
}

impl Case {
    fn h(mut self, k: &'static str, v: &'static str) -> Case {
        self.headers.push((k, v));
        self
    }
    fn resp(mut self, names: &[&'static str]) -> Case {
        self.resp.extend_from_slice(names);
        self
    }
    fn up(mut self, names: &[&'static str]) -> Case {
        self.up.extend_from_slice(names);
        self
    }
    /// A local reply: its body is the proxy's own text.
    fn no_body(mut self) -> Case {
        self.body = false;
        self
    }
    fn gap(mut self, why: &'static str) -> Case {
        self.gap = Some(why);
        self
    }
}

const F: &str = "features.test";

fn table() -> Vec<Case> {
    let up_levels = [
        "host",
        "x-route-req",
        "x-vhost-req",
        "x-rc-req",
        "x-multi",
        "x-pct",
        "x-drop-me",
        "x-vhost-drop",
        "x-rc-drop",
    ];
    let resp_levels = [
        "x-route-resp",
        "x-vhost-resp",
        "x-rc-resp",
        "x-upstream",
        "x-up-drop-vh",
        "x-up-drop-route",
        "x-up-keep",
    ];
    let vh = ["x-vh"];
    let local = ["x-vhost-resp", "x-rc-resp"];
    // Set (OVERWRITE_IF_EXISTS_OR_ADD) at the route, the vhost and the route
    // configuration: Envoy applies the route's first, so the least specific wins.
    let overwritten = ["x-level", "x-resp-level"];
    vec![
        // virtual hosts by domain
        case("exact domain", "exact.example.com", "/").resp(&vh),
        case("exact domain, other case", "EXACT.Example.COM", "/").resp(&vh),
        // KNOWN GAP: Envoy matches the Host header with its port (no
        // ignore_port_in_host_matching, no strip_*_host_port in the HCM), so
        // exact.example.com:8080 falls to "*"; mosn-rs strips the port first
        // (crates/router/src/domain.rs strip_port) and picks exact.example.com.
        case("exact domain with a port", "exact.example.com:8080", "/")
            .resp(&vh)
            .gap(
                "Host with a port: mosn-rs strips the port before matching domains, Envoy does not",
            ),
        case("domain with a port", "port.example.com:8080", "/").resp(&vh),
        // KNOWN GAP: same cause; the converter warns that "port.example.com:8080"
        // matches port.example.com on any port.
        case(
            "domain with a port, other port",
            "port.example.com:9090",
            "/",
        )
        .resp(&vh)
        .gap("domain host:port: mosn-rs matches it on any port, Envoy only on that port"),
        case("suffix wildcard", "www.example.com", "/").resp(&vh),
        case("suffix wildcard, two labels", "a.b.example.com", "/").resp(&vh),
        case("longest suffix wildcard wins", "x.deep.example.com", "/").resp(&vh),
        case("bare domain is not *.example.com", "example.com", "/").resp(&vh),
        case("prefix wildcard", "api.internal", "/p")
            .resp(&vh)
            .up(&["host"]),
        case("default vhost", "unknown.host", "/").resp(&vh),
        // path, prefix, regex
        case("path", F, "/exact"),
        case("path ignores the query", F, "/exact?q=1"),
        case("path is not a prefix", F, "/exact/")
            .no_body()
            .resp(&local),
        case("path is case sensitive", F, "/EXACT").no_body(),
        case("case-insensitive prefix", F, "/case/x"),
        case("case-insensitive prefix, upper", F, "/CASE"),
        case("regex", F, "/re/123"),
        case("regex with a query", F, "/re/42?x=1"),
        case("regex must match the whole path", F, "/re/12a").no_body(),
        case("no route: 404", F, "/nothing-here")
            .no_body()
            .resp(&local),
        // header matchers
        case("header exact", F, "/hdr").h("x-env", "canary"),
        case("header exact, other value", F, "/hdr").h("x-env", "stable"),
        case("header exact is case sensitive", F, "/hdr").h("x-env", "CANARY"),
        case("header present", F, "/hdr").h("x-debug", ""),
        case("header prefix", F, "/hdr").h("x-user", "admin-joe"),
        case("header prefix, no match", F, "/hdr").h("x-user", "joe-admin"),
        case("header exact ignore_case", F, "/hdr")
            .h("x-env", "PrOd")
            .up(&["x-env"]),
        case("header: first matching route wins", F, "/hdr")
            .h("x-debug", "1")
            .h("x-env", "canary"),
        case("no header: fallback", F, "/hdr"),
        case("all header matchers hold", F, "/and")
            .h("x-a", "")
            .h("x-b", "1"),
        case("one header matcher fails", F, "/and").h("x-a", "1"),
        case("inverted exact, other value", F, "/inv").h("x-tier", "silver"),
        case("inverted exact, same value", F, "/inv").h("x-tier", "gold"),
        // A missing header never matches a value test, inverted or not (only an
        // inverted present_match matches it).
        case("inverted exact, header missing", F, "/inv"),
        case("inverted present, header missing", F, "/notpresent"),
        case("inverted present, header there", F, "/notpresent").h("x-p", "1"),
        case("present_match false, header missing", F, "/absent"),
        case("present_match false, header there", F, "/absent").h("x-p", "1"),
        // query parameters
        case("query exact", F, "/q?v=2"),
        case("query exact, other value", F, "/q?v=3"),
        case("query present", F, "/q?flag"),
        case("query present with a value", F, "/q?a=1&flag=yes"),
        case("query: first matching route wins", F, "/q?flag=&v=2"),
        case("query names are case sensitive", F, "/q?V=2"),
        // KNOWN GAP: Envoy compares query values as sent; mosn-rs percent-decodes
        // them first, so v=%32 matches an exact "2".
        case("query values are not percent-decoded", F, "/q?v=%32")
            .gap("query parameter values: mosn-rs percent-decodes before matching, Envoy does not"),
        // redirects, direct responses
        case("host redirect 301", F, "/redirect/x?y=1")
            .resp(&["location"])
            .no_body(),
        case("https redirect", F, "/https/p")
            .resp(&["location"])
            .no_body(),
        case("path redirect 302, strip query", F, "/moved?a=1")
            .resp(&["location"])
            .no_body(),
        case("prefix rewrite redirect 307", F, "/pr-redirect/x?k=v")
            .resp(&["location"])
            .no_body(),
        case("direct response 200", F, "/direct").resp(&["content-type"]),
        case("direct response 418", F, "/teapot"),
        case("direct response 204, no body", F, "/nobody"),
        case("direct response gets vhost and rc headers", F, "/direct").resp(&local),
        // rewrites (the echo upstream shows the request line and Host)
        case("prefix rewrite", F, "/old/x?y=1").up(&["host"]),
        case("prefix rewrite to /", F, "/strip/deep/path"),
        case("regex rewrite", F, "/rx/one/two"),
        case("host rewrite literal", F, "/hostrw/p").up(&["host"]),
        // header mutations at three levels
        case("route + vhost + rc header mutations", F, "/headers")
            .h("x-drop-me", "1")
            .h("x-vhost-drop", "1")
            .h("x-rc-drop", "1")
            .h("x-level", "client")
            .h("x-multi", "client")
            .up(&up_levels)
            .resp(&resp_levels),
        case("vhost + rc header mutations", F, "/levels")
            .h("x-drop-me", "1")
            .h("x-vhost-drop", "1")
            .h("x-rc-drop", "1")
            .h("x-level", "client")
            .up(&up_levels)
            .resp(&resp_levels),
        // A header set (OVERWRITE_IF_EXISTS_OR_ADD) at several levels: one value,
        // the route configuration's (levels apply route first, each replacing the
        // last).
        case("header set at route, vhost and rc", F, "/headers")
            .h("x-level", "client")
            .up(&overwritten)
            .resp(&overwritten),
        case("header set at vhost and rc", F, "/levels")
            .h("x-level", "client")
            .up(&overwritten)
            .resp(&overwritten),
        case("direct response: header set at vhost and rc", F, "/direct").resp(&overwritten),
        case("header set at rc only", "api.x", "/levels")
            .h("x-level", "client")
            .up(&overwritten)
            .resp(&overwritten),
        case("other vhost: rc mutations only", "api.x", "/levels")
            .h("x-vhost-drop", "1")
            .h("x-rc-drop", "1")
            .up(&up_levels)
            .resp(&resp_levels),
        // cluster_header
        case("cluster_header names a cluster", F, "/by-header").h("x-cluster", "cc"),
        case("cluster_header names an unknown cluster", F, "/by-header")
            .h("x-cluster", "nope")
            .no_body(),
        // No cluster header: 503 (cluster not found, as for an unknown name).
        case("cluster_header missing", F, "/by-header").no_body(),
        // retries
        case("retry_on 5xx: second attempt answers", F, "/retry").h("x-try", "r1"),
        case("retriable-status-codes 503", F, "/retry-codes").h("x-try", "r2"),
        case("no retry policy: the 503 passes", F, "/noretry").h("x-try", "r3"),
        case("vhost retry_policy", "retry.test", "/").h("x-try", "r4"),
        // timeouts
        case("route timeout: 504", F, "/slow").no_body(),
        case("upstream within the timeout", F, "/patient"),
        // a cluster that cannot serve
        case("cluster without endpoints: 503", F, "/empty").no_body(),
    ]
}

/// The cases of the second snapshot (v2: the first plus a route to a cluster that
/// does not exist).
fn table_v2() -> Vec<Case> {
    let local = ["x-vhost-resp", "x-rc-resp"];
    vec![
        // Both ACK a RouteConfiguration naming a cluster they do not have (RDS does
        // not validate clusters) and answer 503 on that route only.
        case("unknown cluster: 503", F, "/unknown").no_body(),
        // KNOWN GAP: Envoy adds the virtual host's and route configuration's
        // response headers to its own 503; mosn-rs's local replies carry none.
        case(
            "unknown cluster: 503 with the route's response headers",
            F,
            "/unknown",
        )
        .no_body()
        .resp(&local)
        .gap("local replies of a routed request lack response_headers_to_add in mosn-rs"),
        case("v1 routes still answer alike", F, "/exact"),
    ]
}

// ---------------------------------------------------------------------------
// Requests and outcomes

/// Every value of header `name` in a message head (its lines after the first),
/// comma-separated lists split.
fn head_values(head: &str, name: &str) -> Vec<String> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|x| x.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[derive(Debug, PartialEq)]
struct Outcome {
    status: u16,
    body: Option<String>,
    resp: Vec<(&'static str, Vec<String>)>,
    up: Vec<(&'static str, Vec<String>)>,
    attempts: Option<usize>,
}

fn exchange(port: u16, req: &[u8]) -> Option<Response> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(req).ok()?;
    read_response(&mut s, false)
}

fn run_case(port: u16, proxy: &str, c: &Case, attempts: &Attempts) -> Outcome {
    let mut req = format!("GET {} HTTP/1.1\r\nHost: {}\r\n", c.path, c.host);
    for (k, v) in &c.headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("x-proxy: {proxy}\r\nConnection: close\r\n\r\n"));
    let Some(r) = exchange(port, req.as_bytes()) else {
        return Outcome {
            status: 0,
            body: Some("no response".into()),
            resp: vec![],
            up: vec![],
            attempts: None,
        };
    };
    let text = r.body_text();
    let echoed = text.starts_with("GET ");
    let body = c.body.then(|| {
        if echoed {
            text.lines().next().unwrap_or("").to_string()
        } else {
            text.clone()
        }
    });
    let up =
        c.up.iter()
            .map(|n| {
                (
                    *n,
                    if echoed {
                        head_values(&text, n)
                    } else {
                        vec!["(not echoed)".into()]
                    },
                )
            })
            .collect();
    let resp = c
        .resp
        .iter()
        .map(|n| (*n, head_values(&r.head, n)))
        .collect();
    let attempts = c.headers.iter().find(|(k, _)| *k == "x-try").map(|(_, v)| {
        *attempts
            .lock()
            .unwrap()
            .get(&format!("{v}/{proxy}"))
            .unwrap_or(&0)
    });
    Outcome {
        status: r.status,
        body,
        resp,
        up,
        attempts,
    }
}

/// How often each body came back over `n` requests for `path` on keep-alive
/// connections.
fn tally(port: u16, path: &str, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    let mut conn: Option<std::net::TcpStream> = None;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {F}\r\n\r\n");
    let mut done = 0;
    let mut failures = 0;
    while done < n {
        let s = conn.get_or_insert_with(|| connect(port));
        let got = s
            .write_all(req.as_bytes())
            .ok()
            .and_then(|_| read_response(s, false));
        match got {
            Some(r) => {
                let key = if r.status == 200 {
                    r.body_text()
                } else {
                    format!("status {}", r.status)
                };
                *counts.entry(key).or_insert(0) += 1;
                if r.header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                {
                    conn = None;
                }
                done += 1;
            }
            None => {
                conn = None;
                failures += 1;
                assert!(
                    failures < 10,
                    "{path} on port {port}: connections keep failing"
                );
            }
        }
    }
    counts
}

fn share(counts: &HashMap<String, usize>, tag: &str) -> f64 {
    let total: usize = counts.values().sum();
    *counts.get(tag).unwrap_or(&0) as f64 / total.max(1) as f64
}

// ---------------------------------------------------------------------------

/// Waits until `server`'s only client ACKed every type at `version`; panics with
/// the NACK reasons otherwise.
fn wait_all_acked(server: &XdsServer, who: &str, version: &str) {
    if !server.wait_acked(&[CDS, EDS, LDS, RDS], version, LIMIT) {
        let evs = server.events();
        let nacks: Vec<String> = [CDS, EDS, LDS, RDS]
            .iter()
            .filter_map(|t| nacked(&evs, t).map(|m| format!("{t}: {m}")))
            .collect();
        panic!("{who} did not ACK {version}: NACKs {nacks:#?}\nevents: {evs:#?}");
    }
}

/// Polls `port` until exact.example.com answers "a".
fn wait_serving(port: u16, who: &str) {
    let probe = "GET / HTTP/1.1\r\nHost: exact.example.com\r\nConnection: close\r\n\r\n";
    let deadline = Instant::now() + LIMIT;
    loop {
        let r = exchange(port, probe.as_bytes());
        if r.as_ref()
            .is_some_and(|r| r.status == 200 && r.body == b"a")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who} does not serve the snapshot on {port}: {:?}",
            r.map(|r| (r.status, r.body_text()))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the table found: differences that fail the test, known gaps, and known gaps
/// that now answer alike.
#[derive(Default)]
struct Findings {
    failures: Vec<String>,
    gaps: Vec<String>,
    fixed: Vec<&'static str>,
    cases: usize,
}

impl Findings {
    fn run(&mut self, cases: &[Case], ports: (u16, u16), attempts: &Attempts, note: &str) {
        for c in cases {
            self.cases += 1;
            let e = run_case(ports.0, "envoy", c, attempts);
            let m = run_case(ports.1, "mosn", c, attempts);
            let report = format!(
                "{} (Host {}, GET {}, headers {:?})\n  envoy:   {e:?}\n  mosn-rs: {m:?}",
                c.name, c.host, c.path, c.headers
            );
            match (c.gap, e == m) {
                (None, true) => {}
                (None, false) => self.failures.push(report),
                (Some(why), false) => self.gaps.push(format!("{report}\n  gap: {why}{note}")),
                (Some(_), true) => self.fixed.push(c.name),
            }
        }
    }
}

/// Whether `server`'s client answered (ACK or NACK) the `type_url` response of
/// `version`; the NACK's message if it was one.
fn answered(server: &XdsServer, type_url: &str, version: &str) -> Option<Option<String>> {
    server.events().iter().find_map(|e| {
        (e["event"] == "request"
            && e["type_url"] == type_url
            && e["response_version"] == version
            && e["ack"].is_boolean())
        .then(|| {
            (e["ack"] == json!(false)).then(|| {
                e["error_detail"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
        })
    })
}

#[test]
fn envoy_and_mosn_answer_alike() {
    let started = Instant::now();
    let Some(envoy_xds) = XdsServer::start() else {
        return;
    };
    let Some(mosn_xds) = XdsServer::start() else {
        return;
    };
    let (flaky, attempts) = flaky_upstream();
    let u = Upstreams {
        a: tagged_upstream("a"),
        b: tagged_upstream("b"),
        c: tagged_upstream("c"),
        d: tagged_upstream("d"),
        echo: echo_headers_upstream(),
        flaky,
        attempts,
        slow: slow_upstream(),
    };
    let (envoy_port, mosn_port) = (free_port(), free_port());
    let ports = (envoy_port, mosn_port);
    envoy_xds.snapshot("v1", snapshot(envoy_port, &u, false, "ca"));
    mosn_xds.snapshot("v1", snapshot(mosn_port, &u, false, "ca"));

    let bootstrap = envoy_ads_bootstrap_variant(envoy_xds.port(), "envoy", 0, AdsVariant::Delta);
    let Some(envoy) = EnvoyProxy::start(&bootstrap) else {
        return;
    };
    let admin = free_port();
    let bootstrap = envoy_ads_bootstrap_variant(mosn_xds.port(), "mosn", admin, AdsVariant::Delta);
    let mosn = Mosn::start(&bootstrap.to_string(), &[admin]);

    wait_all_acked(&envoy_xds, "envoy", "v1");
    wait_all_acked(&mosn_xds, "mosn-rs", "v1");
    assert!(
        envoy.wait_live(LIMIT),
        "envoy not LIVE:\n{}",
        envoy.log_text()
    );
    wait_serving(envoy_port, "envoy");
    wait_serving(mosn_port, "mosn-rs");
    let ready = started.elapsed();

    let mut found = Findings::default();
    found.run(&table(), ports, &u.attempts, "");

    // Proportions over many requests: weighted clusters 70/30, endpoint weights 3:1.
    let mut weights = Vec::new();
    for (path, tag, want) in [("/weighted", "a", 0.7), ("/lbw", "a", 0.75)] {
        let e = tally(envoy_port, path, WEIGHTED_REQUESTS);
        let m = tally(mosn_port, path, WEIGHTED_REQUESTS);
        let (es, ms) = (share(&e, tag), share(&m, tag));
        weights.push(format!(
            "{path}: share of {tag} envoy {es:.3} mosn-rs {ms:.3} (want {want}); envoy {e:?} mosn-rs {m:?}"
        ));
        for (who, counts, s) in [("envoy", &e, es), ("mosn-rs", &m, ms)] {
            let only_ab = counts.keys().all(|k| k == "a" || k == "b");
            if !only_ab || (s - want).abs() > TOLERANCE {
                found.failures.push(format!(
                    "{path} on {who}: share of {tag} {s:.3}, want {want} ± {TOLERANCE}: {counts:?}"
                ));
            }
        }
    }

    // v2: a route to a cluster that does not exist. Envoy ACKs it.
    envoy_xds.snapshot("v2", snapshot(envoy_port, &u, true, "ca"));
    mosn_xds.snapshot("v2", snapshot(mosn_port, &u, true, "ca"));
    assert!(
        envoy_xds.wait_acked(&[RDS], "v2", LIMIT),
        "envoy did not ACK v2: {:?}",
        envoy_xds.nacked(RDS)
    );
    let mut mosn_v2 = None;
    assert!(
        mosn_xds.wait_for(LIMIT, |_| {
            mosn_v2 = answered(&mosn_xds, RDS, "v2");
            mosn_v2.is_some()
        }),
        "mosn-rs did not answer RDS v2"
    );
    let note = match mosn_v2.flatten() {
        Some(nack) => format!(" (mosn-rs NACKed RDS v2: {nack})"),
        None => String::new(),
    };
    found.run(&table_v2(), ports, &u.attempts, &note);

    // v3: exact.example.com moves from ca to cb. A keep-alive connection opened
    // before the update, and a new one, after each proxy ACKed it.
    let mut before: Vec<std::net::TcpStream> = [envoy_port, mosn_port]
        .iter()
        .map(|&p| connect(p))
        .collect();
    let on_before = |s: &mut std::net::TcpStream| {
        let req = b"GET / HTTP/1.1\r\nHost: exact.example.com\r\n\r\n";
        s.write_all(req).ok()?;
        read_response(s, false).map(|r| (r.status, r.body_text()))
    };
    let first: Vec<_> = before.iter_mut().map(on_before).collect();
    assert_eq!(first[0], Some((200, "a".to_string())), "envoy before v3");
    assert_eq!(first[1], Some((200, "a".to_string())), "mosn-rs before v3");
    envoy_xds.snapshot("v3", snapshot(envoy_port, &u, false, "cb"));
    mosn_xds.snapshot("v3", snapshot(mosn_port, &u, false, "cb"));
    assert!(
        envoy_xds.wait_acked(&[RDS], "v3", LIMIT),
        "envoy did not ACK v3"
    );
    assert!(
        mosn_xds.wait_acked(&[RDS], "v3", LIMIT),
        "mosn-rs did not ACK v3"
    );
    found.run(
        &[case("RDS update: new connection", "exact.example.com", "/").resp(&["x-vh"])],
        ports,
        &u.attempts,
        "",
    );
    let after: Vec<_> = before.iter_mut().map(on_before).collect();
    found.cases += 1;
    // Both route the next request on an open connection by the newest
    // RouteConfiguration.
    assert_eq!(
        after[0], after[1],
        "RDS update: keep-alive connection opened before it (Host exact.example.com, GET /)"
    );

    eprintln!(
        "{} cases + 2 proportion checks; ready after {ready:?}, done after {:?}",
        found.cases,
        started.elapsed()
    );
    for w in &weights {
        eprintln!("{w}");
    }
    if !found.gaps.is_empty() {
        eprintln!("KNOWN GAPS ({}):", found.gaps.len());
        for g in &found.gaps {
            eprintln!("{g}");
        }
    }
    if !found.fixed.is_empty() {
        eprintln!(
            "known gaps that now answer like Envoy (drop their mark): {:?}",
            found.fixed
        );
    }
    assert!(
        found.failures.is_empty(),
        "{} of {} cases differ:\n{}\nmosn-rs log (tail):\n{}",
        found.failures.len(),
        found.cases,
        found.failures.join("\n"),
        tail(&mosn.log_text(), 40)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
