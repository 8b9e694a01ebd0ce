//! The HTTP health check: one `GET` (or the configured method) over a fresh TCP
//! connection with `Connection: close`; the host passes when the status line arrives
//! and its status is expected. The body is not read.

use crate::Host;
use mosn_config::{HealthCheckSessionConfig, StatusRange};
use mosn_tls::{ClientTls, Stream};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest status line read; longer answers fail the check.
const MAX_STATUS_LINE: usize = 1024;

/// One cluster's HTTP check, from `check_config`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HttpCheck {
    pub path: String,
    pub method: String,
    /// Host header; empty: the checked address.
    pub host: String,
    /// Port to check on the host's IP instead of the host's port.
    pub port: Option<u16>,
    /// Healthy statuses, both ends inclusive.
    pub statuses: Vec<(u16, u16)>,
    /// MOSN's `http_check_config.timeout`: bounds a check besides the check's `timeout`.
    pub client_timeout: Option<Duration>,
}

fn port_of(p: Option<i64>) -> Option<u16> {
    p.filter(|p| (1..65535).contains(p))
        .and_then(|p| u16::try_from(p).ok())
}

fn clamp_status(v: i64) -> u16 {
    v.clamp(0, 999) as u16
}

impl HttpCheck {
    /// The flat keys, overridden by MOSN's `http_check_config` where it sets them.
    pub fn from_config(cc: Option<&HealthCheckSessionConfig>) -> HttpCheck {
        let empty = HealthCheckSessionConfig::default();
        let cc = cc.unwrap_or(&empty);
        let mosn = cc.http_check_config.clone().unwrap_or_default();
        let pick = |m: &str, flat: &str, default: &str| {
            [m, flat]
                .into_iter()
                .find(|s| !s.is_empty())
                .unwrap_or(default)
                .to_string()
        };
        let mut statuses: Vec<(u16, u16)> = mosn
            .codes
            .iter()
            .map(|r: &StatusRange| (clamp_status(r.start), clamp_status(r.end)))
            .collect();
        if statuses.is_empty() {
            statuses = cc
                .expected_statuses
                .iter()
                .map(|r| (clamp_status(r.start), clamp_status(r.end - 1)))
                .collect();
        }
        if statuses.is_empty() {
            // MOSN's and Envoy's default: 200 only.
            statuses.push((200, 200));
        }
        HttpCheck {
            path: pick(&mosn.path, &cc.path, "/"),
            method: pick(&mosn.method, &cc.method, "GET").to_ascii_uppercase(),
            host: pick(&mosn.domain, &cc.host, ""),
            port: port_of(mosn.port).or(port_of(cc.port)),
            statuses,
            client_timeout: mosn.timeout.map(|d| d.0).filter(|d| !d.is_zero()),
        }
    }

    pub fn accepts(&self, status: u16) -> bool {
        self.statuses
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
    }

    /// Runs one check against `addr` (the caller bounds it with the timeout).
    pub async fn check(&self, host: &Host, tls: Option<&Arc<ClientTls>>) -> Result<(), String> {
        let addr = host.addr;
        let target = self
            .port
            .map_or(addr, |port| SocketAddr::new(addr.ip(), port));
        let mut stream = super::connect(host, target, tls, false).await?;
        let host = if self.host.is_empty() {
            target.to_string()
        } else {
            self.host.clone()
        };
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        let request = format!(
            "{} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mosn-rs-health-check\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n",
            self.method
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send request: {e}"))?;
        let status = read_status(&mut stream).await?;
        if self.accepts(status) {
            Ok(())
        } else {
            Err(format!("unexpected status {status}"))
        }
    }
}

/// Reads up to the end of the status line and parses it.
async fn read_status(stream: &mut Stream) -> Result<u16, String> {
    let mut buf = [0u8; MAX_STATUS_LINE];
    let mut len = 0;
    loop {
        let n = stream
            .read(&mut buf[len..])
            .await
            .map_err(|e| format!("read response: {e}"))?;
        if n == 0 {
            return Err("connection closed before a status line".into());
        }
        len += n;
        if let Some(end) = buf[..len].iter().position(|&b| b == b'\n') {
            let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
            return parse_status_line(line).ok_or_else(|| {
                format!(
                    "malformed status line {:?}",
                    String::from_utf8_lossy(&line[..line.len().min(80)])
                )
            });
        }
        if len == buf.len() {
            return Err("status line too long".into());
        }
    }
}

/// `HTTP/1.x SSS[ reason]`, strictly: the status is three digits from 100 to 599.
pub(crate) fn parse_status_line(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (&minor, rest) = rest.split_first()?;
    if !minor.is_ascii_digit() {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if rest.len() > 3 && rest[3] != b' ' {
        return None;
    }
    let status = rest[..3]
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    (100..=599).contains(&status).then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosn_config::HttpCheckConfig;

    #[test]
    fn status_lines_are_parsed_strictly() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503"), Some(503));
        assert_eq!(parse_status_line(b"HTTP/1.1 204 "), Some(204));
        for bad in [
            &b"HTTP/2 200 OK"[..],
            b"HTTP/1.1 20 OK",
            b"HTTP/1.1 2000 OK",
            b"HTTP/1.1  200 OK",
            b"HTTP/1.x 200 OK",
            b"HTTP/1.1 099 x",
            b"HTTP/1.1 600 x",
            b"ICY 200 OK",
            b"",
        ] {
            assert_eq!(
                parse_status_line(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn mosn_keys_win_over_flat_ones_and_ranges_differ() {
        let cc = HealthCheckSessionConfig {
            path: "/flat".into(),
            host: "flat.example".into(),
            expected_statuses: vec![StatusRange {
                start: 200,
                end: 300,
            }],
            ..Default::default()
        };
        let flat = HttpCheck::from_config(Some(&cc));
        assert_eq!(flat.path, "/flat");
        assert!(flat.accepts(299) && !flat.accepts(300));
        let mut both = cc.clone();
        both.http_check_config = Some(HttpCheckConfig {
            path: "/mosn".into(),
            port: Some(-1),
            codes: vec![StatusRange {
                start: 200,
                end: 204,
            }],
            ..Default::default()
        });
        let m = HttpCheck::from_config(Some(&both));
        assert_eq!(m.path, "/mosn");
        assert_eq!(m.host, "flat.example");
        assert_eq!(
            m.port, None,
            "a bad port checks the host's own port, as MOSN"
        );
        assert!(m.accepts(204) && !m.accepts(205));
        let default = HttpCheck::from_config(None);
        assert_eq!(
            (default.path.as_str(), default.method.as_str()),
            ("/", "GET")
        );
        assert!(default.accepts(200) && !default.accepts(204));
    }
}
