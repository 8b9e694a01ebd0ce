//! What the admin API shows of the xDS client: the connection, and per type the
//! version last accepted (ACK) and the last refusal (NACK) with its reason.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Default)]
pub struct XdsStatus {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    server: String,
    variant: &'static str,
    connected: bool,
    streams: u64,
    last_error: Option<String>,
    types: BTreeMap<&'static str, TypeStatus>,
}

#[derive(Default)]
struct TypeStatus {
    acked_version: Option<String>,
    acked_at: Option<SystemTime>,
    acks: u64,
    nacks: u64,
    last_nack: Option<(String, String, SystemTime)>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl XdsStatus {
    pub fn new(server: &str, delta: bool) -> XdsStatus {
        let s = XdsStatus::default();
        {
            let mut i = s.lock();
            i.server = server.to_string();
            i.variant = if delta { "delta" } else { "sotw" };
        }
        s
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn connected(&self, up: bool) {
        let mut i = self.lock();
        i.connected = up;
        if up {
            i.streams += 1;
        }
    }

    pub fn stream_error(&self, e: &str) {
        self.lock().last_error = Some(e.to_string());
    }

    pub fn accepted(&self, type_url: &'static str, version: &str) {
        let mut i = self.lock();
        let t = i.types.entry(crate::ads::type_name(type_url)).or_default();
        t.acked_version = Some(version.to_string());
        t.acked_at = Some(SystemTime::now());
        t.acks += 1;
    }

    pub fn rejected(&self, type_url: &'static str, version: &str, reason: &str) {
        let mut i = self.lock();
        let t = i.types.entry(crate::ads::type_name(type_url)).or_default();
        t.nacks += 1;
        t.last_nack = Some((version.to_string(), reason.to_string(), SystemTime::now()));
    }

    /// The version last accepted of a type (`cds`, `eds`, `lds`, `rds`, `sds`).
    pub fn version(&self, short_type: &str) -> Option<String> {
        self.lock()
            .types
            .get(short_type)
            .and_then(|t| t.acked_version.clone())
    }

    pub fn to_json(&self) -> Value {
        let i = self.lock();
        let types: serde_json::Map<String, Value> = i
            .types
            .iter()
            .map(|(k, t)| {
                (
                    k.to_string(),
                    json!({
                        "version": t.acked_version,
                        "acked_at": t.acked_at.map(secs),
                        "acks": t.acks,
                        "nacks": t.nacks,
                        "last_nack": t.last_nack.as_ref().map(|(v, r, at)| json!({
                            "version": v, "error": r, "at": secs(*at)
                        })),
                    }),
                )
            })
            .collect();
        json!({
            "server": i.server,
            "variant": i.variant,
            "connected": i.connected,
            "streams": i.streams,
            "last_stream_error": i.last_error,
            "types": types,
        })
    }
}
