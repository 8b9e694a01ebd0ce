use super::fixtures::*;
use super::*;
use crate::convert::load_assignment;
use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3 as ep;
use serde_json::json;

fn locality(priority: u32, endpoints: Vec<ep::LbEndpoint>) -> ep::LocalityLbEndpoints {
    ep::LocalityLbEndpoints {
        priority,
        lb_endpoints: endpoints,
        ..Default::default()
    }
}

#[test]
fn weights_health_priorities_and_metadata() {
    let cla = ep::ClusterLoadAssignment {
        cluster_name: REVIEWS.into(),
        endpoints: vec![
            locality(
                0,
                vec![
                    ep::LbEndpoint {
                        metadata: lb_metadata(&[("version", "v1")]),
                        ..lb_endpoint("10.1.0.1", 9080, Some(2), HealthStatus::Healthy)
                    },
                    lb_endpoint("10.1.0.2", 9080, None, HealthStatus::Unknown),
                    lb_endpoint("10.1.0.3", 9080, Some(5), HealthStatus::Unhealthy),
                    lb_endpoint("10.1.0.4", 9080, None, HealthStatus::Draining),
                    lb_endpoint("10.1.0.5", 9080, None, HealthStatus::Degraded),
                ],
            ),
            locality(
                1,
                vec![lb_endpoint("10.2.0.1", 9080, None, HealthStatus::Healthy)],
            ),
        ],
        ..Default::default()
    };
    let out = load_assignment(&cla).expect("converts");
    let hosts: Vec<(&str, Option<u32>)> = out
        .value
        .iter()
        .map(|h| (h.address.as_str(), h.weight))
        .collect();
    assert_eq!(
        hosts,
        vec![
            ("10.1.0.1:9080", Some(2)),
            ("10.1.0.2:9080", Some(1)),
            ("10.1.0.5:9080", Some(1))
        ],
        "unhealthy and draining hosts left out, priority 1 dropped"
    );
    assert_eq!(
        out.value[0].metadata,
        json!({"filter_metadata": {"mosn.lb": {"version": "v1"}}})
    );
    assert!(out.value[1].metadata.is_null());
    assert_has(&out.warnings, "1 DEGRADED host(s) are used as healthy");
    assert_has(
        &out.warnings,
        "priority 0 is used, [\"priority 1 (1 host(s))\"] dropped",
    );

    // Priority 0 without a usable host: priority 1 takes the traffic.
    let cla = ep::ClusterLoadAssignment {
        cluster_name: REVIEWS.into(),
        endpoints: vec![
            locality(
                0,
                vec![lb_endpoint("10.1.0.3", 9080, None, HealthStatus::Unhealthy)],
            ),
            locality(
                1,
                vec![lb_endpoint("10.2.0.1", 9080, None, HealthStatus::Healthy)],
            ),
        ],
        ..Default::default()
    };
    let out = load_assignment(&cla).expect("converts");
    assert_eq!(out.value.len(), 1);
    assert_eq!(out.value[0].address, "10.2.0.1:9080");
}

#[test]
fn large_weights_are_scaled_in_proportion() {
    let cla = ep::ClusterLoadAssignment {
        cluster_name: "c".into(),
        endpoints: vec![locality(
            0,
            vec![
                lb_endpoint("10.0.0.1", 80, Some(1000), HealthStatus::Healthy),
                lb_endpoint("10.0.0.2", 80, Some(250), HealthStatus::Healthy),
                lb_endpoint("10.0.0.3", 80, Some(1), HealthStatus::Healthy),
            ],
        )],
        ..Default::default()
    };
    let out = load_assignment(&cla).expect("converts");
    let weights: Vec<Option<u32>> = out.value.iter().map(|h| h.weight).collect();
    assert_eq!(weights, vec![Some(128), Some(32), Some(1)]);
    assert_has(&out.warnings, "weights up to 1000 are scaled");
}

#[test]
fn unsupported_assignments_are_refused() {
    let cla = ep::ClusterLoadAssignment {
        cluster_name: "c".into(),
        endpoints: vec![locality(
            0,
            vec![ep::LbEndpoint {
                host_identifier: Some(ep::lb_endpoint::HostIdentifier::EndpointName("e1".into())),
                ..Default::default()
            }],
        )],
        ..Default::default()
    };
    assert_eq!(
        refusal(load_assignment(&cla)),
        "cluster load assignment \"c\": endpoints[0].lb_endpoints[0].endpoint_name: named endpoint \"e1\" is not supported"
    );
    let cla = ep::ClusterLoadAssignment {
        cluster_name: "c".into(),
        endpoints: vec![locality(
            0,
            vec![lb_endpoint("svc.local", 80, None, HealthStatus::Healthy)],
        )],
        ..Default::default()
    };
    assert!(refusal(load_assignment(&cla)).contains("not an IP address: \"svc.local\""));
}
