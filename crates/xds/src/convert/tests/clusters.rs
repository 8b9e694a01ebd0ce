use super::fixtures::*;
use super::secrets::{istio_secrets, CA, CERT};
use super::*;
use crate::convert::{apply_secrets, cluster, UpstreamProtocol};
use envoy_types::pb::envoy::config::cluster::v3 as cl;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as ep;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as uh;
use envoy_types::pb::envoy::r#type::v3::Int64Range;
use serde_json::json;

#[test]
fn istio_eds_cluster_with_tls_from_sds() {
    let out = cluster(&eds_cluster(REVIEWS)).expect("converts");
    let v = &out.value;
    let c = &v.cluster;
    assert_eq!(c.name, REVIEWS);
    assert_eq!(c.kind, "EDS");
    assert!(c.hosts.is_empty());
    assert_eq!(v.eds_service.as_deref(), Some(REVIEWS));
    assert_eq!(v.secrets, vec!["default".to_owned(), "ROOTCA".to_owned()]);
    assert_eq!(v.upstream_protocol, UpstreamProtocol::Downstream);
    assert_eq!(c.lb_type, "LB_LEAST_REQUEST");
    assert_eq!(c.connect_timeout.map(|d| d.0.as_secs()), Some(10));
    assert_eq!(c.max_request_per_conn, 100);
    assert_eq!(
        serde_json::to_value(&c.circuit_breakers).expect("json"),
        json!([{"max_connections": 4294967295u32, "max_pending_requests": 4294967295u32,
                "max_requests": 4294967295u32, "max_retries": 4294967295u32}])
    );
    assert_eq!(
        serde_json::to_value(&c.outlier_detection).expect("json"),
        json!({"consecutive_5xx": 5, "interval": "10s", "base_ejection_time": "30s", "max_ejection_percent": 100})
    );
    let t = c.tls_context.as_ref().expect("TLS");
    assert!(t.status && !t.insecure_skip);
    assert_eq!(
        t.server_name,
        "outbound_.9080_._.reviews.default.svc.cluster.local"
    );
    assert_eq!(t.alpn, "h2");
    assert_eq!(
        t.sds_source,
        json!({"CertificateConfig": {"name": "default"}, "ValidationConfig": {"name": "ROOTCA"}})
    );
    assert_has(
        &out.warnings,
        "ALPN protocols [\"istio-peer-exchange\", \"istio\"] are not offered",
    );
    assert_has(&out.warnings, "also verified against the SNI name");
    assert_has(
        &out.warnings,
        "filters[0]: istio.metadata_exchange: skipped",
    );
    assert_has(&out.warnings, "circuit_breakers.thresholds[1]: ignored");
}

#[test]
fn istio_mutual_tls_verifies_the_spiffe_names_instead_of_the_sni() {
    // What Istio really sends for ISTIO_MUTUAL: the peer's SPIFFE identity, an
    // outbound_ SNI, the certificate and CA from SDS.
    let spiffe = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews";
    let sni = "outbound_.9080_._.reviews.default.svc.cluster.local";
    let mut c = eds_cluster(REVIEWS);
    let upstream = tls::UpstreamTlsContext {
        common_tls_context: Some(istio_common_tls(
            &["istio-peer-exchange", "istio", "h2"],
            vec![spiffe_san(spiffe)],
        )),
        sni: sni.into(),
        ..Default::default()
    };
    c.transport_socket = transport_socket(pack(&upstream));
    let out = cluster(&c).expect("converts");
    assert_eq!(out.value.secrets, vec!["default", "ROOTCA"]);
    let t = out.value.cluster.tls_context.as_ref().expect("TLS");
    assert!(t.status && !t.insecure_skip);
    assert_eq!(t.server_name, sni);
    assert_eq!(t.match_subject_alt_names, vec![spiffe]);
    assert!(
        !out.warnings.iter().any(|w| w.contains("SNI name")),
        "{:#?}",
        out.warnings
    );
    // Filled from SDS, it loads as MOSN JSON.
    let mut filled = out.value.cluster.clone();
    apply_secrets(&mut filled, &istio_secrets()).expect("applies");
    let t = filled.tls_context.as_ref().expect("TLS");
    assert_eq!((t.cert_chain.as_str(), t.ca_cert.as_str()), (CERT, CA));
    assert_eq!(t.match_subject_alt_names, vec![spiffe]);
    filled.kind = "SIMPLE".into();
    load(&assemble(vec![], vec![], vec![filled])).expect("loads");

    // Only exact names: the model compares SANs for equality.
    let mut prefixed = spiffe_san("spiffe://cluster.local/ns/default/");
    prefixed.matcher = Some(envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher {
        match_pattern: Some(
            envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern::Prefix(
                "spiffe://cluster.local/ns/default/".into(),
            ),
        ),
        ..Default::default()
    });
    let mut c = eds_cluster(REVIEWS);
    c.transport_socket = transport_socket(pack(&tls::UpstreamTlsContext {
        common_tls_context: Some(istio_common_tls(&["h2"], vec![prefixed])),
        sni: sni.into(),
        ..Default::default()
    }));
    let text = refusal(cluster(&c));
    assert!(
        text.contains("validation_context.match_typed_subject_alt_names[URI]: only exact subject alt name matches are supported"),
        "{text}"
    );

    // Its auto mTLS, per endpoint, is still refused.
    let mut c = eds_cluster(REVIEWS);
    c.transport_socket_matches
        .push(cl::cluster::TransportSocketMatch {
            name: "tlsMode-istio".into(),
            r#match: Some(struct_of(&[("tlsMode", "istio")])),
            transport_socket: c.transport_socket.clone(),
        });
    assert!(refusal(cluster(&c)).contains(
        "transport_socket_matches: choosing TLS per endpoint (Istio's auto mTLS) is not supported"
    ));
}

#[test]
fn upstream_tls_names_and_the_sni() {
    // A DNS name to match, no SNI: the name is the check, nothing becomes the SNI
    // (Envoy sends none; the model then sends the host's hostname, if any).
    let mut c = static_cluster(
        "ext",
        vec![lb_endpoint(
            "10.0.0.1",
            443,
            None,
            core::HealthStatus::Unknown,
        )],
    );
    let upstream = tls::UpstreamTlsContext {
        common_tls_context: Some(tls::CommonTlsContext {
            validation_context_type: Some(
                tls::common_tls_context::ValidationContextType::ValidationContext(
                    tls::CertificateValidationContext {
                        trusted_ca: Some(core::DataSource {
                            specifier: Some(core::data_source::Specifier::Filename(
                                "/etc/ssl/ca.pem".into(),
                            )),
                            ..Default::default()
                        }),
                        match_typed_subject_alt_names: vec![tls::SubjectAltNameMatcher {
                            san_type: tls::subject_alt_name_matcher::SanType::Dns as i32,
                            matcher: exact("api.example.com"),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    c.transport_socket = transport_socket(pack(&upstream));
    let out = cluster(&c).expect("converts");
    let t = out.value.cluster.tls_context.as_ref().expect("TLS");
    assert_eq!(
        (t.server_name.as_str(), t.ca_cert.as_str()),
        ("", "/etc/ssl/ca.pem")
    );
    assert_eq!(t.match_subject_alt_names, vec!["api.example.com"]);
    assert!(out.value.secrets.is_empty());
    // No validation context: Envoy verifies nothing, and neither does the model then.
    let mut c = static_cluster("ext", vec![]);
    c.transport_socket = transport_socket(pack(&tls::UpstreamTlsContext {
        sni: "api.example.com".into(),
        ..Default::default()
    }));
    let out = cluster(&c).expect("converts");
    assert!(out
        .value
        .cluster
        .tls_context
        .as_ref()
        .is_some_and(|t| t.insecure_skip));
    assert_has(&out.warnings, "the upstream's certificate is not verified");
}

#[test]
fn passthrough_and_blackhole() {
    let out = cluster(&passthrough()).expect("converts");
    let c = &out.value.cluster;
    assert_eq!(
        (c.kind.as_str(), c.lb_type.as_str()),
        ("ORIGINAL_DST", "LB_ORIGINAL_DST")
    );
    assert_eq!(out.value.eds_service, None);
    // ORIGINAL_DST with another policy: Envoy refuses it too.
    let mut bad = passthrough();
    bad.lb_policy = cl::cluster::LbPolicy::RoundRobin as i32;
    assert_eq!(
        refusal(cluster(&bad)),
        "cluster \"PassthroughCluster\": lb_policy: ROUND_ROBIN is not valid for an ORIGINAL_DST cluster (CLUSTER_PROVIDED)"
    );
    let out = cluster(&blackhole()).expect("converts");
    let c = &out.value.cluster;
    assert_eq!(
        (c.kind.as_str(), c.lb_type.as_str()),
        ("STATIC", "LB_WEIGHTED_ROUNDROBIN")
    );
    assert!(c.hosts.is_empty());
}

#[test]
fn dns_clusters() {
    let mut c = static_cluster("ext", vec![]);
    c.cluster_discovery_type = Some(cl::cluster::ClusterDiscoveryType::Type(
        cl::cluster::DiscoveryType::StrictDns as i32,
    ));
    c.dns_lookup_family = cl::cluster::DnsLookupFamily::V4Only as i32;
    #[allow(deprecated)]
    {
        c.dns_refresh_rate = secs(30);
    }
    if let Some(cla) = &mut c.load_assignment {
        cla.endpoints[0].lb_endpoints.push(lb_endpoint(
            "api.example.com",
            443,
            None,
            core::HealthStatus::Unknown,
        ));
    }
    c.lb_policy = cl::cluster::LbPolicy::Random as i32;
    let out = cluster(&c).expect("converts");
    let v = &out.value.cluster;
    assert_eq!(
        (v.kind.as_str(), v.lb_type.as_str()),
        ("STRICT_DNS", "LB_RANDOM")
    );
    assert_eq!(v.hosts[0].address, "api.example.com:443");
    assert_eq!(v.dns_lookup_family, "V4_ONLY");
    assert_eq!(v.dns_refresh_rate.map(|d| d.0.as_secs()), Some(30));
    assert_eq!(
        v.connect_timeout.map(|d| d.0.as_secs()),
        Some(5),
        "Envoy's default"
    );
    // LOGICAL_DNS runs as STRICT_DNS, with a warning.
    c.cluster_discovery_type = Some(cl::cluster::ClusterDiscoveryType::Type(
        cl::cluster::DiscoveryType::LogicalDns as i32,
    ));
    let out = cluster(&c).expect("converts");
    assert_eq!(out.value.cluster.kind, "STRICT_DNS");
    assert_has(
        &out.warnings,
        "cluster \"ext\": type: LOGICAL_DNS runs as STRICT_DNS",
    );
    // A host name in a static cluster is refused.
    c.cluster_discovery_type = None;
    assert!(refusal(cluster(&c)).contains("load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: not an IP address"));
}

#[test]
fn health_checks_subsets_and_hash_balancers() {
    let mut c = static_cluster(
        "svc",
        vec![ep::LbEndpoint {
            metadata: lb_metadata(&[("version", "v1")]),
            ..lb_endpoint("10.0.0.1", 8080, Some(3), core::HealthStatus::Healthy)
        }],
    );
    c.lb_policy = cl::cluster::LbPolicy::RingHash as i32;
    c.health_checks = vec![core::HealthCheck {
        timeout: secs(1),
        interval: secs(5),
        unhealthy_threshold: u32v(3),
        healthy_threshold: u32v(2),
        health_checker: Some(core::health_check::HealthChecker::HttpHealthCheck(
            core::health_check::HttpHealthCheck {
                path: "/healthz".into(),
                expected_statuses: vec![Int64Range {
                    start: 200,
                    end: 300,
                }],
                ..Default::default()
            },
        )),
        ..Default::default()
    }];
    c.lb_subset_config = Some(cl::cluster::LbSubsetConfig {
        fallback_policy: cl::cluster::lb_subset_config::LbSubsetFallbackPolicy::DefaultSubset
            as i32,
        default_subset: Some(struct_of(&[("version", "v1")])),
        subset_selectors: vec![cl::cluster::lb_subset_config::LbSubsetSelector {
            keys: vec!["version".into()],
            ..Default::default()
        }],
        ..Default::default()
    });
    let out = cluster(&c).expect("converts");
    let v = &out.value.cluster;
    assert_eq!(v.lb_type, "LB_RING_HASH");
    assert_eq!(
        serde_json::to_value(&v.health_check).expect("json"),
        json!({"protocol": "http", "timeout": "1s", "interval": "5s", "healthy_threshold": 2,
               "unhealthy_threshold": 3, "service_name": "svc",
               "check_config": {"path": "/healthz", "host": "svc",
                                "expected_statuses": [{"start": 200, "end": 300}]}})
    );
    assert_eq!(
        serde_json::to_value(&v.lb_subset_config).expect("json"),
        json!({"fall_back_policy": 2, "default_subset": {"version": "v1"}, "subset_selectors": [["version"]]})
    );
    assert_eq!(
        v.hosts[0].metadata,
        json!({"filter_metadata": {"mosn.lb": {"version": "v1"}}})
    );
    assert_eq!(v.hosts[0].weight, Some(3));
    // Two health checks: the model runs one.
    c.health_checks.push(c.health_checks[0].clone());
    assert!(refusal(cluster(&c))
        .ends_with("health_checks: more than one health check per cluster is not supported"));
}

#[test]
fn explicit_http2_and_refused_protocol_options() {
    let mut c = blackhole();
    let mut options = std::collections::HashMap::new();
    options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(),
        pack(&uh::HttpProtocolOptions {
            upstream_protocol_options: Some(uh::http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                uh::http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(
                        uh::http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                            core::Http2ProtocolOptions::default(),
                        ),
                    ),
                },
            )),
            ..Default::default()
        }),
    );
    c.typed_extension_protocol_options = options.clone();
    assert_eq!(
        cluster(&c).expect("converts").value.upstream_protocol,
        UpstreamProtocol::Http2
    );
    // The deprecated field says the same.
    let mut d = blackhole();
    #[allow(deprecated)]
    {
        d.http2_protocol_options = Some(core::Http2ProtocolOptions::default());
    }
    assert_eq!(
        cluster(&d).expect("converts").value.upstream_protocol,
        UpstreamProtocol::Http2
    );
    assert_eq!(
        cluster(&blackhole())
            .expect("converts")
            .value
            .upstream_protocol,
        UpstreamProtocol::Http1
    );
    // ALPN-chosen protocols are refused.
    if let Some(any) = options.values_mut().next() {
        *any = pack(&uh::HttpProtocolOptions {
            upstream_protocol_options: Some(
                uh::http_protocol_options::UpstreamProtocolOptions::AutoConfig(Default::default()),
            ),
            ..Default::default()
        });
    }
    c.typed_extension_protocol_options = options;
    assert!(refusal(cluster(&c))
        .contains("auto_config: choosing the upstream protocol by ALPN is not supported"));
}

#[test]
fn other_refusals_name_the_field() {
    let mut c = blackhole();
    c.cluster_discovery_type = Some(cl::cluster::ClusterDiscoveryType::ClusterType(
        cl::cluster::CustomClusterType {
            name: "envoy.clusters.aggregate".into(),
            ..Default::default()
        },
    ));
    assert_eq!(
        refusal(cluster(&c)),
        "cluster \"BlackHoleCluster\": cluster_type: custom cluster type \"envoy.clusters.aggregate\" is not supported"
    );
    let mut c = blackhole();
    c.per_connection_buffer_limit_bytes = u32v(32768);
    c.upstream_bind_config = Some(core::BindConfig::default());
    let out = cluster(&c).expect("harmless fields are warned");
    assert_has(&out.warnings, "per_connection_buffer_limit_bytes: ignored");
    assert_has(&out.warnings, "upstream_bind_config: ignored");
    // The model's own checks run on the result: a percentage over 100.
    let mut c = blackhole();
    c.outlier_detection = Some(cl::OutlierDetection {
        max_ejection_percent: u32v(150),
        ..Default::default()
    });
    let text = refusal(cluster(&c));
    assert!(
        text.contains("refused by mosn-rs's checks: outlier_detection.max_ejection_percent"),
        "{text}"
    );
}

#[test]
fn load_balancing_policy_takes_the_first_known() {
    use envoy_types::pb::envoy::config::core::v3::{RuntimeDouble, TypedExtensionConfig};
    use envoy_types::pb::envoy::extensions::load_balancing_policies::common::v3::SlowStartConfig;
    use envoy_types::pb::envoy::extensions::load_balancing_policies::least_request::v3::LeastRequest;
    use envoy_types::pb::envoy::r#type::v3::Percent;
    let policy = |any| cl::load_balancing_policy::Policy {
        typed_extension_config: Some(TypedExtensionConfig {
            name: "p".into(),
            typed_config: Some(any),
        }),
    };
    let mut c = blackhole();
    c.lb_policy = cl::cluster::LbPolicy::LoadBalancingPolicyConfig as i32;
    c.load_balancing_policy = Some(cl::LoadBalancingPolicy {
        policies: vec![
            policy(envoy_types::pb::google::protobuf::Any {
                type_url: "type.googleapis.com/envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin".into(),
                value: vec![],
            }),
            policy(pack(&LeastRequest {
                choice_count: u32v(3),
                active_request_bias: Some(RuntimeDouble {
                    default_value: 0.5,
                    ..Default::default()
                }),
                slow_start_config: Some(SlowStartConfig {
                    slow_start_window: secs(60),
                    min_weight_percent: Some(Percent { value: 20.0 }),
                    ..Default::default()
                }),
                ..Default::default()
            })),
        ],
    });
    let out = cluster(&c).expect("converts");
    let v = &out.value.cluster;
    assert_eq!(v.lb_type, "LB_LEAST_REQUEST");
    assert_eq!(
        serde_json::to_value(&v.lbconfig).expect("json"),
        json!({"choice_count": 3, "active_request_bias": 0.5})
    );
    assert_eq!(
        serde_json::to_value(&v.slow_start).expect("json"),
        json!({"mode": "duration", "slow_start_duration": "1m", "min_weight_percent": 0.2})
    );
    assert_has(&out.warnings, "client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin is not supported: the next policy is tried");
}
