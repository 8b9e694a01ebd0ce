//! MOSN's `use_original_dst` with iptables REDIRECT: a connection redirected to the
//! proxy's capturing listener is handed to the listener (bind_port false) of its
//! original destination, as an Istio sidecar's virtual listeners work; without one it
//! stays on the capturing listener. Runs in a network namespace of its own
//! (`unshare -n`, as root) so the iptables rule touches nothing else; needs root,
//! `unshare` and `iptables` (scripts/setup.sh installs it), else it skips (fails in CI).

mod common;

use std::process::Command;

fn can_run() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let tools = ["/usr/bin/unshare", "/usr/sbin/iptables", "/usr/bin/curl"]
        .iter()
        .all(|p| std::path::Path::new(p).exists());
    if root && tools {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "original_dst test needs root, unshare, iptables and curl (scripts/setup.sh)"
    );
    eprintln!("skipping: needs root, unshare, iptables and curl");
    false
}

/// Runs mosn-rs on `config` in a private network namespace where connections to
/// 127.0.0.1 ports 9080 and 9090 are redirected (iptables REDIRECT) to `capture`,
/// curls both ports, and returns the `A=...`/`B=...` lines and the proxy's log.
fn curl_redirected(config: &str, capture: u16) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.json"), config).unwrap();
    let script = format!(
        r#"set -e
ip link set lo up
iptables -t nat -A OUTPUT -p tcp -d 127.0.0.1 -m multiport --dports 9080,9090 -j REDIRECT --to-ports {capture}
{bin} start -c {dir}/c.json 2>{dir}/mosn.log &
pid=$!
for i in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:{capture}/ && break; sleep 0.05; done
echo "A=$(curl -s --max-time 5 http://127.0.0.1:9080/)"
echo "B=$(curl -s --max-time 5 http://127.0.0.1:9090/)"
kill $pid; wait $pid || true
"#,
        bin = env!("CARGO_BIN_EXE_mosn-rs"),
        dir = dir.path().display()
    );
    let out = Command::new("timeout")
        .args(["60", "unshare", "-n", "bash", "-c", &script])
        .output()
        .unwrap();
    let log = std::fs::read_to_string(dir.path().join("mosn.log")).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        format!("{log}\n{stderr}"),
    )
}

#[test]
fn redirected_connections_reach_the_listener_of_their_original_destination() {
    if !can_run() {
        return;
    }
    // Fixed ports: the namespace is private.
    let config = r#"{
  "servers": [{"default_log_path": "stderr", "processor": 1,
    "routers": [
      {"router_config_name": "outbound", "virtual_hosts": [{"name": "h", "domains": ["*"], "routers": [
        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": "capturing-listener"}}]}]},
      {"router_config_name": "virtual", "virtual_hosts": [{"name": "h", "domains": ["*"], "routers": [
        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": "virtual-listener"}}]}]}],
    "listeners": [
      {"name": "capture", "address": "127.0.0.1:15001", "bind_port": true, "use_original_dst": "redirect",
       "filter_chains": [{"filters": [{"type": "proxy", "config": {"downstream_protocol": "Http1", "router_config_name": "outbound"}}]}]},
      {"name": "svc", "address": "0.0.0.0:9080", "bind_port": false,
       "filter_chains": [{"filters": [{"type": "proxy", "config": {"downstream_protocol": "Http1", "router_config_name": "virtual"}}]}]}]
  }],
  "cluster_manager": {"clusters": []}
}"#;
    let (text, log) = curl_redirected(config, 15001);
    assert!(text.contains("A=virtual-listener"), "{text}\n{log}");
    // No listener on :9090 (not even 0.0.0.0:9090): the capturing listener serves it.
    assert!(text.contains("B=capturing-listener"), "{text}\n{log}");
    eprintln!("{text}");
}

/// `"hand_off": false` (Envoy's original_dst filter without use_original_dst, as
/// Istio's inbound listener on 15006): the destination is restored and this
/// listener's own filter chains, matched by destination port, serve the connection.
#[test]
fn restored_destinations_pick_this_listeners_chain_by_port() {
    if !can_run() {
        return;
    }
    let config = r#"{
  "servers": [{"default_log_path": "stderr", "processor": 1,
    "routers": [
      {"router_config_name": "app", "virtual_hosts": [{"name": "h", "domains": ["*"], "routers": [
        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": "inbound-9080"}}]}]},
      {"router_config_name": "other", "virtual_hosts": [{"name": "h", "domains": ["*"], "routers": [
        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": "inbound-other"}}]}]}],
    "listeners": [
      {"name": "virtualInbound", "address": "127.0.0.1:15006", "bind_port": true,
       "listener_filters": [{"type": "original_dst", "config": {"type": "redirect", "hand_off": false}}],
       "filter_chains": [
         {"filter_chain_match": {"destination_port": 9080},
          "filters": [{"type": "proxy", "config": {"downstream_protocol": "Http1", "router_config_name": "app"}}]},
         {"filters": [{"type": "proxy", "config": {"downstream_protocol": "Http1", "router_config_name": "other"}}]}]},
      {"name": "svc", "address": "0.0.0.0:9080", "bind_port": false,
       "filter_chains": [{"filters": [{"type": "proxy", "config": {"downstream_protocol": "Http1", "router_config_name": "other"}}]}]}]
  }],
  "cluster_manager": {"clusters": []}
}"#;
    let (text, log) = curl_redirected(config, 15006);
    // Port 9080: this listener's 9080 chain, not the listener "svc" on 0.0.0.0:9080.
    assert!(text.contains("A=inbound-9080"), "{text}\n{log}");
    assert!(text.contains("B=inbound-other"), "{text}\n{log}");
}
