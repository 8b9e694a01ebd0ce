use super::fixtures::*;
use super::*;
use crate::convert::listener;
use envoy_types::pb::envoy::config::listener::v3 as lis;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault};
use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::listener::proxy_protocol::v3::ProxyProtocol;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use serde_json::json;

#[test]
fn istio_virtual_outbound_captures_and_passes_through() {
    let out = listener(&virtual_outbound()).expect("converts");
    let l = &out.value.listener;
    assert_eq!(l.address, "0.0.0.0:15001");
    assert!(l.bind_port);
    assert_eq!(l.use_original_dst, json!("redirect"));
    assert_eq!(l.filter_chains.len(), 2);
    let blackhole = &l.filter_chains[0];
    assert_eq!(
        blackhole
            .filter_chain_match
            .as_ref()
            .and_then(|m| m.destination_port),
        Some(15001)
    );
    assert_eq!(blackhole.filters.len(), 1, "istio.stats is skipped");
    assert_eq!(blackhole.filters[0].kind, "tcp_proxy");
    assert_eq!(
        blackhole.filters[0].config,
        json!({"stat_prefix": "BlackHoleCluster", "cluster": "BlackHoleCluster", "idle_timeout": "1h"})
    );
    assert!(l.filter_chains[1].filter_chain_match.is_none());
    assert!(out.value.rds.is_empty() && out.value.secrets.is_empty());
    // One warning per skipped filter, naming the chain and the filter.
    assert_has(
        &out.warnings,
        "listener \"virtualOutbound\": filter_chains[0].filters[0]: istio.stats: skipped",
    );
    assert_has(
        &out.warnings,
        "filter_chains[1].filters[0]: istio.stats: skipped",
    );
}

#[test]
fn istio_port_listener_speaks_http_with_routes_from_rds() {
    let out = listener(&outbound_http_9080()).expect("converts");
    let l = &out.value.listener;
    assert_eq!(l.address, "0.0.0.0:9080");
    assert!(!l.bind_port, "bind_to_port false: handed connections only");
    assert!(
        l.listener_filters.is_empty(),
        "tls_inspector needs no model filter"
    );
    assert_eq!(out.value.rds, vec!["9080".to_owned()]);
    assert!(out.value.inline_routes.is_empty());
    let proxy = &l.filter_chains[0].filters[0];
    assert_eq!(proxy.kind, "proxy");
    assert_eq!(
        proxy.config,
        json!({
            "downstream_protocol": "Auto",
            "router_config_name": "9080",
            "http1": {"add_x_forwarded_for": false},
            "forward_client_cert_details": "SANITIZE",
        })
    );
    // Envoy's default idle timeout of HTTP connections.
    assert_eq!(l.connection_idle_timeout.map(|d| d.0.as_secs()), Some(3600));
    for skipped in [
        "istio.metadata_exchange: skipped",
        "envoy.filters.http.grpc_stats: skipped",
        "envoy.filters.http.fault: skipped",
        "envoy.filters.http.cors: skipped",
        "istio.stats: skipped",
    ] {
        assert_has(&out.warnings, skipped);
    }
    assert_has(&out.warnings, "normalize_path: ignored");
    assert_has(&out.warnings, "bind_port: is false");
}

#[test]
fn inbound_mtls_from_sds_waits_for_its_secrets() {
    let out = listener(&inbound_tls()).expect("converts");
    let v = &out.value;
    assert_eq!(v.secrets, vec!["default".to_owned(), "ROOTCA".to_owned()]);
    let tls_chain = &v.listener.filter_chains[0];
    let m = tls_chain.filter_chain_match.as_ref().expect("criteria");
    assert_eq!(m.destination_port, Some(9080));
    assert_eq!(m.transport_protocol, "tls");
    assert_eq!(
        m.application_protocols,
        vec!["istio-peer-exchange", "istio", "istio-http/1.1"]
    );
    let t = tls_chain.tls_context.as_ref().expect("TLS");
    assert!(t.status && t.verify_client && t.require_client_cert);
    assert!(t.cert_chain.is_empty() && t.ca_cert.is_empty(), "from SDS");
    assert_eq!(
        t.sds_source,
        json!({"CertificateConfig": {"name": "default"}, "ValidationConfig": {"name": "ROOTCA"}})
    );
    assert_eq!(t.alpn, "h2,http/1.1");
    assert_eq!(t.min_version, "tlsv1_2");
    assert_eq!(
        t.cipher_suites,
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-GCM-SHA256"
    );
    assert_eq!(t.handshake_timeout.map(|d| d.0.as_secs()), Some(5));
    // The inline route configuration is named after its chain.
    assert_eq!(v.inline_routes.len(), 1);
    assert_eq!(
        v.inline_routes[0].router_config_name,
        "virtualInbound/filter_chains[0]"
    );
    let proxy = &tls_chain.filters[0];
    assert_eq!(
        proxy.config["router_config_name"],
        json!("virtualInbound/filter_chains[0]")
    );
    assert_eq!(
        proxy.config["forward_client_cert_details"],
        json!("APPEND_FORWARD")
    );
    assert_eq!(
        proxy.config["set_current_client_cert_details"],
        json!({"subject": true, "uri": true, "dns": true})
    );
    let plain = &v.listener.filter_chains[1];
    assert!(plain.tls_context.is_none());
    assert_eq!(plain.filters[0].config["cluster"], json!(INBOUND));
}

#[test]
fn istio_virtual_inbound_original_dst_restores_the_destination_only() {
    let mut l = inbound_tls();
    l.listener_filters.insert(
        0,
        lis::ListenerFilter {
            name: "envoy.filters.listener.original_dst".into(),
            config_type: Some(lis::listener_filter::ConfigType::TypedConfig(pack(
                &OriginalDst {},
            ))),
            ..Default::default()
        },
    );
    // Without use_original_dst (Istio's inbound listener): the destination is only
    // restored, for this listener's chains (matched by destination port).
    let out = listener(&l).expect("converts");
    assert_eq!(out.value.listener.use_original_dst, serde_json::Value::Null);
    assert_eq!(
        out.value.listener.listener_filters[0].config,
        json!({"type": "redirect", "hand_off": false})
    );
    // With the hand-off, the filter keeps its place in the model's list.
    l.use_original_dst = boolv(true);
    l.transparent = boolv(true);
    let out = listener(&l).expect("converts");
    assert_eq!(out.value.listener.use_original_dst, json!("tproxy"));
    assert_eq!(out.value.listener.listener_filters[0].kind, "original_dst");
    assert_eq!(
        out.value.listener.listener_filters[0].config,
        json!({"type": "tproxy"})
    );
}

#[test]
fn proxy_protocol_listener_filter() {
    let mut l = virtual_outbound();
    l.use_original_dst = None;
    l.listener_filters = vec![lis::ListenerFilter {
        name: "envoy.filters.listener.proxy_protocol".into(),
        config_type: Some(lis::listener_filter::ConfigType::TypedConfig(pack(
            &ProxyProtocol {
                allow_requests_without_proxy_protocol: true,
                ..Default::default()
            },
        ))),
        ..Default::default()
    }];
    let out = listener(&l).expect("converts");
    let f = &out.value.listener.listener_filters[0];
    assert_eq!(f.kind, "proxy_protocol");
    assert_eq!(
        f.config,
        json!({"allow_requests_without_proxy_protocol": true})
    );
    assert!(out.value.listener.use_original_dst.is_null());
}

#[test]
fn http_detection_on_plaintext_chains_is_kept() {
    // Istio's protocol sniffing: HTTP by http_inspector, else TCP.
    let mut l = outbound_http_9080();
    l.listener_filters.push(lis::ListenerFilter {
        name: "envoy.filters.listener.http_inspector".into(),
        config_type: Some(lis::listener_filter::ConfigType::TypedConfig(pack(
            &HttpInspector {},
        ))),
        ..Default::default()
    });
    l.filter_chains[0].filter_chain_match = Some(lis::FilterChainMatch {
        transport_protocol: "raw_buffer".into(),
        application_protocols: vec!["http/1.1".into(), "h2c".into()],
        ..Default::default()
    });
    // mosn-rs sniffs plaintext connections for chains that name these protocols.
    let out = listener(&l).expect("converts");
    let m = out.value.listener.filter_chains[0]
        .filter_chain_match
        .clone()
        .expect("a match");
    assert_eq!(m.application_protocols, ["http/1.1", "h2c"]);
}

#[test]
fn destination_prefix_ranges_are_kept() {
    let mut l = virtual_outbound();
    l.filter_chains[0].filter_chain_match = Some(lis::FilterChainMatch {
        prefix_ranges: vec![envoy_types::pb::envoy::config::core::v3::CidrRange {
            address_prefix: "10.96.0.10".into(),
            prefix_len: u32v(32),
        }],
        ..Default::default()
    });
    let out = listener(&l).expect("converts");
    let m = out.value.listener.filter_chains[0]
        .filter_chain_match
        .clone()
        .expect("a match");
    assert_eq!(
        m.prefix_ranges,
        [mosn_config::tls::CidrRange {
            address_prefix: "10.96.0.10".into(),
            prefix_len: 32
        }]
    );
    // A prefix length beyond the address's is the model's error.
    l.filter_chains[0].filter_chain_match = Some(lis::FilterChainMatch {
        prefix_ranges: vec![envoy_types::pb::envoy::config::core::v3::CidrRange {
            address_prefix: "10.96.0.10".into(),
            prefix_len: u32v(33),
        }],
        ..Default::default()
    });
    assert!(listener(&l).is_err());
}

fn with_http_filters(filters: Vec<hcm::HttpFilter>) -> lis::Listener {
    let mut h = hcm_rds("9080");
    h.http_filters = filters;
    let mut l = outbound_http_9080();
    l.filter_chains[0].filters = vec![network_filter(
        "envoy.filters.network.http_connection_manager",
        pack(&h),
    )];
    l
}

#[test]
fn http_filters_mosn_rs_does_not_run() {
    let router = istio_http_filters().pop().expect("router");
    // A filter that enforces something is refused, by its type.
    let rbac = http_filter(
        "envoy.filters.http.rbac",
        envoy_types::pb::google::protobuf::Any {
            type_url: "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC".into(),
            value: vec![],
        },
    );
    let text = refusal(listener(&with_http_filters(vec![
        rbac.clone(),
        router.clone(),
    ])));
    assert!(
        text.ends_with("filter_chains[0].filters[0].typed_config.http_filters[0]: HTTP filter \"envoy.filters.http.rbac\" (envoy.extensions.filters.http.rbac.v3.RBAC) is not supported"),
        "{text}"
    );
    // The same, optional: skipped.
    let mut optional = rbac;
    optional.is_optional = true;
    let out = listener(&with_http_filters(vec![optional, router.clone()])).expect("converts");
    assert_has(&out.warnings, "envoy.filters.http.rbac: skipped (optional");
    // A fault filter that injects faults is refused.
    let fault = http_filter(
        "envoy.filters.http.fault",
        pack(&HttpFault {
            abort: Some(FaultAbort::default()),
            ..Default::default()
        }),
    );
    let text = refusal(listener(&with_http_filters(vec![fault, router])));
    assert!(
        text.contains("http_filters[0]: fault injection is not supported"),
        "{text}"
    );
    // No router: Envoy refuses it too.
    let text = refusal(listener(&with_http_filters(vec![])));
    assert!(
        text.contains("the router filter (envoy.filters.http.router) is required"),
        "{text}"
    );
}

#[test]
fn unknown_network_filters_are_refused() {
    let mut l = virtual_outbound();
    l.filter_chains[1].filters.insert(
        0,
        network_filter(
            "envoy.filters.network.rbac",
            envoy_types::pb::google::protobuf::Any {
                type_url: "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
                    .into(),
                value: vec![],
            },
        ),
    );
    let text = refusal(listener(&l));
    assert!(
        text.contains("filter_chains[1].filters[0]: network filter \"envoy.filters.network.rbac\""),
        "{text}"
    );
}

#[test]
fn codec_and_options_of_the_http_connection_manager() {
    use envoy_types::pb::envoy::config::core::v3 as core;
    let mut h = hcm_rds("9080");
    h.codec_type = hcm::http_connection_manager::CodecType::Http2 as i32;
    h.use_remote_address = boolv(true);
    h.max_request_headers_kb = u32v(96);
    h.common_http_protocol_options = Some(core::HttpProtocolOptions {
        idle_timeout: secs(300),
        max_headers_count: u32v(200),
        ..Default::default()
    });
    h.http2_protocol_options = Some(core::Http2ProtocolOptions {
        max_concurrent_streams: u32v(1000),
        initial_stream_window_size: u32v(1 << 20),
        allow_connect: true,
        ..Default::default()
    });
    let mut l = outbound_http_9080();
    l.filter_chains[0].filters = vec![network_filter("hcm", pack(&h))];
    let out = listener(&l).expect("converts");
    let c = &out.value.listener.filter_chains[0].filters[0].config;
    assert_eq!(c["downstream_protocol"], json!("Http2"));
    assert_eq!(
        c["http1"],
        json!({"add_x_forwarded_for": true, "max_header_bytes": 98304, "max_headers": 200})
    );
    assert_eq!(
        c["http2"],
        json!({"max_header_list_size": 98304, "max_headers": 200, "max_concurrent_streams": 1000,
               "initial_stream_window_size": 1048576, "allow_connect": true})
    );
    assert_eq!(
        out.value
            .listener
            .connection_idle_timeout
            .map(|d| d.0.as_secs()),
        Some(300)
    );
    // HTTP/3 is refused.
    h.codec_type = hcm::http_connection_manager::CodecType::Http3 as i32;
    l.filter_chains[0].filters = vec![network_filter("hcm", pack(&h))];
    assert!(refusal(listener(&l)).contains("codec_type: HTTP/3 is not supported"));
}

#[test]
fn bad_typed_configs_name_their_place() {
    let mut l = outbound_http_9080();
    l.filter_chains[0].filters[0] = network_filter(
        "envoy.filters.network.http_connection_manager",
        envoy_types::pb::google::protobuf::Any {
            type_url: "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager".into(),
            value: vec![0xff, 0xff, 0xff],
        },
    );
    let text = refusal(listener(&l));
    assert!(
        text.starts_with("listener \"0.0.0.0_9080\": filter_chains[0].filters[0].typed_config: cannot decode type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"),
        "{text}"
    );
    // The model's own checks run too: two chains with the same criteria.
    let mut l = virtual_outbound();
    l.filter_chains[0].filter_chain_match = None;
    let text = refusal(listener(&l));
    assert!(
        text.contains(
            "refused by mosn-rs's checks: filter_chains[1].filter_chain_match: the same criteria"
        ),
        "{text}"
    );
}

#[test]
fn default_chain_inline_certificates_and_tcp_options() {
    use envoy_types::pb::envoy::config::core::v3 as core;
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tp;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
    let pem = |s: &str| {
        Some(core::DataSource {
            specifier: Some(core::data_source::Specifier::InlineString(format!(
                "-----BEGIN {s}-----\nMII\n-----END {s}-----\n"
            ))),
            ..Default::default()
        })
    };
    let downstream = tls::DownstreamTlsContext {
        common_tls_context: Some(tls::CommonTlsContext {
            tls_certificates: vec![tls::TlsCertificate {
                certificate_chain: pem("CERTIFICATE"),
                private_key: pem("PRIVATE KEY"),
                ..Default::default()
            }],
            tls_params: Some(tls::TlsParameters {
                ecdh_curves: vec!["X25519".into(), "P-256".into(), "P-521".into()],
                cipher_suites: vec![
                    "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]".into(),
                ],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let weighted = tp::TcpProxy {
        stat_prefix: "w".into(),
        cluster_specifier: Some(tp::tcp_proxy::ClusterSpecifier::WeightedClusters(
            tp::tcp_proxy::WeightedCluster {
                clusters: vec![tp::tcp_proxy::weighted_cluster::ClusterWeight {
                    name: "one".into(),
                    weight: 1,
                    ..Default::default()
                }],
            },
        )),
        idle_timeout: secs(0),
        ..Default::default()
    };
    let l = lis::Listener {
        name: "edge".into(),
        address: addr("::", 8443),
        filter_chains: vec![lis::FilterChain {
            filter_chain_match: Some(lis::FilterChainMatch {
                server_names: vec!["*.example.com".into()],
                ..Default::default()
            }),
            transport_socket: transport_socket(pack(&downstream)),
            filters: vec![tcp_proxy("tls", "backend")],
            ..Default::default()
        }],
        default_filter_chain: Some(lis::FilterChain {
            filters: vec![network_filter("tcp", pack(&weighted))],
            ..Default::default()
        }),
        ..Default::default()
    };
    let out = listener(&l).expect("converts");
    let v = &out.value.listener;
    assert_eq!(v.address, "[::]:8443");
    let t = v.filter_chains[0].tls_context.as_ref().expect("TLS");
    assert!(t.cert_chain.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(!t.verify_client);
    assert_eq!(t.ecdh_curves, "x25519,p256");
    assert_eq!(
        t.cipher_suites,
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-WITH-CHACHA20-POLY1305"
    );
    assert_has(
        &out.warnings,
        "ecdh_curves: curves [\"P-521\"] are not offered",
    );
    assert!(out.value.secrets.is_empty());
    assert_eq!(v.filter_chains.len(), 2);
    assert!(v.filter_chains[1].filter_chain_match.is_none());
    assert_eq!(
        v.filter_chains[1].filters[0].config,
        json!({"stat_prefix": "w", "cluster": "one"})
    );
    assert_has(
        &out.warnings,
        "default_filter_chain: kept as a chain without criteria",
    );
}

#[test]
fn an_idle_timeout_of_zero_means_none() {
    use envoy_types::pb::envoy::config::core::v3 as core;
    let mut h = hcm_rds("9080");
    h.common_http_protocol_options = Some(core::HttpProtocolOptions {
        idle_timeout: secs(0),
        ..Default::default()
    });
    let mut l = outbound_http_9080();
    l.filter_chains[0].filters = vec![network_filter("hcm", pack(&h))];
    let out = listener(&l).expect("converts");
    assert_eq!(
        out.value
            .listener
            .connection_idle_timeout
            .map(|d| d.0.as_secs()),
        Some(365 * 24 * 3600)
    );
    assert_has(&out.warnings, "0 (no idle timeout) has no counterpart");
}
