//! The admin API: a small HTTP/1.1 server on `admin.address`, separate from the data
//! path and running on the control thread. It reuses the proxy's HTTP/1 parser.
//! Reads are GET; changes are POST only. See docs/admin.md.

mod http;

use mosn_config::{ClusterConfig, HostConfig};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::net::TcpListener;

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

/// Why a change was refused: the status to answer and a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    BadRequest(String),
    NotFound(String),
}

/// What the admin API reads and changes.
pub struct AdminState {
    /// The running config, already rendered as JSON.
    pub config: Arc<Value>,
    /// Renders the stats document on demand.
    pub stats: Box<dyn Fn() -> Value + Send + Sync>,
    pub clusters: Arc<dyn ClusterAdmin>,
}

/// Accepts admin connections until the listener fails.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    http::serve(listener, state).await
}

/// The response to one request, as (status, JSON body).
pub fn route(method: &[u8], path: &[u8], body: &[u8], state: &AdminState) -> (u16, Value) {
    let endpoint = ENDPOINTS.iter().find(|e| e.path.as_bytes() == path);
    let Some(endpoint) = endpoint else {
        return (
            404,
            json!({"error": "unknown admin path", "paths": ENDPOINTS.iter().map(|e| e.path).collect::<Vec<_>>()}),
        );
    };
    if method != endpoint.method.as_bytes() {
        return (405, json!({"error": format!("use {}", endpoint.method)}));
    }
    match (endpoint.handler)(state, body) {
        Ok(v) => (200, v),
        Err(AdminError::BadRequest(m)) => (400, json!({"error": m})),
        Err(AdminError::NotFound(m)) => (404, json!({"error": m})),
    }
}

type Handler = fn(&AdminState, &[u8]) -> Result<Value, AdminError>;

struct Endpoint {
    method: &'static str,
    path: &'static str,
    handler: Handler,
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "GET",
        path: "/api/v1/config_dump",
        handler: |s, _| Ok((*s.config).clone()),
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/stats",
        handler: |s, _| Ok((s.stats)()),
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/clusters",
        handler: |s, _| Ok(s.clusters.clusters()),
    },
    Endpoint {
        method: "POST",
        path: "/api/v1/update_cluster",
        handler: update_cluster,
    },
    Endpoint {
        method: "POST",
        path: "/api/v1/delete_cluster",
        handler: delete_cluster,
    },
    Endpoint {
        method: "POST",
        path: "/api/v1/update_hosts",
        handler: update_hosts,
    },
];

fn body_json(body: &[u8]) -> Result<Value, AdminError> {
    serde_json::from_slice(body)
        .map_err(|e| AdminError::BadRequest(format!("body is not JSON: {e}")))
}

fn typed<T: serde::de::DeserializeOwned>(value: &Value, what: &str) -> Result<T, AdminError> {
    mosn_config::parse_value::<T>(value, what)
        .map(|(v, _)| v)
        .map_err(|errors| {
            AdminError::BadRequest(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
}

/// Body: one cluster in MOSN's JSON shape.
fn update_cluster(state: &AdminState, body: &[u8]) -> Result<Value, AdminError> {
    let cfg: ClusterConfig = typed(&body_json(body)?, "cluster")?;
    let warnings = state.clusters.update_cluster(cfg)?;
    Ok(json!({"status": "ok", "warnings": warnings}))
}

/// Body: `{"name": "cluster"}`.
fn delete_cluster(state: &AdminState, body: &[u8]) -> Result<Value, AdminError> {
    let v = body_json(body)?;
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| AdminError::BadRequest("body needs \"name\"".into()))?;
    state.clusters.delete_cluster(name)?;
    Ok(json!({"status": "ok"}))
}

/// Body: `{"cluster": "name", "hosts": [{"address": "IP:port", ...}]}`.
fn update_hosts(state: &AdminState, body: &[u8]) -> Result<Value, AdminError> {
    let v = body_json(body)?;
    let name = v
        .get("cluster")
        .and_then(Value::as_str)
        .ok_or_else(|| AdminError::BadRequest("body needs \"cluster\"".into()))?;
    let hosts: Vec<HostConfig> = typed(v.get("hosts").unwrap_or(&Value::Null), "hosts")?;
    state.clusters.update_hosts(name, hosts)?;
    Ok(json!({"status": "ok"}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Fake {
        updated: Mutex<Vec<String>>,
    }

    /// A stand-in for the cluster manager: the admin routing is what is under test here;
    /// the real manager is exercised by the black-box tests.
    impl ClusterAdmin for Fake {
        fn clusters(&self) -> Value {
            json!([{"name": "c"}])
        }
        fn update_cluster(&self, cfg: ClusterConfig) -> Result<Vec<String>, AdminError> {
            self.updated.lock().unwrap().push(cfg.name);
            Ok(vec![])
        }
        fn delete_cluster(&self, name: &str) -> Result<(), AdminError> {
            if name == "c" {
                Ok(())
            } else {
                Err(AdminError::NotFound(format!("no cluster named {name:?}")))
            }
        }
        fn update_hosts(&self, _: &str, hosts: Vec<HostConfig>) -> Result<(), AdminError> {
            assert_eq!(hosts.len(), 1);
            Ok(())
        }
    }

    fn state() -> (AdminState, Arc<Fake>) {
        let fake = Arc::new(Fake::default());
        let state = AdminState {
            config: Arc::new(json!({"servers": []})),
            stats: Box::new(|| json!({"listener": {}})),
            clusters: fake.clone(),
        };
        (state, fake)
    }

    #[test]
    fn reads_are_get_and_changes_are_post() {
        let (s, fake) = state();
        assert_eq!(route(b"GET", b"/api/v1/stats", b"", &s).0, 200);
        assert_eq!(route(b"GET", b"/api/v1/config_dump", b"", &s).0, 200);
        assert_eq!(route(b"POST", b"/api/v1/stats", b"", &s).0, 405);
        assert_eq!(route(b"GET", b"/api/v1/update_cluster", b"", &s).0, 405);
        assert_eq!(route(b"GET", b"/nope", b"", &s).0, 404);
        let (status, _) = route(
            b"POST",
            b"/api/v1/update_cluster",
            br#"{"Name": "new", "hosts": []}"#,
            &s,
        );
        assert_eq!(status, 200);
        assert_eq!(fake.updated.lock().unwrap().as_slice(), ["new"]);
    }

    #[test]
    fn bad_bodies_get_400_with_a_reason() {
        let (s, _) = state();
        let (status, body) = route(b"POST", b"/api/v1/update_cluster", b"{nope", &s);
        assert_eq!(status, 400);
        assert!(body["error"].as_str().unwrap().contains("not JSON"));
        let (status, body) = route(
            b"POST",
            b"/api/v1/update_cluster",
            br#"{"name": "x", "hosts": "no"}"#,
            &s,
        );
        assert_eq!(status, 400);
        assert!(
            body["error"].as_str().unwrap().starts_with("cluster.hosts"),
            "{body}"
        );
        assert_eq!(
            route(b"POST", b"/api/v1/delete_cluster", br#"{"name": "zz"}"#, &s).0,
            404
        );
        assert_eq!(
            route(b"POST", b"/api/v1/delete_cluster", br#"{}"#, &s).0,
            400
        );
        assert_eq!(
            route(
                b"POST",
                b"/api/v1/update_hosts",
                br#"{"cluster": "c", "hosts": [{"address": "127.0.0.1:1"}]}"#,
                &s
            )
            .0,
            200
        );
    }
}
