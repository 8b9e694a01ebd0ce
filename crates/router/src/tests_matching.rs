//! Matchers: headers (MOSN's and Envoy's forms), query parameters, MOSN variables,
//! and the route index against a linear scan.

use crate::tests::{cluster_of, routes, table, to, Req};
use crate::*;
use serde_json::{json, Value};

/// One route guarded by `matcher` (a `match` object without a path), then a fallback.
fn guarded(matcher: Value) -> RouteTable {
    let mut m = matcher;
    m["prefix"] = json!("/");
    routes(json!([
        {"match": m, "route": to("hit")},
        {"match": {"prefix": "/"}, "route": to("miss")},
    ]))
}

fn hits(t: &RouteTable, req: &Req) -> bool {
    match cluster_of(t, req).as_deref() {
        Some("hit") => true,
        Some("miss") => false,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn header_matchers_table() {
    let r = || Req::new("h", "/");
    // (matcher, request, expected)
    let cases: Vec<(Value, Req, bool)> = vec![
        // MOSN: exact value, regex, absent value = empty value.
        (
            json!({"name": "x", "value": "a"}),
            r().header("x", "a"),
            true,
        ),
        (
            json!({"name": "x", "value": "a"}),
            r().header("x", "ab"),
            false,
        ),
        (json!({"name": "x", "value": "a"}), r(), false),
        (
            json!({"name": "x", "value": "a.*", "regex": true}),
            r().header("x", "abc"),
            true,
        ),
        (
            json!({"name": "x", "value": "b", "regex": true}),
            r().header("x", "abc"),
            false,
        ),
        (json!({"name": "x"}), r().header("x", ""), true),
        (json!({"name": "x"}), r().header("x", "v"), false),
        (
            json!({"name": "X-Mixed", "value": "v"}),
            r().header("x-mixed", "v"),
            true,
        ),
        // Envoy's matchers.
        (
            json!({"name": "x", "exact_match": "v"}),
            r().header("x", "v"),
            true,
        ),
        (
            json!({"name": "x", "prefix_match": "ab"}),
            r().header("x", "abc"),
            true,
        ),
        (
            json!({"name": "x", "prefix_match": "ab"}),
            r().header("x", "xab"),
            false,
        ),
        (
            json!({"name": "x", "suffix_match": "bc"}),
            r().header("x", "abc"),
            true,
        ),
        (
            json!({"name": "x", "suffix_match": "bc"}),
            r().header("x", "bcx"),
            false,
        ),
        (
            json!({"name": "x", "contains_match": "b"}),
            r().header("x", "abc"),
            true,
        ),
        (
            json!({"name": "x", "contains_match": "z"}),
            r().header("x", "abc"),
            false,
        ),
        (
            json!({"name": "x", "present_match": true}),
            r().header("x", ""),
            true,
        ),
        (json!({"name": "x", "present_match": true}), r(), false),
        (json!({"name": "x", "present_match": false}), r(), true),
        (
            json!({"name": "x", "present_match": false}),
            r().header("x", "1"),
            false,
        ),
        // invert_match; a missing header fails a value test, inverted or not (Envoy).
        (
            json!({"name": "x", "value": "a", "invert_match": true}),
            r().header("x", "b"),
            true,
        ),
        (
            json!({"name": "x", "value": "a", "invert_match": true}),
            r().header("x", "a"),
            false,
        ),
        (
            json!({"name": "x", "value": "a", "invert_match": true}),
            r(),
            false,
        ),
        (
            json!({"name": "x", "prefix_match": "a", "invert_match": true}),
            r().header("x", "ab"),
            false,
        ),
        (
            json!({"name": "x", "present_match": true, "invert_match": true}),
            r(),
            true,
        ),
        // Pseudo-headers and MOSN's `method`.
        (
            json!({"name": "method", "value": "POST"}),
            r().method("POST"),
            true,
        ),
        (
            json!({"name": ":method", "value": "POST"}),
            r().method("GET"),
            false,
        ),
        (json!({"name": ":authority", "value": "h"}), r(), true),
        (
            json!({"name": ":scheme", "value": "https"}),
            r().scheme("https"),
            true,
        ),
        (
            json!({"name": ":path", "prefix_match": "/?a"}),
            Req::new("h", "/?a=1"),
            true,
        ),
    ];
    for (i, (matcher, req, want)) in cases.into_iter().enumerate() {
        let t = guarded(json!({"headers": [matcher.clone()]}));
        assert_eq!(hits(&t, &req), want, "case {i}: {matcher}");
    }
}

#[test]
fn header_matchers_all_must_hold() {
    let t = guarded(json!({"headers": [
        {"name": "a", "value": "1"},
        {"name": "b", "suffix_match": "2"}
    ]}));
    assert!(hits(
        &t,
        &Req::new("h", "/").header("a", "1").header("b", "x2")
    ));
    assert!(!hits(&t, &Req::new("h", "/").header("a", "1")));
}

/// MOSN's RPC rule: one `service` header with value ".*" and no path matches any
/// request with a non-empty service (the Bolt and Dubbo sample configs); with a path
/// condition, or another header name, ".*" stays an exact value.
#[test]
fn mosn_rpc_rule_dot_star_service_matches_any_service() {
    let t = routes(json!([
        {"match": {"headers": [{"name": "service", "value": ".*"}]}, "route": to("hit")},
        {"match": {"prefix": "/"}, "route": to("miss")},
    ]));
    assert!(hits(
        &t,
        &Req::new("h", "/").header("service", "com.a.Echo:1.0")
    ));
    assert!(!hits(&t, &Req::new("h", "/")));
    assert!(!hits(&t, &Req::new("h", "/").header("service", "")));
    let with_path = guarded(json!({"headers": [{"name": "service", "value": ".*"}]}));
    assert!(!hits(
        &with_path,
        &Req::new("h", "/").header("service", "x")
    ));
    assert!(hits(
        &with_path,
        &Req::new("h", "/").header("service", ".*")
    ));
    let other = routes(json!([
        {"match": {"headers": [{"name": "tenant", "value": ".*"}]}, "route": to("hit")},
        {"match": {"prefix": "/"}, "route": to("miss")},
    ]));
    assert!(!hits(&other, &Req::new("h", "/").header("tenant", "x")));
}

#[test]
fn query_parameter_matchers_table() {
    let cases: Vec<(Value, &str, bool)> = vec![
        (json!({"name": "a", "value": "1"}), "/?a=1", true),
        (json!({"name": "a", "value": "1"}), "/?b=2&a=1", true),
        (json!({"name": "a", "value": "1"}), "/?a=12", false),
        (json!({"name": "a", "value": "1"}), "/", false),
        // First occurrence wins.
        (json!({"name": "a", "value": "1"}), "/?a=2&a=1", false),
        // Values and names are percent-decoded, `+` is a space.
        (json!({"name": "q", "value": "a b"}), "/?q=a%20b", true),
        (json!({"name": "q", "value": "a b"}), "/?q=a+b", true),
        (json!({"name": "q", "value": "a/b"}), "/?q=a%2Fb", true),
        (json!({"name": "q", "value": "a/b"}), "/?q=a%2fb", true),
        (json!({"name": "q", "value": "%zz"}), "/?q=%zz", true),
        (
            json!({"name": "my key", "value": "v"}),
            "/?my%20key=v",
            true,
        ),
        // Regexes are Unicode-aware: `.` is one character of the decoded UTF-8.
        (
            json!({"name": "q", "value": "caf.", "regex": true}),
            "/?q=caf%C3%A9",
            true,
        ),
        (
            json!({"name": "q", "value": "caf..", "regex": true}),
            "/?q=caf%C3%A9",
            false,
        ),
        (
            json!({"name": "q", "value": "caf\u{e9}", "regex": true}),
            "/?q=caf%C3%A9",
            true,
        ),
        (
            json!({"name": "q", "value": "[0-9]+", "regex": true}),
            "/?q=123",
            true,
        ),
        (
            json!({"name": "q", "value": "[0-9]+", "regex": true}),
            "/?q=12a",
            false,
        ),
        (
            json!({"name": "q", "value": "a b+", "regex": true}),
            "/?q=a%20bbb",
            true,
        ),
        // No value: presence is enough, with or without `=`.
        (json!({"name": "debug"}), "/?debug", true),
        (json!({"name": "debug"}), "/?debug=", true),
        (json!({"name": "debug"}), "/?x=debug", false),
        (
            json!({"name": "debug", "present_match": true}),
            "/?a&debug=1",
            true,
        ),
        (
            json!({"name": "debug", "present_match": true}),
            "/?a",
            false,
        ),
        (json!({"name": "e", "value": ""}), "/?e=", true),
        (json!({"name": "e", "value": ""}), "/?e=1", false),
    ];
    for (i, (matcher, target, want)) in cases.into_iter().enumerate() {
        let t = guarded(json!({"query_parameters": [matcher.clone()]}));
        assert_eq!(
            hits(&t, &Req::new("h", target)),
            want,
            "case {i}: {matcher} {target}"
        );
    }
}

#[test]
fn long_encoded_query_value_decodes_on_the_heap() {
    let long = "x".repeat(600);
    let t = guarded(json!({"query_parameters": [
        {"name": "q", "value": format!("{long} .*"), "regex": true}
    ]}));
    assert!(hits(&t, &Req::new("h", &format!("/?q={long}%20tail"))));
}

#[test]
fn default_request_view_derives_query_and_method() {
    /// Only the three required methods, as a minimal proxy view would have.
    struct Minimal(&'static str);
    impl RequestView for Minimal {
        fn host(&self) -> &[u8] {
            b"h"
        }
        fn path(&self) -> &[u8] {
            self.0.split('?').next().unwrap_or_default().as_bytes()
        }
        fn header(&self, name: &str) -> Option<&[u8]> {
            match name {
                ":path" => Some(self.0.as_bytes()),
                ":method" => Some(b"PUT"),
                _ => None,
            }
        }
    }
    let t = routes(json!([
        {"match": {"prefix": "/", "query_parameters": [{"name": "a", "value": "1"}],
                   "headers": [{"name": ":method", "value": "PUT"}]}, "route": to("hit")},
    ]));
    assert!(t.route(&Minimal("/x?a=1")).is_some());
    assert!(t.route(&Minimal("/x?a=2")).is_none());
    assert!(t.route(&Minimal("/x")).is_none());
    assert_eq!(Minimal("/").scheme(), b"http");
    assert_eq!(Minimal("/").peer_ip(), None);
    assert_eq!(Minimal("/").variable("x"), None);
}

#[test]
fn variable_matchers_table() {
    let r = || Req::new("h", "/p/q?a=1&s=x%20y");
    let cases: Vec<(Value, Req, bool)> = vec![
        (
            json!({"name": "x-mosn-method", "value": "POST"}),
            r().method("POST"),
            true,
        ),
        (
            json!({"name": "Http1_request_method", "value": "GET"}),
            r(),
            true,
        ),
        (json!({"name": "x-mosn-host", "value": "h"}), r(), true),
        (json!({"name": "x-mosn-path", "value": "/p/q"}), r(), true),
        (
            json!({"name": "Http1_request_path", "value": "/p/q"}),
            r(),
            true,
        ),
        (
            json!({"name": "x-mosn-querystring", "value": "a=1&s=x%20y"}),
            r(),
            true,
        ),
        (
            json!({"name": "Http1_request_arg", "value": "a=1&s=x%20y"}),
            r(),
            true,
        ),
        (
            json!({"name": "Http1_request_uri", "value": "/p/q?a=1&s=x%20y"}),
            r(),
            true,
        ),
        (
            json!({"name": "Http1_request_scheme", "value": "https"}),
            r().scheme("https"),
            true,
        ),
        (
            json!({"name": "Http1_request_header_X-Tag", "value": "t"}),
            r().header("x-tag", "t"),
            true,
        ),
        (
            json!({"name": "Http2_request_header_x-tag", "value": "t"}),
            r().header("x-tag", "u"),
            false,
        ),
        (
            json!({"name": "Http1_request_arg_s", "value": "x y"}),
            r(),
            true,
        ),
        (
            json!({"name": "Http1_request_arg_a", "value": "2"}),
            r(),
            false,
        ),
        (
            json!({"name": "Http1_cookie_sid", "value": "42"}),
            r().header("cookie", "a=1; sid=42"),
            true,
        ),
        (
            json!({"name": "Http1_cookie_sid", "value": "42"}),
            r().header("cookie", "sid=\"42\""),
            true,
        ),
        (
            json!({"name": "Http1_cookie_sid", "value": "42"}),
            r().header("cookie", "xsid=42"),
            false,
        ),
        // Other names are asked of the request view.
        (
            json!({"name": "tenant", "value": "blue"}),
            r().var("tenant", "blue"),
            true,
        ),
        (json!({"name": "tenant", "value": "blue"}), r(), false),
        // A regex wins over a value and must match the whole value.
        (
            json!({"name": "tenant", "value": "x", "regex": "bl.*"}),
            r().var("tenant", "blue"),
            true,
        ),
        (
            json!({"name": "tenant", "regex": "lu"}),
            r().var("tenant", "blue"),
            false,
        ),
        // A missing variable compares as "" (MOSN).
        (json!({"name": "tenant", "regex": ".*"}), r(), true),
        // Neither value nor regex: never matches (MOSN).
        (json!({"name": "tenant"}), r().var("tenant", ""), false),
    ];
    for (i, (matcher, req, want)) in cases.into_iter().enumerate() {
        let t = guarded(json!({"variables": [matcher.clone()]}));
        assert_eq!(hits(&t, &req), want, "case {i}: {matcher}");
    }
}

#[test]
fn variable_models_and_or() {
    // a OR (b AND c), as MOSN evaluates left to right with "or" closing a group.
    let t = guarded(json!({"variables": [
        {"name": "a", "value": "1", "model": "or"},
        {"name": "b", "value": "1", "model": "and"},
        {"name": "c", "value": "1"}
    ]}));
    let req = |a: &str, b: &str, c: &str| Req::new("h", "/").var("a", a).var("b", b).var("c", c);
    for (a, b, c, want) in [
        ("1", "0", "0", true),
        ("0", "1", "1", true),
        ("0", "1", "0", false),
        ("0", "0", "1", false),
        ("1", "1", "1", true),
    ] {
        assert_eq!(hits(&t, &req(a, b, c)), want, "a={a} b={b} c={c}");
    }
    // (a AND b) OR c, with the model in any case.
    let t = guarded(json!({"variables": [
        {"name": "a", "value": "1"},
        {"name": "b", "value": "1", "model": "OR"},
        {"name": "c", "value": "1"}
    ]}));
    assert!(hits(&t, &req("1", "1", "0")));
    assert!(hits(&t, &req("0", "0", "1")));
    assert!(!hits(&t, &req("1", "0", "0")));
}

#[test]
fn path_header_query_and_variables_combine() {
    let t = routes(json!([
        {"match": {"path": "/x", "headers": [{"name": "h", "value": "1"}],
                   "query_parameters": [{"name": "q"}],
                   "variables": [{"name": "v", "value": "1"}]}, "route": to("all")},
        {"match": {"prefix": "/"}, "route": to("fallback")},
    ]));
    let full = Req::new("h", "/x?q").header("h", "1").var("v", "1");
    assert_eq!(cluster_of(&t, &full).as_deref(), Some("all"));
    for partial in [
        Req::new("h", "/x?q").header("h", "1"),
        Req::new("h", "/x?q").var("v", "1"),
        Req::new("h", "/x").header("h", "1").var("v", "1"),
        Req::new("h", "/y?q").header("h", "1").var("v", "1"),
    ] {
        assert_eq!(cluster_of(&t, &partial).as_deref(), Some("fallback"));
    }
}

#[test]
fn index_keeps_first_match_across_kinds() {
    let t = routes(json!([
        {"match": {"prefix": "/a/", "headers": [{"name": "x", "value": "1"}]}, "route": to("r0")},
        {"match": {"regex": "/a/b.*"}, "route": to("r1")},
        {"match": {"path": "/a/b"}, "route": to("r2")},
        {"match": {"prefix": "/a", "case_sensitive": false}, "route": to("r3")},
        {"match": {"path": "/A/C", "case_sensitive": false}, "route": to("r4")},
        {"match": {"prefix": "/a/c"}, "route": to("r5")},
        {"match": {"headers": [{"name": "y", "value": "1"}]}, "route": to("r6")},
        {"match": {"prefix": ""}, "route": to("r7")},
    ]));
    let c = |req: Req| cluster_of(&t, &req);
    assert_eq!(
        c(Req::new("h", "/a/b").header("x", "1")).as_deref(),
        Some("r0")
    );
    assert_eq!(c(Req::new("h", "/a/b")).as_deref(), Some("r1"));
    assert_eq!(c(Req::new("h", "/a/x")).as_deref(), Some("r3"));
    assert_eq!(c(Req::new("h", "/A/c")).as_deref(), Some("r3"));
    assert_eq!(
        c(Req::new("h", "/b").header("y", "1")).as_deref(),
        Some("r6")
    );
    assert_eq!(c(Req::new("h", "/b")).as_deref(), Some("r7"));
    assert_eq!(c(Req::new("h", "")).as_deref(), Some("r7"));
}

#[test]
fn many_routes_share_a_prefix_and_a_path() {
    // Candidates in one index slot are tried in order until one passes.
    let mut list: Vec<Value> = (0..50)
        .map(|i| {
            json!({"match": {"prefix": "/api", "headers": [{"name": "t", "value": i.to_string()}]},
                        "route": to(&format!("p{i}"))})
        })
        .collect();
    list.push(json!({"match": {"path": "/api"}, "route": to("exact")}));
    let t = routes(Value::Array(list));
    let c = |req: Req| cluster_of(&t, &req);
    assert_eq!(
        c(Req::new("h", "/api/x").header("t", "37")).as_deref(),
        Some("p37")
    );
    assert_eq!(
        c(Req::new("h", "/api").header("t", "3")).as_deref(),
        Some("p3")
    );
    assert_eq!(c(Req::new("h", "/api")).as_deref(), Some("exact"));
    assert_eq!(c(Req::new("h", "/api/x")), None);
}

/// xorshift64*: deterministic test randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

#[test]
fn index_agrees_with_a_linear_scan() {
    let segments = [
        "", "a", "ab", "B", "b", "abc", "x", "A", "k", "S", "\u{212a}", "\u{17f}",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..40 {
        let n = 1 + rng.below(60);
        let mut list = Vec::with_capacity(n);
        for i in 0..n {
            let depth = rng.below(4);
            let mut path = String::new();
            for _ in 0..depth {
                path.push('/');
                path.push_str(rng.pick(&segments));
            }
            let mut m = match rng.below(5) {
                0 => json!({"path": if path.is_empty() { "/".to_owned() } else { path.clone() }}),
                1 | 2 => json!({"prefix": path.clone()}),
                3 => {
                    let p = regex::escape(&path);
                    let templates = [
                        format!("{p}.*"),
                        format!("{p}(/x|/a)?"),
                        format!("{p}|/b.*"),
                        format!("{p}[ab/]*"),
                        format!("{p}b?"),
                        format!("{p}s*/?"),
                        format!("(?i){p}.*"),
                        format!("^{p}/k{{0,2}}"),
                    ];
                    json!({"regex": templates[rng.below(templates.len())].clone()})
                }
                _ => json!({}),
            };
            if rng.below(3) == 0 {
                m["case_sensitive"] = json!(false);
            }
            if rng.below(4) == 0 {
                m["headers"] = json!([{"name": "h", "value": rng.pick(&["1", "2"])}]);
            }
            list.push(json!({"match": m, "route": to(&format!("r{i}"))}));
        }
        let t = routes(Value::Array(list));
        let vhost = &t.virtual_hosts[0];
        for _ in 0..200 {
            let depth = rng.below(5);
            let mut path = String::new();
            for _ in 0..depth {
                path.push('/');
                path.push_str(rng.pick(&segments));
            }
            let mut req = Req::new("h", &path);
            if rng.below(2) == 0 {
                req = req.header("h", rng.pick(&["1", "2"]));
            }
            let linear = vhost
                .routes
                .iter()
                .position(|r| r.path.matches(req.path()) && r.conditions.matches(&req))
                .map(|i| format!("r{i}"));
            assert_eq!(cluster_of(&t, &req), linear, "round {round}, path {path:?}");
        }
    }
}

#[test]
fn ten_thousand_routes() {
    let list: Vec<Value> = (0..10_000)
        .map(|i| match i % 4 {
            0 | 1 => json!({"match": {"path": format!("/svc/{i}/get")}, "route": to(&format!("c{i}"))}),
            2 => json!({"match": {"prefix": format!("/p{i}/")}, "route": to(&format!("c{i}"))}),
            _ => json!({"match": {"prefix": format!("/h{i}/"), "headers": [{"name": "t", "value": "1"}]},
                        "route": to(&format!("c{i}"))}),
        })
        .collect();
    let t = table(json!({
        "router_config_name": "big",
        "virtual_hosts": [{"name": "v", "domains": ["*"], "routers": list}]
    }));
    let c = |req: &Req| cluster_of(&t, req);
    assert_eq!(c(&Req::new("h", "/svc/0/get")).as_deref(), Some("c0"));
    assert_eq!(c(&Req::new("h", "/p5002/x")).as_deref(), Some("c5002"));
    let last = Req::new("h", "/h9999/x").header("t", "1");
    assert_eq!(c(&last).as_deref(), Some("c9999"));
    assert_eq!(c(&Req::new("h", "/h9999/x")), None);
    assert_eq!(c(&Req::new("h", "/svc/10000/get")), None);
    // Indexed: the last route costs about what the first does, far below a scan.
    let rounds = 20_000u32;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        assert!(t.route(std::hint::black_box(&last)).is_some());
    }
    let per_lookup = start.elapsed() / rounds;
    eprintln!("10,000-route table, last-route lookup: {per_lookup:?}");
    assert!(
        per_lookup < std::time::Duration::from_micros(50),
        "{per_lookup:?}"
    );
}

#[test]
fn matcher_build_errors() {
    let bad: Vec<(Value, &str)> = vec![
        (
            json!({"headers": [{"name": "x", "value": "a", "prefix_match": "b"}]}),
            "only one of",
        ),
        (
            json!({"headers": [{"name": "x", "regex": true}]}),
            "regex needs a value",
        ),
        (
            json!({"headers": [{"name": "x", "prefix_match": ""}]}),
            "must not be empty",
        ),
        (
            json!({"headers": [{"name": "x", "value": "(", "regex": true}]}),
            "match.headers[0].value",
        ),
        (json!({"query_parameters": [{"name": ""}]}), "needs a name"),
        (
            json!({"query_parameters": [{"name": "q", "value": "[", "regex": true}]}),
            "match.query_parameters[0].value",
        ),
        (
            json!({"variables": [{"name": "", "value": "a"}]}),
            "needs a name",
        ),
        (
            json!({"variables": [{"name": "v", "regex": "("}]}),
            "match.variables[0].regex",
        ),
        (
            json!({"variables": [{"name": "v", "value": "a", "model": "xor"}]}),
            "unknown model",
        ),
    ];
    for (m, want) in bad {
        let err = crate::tests::try_table(json!({
            "router_config_name": "r",
            "virtual_hosts": [{"name": "v", "domains": ["*"], "routers": [
                {"match": m.clone(), "route": to("c")}
            ]}]
        }))
        .expect_err("must not build");
        assert!(err.to_string().contains(want), "{m}: {err}");
    }
}

#[test]
fn regex_literal_prefixes() {
    use crate::matcher::literal_prefix;
    let cases = [
        ("/api/v[0-9]+", false, "/api/v"),
        ("/api/v1", false, "/api/v1"),
        ("/api/v1?", false, "/api/v"),
        ("/api/x*", false, "/api/"),
        ("/api/x{2}", false, "/api/"),
        ("/api/x+", false, "/api/x"),
        ("/a\\.b/.*", false, "/a.b/"),
        ("/a\\d", false, "/a"),
        ("^/anchored", false, "/anchored"),
        ("/a|/b", false, ""),
        ("/a(/x|/y)", false, "/a"),
        ("/a[|]b", false, "/a"),
        ("/a[]|]b|c", false, ""),
        ("(?i)/a", false, ""),
        ("/caf\u{e9}", false, "/caf"),
        ("/API/Users", true, "/api/u"),
        ("/Kite", true, "/"),
        ("/a.b", false, "/a"),
        ("", false, ""),
    ];
    for (pattern, nocase, want) in cases {
        assert_eq!(literal_prefix(pattern, nocase), want, "{pattern:?}");
    }
}

#[test]
fn case_insensitive_regex_follows_unicode_folding() {
    // `k` also matches the Kelvin sign under Unicode case folding: the index must not
    // skip the regex for such a path.
    let t = routes(json!([
        {"match": {"regex": "/kit.*", "case_sensitive": false}, "route": to("kit")},
    ]));
    assert_eq!(
        cluster_of(&t, &Req::new("h", "/KIT")).as_deref(),
        Some("kit")
    );
    assert_eq!(
        cluster_of(&t, &Req::new("h", "/\u{212a}it")).as_deref(),
        Some("kit")
    );
}
