//! The converted pieces of an Istio-like sidecar, assembled into one MOSN config and
//! loaded as a JSON config file would be: the converter's output passes the same
//! checks a hand-written config must.

use super::fixtures::*;
use super::secrets::istio_secrets;
use super::*;
use crate::convert::{apply_secrets, cluster, listener, load_assignment, route_configuration};
use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3 as ep;

struct Sidecar {
    listeners: Vec<ListenerConfig>,
    routers: Vec<RouterConfiguration>,
    clusters: Vec<ClusterConfig>,
}

fn sidecar(with_secrets: bool) -> Sidecar {
    let secrets = istio_secrets();
    let mut listeners = Vec::new();
    let mut routers = Vec::new();
    for l in [virtual_outbound(), outbound_http_9080(), inbound_tls()] {
        let mut out = listener(&l).expect("converts").value;
        if with_secrets {
            apply_secrets(&mut out.listener, &secrets).expect("secrets");
        }
        routers.extend(out.inline_routes);
        listeners.push(out.listener);
    }
    routers.push(
        route_configuration(&super::routes::all_kinds())
            .expect("converts")
            .value,
    );
    let mut clusters = Vec::new();
    for c in [
        eds_cluster(REVIEWS),
        eds_cluster(RATINGS),
        passthrough(),
        blackhole(),
    ] {
        let mut out = cluster(&c).expect("converts").value;
        if let Some(service) = &out.eds_service {
            let cla = ep::ClusterLoadAssignment {
                cluster_name: service.clone(),
                endpoints: vec![ep::LocalityLbEndpoints {
                    lb_endpoints: vec![
                        ep::LbEndpoint {
                            metadata: lb_metadata(&[("version", "v1")]),
                            ..lb_endpoint("10.1.0.1", 9080, Some(1), HealthStatus::Healthy)
                        },
                        lb_endpoint("10.1.0.2", 9080, Some(1), HealthStatus::Healthy),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            };
            out.cluster.hosts = load_assignment(&cla).expect("converts").value;
        }
        if with_secrets {
            apply_secrets(&mut out.cluster, &secrets).expect("secrets");
        }
        clusters.push(out.cluster);
    }
    clusters.push(
        cluster(&static_cluster(
            INBOUND,
            vec![lb_endpoint("127.0.0.1", 9080, None, HealthStatus::Unknown)],
        ))
        .expect("converts")
        .value
        .cluster,
    );
    Sidecar {
        listeners,
        routers,
        clusters,
    }
}

#[test]
fn an_istio_like_sidecar_loads_as_mosn_json() {
    let s = sidecar(true);
    let config = assemble(s.listeners, s.routers, s.clusters);
    let warnings = load(&config).unwrap_or_else(|errors| panic!("refused: {errors:#?}"));
    // Only the expected warnings: listeners that open no socket.
    for w in &warnings {
        assert!(
            w.contains("bind_port") || w.contains("opens no socket"),
            "unexpected warning {w}"
        );
    }
    // The router crate builds every table the proxy would.
    mosn_router::RouterSet::build(&config.servers[0].routers).expect("route tables build");
}

#[test]
fn a_sidecar_whose_secrets_have_not_arrived_does_not_load() {
    let s = sidecar(false);
    let errors =
        load(&assemble(s.listeners, s.routers, s.clusters)).expect_err("SDS references remain");
    assert!(
        errors.iter().any(|e| e.contains("tls_context.sds_source")),
        "{errors:#?}"
    );
}
