//! The gRPC health check: `grpc.health.v1.Health/Check` over HTTP/2 with prior
//! knowledge (cleartext), as Envoy's `grpc_health_check`. The host passes when the
//! answer is HTTP 200 with `grpc-status: 0` and the message's `status` is SERVING.
//! The protobuf messages are tiny and encoded by hand:
//! `HealthCheckRequest { string service = 1; }`,
//! `HealthCheckResponse { ServingStatus status = 1; }` (SERVING = 1).

use crate::Host;
use bytes::Bytes;
use mosn_config::HealthCheckSessionConfig;
use mosn_tls::ClientTls;
use std::sync::Arc;

/// The longest response body read.
const MAX_RESPONSE: usize = 64 * 1024;
const PATH: &str = "/grpc.health.v1.Health/Check";
const SERVING: u64 = 1;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GrpcCheck {
    /// The service asked about; empty: the server as a whole.
    pub service: String,
    /// The `:authority`; empty: the checked address.
    pub authority: String,
}

impl GrpcCheck {
    pub fn from_config(cc: Option<&HealthCheckSessionConfig>) -> GrpcCheck {
        GrpcCheck {
            service: cc.map(|c| c.service_name.clone()).unwrap_or_default(),
            authority: cc.map(|c| c.authority.clone()).unwrap_or_default(),
        }
    }

    /// Runs one check against `addr` (the caller bounds it with the timeout).
    /// A plain check of a bare address (unit tests).
    #[cfg(test)]
    pub async fn check_addr(&self, addr: std::net::SocketAddr) -> Result<(), String> {
        self.check(&Host::new(addr, "", 1, Default::default()), None)
            .await
    }

    pub async fn check(&self, host: &Host, tls: Option<&Arc<ClientTls>>) -> Result<(), String> {
        let addr = host.addr;
        let tcp = super::connect(host, addr, tls, true).await?;
        let (client, conn) = h2::client::handshake(tcp)
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
        let authority = if self.authority.is_empty() {
            addr.to_string()
        } else {
            self.authority.clone()
        };
        let exchange = self.exchange(client, authority);
        tokio::pin!(exchange);
        tokio::pin!(conn);
        // The connection is driven alongside the exchange; if it ends first, what it
        // delivered is still read.
        tokio::select! {
            biased;
            result = &mut exchange => return result,
            result = &mut conn => {
                if let Err(e) = result {
                    return Err(format!("HTTP/2 connection: {e}"));
                }
            }
        }
        exchange.await
    }

    async fn exchange(
        &self,
        client: h2::client::SendRequest<Bytes>,
        authority: String,
    ) -> Result<(), String> {
        let h2_err = |what: &'static str| move |e: h2::Error| format!("{what}: {e}");
        let mut client = client.ready().await.map_err(h2_err("HTTP/2 stream"))?;
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("http://{authority}{PATH}"))
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .body(())
            .map_err(|e| format!("bad request (authority {authority:?}): {e}"))?;
        let (response, mut send) = client
            .send_request(request, false)
            .map_err(h2_err("send request"))?;
        send.send_data(encode_request(&self.service), true)
            .map_err(h2_err("send request body"))?;
        let response = response.await.map_err(h2_err("response"))?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("HTTP status {}", response.status().as_u16()));
        }
        let (parts, mut body) = response.into_parts();
        // A "trailers-only" answer carries grpc-status in the headers.
        if let Some(status) = parts.headers.get("grpc-status") {
            grpc_status_ok(status, &parts.headers)?;
        }
        let mut buf = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(h2_err("response body"))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            if buf.len() + chunk.len() > MAX_RESPONSE {
                return Err("response too large".into());
            }
            buf.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.map_err(h2_err("trailers"))?;
        match trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status").map(|s| (s, t)))
        {
            Some((status, t)) => grpc_status_ok(status, t)?,
            None if parts.headers.contains_key("grpc-status") => {}
            None => return Err("no grpc-status".into()),
        }
        match decode_response(&buf)? {
            SERVING => Ok(()),
            other => Err(format!("serving status {}", status_name(other))),
        }
    }
}

fn grpc_status_ok(status: &http::HeaderValue, headers: &http::HeaderMap) -> Result<(), String> {
    if status.as_bytes() == b"0" {
        return Ok(());
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or("");
    Err(format!(
        "grpc-status {} {message}",
        String::from_utf8_lossy(status.as_bytes())
    ))
}

fn status_name(status: u64) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "unknown value",
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A gRPC message frame (uncompressed) holding `HealthCheckRequest { service }`.
pub(crate) fn encode_request(service: &str) -> Bytes {
    let mut msg = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = Vec::with_capacity(5 + msg.len());
    frame.push(0); // not compressed
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    Bytes::from(frame)
}

/// The `status` of the one `HealthCheckResponse` frame in `body` (0 when absent, as
/// proto3 reads a missing field).
pub(crate) fn decode_response(body: &[u8]) -> Result<u64, String> {
    let bad = |why: &str| format!("malformed HealthCheckResponse: {why}");
    if body.len() < 5 {
        return Err(bad("no message"));
    }
    if body[0] != 0 {
        return Err(bad("compressed message"));
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let msg = body
        .get(5..5 + len)
        .ok_or_else(|| bad("truncated message"))?;
    let mut pos = 0;
    let mut status = 0;
    while pos < msg.len() {
        let key = get_varint(msg, &mut pos).ok_or_else(|| bad("bad field key"))?;
        let skip = match key & 7 {
            0 => {
                let v = get_varint(msg, &mut pos).ok_or_else(|| bad("bad varint"))?;
                if key >> 3 == 1 {
                    status = v;
                }
                0
            }
            1 => 8,
            2 => get_varint(msg, &mut pos).ok_or_else(|| bad("bad length"))? as usize,
            5 => 4,
            _ => return Err(bad("unsupported wire type")),
        };
        pos = pos
            .checked_add(skip)
            .filter(|&p| p <= msg.len())
            .ok_or_else(|| bad("truncated field"))?;
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_encoding() {
        assert_eq!(&encode_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &encode_request("ab")[..],
            &[0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']
        );
    }

    #[test]
    fn response_decoding() {
        assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(decode_response(&[0, 0, 0, 0, 0]), Ok(0));
        // An unknown length-delimited field 2 before the status.
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 2]),
            Ok(2)
        );
        assert!(decode_response(&[0, 0, 0, 0, 3, 0x08, 1]).is_err());
        assert!(decode_response(&[1, 0, 0, 0, 2, 0x08, 1]).is_err());
        assert!(decode_response(&[0, 0, 0, 0, 2, 0x12, 9]).is_err());
        assert!(decode_response(&[0, 0, 0]).is_err());
    }
}
