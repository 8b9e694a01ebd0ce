//! The admin API: a small HTTP/1.1 server on `admin.address`, separate from the data
//! path and running on the control thread. It reuses the proxy's HTTP/1 parser.
//! MOSN's `/api/v1/...` paths and Envoy's (`/ready`, `/clusters`, ...). Reads are GET;
//! changes are POST only (405 with `Allow` otherwise). Also the Prometheus endpoint of
//! MOSN's `metrics.sinks` ([`serve_metrics`]). See docs/admin.md.

mod envoy;
mod handlers;
mod http;
mod request;

pub use request::{Reply, Request};

use mosn_config::{ClusterConfig, HostConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Cluster changes at runtime, implemented by the process over its cluster manager.
/// Errors are messages for the API client.
pub trait ClusterAdmin: Send + Sync {
    /// Every cluster with its hosts, their health and counters, and its breakers.
    fn clusters(&self) -> Value;
    /// Adds or replaces a cluster; returns warnings.
    fn update_cluster(&self, cfg: ClusterConfig) -> Result<Vec<String>, AdminError>;
    fn delete_cluster(&self, name: &str) -> Result<(), AdminError>;
    fn update_hosts(&self, cluster: &str, hosts: Vec<HostConfig>) -> Result<(), AdminError>;
}

/// The process's loggers, as MOSN's log API sees them: each named by its output path
/// (`default_log_path`: a file, "stdout" or "stderr").
pub trait LogControl: Send + Sync {
    /// Each logger's path and level (MOSN's level names).
    fn loggers(&self) -> BTreeMap<String, String>;
    /// Sets the level of the logger at `path` ("" names the process log). `level` is
    /// one of MOSN's names, upper case. Takes effect at once.
    fn set_level(&self, path: &str, level: &str) -> Result<(), AdminError>;
    /// Silences (`false`) or resumes (`true`) the logger at `path`.
    fn set_enabled(&self, path: &str, enabled: bool) -> Result<(), AdminError>;
}

/// Why a change was refused: the status to answer and a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    BadRequest(String),
    NotFound(String),
}

/// The server's lifecycle as the admin API reports and drives it: live or draining,
/// health checks failed by `/healthcheck/fail`, and a stop asked for by
/// `/quitquitquit`.
#[derive(Debug)]
pub struct Lifecycle {
    started: Instant,
    draining: AtomicBool,
    health_check_failed: AtomicBool,
    stop: Notify,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            started: Instant::now(),
            draining: AtomicBool::new(false),
            health_check_failed: AtomicBool::new(false),
            stop: Notify::new(),
        }
    }
}

/// MOSN's stage manager states (`pkg/stagemanager`) that mosn-rs passes through while
/// the admin API serves.
pub const MOSN_STATE_RUNNING: u8 = 6;
pub const MOSN_STATE_GRACEFUL_STOPPING: u8 = 8;

impl Lifecycle {
    pub fn new() -> Self {
        Self::default()
    }

    /// The process has begun its graceful stop.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn set_health_check_failed(&self, failed: bool) {
        self.health_check_failed.store(failed, Ordering::Release);
    }

    pub fn health_check_failed(&self) -> bool {
        self.health_check_failed.load(Ordering::Acquire)
    }

    /// Envoy's server state: `LIVE`, or `DRAINING` while stopping or while health
    /// checks are failed (Envoy's `serverState`).
    pub fn state(&self) -> &'static str {
        if self.is_draining() || self.health_check_failed() {
            "DRAINING"
        } else {
            "LIVE"
        }
    }

    /// MOSN's state code (`/api/v1/states`).
    pub fn mosn_state(&self) -> u8 {
        if self.is_draining() {
            MOSN_STATE_GRACEFUL_STOPPING
        } else {
            MOSN_STATE_RUNNING
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Asks the process to stop gracefully (as SIGTERM does).
    pub fn request_stop(&self) {
        self.stop.notify_one();
    }

    /// Completes once a stop has been asked for.
    pub async fn stop_requested(&self) {
        self.stop.notified().await
    }
}

/// A listener as `/listeners` shows it.
#[derive(Debug, Clone)]
pub struct ListenerInfo {
    pub name: String,
    pub address: String,
}

/// Facts about the process for `/server_info` and `/api/v1/version`.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    pub version: String,
    /// The config file, or empty for the bundled quickstart.
    pub config_path: String,
    pub concurrency: usize,
    pub listeners: Vec<ListenerInfo>,
}

/// What the admin API reads and changes.
pub struct AdminState {
    /// Renders the running config as JSON (secrets are redacted on output); with xDS,
    /// what the control plane applied is in it.
    pub config: Box<dyn Fn() -> Value + Send + Sync>,
    /// The xDS client's state (connection, last ACK/NACK per type); None without xDS.
    pub xds: Option<Box<dyn Fn() -> Value + Send + Sync>>,
    /// Renders the stats document on demand.
    pub stats: Box<dyn Fn() -> Value + Send + Sync>,
    /// Renders every stat in Prometheus's text format.
    pub prometheus: Box<dyn Fn() -> String + Send + Sync>,
    pub clusters: Arc<dyn ClusterAdmin>,
    pub logs: Arc<dyn LogControl>,
    pub lifecycle: Arc<Lifecycle>,
    pub info: ServerInfo,
}

/// Accepts admin connections until the listener fails.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    http::serve(listener, Arc::new(move |req: &Request| route(&state, req))).await
}

/// Serves Prometheus's text at `endpoint` (MOSN's `metrics.sinks[].config`), rendered
/// by `render` on each scrape.
pub async fn serve_metrics(
    listener: TcpListener,
    endpoint: String,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) {
    http::serve(
        listener,
        Arc::new(move |req: &Request| {
            if req.path != endpoint {
                return Reply::text(404, format!("not found: metrics are at {endpoint}\n"));
            }
            if req.method != "GET" {
                return Reply::text(405, "use GET\n").allow("GET");
            }
            Reply::new(
                200,
                mosn_observe::prometheus::CONTENT_TYPE,
                render().into_bytes(),
            )
        }),
    )
    .await
}

/// The response to one request.
pub fn route(state: &AdminState, req: &Request) -> Reply {
    let Some(endpoint) = ENDPOINTS.iter().find(|e| e.path == req.path) else {
        return Reply::json(
            404,
            &json!({"error": format!("unknown admin path {:?}", req.path), "paths": ENDPOINTS.iter().map(|e| e.path).collect::<Vec<_>>()}),
        );
    };
    if req.method != endpoint.method {
        return Reply::json(
            405,
            &json!({"error": format!("{} takes {} only", endpoint.path, endpoint.method)}),
        )
        .allow(endpoint.method);
    }
    if let Some((name, _)) = req
        .query
        .iter()
        .find(|(k, _)| !endpoint.params.contains(&k.as_str()))
    {
        let takes = if endpoint.params.is_empty() {
            "no parameters".to_string()
        } else {
            endpoint.params.join(", ")
        };
        return Reply::error(
            400,
            format!(
                "unknown parameter {name:?} ({} takes {takes})",
                endpoint.path
            ),
        );
    }
    match (endpoint.handler)(state, req) {
        Ok(reply) => reply,
        Err(AdminError::BadRequest(m)) => Reply::error(400, m),
        Err(AdminError::NotFound(m)) => Reply::error(404, m),
    }
}

type Handler = fn(&AdminState, &Request) -> Result<Reply, AdminError>;

struct Endpoint {
    method: &'static str,
    path: &'static str,
    /// Query parameters it takes; any other is refused with 400.
    params: &'static [&'static str],
    help: &'static str,
    handler: Handler,
}

const fn get(path: &'static str, help: &'static str, handler: Handler) -> Endpoint {
    Endpoint {
        method: "GET",
        path,
        params: &[],
        help,
        handler,
    }
}

const fn post(path: &'static str, help: &'static str, handler: Handler) -> Endpoint {
    Endpoint {
        method: "POST",
        path,
        params: &[],
        help,
        handler,
    }
}

const fn with_params(mut e: Endpoint, params: &'static [&'static str]) -> Endpoint {
    e.params = params;
    e
}

use handlers as h;

const ENDPOINTS: &[Endpoint] = &[
    get("/", "this list", h::index),
    get(
        "/api/v1/config_dump",
        "the running config as JSON (inline private keys and session ticket keys redacted)",
        h::config_dump,
    ),
    get(
        "/xds",
        "the xDS client: server, variant (sotw/delta), connection, and per type the version last ACKed and the last NACK with its reason",
        h::xds,
    ),
    get(
        "/api/v1/stats",
        "counters, gauges and request-time histograms per listener and per cluster (with hosts and circuit breakers) as JSON",
        h::stats,
    ),
    with_params(
        get(
            "/api/v1/stats_glob",
            "listener totals as name:value lines; ?pattern=GLOB: every stat whose dotted name matches (* and ?)",
            h::stats_glob,
        ),
        &["pattern"],
    ),
    get(
        "/stats/prometheus",
        "every stat in Prometheus's text format",
        h::prometheus,
    ),
    get(
        "/api/v1/clusters",
        "clusters with balancer, panic mode, hosts (health, counters) and breakers as JSON",
        h::clusters_json,
    ),
    post(
        "/api/v1/update_cluster",
        "body: one cluster in MOSN's JSON shape; adds it or replaces the cluster of that name",
        h::update_cluster,
    ),
    post(
        "/api/v1/delete_cluster",
        "body: {\"name\": \"NAME\"}; removes the cluster",
        h::delete_cluster,
    ),
    post(
        "/api/v1/update_hosts",
        "body: {\"cluster\": \"NAME\", \"hosts\": [...]}; replaces the cluster's hosts",
        h::update_hosts,
    ),
    get(
        "/api/v1/get_loglevel",
        "each logger's level as JSON {path: level}",
        h::get_loglevel,
    ),
    post(
        "/api/v1/update_loglevel",
        "body: {\"log_path\": PATH, \"log_level\": LEVEL}; changes the logger's level at once",
        h::update_loglevel,
    ),
    post(
        "/api/v1/enable_log",
        "body: a logger path; resumes that logger",
        h::enable_log,
    ),
    post(
        "/api/v1/disable_log",
        "body: a logger path; silences that logger",
        h::disable_log,
    ),
    get(
        "/api/v1/states",
        "pid and MOSN's state code: pid=N&state=6 (running) or 8 (graceful stopping)",
        h::states,
    ),
    with_params(
        get(
            "/api/v1/features",
            "MOSN's feature gates as JSON; ?key=NAME: true or false",
            h::features,
        ),
        &["key"],
    ),
    get("/api/v1/version", "the version", h::version),
    with_params(
        get(
            "/api/v1/env",
            "?key=NAME (repeatable): those environment variables as JSON",
            h::env,
        ),
        &["key"],
    ),
    get(
        "/ready",
        "200 LIVE while serving; 503 DRAINING while stopping or after /healthcheck/fail",
        h::ready,
    ),
    get(
        "/server_info",
        "version, state, uptime and command-line options as JSON",
        h::server_info,
    ),
    with_params(
        get(
            "/clusters",
            "hosts with health, weight and counters as cluster::host::field::value lines; ?format=json",
            envoy::clusters,
        ),
        &["format"],
    ),
    with_params(
        get(
            "/listeners",
            "listeners as name::address lines; ?format=json",
            envoy::listeners,
        ),
        &["format"],
    ),
    post(
        "/healthcheck/fail",
        "fail readiness: /ready answers 503 so load balancers take this instance out",
        h::healthcheck_fail,
    ),
    post(
        "/healthcheck/ok",
        "pass readiness again after /healthcheck/fail",
        h::healthcheck_ok,
    ),
    post(
        "/quitquitquit",
        "stop gracefully, as SIGTERM does (exit 0)",
        h::quit,
    ),
];

#[cfg(test)]
mod tests;
