//! SOFA Bolt through mosn-rs with Ant Group's real sofa-rpc-node client and server
//! (tests/peers/node): many concurrent calls multiplexed on one upstream connection
//! and matched back to their callers, routing by the `service` header (MOSN's sample
//! config shape), heartbeats answered by the proxy, and the protocol's own error
//! answers when there is no route, no upstream, or the deadline passes.

mod common;

use common::peers::*;
use common::rpc::*;
use common::*;
use serde_json::json;

#[test]
fn many_calls_from_two_clients_share_one_upstream_connection_and_match_their_callers() {
    let Some(_) = node_peers() else { return };
    let server = XServer::bolt("A");
    let (_m, port, _admin) = rpc_proxy(any_service("c"), &[("c", server.port)], "bolt");
    let a = std::thread::spawn(move || x_client(XClient::BoltNode, port, &["echo", "300", "64"]));
    let (ok, v) = x_client(XClient::BoltNode, port, &["echo", "300", "64"]);
    assert!(ok, "{v}");
    assert_all_matched(&v, 300, "A");
    let (ok, v) = a.join().unwrap();
    assert!(ok, "{v}");
    assert_all_matched(&v, 300, "A");
    assert_eq!(server.calls_when("echo", 600), 600);
    // Two clients, one worker: one upstream connection carried them all.
    assert_eq!(server.connections(), 1, "{:?}", server.events_of("CONN"));
}

#[test]
fn routes_by_service_to_two_clusters_and_the_legacy_x_shape_works() {
    let Some(_) = node_peers() else { return };
    let (a, b) = (
        XServer::bolt("A"),
        XServer::start(
            XProtocol::Bolt,
            0,
            &["--tag", "B", "--service", "com.mosn.test.OtherService"],
        ),
    );
    let routes = json!([
        {"match": {"headers": [{"name": "service", "value": "com.mosn.test.OtherService:1.0"}]}, "route": {"cluster_name": "b"}},
        {"match": {"headers": [{"name": "service", "value": ".*"}]}, "route": {"cluster_name": "a"}}
    ]);
    let (_m, port, _) = rpc_proxy(routes.clone(), &[("a", a.port), ("b", b.port)], "bolt");
    let (ok, v) = x_client(XClient::BoltNode, port, &["echo", "20", "4"]);
    assert!(ok, "{v}");
    assert_all_matched(&v, 20, "A");
    let (ok, v) = x_client_args(
        XClient::BoltNode,
        &[
            "--service",
            "com.mosn.test.OtherService",
            &format!("127.0.0.1:{port}"),
            "echo",
            "20",
            "4",
        ],
        CLIENT_LIMIT,
    );
    assert!(ok, "{v}");
    assert_all_matched(&v, 20, "B");
    // MOSN's older shape: "X" with extend_config.sub_protocol.
    let (port2, admin2) = (free_port(), free_port());
    let config = json!({
        "servers": [{"default_log_path": "stderr", "processor": 1,
            "routers": [{"router_config_name": "r", "virtual_hosts": [{"name": "h", "domains": ["*"], "routers": routes}]}],
            "listeners": [{"name": "l", "address": format!("127.0.0.1:{port2}"), "bind_port": true,
                "filter_chains": [{"filters": [{"type": "proxy", "config": {"downstream_protocol": "X", "upstream_protocol": "X",
                    "router_config_name": "r", "extend_config": {"sub_protocol": "bolt"}}}]}]}]}],
        "cluster_manager": {"clusters": [
            {"name": "a", "type": "SIMPLE", "lb_type": "LB_RANDOM", "hosts": [{"address": format!("127.0.0.1:{}", a.port)}]},
            {"name": "b", "type": "SIMPLE", "lb_type": "LB_RANDOM", "hosts": [{"address": format!("127.0.0.1:{}", b.port)}]}]},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin2}}}
    });
    let _m2 = Mosn::start(&config.to_string(), &[port2, admin2]);
    let (ok, v) = x_client(XClient::BoltNode, port2, &["echo", "10", "2"]);
    assert!(ok, "{v}");
    assert_all_matched(&v, 10, "A");
}

#[test]
fn the_proxy_answers_heartbeats_and_errors_in_bolt() {
    let Some(_) = node_peers() else { return };
    let server = XServer::bolt("A");
    // Auto: Bolt detected beside HTTP on the same port.
    let (_m, port, _admin) = rpc_proxy(any_service("c"), &[("c", server.port)], "Auto");
    let (ok, v) = x_client(XClient::BoltNode, port, &["heartbeat"]);
    assert!(ok, "{v}");
    assert!(
        server.events_of("HEARTBEAT").is_empty(),
        "the proxy answered it itself"
    );
    let (ok, v) = x_client(XClient::BoltNode, port, &["echo", "5", "1"]);
    assert!(ok, "Auto detects Bolt: {v}");
    // No route (a route for another service only): a Bolt error answer, not a hang.
    let routes = json!([{"match": {"headers": [{"name": "service", "value": "nope:1.0"}]}, "route": {"cluster_name": "c"}}]);
    let (_m2, port2, _) = rpc_proxy(routes, &[("c", server.port)], "bolt");
    assert_prompt_error(XClient::BoltNode, port2);
    // The upstream is down: an error answer, quickly.
    let down = free_port();
    let (_m3, port3, _) = rpc_proxy(any_service("c"), &[("c", down)], "bolt");
    assert_prompt_error(XClient::BoltNode, port3);
}

/// A client that leaves mid-call costs nothing to the others; an upstream that dies
/// mid-call gets its callers a prompt Bolt error, not a hang until their timeout.
#[test]
fn client_and_upstream_leaving_mid_call() {
    let Some(_) = node_peers() else { return };
    let mut server = XServer::bolt("A");
    let (_m, port, _) = rpc_proxy(any_service("c"), &[("c", server.port)], "bolt");
    // A client killed while its call sleeps on the server.
    let mut leaver = XClient::BoltNode.command().unwrap();
    let mut child = leaver
        .args([&format!("127.0.0.1:{port}"), "sleep", "1500"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(server
        .wait_event("CALL", std::time::Duration::from_secs(5))
        .is_some());
    let _ = child.kill();
    let _ = child.wait();
    let (ok, v) = x_client(XClient::BoltNode, port, &["echo", "20", "8"]);
    assert!(ok, "{v}");
    assert_all_matched(&v, 20, "A");
    // The upstream dies with a call in flight.
    let caller = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let r = x_client_args(
            XClient::BoltNode,
            &[
                "--timeout",
                "8000",
                &format!("127.0.0.1:{port}"),
                "sleep",
                "5000",
            ],
            CLIENT_LIMIT,
        );
        (r, started.elapsed())
    });
    std::thread::sleep(std::time::Duration::from_millis(800));
    let _ = server.child.kill();
    let ((ok, v), took) = caller.join().unwrap();
    assert!(!ok, "{v}");
    assert!(
        took < std::time::Duration::from_secs(4),
        "answered when the upstream closed, not at the client's 8 s timeout: {took:?} {v}"
    );
}

/// SIGTERM with a call in flight: the proxy stops taking requests, the call's answer
/// still reaches its client, then the proxy exits.
#[test]
fn sigterm_lets_calls_in_flight_finish() {
    let Some(_) = node_peers() else { return };
    let server = XServer::bolt("G");
    let (mut m, port, _) = rpc_proxy(any_service("c"), &[("c", server.port)], "bolt");
    let caller = std::thread::spawn(move || {
        x_client_args(
            XClient::BoltNode,
            &[
                "--timeout",
                "5000",
                &format!("127.0.0.1:{port}"),
                "sleep",
                "1500",
            ],
            CLIENT_LIMIT,
        )
    });
    assert!(server
        .wait_event("CALL", std::time::Duration::from_secs(5))
        .is_some());
    m.signal(15);
    let (ok, v) = caller.join().unwrap();
    assert!(ok, "the answer arrived after SIGTERM: {v}");
    assert_eq!(m.wait_exit(std::time::Duration::from_secs(10)), Some(0));
}

/// A malformed or oversized frame closes that client's connection only; others go on.
#[test]
fn bad_frames_close_only_their_connection() {
    use std::io::Write;
    let Some(_) = node_peers() else { return };
    let server = XServer::bolt("B");
    let (_m, port, _) = rpc_proxy(any_service("c"), &[("c", server.port)], "bolt");
    let good = std::thread::spawn(move || x_client(XClient::BoltNode, port, &["echo", "200", "8"]));
    for bad in [
        // Bolt protocol byte, then an unknown command type.
        &[
            0x01u8, 0x09, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ][..],
        // A request announcing 1 GiB of content (over the 16 MiB default limit).
        &[
            0x01, 0x01, 0, 1, 1, 0, 0, 0, 2, 1, 0, 0, 0x0b, 0xb8, 0, 0, 0, 0, 0x40, 0, 0, 0,
        ][..],
    ] {
        let mut s = connect(port);
        s.write_all(bad).unwrap();
        assert!(
            closed_within(&mut s, std::time::Duration::from_secs(5)),
            "{bad:?}"
        );
    }
    let (ok, v) = good.join().unwrap();
    assert!(ok, "{v}");
    assert_all_matched(&v, 200, "B");
}

/// MOSN's keepalive (`clusters[].keepalive`): an upstream that stops answering
/// heartbeats has its connection closed after six misses, and the call waiting on it
/// is answered then rather than at the client's own (long) timeout.
#[test]
fn an_upstream_that_ignores_heartbeats_is_dropped() {
    use std::io::Read;
    let Some(_) = node_peers() else { return };
    // Takes bytes, never answers (a hung server).
    let silent = Upstream::start(|mut s| {
        let mut buf = [0u8; 4096];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    let (port, admin) = (free_port(), free_port());
    let config = json!({
        "servers": [{"default_log_path": "stderr", "processor": 1,
            "routers": [{"router_config_name": "r", "virtual_hosts": [{"name": "h", "domains": ["*"], "routers": any_service("c")}]}],
            "listeners": [{"name": "l", "address": format!("127.0.0.1:{port}"), "bind_port": true,
                "filter_chains": [{"filters": [{"type": "proxy", "config": {"downstream_protocol": "bolt", "router_config_name": "r"}}]}]}]}],
        "cluster_manager": {"clusters": [{"name": "c", "type": "SIMPLE", "lb_type": "LB_RANDOM",
            "keepalive": {"interval": "200ms", "timeout": "100ms"},
            "hosts": [{"address": silent.addr.to_string()}]}]},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}
    });
    let _m = Mosn::start(&config.to_string(), &[port, admin]);
    let started = std::time::Instant::now();
    let (ok, v) = x_client_args(
        XClient::BoltNode,
        &[
            "--timeout",
            "10000",
            &format!("127.0.0.1:{port}"),
            "echo",
            "1",
            "1",
        ],
        CLIENT_LIMIT,
    );
    assert!(!ok, "{v}");
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "{took:?} {v}");
    assert!(
        !v.to_string().to_ascii_lowercase().contains("timeout"),
        "{v}"
    );
}
