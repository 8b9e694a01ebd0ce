use super::*;

fn minimal(listener_filter: &str) -> String {
    format!(
        r#"{{
  "servers": [{{
    "routers": [{{"router_config_name": "r", "virtual_hosts": [{{"name": "h", "domains": ["*"],
      "routers": [{{"match": {{"prefix": "/"}}, "route": {{"cluster_name": "c"}}}}]}}]}}],
    "listeners": [{{"name": "l", "address": "127.0.0.1:2045", "bind_port": true,
      "filter_chains": [{{"filters": [{listener_filter}]}}]}}]
  }}],
  "cluster_manager": {{"clusters": [{{"name": "c", "type": "SIMPLE", "lb_type": "LB_RANDOM",
    "hosts": [{{"address": "127.0.0.1:8080"}}]}}]}}
}}"#
    )
}

const PROXY: &str =
    r#"{"type": "proxy", "config": {"downstream_protocol": "Http1", "router_config_name": "r"}}"#;

fn errors_of(text: &str) -> Vec<String> {
    match load_str(text) {
        Ok(_) => vec![],
        Err(e) => e.issues(),
    }
}

#[test]
fn minimal_config_loads_with_typed_filter() {
    let loaded = load_str(&minimal(PROXY)).expect("valid");
    let filter = &loaded.config.servers[0].listeners[0].filter_chains[0].filters[0];
    assert!(matches!(filter.parsed, Some(NetworkFilter::Proxy(_))));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn unknown_router_is_named_with_its_path() {
    let text = minimal(PROXY).replace(
        r#""router_config_name": "r"}}"#,
        r#""router_config_name": "x"}}"#,
    );
    let errs = errors_of(&text);
    assert_eq!(
        errs,
        vec![
            r#"servers[0].listeners[0].filter_chains[0].filters[0].config.router_config_name: no router named "x""#
        ]
    );
}

#[test]
fn unknown_cluster_in_route_is_an_error() {
    let text = minimal(PROXY).replace(r#""cluster_name": "c""#, r#""cluster_name": "nope""#);
    let errs = errors_of(&text);
    assert_eq!(
        errs,
        vec![
            r#"servers[0].routers[0].virtual_hosts[0].routers[0].route.cluster_name: no cluster named "nope""#
        ]
    );
}

#[test]
fn malformed_json_gives_line_and_column() {
    let err = load_str("{\n  \"servers\": [,]\n}").unwrap_err();
    match err {
        ConfigError::Json { line, column, .. } => assert_eq!((line, column), (2, 15)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn type_errors_carry_the_path() {
    let text = minimal(PROXY).replace(r#""bind_port": true"#, r#""bind_port": "yes""#);
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("servers[0].listeners[0].bind_port: invalid type"),
        "{errs:?}"
    );
}

#[test]
fn bad_durations_are_errors() {
    let text = minimal(PROXY).replace(
        r#""bind_port": true"#,
        r#""bind_port": true, "connection_idle_timeout": "10 parsecs""#,
    );
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("servers[0].listeners[0].connection_idle_timeout: invalid duration"),
        "{errs:?}"
    );
}

#[test]
fn duplicates_and_bad_addresses_are_all_reported() {
    let text = r#"{
      "servers": [{"listeners": [
        {"name": "a", "address": "127.0.0.1:1", "bind_port": true, "filter_chains": [{"filters": [{"type": "tcp_proxy", "config": {"cluster": "c"}}]}]},
        {"name": "a", "address": "127.0.0.1:1", "bind_port": true, "filter_chains": [{"filters": [{"type": "tcp_proxy", "config": {"cluster": "c"}}]}]},
        {"name": "b", "address": "localhost:99999", "bind_port": true, "filter_chains": [{"filters": [{"type": "tcp_proxy", "config": {"cluster": "c"}}]}]}
      ]}],
      "cluster_manager": {"clusters": [
        {"name": "c", "hosts": [{"address": "nohost"}]},
        {"name": "c"}
      ]}
    }"#;
    let errs = errors_of(text);
    let expect = [
        "cluster_manager.clusters[0].hosts[0].address: bad address",
        "cluster_manager.clusters[1].name: duplicate cluster name",
        "servers[0].listeners[1].name: duplicate listener name",
        "servers[0].listeners[1].address: address 127.0.0.1:1 is already used by servers[0].listeners[0]",
        "servers[0].listeners[2].address: bad address",
    ];
    for e in expect {
        assert!(
            errs.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
}

#[test]
fn keys_match_case_insensitively_like_go() {
    let text = minimal(PROXY).replace(r#""name": "c""#, r#""Name": "c""#);
    let loaded = load_str(&text).expect("valid");
    assert_eq!(loaded.config.cluster_manager.clusters[0].name, "c");
}

#[test]
fn unimplemented_and_unknown_keys_are_warned_with_paths() {
    let text = minimal(PROXY).replace(
        r#""bind_port": true"#,
        r#""bind_port": true, "perconnection_buffer_limit_bytes": 1, "frobnicate": 1"#,
    );
    let loaded = load_str(&text).expect("valid");
    let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(w.contains(&"servers[0].listeners[0].perconnection_buffer_limit_bytes: valid MOSN key, not implemented by mosn-rs yet: ignored".to_string()), "{w:?}");
    assert!(
        w.contains(&"servers[0].listeners[0].frobnicate: unknown key: ignored".to_string()),
        "{w:?}"
    );
}

#[test]
fn later_protocols_are_named_not_yet() {
    let text = minimal(PROXY).replace(
        r#""downstream_protocol": "Http1""#,
        r#""downstream_protocol": "tars""#,
    );
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("not supported by mosn-rs yet"), "{errs:?}");
    assert!(errs[0].starts_with(
        "servers[0].listeners[0].filter_chains[0].filters[0].config.downstream_protocol"
    ));
}

#[test]
fn tcp_proxy_routes_are_checked() {
    let tcp = r#"{"type": "tcp_proxy", "config": {"cluster": "c", "routes": [
        {"cluster": "c", "source_addrs": [{"address": "10.0.0.0", "length": 40}], "destination_port": "9-1"}]}}"#;
    let errs = errors_of(&minimal(tcp));
    assert!(
        errs.iter()
            .any(|e| e.ends_with("routes[0].source_addrs[0].length: prefix length 40 exceeds 32")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("routes[0].destination_port: bad port")),
        "{errs:?}"
    );
}

#[test]
fn bad_regex_domain_and_status() {
    let text = minimal(PROXY)
        .replace(r#""domains": ["*"]"#, r#""domains": ["a.*.com"]"#)
        .replace(
            r#""match": {"prefix": "/"}, "route": {"cluster_name": "c"}"#,
            r#""match": {"regex": "("}, "direct_response": {"status": 99}"#,
        );
    let errs = errors_of(&text);
    assert!(
        errs.iter().any(|e| e.contains("domains[0]: bad domain")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("match.regex: bad regex")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("direct_response.status: status 99")),
        "{errs:?}"
    );
}

/// Every config of MOSN's corpus parses as JSON into the model; those that use only
/// implemented features validate. The rest must fail with a "not supported yet" error
/// naming the path, never with a parse error of a valid MOSN key.
#[test]
fn mosn_corpus_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/mosn-configs");
    if !dir.exists() {
        eprintln!("skipping: {} not present", dir.display());
        return;
    }
    let mut stack = vec![dir];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                seen += 1;
                if let Err(e) = load_file(&path) {
                    for issue in e.issues() {
                        assert!(
                            issue.contains("not supported by mosn-rs yet")
                                || issue.contains("no router named")
                                || issue.contains("no cluster named")
                                || issue.contains("at least one server"),
                            "{}: unexpected error {issue}",
                            path.display()
                        );
                    }
                }
            }
        }
    }
    assert!(seen > 10);
}

#[test]
fn tls_without_certificate_and_unsupported_xprotocol_are_refused_not_downgraded() {
    let tls = minimal(PROXY).replace(
        r#""filter_chains": [{"filters""#,
        r#""filter_chains": [{"tls_context": {"status": true}, "filters""#,
    );
    let errs = errors_of(&tls);
    assert_eq!(errs, vec!["servers[0].listeners[0].filter_chains[0].tls_context.cert_chain: a listener's TLS context needs cert_chain and private_key"]);
    let fallback = minimal(PROXY).replace(
        r#""filter_chains": [{"filters""#,
        r#""filter_chains": [{"tls_context": {"status": true, "cert_chain": "c.pem", "private_key": "k.pem", "fall_back": true, "max_version": "tlsv1_1", "cipher_suites": "RSA-AES128-CBC-SHA", "ecdh_curves": "p999"}, "filters""#,
    );
    let errs = errors_of(&fallback);
    let at = "servers[0].listeners[0].filter_chains[0].tls_context";
    assert_eq!(errs, vec![
        format!("{at}.fall_back: falling back to plaintext when the certificate fails is a silent downgrade; mosn-rs refuses it"),
        format!("{at}.max_version: TLS 1.0 and 1.1 are not supported (rustls speaks TLS 1.2 and 1.3)"),
        format!("{at}.cipher_suites: no cipher left that rustls offers"),
        format!("{at}.ecdh_curves: curve \"p999\" is not supported"),
        format!("{at}.ecdh_curves: no curve left that rustls offers"),
    ]);
    let off = minimal(PROXY).replace(
        r#""filter_chains": [{"filters""#,
        r#""filter_chains": [{"tls_context": {}, "filters""#,
    );
    assert!(errors_of(&off).is_empty());
    // MOSN's older RPC shape: "X" names its codec in extend_config.sub_protocol.
    let sub = minimal(PROXY)
        .replace(
            r#""downstream_protocol": "Http1""#,
            r#""downstream_protocol": "X""#,
        )
        .replace(
            r#""router_config_name": "r"}}"#,
            r#""router_config_name": "r", "extend_config": {"sub_protocol": "tars"}}}"#,
        );
    let errs = errors_of(&sub);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].ends_with(r#"config.extend_config.sub_protocol: protocol "tars" is valid MOSN but not supported by mosn-rs yet (supported: "Http1", "Http2", "Auto", "bolt", "boltv2", "dubbo")"#), "{errs:?}");
    let bolt = minimal(PROXY)
        .replace(
            r#""downstream_protocol": "Http1""#,
            r#""downstream_protocol": "X""#,
        )
        .replace(
            r#""router_config_name": "r"}}"#,
            r#""router_config_name": "r", "extend_config": {"sub_protocol": "bolt"}}}"#,
        );
    assert!(errors_of(&bolt).is_empty());
    // An xDS bootstrap loads here (crates/xds checks its keys); without servers it
    // needs dynamic_resources.
    assert!(errors_of(r#"{"dynamic_resources": {}, "static_resources": {}}"#).is_empty());
    assert_eq!(
        errors_of(r#"{"static_resources": {}}"#),
        vec!["servers: at least one server is required"]
    );
}

/// A config with clusters `c` and `c2` and one virtual host holding `routes`.
fn with_routes(routes: &str) -> String {
    format!(
        r#"{{
  "servers": [{{
    "routers": [{{"router_config_name": "r", "virtual_hosts": [{{"name": "h", "domains": ["*"],
      "routers": {routes}}}]}}],
    "listeners": [{{"name": "l", "address": "127.0.0.1:2045", "bind_port": true,
      "filter_chains": [{{"filters": [{PROXY}]}}]}}]
  }}],
  "cluster_manager": {{"clusters": [
    {{"name": "c", "hosts": [{{"address": "127.0.0.1:8080"}}]}},
    {{"name": "c2", "hosts": [{{"address": "127.0.0.1:8081"}}]}}
  ]}}
}}"#
    )
}

const ROUTE_PATH: &str = "servers[0].routers[0].virtual_hosts[0].routers[0]";

#[test]
fn route_features_load_without_warnings() {
    let routes = r#"[
      {"match": {"prefix": "/a", "case_sensitive": false,
                 "headers": [{"name": "x", "value": "1"}, {"name": "y", "prefix_match": "p", "invert_match": true},
                             {"name": "z", "present_match": true}, {"name": "w", "value": "v[0-9]", "regex": true},
                             {"name": "s", "suffix_match": "s"}, {"name": "c", "contains_match": "c"},
                             {"name": "e", "exact_match": "e"}],
                 "query_parameters": [{"name": "q", "value": "1"}, {"name": "r", "value": "[a-z]+", "regex": true},
                                      {"name": "p", "present_match": true}],
                 "variables": [{"name": "x-mosn-method", "value": "GET", "model": "or"},
                               {"name": "Http1_request_header_t", "regex": "a.*"}]},
       "route": {"weighted_clusters": [
                   {"cluster": {"name": "c", "weight": 90, "metadata_match": {"filter_metadata": {"mosn.lb": {"v": "1"}}}}},
                   {"cluster": {"name": "c2", "weight": 10}}],
                 "metadata_match": {"filter_metadata": {"mosn.lb": {"zone": "a"}}},
                 "hash_policy": [{"header": {"key": "x-user"}}, {"cookie": {"name": "s", "path": "/", "ttl": "1m"}}, {"source_ip": {}}],
                 "retry_policy": {"retry_on": true, "retry_timeout": "1s", "num_retries": 3, "status_codes": [503]},
                 "prefix_rewrite": "/b", "host_rewrite": "example.com",
                 "timeout": "5s", "idle_timeout": "30s",
                 "request_mirror_policies": [{"cluster": "c2", "percent": 10}]},
       "request_mirror_policies": {"cluster": "c2", "percent": 50, "trace_sampled": false}},
      {"match": {"path": "/h"},
       "route": {"cluster_header": "x-cluster", "auto_host_rewrite": true,
                 "regex_rewrite": {"pattern": {"regex": "^/h$", "google_re2": {}}, "substitution": "/x"},
                 "retry_policy": {"retry_on": "5xx,reset,connect-failure,retriable-status-codes",
                                  "per_try_timeout": "200ms", "retriable_status_codes": [409],
                                  "retry_back_off": {"base_interval": "10ms", "max_interval": "100ms"}}}},
      {"match": {"prefix": "/v"}, "route": {"cluster_variable": "upstream", "auto_host_rewrite_header": "x-host"}},
      {"match": {"prefix": "/old"}, "redirect": {"scheme_redirect": "https", "host_redirect": "n.com",
                                                "path_redirect": "/new", "response_code": 308}},
      {"match": {"prefix": "/v1/"}, "redirect": {"prefix_rewrite": "/v2/", "https_redirect": true,
                                                "port_redirect": 8443, "strip_query": true}},
      {"match": {"prefix": "/"}, "direct_response": {"status": 404}}
    ]"#;
    let loaded = load_str(&with_routes(routes)).expect("valid");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let route = &loaded.config.servers[0].routers[0].virtual_hosts[0].routers[0];
    assert_eq!(route.request_mirror_policies.len(), 1);
    let action = route.route.as_ref().expect("route");
    assert_eq!(action.weighted_clusters.len(), 2);
    assert_eq!(action.request_mirror_policies[0].percent, 10);
    assert_eq!(
        action
            .retry_policy
            .as_ref()
            .and_then(|r| r.retry_on.clone()),
        Some(RetryOnConfig::Bool(true))
    );
    // The dump writes MOSN's single-object form back.
    let dumped = serde_json::to_value(route).expect("serializes");
    assert!(dumped["request_mirror_policies"].is_object(), "{dumped}");
    assert!(
        dumped["route"]["request_mirror_policies"].is_object(),
        "{dumped}"
    );
}

#[test]
fn route_errors_name_their_paths() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "c"}, "redirect": {}}"#,
            ": set only one of route, redirect, direct_response",
        ),
        (
            r#"{"match": {"prefix": "/"}}"#,
            ": a route needs one of route, redirect, direct_response",
        ),
        (
            r#"{"match": {"headers": [{"name": "x", "value": "(", "regex": true}]}, "route": {"cluster_name": "c"}}"#,
            ".match.headers[0].value: bad regex",
        ),
        (
            r#"{"match": {"headers": [{"name": "x", "value": "a", "suffix_match": "b"}]}, "route": {"cluster_name": "c"}}"#,
            ".match.headers[0]: set only one of value, exact_match",
        ),
        (
            r#"{"match": {"headers": [{"name": "x", "contains_match": ""}]}, "route": {"cluster_name": "c"}}"#,
            ".match.headers[0].contains_match: must not be empty",
        ),
        (
            r#"{"match": {"query_parameters": [{"name": "q", "value": "[", "regex": true}]}, "route": {"cluster_name": "c"}}"#,
            ".match.query_parameters[0].value: bad regex",
        ),
        (
            r#"{"match": {"query_parameters": [{"value": "1"}]}, "route": {"cluster_name": "c"}}"#,
            ".match.query_parameters[0].name: a query parameter matcher needs a name",
        ),
        (
            r#"{"match": {"variables": [{"name": "v", "regex": "("}]}, "route": {"cluster_name": "c"}}"#,
            ".match.variables[0].regex: bad regex",
        ),
        (
            r#"{"match": {"variables": [{"name": "v", "value": "1", "model": "xor"}]}, "route": {"cluster_name": "c"}}"#,
            ".match.variables[0].model: unknown model",
        ),
        (
            r#"{"match": {"prefix": "/"}, "route": {"weighted_clusters": [{"cluster": {"name": "c", "weight": 0}}, {"cluster": {"name": "c2"}}]}}"#,
            ".route.weighted_clusters: the weights sum to 0",
        ),
        (
            r#"{"match": {"prefix": "/"}, "route": {"weighted_clusters": [{"cluster": {"name": "nope", "weight": 1}}]}}"#,
            ".route.weighted_clusters[0].cluster.name: no cluster named \"nope\"",
        ),
        (
            r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "c"}, "request_mirror_policies": {"cluster": "gone", "percent": 5}}"#,
            ".request_mirror_policies.cluster: no cluster named \"gone\"",
        ),
        (
            r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "c", "request_mirror_policies": [{"cluster": "c2", "percent": 5}, {"cluster": "x", "percent": 5}]}}"#,
            ".route.request_mirror_policies[1].cluster: no cluster named \"x\"",
        ),
        (
            r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "c"}, "request_mirror_policies": {"cluster": "c2", "percent": 101}}"#,
            ".request_mirror_policies.percent: 101 is not a percentage",
        ),
        (
            r#"{"match": {"prefix": "/"}, "redirect": {"response_code": 200}}"#,
            ".redirect.response_code: redirect code 200 is not one of 301, 302, 303, 307, 308",
        ),
        (
            r#"{"match": {"prefix": "/"}, "redirect": {"scheme_redirect": "ht tp"}}"#,
            ".redirect.scheme_redirect: bad scheme",
        ),
        (
            r#"{"match": {"prefix": "/"}, "redirect": {"host_redirect": "a\r\nb"}}"#,
            ".redirect.host_redirect: contains CR, LF or NUL",
        ),
        (
            r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "c", "hash_policy": [{"header": {}}]}}"#,
            ".route.hash_policy[0].header.key: a header hash policy needs a key",
        ),
        (
            r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "c", "hash_policy": [{"cookie": {"path": "/"}}]}}"#,
            ".route.hash_policy[0].cookie.name: a cookie hash policy needs a name",
        ),
        (
            r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "c", "hash_policy": [{}]}}"#,
            ".route.hash_policy[0]: set exactly one of header, cookie, source_ip",
        ),
        (
            r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "c", "retry_policy": {"retry_on": "5xx,never"}}}"#,
            ".route.retry_policy.retry_on: unknown retry condition \"never\"",
        ),
        (
            r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "c", "retry_policy": {"retriable_status_codes": [99]}}}"#,
            ".route.retry_policy.retriable_status_codes[0]: 99 is not an HTTP status",
        ),
        (
            r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "c", "retry_policy": {"retry_back_off": {"max_interval": "1ms"}}}}"#,
            ".route.retry_policy.retry_back_off.max_interval: must not be less than base_interval",
        ),
        (
            r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "c", "regex_rewrite": {"pattern": {"regex": "(("}}}}"#,
            ".route.regex_rewrite.pattern.regex: bad regex",
        ),
        (
            r#"{"match": {"prefix": "/"}, "route": {"cluster_header": "bad header"}}"#,
            ".route.cluster_header: bad header name",
        ),
        (
            r#"{"match": {"prefix": "/"}, "route": {}}"#,
            ".route.cluster_name: a route needs a cluster_name",
        ),
    ];
    for (route, want) in cases {
        let errs = errors_of(&with_routes(&format!("[{route}]")));
        let want = format!("{ROUTE_PATH}{want}");
        assert!(
            errs.iter().any(|e| e.starts_with(&want)),
            "missing {want:?} for {route} in {errs:#?}"
        );
    }
}

#[test]
fn route_oddities_are_warned_not_refused() {
    let routes = r#"[
      {"match": {"regex": "/r.*", "variables": [{"name": "v"}]},
       "route": {"cluster_name": "c", "cluster_variable": "v", "prefix_rewrite": "/x",
                 "host_rewrite": "h", "auto_host_rewrite": true,
                 "metadata_match": {"filter_metadata": {"mosn.lb": {"n": 1}}}},
       "request_mirror_policies": {"cluster": "c2"}}
    ]"#;
    let loaded = load_str(&with_routes(routes)).expect("valid, with warnings");
    let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    for want in [
        ".match.variables[0]: neither value nor regex",
        ".route: cluster_name is used; cluster_variable ignored",
        ".route.prefix_rewrite: has no effect without match.prefix or match.path",
        ".route: host_rewrite is used; auto_host_rewrite ignored",
        ".route.metadata_match.filter_metadata.mosn.lb.n: ignored",
        ".request_mirror_policies.percent: is 0",
    ] {
        let want = format!("{ROUTE_PATH}{want}");
        assert!(
            w.iter().any(|x| x.starts_with(&want)),
            "missing {want:?} in {w:#?}"
        );
    }
}

#[test]
fn implemented_route_keys_are_not_reported_as_not_yet() {
    use crate::keys::is_mosn_key;
    for key in [
        "redirect",
        "weighted_clusters",
        "cluster_header",
        "cluster_variable",
        "hash_policy",
        "retry_policy",
        "prefix_rewrite",
        "regex_rewrite",
        "host_rewrite",
        "auto_host_rewrite",
        "auto_host_rewrite_header",
        "request_mirror_policies",
        "metadata_match",
        "variables",
    ] {
        assert!(!is_mosn_key(key), "{key}");
    }
    assert!(is_mosn_key("dsl_expressions"));
}
