//! The MOSN v2 JSON model. Field names are MOSN's JSON names; keys are matched
//! case-insensitively before this model sees them (see `keys::normalize_keys`), as
//! Go's encoding/json does.

use crate::duration::GoDuration;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn is_false(b: &bool) -> bool {
    !*b
}

/// Declares a config struct that also carries the four header-mutation lists
/// (valid at router, virtual host, route and route-action level). Not `#[serde(flatten)]`:
/// flattening would hide unknown keys and JSON paths from the loader.
macro_rules! with_header_mutations {
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($body)*
            #[serde(skip_serializing_if = "Vec::is_empty")]
            pub request_headers_to_add: Vec<HeaderValueOption>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            pub request_headers_to_remove: Vec<String>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            pub response_headers_to_add: Vec<HeaderValueOption>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            pub response_headers_to_remove: Vec<String>,
        }

        impl $name {
            /// The header lists of this level, as one value.
            pub fn header_mutations(&self) -> HeaderMutations {
                HeaderMutations {
                    request_headers_to_add: self.request_headers_to_add.clone(),
                    request_headers_to_remove: self.request_headers_to_remove.clone(),
                    response_headers_to_add: self.response_headers_to_add.clone(),
                    response_headers_to_remove: self.response_headers_to_remove.clone(),
                }
            }
        }
    };
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct MosnConfig {
    pub servers: Vec<ServerConfig>,
    pub cluster_manager: ClusterManagerConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminConfig>,
    #[serde(skip_serializing_if = "is_false")]
    pub disable_upgrade: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ServerConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_log_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_log_level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graceful_timeout: Option<GoDuration>,
    /// Worker count; 0 or absent means one per core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processor: Option<u32>,
    pub routers: Vec<RouterConfiguration>,
    pub listeners: Vec<ListenerConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ListenerConfig {
    pub name: String,
    pub address: String,
    #[serde(skip_serializing_if = "is_false")]
    pub bind_port: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_idle_timeout: Option<GoDuration>,
    pub filter_chains: Vec<FilterChainConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stream_filters: Vec<FilterConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_logs: Vec<AccessLogConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct FilterChainConfig {
    pub filters: Vec<FilterConfig>,
    /// Kept raw: TLS is not implemented yet, and validation refuses an enabled one.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub tls_context: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub tls_context_set: Value,
}

/// A filter as MOSN writes it: a type name and a free-form config object that the
/// filter's own parser reads (see `filters.rs`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct FilterConfig {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub config: Value,
    /// The typed form of `config`, filled by validation for the filters this build runs.
    #[serde(skip)]
    pub parsed: Option<crate::filters::NetworkFilter>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AccessLogConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
}

with_header_mutations! {
/// One entry of `servers[].routers[]`: a named route table.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RouterConfiguration {
    pub router_config_name: String,
    pub virtual_hosts: Vec<VirtualHostConfig>,
}
}

/// Header additions and removals, valid at router, virtual host and route level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderMutations {
    pub request_headers_to_add: Vec<HeaderValueOption>,
    pub request_headers_to_remove: Vec<String>,
    pub response_headers_to_add: Vec<HeaderValueOption>,
    pub response_headers_to_remove: Vec<String>,
}

impl HeaderMutations {
    pub fn is_empty(&self) -> bool {
        self.request_headers_to_add.is_empty()
            && self.request_headers_to_remove.is_empty()
            && self.response_headers_to_add.is_empty()
            && self.response_headers_to_remove.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct HeaderValueOption {
    pub header: HeaderValue,
    /// MOSN/Envoy: append to an existing value (true) or replace it (false).
    /// MOSN's default is append when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct HeaderValue {
    pub key: String,
    pub value: String,
}

with_header_mutations! {
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct VirtualHostConfig {
    pub name: String,
    pub domains: Vec<String>,
    pub routers: Vec<RouteConfig>,
}
}

with_header_mutations! {
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RouteConfig {
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<DirectResponse>,
}
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RouteMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// MOSN's default is case-sensitive matching.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_sensitive: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatcher>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct HeaderMatcher {
    pub name: String,
    pub value: String,
    #[serde(skip_serializing_if = "is_false")]
    pub regex: bool,
}

with_header_mutations! {
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RouteAction {
    pub cluster_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
}
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct DirectResponse {
    pub status: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub body: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ClusterManagerConfig {
    pub clusters: Vec<ClusterConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ClusterConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub lb_type: String,
    /// Requests per upstream connection before it is retired; 0 means unlimited.
    pub max_request_per_conn: u32,
    pub conn_buffer_limit_bytes: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<GoDuration>,
    pub hosts: Vec<HostConfig>,
    /// Kept raw: upstream TLS is not implemented yet, and validation refuses an enabled one.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub tls_context: Value,
    /// MOSN's circuit breaker thresholds; only the first entry applies (as in MOSN).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub circuit_breakers: Vec<CircuitBreakerThresholds>,
}

/// One `circuit_breakers[]` entry. Absent: Envoy's defaults (1024, 1024, 1024, 3);
/// an explicit 0: no limit, as MOSN reads 0.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct CircuitBreakerThresholds {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct HostConfig {
    pub address: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub metadata: Value,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AdminConfig {
    pub address: AdminAddress,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AdminAddress {
    pub socket_address: SocketAddressConfig,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct SocketAddressConfig {
    pub address: String,
    pub port_value: u16,
}
