//! The admin API: a small HTTP/1.1 server on `admin.address`, separate from the data
//! path and running on the control thread. It reuses the proxy's HTTP/1 parser.
//!
//! Paths (MOSN's): `GET /api/v1/config_dump` (the running config as JSON) and
//! `GET /api/v1/stats` (counters per listener and cluster).

use bytes::BytesMut;
use mosn_observe::StatsRegistry;
use mosn_protocol::http1::{parse_request, reason_phrase, HeadLimits, HeadWriter};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the admin API reads.
pub struct AdminState {
    /// The running config, already rendered as JSON.
    pub config: Arc<serde_json::Value>,
    pub stats: Arc<StatsRegistry>,
}

/// Time a client gets to send a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts admin connections until the listener fails.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(HEAD_TIMEOUT, handle(stream, &state)).await;
        });
    }
}

async fn handle(mut stream: TcpStream, state: &AdminState) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(4096);
    let limits = HeadLimits {
        max_head: 16 * 1024,
        max_headers: 64,
        ..HeadLimits::default()
    };
    let head = loop {
        match parse_request(&mut buf, &limits) {
            Ok(Some(head)) => break head,
            Ok(None) => {
                if stream.read_buf(&mut buf).await? == 0 {
                    return Ok(());
                }
            }
            Err(e) => {
                return respond(&mut stream, e.status, "text/plain", e.reason.as_bytes()).await
            }
        }
    };
    let (status, body) = route(head.method(), head.path(), state);
    respond(&mut stream, status, "application/json", body.as_bytes()).await
}

/// The response for a request, as (status, JSON body).
pub fn route(method: &[u8], path: &[u8], state: &AdminState) -> (u16, String) {
    let known = [&b"/api/v1/config_dump"[..], b"/api/v1/stats"];
    if !known.contains(&path) {
        return (404, error_json("unknown admin path"));
    }
    if method != b"GET" {
        return (405, error_json("use GET"));
    }
    match path {
        b"/api/v1/config_dump" => (200, pretty(&state.config)),
        _ => (200, pretty(&state.stats.to_json())),
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".into())
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(body.len() + 128);
    let mut w = HeadWriter::new(&mut out);
    w.status_line(status, reason_phrase(status).as_bytes());
    w.header(b"Content-Type", content_type.as_bytes());
    w.content_length(body.len() as u64);
    w.header(b"Connection", b"close");
    w.finish();
    out.extend_from_slice(body);
    stream.write_all(&out).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_known_paths_only() {
        let stats = Arc::new(StatsRegistry::default());
        stats.listener("l").downstream_request_total.inc();
        let state = AdminState {
            config: Arc::new(serde_json::json!({"servers": []})),
            stats,
        };
        let (status, body) = route(b"GET", b"/api/v1/stats", &state);
        assert_eq!(status, 200);
        assert!(body.contains("downstream_request_total"));
        assert_eq!(route(b"GET", b"/api/v1/config_dump", &state).0, 200);
        assert_eq!(route(b"POST", b"/api/v1/stats", &state).0, 405);
        assert_eq!(route(b"GET", b"/nope", &state).0, 404);
    }
}
