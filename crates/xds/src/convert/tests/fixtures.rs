//! Envoy resources shaped as Istio's control plane sends them to a sidecar.

use super::{addr, boolv, lb_metadata, millis, pack, secs, typed_struct, u32v};
use envoy_types::pb::envoy::config::cluster::v3 as cl;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as ep;
use envoy_types::pb::envoy::config::listener::v3 as lis;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tp;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as uh;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::google::protobuf as pbuf;

pub(crate) const REVIEWS: &str = "outbound|9080||reviews.default.svc.cluster.local";
pub(crate) const RATINGS: &str = "outbound|9080||ratings.default.svc.cluster.local";
pub(crate) const INBOUND: &str = "inbound|9080||";

pub(crate) fn http_filter(name: &str, config: pbuf::Any) -> hcm::HttpFilter {
    hcm::HttpFilter {
        name: name.into(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

/// The HTTP filters of an Istio 1.2x sidecar.
pub(crate) fn istio_http_filters() -> Vec<hcm::HttpFilter> {
    vec![
        http_filter(
            "istio.metadata_exchange",
            typed_struct("type.googleapis.com/io.istio.http.peer_metadata.Config"),
        ),
        http_filter(
            "envoy.filters.http.grpc_stats",
            pbuf::Any {
                type_url:
                    "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig"
                        .into(),
                value: vec![],
            },
        ),
        http_filter("envoy.filters.http.fault", pack(&HttpFault::default())),
        http_filter("envoy.filters.http.cors", pack(&Cors::default())),
        http_filter(
            "istio.stats",
            typed_struct("type.googleapis.com/stats.PluginConfig"),
        ),
        http_filter("envoy.filters.http.router", pack(&Router::default())),
    ]
}

pub(crate) fn network_filter(name: &str, config: pbuf::Any) -> lis::Filter {
    lis::Filter {
        name: name.into(),
        config_type: Some(lis::filter::ConfigType::TypedConfig(config)),
    }
}

pub(crate) fn hcm_rds(route: &str) -> hcm::HttpConnectionManager {
    hcm::HttpConnectionManager {
        stat_prefix: format!("outbound_0.0.0.0_{route}"),
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
            hcm::Rds {
                route_config_name: route.into(),
                config_source: Some(core::ConfigSource::default()),
            },
        )),
        http_filters: istio_http_filters(),
        use_remote_address: boolv(false),
        upgrade_configs: vec![hcm::http_connection_manager::UpgradeConfig {
            upgrade_type: "websocket".into(),
            ..Default::default()
        }],
        stream_idle_timeout: secs(0),
        normalize_path: boolv(true),
        ..Default::default()
    }
}

pub(crate) fn tcp_proxy(stat: &str, cluster: &str) -> lis::Filter {
    network_filter(
        "envoy.filters.network.tcp_proxy",
        pack(&tp::TcpProxy {
            stat_prefix: stat.into(),
            cluster_specifier: Some(tp::tcp_proxy::ClusterSpecifier::Cluster(cluster.into())),
            ..Default::default()
        }),
    )
}

fn istio_tcp_stats() -> lis::Filter {
    network_filter(
        "istio.stats",
        typed_struct("type.googleapis.com/stats.PluginConfig"),
    )
}

/// 0.0.0.0:15001, capturing outbound traffic and handing it to the listener of its
/// original destination, with passthrough and blackhole chains.
pub(crate) fn virtual_outbound() -> lis::Listener {
    lis::Listener {
        name: "virtualOutbound".into(),
        address: addr("0.0.0.0", 15001),
        use_original_dst: boolv(true),
        traffic_direction: core::TrafficDirection::Outbound as i32,
        filter_chains: vec![
            lis::FilterChain {
                name: "virtualOutbound-blackhole".into(),
                filter_chain_match: Some(lis::FilterChainMatch {
                    destination_port: u32v(15001),
                    ..Default::default()
                }),
                filters: vec![
                    istio_tcp_stats(),
                    tcp_proxy("BlackHoleCluster", "BlackHoleCluster"),
                ],
                ..Default::default()
            },
            lis::FilterChain {
                name: "virtualOutbound-catchall-tcp".into(),
                filters: vec![
                    istio_tcp_stats(),
                    tcp_proxy("PassthroughCluster", "PassthroughCluster"),
                ],
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

/// 0.0.0.0:9080, opening no socket: HTTP to port 9080 with routes from RDS "9080".
pub(crate) fn outbound_http_9080() -> lis::Listener {
    lis::Listener {
        name: "0.0.0.0_9080".into(),
        address: addr("0.0.0.0", 9080),
        bind_to_port: boolv(false),
        traffic_direction: core::TrafficDirection::Outbound as i32,
        listener_filters: vec![lis::ListenerFilter {
            name: "envoy.filters.listener.tls_inspector".into(),
            config_type: Some(lis::listener_filter::ConfigType::TypedConfig(pack(
                &TlsInspector::default(),
            ))),
            ..Default::default()
        }],
        filter_chains: vec![lis::FilterChain {
            filters: vec![network_filter(
                "envoy.filters.network.http_connection_manager",
                pack(&hcm_rds("9080")),
            )],
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub(crate) fn sds(name: &str) -> tls::SdsSecretConfig {
    tls::SdsSecretConfig {
        name: name.into(),
        sds_config: Some(core::ConfigSource::default()),
    }
}

/// Istio's TLS parameters.
fn istio_tls_params() -> Option<tls::TlsParameters> {
    Some(tls::TlsParameters {
        tls_minimum_protocol_version: tls::tls_parameters::TlsProtocol::TlSv12 as i32,
        cipher_suites: vec![
            "ECDHE-ECDSA-AES256-GCM-SHA384".into(),
            "ECDHE-RSA-AES256-GCM-SHA384".into(),
            "ECDHE-ECDSA-AES128-GCM-SHA256".into(),
            "ECDHE-RSA-AES128-GCM-SHA256".into(),
            "AES256-GCM-SHA384".into(),
            "AES128-GCM-SHA256".into(),
        ],
        ..Default::default()
    })
}

/// Istio's common context: certificate "default" and CA "ROOTCA" from SDS.
pub(crate) fn istio_common_tls(
    alpn: &[&str],
    sans: Vec<tls::SubjectAltNameMatcher>,
) -> tls::CommonTlsContext {
    tls::CommonTlsContext {
        tls_params: istio_tls_params(),
        tls_certificate_sds_secret_configs: vec![sds("default")],
        alpn_protocols: alpn.iter().map(|s| (*s).to_owned()).collect(),
        validation_context_type: Some(
            tls::common_tls_context::ValidationContextType::CombinedValidationContext(
                tls::common_tls_context::CombinedCertificateValidationContext {
                    default_validation_context: Some(tls::CertificateValidationContext {
                        match_typed_subject_alt_names: sans,
                        ..Default::default()
                    }),
                    validation_context_sds_secret_config: Some(sds("ROOTCA")),
                    ..Default::default()
                },
            ),
        ),
        ..Default::default()
    }
}

pub(crate) fn transport_socket(config: pbuf::Any) -> Option<core::TransportSocket> {
    Some(core::TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(config)),
    })
}

/// 0.0.0.0:15006 without the original_dst filter (which the model cannot run
/// without a hand-off): mTLS from SDS on port 9080, plaintext TCP beside it.
pub(crate) fn inbound_tls() -> lis::Listener {
    let downstream = tls::DownstreamTlsContext {
        common_tls_context: Some(istio_common_tls(&["h2", "http/1.1"], vec![])),
        require_client_certificate: boolv(true),
        ..Default::default()
    };
    let inline_routes = envoy_types::pb::envoy::config::route::v3::RouteConfiguration {
        name: INBOUND.into(),
        virtual_hosts: vec![envoy_types::pb::envoy::config::route::v3::VirtualHost {
            name: "inbound|http|9080".into(),
            domains: vec!["*".into()],
            routes: vec![super::routes::route_to_cluster("/", INBOUND)],
            ..Default::default()
        }],
        validate_clusters: boolv(false),
        ..Default::default()
    };
    let inbound_hcm = hcm::HttpConnectionManager {
        stat_prefix: "inbound_0.0.0.0_9080".into(),
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(
            inline_routes,
        )),
        http_filters: istio_http_filters(),
        forward_client_cert_details:
            hcm::http_connection_manager::ForwardClientCertDetails::AppendForward as i32,
        set_current_client_cert_details: Some(
            hcm::http_connection_manager::SetCurrentClientCertDetails {
                subject: boolv(true),
                dns: true,
                uri: true,
                ..Default::default()
            },
        ),
        use_remote_address: boolv(false),
        ..Default::default()
    };
    lis::Listener {
        name: "virtualInbound".into(),
        address: addr("0.0.0.0", 15006),
        traffic_direction: core::TrafficDirection::Inbound as i32,
        listener_filters: vec![lis::ListenerFilter {
            name: "envoy.filters.listener.tls_inspector".into(),
            config_type: Some(lis::listener_filter::ConfigType::TypedConfig(pack(&TlsInspector::default()))),
            ..Default::default()
        }],
        filter_chains: vec![
            lis::FilterChain {
                name: "0.0.0.0_9080_mtls".into(),
                filter_chain_match: Some(lis::FilterChainMatch {
                    destination_port: u32v(9080),
                    transport_protocol: "tls".into(),
                    application_protocols: vec!["istio-peer-exchange".into(), "istio".into(), "istio-http/1.1".into()],
                    ..Default::default()
                }),
                transport_socket: transport_socket(pack(&downstream)),
                transport_socket_connect_timeout: millis(5000),
                filters: vec![
                    network_filter(
                        "istio.metadata_exchange",
                        typed_struct("type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange"),
                    ),
                    network_filter("envoy.filters.network.http_connection_manager", pack(&inbound_hcm)),
                ],
                ..Default::default()
            },
            lis::FilterChain {
                name: "0.0.0.0_9080_plaintext".into(),
                filter_chain_match: Some(lis::FilterChainMatch {
                    destination_port: u32v(9080),
                    transport_protocol: "raw_buffer".into(),
                    ..Default::default()
                }),
                filters: vec![istio_tcp_stats(), tcp_proxy(INBOUND, INBOUND)],
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

/// An Istio outbound EDS cluster with a TLS transport socket (no SAN check: see the
/// cluster tests for the one Istio really sends).
pub(crate) fn eds_cluster(name: &str) -> cl::Cluster {
    let upstream = tls::UpstreamTlsContext {
        common_tls_context: Some(istio_common_tls(
            &["istio-peer-exchange", "istio", "h2"],
            vec![],
        )),
        sni: format!(
            "outbound_.9080_._.{}",
            name.rsplit('|').next().unwrap_or_default()
        ),
        ..Default::default()
    };
    let mut options = std::collections::HashMap::new();
    options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(),
        pack(&uh::HttpProtocolOptions {
            common_http_protocol_options: Some(core::HttpProtocolOptions {
                idle_timeout: secs(3600),
                max_requests_per_connection: u32v(100),
                ..Default::default()
            }),
            upstream_protocol_options: Some(
                uh::http_protocol_options::UpstreamProtocolOptions::UseDownstreamProtocolConfig(
                    uh::http_protocol_options::UseDownstreamHttpConfig {
                        http_protocol_options: Some(core::Http1ProtocolOptions::default()),
                        http2_protocol_options: Some(core::Http2ProtocolOptions::default()),
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }),
    );
    cl::Cluster {
        name: name.into(),
        cluster_discovery_type: Some(cl::cluster::ClusterDiscoveryType::Type(
            cl::cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cl::cluster::EdsClusterConfig {
            eds_config: Some(core::ConfigSource::default()),
            service_name: name.into(),
        }),
        connect_timeout: secs(10),
        lb_policy: cl::cluster::LbPolicy::LeastRequest as i32,
        circuit_breakers: Some(cl::CircuitBreakers {
            thresholds: vec![
                cl::circuit_breakers::Thresholds {
                    max_connections: u32v(4_294_967_295),
                    max_pending_requests: u32v(4_294_967_295),
                    max_requests: u32v(4_294_967_295),
                    max_retries: u32v(4_294_967_295),
                    track_remaining: true,
                    ..Default::default()
                },
                cl::circuit_breakers::Thresholds {
                    priority: core::RoutingPriority::High as i32,
                    max_connections: u32v(1024),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        outlier_detection: Some(cl::OutlierDetection {
            consecutive_5xx: u32v(5),
            interval: secs(10),
            base_ejection_time: secs(30),
            max_ejection_percent: u32v(100),
            ..Default::default()
        }),
        common_lb_config: Some(cl::cluster::CommonLbConfig::default()),
        metadata: lb_metadata(&[]),
        filters: vec![cl::Filter {
            name: "istio.metadata_exchange".into(),
            typed_config: Some(typed_struct(
                "type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange",
            )),
            ..Default::default()
        }],
        transport_socket: transport_socket(pack(&upstream)),
        typed_extension_protocol_options: options,
        ..Default::default()
    }
}

/// Istio's PassthroughCluster.
pub(crate) fn passthrough() -> cl::Cluster {
    cl::Cluster {
        name: "PassthroughCluster".into(),
        cluster_discovery_type: Some(cl::cluster::ClusterDiscoveryType::Type(
            cl::cluster::DiscoveryType::OriginalDst as i32,
        )),
        connect_timeout: secs(10),
        lb_policy: cl::cluster::LbPolicy::ClusterProvided as i32,
        ..Default::default()
    }
}

/// Istio's BlackHoleCluster: static, no endpoint.
pub(crate) fn blackhole() -> cl::Cluster {
    cl::Cluster {
        name: "BlackHoleCluster".into(),
        connect_timeout: secs(10),
        ..Default::default()
    }
}

/// One endpoint.
pub(crate) fn lb_endpoint(
    ip: &str,
    port: u32,
    weight: Option<u32>,
    health: core::HealthStatus,
) -> ep::LbEndpoint {
    ep::LbEndpoint {
        host_identifier: Some(ep::lb_endpoint::HostIdentifier::Endpoint(ep::Endpoint {
            address: addr(ip, port),
            ..Default::default()
        })),
        health_status: health as i32,
        load_balancing_weight: weight.and_then(u32v),
        ..Default::default()
    }
}

/// A static cluster of `endpoints`.
pub(crate) fn static_cluster(name: &str, endpoints: Vec<ep::LbEndpoint>) -> cl::Cluster {
    cl::Cluster {
        name: name.into(),
        cluster_discovery_type: Some(cl::cluster::ClusterDiscoveryType::Type(
            cl::cluster::DiscoveryType::Static as i32,
        )),
        load_assignment: Some(ep::ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![ep::LocalityLbEndpoints {
                lb_endpoints: endpoints,
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn exact(s: &str) -> Option<matcher::StringMatcher> {
    Some(matcher::StringMatcher {
        match_pattern: Some(matcher::string_matcher::MatchPattern::Exact(s.into())),
        ..Default::default()
    })
}

/// A SPIFFE identity as Istio checks it.
pub(crate) fn spiffe_san(id: &str) -> tls::SubjectAltNameMatcher {
    tls::SubjectAltNameMatcher {
        san_type: tls::subject_alt_name_matcher::SanType::Uri as i32,
        matcher: exact(id),
        ..Default::default()
    }
}
