//! Dubbo through mosn-rs with real peers: the Node dubbo-remoting server, and both the
//! Node client (sofa-rpc-node + dubbo-remoting) and the Python client (dubbo-ssl-python)
//! through the proxy: concurrent calls matched to their callers over one upstream
//! connection, routing by the `service` header (MOSN's dubbo sample shape), the
//! proxy's own answers to heartbeats, and Dubbo error responses the clients read when
//! there is no route or no upstream.

mod common;

use common::peers::*;
use common::rpc::*;
use common::*;
use serde_json::json;

#[test]
fn node_and_python_clients_through_the_proxy_share_one_upstream_connection() {
    let Some(_) = node_peers() else { return };
    let Some(_) = dubbo_python() else { return };
    let server = XServer::dubbo("D");
    let (_m, port, _) = rpc_proxy(any_service("c"), &[("c", server.port)], "dubbo");
    let py =
        std::thread::spawn(move || x_client(XClient::DubboPython, port, &["echo", "100", "16"]));
    let (ok, v) = x_client(XClient::DubboNode, port, &["echo", "200", "64"]);
    assert!(ok, "{v}");
    assert_all_matched(&v, 200, "D");
    let (ok, v) = py.join().unwrap();
    assert!(ok, "{v}");
    assert_all_matched(&v, 100, "D");
    assert_eq!(server.calls_when("echo", 300), 300);
    assert_eq!(server.connections(), 1, "{:?}", server.events_of("CONN"));
}

#[test]
fn routes_two_services_to_two_clusters_and_auto_detects_dubbo() {
    let Some(_) = node_peers() else { return };
    let a = XServer::dubbo("A");
    let b = XServer::start(
        XProtocol::Dubbo,
        0,
        &["--tag", "B", "--service", "com.mosn.test.OtherEcho"],
    );
    let routes = json!([
        {"match": {"headers": [{"name": "service", "value": "com.mosn.test.OtherEcho"}]}, "route": {"cluster_name": "b"}},
        {"match": {"headers": [{"name": "service", "value": ".*"}]}, "route": {"cluster_name": "a"}}
    ]);
    for protocol in ["dubbo", "Auto"] {
        let (_m, port, _) = rpc_proxy(routes.clone(), &[("a", a.port), ("b", b.port)], protocol);
        let (ok, v) = x_client(XClient::DubboNode, port, &["echo", "20", "4"]);
        assert!(ok, "{protocol}: {v}");
        assert_all_matched(&v, 20, "A");
        let (ok, v) = x_client_args(
            XClient::DubboNode,
            &[
                "--service",
                "com.mosn.test.OtherEcho",
                &format!("127.0.0.1:{port}"),
                "echo",
                "20",
                "4",
            ],
            CLIENT_LIMIT,
        );
        assert!(ok, "{protocol}: {v}");
        assert_all_matched(&v, 20, "B");
    }
}

#[test]
fn heartbeats_are_answered_and_errors_are_dubbo_responses_the_clients_read() {
    let Some(_) = node_peers() else { return };
    let Some(_) = dubbo_python() else { return };
    let server = XServer::dubbo("H");
    let (_m, port, _) = rpc_proxy(any_service("c"), &[("c", server.port)], "dubbo");
    for client in [XClient::DubboNode, XClient::DubboPython] {
        let (ok, v) = x_client(client, port, &["heartbeat"]);
        assert!(ok, "{client:?}: {v}");
    }
    assert!(
        server.events_of("HEARTBEAT").is_empty(),
        "the proxy answered them itself"
    );
    // No route for this service.
    let routes = json!([{"match": {"headers": [{"name": "service", "value": "nope"}]}, "route": {"cluster_name": "c"}}]);
    let (_m2, port2, _) = rpc_proxy(routes, &[("c", server.port)], "dubbo");
    // The upstream is down.
    let (_m3, port3, _) = rpc_proxy(any_service("c"), &[("c", free_port())], "dubbo");
    for client in [XClient::DubboNode, XClient::DubboPython] {
        assert_prompt_error(client, port2);
        assert_prompt_error(client, port3);
    }
}

/// The route's timeout caps a Dubbo call (Dubbo frames carry no timeout of their own):
/// the client gets the proxy's timeout answer long before its own 5 s timeout.
#[test]
fn the_route_timeout_answers_a_slow_call() {
    let Some(_) = node_peers() else { return };
    let server = XServer::dubbo("S");
    let routes = json!([{"match": {"headers": [{"name": "service", "value": ".*"}]},
        "route": {"cluster_name": "c", "timeout": "300ms"}}]);
    let (_m, port, _) = rpc_proxy(routes, &[("c", server.port)], "dubbo");
    let started = std::time::Instant::now();
    let (ok, v) = x_client_args(
        XClient::DubboNode,
        &[
            "--timeout",
            "5000",
            &format!("127.0.0.1:{port}"),
            "sleep",
            "2000",
        ],
        CLIENT_LIMIT,
    );
    assert!(!ok, "{v}");
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_millis(1500),
        "{took:?} {v}"
    );
    assert!(
        v.to_string().contains("504|timeout"),
        "the proxy's answer: {v}"
    );
    // The connection still serves.
    let (ok, v) = x_client(XClient::DubboNode, port, &["echo", "5", "1"]);
    assert!(ok, "{v}");
}
