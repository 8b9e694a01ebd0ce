//! MOSN's own RPC example configs, unchanged but for their ports, chained as MOSN's
//! samples are meant to run: client-side mosn-rs -> server-side mosn-rs -> the real
//! server, with the real client in front (sofa-rpc-node for
//! `sofarpc-with-xprotocol-sample`, dubbo-remoting and dubbo-ssl-python for `dubbo`).

mod common;

use common::corpus::{listening_ports, rewrite_ports};
use common::peers::*;
use common::rpc::assert_all_matched;
use common::*;
use std::collections::HashMap;

/// Starts `client_config.json` and `server_config.json` of a corpus sample with the
/// server config's upstream port (`upstream`) pointed at `server_port`; returns both
/// proxies and the client-side listener's port.
fn start_sample(sample: &str, upstream: u16, server_port: u16) -> Option<(Mosn, Mosn, u16)> {
    let corpus = require_mosn_corpus()?;
    let mut map = HashMap::from([(upstream, server_port)]);
    let mut started = Vec::new();
    for name in ["server_config.json", "client_config.json"] {
        let original = std::fs::read_to_string(corpus.join(sample).join(name)).unwrap();
        let text = rewrite_ports(&original, &mut map);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &text).unwrap();
        started.push(Mosn::start_file(&path, dir, &listening_ports(&value)));
    }
    let client = started.pop().unwrap();
    let server = started.pop().unwrap();
    Some((server, client, map[&2045]))
}

#[test]
fn mosn_sofarpc_sample_chain_serves_a_real_bolt_client() {
    let Some(_) = node_peers() else { return };
    let backend = XServer::bolt("S");
    let Some((_s, _c, port)) = start_sample("sofarpc-with-xprotocol-sample", 8080, backend.port)
    else {
        return;
    };
    let (ok, v) = x_client(XClient::BoltNode, port, &["echo", "100", "16"]);
    assert!(ok, "{v}");
    assert_all_matched(&v, 100, "S");
}

#[test]
fn mosn_dubbo_sample_chain_serves_real_dubbo_clients() {
    let Some(_) = node_peers() else { return };
    let Some(_) = dubbo_python() else { return };
    let backend = XServer::dubbo("T");
    let Some((_s, _c, port)) = start_sample("dubbo", 20880, backend.port) else {
        return;
    };
    for client in [XClient::DubboNode, XClient::DubboPython] {
        let (ok, v) = x_client(client, port, &["echo", "50", "8"]);
        assert!(ok, "{client:?}: {v}");
        assert_all_matched(&v, 50, "T");
    }
}
