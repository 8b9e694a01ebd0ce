//! mosn-rs as an xDS client, driven by the test control plane
//! (tests/peers/xds_server.py, checked against the real Envoy by
//! tests/xds_peers_selftest.rs) through MOSN's xDS bootstrap (Envoy's shape): for
//! state of the world and delta, resources are ACKed and served (CDS -> EDS -> LDS ->
//! RDS), a route change and an endpoint change take effect, a bad update is NACKed
//! with its reason and changes nothing, a dropped stream is opened again while the
//! last config keeps serving, and a removed listener stops accepting.

mod common;

use common::xds::*;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(15);

/// mosn-rs on an xDS bootstrap for `server`, as node `node`; its admin port.
fn mosn_on_xds(server: &XdsServer, node: &str, variant: AdsVariant) -> (Mosn, u16) {
    let admin = free_port();
    // The same bootstrap the real Envoy gets (its admin key is MOSN's shape too).
    let bootstrap = envoy_ads_bootstrap_variant(server.port(), node, admin, variant);
    (Mosn::start(&bootstrap.to_string(), &[admin]), admin)
}

fn get(port: u16) -> Option<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let r = read_response(&mut s, false)?;
    (r.status == 200).then(|| r.body_text())
}

/// Polls `port` until it answers `want` (or the limit passes); what it last said.
fn until_answer(port: u16, want: &str) -> Option<String> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let got = get(port);
        if got.as_deref() == Some(want) || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn xds_page(admin: u16) -> Value {
    let r = http_exchange(admin, b"GET /xds HTTP/1.1\r\nHost: a\r\n\r\n");
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

/// The test's resources: listener l1 on `port` with routes rc1 to `route_to`, EDS
/// cluster c1 with `c1_host`, static cluster c2 with `c2_host`, and `extra`.
fn resources(
    port: u16,
    route_to: &str,
    c1_host: std::net::SocketAddr,
    c2_host: std::net::SocketAddr,
    extra: Vec<Value>,
) -> Vec<Value> {
    let mut r = vec![
        listener_http("l1", port, "rc1"),
        route_config("rc1", vhosts_to(route_to)),
        cluster_eds("c1"),
        cla("c1", &[(c1_host, 1)]),
        cluster_static("c2", &[c2_host]),
    ];
    r.extend(extra);
    r
}

fn lifecycle(variant: AdsVariant) {
    let Some(server) = XdsServer::start() else {
        return;
    };
    let (a, b) = (tagged_upstream("a"), tagged_upstream("b"));
    let port = free_port();
    let node = format!("mosn-{}", variant.event_name());
    let (_m, admin) = mosn_on_xds(&server, &node, variant);

    // v1: a listener whose routes come by RDS, to an EDS cluster.
    server.snapshot("v1", resources(port, "c1", a.addr, b.addr, vec![]));
    assert!(
        server.wait_for(LIMIT, |e| {
            let mine = of_node(e, &node);
            [LDS, RDS, CDS, EDS].iter().all(|t| acked(&mine, t, "v1"))
        }),
        "{:#?}\n{}",
        server.events_of(&node),
        server.stderr_text()
    );
    assert_eq!(until_answer(port, "a").as_deref(), Some("a"));
    // An HTTP/2 client, an HTTP/1.1 cluster (no protocol options: Envoy's default).
    if let Some(out) = common::tls::curl(&[
        "--http2-prior-knowledge",
        &format!("http://127.0.0.1:{port}/"),
    ]) {
        assert_eq!(out.stdout, "a", "{out:?}");
    }
    let page = xds_page(admin);
    assert_eq!(page["variant"], variant.event_name(), "{page}");
    assert_eq!(page["connected"], true, "{page}");

    // v2: the route moves to c2; v3: back to c1, whose endpoints moved to b.
    server.snapshot("v2", resources(port, "c2", a.addr, b.addr, vec![]));
    assert_eq!(until_answer(port, "b").as_deref(), Some("b"));
    server.snapshot("v3", resources(port, "c1", b.addr, b.addr, vec![]));
    assert!(server.wait_for(LIMIT, |e| {
        let mine = of_node(e, &node);
        acked(&mine, RDS, "v3") && acked(&mine, EDS, "v3")
    }));
    for _ in 0..5 {
        assert_eq!(get(port).as_deref(), Some("b"));
    }

    // v4: a cluster we cannot run: NACKed with the field named; nothing changes.
    let mut bad = cluster_static("c3", &[a.addr]);
    bad["lb_policy"] = json!("LOAD_BALANCING_POLICY_CONFIG");
    server.snapshot("v4", resources(port, "c1", b.addr, b.addr, vec![bad]));
    assert!(server.wait_for(LIMIT, |e| nacked(&of_node(e, &node), CDS).is_some()));
    let reason = nacked(&server.events_of(&node), CDS).unwrap_or_default();
    assert!(
        reason.contains("c3") && reason.contains("lb_policy"),
        "{reason}"
    );
    assert_eq!(get(port).as_deref(), Some("b"));
    let page = xds_page(admin);
    assert!(
        page["types"]["cds"]["last_nack"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("c3")),
        "{page}"
    );

    // The stream drops: mosn-rs keeps serving and comes back.
    assert!(server.drop_streams() >= 1);
    assert_eq!(get(port).as_deref(), Some("b"));
    assert!(server.wait_for(LIMIT, |e| of_node(e, &node)
        .iter()
        .filter(|x| x["event"] == "connect")
        .count()
        >= 2));

    // v5: the listener is gone: its port stops accepting.
    server.snapshot(
        "v5",
        vec![
            cluster_eds("c1"),
            cla("c1", &[(b.addr, 1)]),
            cluster_static("c2", &[b.addr]),
        ],
    );
    let deadline = Instant::now() + LIMIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "listener still accepting");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn state_of_the_world_lifecycle() {
    lifecycle(AdsVariant::Sotw);
}

#[test]
fn delta_lifecycle() {
    lifecycle(AdsVariant::Delta);
}

#[test]
fn mosns_xds_sample_bootstrap_validates() {
    let Some(root) = require_mosn_corpus() else {
        return;
    };
    let out = common::cli::run_on_file("validate", &root.join("xds-server-sample/config.json"));
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
}

/// The xDS server's cluster with mutual TLS (the bootstrap's transport socket: CA, SNI,
/// client certificate), through a TLS-terminating mosn-rs (tcp_proxy) in front of the
/// control plane that requires the client's certificate.
#[test]
fn the_xds_server_is_reached_over_mutual_tls() {
    let Some(server) = XdsServer::start() else {
        return;
    };
    let Some(pki) = common::tls::Pki::new() else {
        return;
    };
    let server_cert = pki.server("xds", "xds.test", &["DNS:xds.test"]);
    let client_cert = pki.client(
        "sidecar",
        "sidecar",
        &["URI:spiffe://cluster.local/ns/default/sa/app"],
    );
    // The terminator: TLS with client verification, bytes on to the control plane.
    let (front, front_admin) = (free_port(), free_port());
    let terminator = json!({
        "servers": [{"default_log_path": "stderr", "processor": 1,
            "listeners": [{"name": "tls", "address": format!("127.0.0.1:{front}"), "bind_port": true,
                "filter_chains": [{
                    "tls_context": {"status": true, "cert_chain": server_cert.cert_path(),
                        "private_key": server_cert.key_path(), "ca_cert": pki.ca_cert_path(),
                        "verify_client": true, "require_client_cert": true},
                    "filters": [{"type": "tcp_proxy", "config": {"cluster": "cp"}}]}]}]}],
        "cluster_manager": {"clusters": [{"name": "cp", "type": "SIMPLE", "lb_type": "LB_RANDOM",
            "hosts": [{"address": server.addr().to_string()}]}]},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": front_admin}}}
    });
    let _front = Mosn::start(&terminator.to_string(), &[front, front_admin]);

    let admin = free_port();
    let mut bootstrap = envoy_ads_bootstrap_variant(front, "mosn-mtls", admin, AdsVariant::Delta);
    bootstrap["static_resources"]["clusters"][0]["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": "xds.test",
            "common_tls_context": {
                "tls_certificates": [{"certificate_chain": {"filename": client_cert.cert_path()},
                                      "private_key": {"filename": client_cert.key_path()}}],
                "validation_context": {"trusted_ca": {"filename": pki.ca_cert_path()}}
            }
        }
    });
    let m = Mosn::start(&bootstrap.to_string(), &[admin]);
    let up = tagged_upstream("over-mtls");
    let port = free_port();
    server.snapshot(
        "t1",
        vec![
            listener_http("l1", port, "rc1"),
            route_config("rc1", vhosts_to("c1")),
            cluster_static("c1", &[up.addr]),
        ],
    );
    assert_eq!(
        until_answer(port, "over-mtls").as_deref(),
        Some("over-mtls"),
        "{}\n{}",
        xds_page(admin),
        m.log_text()
    );
    assert_eq!(
        xds_page(admin)["server"],
        format!("https://127.0.0.1:{front}")
    );
}

/// Istio's pilot-agent serves the sidecar's xDS on a unix socket
/// (`./etc/istio/proxy/XDS`): a bootstrap whose xDS cluster is a `pipe` works.
#[test]
fn the_xds_server_is_reached_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("XDS");
    let sock_path = sock.display().to_string();
    let Some(server) = XdsServer::start_with(&["--uds", &sock_path]) else {
        return;
    };
    let admin = free_port();
    let mut bootstrap =
        envoy_ads_bootstrap_variant(server.port(), "mosn-uds", admin, AdsVariant::Delta);
    bootstrap["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]
        ["lb_endpoints"][0]["endpoint"]["address"] = json!({"pipe": {"path": sock_path}});
    let _m = Mosn::start(&bootstrap.to_string(), &[admin]);
    let up = tagged_upstream("over-uds");
    let port = free_port();
    server.snapshot(
        "u1",
        vec![
            listener_http("l1", port, "rc1"),
            route_config("rc1", vhosts_to("c1")),
            cluster_static("c1", &[up.addr]),
        ],
    );
    assert_eq!(until_answer(port, "over-uds").as_deref(), Some("over-uds"));
    assert_eq!(xds_page(admin)["server"], format!("unix:{sock_path}"));
}

/// A changed cluster keeps its hosts, and their pooled connections: after an update
/// of the cluster's settings (its balancer), requests go on over the upstream
/// connection opened before it.
#[test]
fn a_changed_cluster_keeps_its_hosts_connections() {
    let Some(server) = XdsServer::start() else {
        return;
    };
    let up = tagged_upstream("kept");
    let port = free_port();
    let admin = free_port();
    let mut bootstrap =
        envoy_ads_bootstrap_variant(server.port(), "mosn-keep", admin, AdsVariant::Delta);
    // One worker: one upstream pool, so one connection carries every request.
    bootstrap["servers"] = json!([{"processor": 1}]);
    let _m = Mosn::start(&bootstrap.to_string(), &[admin]);
    let resources = |lb: &str| {
        let mut c = cluster_static("c1", &[up.addr]);
        c["lb_policy"] = json!(lb);
        vec![
            listener_http("l1", port, "rc1"),
            route_config("rc1", vhosts_to("c1")),
            c,
        ]
    };
    server.snapshot("k1", resources("ROUND_ROBIN"));
    assert_eq!(until_answer(port, "kept").as_deref(), Some("kept"));
    for _ in 0..3 {
        assert_eq!(get(port).as_deref(), Some("kept"));
    }
    let before = up.connections();
    server.snapshot("k2", resources("RANDOM"));
    assert!(server.wait_for(LIMIT, |e| acked(&of_node(e, "mosn-keep"), CDS, "k2")));
    for _ in 0..5 {
        assert_eq!(get(port).as_deref(), Some("kept"));
    }
    assert_eq!(
        up.connections(),
        before,
        "the update opened new upstream connections"
    );
}
