//! Envoy v3 resources (envoy-types protos) into the MOSN config model.
//!
//! Each function converts one xDS resource into the typed model MOSN's JSON fills,
//! building what a MOSN user would write (filter `config` objects are the JSON the
//! filters' own parsers read), so one validation and one runtime serve both. Every
//! converted listener, route configuration and cluster is run through mosn-config's
//! checks (and the router's build) before it is returned: what the converter
//! returns, the proxy accepts.
//!
//! Rules: an Envoy field mosn-rs cannot honour and that changes what the proxy does
//! is refused ([`ConvertError`], whose text is the NACK's `error_detail`, naming the
//! resource and the field path); a field that only tunes is ignored with a warning
//! naming it; Istio's telemetry and metadata-exchange filters are skipped with one
//! warning each. Typed configs are decoded by their type URL; an unknown one on a
//! required filter is refused, on an optional one warned.
//!
//! # Coverage
//!
//! ## Listener ([`listener`])
//!
//! | Envoy | model | |
//! |---|---|---|
//! | `name`, `address` (IP, TCP) | `name`, `address` | supported; pipes, named ports, UDP refused |
//! | `bind_to_port` | `bind_port` | supported |
//! | `use_original_dst` (+ `transparent`) | `use_original_dst` `redirect` (`tproxy`) | supported |
//! | listener filter `original_dst` | `original_dst` filter | with `use_original_dst`: hands off (MOSN); alone (Istio's virtualInbound): `hand_off: false`, the destination restored for this listener's chains |
//! | listener filter `proxy_protocol` | `proxy_protocol` filter | supported; TLV rules warned, `disallowed_versions` refused |
//! | listener filters `tls_inspector`, `http_inspector` | — | dropped: the model inspects when its chains need it |
//! | `filter_chains[].filter_chain_match` | `filter_chain_match` | `destination_port`, `prefix_ranges`, `server_names`, `transport_protocol`, `application_protocols`, `source_prefix_ranges`; `source_ports`, `source_type`, `direct_source_prefix_ranges`, suffixes refused; `http/1.1`, `http/1.0`, `h2c` on a plaintext chain matched by sniffing the first bytes (http_inspector) |
//! | `filter_chains[].transport_socket` (DownstreamTlsContext) | `tls_context` | see TLS |
//! | `default_filter_chain` | a chain without criteria | warned (Envoy uses it only when no chain matches) |
//! | network filter HttpConnectionManager | `proxy` | see below |
//! | network filter TcpProxy | `tcp_proxy` | `cluster` (or one weighted cluster), `idle_timeout` (absent: Envoy's 1h); `metadata_match`, tunneling, on-demand refused; other fields warned |
//! | Istio network filters (`istio.stats`, `istio.metadata_exchange`, `envoy.filters.network.metadata_exchange`, Wasm stats) | — | skipped, warned |
//! | other network filters (RBAC, ext_authz, ...) | — | refused |
//! | `additional_addresses`, `api_listener`, UDP, `filter_chain_matcher`, FCDS, internal listeners | — | refused |
//! | `per_connection_buffer_limit_bytes`, `socket_options`, `freebind`, `access_log`, `tcp_keepalive`, `continue_on_listener_filters_timeout` | — | warned |
//!
//! HttpConnectionManager:
//!
//! | Envoy | model | |
//! |---|---|---|
//! | `codec_type` AUTO / HTTP1 / HTTP2 | `downstream_protocol` Auto / Http1 / Http2 | HTTP3 refused |
//! | `rds.route_config_name` | `router_config_name`, `ListenerOut::rds` | supported |
//! | `route_config` (inline) | `ListenerOut::inline_routes`, named `<listener>/filter_chains[i]` | supported |
//! | `scoped_routes` | — | refused |
//! | http filter router (last, required) | — | supported; upstream HTTP filters refused |
//! | http filters Istio (`istio.stats`, `istio.metadata_exchange`, `envoy.filters.http.grpc_stats`, `istio_authn`, `istio.alpn`, peer metadata, Wasm stats) | — | skipped, warned |
//! | http filters fault (no fault configured), cors, grpc_web; disabled or optional ones | — | skipped, warned; a fault filter that injects faults is refused |
//! | other http filters (RBAC, JWT, ext_authz, Lua, Wasm, ...) | — | refused |
//! | `common_http_protocol_options.idle_timeout` | listener `connection_idle_timeout` (absent: Envoy's 1h) | supported (first HTTP chain's) |
//! | `common_http_protocol_options.max_headers_count`, `max_request_headers_kb`, `request_headers_timeout` | `http1`/`http2` limits | supported |
//! | `http_protocol_options.allow_chunked_length` | `http1.allow_chunked_length` | supported |
//! | `http2_protocol_options` streams, windows, `allow_connect` | `http2.*` | supported (unset: the model's safer defaults, not Envoy's) |
//! | `use_remote_address`, `skip_xff_append` | `http1.add_x_forwarded_for` | supported |
//! | `forward_client_cert_details`, `set_current_client_cert_details` | same keys | supported (cert/chain/issuer warned) |
//! | tracing, access logs, `via`, local replies, path normalization, request timeout | — | warned |
//!
//! ## TLS (DownstreamTlsContext, UpstreamTlsContext)
//!
//! | Envoy | model | |
//! |---|---|---|
//! | `tls_certificates[0]` (inline PEM or file) | `cert_chain`, `private_key` | supported; more certificates warned; pkcs12, key providers, passwords refused |
//! | `tls_certificate_sds_secret_configs[0]` | `sds_source.CertificateConfig`, `secrets` | filled by [`apply_secrets`] |
//! | `validation_context.trusted_ca` | `ca_cert` (+ `verify_client` on listeners) | supported |
//! | `validation_context_sds_secret_config`, `combined_validation_context` | `sds_source.ValidationConfig` | filled by [`apply_secrets`] |
//! | subject alt names, listener and cluster | `match_subject_alt_names` | exact matches; on a cluster they replace the SNI name check (Istio's ISTIO_MUTUAL), and a validation secret's names apply when the context has none; a name list without `sni` no longer becomes the SNI; prefix/suffix/regex refused |
//! | cluster without validation context | `insecure_skip` | as in Envoy, nothing is verified (warned) |
//! | cluster with a CA and no names | — | warned: the model also verifies the SNI name |
//! | `require_client_certificate` | `require_client_cert` | supported (without a CA refused) |
//! | `tls_params` versions, ciphers, curves | `min_version`, `max_version`, `cipher_suites`, `ecdh_curves` | supported; suites/curves rustls lacks dropped (warned), none left refused; TLS ≤1.1 max refused |
//! | `alpn_protocols` | `alpn` | h2, http/1.1 kept; others (Istio's) dropped, warned |
//! | `sni` | `server_name` | supported |
//! | `transport_socket_connect_timeout` | `handshake_timeout` | supported |
//! | SPKI/hash pinning, CRLs, custom validators, expired certificates | — | refused |
//! | Istio's `tcp_stats` wrapper | its inner socket | warned |
//!
//! ## RouteConfiguration ([`route_configuration`])
//!
//! | Envoy | model | |
//! |---|---|---|
//! | `virtual_hosts[].domains` | `domains` | supported; `host:port` forms dropped when the host is listed, else the port is dropped (warned): the router compares hosts without ports |
//! | headers to add/remove at route configuration, virtual host, route | same keys | supported; `%...%` formatters and ADD_IF_ABSENT/OVERWRITE_IF_EXISTS refused |
//! | match `prefix`, `path`, `safe_regex`, `path_separated_prefix`, `case_sensitive` | `prefix`, `path`, `regex`, `case_sensitive` | supported |
//! | match `headers` (exact, prefix, suffix, contains, regex, present, string_match incl. ignore_case, invert) | `headers` | supported; `range_match`, `treat_missing_header_as_empty` refused |
//! | match `query_parameters` (string_match, present) | `query_parameters` | supported (non-exact as regexes); present_match false refused |
//! | match `grpc` | header `content-type` prefix `application/grpc` | supported |
//! | match `runtime_fraction` < 100%, cookies, TLS, metadata, filter state, CONNECT, templates | — | refused |
//! | action `cluster`, `cluster_header`, `weighted_clusters` (+ `metadata_match`) | `cluster_name`, `cluster_header`, `weighted_clusters` | supported; per-cluster headers/host rewrites refused |
//! | `metadata_match` `envoy.lb` | `metadata_match` `mosn.lb` | supported (values as strings) |
//! | `timeout` | `timeout` | supported (absent: Envoy's 15s) |
//! | `idle_timeout` | `idle_timeout` | supported |
//! | `retry_policy` (route, else virtual host) | `retry_policy` | `retry_on` conditions the model knows (others dropped, warned), `num_retries`, `per_try_timeout`, `retriable_status_codes`, `retry_back_off`; `previous_hosts` built in; retriable headers refused |
//! | `prefix_rewrite`, `regex_rewrite` | same | supported (prefix_rewrite on a regex route refused) |
//! | `host_rewrite_literal`, `auto_host_rewrite`, `host_rewrite_header` | `host_rewrite`, `auto_host_rewrite`, `auto_host_rewrite_header` | supported |
//! | `hash_policy` header, cookie, source IP | `hash_policy` | supported; query parameter, filter state refused |
//! | `request_mirror_policies` (route, virtual host, route configuration) | `request_mirror_policies` | supported (whole percents) |
//! | `redirect` | `redirect` | supported; regex rewrites refused |
//! | `direct_response` | `direct_response` | inline bodies supported; files refused |
//! | CORS, rate limits, hedging, internal redirects, per-filter configs of filters mosn-rs runs not, VHDS, `require_tls` | — | refused |
//!
//! ## Cluster ([`cluster`])
//!
//! | Envoy | model | |
//! |---|---|---|
//! | type STATIC, STRICT_DNS, EDS, ORIGINAL_DST | `type` STATIC, STRICT_DNS, EDS, ORIGINAL_DST | supported; EDS's service name in [`ClusterOut::eds_service`] |
//! | type LOGICAL_DNS | STRICT_DNS | warned |
//! | custom cluster types (aggregate, ...) | — | refused |
//! | `lb_policy` ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV, CLUSTER_PROVIDED | LB_WEIGHTED_ROUNDROBIN, LB_LEAST_REQUEST, LB_RANDOM, LB_RING_HASH, LB_MAGLEV, LB_ORIGINAL_DST | supported with `choice_count`, `active_request_bias`, slow start; ring/table sizes warned |
//! | `load_balancing_policy` | the first known policy | round_robin, least_request, random, ring_hash, maglev, cluster_provided |
//! | `original_dst_lb_config.use_http_header` | `original_dst_lb_config` | supported (header default `x-envoy-original-dst-host`) |
//! | `lb_subset_config` | `lb_subset_config` | supported; per-selector fallbacks refused |
//! | `connect_timeout` | `connect_timeout` | supported (absent: Envoy's 5s) |
//! | `circuit_breakers` DEFAULT thresholds | `circuit_breakers` | supported; HIGH priority, retry budgets, per-host warned |
//! | `outlier_detection` | `outlier_detection` | supported; monitors refused |
//! | `health_checks[0]` http / tcp / grpc | `health_check` | supported (Envoy's Host/authority default: the cluster name); payloads, custom checkers, more than one refused |
//! | `transport_socket` (UpstreamTlsContext) | `tls_context` | see TLS |
//! | `transport_socket_matches` (Istio auto mTLS) | — | refused |
//! | `typed_extension_protocol_options` HttpProtocolOptions | [`ClusterOut::upstream_protocol`] | explicit HTTP/1, HTTP/2, use_downstream_protocol; auto_config, HTTP/3 refused |
//! | `max_requests_per_connection` (also in common options) | `max_request_per_conn` | supported |
//! | DNS refresh rate, TTL, lookup family | same keys | supported (resolvers warned) |
//! | `per_connection_buffer_limit_bytes`, `upstream_bind_config`, `common_lb_config`, keepalive, LRS | — | warned |
//! | upstream network filters | — | Istio's skipped, others refused |
//!
//! ## ClusterLoadAssignment ([`load_assignment`]) and Secret ([`secret`])
//!
//! Endpoints: address, hostname, weight (scaled into 1..=128 when larger), `envoy.lb`
//! metadata (as `mosn.lb`). UNHEALTHY, DRAINING and TIMEOUT endpoints are left out,
//! DEGRADED ones kept (warned). Priorities: the lowest priority with a usable host is
//! taken, higher ones dropped (warned). Drop overloads, named endpoints and LEDS are
//! refused. Secrets: `tls_certificate` and `validation_context` (trusted CA, exact
//! names) from inline PEM or files; session ticket keys and generic secrets refused.

mod any;
mod chain;
mod check;
mod cluster;
mod endpoint;
mod error;
mod hcm;
mod health;
mod lb;
mod listener;
mod proto;
mod route;
mod route_action;
mod route_match;
mod secret;
mod tcp_proxy;
mod tls;
mod upstream_http;

#[cfg(test)]
mod tests;

pub use cluster::{cluster, ClusterOut};
pub use endpoint::load_assignment;
pub use error::{ConvertError, Converted};
pub use listener::{listener, ListenerOut};
pub use route::route_configuration;
pub use secret::{apply_secrets, pending_secrets, secret, SecretOut, TlsHolder};
pub use upstream_http::UpstreamProtocol;
