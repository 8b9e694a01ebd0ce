//! Route actions: cluster choice, rewrites, redirects, mirrors, hashing, retries.

use crate::tests::{routes, to, try_table, Req};
use crate::*;
use serde_json::{json, Value};
use std::time::Duration;

/// The compiled action of `route` (a route object; `match` defaults to prefix `/`).
fn action_of(route: Value) -> RouteAction {
    let mut r = route;
    if r.get("match").is_none() {
        r["match"] = json!({"prefix": "/"});
    }
    let t = routes(json!([r]));
    t.virtual_hosts[0].routes[0].route.action.clone()
}

fn cluster_action(route: Value) -> ClusterAction {
    match action_of(json!({"match": {"prefix": "/"}, "route": route})) {
        RouteAction::Cluster(a) => a,
        other => panic!("cluster action expected, got {other:?}"),
    }
}

fn build_error(route: Value) -> String {
    let mut r = route;
    if r.get("match").is_none() {
        r["match"] = json!({"prefix": "/"});
    }
    try_table(json!({
        "router_config_name": "r",
        "virtual_hosts": [{"name": "v", "domains": ["*"], "routers": [r]}]
    }))
    .expect_err("must not build")
    .to_string()
}

fn md(pairs: &[(&str, &str)]) -> MetadataMatch {
    MetadataMatch(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

#[test]
fn named_cluster_with_metadata_match() {
    let a = cluster_action(json!({
        "cluster_name": "c",
        "metadata_match": {"filter_metadata": {"mosn.lb": {"version": "v1", "n": 1}, "other": {"x": "y"}}}
    }));
    let req = Req::new("h", "/");
    let choice = a.pick_cluster(&req, 7).expect("cluster");
    assert_eq!(choice.name, "c");
    assert_eq!(choice.metadata_match, Some(&md(&[("version", "v1")])));
    assert_eq!(
        choice
            .metadata_match
            .map(MetadataMatch::map)
            .map(|m| m.len()),
        Some(1)
    );

    let none = cluster_action(
        json!({"cluster_name": "c", "metadata_match": {"filter_metadata": {"mosn.lb": {}}}}),
    );
    assert_eq!(none.metadata_match, None);
}

#[test]
fn weighted_clusters_pick_by_weight_and_merge_metadata() {
    let a = cluster_action(json!({
        "cluster_name": "ignored",
        "metadata_match": {"filter_metadata": {"mosn.lb": {"zone": "a", "version": "v0"}}},
        "weighted_clusters": [
            {"cluster": {"name": "one", "weight": 1,
                         "metadata_match": {"filter_metadata": {"mosn.lb": {"version": "v1"}}}}},
            {"cluster": {"name": "none", "weight": 0}},
            {"cluster": {"name": "three", "weight": 3}}
        ]
    }));
    let ClusterSpecifier::Weighted(w) = &a.cluster else {
        panic!("weighted expected: {:?}", a.cluster);
    };
    assert_eq!(w.total_weight(), 4);
    assert_eq!(w.entries().len(), 3);
    let req = Req::new("h", "/");
    let pick = |r: u64| a.pick_cluster(&req, r).expect("cluster").name.to_owned();
    assert_eq!(pick(0), "one");
    assert_eq!(pick(1), "three");
    assert_eq!(pick(3), "three");
    assert_eq!(pick(4), "one");
    assert_eq!(pick(u64::MAX), "three"); // u64::MAX % 4 == 3
    let counts = (0..4000u64).fold([0u32; 3], |mut acc, r| {
        match pick(r.wrapping_mul(0x9e37_79b9_7f4a_7c15)).as_str() {
            "one" => acc[0] += 1,
            "none" => acc[1] += 1,
            _ => acc[2] += 1,
        }
        acc
    });
    assert_eq!(counts[1], 0);
    assert!((800..1200).contains(&counts[0]), "{counts:?}");
    let first = a.pick_cluster(&req, 0).expect("cluster");
    assert_eq!(
        first.metadata_match,
        Some(&md(&[("version", "v1"), ("zone", "a")])),
        "the entry's keys win over the route's"
    );
    let third = a.pick_cluster(&req, 1).expect("cluster");
    assert_eq!(
        third.metadata_match,
        Some(&md(&[("version", "v0"), ("zone", "a")]))
    );
}

#[test]
fn cluster_from_header_and_variable() {
    let a = cluster_action(json!({"cluster_header": "X-Cluster"}));
    assert!(matches!(&a.cluster, ClusterSpecifier::Header(k) if k.name() == "x-cluster"));
    let req = Req::new("h", "/").header("x-cluster", "blue");
    assert_eq!(a.pick_cluster(&req, 0).map(|c| c.name), Some("blue"));
    assert_eq!(a.pick_cluster(&Req::new("h", "/"), 0), None);
    assert_eq!(
        a.pick_cluster(&Req::new("h", "/").header("x-cluster", ""), 0),
        None
    );
    let mut bad = Req::new("h", "/");
    bad.headers.push(("x-cluster".into(), vec![0xff, 0xfe]));
    assert_eq!(a.pick_cluster(&bad, 0), None, "not UTF-8");

    let v = cluster_action(json!({"cluster_variable": "upstream"}));
    let req = Req::new("h", "/").var("upstream", "green");
    assert_eq!(v.pick_cluster(&req, 0).map(|c| c.name), Some("green"));
    let h = cluster_action(json!({"cluster_variable": "Http1_request_header_x-c"}));
    let req = Req::new("h", "/").header("x-c", "red");
    assert_eq!(h.pick_cluster(&req, 0).map(|c| c.name), Some("red"));

    // MOSN's precedence: cluster_name before cluster_variable.
    let both = cluster_action(json!({"cluster_name": "fixed", "cluster_variable": "upstream"}));
    assert_eq!(
        both.pick_cluster(&Req::new("h", "/").var("upstream", "x"), 0)
            .map(|c| c.name),
        Some("fixed")
    );
}

#[test]
fn timeouts() {
    let a = cluster_action(json!({"cluster_name": "c", "timeout": "2s", "idle_timeout": "500ms"}));
    assert_eq!(a.timeout, Some(Duration::from_secs(2)));
    assert_eq!(a.idle_timeout, Some(Duration::from_millis(500)));
    let zero = cluster_action(json!({"cluster_name": "c", "timeout": "0s"}));
    assert_eq!(zero.timeout, Some(Duration::ZERO));
    let none = cluster_action(json!({"cluster_name": "c"}));
    assert_eq!((none.timeout, none.idle_timeout), (None, None));
}

#[test]
fn path_rewrites_table() {
    // (match, route extras, request target, rewritten target)
    let cases: Vec<(Value, Value, &str, Option<&str>)> = vec![
        (
            json!({"prefix": "/api/"}),
            json!({"prefix_rewrite": "/"}),
            "/api/v1/x?a=1",
            Some("/v1/x?a=1"),
        ),
        (
            json!({"prefix": "/api"}),
            json!({"prefix_rewrite": "/v2"}),
            "/api/x",
            Some("/v2/x"),
        ),
        (
            json!({"prefix": "/api"}),
            json!({"prefix_rewrite": "/v2"}),
            "/api",
            Some("/v2"),
        ),
        (
            json!({"prefix": "/API", "case_sensitive": false}),
            json!({"prefix_rewrite": "/b"}),
            "/api/x",
            Some("/b/x"),
        ),
        (
            json!({"path": "/old"}),
            json!({"prefix_rewrite": "/new"}),
            "/old?q",
            Some("/new?q"),
        ),
        // MOSN: no prefix to replace on a regex or path-less route.
        (
            json!({"regex": "/r.*"}),
            json!({"prefix_rewrite": "/x"}),
            "/r1",
            None,
        ),
        (json!({}), json!({"prefix_rewrite": "/x"}), "/r1", None),
        // Regex rewrites (MOSN's $1 and Envoy's \1), every match, query kept.
        (
            json!({"prefix": "/"}),
            json!({"regex_rewrite": {"pattern": {"regex": "^/v([0-9]+)/(.*)$"}, "substitution": "/$2/version-$1"}}),
            "/v3/users?x=1",
            Some("/users/version-3?x=1"),
        ),
        (
            json!({"prefix": "/"}),
            json!({"regex_rewrite": {"pattern": {"regex": "^/v([0-9]+)/"}, "substitution": "/\\1-"}}),
            "/v3/users",
            Some("/3-users"),
        ),
        (
            json!({"prefix": "/"}),
            json!({"regex_rewrite": {"pattern": {"regex": "o"}, "substitution": "0"}}),
            "/foo/boo",
            Some("/f00/b00"),
        ),
        (
            json!({"prefix": "/"}),
            json!({"regex_rewrite": {"pattern": {"regex": "^/none"}, "substitution": "/x"}}),
            "/other?q",
            None,
        ),
        // prefix_rewrite wins over regex_rewrite (MOSN).
        (
            json!({"prefix": "/a"}),
            json!({"prefix_rewrite": "/b", "regex_rewrite": {"pattern": {"regex": "a"}, "substitution": "z"}}),
            "/a/a",
            Some("/b/a"),
        ),
    ];
    for (i, (m, extra, target, want)) in cases.into_iter().enumerate() {
        let mut route = json!({"cluster_name": "c"});
        if let (Some(r), Some(e)) = (route.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        let a = match action_of(json!({"match": m.clone(), "route": route})) {
            RouteAction::Cluster(a) => a,
            other => panic!("{other:?}"),
        };
        let got = a
            .rewrite_path(target.as_bytes())
            .map(|v| String::from_utf8(v).expect("UTF-8"));
        assert_eq!(got.as_deref(), want, "case {i}: {m} {extra} {target}");
    }
    assert_eq!(
        cluster_action(json!({"cluster_name": "c"})).rewrite_path(b"/x"),
        None
    );
}

#[test]
fn host_rewrites() {
    let req = Req::new("orig", "/").header("x-host", "from-header");
    let host = |route: Value, upstream: Option<&str>| {
        let a = cluster_action(route);
        a.host_rewrite
            .host(&req, upstream)
            .map(|h| String::from_utf8_lossy(h).into_owned())
    };
    assert_eq!(host(json!({"cluster_name": "c"}), Some("up")), None);
    assert_eq!(
        host(json!({"cluster_name": "c", "host_rewrite": "fixed"}), None).as_deref(),
        Some("fixed")
    );
    assert_eq!(
        host(
            json!({"cluster_name": "c", "auto_host_rewrite_header": "X-Host"}),
            None
        )
        .as_deref(),
        Some("from-header")
    );
    assert_eq!(
        host(
            json!({"cluster_name": "c", "auto_host_rewrite_header": "x-none"}),
            None
        ),
        None
    );
    assert_eq!(
        host(
            json!({"cluster_name": "c", "auto_host_rewrite": true}),
            Some("up.local")
        )
        .as_deref(),
        Some("up.local")
    );
    assert_eq!(
        host(
            json!({"cluster_name": "c", "auto_host_rewrite": true}),
            Some("")
        ),
        None
    );
    assert_eq!(
        host(
            json!({"cluster_name": "c", "auto_host_rewrite": true}),
            None
        ),
        None
    );
    // MOSN's precedence: host_rewrite, then the header, then auto.
    assert_eq!(
        host(json!({"cluster_name": "c", "host_rewrite": "fixed", "auto_host_rewrite_header": "x-host", "auto_host_rewrite": true}), Some("up")).as_deref(),
        Some("fixed")
    );
    assert_eq!(
        cluster_action(json!({"cluster_name": "c", "auto_host_rewrite": true})).host_rewrite,
        HostRewrite::Auto
    );
}

fn redirect(r: Value, m: Value) -> Redirect {
    match action_of(json!({"match": m, "redirect": r})) {
        RouteAction::Redirect(r) => r,
        other => panic!("redirect expected, got {other:?}"),
    }
}

#[test]
fn redirect_locations_table() {
    let any = json!({"prefix": "/"});
    // (redirect, match, request: host, target, scheme; expected status, location)
    // (host, target, scheme)
    type Request<'a> = (&'a str, &'a str, &'a str);
    let cases: Vec<(Value, Value, Request, u16, &str)> = vec![
        (
            json!({"host_redirect": "new.com"}),
            any.clone(),
            ("old.com", "/p?q=1", "http"),
            301,
            "http://new.com/p?q=1",
        ),
        (
            json!({"path_redirect": "/new", "response_code": 302}),
            any.clone(),
            ("h", "/old?q=1", "http"),
            302,
            "http://h/new?q=1",
        ),
        (
            json!({"scheme_redirect": "HTTPS", "response_code": 308}),
            any.clone(),
            ("h:80", "/p", "http"),
            308,
            "https://h/p",
        ),
        (
            json!({"scheme_redirect": "https"}),
            any.clone(),
            ("h:8080", "/p", "http"),
            301,
            "https://h:8080/p",
        ),
        (
            json!({"scheme_redirect": "http"}),
            any.clone(),
            ("h:443", "/p", "https"),
            301,
            "http://h/p",
        ),
        (
            json!({"https_redirect": true, "response_code": 307}),
            any.clone(),
            ("[::1]:80", "/", "http"),
            307,
            "https://[::1]/",
        ),
        (
            json!({"https_redirect": true}),
            any.clone(),
            ("h", "/", "https"),
            301,
            "https://h/",
        ),
        (
            json!({"port_redirect": 8443, "https_redirect": true}),
            any.clone(),
            ("h:80", "/x", "http"),
            301,
            "https://h:8443/x",
        ),
        (
            json!({"path_redirect": "/n?fresh=1"}),
            any.clone(),
            ("h", "/o?old=1", "http"),
            301,
            "http://h/n?fresh=1",
        ),
        (
            json!({"strip_query": true, "host_redirect": "x"}),
            any.clone(),
            ("h", "/o?old=1", "http"),
            301,
            "http://x/o",
        ),
        (
            json!({"prefix_rewrite": "/v2/", "response_code": 303}),
            json!({"prefix": "/v1/"}),
            ("h", "/v1/a/b?c", "http"),
            303,
            "http://h/v2/a/b?c",
        ),
        (
            json!({"prefix_rewrite": "/gone"}),
            json!({"path": "/old"}),
            ("h", "/old", "http"),
            301,
            "http://h/gone",
        ),
        (
            json!({"prefix_rewrite": "/pre"}),
            json!({"regex": "/r.*"}),
            ("h", "/r1", "http"),
            301,
            "http://h/pre/r1",
        ),
    ];
    for (i, (r, m, (host, target, scheme), status, location)) in cases.into_iter().enumerate() {
        let rd = redirect(r.clone(), m);
        assert_eq!(rd.status, status, "case {i}: {r}");
        let req = Req::new(host, target).scheme(scheme);
        assert_eq!(rd.location(&req), location, "case {i}: {r}");
    }
}

#[test]
fn mirror_policies() {
    // MOSN: one object beside `match`; Envoy's position inside `route`, as a list.
    let a = match action_of(json!({
        "match": {"prefix": "/"},
        "route": {"cluster_name": "c", "request_mirror_policies": [
            {"cluster": "m2", "percent": 100}, {"cluster": "m3", "percent": 0}
        ]},
        "request_mirror_policies": {"cluster": "m1", "percent": 30}
    })) {
        RouteAction::Cluster(a) => a,
        other => panic!("{other:?}"),
    };
    let names: Vec<&str> = a.mirrors.iter().map(|m| &*m.cluster).collect();
    assert_eq!(names, ["m1", "m2", "m3"]);
    let m1 = &a.mirrors[0];
    assert_eq!(m1.percent, 30);
    assert!(m1.should_mirror(0));
    assert!(m1.should_mirror(29));
    assert!(!m1.should_mirror(30));
    assert!(m1.should_mirror(129));
    let share = (0..1000u64).filter(|&r| m1.should_mirror(r)).count();
    assert_eq!(share, 300);
    assert!((0..100).all(|r| a.mirrors[1].should_mirror(r)));
    assert!((0..100).all(|r| !a.mirrors[2].should_mirror(r)));
    let chosen: Vec<&str> = a.mirrors_for(50).map(|m| &*m.cluster).collect();
    assert_eq!(chosen, ["m2"]);
}

#[test]
fn hash_policies() {
    let req = Req::new("h", "/")
        .header("x-user", "alice")
        .header("cookie", "a=1; session=abc")
        .peer("10.0.0.7");
    let hash = |policies: Value, req: &Req| {
        cluster_action(json!({"cluster_name": "c", "hash_policy": policies})).hash(req)
    };
    let fnv = fnv1a64;
    assert_eq!(
        hash(json!([{"header": {"key": "X-User"}}]), &req),
        Some(fnv(b"alice"))
    );
    assert_eq!(
        hash(
            json!([{"cookie": {"name": "session", "path": "/", "ttl": "5s"}}]),
            &req
        ),
        Some(fnv(b"abc"))
    );
    assert_eq!(
        hash(json!([{"source_ip": {}}]), &req),
        Some(fnv(&[10, 0, 0, 7]))
    );
    let mapped = Req::new("h", "/").peer("::ffff:10.0.0.7");
    assert_eq!(
        hash(json!([{"source_ip": {}}]), &mapped),
        Some(fnv(&[10, 0, 0, 7]))
    );
    let v6 = Req::new("h", "/").peer("2001:db8::1");
    let octets = "2001:db8::1"
        .parse::<std::net::Ipv6Addr>()
        .expect("v6")
        .octets();
    assert_eq!(hash(json!([{"source_ip": {}}]), &v6), Some(fnv(&octets)));
    // Missing keys yield nothing; several policies combine as Envoy combines them.
    assert_eq!(hash(json!([{"header": {"key": "x-none"}}]), &req), None);
    assert_eq!(
        hash(
            json!([{"header": {"key": "x-user"}}, {"header": {"key": "x-none"}}, {"source_ip": {}}]),
            &req
        ),
        Some(fnv(b"alice").rotate_left(1) ^ fnv(&[10, 0, 0, 7]))
    );
    // No policy: the source IP (MOSN's default).
    assert_eq!(hash(json!([]), &req), Some(fnv(&[10, 0, 0, 7])));
    assert_eq!(hash(json!([]), &Req::new("h", "/")), None);
    // FNV-1a 64 reference values.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    let a = cluster_action(
        json!({"cluster_name": "c", "hash_policy": [{"cookie": {"name": "s", "ttl": "1m"}}]}),
    );
    assert_eq!(
        a.hash_policy[0],
        HashPolicy::Cookie {
            name: "s".into(),
            path: None,
            ttl: Some(Duration::from_secs(60))
        }
    );
}

#[test]
fn retry_policy_mosn_and_envoy_forms() {
    let policy = |r: Value| {
        cluster_action(json!({"cluster_name": "c", "retry_policy": r}))
            .retry
            .expect("retry policy")
    };
    // MOSN: retry_on true retries 5xx, resets and connect failures.
    let p = policy(json!({"retry_on": true, "retry_timeout": "3s", "num_retries": 2}));
    assert_eq!(p.num_retries, 2);
    assert_eq!(p.per_try_timeout, Some(Duration::from_secs(3)));
    assert!(p.retry_on_status(500) && p.retry_on_status(503) && !p.retry_on_status(404));
    assert!(p.retry_on_connect_failure() && p.retry_on_reset() && p.retry_on_per_try_timeout());
    // With status codes, only those.
    let p = policy(json!({"retry_on": true, "status_codes": [503, 429]}));
    assert!(p.retry_on_status(503) && p.retry_on_status(429) && !p.retry_on_status(500));
    assert_eq!(&*p.retriable_status_codes, [429, 503]);
    // false (or absent): connect failures only; num_retries defaults to 1.
    let p = policy(json!({"retry_on": false}));
    assert!(p.retry_on_connect_failure() && !p.retry_on_reset() && !p.retry_on_status(503));
    assert_eq!(p.num_retries, RetryPolicy::DEFAULT_NUM_RETRIES);
    assert_eq!(policy(json!({})).retry_on, RetryOn::CONNECT_FAILURE);
    // Envoy's conditions.
    let p = policy(
        json!({"retry_on": "gateway-error, retriable-status-codes", "retriable_status_codes": [409],
                          "status_codes": [409], "per_try_timeout": "250ms",
                          "retry_back_off": {"base_interval": "10ms", "max_interval": "1s"}}),
    );
    assert!(p
        .retry_on
        .contains(RetryOn::GATEWAY_ERROR | RetryOn::RETRIABLE_STATUS_CODES));
    assert!(p.retry_on_status(502) && p.retry_on_status(504) && p.retry_on_status(409));
    assert!(!p.retry_on_status(500));
    assert!(p.retry_on_connect_failure() && p.retry_on_reset());
    assert_eq!(&*p.retriable_status_codes, [409]);
    assert_eq!(p.per_try_timeout, Some(Duration::from_millis(250)));
    assert_eq!(p.back_off.base_interval, Duration::from_millis(10));
    assert_eq!(p.back_off.max_interval, Duration::from_secs(1));
    let p = policy(json!({"retry_on": "connect-failure"}));
    assert!(p.retry_on_connect_failure() && !p.retry_on_reset() && !p.retry_on_status(503));
    let p = policy(json!({"retry_on": "reset,retriable-4xx,refused-stream"}));
    assert!(p.retry_on_reset() && p.retry_on_status(409) && !p.retry_on_status(503));
    assert!(p.retry_on_refused_stream());
    let p = policy(json!({"retry_on": "5xx"}));
    assert!(p.retry_on_status(599) && p.retry_on_connect_failure() && p.retry_on_refused_stream());
    assert_eq!(
        policy(json!({"retry_on": "reset", "per_try_timeout": "0s"})).per_try_timeout,
        None
    );
}

#[test]
fn retry_back_off_delays() {
    let d = RetryBackOff::default();
    assert_eq!(d.base_interval, Duration::from_millis(25));
    assert_eq!(d.max_interval, Duration::from_millis(250));
    let b = RetryBackOff::new(
        Some(Duration::from_millis(10)),
        Some(Duration::from_millis(50)),
    );
    // Ceilings: 10 ms, 30 ms, then capped at 50 ms.
    let ceiling = |retry: u32| {
        (0..2000u64)
            .map(|r| b.delay(retry, r.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .max()
    };
    assert!(ceiling(0) < Some(Duration::from_millis(10)));
    assert!(ceiling(0) > Some(Duration::from_millis(9)));
    assert!(ceiling(1) < Some(Duration::from_millis(30)));
    assert!(ceiling(1) > Some(Duration::from_millis(25)));
    assert!(ceiling(5) < Some(Duration::from_millis(50)));
    assert!(
        ceiling(200) < Some(Duration::from_millis(50)),
        "no overflow on many retries"
    );
    assert_eq!(b.delay(0, 0), Duration::ZERO);
}

#[test]
fn direct_response_and_redirect_carry_route_headers() {
    let t = routes(json!([
        {"match": {"path": "/r"}, "redirect": {"path_redirect": "/x"},
         "response_headers_to_add": [{"header": {"key": "X-R", "value": "1"}}]},
        {"match": {"prefix": "/"}, "route": to("c")},
    ]));
    let r = t.route(&Req::new("h", "/r")).expect("route");
    assert!(matches!(r.action, RouteAction::Redirect(_)));
    assert_eq!(r.headers.response_add.len(), 1);
}

#[test]
fn action_build_errors() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"route": to("c"), "redirect": {}}),
            "only one of route, redirect, direct_response",
        ),
        (
            json!({"redirect": {}, "direct_response": {"status": 200}}),
            "only one of",
        ),
        (json!({}), "needs one of route, redirect, direct_response"),
        (json!({"route": {}}), "needs a cluster_name"),
        (
            json!({"route": {"weighted_clusters": [{"cluster": {"name": "a", "weight": 0}}]}}),
            "route.weighted_clusters: the weights sum to 0",
        ),
        (
            json!({"route": {"weighted_clusters": [{"cluster": {"weight": 1}}]}}),
            "weighted_clusters[0].cluster.name",
        ),
        (
            json!({"route": {"cluster_name": "c", "hash_policy": [{"header": {}}]}}),
            "route.hash_policy[0].header.key",
        ),
        (
            json!({"route": {"cluster_name": "c", "hash_policy": [{"cookie": {}}]}}),
            "route.hash_policy[0].cookie.name",
        ),
        (
            json!({"route": {"cluster_name": "c", "hash_policy": [{}]}}),
            "exactly one of header, cookie, source_ip",
        ),
        (
            json!({"route": {"cluster_name": "c", "hash_policy": [{"header": {"key": "a"}, "source_ip": {}}]}}),
            "exactly one of",
        ),
        (
            json!({"route": {"cluster_name": "c", "retry_policy": {"retry_on": "5xx,sometimes"}}}),
            "unknown retry condition \"sometimes\"",
        ),
        (
            json!({"route": {"cluster_name": "c", "retry_policy": {"status_codes": [600]}}}),
            "status_codes[0]",
        ),
        (
            json!({"route": {"cluster_name": "c", "retry_policy": {"retry_timeout": "1s", "per_try_timeout": "1s"}}}),
            "not both",
        ),
        (
            json!({"route": {"cluster_name": "c", "retry_policy": {"retry_back_off": {"base_interval": "0s"}}}}),
            "base_interval",
        ),
        (
            json!({"route": {"cluster_name": "c", "retry_policy": {"retry_back_off": {"max_interval": "1ms"}}}}),
            "max_interval",
        ),
        (
            json!({"route": {"cluster_name": "c", "regex_rewrite": {"pattern": {"regex": "("}, "substitution": ""}}}),
            "bad regex in route.regex_rewrite.pattern.regex",
        ),
        (
            json!({"route": {"cluster_name": "c", "regex_rewrite": {"substitution": "x"}}}),
            "a regex is required",
        ),
        (
            json!({"route": {"cluster_name": "c", "host_rewrite": "a\r\nb"}}),
            "route.host_rewrite",
        ),
        (
            json!({"route": {"cluster_name": "c"}, "request_mirror_policies": {"percent": 10}}),
            "needs a cluster",
        ),
        (
            json!({"route": {"cluster_name": "c"}, "request_mirror_policies": {"cluster": "m", "percent": 101}}),
            "not a percentage",
        ),
        (
            json!({"redirect": {"response_code": 304}}),
            "redirect.response_code: redirect code 304",
        ),
        (
            json!({"redirect": {"scheme_redirect": "1http"}}),
            "bad scheme",
        ),
        (
            json!({"redirect": {"scheme_redirect": "http", "https_redirect": true}}),
            "not both",
        ),
        (
            json!({"redirect": {"path_redirect": "/a", "prefix_rewrite": "/b"}}),
            "not both",
        ),
        (json!({"redirect": {"port_redirect": 70000}}), "not a port"),
        (
            json!({"redirect": {"host_redirect": "a\r\nSet-Cookie: x"}}),
            "redirect.host_redirect",
        ),
    ];
    for (route, want) in cases {
        let err = build_error(route.clone());
        assert!(err.contains(want), "{route}: {err}");
    }
}
