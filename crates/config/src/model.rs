//! The MOSN v2 JSON model. Field names are MOSN's JSON names; keys are matched
//! case-insensitively before this model sees them (see `keys::normalize_keys`), as
//! Go's encoding/json does.

use crate::duration::GoDuration;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod health;
pub use health::*;

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
    /// MOSN's `metrics` (sinks: Prometheus).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<crate::metrics::MetricsConfig>,
    /// The xDS bootstrap (Envoy's shape, as MOSN reads it): read by crates/xds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_resources: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_resources: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<Value>,
    /// MOSN's `tracing` (drivers: SkyWalking, OpenTelemetry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<crate::tracing::TracingConfig>,
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
    /// MOSN: plaintext and TLS share the port; a TLS chain also takes connections
    /// that do not start with a TLS ClientHello, served without TLS.
    #[serde(skip_serializing_if = "is_false")]
    pub inspector: bool,
    /// MOSN: `"redirect"` or `"tproxy"` (or the older `true`): hand connections to the
    /// listener of their original destination.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub use_original_dst: Value,
    /// `original_dst` (MOSN) and `proxy_protocol` (Envoy).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listener_filters: Vec<FilterConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stream_filters: Vec<FilterConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_logs: Vec<AccessLogConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct FilterChainConfig {
    pub filters: Vec<FilterConfig>,
    /// Envoy's criteria for which connections this chain takes (none: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_chain_match: Option<crate::tls::FilterChainMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_context: Option<crate::tls::TlsConfig>,
    /// Several certificates, chosen by SNI; the first is the default.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_context_set: Vec<crate::tls::TlsConfig>,
}

impl FilterChainConfig {
    /// The chain's enabled TLS contexts: `tls_context_set`, else `tls_context`.
    pub fn tls_contexts(&self) -> Vec<&crate::tls::TlsConfig> {
        let set: Vec<_> = self.tls_context_set.iter().filter(|t| t.status).collect();
        if !set.is_empty() {
            return set;
        }
        self.tls_context.iter().filter(|t| t.status).collect()
    }
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
    /// mosn-rs extension: one JSON object per line, keyed by variable name.
    #[serde(skip_serializing_if = "is_false")]
    pub json: bool,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RedirectAction>,
    /// MOSN: one `{cluster, percent}` object beside `match`; a list is accepted too.
    #[serde(
        deserialize_with = "one_or_many",
        serialize_with = "one_or_many_out",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
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
    /// Envoy's query parameter matchers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_parameters: Vec<QueryParameterMatcher>,
    /// MOSN's variable matchers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<VariableMatcher>,
}

/// MOSN's `{name, value, regex}` plus Envoy's matchers in the same object. Exactly one
/// of `value` (with `regex`), `exact_match`, `prefix_match`, `suffix_match`,
/// `contains_match`, `present_match`; none: the header must be present and empty
/// (MOSN's reading of an absent value).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct HeaderMatcher {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub regex: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_match: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suffix_match: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contains_match: Option<String>,
    /// true: the header is present (any value); false: it is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub present_match: Option<bool>,
    #[serde(skip_serializing_if = "is_false")]
    pub invert_match: bool,
}

/// Envoy's query parameter matcher: `value` (exact, or a regex with `regex`) compared
/// with the percent-decoded value; no value: the parameter must be present.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct QueryParameterMatcher {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub regex: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub present_match: Option<bool>,
}

/// MOSN's variable matcher: `value` (exact) or `regex`; `model` ("and" / "or", default
/// "and") joins it to the next matcher.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct VariableMatcher {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub regex: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model: String,
}

with_header_mutations! {
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RouteAction {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster_name: String,
    /// The cluster named by this request header (Envoy semantics).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster_header: String,
    /// MOSN: the cluster named by this variable.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster_variable: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weighted_clusters: Vec<WeightedClusterConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_match: Option<MetadataMatchConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hash_policy: Vec<HashPolicyConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Envoy: the longest gap between bytes of the upstream response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicyConfig>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub prefix_rewrite: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex_rewrite: Option<RegexRewriteConfig>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host_rewrite: String,
    #[serde(skip_serializing_if = "is_false")]
    pub auto_host_rewrite: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auto_host_rewrite_header: String,
    /// Envoy's position of the mirror policies (MOSN's is beside `match`).
    #[serde(
        deserialize_with = "one_or_many",
        serialize_with = "one_or_many_out",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
}
}

/// MOSN's `weighted_clusters[]` entry: `{"cluster": {"name", "weight", "metadata_match"}}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct WeightedClusterConfig {
    pub cluster: ClusterWeightConfig,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ClusterWeightConfig {
    pub name: String,
    pub weight: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_match: Option<MetadataMatchConfig>,
}

/// MOSN's `{"filter_metadata": {"mosn.lb": {key: value}}}`; MOSN keeps string values only.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct MetadataMatchConfig {
    pub filter_metadata: std::collections::BTreeMap<String, serde_json::Map<String, Value>>,
}

/// The `filter_metadata` key MOSN's load balancers read.
pub const LB_METADATA_KEY: &str = "mosn.lb";

/// One `hash_policy[]` entry: exactly one of `header`, `cookie`, `source_ip`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct HashPolicyConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderHashPolicyConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie: Option<CookieHashPolicyConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<SourceIpHashPolicyConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct HeaderHashPolicyConfig {
    pub key: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct CookieHashPolicyConfig {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<GoDuration>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct SourceIpHashPolicyConfig {}

/// MOSN's retry policy (`retry_on` bool, `retry_timeout`, `num_retries`, `status_codes`)
/// with Envoy's keys beside it (`retry_on` conditions, `per_try_timeout`,
/// `retriable_status_codes`, `retry_back_off`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RetryPolicyConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<RetryOnConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_timeout: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<GoDuration>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub status_codes: Vec<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retriable_status_codes: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_back_off: Option<RetryBackOffConfig>,
}

/// `retry_on`: MOSN's bool, or Envoy's comma-separated conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RetryOnConfig {
    Bool(bool),
    Conditions(String),
}

/// Envoy's `retry_on` conditions this build knows.
pub const RETRY_ON_CONDITIONS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
];

impl<'de> Deserialize<'de> for RetryOnConfig {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RetryOnConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a bool (MOSN) or a string of comma-separated conditions (Envoy)")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RetryOnConfig, E> {
                Ok(RetryOnConfig::Bool(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RetryOnConfig, E> {
                Ok(RetryOnConfig::Conditions(v.to_owned()))
            }
        }
        de.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RetryBackOffConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_interval: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<GoDuration>,
}

/// MOSN's `{"pattern": {"regex"}, "substitution"}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RegexRewriteConfig {
    pub pattern: PatternConfig,
    pub substitution: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct PatternConfig {
    pub regex: String,
    /// MOSN accepts it and does not use it.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub google_re2: Value,
}

/// MOSN's RedirectAction plus Envoy's `prefix_rewrite`, `https_redirect`,
/// `port_redirect`, `strip_query`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RedirectAction {
    /// 0 (absent) means 301.
    #[serde(skip_serializing_if = "is_zero")]
    pub response_code: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path_redirect: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host_redirect: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scheme_redirect: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub prefix_rewrite: String,
    #[serde(skip_serializing_if = "is_false")]
    pub https_redirect: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pub port_redirect: u32,
    #[serde(skip_serializing_if = "is_false")]
    pub strip_query: bool,
}

/// MOSN's request mirror policy: `percent` of requests (0-100) are copied to `cluster`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RequestMirrorPolicy {
    pub cluster: String,
    pub percent: u32,
    /// MOSN accepts it and does not implement it.
    #[serde(skip_serializing_if = "is_false")]
    pub trace_sampled: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Reads one object or a list of them.
fn one_or_many<'de, D, T>(de: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object or a list of objects")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(|t| vec![t])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Vec<T>, A::Error> {
            Vec::<T>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
    }
    de.deserialize_any(V(std::marker::PhantomData))
}

/// Writes one entry as an object (MOSN's form), several as a list.
fn one_or_many_out<S: serde::Serializer, T: Serialize>(v: &[T], ser: S) -> Result<S::Ok, S::Error> {
    match v {
        [one] => one.serialize(ser),
        many => many.serialize(ser),
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
    /// MOSN's RPC keepalive of upstream connections: heartbeats every `interval`
    /// (besides one after 15 s without reading), each answered within `timeout`
    /// (default 1 s); six unanswered in a row close the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<KeepaliveConfig>,
    /// TLS to the cluster's hosts (when `status` is true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_context: Option<crate::tls::TlsConfig>,
    /// MOSN's circuit breaker thresholds; only the first entry applies (as in MOSN).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub circuit_breakers: Vec<CircuitBreakerThresholds>,
    /// MOSN's `lb_subset_config`: balance within the subset of hosts a route's
    /// `metadata_match` selects (docs/load-balancing.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lb_subset_config: Option<LbSubsetConfig>,
    /// MOSN's `lbconfig` (`choice_count` and biases of the load-aware balancers).
    #[serde(alias = "lb_config", skip_serializing_if = "Option::is_none")]
    pub lbconfig: Option<LbConfig>,
    /// MOSN's `original_dst_lb_config` (LB_ORIGINAL_DST).
    #[serde(
        alias = "lb_original_dst_config",
        skip_serializing_if = "Option::is_none"
    )]
    pub original_dst_lb_config: Option<OriginalDstLbConfig>,
    /// MOSN's `slow_start`: ramp the weight of new or recovered hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<SlowStartConfig>,
    /// MOSN's active health checks (docs/health-and-outlier.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckConfig>,
    /// Envoy's outlier detection; absent: off (docs/health-and-outlier.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetectionConfig>,
    /// STRICT_DNS: how often names are resolved again (absent or 0: 5 s; docs/clusters.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_refresh_rate: Option<GoDuration>,
    /// STRICT_DNS: accepted, but the system resolver reports no TTL (warned).
    #[serde(skip_serializing_if = "is_false")]
    pub respect_dns_ttl: bool,
    /// STRICT_DNS: `V4_ONLY`, `V6_ONLY` (and Envoy's `V4_PREFERRED`, `AUTO`, `ALL`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dns_lookup_family: String,
    /// The HTTP protocol spoken to the cluster's hosts (`Http1`, `Http2`), over the
    /// proxy filter's `upstream_protocol`; empty: the filter's. (mosn-rs: Envoy's
    /// per-cluster protocol options arrive here from xDS.)
    #[serde(skip_serializing_if = "String::is_empty")]
    pub upstream_protocol: String,
}

impl ClusterConfig {
    /// The cluster's own upstream HTTP protocol, when it names one.
    pub fn http_protocol(&self) -> Option<crate::filters::ProxyProtocol> {
        match crate::filters::parse_protocol(&self.upstream_protocol) {
            Some(
                p @ (crate::filters::ProxyProtocol::Http1 | crate::filters::ProxyProtocol::Http2),
            ) => Some(p),
            _ => None,
        }
    }
}

/// MOSN's `lb_subset_config`. Subset balancing is on when `subset_selectors` is not empty.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct LbSubsetConfig {
    /// MOSN writes `fall_back_policy` (0, 1, 2); Envoy's `fallback_policy` and the names
    /// `NO_FALLBACK`, `ANY_ENDPOINT`, `DEFAULT_SUBSET` are accepted too.
    #[serde(alias = "fallback_policy")]
    pub fall_back_policy: SubsetFallbackPolicy,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub default_subset: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subset_selectors: Vec<Vec<String>>,
}

/// Where a request goes when no subset matches its `metadata_match`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SubsetFallbackPolicy {
    /// 0: no host (the request fails with no healthy upstream).
    #[default]
    NoFallback,
    /// 1: any host of the cluster.
    AnyEndpoint,
    /// 2: the hosts matching `default_subset`.
    DefaultSubset,
}

impl SubsetFallbackPolicy {
    pub fn name(self) -> &'static str {
        match self {
            SubsetFallbackPolicy::NoFallback => "NO_FALLBACK",
            SubsetFallbackPolicy::AnyEndpoint => "ANY_ENDPOINT",
            SubsetFallbackPolicy::DefaultSubset => "DEFAULT_SUBSET",
        }
    }

    fn from_number(n: u64) -> Option<Self> {
        match n {
            0 => Some(SubsetFallbackPolicy::NoFallback),
            1 => Some(SubsetFallbackPolicy::AnyEndpoint),
            2 => Some(SubsetFallbackPolicy::DefaultSubset),
            _ => None,
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "NO_FALLBACK" | "0" => Some(SubsetFallbackPolicy::NoFallback),
            "ANY_ENDPOINT" | "1" => Some(SubsetFallbackPolicy::AnyEndpoint),
            "DEFAULT_SUBSET" | "2" => Some(SubsetFallbackPolicy::DefaultSubset),
            _ => None,
        }
    }
}

impl Serialize for SubsetFallbackPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(*self as u8)
    }
}

impl<'de> Deserialize<'de> for SubsetFallbackPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const EXPECTED: &str = "0 (NO_FALLBACK), 1 (ANY_ENDPOINT) or 2 (DEFAULT_SUBSET)";
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SubsetFallbackPolicy;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Self::Value, E> {
                SubsetFallbackPolicy::from_number(n).ok_or_else(|| {
                    E::custom(format!("unknown fall_back_policy {n}, expected {EXPECTED}"))
                })
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Self::Value, E> {
                u64::try_from(n)
                    .ok()
                    .and_then(SubsetFallbackPolicy::from_number)
                    .ok_or_else(|| {
                        E::custom(format!("unknown fall_back_policy {n}, expected {EXPECTED}"))
                    })
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                SubsetFallbackPolicy::from_name(s).ok_or_else(|| {
                    E::custom(format!(
                        "unknown fall_back_policy {s:?}, expected {EXPECTED}"
                    ))
                })
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(SubsetFallbackPolicy::NoFallback)
            }
        }
        d.deserialize_any(V)
    }
}

/// MOSN's `lbconfig`. Absent values take MOSN's defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct LbConfig {
    /// Hosts sampled per pick by the least-request, least-connection and peak-EWMA
    /// balancers (default 2: the power of two choices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choice_count: Option<u32>,
    /// Exponent of `active + 1` in the weighted form of those balancers (default 1.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_request_bias: Option<f64>,
    /// LB_PEAK_EWMA: exponent of the client-error success factor (default 1.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_error_bias: Option<f64>,
    /// LB_PEAK_EWMA: exponent of the server-error success factor (default 1.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_error_bias: Option<f64>,
}

/// MOSN's `original_dst_lb_config`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct OriginalDstLbConfig {
    /// Take the destination from a request header (`header_name`, default `host`);
    /// the proxy resolves it into the balancer's original destination.
    #[serde(skip_serializing_if = "is_false")]
    pub use_header: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub header_name: String,
    /// Connect to 127.0.0.1 on the original destination's port.
    #[serde(skip_serializing_if = "is_false")]
    pub replace_local: bool,
}

/// MOSN's `slow_start`. Applies to LB_WEIGHTED_ROUNDROBIN, LB_LEAST_REQUEST,
/// LB_LEAST_CONNECTION and LB_PEAK_EWMA.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct SlowStartConfig {
    /// `duration` (the one mode MOSN has) or empty (off).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_start_duration: Option<GoDuration>,
    /// Absent or 0: MOSN's default 1.0 (linear ramp).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggression: Option<f64>,
    /// A fraction, as MOSN reads it (0.1 = 10%). Absent or 0: MOSN's default 0.1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_weight_percent: Option<f64>,
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

/// MOSN's `clusters[].keepalive`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct KeepaliveConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
}
