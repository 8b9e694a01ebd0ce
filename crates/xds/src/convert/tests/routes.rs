use super::fixtures::*;
use super::*;
use crate::convert::route_configuration;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::envoy::r#type::v3 as types;
use mosn_config::RetryOnConfig;
use serde_json::json;

pub(crate) fn route_to_cluster(prefix: &str, cluster: &str) -> rt::Route {
    rt::Route {
        r#match: Some(rt::RouteMatch {
            path_specifier: Some(rt::route_match::PathSpecifier::Prefix(prefix.into())),
            ..Default::default()
        }),
        action: Some(rt::route::Action::Route(rt::RouteAction {
            cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster(cluster.into())),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn action(a: rt::RouteAction) -> Option<rt::route::Action> {
    Some(rt::route::Action::Route(a))
}

fn to(cluster: &str) -> Option<rt::route_action::ClusterSpecifier> {
    Some(rt::route_action::ClusterSpecifier::Cluster(cluster.into()))
}

fn path_match(spec: rt::route_match::PathSpecifier) -> Option<rt::RouteMatch> {
    Some(rt::RouteMatch {
        path_specifier: Some(spec),
        ..Default::default()
    })
}

fn regex(r: &str) -> matcher::RegexMatcher {
    matcher::RegexMatcher {
        regex: r.into(),
        ..Default::default()
    }
}

fn header_add(key: &str, value: &str, append: bool) -> core::HeaderValueOption {
    use core::header_value_option::HeaderAppendAction as A;
    core::HeaderValueOption {
        header: Some(core::HeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        append_action: if append {
            A::AppendIfExistsOrAdd
        } else {
            A::OverwriteIfExistsOrAdd
        } as i32,
        ..Default::default()
    }
}

/// Every match and action kind the conversion supports, in an Istio-shaped table.
pub(crate) fn all_kinds() -> rt::RouteConfiguration {
    use rt::route_match::PathSpecifier as P;
    let retry = rt::RetryPolicy {
        retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
            .into(),
        num_retries: u32v(2),
        per_try_timeout: millis(500),
        retriable_status_codes: vec![503],
        retry_back_off: Some(rt::retry_policy::RetryBackOff {
            base_interval: millis(25),
            max_interval: millis(250),
        }),
        retry_host_predicate: vec![rt::retry_policy::RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".into(),
            ..Default::default()
        }],
        host_selection_retry_max_attempts: 5,
        ..Default::default()
    };
    let routes = vec![
        // 0: prefix, case-insensitive, headers of every kind, query parameters, gRPC.
        rt::Route {
            name: "api".into(),
            r#match: Some(rt::RouteMatch {
                path_specifier: Some(P::Prefix("/api".into())),
                case_sensitive: boolv(false),
                headers: vec![
                    rt::HeaderMatcher {
                        name: "x-exact".into(),
                        header_match_specifier: Some(
                            rt::header_matcher::HeaderMatchSpecifier::StringMatch(
                                matcher::StringMatcher {
                                    match_pattern: Some(
                                        matcher::string_matcher::MatchPattern::Exact("v1".into()),
                                    ),
                                    ..Default::default()
                                },
                            ),
                        ),
                        ..Default::default()
                    },
                    rt::HeaderMatcher {
                        name: "x-prefix-nocase".into(),
                        header_match_specifier: Some(
                            rt::header_matcher::HeaderMatchSpecifier::StringMatch(
                                matcher::StringMatcher {
                                    ignore_case: true,
                                    match_pattern: Some(
                                        matcher::string_matcher::MatchPattern::Prefix(
                                            "Beta".into(),
                                        ),
                                    ),
                                },
                            ),
                        ),
                        ..Default::default()
                    },
                    rt::HeaderMatcher {
                        name: "x-regex".into(),
                        header_match_specifier: Some(
                            rt::header_matcher::HeaderMatchSpecifier::StringMatch(
                                matcher::StringMatcher {
                                    match_pattern: Some(
                                        matcher::string_matcher::MatchPattern::SafeRegex(regex(
                                            "[0-9]+",
                                        )),
                                    ),
                                    ..Default::default()
                                },
                            ),
                        ),
                        ..Default::default()
                    },
                    rt::HeaderMatcher {
                        name: "x-debug".into(),
                        header_match_specifier: Some(
                            rt::header_matcher::HeaderMatchSpecifier::PresentMatch(true),
                        ),
                        invert_match: true,
                        ..Default::default()
                    },
                    rt::HeaderMatcher {
                        name: "x-any".into(),
                        ..Default::default()
                    },
                ],
                query_parameters: vec![
                    rt::QueryParameterMatcher {
                        name: "v".into(),
                        query_parameter_match_specifier: Some(
                            rt::query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(
                                matcher::StringMatcher {
                                    match_pattern: Some(
                                        matcher::string_matcher::MatchPattern::Suffix("-rc".into()),
                                    ),
                                    ..Default::default()
                                },
                            ),
                        ),
                    },
                    rt::QueryParameterMatcher {
                        name: "debug".into(),
                        query_parameter_match_specifier: Some(
                            rt::query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(
                                true,
                            ),
                        ),
                    },
                ],
                grpc: Some(rt::route_match::GrpcRouteMatchOptions {}),
                ..Default::default()
            }),
            action: action(rt::RouteAction {
                cluster_specifier: to(REVIEWS),
                prefix_rewrite: "/v2/api".into(),
                timeout: secs(0),
                idle_timeout: secs(30),
                hash_policy: vec![
                    rt::route_action::HashPolicy {
                        policy_specifier: Some(
                            rt::route_action::hash_policy::PolicySpecifier::Header(
                                rt::route_action::hash_policy::Header {
                                    header_name: "x-user".into(),
                                    ..Default::default()
                                },
                            ),
                        ),
                        ..Default::default()
                    },
                    rt::route_action::HashPolicy {
                        policy_specifier: Some(
                            rt::route_action::hash_policy::PolicySpecifier::Cookie(
                                rt::route_action::hash_policy::Cookie {
                                    name: "session".into(),
                                    ttl: secs(60),
                                    path: "/".into(),
                                    ..Default::default()
                                },
                            ),
                        ),
                        ..Default::default()
                    },
                    rt::route_action::HashPolicy {
                        policy_specifier: Some(
                            rt::route_action::hash_policy::PolicySpecifier::ConnectionProperties(
                                rt::route_action::hash_policy::ConnectionProperties {
                                    source_ip: true,
                                },
                            ),
                        ),
                        ..Default::default()
                    },
                ],
                host_rewrite_specifier: Some(
                    rt::route_action::HostRewriteSpecifier::HostRewriteLiteral(
                        "reviews.internal".into(),
                    ),
                ),
                max_stream_duration: Some(rt::route_action::MaxStreamDuration {
                    max_stream_duration: secs(0),
                    grpc_timeout_header_max: secs(0),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            request_headers_to_add: vec![header_add("x-route", "api", false)],
            response_headers_to_remove: vec!["x-internal".into()],
            ..Default::default()
        },
        // 1: exact path, weighted clusters with subsets, its own retry policy.
        rt::Route {
            r#match: path_match(P::Path("/exact".into())),
            action: action(rt::RouteAction {
                cluster_specifier: Some(rt::route_action::ClusterSpecifier::WeightedClusters(
                    rt::WeightedCluster {
                        clusters: vec![
                            rt::weighted_cluster::ClusterWeight {
                                name: REVIEWS.into(),
                                weight: u32v(90),
                                metadata_match: lb_metadata(&[("version", "v1")]),
                                ..Default::default()
                            },
                            rt::weighted_cluster::ClusterWeight {
                                name: RATINGS.into(),
                                weight: u32v(10),
                                ..Default::default()
                            },
                        ],
                        ..Default::default()
                    },
                )),
                retry_policy: Some(rt::RetryPolicy {
                    retry_on: "5xx".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        // 2: regex, regex rewrite, auto host rewrite, metadata match, mirrors.
        rt::Route {
            r#match: path_match(P::SafeRegex(regex("/users/[0-9]+"))),
            action: action(rt::RouteAction {
                cluster_specifier: to(REVIEWS),
                metadata_match: lb_metadata(&[("stage", "prod")]),
                regex_rewrite: Some(matcher::RegexMatchAndSubstitute {
                    pattern: Some(regex("^/users/([0-9]+)$")),
                    substitution: "/u/\\1".into(),
                }),
                host_rewrite_specifier: Some(
                    rt::route_action::HostRewriteSpecifier::AutoHostRewrite(
                        envoy_types::pb::google::protobuf::BoolValue { value: true },
                    ),
                ),
                request_mirror_policies: vec![rt::route_action::RequestMirrorPolicy {
                    cluster: RATINGS.into(),
                    runtime_fraction: Some(core::RuntimeFractionalPercent {
                        default_value: Some(types::FractionalPercent {
                            numerator: 25,
                            denominator: types::fractional_percent::DenominatorType::Hundred as i32,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        },
        // 3: path-separated prefix, cluster from a header.
        rt::Route {
            r#match: path_match(P::PathSeparatedPrefix("/svc".into())),
            action: action(rt::RouteAction {
                cluster_specifier: Some(rt::route_action::ClusterSpecifier::ClusterHeader(
                    "x-cluster".into(),
                )),
                host_rewrite_specifier: Some(
                    rt::route_action::HostRewriteSpecifier::HostRewriteHeader("x-host".into()),
                ),
                ..Default::default()
            }),
            ..Default::default()
        },
        // 4: redirect.
        rt::Route {
            r#match: path_match(P::Prefix("/old".into())),
            action: Some(rt::route::Action::Redirect(rt::RedirectAction {
                host_redirect: "new.example.com".into(),
                port_redirect: 8443,
                response_code: rt::redirect_action::RedirectResponseCode::PermanentRedirect as i32,
                strip_query: true,
                scheme_rewrite_specifier: Some(
                    rt::redirect_action::SchemeRewriteSpecifier::HttpsRedirect(true),
                ),
                path_rewrite_specifier: Some(
                    rt::redirect_action::PathRewriteSpecifier::PrefixRewrite("/new".into()),
                ),
            })),
            ..Default::default()
        },
        // 5: direct response.
        rt::Route {
            r#match: path_match(P::Path("/healthz".into())),
            action: Some(rt::route::Action::DirectResponse(
                rt::DirectResponseAction {
                    status: 200,
                    body: Some(core::DataSource {
                        specifier: Some(core::data_source::Specifier::InlineString("ok".into())),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )),
            ..Default::default()
        },
        // 6: Istio's default route, with the virtual host's retry policy.
        route_to_cluster("/", REVIEWS),
    ];
    rt::RouteConfiguration {
        name: "9080".into(),
        virtual_hosts: vec![
            rt::VirtualHost {
                name: "reviews.default.svc.cluster.local:9080".into(),
                domains: vec![
                    "reviews.default.svc.cluster.local".into(),
                    "reviews.default.svc.cluster.local:9080".into(),
                    "reviews".into(),
                    "reviews:9080".into(),
                    "10.96.0.10".into(),
                    "10.96.0.10:9080".into(),
                ],
                routes,
                retry_policy: Some(retry),
                request_headers_to_add: vec![header_add("x-vhost", "reviews", true)],
                ..Default::default()
            },
            rt::VirtualHost {
                name: "allow_any".into(),
                domains: vec!["*".into()],
                routes: vec![route_to_cluster("/", "PassthroughCluster")],
                ..Default::default()
            },
        ],
        response_headers_to_add: vec![header_add("x-mesh", "mosn-rs", false)],
        request_headers_to_remove: vec!["x-envoy-peer-metadata".into()],
        validate_clusters: boolv(false),
        ..Default::default()
    }
}

#[test]
fn every_match_and_action_kind() {
    let out = route_configuration(&all_kinds()).expect("converts");
    let r = &out.value;
    assert_eq!(r.router_config_name, "9080");
    assert_eq!(r.response_headers_to_add[0].header.key, "x-mesh");
    assert_eq!(r.response_headers_to_add[0].append, Some(false));
    assert_eq!(r.request_headers_to_remove, vec!["x-envoy-peer-metadata"]);
    let vh = &r.virtual_hosts[0];
    // host:port forms are dropped where the host is listed too.
    assert_eq!(
        vh.domains,
        vec!["reviews.default.svc.cluster.local", "reviews", "10.96.0.10"]
    );
    assert_eq!(vh.request_headers_to_add[0].append, Some(true));

    let api = &vh.routers[0];
    let m = serde_json::to_value(&api.matcher).expect("json");
    assert_eq!(
        m,
        json!({
            "prefix": "/api", "case_sensitive": false,
            "headers": [
                {"name": "x-exact", "exact_match": "v1"},
                {"name": "x-prefix-nocase", "value": "(?is)Beta.*", "regex": true},
                {"name": "x-regex", "value": "[0-9]+", "regex": true},
                {"name": "x-debug", "present_match": true, "invert_match": true},
                {"name": "x-any", "present_match": true},
                {"name": "content-type", "prefix_match": "application/grpc"},
            ],
            "query_parameters": [
                {"name": "v", "value": ".*\\-rc", "regex": true},
                {"name": "debug"},
            ],
        })
    );
    let a = api.route.as_ref().expect("route");
    assert_eq!(a.cluster_name, REVIEWS);
    assert_eq!(a.prefix_rewrite, "/v2/api");
    assert_eq!(a.timeout.map(|d| d.0.as_secs()), Some(0), "0: no timeout");
    assert_eq!(a.idle_timeout.map(|d| d.0.as_secs()), Some(30));
    assert_eq!(a.host_rewrite, "reviews.internal");
    assert_eq!(
        serde_json::to_value(&a.hash_policy).expect("json"),
        json!([{"header": {"key": "x-user"}}, {"cookie": {"name": "session", "path": "/", "ttl": "1m"}}, {"source_ip": {}}])
    );
    // The virtual host's retry policy, with the conditions mosn-rs knows.
    let retry = a.retry_policy.as_ref().expect("inherited retry policy");
    assert_eq!(
        retry.retry_on,
        Some(RetryOnConfig::Conditions(
            "connect-failure,refused-stream,retriable-status-codes".into()
        ))
    );
    assert_eq!(retry.num_retries, Some(2));
    assert_eq!(retry.per_try_timeout.map(|d| d.0.as_millis()), Some(500));
    assert_eq!(retry.retriable_status_codes, vec![503]);
    assert_has(
        &out.warnings,
        "[\"unavailable\", \"cancelled\"] are not retried on",
    );
    assert_eq!(api.request_headers_to_add[0].header.key, "x-route");
    assert_eq!(api.response_headers_to_remove, vec!["x-internal"]);

    let weighted = vh.routers[1].route.as_ref().expect("route");
    assert_eq!(vh.routers[1].matcher.path.as_deref(), Some("/exact"));
    assert_eq!(
        serde_json::to_value(&weighted.weighted_clusters).expect("json"),
        json!([
            {"cluster": {"name": REVIEWS, "weight": 90, "metadata_match": {"filter_metadata": {"mosn.lb": {"version": "v1"}}}}},
            {"cluster": {"name": RATINGS, "weight": 10}},
        ])
    );
    assert_eq!(
        weighted
            .retry_policy
            .as_ref()
            .and_then(|r| r.retry_on.clone()),
        Some(RetryOnConfig::Conditions("5xx".into())),
        "its own policy wins over the virtual host's"
    );
    assert_eq!(
        weighted.timeout.map(|d| d.0.as_secs()),
        Some(15),
        "Envoy's default timeout"
    );

    let re = &vh.routers[2];
    assert_eq!(re.matcher.regex.as_deref(), Some("/users/[0-9]+"));
    let a = re.route.as_ref().expect("route");
    assert_eq!(
        a.regex_rewrite.as_ref().map(|r| r.substitution.as_str()),
        Some("/u/\\1")
    );
    assert!(a.auto_host_rewrite);
    assert_eq!(
        serde_json::to_value(&a.metadata_match).expect("json"),
        json!({"filter_metadata": {"mosn.lb": {"stage": "prod"}}})
    );
    assert_eq!(a.request_mirror_policies.len(), 1);
    assert_eq!(
        (
            a.request_mirror_policies[0].cluster.as_str(),
            a.request_mirror_policies[0].percent
        ),
        (RATINGS, 25)
    );

    let sep = &vh.routers[3];
    assert_eq!(sep.matcher.regex.as_deref(), Some("/svc(/.*)?"));
    let a = sep.route.as_ref().expect("route");
    assert_eq!(
        (
            a.cluster_header.as_str(),
            a.auto_host_rewrite_header.as_str()
        ),
        ("x-cluster", "x-host")
    );

    let redirect = vh.routers[4].redirect.as_ref().expect("redirect");
    assert_eq!(
        serde_json::to_value(redirect).expect("json"),
        json!({"response_code": 308, "host_redirect": "new.example.com", "prefix_rewrite": "/new",
               "https_redirect": true, "port_redirect": 8443, "strip_query": true})
    );
    let direct = vh.routers[5]
        .direct_response
        .as_ref()
        .expect("direct response");
    assert_eq!((direct.status, direct.body.as_str()), (200, "ok"));
    assert_eq!(
        vh.routers[6]
            .route
            .as_ref()
            .map(|a| a.cluster_name.as_str()),
        Some(REVIEWS)
    );
    assert_eq!(r.virtual_hosts[1].domains, vec!["*"]);
}

fn one_route(r: rt::Route) -> rt::RouteConfiguration {
    rt::RouteConfiguration {
        name: "r".into(),
        virtual_hosts: vec![rt::VirtualHost {
            name: "v".into(),
            domains: vec!["*".into()],
            routes: vec![r],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn unsupported_route_fields_are_refused_by_name() {
    let mut r = route_to_cluster("/", "c");
    r.typed_per_filter_config.insert(
        "envoy.filters.http.fault".into(),
        pack(&envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault::default()),
    );
    assert_eq!(
        refusal(route_configuration(&one_route(r))),
        "route configuration \"r\": virtual_hosts[0].routes[0].typed_per_filter_config[\"envoy.filters.http.fault\"]: per-route configs of HTTP filters are not supported"
    );

    let mut r = route_to_cluster("/", "c");
    if let Some(m) = &mut r.r#match {
        m.headers.push(rt::HeaderMatcher {
            name: "x-n".into(),
            header_match_specifier: Some(rt::header_matcher::HeaderMatchSpecifier::RangeMatch(
                types::Int64Range { start: 1, end: 5 },
            )),
            ..Default::default()
        });
    }
    assert!(refusal(route_configuration(&one_route(r)))
        .ends_with("routes[0].match.headers[0].range_match: range matches are not supported"));

    let mut r = route_to_cluster("/", "c");
    r.request_headers_to_add
        .push(header_add("x-client", "%DOWNSTREAM_REMOTE_ADDRESS%", true));
    assert!(refusal(route_configuration(&one_route(r))).contains("request_headers_to_add[0].header.value: \"%DOWNSTREAM_REMOTE_ADDRESS%\": Envoy's %...% formatters are not supported"));

    let r = rt::Route {
        r#match: path_match(rt::route_match::PathSpecifier::SafeRegex(regex("/a.*"))),
        action: action(rt::RouteAction {
            cluster_specifier: to("c"),
            prefix_rewrite: "/b".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(refusal(route_configuration(&one_route(r)))
        .contains("route.prefix_rewrite: prefix_rewrite on a route matched by regex"));

    let mut rc = one_route(route_to_cluster("/", "c"));
    rc.virtual_hosts[0].require_tls = rt::virtual_host::TlsRequirementType::All as i32;
    assert!(
        refusal(route_configuration(&rc)).ends_with("virtual_hosts[0].require_tls: not supported")
    );

    // The model's own checks: a regex the router cannot compile.
    let r = rt::Route {
        r#match: path_match(rt::route_match::PathSpecifier::SafeRegex(regex("/a("))),
        action: action(rt::RouteAction {
            cluster_specifier: to("c"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let text = refusal(route_configuration(&one_route(r)));
    assert!(
        text.contains(
            "refused by mosn-rs's checks: virtual_hosts[0].routers[0].match.regex: bad regex"
        ),
        "{text}"
    );
}

#[test]
fn istio_per_filter_configs_of_skipped_filters_are_dropped() {
    let mut r = route_to_cluster("/", "c");
    r.typed_per_filter_config.insert(
        "istio.stats".into(),
        typed_struct("type.googleapis.com/stats.PluginConfig"),
    );
    let out = route_configuration(&one_route(r)).expect("converts");
    assert_has(
        &out.warnings,
        "typed_per_filter_config[\"istio.stats\"]: skipped",
    );
}

#[test]
fn virtual_host_mirrors_are_inherited() {
    let mut rc = one_route(route_to_cluster("/", "c"));
    rc.virtual_hosts[0].request_mirror_policies = vec![rt::route_action::RequestMirrorPolicy {
        cluster: "shadow".into(),
        runtime_fraction: Some(core::RuntimeFractionalPercent {
            default_value: Some(types::FractionalPercent {
                numerator: 5,
                denominator: types::fractional_percent::DenominatorType::TenThousand as i32,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let out = route_configuration(&rc).expect("converts");
    let a = out.value.virtual_hosts[0].routers[0]
        .route
        .as_ref()
        .expect("route");
    assert_eq!(
        (
            a.request_mirror_policies[0].cluster.as_str(),
            a.request_mirror_policies[0].percent
        ),
        ("shadow", 1)
    );
    assert_has(&out.warnings, "0.05% is mirrored as 1%");
}
