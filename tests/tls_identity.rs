//! An mTLS client's identity passed on: X-Forwarded-Client-Cert in Envoy's format
//! and modes (`forward_client_cert_details`, `set_current_client_cert_details`), over
//! HTTP/1.1 and HTTP/2 (curl with a client certificate), and a client's own claim of
//! an identity dropped by default.

mod common;

use common::tls::{curl, CertPair, Pki};
use common::*;
use serde_json::json;

/// A TLS listener (Auto: h2 or HTTP/1.1 by ALPN) asking for client certificates,
/// proxying to an upstream that echoes the request head.
fn start(
    pki: &Pki,
    server: &CertPair,
    mode: Option<&str>,
    details: serde_json::Value,
) -> (Mosn, u16, Upstream) {
    let up = echo_upstream();
    let (port, admin) = (free_port(), free_port());
    let mut proxy = json!({"downstream_protocol": "Auto", "upstream_protocol": "Http1", "router_config_name": "r",
        "set_current_client_cert_details": details});
    if let Some(m) = mode {
        proxy["forward_client_cert_details"] = json!(m);
    }
    let config = json!({
        "servers": [{"default_log_path": "stderr", "processor": 1,
            "routers": [{"router_config_name": "r", "virtual_hosts": [{"name": "h", "domains": ["*"],
                "routers": [{"match": {"prefix": "/"}, "route": {"cluster_name": "up"}}]}]}],
            "listeners": [{"name": "l", "address": format!("127.0.0.1:{port}"), "bind_port": true,
                "filter_chains": [{"tls_context": {"status": true, "cert_chain": server.cert_path(),
                    "private_key": server.key_path(), "ca_cert": pki.ca_cert_path(), "verify_client": true},
                    "filters": [{"type": "proxy", "config": proxy}]}]}]}],
        "cluster_manager": {"clusters": [{"name": "up", "type": "SIMPLE", "lb_type": "LB_ROUNDROBIN",
            "hosts": [{"address": up.addr.to_string()}]}]},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}
    });
    (Mosn::start(&config.to_string(), &[port, admin]), port, up)
}

/// The X-Forwarded-Client-Cert lines the upstream saw (lowercased name), via curl.
fn xfcc_seen(pki: &Pki, port: u16, client: Option<&CertPair>, extra: &[&str]) -> Vec<String> {
    let url = format!("https://server.test:{port}/");
    let resolve = format!("server.test:{port}:127.0.0.1");
    let ca = pki.ca_cert_path();
    let mut args = vec!["--cacert", ca.as_str(), "--resolve", resolve.as_str()];
    let (cert, key);
    if let Some(c) = client {
        cert = c.cert_path();
        key = c.key_path();
        args.extend(["--cert", cert.as_str(), "--key", key.as_str()]);
    }
    args.extend(extra);
    args.push(url.as_str());
    let out = curl(&args).expect("curl");
    assert!(out.ok(), "{out:?}");
    out.stdout
        .lines()
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with("x-forwarded-client-cert:")
        })
        .map(|l| {
            l.split_once(':')
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        })
        .collect()
}

fn hash_hex(pki: &Pki, cert: &CertPair) -> String {
    // openssl's SHA-256 fingerprint of the DER, as lowercase hex without colons.
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert.cert_path())
        .current_dir(pki.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split('=')
        .nth(1)
        .unwrap()
        .trim()
        .replace(':', "")
        .to_ascii_lowercase()
}

#[test]
fn sanitize_set_passes_the_client_identity_over_http1_and_http2() {
    let Some(pki) = Pki::new() else { return };
    let server = pki.server("server", "server.test", &["DNS:server.test"]);
    let client = pki.client(
        "client",
        "client-a",
        &[
            "URI:spiffe://cluster.local/ns/default/sa/a",
            "DNS:a.example.com",
        ],
    );
    let (_m, port, _up) = start(
        &pki,
        &server,
        Some("SANITIZE_SET"),
        json!({"subject": true, "uri": true, "dns": true}),
    );
    let hash = hash_hex(&pki, &client);
    for version in ["--http1.1", "--http2"] {
        let seen = xfcc_seen(
            &pki,
            port,
            Some(&client),
            &["-H", "x-forwarded-client-cert: By=spoof;Hash=00", version],
        );
        assert_eq!(seen.len(), 1, "{version}: {seen:?}");
        let v = &seen[0];
        assert!(v.starts_with(&format!("Hash={hash}")), "{version}: {v}");
        assert!(v.contains("Subject=\"CN=client-a"), "{version}: {v}");
        assert!(
            v.contains(";URI=spiffe://cluster.local/ns/default/sa/a"),
            "{version}: {v}"
        );
        assert!(v.contains(";DNS=a.example.com"), "{version}: {v}");
        assert!(
            !v.contains("spoof"),
            "{version}: the client's claim replaced: {v}"
        );
    }
    // Without a client certificate the header is dropped, not set.
    let seen = xfcc_seen(
        &pki,
        port,
        None,
        &["-H", "x-forwarded-client-cert: Hash=00"],
    );
    assert!(seen.is_empty(), "{seen:?}");
}

#[test]
fn by_default_a_client_cannot_claim_an_identity() {
    let Some(pki) = Pki::new() else { return };
    let server = pki.server("server", "server.test", &["DNS:server.test"]);
    let client = pki.client("client", "client-b", &["DNS:b.example.com"]);
    let (_m, port, _up) = start(&pki, &server, None, json!({}));
    for version in ["--http1.1", "--http2"] {
        let seen = xfcc_seen(
            &pki,
            port,
            Some(&client),
            &[
                "-H",
                "x-forwarded-client-cert: Hash=00;URI=spiffe://admin",
                version,
            ],
        );
        assert!(seen.is_empty(), "{version}: {seen:?}");
    }
}

#[test]
fn append_forward_adds_to_the_chain_and_forward_only_keeps_it_for_mtls_only() {
    let Some(pki) = Pki::new() else { return };
    let server = pki.server("server", "server.test", &["DNS:server.test"]);
    let client = pki.client("client", "client-c", &["DNS:c.example.com"]);
    let hash = hash_hex(&pki, &client);
    let (_m, port, _up) = start(&pki, &server, Some("APPEND_FORWARD"), json!({}));
    for version in ["--http1.1", "--http2"] {
        let seen = xfcc_seen(
            &pki,
            port,
            Some(&client),
            &["-H", "x-forwarded-client-cert: By=edge;Hash=11", version],
        );
        assert_eq!(
            seen,
            vec![format!("By=edge;Hash=11,Hash={hash}")],
            "{version}"
        );
    }
    let (_m2, port, _up2) = start(&pki, &server, Some("FORWARD_ONLY"), json!({}));
    let seen = xfcc_seen(
        &pki,
        port,
        Some(&client),
        &["-H", "x-forwarded-client-cert: Hash=22"],
    );
    assert_eq!(seen, vec!["Hash=22".to_string()]);
    let seen = xfcc_seen(
        &pki,
        port,
        None,
        &["-H", "x-forwarded-client-cert: Hash=22"],
    );
    assert!(seen.is_empty(), "not mTLS: dropped: {seen:?}");
}
