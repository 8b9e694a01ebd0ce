//! MOSN's xDS bootstrap, which is Envoy's bootstrap shape
//! (../shared/mosn-configs/xds-server-sample/config.json): `node`,
//! `static_resources.clusters` (Envoy v3 JSON; the xDS server's cluster among them),
//! and `dynamic_resources` (`ads_config` naming that cluster, `lds_config` and
//! `cds_config` delivered over ADS). It may sit beside MOSN's own `servers` and
//! `cluster_manager` keys in one file.
//!
//! Static clusters are read into the MOSN cluster model directly (the bootstrap
//! subset: STATIC / STRICT_DNS / LOGICAL_DNS with a `load_assignment`, a connect
//! timeout, HTTP/2 options, a TLS transport socket with files); anything else in
//! them is refused with its JSON path, so a bootstrap never half-works.

use mosn_config::{ClusterConfig, ConfigIssue, GoDuration, HostConfig, MosnConfig};
use serde_json::{Map, Value};
use std::time::Duration;

/// What the xDS client runs with.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub node: NodeInfo,
    /// The static cluster of the xDS server.
    pub ads_cluster: String,
    /// Delta (incremental) xDS: Envoy's `DELTA_GRPC`, the default (as current Istio).
    /// `GRPC` picks state of the world.
    pub delta: bool,
    /// `static_resources.clusters`, in the MOSN model (the xDS server's included,
    /// unless it is a unix socket).
    pub static_clusters: Vec<ClusterConfig>,
    /// The xDS server's unix socket, when its cluster's endpoint is a `pipe` (Istio's
    /// pilot-agent serves `./etc/istio/proxy/XDS` this way).
    pub ads_pipe: Option<String>,
    /// How long a type may wait for its first answer before the proxy serves
    /// without it (Envoy's `initial_fetch_timeout`, default 15 s).
    pub initial_fetch_timeout: Duration,
}

/// Envoy's `node`, as Istio's pilot-agent writes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeInfo {
    pub id: String,
    pub cluster: String,
    /// `metadata`: free-form (Istio puts its labels, namespace, mesh id... here).
    pub metadata: Map<String, Value>,
    pub locality: Option<(String, String, String)>,
}

const BASE: &str = "dynamic_resources";

/// Reads the bootstrap keys of a config; None when it has no `dynamic_resources`
/// (a plain MOSN config). Errors name their JSON path.
pub fn parse(config: &MosnConfig) -> Result<Option<Bootstrap>, Vec<ConfigIssue>> {
    let Some(dynamic) = &config.dynamic_resources else {
        if config.static_resources.is_some() {
            return Err(vec![issue(
                "static_resources",
                "static_resources without dynamic_resources: put static clusters in cluster_manager.clusters",
            )]);
        }
        return Ok(None);
    };
    let mut issues = Vec::new();
    let node = parse_node(config.node.as_ref(), &mut issues);
    let (ads_cluster, delta) = parse_ads(dynamic, &mut issues);
    for key in ["lds_config", "cds_config"] {
        if let Some(source) = dynamic.get(key) {
            check_via_ads(source, &format!("{BASE}.{key}"), &mut issues);
        }
    }
    let initial_fetch_timeout = dynamic
        .get("lds_config")
        .and_then(|c| c.get("initial_fetch_timeout"))
        .and_then(|t| {
            duration(
                t,
                &format!("{BASE}.lds_config.initial_fetch_timeout"),
                &mut issues,
            )
        })
        .unwrap_or(Duration::from_secs(15));
    let mut static_clusters = Vec::new();
    let mut ads_pipe = None;
    if let Some(sr) = &config.static_resources {
        if let Some(obj) = sr.as_object() {
            for key in obj.keys().filter(|k| *k != "clusters") {
                issues.push(issue(
                    format!("static_resources.{key}"),
                    "not supported: MOSN's servers[].listeners hold static listeners",
                ));
            }
        }
        match sr.get("clusters") {
            None => {}
            Some(Value::Array(list)) => {
                for (i, c) in list.iter().enumerate() {
                    let is_ads = c.get("name").and_then(Value::as_str) == ads_cluster.as_deref();
                    if let Some(path) = pipe_of(c).filter(|_| is_ads) {
                        ads_pipe = Some(path);
                        continue;
                    }
                    let at = format!("static_resources.clusters[{i}]");
                    if let Some(c) = static_cluster(c, &at, &mut issues) {
                        static_clusters.push(c);
                    }
                }
            }
            Some(_) => issues.push(issue("static_resources.clusters", "must be a list")),
        }
    }
    if let Some(name) = &ads_cluster {
        let known = ads_pipe.is_some()
            || static_clusters.iter().any(|c| &c.name == name)
            || config
                .cluster_manager
                .clusters
                .iter()
                .any(|c| &c.name == name);
        if !known {
            issues.push(issue(
                format!("{BASE}.ads_config.grpc_services[0].envoy_grpc.cluster_name"),
                format!("no static cluster {name:?} (the xDS server's cluster)"),
            ));
        }
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(Some(Bootstrap {
        node,
        ads_cluster: ads_cluster.unwrap_or_default(),
        delta,
        static_clusters,
        ads_pipe,
        initial_fetch_timeout,
    }))
}

/// The unix socket path of a cluster whose (first) endpoint is a `pipe`.
fn pipe_of(cluster: &Value) -> Option<String> {
    cluster
        .get("load_assignment")?
        .get("endpoints")?
        .get(0)?
        .get("lb_endpoints")?
        .get(0)?
        .get("endpoint")?
        .get("address")?
        .get("pipe")?
        .get("path")?
        .as_str()
        .map(str::to_string)
}

fn issue(path: impl Into<String>, message: impl Into<String>) -> ConfigIssue {
    ConfigIssue {
        path: path.into(),
        message: message.into(),
    }
}

fn parse_node(node: Option<&Value>, issues: &mut Vec<ConfigIssue>) -> NodeInfo {
    let Some(node) = node else {
        issues.push(issue("node", "the xDS client needs a node (id, cluster)"));
        return NodeInfo::default();
    };
    let text = |key: &str| {
        node.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let info = NodeInfo {
        id: text("id"),
        cluster: text("cluster"),
        metadata: node
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        locality: node.get("locality").map(|l| {
            let f = |k: &str| l.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (f("region"), f("zone"), f("sub_zone"))
        }),
    };
    if info.id.is_empty() {
        issues.push(issue(
            "node.id",
            "required (Istio: sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local)",
        ));
    }
    info
}

/// `ads_config`: its cluster and its variant.
fn parse_ads(dynamic: &Value, issues: &mut Vec<ConfigIssue>) -> (Option<String>, bool) {
    let path = format!("{BASE}.ads_config");
    let Some(ads) = dynamic.get("ads_config") else {
        issues.push(issue(&path, "required: mosn-rs speaks xDS over ADS only"));
        return (None, true);
    };
    let delta = match ads.get("api_type").and_then(Value::as_str) {
        None | Some("DELTA_GRPC") | Some("AGGREGATED_DELTA_GRPC") => true,
        Some("GRPC") | Some("AGGREGATED_GRPC") => false,
        Some(other) => {
            issues.push(issue(
                format!("{path}.api_type"),
                format!("{other:?}: ADS needs GRPC or DELTA_GRPC"),
            ));
            true
        }
    };
    if let Some(v) = ads.get("transport_api_version").and_then(Value::as_str) {
        if v != "V3" {
            issues.push(issue(
                format!("{path}.transport_api_version"),
                "only V3 exists",
            ));
        }
    }
    let cluster = ads
        .get("grpc_services")
        .and_then(Value::as_array)
        .and_then(|s| s.first())
        .and_then(|s| s.get("envoy_grpc"))
        .and_then(|g| g.get("cluster_name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if cluster.is_none() {
        issues.push(issue(
            format!("{path}.grpc_services[0].envoy_grpc.cluster_name"),
            "required: the static cluster of the xDS server",
        ));
    }
    (cluster, delta)
}

/// `lds_config` / `cds_config` must come over the ADS stream.
fn check_via_ads(source: &Value, path: &str, issues: &mut Vec<ConfigIssue>) {
    if source.get("ads").is_some() {
        return;
    }
    // MOSN's sample gives an api_config_source to the same cluster: that is ADS here.
    if source.get("api_config_source").is_some() {
        return;
    }
    if source.get("path").is_some() || source.get("path_config_source").is_some() {
        issues.push(issue(path, "file-based xDS is not supported: use ADS"));
    }
}

/// Envoy's duration JSON ("1s", "0.250s") or MOSN's Go form ("250ms").
fn duration(v: &Value, path: &str, issues: &mut Vec<ConfigIssue>) -> Option<Duration> {
    let Some(text) = v.as_str() else {
        issues.push(issue(path, "a duration string such as \"1s\""));
        return None;
    };
    if let Some(secs) = text.strip_suffix('s').and_then(|s| s.parse::<f64>().ok()) {
        if secs >= 0.0 && secs.is_finite() {
            return Some(Duration::from_secs_f64(secs));
        }
    }
    match serde_json::from_value::<GoDuration>(Value::String(text.to_string())) {
        Ok(d) => Some(d.0),
        Err(_) => {
            issues.push(issue(path, format!("bad duration {text:?}")));
            None
        }
    }
}

/// One `static_resources.clusters[i]` (Envoy v3 JSON) in the MOSN model.
fn static_cluster(c: &Value, path: &str, issues: &mut Vec<ConfigIssue>) -> Option<ClusterConfig> {
    let Some(obj) = c.as_object() else {
        issues.push(issue(path, "must be an object"));
        return None;
    };
    let before = issues.len();
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        issues.push(issue(format!("{path}.name"), "required"));
    }
    let kind = match obj.get("type").and_then(Value::as_str).unwrap_or("STATIC") {
        "STATIC" => "SIMPLE",
        "STRICT_DNS" | "LOGICAL_DNS" => "STRICT_DNS",
        other => {
            issues.push(issue(
                format!("{path}.type"),
                format!("{other:?}: a bootstrap cluster is STATIC, STRICT_DNS or LOGICAL_DNS"),
            ));
            "SIMPLE"
        }
    };
    let mut cluster = ClusterConfig {
        name,
        kind: kind.to_string(),
        lb_type: "LB_ROUNDROBIN".into(),
        ..ClusterConfig::default()
    };
    for (key, value) in obj {
        let at = format!("{path}.{key}");
        match key.as_str() {
            "name" | "type" => {}
            "connect_timeout" => {
                cluster.connect_timeout = duration(value, &at, issues).map(GoDuration);
            }
            "lb_policy" => match value.as_str() {
                Some("ROUND_ROBIN") => {}
                Some("RANDOM") => cluster.lb_type = "LB_RANDOM".into(),
                Some("LEAST_REQUEST") => cluster.lb_type = "LB_LEAST_REQUEST".into(),
                _ => issues.push(issue(at, "ROUND_ROBIN, RANDOM or LEAST_REQUEST")),
            },
            "load_assignment" => cluster.hosts = endpoints(value, &at, issues),
            // The xDS server speaks gRPC: HTTP/2 is how the client talks to it anyway.
            "http2_protocol_options" | "typed_extension_protocol_options" => {}
            "transport_socket" => cluster.tls_context = transport_socket(value, &at, issues),
            "dns_lookup_family" => {
                cluster.dns_lookup_family = value.as_str().unwrap_or("").to_string();
            }
            _ => issues.push(issue(at, "not supported in a bootstrap cluster")),
        }
    }
    (issues.len() == before).then_some(cluster)
}

fn endpoints(la: &Value, path: &str, issues: &mut Vec<ConfigIssue>) -> Vec<HostConfig> {
    let mut hosts = Vec::new();
    let groups = la
        .get("endpoints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (gi, group) in groups.iter().enumerate() {
        let lbs = group
            .get("lb_endpoints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (ei, lb) in lbs.iter().enumerate() {
            let at = format!("{path}.endpoints[{gi}].lb_endpoints[{ei}].endpoint.address");
            let address = lb.get("endpoint").and_then(|e| e.get("address"));
            let sa = address.and_then(|a| a.get("socket_address"));
            let (Some(host), Some(port)) = (
                sa.and_then(|s| s.get("address")).and_then(Value::as_str),
                sa.and_then(|s| s.get("port_value")).and_then(Value::as_u64),
            ) else {
                let message = if address.and_then(|a| a.get("pipe")).is_some() {
                    "a unix socket (pipe) is not supported yet: use a socket_address"
                } else {
                    "socket_address with address and port_value required"
                };
                issues.push(issue(at, message));
                continue;
            };
            let address = match host.parse::<std::net::Ipv6Addr>() {
                Ok(_) => format!("[{host}]:{port}"),
                Err(_) => format!("{host}:{port}"),
            };
            hosts.push(HostConfig {
                address,
                weight: lb
                    .get("load_balancing_weight")
                    .and_then(Value::as_u64)
                    .map(|w| w as u32),
                ..HostConfig::default()
            });
        }
    }
    if hosts.is_empty() {
        issues.push(issue(format!("{path}.endpoints"), "at least one endpoint"));
    }
    hosts
}

/// `envoy.transport_sockets.tls` with an UpstreamTlsContext using files (or inline PEM).
fn transport_socket(
    ts: &Value,
    path: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Option<mosn_config::tls::TlsConfig> {
    let cfg = ts.get("typed_config");
    let type_url = cfg
        .and_then(|c| c.get("@type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !type_url.ends_with("envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext") {
        issues.push(issue(
            format!("{path}.typed_config"),
            "only envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        ));
        return None;
    }
    let cfg = cfg?;
    let common = cfg.get("common_tls_context");
    let data = |v: Option<&Value>| -> String {
        let v = match v {
            Some(v) => v,
            None => return String::new(),
        };
        v.get("filename")
            .or_else(|| v.get("inline_string"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let cert = common
        .and_then(|c| c.get("tls_certificates"))
        .and_then(Value::as_array)
        .and_then(|l| l.first());
    let ca = common
        .and_then(|c| c.get("validation_context"))
        .and_then(|v| v.get("trusted_ca"));
    if common
        .and_then(|c| c.get("tls_certificate_sds_secret_configs"))
        .is_some()
    {
        issues.push(issue(
            format!("{path}.typed_config.common_tls_context.tls_certificate_sds_secret_configs"),
            "SDS for the xDS server's own connection is not supported: use files",
        ));
    }
    Some(mosn_config::tls::TlsConfig {
        status: true,
        server_name: cfg
            .get("sni")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        ca_cert: data(ca),
        cert_chain: data(cert.and_then(|c| c.get("certificate_chain"))),
        private_key: data(cert.and_then(|c| c.get("private_key"))),
        ..Default::default()
    })
}

impl NodeInfo {
    /// The `node` sent on the ADS stream.
    pub fn to_proto(&self) -> envoy_types::pb::envoy::config::core::v3::Node {
        use envoy_types::pb::envoy::config::core::v3::{
            node::UserAgentVersionType, Locality, Node,
        };
        Node {
            id: self.id.clone(),
            cluster: self.cluster.clone(),
            metadata: (!self.metadata.is_empty()).then(|| json_struct(&self.metadata)),
            locality: self
                .locality
                .as_ref()
                .map(|(region, zone, sub_zone)| Locality {
                    region: region.clone(),
                    zone: zone.clone(),
                    sub_zone: sub_zone.clone(),
                }),
            user_agent_name: "mosn-rs".into(),
            user_agent_version_type: Some(UserAgentVersionType::UserAgentVersion(
                env!("CARGO_PKG_VERSION").into(),
            )),
            ..Default::default()
        }
    }
}

/// A JSON object as a google.protobuf.Struct.
pub fn json_struct(map: &Map<String, Value>) -> envoy_types::pb::google::protobuf::Struct {
    envoy_types::pb::google::protobuf::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_value(v)))
            .collect(),
    }
}

fn json_value(v: &Value) -> envoy_types::pb::google::protobuf::Value {
    use envoy_types::pb::google::protobuf::{value::Kind, ListValue};
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_value).collect(),
        }),
        Value::Object(m) => Kind::StructValue(json_struct(m)),
    };
    envoy_types::pb::google::protobuf::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Option<Bootstrap>, Vec<ConfigIssue>> {
        let loaded = mosn_config::load_str(text).map_err(|e| vec![issue("load", e.to_string())])?;
        parse(&loaded.config)
    }

    #[test]
    fn mosns_xds_sample_reads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/mosn-configs/xds-server-sample/config.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("skipping: no MOSN corpus at {}", path.display());
            return;
        };
        let b = load(&text).unwrap().unwrap();
        assert_eq!(b.ads_cluster, "xds_cluster");
        assert!(!b.delta, "the sample says GRPC");
        assert_eq!(b.node.id, "test-id");
        assert_eq!(b.node.cluster, "test-cluster");
        assert_eq!(b.static_clusters.len(), 1);
        let c = &b.static_clusters[0];
        assert_eq!(c.hosts[0].address, "127.0.0.1:9002");
        assert_eq!(c.connect_timeout.map(|d| d.0), Some(Duration::from_secs(1)));
    }

    #[test]
    fn delta_is_the_default_and_errors_name_their_path() {
        let ok = r#"{"node": {"id": "n"},
            "dynamic_resources": {"ads_config": {"grpc_services": [{"envoy_grpc": {"cluster_name": "x"}}]}},
            "static_resources": {"clusters": [{"name": "x", "load_assignment": {"endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "::1", "port_value": 15010}}}}]}]}}]}}"#;
        let b = load(ok).unwrap().unwrap();
        assert!(b.delta);
        assert_eq!(b.static_clusters[0].hosts[0].address, "[::1]:15010");
        let bad = r#"{"node": {},
            "dynamic_resources": {"ads_config": {"api_type": "REST", "grpc_services": [{"envoy_grpc": {"cluster_name": "y"}}]}},
            "static_resources": {"clusters": [{"name": "x", "type": "EDS", "upstream_bind_config": {}}], "listeners": []}}"#;
        let issues = load(bad).unwrap_err();
        let text: Vec<String> = issues.iter().map(|i| i.path.clone()).collect();
        for want in [
            "node.id",
            "dynamic_resources.ads_config.api_type",
            "static_resources.listeners",
            "static_resources.clusters[0].type",
            "static_resources.clusters[0].upstream_bind_config",
            "dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name",
        ] {
            assert!(
                text.iter().any(|p| p == want),
                "{want} missing from {text:?}"
            );
        }
    }
}
