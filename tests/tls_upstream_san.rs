//! A cluster's `match_subject_alt_names` (Istio's ISTIO_MUTUAL): the upstream's chain
//! is verified against the trusted CA and its identity against the SAN list (SPIFFE
//! URIs), while the SNI (`outbound_.80_._...`) is only sent. Driven through the real
//! binary: a sidecar mosn-rs whose clusters reach TLS listeners of an upstream mosn-rs
//! that requires the sidecar's client certificate and passes its identity on
//! (X-Forwarded-Client-Cert) to an echo server. Without a list, MOSN's check of
//! `server_name` stays. And the same from xDS: Istio's ISTIO_MUTUAL cluster (SDS
//! certificate and CA, SPIFFE names in a combined validation context), answered by
//! mosn-rs as by the real Envoy on the same snapshot.

mod common;

use common::tls::{CertPair, Pki};
use common::xds::{
    envoy_ads_bootstrap, http_get, listener_http, route_config, EnvoyProxy, XdsServer, SDS,
};
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const APP: &str = "spiffe://cluster.local/ns/default/sa/app";
const OTHER: &str = "spiffe://cluster.local/ns/default/sa/other";
const SIDECAR: &str = "spiffe://cluster.local/ns/default/sa/sidecar";
const SNI: &str = "outbound_.80_._.app.default.svc.cluster.local";

/// The upstream mosn-rs: one mTLS listener per certificate (named), each requiring a
/// client certificate from the CA that carries the sidecar's identity, and setting
/// X-Forwarded-Client-Cert (URI) towards `echo`. Returns the ports by listener.
fn start_upstream(pki: &Pki, servers: &[(&str, &CertPair)], echo: &Upstream) -> (Mosn, Vec<u16>) {
    let ports: Vec<u16> = servers.iter().map(|_| free_port()).collect();
    let admin = free_port();
    let listeners: Vec<Value> = servers
        .iter()
        .zip(&ports)
        .map(|((name, pair), port)| {
            json!({"name": name, "address": format!("127.0.0.1:{port}"), "bind_port": true,
                "filter_chains": [{
                    "tls_context": {"status": true, "cert_chain": pair.cert_path(),
                        "private_key": pair.key_path(), "ca_cert": pki.ca_cert_path(),
                        "verify_client": true, "require_client_cert": true,
                        "match_subject_alt_names": [SIDECAR]},
                    "filters": [{"type": "proxy", "config": {
                        "downstream_protocol": "Auto", "upstream_protocol": "Http1",
                        "router_config_name": "r",
                        "forward_client_cert_details": "SANITIZE_SET",
                        "set_current_client_cert_details": {"uri": true}}}]}]})
        })
        .collect();
    let config = json!({
        "servers": [{"default_log_path": "stderr", "processor": 1,
            "routers": [{"router_config_name": "r", "virtual_hosts": [{"name": "h", "domains": ["*"],
                "routers": [{"match": {"prefix": "/"}, "route": {"cluster_name": "echo"}}]}]}],
            "listeners": listeners}],
        "cluster_manager": {"clusters": [{"name": "echo", "type": "SIMPLE", "lb_type": "LB_ROUNDROBIN",
            "hosts": [{"address": echo.addr.to_string()}]}]},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}
    });
    let mut wait = ports.clone();
    wait.push(admin);
    (Mosn::start(&config.to_string(), &wait), ports)
}

/// The sidecar's side of ISTIO_MUTUAL: Istio's SNI, the CA, the sidecar's own
/// certificate, and (when given) the SAN list.
fn mutual_tls(ca: &str, client: &CertPair, sans: Option<&[&str]>) -> Value {
    let mut tls = json!({"status": true, "server_name": SNI, "ca_cert": ca,
        "cert_chain": client.cert_path(), "private_key": client.key_path()});
    if let Some(names) = sans {
        tls["match_subject_alt_names"] = json!(names);
    }
    tls
}

/// The sidecar mosn-rs: plain HTTP/1.1 in, `/NAME/...` to cluster NAME; each cluster
/// is (name, upstream port, tls_context, upstream_protocol).
fn start_sidecar(clusters: &[(&str, u16, Value, &str)]) -> (Mosn, u16) {
    let (port, admin) = (free_port(), free_port());
    let routes: Vec<Value> = clusters
        .iter()
        .map(|(name, ..)| {
            json!({"match": {"prefix": format!("/{name}/")}, "route": {"cluster_name": name}})
        })
        .collect();
    let clusters: Vec<Value> = clusters
        .iter()
        .map(|(name, up, tls, protocol)| {
            json!({"name": name, "type": "SIMPLE", "lb_type": "LB_ROUNDROBIN",
                "upstream_protocol": protocol, "tls_context": tls,
                "hosts": [{"address": format!("127.0.0.1:{up}")}]})
        })
        .collect();
    let config = json!({
        "servers": [{"default_log_path": "stderr", "default_log_level": "INFO", "processor": 1,
            "routers": [{"router_config_name": "r", "virtual_hosts": [{"name": "h", "domains": ["*"],
                "routers": routes}]}],
            "listeners": [{"name": "l", "address": format!("127.0.0.1:{port}"), "bind_port": true,
                "filter_chains": [{"filters": [{"type": "proxy", "config": {
                    "downstream_protocol": "Http1", "upstream_protocol": "Http1",
                    "router_config_name": "r"}}]}]}]}],
        "cluster_manager": {"clusters": clusters},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}
    });
    (Mosn::start(&config.to_string(), &[port, admin]), port)
}

fn get(port: u16, path: &str) -> Response {
    let req = format!("GET {path} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n");
    http_exchange(port, req.as_bytes())
}

/// The log once it holds `needle` (within 2 s), for the assertion's message.
fn log_with(m: &Mosn, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let log = m.log_text();
        if log.contains(needle) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_cluster_san_list_accepts_the_listed_spiffe_id_and_refuses_others() {
    let Some(pki) = Pki::new() else { return };
    let app = pki.server("app", "app", &[&format!("URI:{APP}")]);
    let other = pki.server("other", "other", &[&format!("URI:{OTHER}")]);
    // The SNI name as a DNS SAN (what MOSN's check wants), with another identity.
    let by_sni = pki.server(
        "by-sni",
        "by-sni",
        &[&format!("DNS:{SNI}"), &format!("URI:{OTHER}")],
    );
    let sidecar = pki.client("sidecar", "sidecar", &[&format!("URI:{SIDECAR}")]);
    let stranger = pki.new_ca("stranger", "a CA that signed none of them");
    let echo = echo_upstream();
    let (upstream, ports) = start_upstream(
        &pki,
        &[("app", &app), ("other", &other), ("by-sni", &by_sni)],
        &echo,
    );
    let (p_app, p_other, p_sni) = (ports[0], ports[1], ports[2]);
    let ca = pki.ca_cert_path();
    let listed = |ca: &str| mutual_tls(ca, &sidecar, Some(&[APP]));
    let (sidecar_proxy, port) = start_sidecar(&[
        ("app", p_app, listed(&ca), "Http1"),
        ("app-h2", p_app, listed(&ca), "Http2"),
        ("other", p_other, listed(&ca), "Http1"),
        ("untrusted", p_app, listed(&stranger.cert_path()), "Http1"),
        ("sni-listed", p_sni, listed(&ca), "Http1"),
        ("mosn", p_app, mutual_tls(&ca, &sidecar, None), "Http1"),
        ("mosn-sni", p_sni, mutual_tls(&ca, &sidecar, None), "Http1"),
    ]);
    let logs = || {
        format!(
            "sidecar:\n{}\nupstream:\n{}",
            sidecar_proxy.log_text(),
            upstream.log_text()
        )
    };

    // The listed identity, over HTTP/1.1 and HTTP/2; the SNI (not among its SANs) is
    // only sent. The upstream saw the sidecar's own identity: mutual TLS both ways.
    for path in ["/app/x", "/app-h2/x"] {
        let r = get(port, path);
        assert_eq!(r.status, 200, "{path}: {r:?}\n{}", logs());
        let echoed = r.body_text().to_ascii_lowercase();
        assert!(
            echoed.contains(&format!("uri={SIDECAR}")),
            "{path}: no client identity upstream: {echoed}"
        );
    }

    // Signed by the trusted CA, but another identity: a TLS failure, 503.
    let r = get(port, "/other/x");
    assert_eq!(r.status, 503, "another SPIFFE ID: {r:?}\n{}", logs());
    let log = log_with(&sidecar_proxy, "carries none of match_subject_alt_names");
    assert!(
        log.contains("carries none of match_subject_alt_names") && log.contains(OTHER),
        "no log line naming the mismatch:\n{log}"
    );
    // The listed SAN on a chain the cluster does not trust.
    let r = get(port, "/untrusted/x");
    assert_eq!(r.status, 503, "untrusted CA: {r:?}\n{}", logs());
    // With a list, the SNI name among the certificate's SANs is not enough.
    let r = get(port, "/sni-listed/x");
    assert_eq!(
        r.status,
        503,
        "SNI name but not the identity: {r:?}\n{}",
        logs()
    );

    // Without a list: MOSN's check of server_name, as before.
    let r = get(port, "/mosn/x");
    assert_eq!(
        r.status,
        503,
        "server_name not in the certificate: {r:?}\n{}",
        logs()
    );
    let r = get(port, "/mosn-sni/x");
    assert_eq!(
        r.status,
        200,
        "server_name in the certificate: {r:?}\n{}",
        logs()
    );

    // And the listed one still works after the failures.
    assert_eq!(get(port, "/app/y").status, 200, "{}", logs());
}

// ---- from xDS ----------------------------------------------------------------------

/// Istio's outbound cluster for ISTIO_MUTUAL: SNI outbound_..., the workload
/// certificate ("default") and root CA ("ROOTCA") by SDS over ADS, and the SPIFFE
/// identity the upstream must present (exact URI match), as istiod sends them.
fn istio_mutual_cluster(name: &str, port: u16, identity: &str) -> Value {
    let sds = |n: &str| json!({"name": n, "sds_config": {"ads": {}, "resource_api_version": "V3"}});
    let mut c = common::xds::cluster_static(name, &[([127, 0, 0, 1], port).into()]);
    c["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": SNI,
            "common_tls_context": {
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2",
                    "tls_maximum_protocol_version": "TLSv1_3"},
                "tls_certificate_sds_secret_configs": [sds("default")],
                "combined_validation_context": {
                    "default_validation_context": {"match_typed_subject_alt_names": [
                        {"san_type": "URI", "matcher": {"exact": identity}}]},
                    "validation_context_sds_secret_config": sds("ROOTCA")
                }
            }
        }
    });
    c
}

/// Polls GET `path` until it answers `want` (15 s); the last (status, body).
fn until_status(port: u16, path: &str, want: u16) -> Option<(u16, String)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = http_get(port, path);
        if got.as_ref().is_some_and(|(s, _)| *s == want) || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn istio_mutual_from_xds_verifies_the_spiffe_identity_as_envoy_does() {
    let Some(xds) = XdsServer::start() else {
        return;
    };
    let Some(pki) = Pki::new() else { return };
    let app = pki.server("app", "app", &[&format!("URI:{APP}")]);
    let other = pki.server("other", "other", &[&format!("URI:{OTHER}")]);
    let sidecar = pki.client("sidecar", "sidecar", &[&format!("URI:{SIDECAR}")]);
    let echo = echo_upstream();
    let (upstream, ports) = start_upstream(&pki, &[("app", &app), ("other", &other)], &echo);

    let port = free_port();
    let routes = json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/app/"}, "route": {"cluster": "outbound|80||app.default.svc.cluster.local"}},
        {"match": {"prefix": "/other/"}, "route": {"cluster": "outbound|80||other.default.svc.cluster.local"}}]}]);
    let ca_pem = std::fs::read_to_string(pki.ca_cert()).expect("CA");
    xds.snapshot(
        "v1",
        vec![
            json!({"@type": SDS, "name": "default", "tls_certificate": {
                "certificate_chain": {"inline_string": sidecar.cert_pem()},
                "private_key": {"inline_string": sidecar.key_pem()}}}),
            json!({"@type": SDS, "name": "ROOTCA", "validation_context": {
                "trusted_ca": {"inline_string": ca_pem}}}),
            istio_mutual_cluster("outbound|80||app.default.svc.cluster.local", ports[0], APP),
            // The other service's cluster expects app's identity: a mismatch.
            istio_mutual_cluster(
                "outbound|80||other.default.svc.cluster.local",
                ports[1],
                APP,
            ),
            listener_http("outbound", port, "rc"),
            route_config("rc", routes),
        ],
    );

    // mosn-rs first, then Envoy on the same snapshot (one at a time: same port).
    {
        let admin = free_port();
        let bootstrap = envoy_ads_bootstrap(xds.port(), "mosn-rs", admin);
        let m = Mosn::start(&bootstrap.to_string(), &[admin]);
        let logs = || {
            format!(
                "mosn-rs:\n{}\nupstream:\n{}",
                m.log_text(),
                upstream.log_text()
            )
        };
        let got = until_status(port, "/app/x", 200);
        assert!(
            got.as_ref().is_some_and(|(_, body)| body
                .to_ascii_lowercase()
                .contains(&format!("uri={SIDECAR}"))),
            "mosn-rs, listed identity: {got:?}\n{}",
            logs()
        );
        let refused = client_alerts(&upstream);
        let got = http_get(port, "/other/x");
        assert_eq!(
            got.as_ref().map(|g| g.0),
            Some(503),
            "mosn-rs, other identity: {got:?}\n{}",
            logs()
        );
        let log = log_with(&m, "carries none of match_subject_alt_names");
        assert!(
            log.contains(OTHER),
            "mosn-rs: no log line naming the mismatch:\n{log}"
        );
        assert_client_refused(&upstream, refused, "mosn-rs");
    }
    let Some(envoy) = EnvoyProxy::start(&envoy_ads_bootstrap(xds.port(), "envoy", 0)) else {
        return;
    };
    assert!(
        envoy.wait_live(Duration::from_secs(20)),
        "{}",
        envoy.log_text()
    );
    let got = until_status(port, "/app/x", 200);
    assert_eq!(
        got.as_ref().map(|g| g.0),
        Some(200),
        "Envoy, listed identity: {got:?}\n{}",
        envoy.log_text()
    );
    let refused = client_alerts(&upstream);
    let got = http_get(port, "/other/x");
    assert_eq!(
        got.as_ref().map(|g| g.0),
        Some(503),
        "Envoy, other identity: {got:?}\n{}",
        envoy.log_text()
    );
    assert_client_refused(&upstream, refused, "Envoy");
}

/// The upstream's handshakes that its client ended with an alert (the client refused
/// the upstream's certificate), so far.
fn client_alerts(upstream: &Mosn) -> usize {
    upstream.log_text().matches("received fatal alert").count()
}

/// The 503 came from the client refusing the certificate (an alert the upstream
/// logged within 2 s), not from anything else on the way.
#[track_caller]
fn assert_client_refused(upstream: &Mosn, before: usize, who: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while client_alerts(upstream) <= before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        client_alerts(upstream) > before,
        "{who}: the upstream logged no alert from its client:\n{}",
        upstream.log_text()
    );
}
