//! Typed configs of the network filters this build implements, parsed from a
//! `FilterConfig.config` object with the JSON path of that object for errors.

use crate::duration::GoDuration;
use crate::error::Problems;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// A network filter this build can run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", content = "config", rename_all = "snake_case")]
pub enum NetworkFilter {
    Proxy(ProxyFilterConfig),
    TcpProxy(TcpProxyConfig),
}

/// Protocols named by `downstream_protocol` / `upstream_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ProxyProtocol {
    Http1,
    /// HTTP/2 with prior knowledge (h2c), or by ALPN over TLS.
    Http2,
    /// MOSN's protocol detection: HTTP/2's preface, an HTTP/1 method, or an RPC
    /// protocol's magic bytes.
    Auto,
    /// An XProtocol RPC codec by its MOSN name (`bolt`, `boltv2`, `dubbo`).
    Rpc(&'static str),
}

/// The XProtocol codecs this build has, by MOSN's names.
pub const RPC_PROTOCOLS: &[&str] = &["bolt", "boltv2", "dubbo"];

/// `{"type": "proxy", "config": {...}}`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ProxyFilterConfig {
    pub downstream_protocol: String,
    pub upstream_protocol: String,
    pub router_config_name: String,
    /// MOSN: when protocol detection fails, hand the connection to the next filter
    /// (a `tcp_proxy`) instead of closing it.
    pub fallback_for_unknown_protocol: bool,
    /// MOSN's protocol-specific options; `sub_protocol` (XProtocol) is not supported yet.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub extend_config: Value,
    /// mosn-rs extension: limits and options of the HTTP/1.1 codec.
    pub http1: Http1Options,
    /// mosn-rs extension: limits of the HTTP/2 codec.
    pub http2: Http2Options,
    /// mosn-rs extension: limits of the RPC (XProtocol) proxy.
    pub rpc: RpcOptions,
    /// Envoy's: what happens to X-Forwarded-Client-Cert (default SANITIZE: a client
    /// cannot claim an identity through it).
    pub forward_client_cert_details: ForwardClientCertDetails,
    /// Envoy's: which fields of an mTLS client's certificate go into the header it
    /// sets (the certificate's SHA-256 `Hash` always does).
    pub set_current_client_cert_details: ClientCertDetails,
}

/// Limits of the RPC proxy, each with a safe default.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RpcOptions {
    /// Largest frame from a client or an upstream; a larger one closes its connection.
    pub max_frame_bytes: usize,
    /// Answers queued for a client that does not read them, before it is disconnected.
    pub max_queued_bytes: usize,
}

impl Default for RpcOptions {
    fn default() -> Self {
        RpcOptions {
            max_frame_bytes: 16 * 1024 * 1024,
            max_queued_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Envoy's `forward_client_cert_details` modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ForwardClientCertDetails {
    /// Drop the header.
    #[default]
    #[serde(alias = "sanitize")]
    Sanitize,
    /// mTLS connections: forward the client's header as it is; others: drop it.
    #[serde(alias = "forward_only")]
    ForwardOnly,
    /// mTLS connections: append this connection's certificate; others: drop it.
    #[serde(alias = "append_forward")]
    AppendForward,
    /// mTLS connections: replace it with this connection's certificate; others: drop it.
    #[serde(alias = "sanitize_set")]
    SanitizeSet,
    /// Forward it as it is, always.
    #[serde(alias = "always_forward_only")]
    AlwaysForwardOnly,
}

/// Envoy's `set_current_client_cert_details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ClientCertDetails {
    pub subject: bool,
    pub uri: bool,
    pub dns: bool,
}

impl ProxyFilterConfig {
    pub fn downstream(&self) -> ProxyProtocol {
        // MOSN's older shape: "X" with the codec in extend_config.sub_protocol.
        if self.downstream_protocol == "X" {
            if let Some(p) = self.sub_protocol().and_then(parse_protocol) {
                return p;
            }
        }
        parse_protocol(&self.downstream_protocol).unwrap_or(ProxyProtocol::Http1)
    }

    /// `extend_config.sub_protocol`, when set.
    pub fn sub_protocol(&self) -> Option<&str> {
        self.extend_config
            .get("sub_protocol")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    }

    /// The upstream protocol; None: the same as the downstream request's (MOSN reads an
    /// empty or `Auto` upstream protocol so).
    pub fn upstream(&self) -> Option<ProxyProtocol> {
        parse_protocol(&self.upstream_protocol).filter(|p| *p != ProxyProtocol::Auto)
    }
}

/// HTTP/2 limits, each with a safe default (the and Envoy's values).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Http2Options {
    /// Streams a client may have open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Flow-control window of each stream.
    pub initial_stream_window_size: u32,
    /// Flow-control window of the whole connection.
    pub initial_connection_window_size: u32,
    /// Largest header list (decoded) a peer may send.
    pub max_header_list_size: u32,
    /// Most header fields in a request (pseudo-headers not counted, each cookie
    /// crumb counted); more gets a 431 reply and the request is not forwarded.
    pub max_headers: usize,
    /// Streams the client reset before the proxy accepted them, allowed at once; more
    /// is a connection error ENHANCE_YOUR_CALM (the `h2` crate's Rapid Reset guard).
    pub max_pending_accept_reset_streams: usize,
    /// Streams the proxy reset for the client's protocol errors, allowed over the life
    /// of a connection; more gets GOAWAY ENHANCE_YOUR_CALM. 0: no limit.
    pub max_local_error_reset_streams: usize,
    /// Rapid Reset (CVE-2023-44487): once a connection has opened this many streams,
    /// it is closed with GOAWAY ENHANCE_YOUR_CALM when more than half of them were
    /// reset by the client within `rapid_reset_window` of opening. 0: off.
    pub rapid_reset_min_streams: usize,
    /// How soon after opening a client's reset counts as rapid.
    pub rapid_reset_window: GoDuration,
    /// RFC 8441: advertise SETTINGS_ENABLE_CONNECT_PROTOCOL so clients can open
    /// WebSockets with extended CONNECT (Envoy's `allow_connect`); off by default.
    pub allow_connect: bool,
}

impl Default for Http2Options {
    fn default() -> Self {
        Http2Options {
            max_concurrent_streams: 100,
            initial_stream_window_size: 64 * 1024,
            initial_connection_window_size: 1024 * 1024,
            max_header_list_size: 60 * 1024,
            max_headers: 100,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
            rapid_reset_min_streams: 500,
            rapid_reset_window: GoDuration(Duration::from_secs(1)),
            allow_connect: false,
        }
    }
}

/// Limits and strictness options of the HTTP/1.1 codec. Every limit has a safe default.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Http1Options {
    /// Longest request line; longer gets 414.
    pub max_request_line_bytes: usize,
    /// Largest header section (request line included); larger gets 431 (502 upstream).
    pub max_header_bytes: usize,
    /// Most header fields; more gets 431 (502 upstream).
    pub max_headers: usize,
    /// Time allowed for a complete request head once its first byte arrived; then 408.
    pub request_head_timeout: GoDuration,
    /// Longest pause while a request body is read; then 408.
    pub body_timeout: GoDuration,
    /// Append the client address to `X-Forwarded-For`.
    pub add_x_forwarded_for: bool,
    /// Accept Content-Length together with Transfer-Encoding: chunked (the length is
    /// dropped, as Envoy's `allow_chunked_length` does). Off: such requests get 400.
    pub allow_chunked_length: bool,
    /// Size of the buffer bodies are copied through, per direction.
    pub body_buffer_bytes: usize,
}

impl Default for Http1Options {
    fn default() -> Self {
        Http1Options {
            max_request_line_bytes: 8 * 1024,
            max_header_bytes: 60 * 1024,
            max_headers: 100,
            request_head_timeout: GoDuration(Duration::from_secs(30)),
            body_timeout: GoDuration(Duration::from_secs(60)),
            add_x_forwarded_for: true,
            allow_chunked_length: false,
            body_buffer_bytes: 16 * 1024,
        }
    }
}

/// MOSN's `tcp_proxy`: a default cluster plus routes by source/destination address.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct TcpProxyConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stat_prefix: String,
    pub cluster: String,
    pub routes: Vec<TcpRoute>,
    /// Close both sides after this long without a byte either way. MOSN writes a Go
    /// `time.Duration` here (a number of nanoseconds); a duration string is accepted too.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nanos_or_duration"
    )]
    pub idle_timeout: Option<GoDuration>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct TcpRoute {
    pub cluster: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_addrs: Vec<CidrRange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_addrs: Vec<CidrRange>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source_port: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub destination_port: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct CidrRange {
    pub address: String,
    pub length: u32,
}

fn nanos_or_duration<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<Option<GoDuration>, D::Error> {
    match Value::deserialize(de)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .map(|ns| Some(GoDuration(Duration::from_nanos(ns))))
            .ok_or_else(|| {
                serde::de::Error::custom("expected a non-negative number of nanoseconds")
            }),
        Value::String(s) => crate::duration::parse_go_duration(&s)
            .map(|d| Some(GoDuration(d)))
            .map_err(serde::de::Error::custom),
        _ => Err(serde::de::Error::custom("expected a duration")),
    }
}

pub(crate) fn parse_protocol(name: &str) -> Option<ProxyProtocol> {
    match name {
        "Http1" | "HTTP1" | "http1" => Some(ProxyProtocol::Http1),
        "Http2" | "HTTP2" | "http2" => Some(ProxyProtocol::Http2),
        "Auto" | "auto" => Some(ProxyProtocol::Auto),
        other => RPC_PROTOCOLS
            .iter()
            .find(|p| p.eq_ignore_ascii_case(other))
            .map(|p| ProxyProtocol::Rpc(p)),
    }
}

/// Protocol names MOSN knows that later work implements; named "not supported yet".
const LATER_PROTOCOLS: &[&str] = &["tars", "dubbothrift", "dubbo-thrift", "Xprotocol"];

const SUPPORTED: &str = "\"Http1\", \"Http2\", \"Auto\", \"bolt\", \"boltv2\", \"dubbo\"";

/// Checks a protocol name; `allow_empty` for the upstream side (empty = same as downstream).
pub(crate) fn check_protocol(name: &str, path: &str, allow_empty: bool, problems: &mut Problems) {
    if name.is_empty() && allow_empty {
        return;
    }
    if parse_protocol(name).is_some() {
        return;
    }
    if LATER_PROTOCOLS.contains(&name) {
        problems.error(
            path,
            format!("protocol {name:?} is valid MOSN but not supported by mosn-rs yet (supported: {SUPPORTED})"),
        );
    } else {
        problems.error(
            path,
            format!("unknown protocol {name:?} (supported: {SUPPORTED})"),
        );
    }
}

/// Network filter types MOSN has that this build does not implement yet.
pub(crate) const LATER_NETWORK_FILTERS: &[&str] = &[
    "udp_proxy",
    "connection_manager",
    "rpc_proxy",
    "fault_inject",
    "dubbo",
    "tcp_proxy_v2",
];
