//! gRPC through the real binary with real grpcio clients and servers (Python, from
//! scripts/setup.sh): every call type, trailers and binary metadata, large messages,
//! deadlines, cancellation, many concurrent streams, health checks, and the proxy's
//! own gRPC answers.

mod common;
use common::peers::*;
use common::*;
use std::time::Duration;

/// A listener speaking h2c both ways in front of `upstream`.
fn grpc_proxy(upstream: std::net::SocketAddr, extra_route: &str) -> (Mosn, u16) {
    grpc_proxy_routes(
        upstream,
        &format!(
            r#"{extra_route}
    {{"match": {{"prefix": "/mosn.test.Echo/"}}, "route": {{"cluster_name": "grpc"}}}},
    {{"match": {{"prefix": "/grpc.health.v1.Health/"}}, "route": {{"cluster_name": "grpc"}}}}"#
        ),
    )
}

/// A gRPC proxy with exactly `routes` (a JSON list's items).
fn grpc_proxy_routes(upstream: std::net::SocketAddr, routes: &str) -> (Mosn, u16) {
    let port = free_port();
    let config = format!(
        r#"{{"servers": [{{"default_log_level": "WARN", "processor": 2,
  "routers": [{{"router_config_name": "r", "virtual_hosts": [{{"name": "h", "domains": ["*"], "routers": [
    {routes}]}}]}}],
  "listeners": [{{"name": "l", "address": "127.0.0.1:{port}", "bind_port": true,
    "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "Http2", "upstream_protocol": "Http2", "router_config_name": "r"}}}}]}}]}}]}}],
  "cluster_manager": {{"clusters": [{{"name": "grpc", "hosts": [{{"address": "{upstream}"}}]}}]}}}}"#
    );
    (Mosn::start(&config, &[port]), port)
}

#[test]
fn all_four_call_types_with_trailers_and_large_messages() {
    let Some(_) = venv_python() else { return };
    let server = GrpcServer::start(true);
    let (_m, port) = grpc_proxy(server.addr(), "");
    for case in [
        &["unary"][..],
        &["client_stream", "20"],
        &["server_stream", "50"],
        &["bidi", "20"],
        &["large", "4194304"],
        &["unary_status", "7"],
        &["health", "mosn.test.Echo"],
    ] {
        let (ok, v) = grpc_client(port, case);
        assert!(ok, "{case:?}: {v}");
    }
}

#[test]
fn deadlines_cancellation_and_concurrency() {
    let Some(_) = venv_python() else { return };
    let server = GrpcServer::start(false);
    let (_m, port) = grpc_proxy(server.addr(), "");
    let (ok, v) = grpc_client(port, &["deadline", "300"]);
    assert!(ok, "deadline: {v}");
    let (ok, v) = grpc_client(port, &["cancel"]);
    assert!(ok, "cancel: {v}");
    assert!(
        server
            .wait_event("CANCEL ServerStream", Duration::from_secs(3))
            .is_some(),
        "the client's cancel reached the upstream: {:?}",
        server.events()
    );
    let (ok, v) = grpc_client(port, &["concurrent", "1000"]);
    assert!(ok, "1000 concurrent calls: {v}");
}

#[test]
fn the_proxy_answers_grpc_requests_as_grpc() {
    let Some(_) = venv_python() else { return };
    // Nothing listens upstream: UNAVAILABLE (14), in a trailers-only response.
    let dead: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_m, port) = grpc_proxy(dead, "");
    let (_, v) = grpc_client(port, &["unary"]);
    assert_eq!(v["code"], "UNAVAILABLE", "{v}");
    assert_eq!(v["details"], "upstream connect failure", "{v}");
    // No route for the call: UNIMPLEMENTED (12). Only another service is routed.
    let server = GrpcServer::start(false);
    let (_m2, port) = grpc_proxy_routes(
        server.addr(),
        r#"{"match": {"prefix": "/other.Service/"}, "route": {"cluster_name": "grpc"}}"#,
    );
    let (_, v) = grpc_client(port, &["unary"]);
    assert_eq!(v["code"], "UNIMPLEMENTED", "{v}");
}
