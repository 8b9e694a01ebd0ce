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
        r#""bind_port": true, "inspector": true, "frobnicate": 1"#,
    );
    let loaded = load_str(&text).expect("valid");
    let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(w.contains(&"servers[0].listeners[0].inspector: valid MOSN key, not implemented by mosn-rs yet: ignored".to_string()), "{w:?}");
    assert!(
        w.contains(&"servers[0].listeners[0].frobnicate: unknown key: ignored".to_string()),
        "{w:?}"
    );
}

#[test]
fn later_protocols_are_named_not_yet() {
    let text = minimal(PROXY).replace(
        r#""downstream_protocol": "Http1""#,
        r#""downstream_protocol": "Http2""#,
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
fn enabled_tls_and_xprotocol_and_xds_are_refused_not_downgraded() {
    let tls = minimal(PROXY).replace(
        r#""filter_chains": [{"filters""#,
        r#""filter_chains": [{"tls_context": {"status": true}, "filters""#,
    );
    let errs = errors_of(&tls);
    assert_eq!(errs, vec!["servers[0].listeners[0].filter_chains[0].tls_context: TLS is valid MOSN but not supported by mosn-rs yet"]);
    let off = minimal(PROXY).replace(
        r#""filter_chains": [{"filters""#,
        r#""filter_chains": [{"tls_context": {}, "filters""#,
    );
    assert!(errors_of(&off).is_empty());
    let sub = minimal(PROXY).replace(
        r#""router_config_name": "r"}}"#,
        r#""router_config_name": "r", "extend_config": {"sub_protocol": "bolt"}}}"#,
    );
    let errs = errors_of(&sub);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].ends_with(r#"config.extend_config.sub_protocol: XProtocol "bolt" is valid MOSN but not supported by mosn-rs yet"#), "{errs:?}");
    let xds = errors_of(r#"{"dynamic_resources": {}, "static_resources": {}}"#);
    assert_eq!(xds.len(), 2);
    assert!(xds[0].starts_with("dynamic_resources: an xDS bootstrap"));
}
