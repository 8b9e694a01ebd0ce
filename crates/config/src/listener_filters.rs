//! Listener filters: what runs on an accepted socket before a filter chain is chosen.
//! MOSN's `original_dst` (with the listener's `use_original_dst`) and Envoy's
//! `proxy_protocol`.

use crate::error::Problems;
use crate::load::typed_from_value;
use crate::model::{FilterConfig, ListenerConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the original destination of a redirected connection is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginalDstMode {
    /// iptables REDIRECT: the kernel's SO_ORIGINAL_DST.
    Redirect,
    /// TPROXY: the socket's own local address (the listener binds with IP_TRANSPARENT).
    Tproxy,
}

/// A listener filter this build runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerFilter {
    /// Restores the connection's original destination and, as MOSN, hands the
    /// connection to the listener of that destination.
    OriginalDst {
        mode: OriginalDstMode,
        /// MOSN: look for a listener on 127.0.0.1:port before 0.0.0.0:port.
        fallback_to_local: bool,
        /// False (mosn-rs `"hand_off": false`, Envoy's original_dst filter without
        /// `use_original_dst`, as Istio's inbound listener): only restore the
        /// destination; this listener's chains (matched by destination port) serve it.
        hand_off: bool,
    },
    /// Reads a PROXY protocol v1 or v2 header; its source address is the client's.
    ProxyProtocol {
        /// Envoy's option: a connection without a header goes on with its socket's
        /// address instead of being closed.
        allow_requests_without_proxy_protocol: bool,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OriginalDstConfig {
    #[serde(rename = "type")]
    kind: String,
    fallback_to_local: bool,
    /// mosn-rs: false restores the destination without handing the connection over.
    hand_off: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProxyProtocolConfig {
    allow_requests_without_proxy_protocol: bool,
}

fn parse_mode(value: &str) -> Option<OriginalDstMode> {
    match value {
        "" | "redirect" => Some(OriginalDstMode::Redirect),
        "tproxy" => Some(OriginalDstMode::Tproxy),
        _ => None,
    }
}

/// MOSN's listener-level `use_original_dst`: `"redirect"`, `"tproxy"`, or the older
/// boolean (true is redirect).
pub fn use_original_dst(listener: &ListenerConfig) -> Result<Option<OriginalDstMode>, String> {
    match &listener.use_original_dst {
        Value::Null | Value::Bool(false) => Ok(None),
        Value::Bool(true) => Ok(Some(OriginalDstMode::Redirect)),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => parse_mode(s)
            .map(Some)
            .ok_or_else(|| format!("expected \"redirect\" or \"tproxy\", got {s:?}")),
        other => Err(format!(
            "expected \"redirect\", \"tproxy\" or a bool, got {other}"
        )),
    }
}

/// The listener's filters, typed; problems are reported under `path`.
pub fn listener_filters(
    listener: &ListenerConfig,
    path: &str,
    problems: &mut Problems,
) -> Vec<ListenerFilter> {
    let mode = match use_original_dst(listener) {
        Ok(m) => m,
        Err(e) => {
            problems.error(format!("{path}.use_original_dst"), e);
            None
        }
    };
    let mut out = Vec::new();
    for (i, f) in listener.listener_filters.iter().enumerate() {
        let fpath = format!("{path}.listener_filters[{i}]");
        if let Some(parsed) = parse_one(f, &fpath, mode, problems) {
            out.push(parsed);
        }
    }
    // MOSN (for Istio) turns the filter on with the listener flag alone.
    if let Some(mode) = mode {
        if !out
            .iter()
            .any(|f| matches!(f, ListenerFilter::OriginalDst { .. }))
        {
            out.push(ListenerFilter::OriginalDst {
                mode,
                fallback_to_local: false,
                hand_off: true,
            });
        }
    }
    out
}

fn parse_one(
    f: &FilterConfig,
    path: &str,
    listener_mode: Option<OriginalDstMode>,
    problems: &mut Problems,
) -> Option<ListenerFilter> {
    let config_path = format!("{path}.config");
    match f.kind.as_str() {
        "original_dst" | "envoy.filters.listener.original_dst" => {
            let c: OriginalDstConfig = typed_from_value(&f.config, &config_path, problems)?;
            let Some(mode) = parse_mode(&c.kind) else {
                problems.error(
                    format!("{config_path}.type"),
                    "expected \"redirect\" or \"tproxy\"",
                );
                return None;
            };
            // The listener's own flag names the mode when the filter does not.
            let mode = if c.kind.is_empty() {
                listener_mode.unwrap_or(mode)
            } else {
                mode
            };
            Some(ListenerFilter::OriginalDst {
                mode,
                fallback_to_local: c.fallback_to_local,
                hand_off: c.hand_off.unwrap_or(true),
            })
        }
        "proxy_protocol" | "envoy.filters.listener.proxy_protocol" => {
            let c: ProxyProtocolConfig = typed_from_value(&f.config, &config_path, problems)?;
            Some(ListenerFilter::ProxyProtocol {
                allow_requests_without_proxy_protocol: c.allow_requests_without_proxy_protocol,
            })
        }
        "tls_inspector" | "envoy.filters.listener.tls_inspector" => {
            problems.warn(
                format!("{path}.type"),
                "the TLS inspector runs whenever a listener needs it (see docs/tls.md): ignored",
            );
            None
        }
        other => {
            problems.error(
                format!("{path}.type"),
                format!("unknown listener filter {other:?} (known: original_dst, proxy_protocol)"),
            );
            None
        }
    }
}
