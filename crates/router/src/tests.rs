use super::*;
use crate::domain::strip_port;
use bytes::Bytes;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A request for tests. `path` may carry a query (`/p?q`): `path()` gives the part
/// before `?` and `query()` the part after, as the proxy's view does.
pub(crate) struct Req {
    pub(crate) host: Vec<u8>,
    pub(crate) path: Vec<u8>,
    pub(crate) query: Vec<u8>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) method: Vec<u8>,
    pub(crate) scheme: Vec<u8>,
    pub(crate) peer: Option<std::net::IpAddr>,
    pub(crate) vars: Vec<(String, Vec<u8>)>,
    /// `path?query` for `header(":path")`.
    target: Vec<u8>,
}

impl Req {
    pub(crate) fn new(host: &str, target: &str) -> Req {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Req {
            host: host.as_bytes().to_vec(),
            path: path.as_bytes().to_vec(),
            query: query.as_bytes().to_vec(),
            headers: Vec::new(),
            method: b"GET".to_vec(),
            scheme: b"http".to_vec(),
            peer: None,
            vars: Vec::new(),
            target: target.as_bytes().to_vec(),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Req {
        self.headers
            .push((name.to_owned(), value.as_bytes().to_vec()));
        self
    }

    pub(crate) fn method(mut self, method: &str) -> Req {
        self.method = method.as_bytes().to_vec();
        self
    }

    pub(crate) fn scheme(mut self, scheme: &str) -> Req {
        self.scheme = scheme.as_bytes().to_vec();
        self
    }

    pub(crate) fn peer(mut self, ip: &str) -> Req {
        self.peer = Some(ip.parse().expect("IP"));
        self
    }

    pub(crate) fn var(mut self, name: &str, value: &str) -> Req {
        self.vars.push((name.to_owned(), value.as_bytes().to_vec()));
        self
    }
}

impl RequestView for Req {
    fn host(&self) -> &[u8] {
        &self.host
    }
    fn path(&self) -> &[u8] {
        &self.path
    }
    fn header(&self, lower_name: &str) -> Option<&[u8]> {
        if lower_name == ":path" {
            return Some(&self.target);
        }
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(lower_name))
            .map(|(_, v)| v.as_slice())
    }
    fn query(&self) -> &[u8] {
        &self.query
    }
    fn method(&self) -> &[u8] {
        &self.method
    }
    fn scheme(&self) -> &[u8] {
        &self.scheme
    }
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.peer
    }
    fn variable(&self, name: &str) -> Option<&[u8]> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

pub(crate) fn router_cfg(v: Value) -> cfg::RouterConfiguration {
    serde_json::from_value(v).expect("router config JSON")
}

pub(crate) fn table(v: Value) -> RouteTable {
    RouteTable::build(&router_cfg(v)).expect("route table builds")
}

pub(crate) fn try_table(v: Value) -> Result<RouteTable, RouterError> {
    RouteTable::build(&router_cfg(v))
}

/// A virtual host whose only route answers `status` directly, to tell hosts apart.
pub(crate) fn vhost(name: &str, domains: &[&str], status: u16) -> Value {
    json!({
        "name": name,
        "domains": domains,
        "routers": [{"match": {"prefix": "/"}, "direct_response": {"status": status}}]
    })
}

/// One virtual host `*` with the given routes.
pub(crate) fn routes(routes: Value) -> RouteTable {
    table(json!({
        "router_config_name": "r",
        "virtual_hosts": [{"name": "vh", "domains": ["*"], "routers": routes}]
    }))
}

pub(crate) fn status_of(t: &RouteTable, host: &str) -> Option<u16> {
    match t.route(&Req::new(host, "/")) {
        Some(Route {
            action: RouteAction::DirectResponse { status, .. },
            ..
        }) => Some(*status),
        Some(other) => panic!("unexpected route {other:?}"),
        None => None,
    }
}

pub(crate) fn cluster_of(t: &RouteTable, req: &Req) -> Option<String> {
    t.route(req).map(|r| match &r.action {
        RouteAction::Cluster(action) => action
            .pick_cluster(req, 0)
            .map(|c| c.name.to_owned())
            .unwrap_or_default(),
        other => panic!("unexpected action {other:?}"),
    })
}

pub(crate) fn to(cluster: &str) -> Value {
    json!({"cluster_name": cluster})
}

#[test]
fn domain_precedence() {
    let t = table(json!({
        "router_config_name": "r",
        "virtual_hosts": [
            vhost("default", &["*"], 200),
            vhost("prefix", &["www.*"], 201),
            vhost("suffix", &["*.a.com"], 202),
            vhost("exact", &["www.a.com"], 203),
        ]
    }));
    assert_eq!(
        status_of(&t, "www.a.com"),
        Some(203),
        "exact beats suffix and prefix"
    );
    assert_eq!(status_of(&t, "api.a.com"), Some(202));
    assert_eq!(
        status_of(&t, "www2.a.com"),
        Some(202),
        "suffix beats prefix"
    );
    assert_eq!(status_of(&t, "www.b.org"), Some(201));
    assert_eq!(status_of(&t, "b.org"), Some(200));
    assert_eq!(status_of(&t, ""), Some(200));
    // The wildcard must stand for at least one character.
    assert_eq!(status_of(&t, ".a.com"), Some(200));
    assert_eq!(status_of(&t, "www."), Some(200));
    assert_eq!(status_of(&t, "a.com"), Some(200));
}

#[test]
fn longest_wildcard_wins() {
    let t = table(json!({
        "router_config_name": "r",
        "virtual_hosts": [
            vhost("short-suffix", &["*.foo.com"], 200),
            vhost("long-suffix", &["*-bar.foo.com"], 201),
            vhost("short-prefix", &["api.*"], 202),
            vhost("long-prefix", &["api.v2.*"], 203),
        ]
    }));
    assert_eq!(status_of(&t, "foo-bar.foo.com"), Some(201));
    assert_eq!(status_of(&t, "foo.foo.com"), Some(200));
    assert_eq!(
        status_of(&t, "-bar.foo.com"),
        Some(200),
        "'*-bar' needs a character"
    );
    assert_eq!(status_of(&t, "api.v2.example"), Some(203));
    assert_eq!(status_of(&t, "api.v3.example"), Some(202));
    assert_eq!(status_of(&t, "nothing.example"), None);
}

#[test]
fn port_is_stripped() {
    let t = table(json!({
        "router_config_name": "r",
        "virtual_hosts": [
            vhost("name", &["www.a.com"], 200),
            vhost("v6", &["[::1]"], 201),
            vhost("bare-v6", &["::1"], 202),
            vhost("v4", &["127.0.0.1"], 203),
        ]
    }));
    assert_eq!(status_of(&t, "www.a.com:8080"), Some(200));
    assert_eq!(status_of(&t, "www.a.com:"), Some(200));
    assert_eq!(status_of(&t, "[::1]:8080"), Some(201));
    assert_eq!(status_of(&t, "[::1]"), Some(201));
    assert_eq!(
        status_of(&t, "::1"),
        Some(202),
        "a bare IPv6 address has no port"
    );
    assert_eq!(status_of(&t, "127.0.0.1:80"), Some(203));
    assert_eq!(status_of(&t, "www.a.com:http"), None, "not a port");
}

#[test]
fn strip_port_forms() {
    let cases: &[(&str, &str)] = &[
        ("a.com", "a.com"),
        ("a.com:80", "a.com"),
        ("a.com:", "a.com"),
        ("a.com:8x", "a.com:8x"),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("[::1]x", "[::1]x"),
        ("[::1", "[::1"),
        ("::1", "::1"),
        ("fe80::1:80", "fe80::1:80"),
        ("", ""),
    ];
    for (host, want) in cases {
        assert_eq!(strip_port(host.as_bytes()), want.as_bytes(), "{host:?}");
    }
}

#[test]
fn domains_are_case_insensitive() {
    let t = table(json!({
        "router_config_name": "r",
        "virtual_hosts": [
            vhost("exact", &["Www.A.com"], 200),
            vhost("suffix", &["*.Example.COM"], 201),
            vhost("prefix", &["API.*"], 202),
        ]
    }));
    assert_eq!(status_of(&t, "WWW.a.COM"), Some(200));
    assert_eq!(status_of(&t, "www.a.com"), Some(200));
    assert_eq!(status_of(&t, "X.EXAMPLE.com:443"), Some(201));
    assert_eq!(status_of(&t, "api.Internal"), Some(202));
    // Longer than the stack buffer, and with upper case: the heap path.
    let long = format!("{}.EXAMPLE.COM", "X".repeat(300));
    assert_eq!(status_of(&t, &long), Some(201));
    let long_lower = format!("{}.example.com", "x".repeat(300));
    assert_eq!(status_of(&t, &long_lower), Some(201));
}

#[test]
fn no_virtual_host_no_route() {
    let t = table(json!({
        "router_config_name": "r",
        "virtual_hosts": [vhost("only", &["a.com"], 200)]
    }));
    assert_eq!(status_of(&t, "b.com"), None);
    let empty = table(json!({"router_config_name": "r", "virtual_hosts": []}));
    assert!(empty.route(&Req::new("a.com", "/")).is_none());
}

#[test]
fn only_default_host_skips_host_parsing() {
    let t = table(json!({
        "router_config_name": "r",
        "virtual_hosts": [vhost("any", &["*"], 200)]
    }));
    assert_eq!(status_of(&t, "whatever:1"), Some(200));
    assert_eq!(status_of(&t, ""), Some(200));
}

#[test]
fn path_matchers() {
    let t = routes(json!([
        {"match": {"path": "/exact"}, "route": to("path")},
        {"match": {"regex": "/a"}, "route": to("regex-a")},
        {"match": {"regex": "/re/[0-9]+"}, "route": to("regex-num")},
        {"match": {"regex": "x|/alt"}, "route": to("regex-alt")},
        {"match": {"prefix": "/pre"}, "route": to("prefix")},
        {"match": {"headers": [{"name": "x-any", "value": "1"}]}, "route": to("any-path")},
    ]));
    let c = |path: &str| cluster_of(&t, &Req::new("h", path));
    assert_eq!(c("/exact").as_deref(), Some("path"));
    assert_eq!(c("/exact/").as_deref(), None);
    assert_eq!(c("/Exact").as_deref(), None, "case-sensitive by default");
    assert_eq!(c("/a").as_deref(), Some("regex-a"));
    assert_eq!(c("/ab").as_deref(), None, "regex must match the whole path");
    assert_eq!(c("x/a").as_deref(), None, "regex must match from the start");
    assert_eq!(c("/re/123").as_deref(), Some("regex-num"));
    assert_eq!(c("/re/123/x").as_deref(), None);
    // The anchors wrap the whole alternation, not just its ends.
    assert_eq!(c("x").as_deref(), Some("regex-alt"));
    assert_eq!(c("/alt").as_deref(), Some("regex-alt"));
    assert_eq!(c("xy").as_deref(), None);
    assert_eq!(c("/prefix/and/more").as_deref(), Some("prefix"));
    assert_eq!(c("/pre").as_deref(), Some("prefix"));
    assert_eq!(c("/PRE").as_deref(), None);
    let with_header = Req::new("h", "/anything").header("X-Any", "1");
    assert_eq!(cluster_of(&t, &with_header).as_deref(), Some("any-path"));
}

#[test]
fn case_insensitive_paths() {
    let t = routes(json!([
        {"match": {"path": "/Foo", "case_sensitive": false}, "route": to("path")},
        {"match": {"prefix": "/API/", "case_sensitive": false}, "route": to("prefix")},
        {"match": {"regex": "/re/[a-z]+", "case_sensitive": false}, "route": to("regex")},
        {"match": {"prefix": "/Strict", "case_sensitive": true}, "route": to("strict")},
    ]));
    let c = |path: &str| cluster_of(&t, &Req::new("h", path));
    assert_eq!(c("/FOO").as_deref(), Some("path"));
    assert_eq!(c("/foo").as_deref(), Some("path"));
    assert_eq!(c("/foo/").as_deref(), None);
    assert_eq!(c("/api/v1").as_deref(), Some("prefix"));
    assert_eq!(c("/Api/").as_deref(), Some("prefix"));
    assert_eq!(c("/ap").as_deref(), None, "shorter than the prefix");
    assert_eq!(c("/RE/ABC").as_deref(), Some("regex"));
    assert_eq!(c("/re/abc/").as_deref(), None);
    assert_eq!(c("/Strict/x").as_deref(), Some("strict"));
    assert_eq!(c("/strict/x").as_deref(), None);
}

#[test]
fn header_matchers() {
    let t = routes(json!([
        {"match": {"prefix": "/", "headers": [
            {"name": "X-Env", "value": "canary"},
            {"name": ":method", "value": "POST"}
        ]}, "route": to("canary-post")},
        {"match": {"prefix": "/", "headers": [{"name": "x-env", "value": "canary"}]},
         "route": to("canary")},
        {"match": {"prefix": "/", "headers": [{"name": "x-version", "value": "v[0-9]+", "regex": true}]},
         "route": to("versioned")},
        {"match": {"prefix": "/", "headers": [{"name": "x-empty", "value": ""}]},
         "route": to("empty")},
        {"match": {"prefix": "/"}, "route": to("fallback")},
    ]));
    let c = |req: Req| cluster_of(&t, &req);
    let req = || Req::new("h", "/x");
    assert_eq!(
        c(req().header("x-env", "canary").method("POST")).as_deref(),
        Some("canary-post")
    );
    assert_eq!(
        c(req().header("x-env", "canary").method("GET")).as_deref(),
        Some("canary")
    );
    assert_eq!(
        c(req().header("X-ENV", "canary")).as_deref(),
        Some("canary")
    );
    assert_eq!(
        c(req().header("x-env", "Canary")).as_deref(),
        Some("fallback"),
        "values compare exactly"
    );
    assert_eq!(
        c(req().header("x-env", "canary2")).as_deref(),
        Some("fallback")
    );
    assert_eq!(
        c(req().header("x-version", "v12")).as_deref(),
        Some("versioned")
    );
    assert_eq!(
        c(req().header("x-version", "xv12")).as_deref(),
        Some("fallback"),
        "header regex must match the whole value"
    );
    assert_eq!(
        c(req().header("x-version", "v1x")).as_deref(),
        Some("fallback")
    );
    assert_eq!(c(req().header("x-empty", "")).as_deref(), Some("empty"));
    assert_eq!(c(req().header("x-empty", "1")).as_deref(), Some("fallback"));
    assert_eq!(c(req()).as_deref(), Some("fallback"), "missing header");
}

#[test]
fn first_match_wins() {
    let t = routes(json!([
        {"match": {"prefix": "/api"}, "route": to("first")},
        {"match": {"prefix": "/api/v2"}, "route": to("shadowed")},
        {"match": {"path": "/api/v2/x"}, "route": to("shadowed-too")},
        {"match": {"prefix": "/"}, "route": to("catch-all")},
    ]));
    let c = |path: &str| cluster_of(&t, &Req::new("h", path));
    assert_eq!(c("/api/v2/x").as_deref(), Some("first"));
    assert_eq!(c("/other").as_deref(), Some("catch-all"));
}

#[test]
fn no_route_in_virtual_host() {
    let t = routes(json!([{"match": {"prefix": "/api"}, "route": to("api")}]));
    assert!(t.route(&Req::new("h", "/web")).is_none());
}

#[test]
fn direct_response() {
    let t = routes(json!([
        {"match": {"path": "/health"}, "direct_response": {"status": 200, "body": "ok\n"}},
        {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
    ]));
    let r = t.route(&Req::new("h", "/health")).expect("route");
    assert_eq!(
        r.action,
        RouteAction::DirectResponse {
            status: 200,
            body: Bytes::from_static(b"ok\n")
        }
    );
    let r = t.route(&Req::new("h", "/missing")).expect("route");
    assert_eq!(
        r.action,
        RouteAction::DirectResponse {
            status: 404,
            body: Bytes::new()
        }
    );
}

#[test]
fn cluster_action_and_timeout() {
    let t = routes(json!([
        {"match": {"prefix": "/slow"}, "route": {"cluster_name": "c1", "timeout": "1m30s"}},
        {"match": {"prefix": "/"}, "route": {"cluster_name": "c1"}},
    ]));
    let slow = t.route(&Req::new("h", "/slow")).expect("route");
    let fast = t.route(&Req::new("h", "/")).expect("route");
    let (RouteAction::Cluster(slow), RouteAction::Cluster(fast)) = (&slow.action, &fast.action)
    else {
        panic!("cluster routes expected");
    };
    let (ClusterSpecifier::Name(a), ClusterSpecifier::Name(b)) = (&slow.cluster, &fast.cluster)
    else {
        panic!("named clusters expected");
    };
    assert_eq!(&**a, "c1");
    assert_eq!(slow.timeout, Some(Duration::from_secs(90)));
    assert_eq!(fast.timeout, None);
    assert!(Arc::ptr_eq(a, b), "routes to one cluster share its name");
}

fn add(name: &str, value: &str, append: bool) -> HeaderAdd {
    HeaderAdd {
        name: name.to_owned(),
        lower_name: name.to_ascii_lowercase(),
        value: value.to_owned(),
        append,
    }
}

fn opt(key: &str, value: &str) -> Value {
    json!({"header": {"key": key, "value": value}})
}

#[test]
fn header_ops_merge_most_specific_first() {
    let t = table(json!({
        "router_config_name": "r",
        "request_headers_to_add": [opt("X-Level", "router")],
        "request_headers_to_remove": ["X-Drop-Router", "x-common"],
        "response_headers_to_add": [opt("X-Resp", "router")],
        "response_headers_to_remove": ["Server"],
        "virtual_hosts": [{
            "name": "vh",
            "domains": ["*"],
            "request_headers_to_add": [opt("X-Level", "vhost")],
            "request_headers_to_remove": ["X-Common"],
            "response_headers_to_add": [{"header": {"key": "X-Resp", "value": "vhost"}, "append": false}],
            "routers": [
                {
                    "match": {"prefix": "/api"},
                    "request_headers_to_add": [opt("X-Level", "route")],
                    "request_headers_to_remove": ["X-Drop-Route"],
                    "route": {
                        "cluster_name": "c",
                        "request_headers_to_add": [
                            {"header": {"key": "X-Level", "value": "action"}, "append": false}
                        ],
                        "request_headers_to_remove": ["x-drop-action"],
                        "response_headers_to_remove": ["SERVER"]
                    }
                },
                {
                    "match": {"prefix": "/"},
                    "response_headers_to_add": [opt("X-Resp", "route")],
                    "direct_response": {"status": 404}
                }
            ]
        }]
    }));
    let api = t.route(&Req::new("h", "/api")).expect("route");
    assert_eq!(
        api.headers.request_add,
        vec![
            add("X-Level", "action", false),
            add("X-Level", "route", true),
            add("X-Level", "vhost", true),
            add("X-Level", "router", true),
        ]
    );
    assert_eq!(
        api.headers.request_remove,
        ["x-drop-action", "x-drop-route", "x-common", "x-drop-router"]
    );
    assert_eq!(
        api.headers.response_add,
        vec![add("X-Resp", "vhost", false), add("X-Resp", "router", true)]
    );
    assert_eq!(api.headers.response_remove, ["server"]);

    let direct = t.route(&Req::new("h", "/x")).expect("route");
    assert_eq!(
        direct.headers.request_add,
        vec![
            add("X-Level", "vhost", true),
            add("X-Level", "router", true)
        ]
    );
    // The virtual host's overwrite replaces what the route added (levels apply most
    // specific first, as in MOSN and Envoy: the later set wins).
    assert_eq!(
        direct.headers.response_add,
        vec![add("X-Resp", "vhost", false), add("X-Resp", "router", true)]
    );
    assert_eq!(direct.headers.request_remove, ["x-common", "x-drop-router"]);
}

#[test]
fn header_ops_empty_when_unconfigured() {
    let t = routes(json!([{"match": {"prefix": "/"}, "route": to("c")}]));
    assert!(t
        .route(&Req::new("h", "/"))
        .expect("route")
        .headers
        .is_empty());
}

#[test]
fn thousand_routes() {
    let list: Vec<Value> = (0..1000)
        .map(
            |i| json!({"match": {"prefix": format!("/svc{i:04}/")}, "route": to(&format!("c{i}"))}),
        )
        .collect();
    let t = table(json!({
        "router_config_name": "big",
        "virtual_hosts": [
            vhost("other", &["other.com"], 200),
            {"name": "svc", "domains": ["*.svc.local", "svc"], "routers": list}
        ]
    }));
    let last = Req::new("API.svc.local:8080", "/svc0999/call");
    let first = Req::new("svc", "/svc0000/");
    let miss = Req::new("svc", "/svc1000/");
    assert_eq!(cluster_of(&t, &last).as_deref(), Some("c999"));
    assert_eq!(cluster_of(&t, &first).as_deref(), Some("c0"));
    assert!(t.route(&miss).is_none());

    // Worst case: the last of 1,000 routes. A generous bound that still catches an
    // accidental per-lookup allocation storm or quadratic scan, even unoptimized.
    let rounds = 2_000u32;
    let start = Instant::now();
    for _ in 0..rounds {
        assert!(t.route(std::hint::black_box(&last)).is_some());
    }
    let per_lookup = start.elapsed() / rounds;
    eprintln!("1,000-route table, last-route lookup: {per_lookup:?}");
    assert!(per_lookup < Duration::from_millis(5), "{per_lookup:?}");
}

#[test]
fn build_errors_name_their_location() {
    let err = try_table(json!({
        "router_config_name": "main",
        "virtual_hosts": [
            vhost("ok", &["a.com"], 200),
            {"name": "broken", "domains": ["b.com"], "routers": [
                {"match": {"prefix": "/"}, "route": to("c")},
                {"match": {"regex": "(unclosed"}, "route": to("c")}
            ]}
        ]
    }))
    .expect_err("bad regex");
    assert!(matches!(err, RouterError::BadRegex { .. }));
    let msg = err.to_string();
    assert!(
        msg.starts_with(r#"router "main" virtual_hosts[1] ("broken") routers[1]: bad regex in match.regex "(unclosed""#),
        "{msg}"
    );

    let err = try_table(json!({
        "router_config_name": "main",
        "virtual_hosts": [{"name": "v", "domains": ["*"], "routers": [
            {"match": {"headers": [{"name": "x", "value": "[", "regex": true}]}, "route": to("c")}
        ]}]
    }))
    .expect_err("bad header regex");
    assert!(err.to_string().contains("match.headers[0].value"), "{err}");

    // Wrapping in anchors must not make an invalid pattern valid.
    let err = try_table(json!({
        "router_config_name": "main",
        "virtual_hosts": [{"name": "v", "domains": ["*"], "routers": [
            {"match": {"regex": "a)|(b"}, "route": to("c")}
        ]}]
    }))
    .expect_err("unbalanced regex");
    assert!(matches!(err, RouterError::BadRegex { .. }));
}

#[test]
fn build_rejects_bad_domains_and_routes() {
    let dup = try_table(json!({
        "router_config_name": "r",
        "virtual_hosts": [vhost("a", &["x.com"], 200), vhost("b", &["X.com"], 200)]
    }))
    .expect_err("duplicate domain");
    assert!(
        matches!(&dup, RouterError::DuplicateDomain { first: 0, .. }),
        "{dup:?}"
    );
    assert!(
        dup.to_string().contains(r#"virtual_hosts[1] ("b")"#),
        "{dup}"
    );

    let two_defaults = try_table(json!({
        "router_config_name": "r",
        "virtual_hosts": [vhost("a", &["*"], 200), vhost("b", &["*"], 200)]
    }));
    assert!(matches!(
        two_defaults,
        Err(RouterError::DuplicateDomain { .. })
    ));

    for bad in ["a.*.com", "*.a.*", "**", ""] {
        let err = try_table(json!({
            "router_config_name": "r",
            "virtual_hosts": [vhost("a", &[bad], 200)]
        }));
        assert!(matches!(err, Err(RouterError::BadDomain { .. })), "{bad:?}");
    }

    let bad_routes = [
        json!({"match": {"prefix": "/"}}),
        json!({"match": {"prefix": "/"}, "route": to("c"), "direct_response": {"status": 200}}),
        json!({"match": {"prefix": "/", "path": "/x"}, "route": to("c")}),
        json!({"match": {"headers": [{"name": "", "value": "x"}]}, "route": to("c")}),
    ];
    for route in bad_routes {
        let err = try_table(json!({
            "router_config_name": "r",
            "virtual_hosts": [{"name": "v", "domains": ["*"], "routers": [route.clone()]}]
        }));
        assert!(matches!(err, Err(RouterError::BadRoute { .. })), "{route}");
    }
}

#[test]
fn router_set() {
    let routers = vec![
        router_cfg(json!({"router_config_name": "a", "virtual_hosts": [vhost("v", &["*"], 200)]})),
        router_cfg(json!({"router_config_name": "b", "virtual_hosts": [vhost("v", &["*"], 201)]})),
    ];
    let set = RouterSet::build(&routers).expect("router set");
    assert_eq!(set.len(), 2);
    assert!(!set.is_empty());
    let b = set.get("b").expect("router b");
    assert_eq!(b.name(), "b");
    assert_eq!(status_of(b, "any"), Some(201));
    assert!(set.get("c").is_none());
    let mut names: Vec<_> = set.names().collect();
    names.sort_unstable();
    assert_eq!(names, ["a", "b"]);

    let dup = vec![routers[0].clone(), routers[0].clone()];
    let err = RouterSet::build(&dup).expect_err("duplicate router");
    assert!(matches!(err, RouterError::DuplicateRouter(ref n) if n == "a"));
}

#[test]
fn dyn_request_view() {
    let t = routes(json!([{"match": {"prefix": "/"}, "route": to("c")}]));
    let req = Req::new("h", "/");
    let view: &dyn RequestView = &req;
    assert!(t.route(view).is_some());
}
