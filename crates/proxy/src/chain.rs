//! A listener with several filter chains, or with TLS: choose the chain for a
//! connection (Envoy's FilterChainMatch, most specific wins), terminate TLS with the
//! context its SNI selects, and hand the connection to the chain's network filter
//! with the protocol ALPN agreed on.
//!
//! MOSN's `inspector`: the first byte tells a TLS ClientHello (0x16) from plaintext,
//! so both share the port; a TLS chain then also serves plaintext connections.

use crate::client_hello;
use crate::snapshot::{ListenerKind, ListenerRuntime};
use crate::tcp::Cidr;
use crate::{Accepted, Shutdown};
use mosn_config::tls::FilterChainMatch;
use mosn_tls::{ServerTlsSet, Stream};
use std::net::IpAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// TLS records begin with this content type for a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

/// One filter chain of a listener.
pub struct FilterChain {
    pub criteria: FilterChainMatch,
    destinations: Vec<(Cidr, u8)>,
    sources: Vec<(Cidr, u8)>,
    pub tls: Option<ServerTlsSet>,
    /// The chain's network filter, as a listener of its own (same name and stats).
    pub runtime: Arc<ListenerRuntime>,
}

impl FilterChain {
    pub fn new(
        criteria: FilterChainMatch,
        tls: Option<ServerTlsSet>,
        runtime: Arc<ListenerRuntime>,
    ) -> FilterChain {
        let cidrs = |ranges: &[mosn_config::tls::CidrRange]| -> Vec<(Cidr, u8)> {
            ranges
                .iter()
                .filter_map(|r| {
                    let ip: IpAddr = r.address_prefix.parse().ok()?;
                    Some((Cidr::new(ip, u32::from(r.prefix_len)), r.prefix_len))
                })
                .collect()
        };
        FilterChain {
            destinations: cidrs(&criteria.prefix_ranges),
            sources: cidrs(&criteria.source_prefix_ranges),
            criteria,
            tls,
            runtime,
        }
    }
}

/// What the chain is chosen by.
struct ConnInfo<'a> {
    port: u16,
    /// The destination IP (the original one, when redirected).
    destination: IpAddr,
    sni: Option<&'a str>,
    tls: bool,
    alpn: &'a [&'a [u8]],
    source: IpAddr,
}

/// Keeps the candidates that score best on one criterion (None: excluded).
fn narrow(
    candidates: Vec<&FilterChain>,
    score: impl Fn(&FilterChain) -> Option<u32>,
) -> Vec<&FilterChain> {
    let scored: Vec<(u32, &FilterChain)> = candidates
        .into_iter()
        .filter_map(|c| score(c).map(|s| (s, c)))
        .collect();
    let best = scored.iter().map(|(s, _)| *s).max();
    scored
        .into_iter()
        .filter(|(s, _)| Some(*s) == best)
        .map(|(_, c)| c)
        .collect()
}

/// Envoy's order: destination port, destination IP, server names, transport
/// protocol, application protocols, source prefix; at each step the most specific
/// matching criteria win (for prefixes: the longest).
fn select<'a>(chains: &'a [FilterChain], c: &ConnInfo<'_>) -> Option<&'a FilterChain> {
    let mut cands: Vec<&FilterChain> = chains.iter().collect();
    cands = narrow(cands, |f| match f.criteria.destination_port {
        None => Some(0),
        Some(p) => (p == c.port).then_some(1),
    });
    cands = narrow(cands, |f| longest_prefix(&f.destinations, c.destination));
    cands = narrow(cands, |f| {
        server_name_score(&f.criteria.server_names, c.sni)
    });
    cands = narrow(cands, |f| match f.criteria.transport_protocol.as_str() {
        "" => Some(0),
        "tls" => c.tls.then_some(1),
        _ => (!c.tls).then_some(1),
    });
    cands = narrow(cands, |f| {
        let wanted = &f.criteria.application_protocols;
        if wanted.is_empty() {
            return Some(0);
        }
        c.alpn
            .iter()
            .any(|p| wanted.iter().any(|w| w.as_bytes() == *p))
            .then_some(1)
    });
    cands = narrow(cands, |f| longest_prefix(&f.sources, c.source));
    cands.first().copied()
}

/// A chain's score for an address: 0 without ranges (matches anything), else one
/// more than its longest range holding the address; None when none holds it.
fn longest_prefix(ranges: &[(Cidr, u8)], ip: IpAddr) -> Option<u32> {
    if ranges.is_empty() {
        return Some(0);
    }
    ranges
        .iter()
        .filter(|(cidr, _)| cidr.contains(ip))
        .map(|(_, len)| u32::from(*len) + 1)
        .max()
}

/// An exact name beats any wildcard; a longer wildcard suffix beats a shorter one;
/// a chain without names matches every connection, least specifically.
fn server_name_score(names: &[String], sni: Option<&str>) -> Option<u32> {
    if names.is_empty() {
        return Some(0);
    }
    let sni = sni?.trim_end_matches('.');
    names
        .iter()
        .filter_map(|n| {
            if n.eq_ignore_ascii_case(sni) {
                return Some(u32::MAX);
            }
            let suffix = n.strip_prefix('*')?;
            let matches = sni.len() > suffix.len()
                && sni[sni.len() - suffix.len()..].eq_ignore_ascii_case(suffix);
            matches.then_some(suffix.len() as u32)
        })
        .max()
}

/// TLS alert descriptions (RFC 8446 §6).
const ALERT_HANDSHAKE_FAILURE: u8 = 40;
const ALERT_UNRECOGNIZED_NAME: u8 = 112;

/// Refuses a ClientHello with a fatal alert (plaintext: no keys exist yet), so the
/// client reports why instead of an unexpected EOF.
async fn send_alert(stream: &TcpStream, description: u8) {
    let record = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description];
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let mut written = 0;
        while written < record.len() {
            if stream.writable().await.is_err() {
                return;
            }
            match stream.try_write(&record[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}

/// The application protocols the HTTP inspection gives a plaintext connection.
const SNIFFED: &[&str] = &["http/1.0", "http/1.1", "h2c"];

fn wants_http_sniffing(protocols: &[String]) -> bool {
    protocols.iter().any(|p| SNIFFED.contains(&p.as_str()))
}

/// Peeks (never consumes) a plaintext connection's first bytes: `h2c` for the HTTP/2
/// preface, `http/1.1` or `http/1.0` for an HTTP/1 request line; None for anything
/// else, or when nothing conclusive arrived by `deadline` (a protocol where the
/// server speaks first).
async fn sniff_http(stream: &TcpStream, deadline: Instant) -> Option<&'static str> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    // Envoy reads at most this much of a request line.
    let mut buf = vec![0u8; 1024];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        };
        let seen = &buf[..n];
        let preface_len = seen.len().min(PREFACE.len());
        if seen[..preface_len] == PREFACE[..preface_len] {
            if seen.len() >= PREFACE.len() {
                return Some("h2c");
            }
        } else if let Some(end) = memchr::memchr(b'\n', seen) {
            let line = seen[..end].strip_suffix(b"\r").unwrap_or(&seen[..end]);
            return http1_version(line);
        } else if n == buf.len() || !plausible_method(seen) {
            return None;
        }
        // More of the line (or the preface) is coming: wait for it.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        if Instant::now() >= deadline {
            return None;
        }
    }
}

/// `METHOD target HTTP/1.x` -> its version's protocol name.
fn http1_version(line: &[u8]) -> Option<&'static str> {
    let mut parts = line.split(|b| *b == b' ');
    let (method, _target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !plausible_method(method) {
        return None;
    }
    match version {
        b"HTTP/1.1" => Some("http/1.1"),
        b"HTTP/1.0" => Some("http/1.0"),
        _ => None,
    }
}

/// Could these bytes begin an HTTP/1 method (an upper-case token)?
fn plausible_method(bytes: &[u8]) -> bool {
    let token = bytes.split(|b| *b == b' ').next().unwrap_or(bytes);
    !token.is_empty() && token.len() <= 20 && token.iter().all(u8::is_ascii_uppercase)
}

/// Serves a connection on a listener with chains: see the module doc.
pub(crate) async fn serve(
    stream: TcpStream,
    conn: Accepted,
    listener: &ListenerRuntime,
    shutdown: Shutdown,
) {
    let chains = &listener.chains;
    let (peer, local) = (conn.peer, conn.local);
    let any_tls = chains.iter().any(|c| c.tls.is_some());
    let all_tls = chains.iter().all(|c| c.tls.is_some());
    let deadline = Instant::now() + listener.handshake_timeout;
    let peek_first = listener.inspector
        || (any_tls && !all_tls)
        || chains.iter().any(|c| {
            !c.criteria.transport_protocol.is_empty()
                || wants_http_sniffing(&c.criteria.application_protocols)
        });
    let is_tls = if peek_first {
        let mut first = [0u8; 1];
        match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
            Ok(Ok(1)) => first[0] == TLS_HANDSHAKE,
            _ => return,
        }
    } else {
        any_tls
    };
    if !is_tls {
        // Envoy's http_inspector: chains that ask for http/1.1, http/1.0 or h2c on a
        // plaintext connection are matched by what its first bytes say.
        let sniffed = if chains
            .iter()
            .any(|c| wants_http_sniffing(&c.criteria.application_protocols))
        {
            sniff_http(&stream, deadline).await
        } else {
            None
        };
        let sniffed_refs: Vec<&[u8]> = sniffed.iter().map(|p| p.as_bytes()).collect();
        let info = ConnInfo {
            port: local.port(),
            destination: local.ip(),
            sni: None,
            tls: false,
            alpn: &sniffed_refs,
            source: peer.ip(),
        };
        let Some(chain) = select(chains, &info) else {
            listener.stats.no_filter_chain.inc();
            return;
        };
        if chain.tls.is_some() && !listener.inspector {
            listener.stats.no_filter_chain.inc();
            return;
        }
        return crate::serve_chain(Stream::Plain(stream), conn, &chain.runtime, shutdown).await;
    }
    // The ClientHello is read without consuming it: a chain without TLS (a tcp_proxy
    // chosen by SNI) then gets the connection's bytes untouched.
    let hello = client_hello::peek(&stream, deadline).await;
    let (sni, alpn) = match &hello {
        Some(h) => (h.sni.clone(), h.alpn.clone()),
        None => (None, Vec::new()),
    };
    let alpn_refs: Vec<&[u8]> = alpn.iter().map(Vec::as_slice).collect();
    let info = ConnInfo {
        port: local.port(),
        destination: local.ip(),
        sni: sni.as_deref(),
        tls: true,
        alpn: &alpn_refs,
        source: peer.ip(),
    };
    let Some(chain) = select(chains, &info) else {
        listener.stats.no_filter_chain.inc();
        tracing::debug!(%peer, sni = ?sni, "no filter chain for this TLS connection: closing");
        return send_alert(&stream, ALERT_UNRECOGNIZED_NAME).await;
    };
    let Some(tls) = &chain.tls else {
        if hello.is_some() && matches!(chain.runtime.kind, ListenerKind::Tcp(_)) {
            // TLS passthrough: the upstream terminates it.
            return crate::serve_chain(Stream::Plain(stream), conn, &chain.runtime, shutdown).await;
        }
        listener.stats.no_filter_chain.inc();
        tracing::debug!(%peer, sni = ?sni, "TLS connection matched a chain that neither terminates nor passes TLS: closing");
        return send_alert(&stream, ALERT_HANDSHAKE_FAILURE).await;
    };
    let acceptor =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = match tokio::time::timeout_at(deadline, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => {
            listener.stats.tls_handshake_failure.inc();
            tracing::debug!(%peer, error = %e, "not a TLS ClientHello: closing");
            return;
        }
        Err(_) => {
            listener.stats.tls_handshake_failure.inc();
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let sni = start.client_hello().server_name().map(str::to_owned);
    let config = tls.select(sni.as_deref()).config();
    let stream = match tokio::time::timeout_at(deadline, start.into_stream(config)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            listener.stats.tls_handshake_failure.inc();
            tracing::info!(%peer, sni = ?sni, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            listener.stats.tls_handshake_failure.inc();
            tracing::info!(%peer, sni = ?sni, "TLS handshake timed out");
            return;
        }
    };
    listener.stats.tls_handshake_success.inc();
    crate::serve_chain(
        Stream::Server(Box::new(stream)),
        conn,
        &chain.runtime,
        shutdown,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::{longest_prefix, server_name_score};
    use crate::tcp::Cidr;

    #[test]
    fn the_longest_holding_prefix_scores_best() {
        let ranges = |l: &[(&str, u8)]| -> Vec<(Cidr, u8)> {
            l.iter()
                .map(|(a, n)| (Cidr::new(a.parse().unwrap(), u32::from(*n)), *n))
                .collect()
        };
        let ip = "10.96.0.10".parse().unwrap();
        assert_eq!(longest_prefix(&[], ip), Some(0));
        assert_eq!(longest_prefix(&ranges(&[("10.0.0.0", 8)]), ip), Some(9));
        assert_eq!(
            longest_prefix(&ranges(&[("10.0.0.0", 8), ("10.96.0.10", 32)]), ip),
            Some(33)
        );
        assert_eq!(longest_prefix(&ranges(&[("192.168.0.0", 16)]), ip), None);
    }

    #[test]
    fn exact_names_beat_wildcards_and_longer_wildcards_beat_shorter() {
        let names = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(server_name_score(&[], Some("a.b")), Some(0));
        assert_eq!(
            server_name_score(&names(&["a.b.c"]), Some("A.b.c")),
            Some(u32::MAX)
        );
        let short = server_name_score(&names(&["*.c"]), Some("a.b.c")).unwrap();
        let long = server_name_score(&names(&["*.b.c"]), Some("a.b.c")).unwrap();
        assert!(long > short);
        assert_eq!(server_name_score(&names(&["*.b.c"]), Some("b.c")), None);
        assert_eq!(server_name_score(&names(&["x.y"]), None), None);
    }
}
