//! Per-worker pools of idle upstream HTTP/1.1 connections.
//!
//! Each worker thread owns its pool (a thread-local), so taking and returning a
//! connection touches no lock and no other core's memory. A connection is returned
//! only after an exchange that ended cleanly; one that failed mid-request is dropped.

use crate::breaker::OwnedPermit;
use crate::host::{ActiveConnection, Host};
use crate::FastMap;
use mosn_tls::{ClientTls, Stream};
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// What keeps a connection counted (breaker unit, active-connection gauge) once its
/// socket is handed to another protocol's driver (HTTP/2).
#[derive(Debug)]
pub struct ConnGuard {
    _permit: Option<OwnedPermit>,
    _active: ActiveConnection,
}

impl PooledConn {
    /// The socket and the guard that keeps the connection counted until dropped.
    pub fn into_stream(self) -> (Stream, ConnGuard) {
        (
            self.stream,
            ConnGuard {
                _permit: self._permit,
                _active: self._active,
            },
        )
    }
}

/// Idle connections kept per upstream address and worker.
pub const MAX_IDLE_PER_HOST: usize = 256;
/// An idle upstream connection older than this is closed rather than reused, before
/// servers with common keep-alive timeouts (nginx 75 s) close it under us.
pub const MAX_IDLE_TIME: Duration = Duration::from_secs(60);

/// An upstream connection with its use count.
#[derive(Debug)]
pub struct PooledConn {
    pub stream: Stream,
    /// The connection's local address, with its text (made once: access logs print
    /// it per request).
    pub local: Option<mosn_observe::addr_text::TextedAddr>,
    /// Which transport it speaks (0: plain TCP; else its TLS context's identity):
    /// connections are reused only by requests wanting the same one.
    transport: usize,
    pub host: Arc<Host>,
    /// The cluster's connection breaker unit, held while the connection is open.
    _permit: Option<OwnedPermit>,
    /// Counts the connection in the host's `cx_active` (least-connection balancing).
    _active: ActiveConnection,
    /// Requests this connection has carried, the current one included.
    pub requests: u32,
    /// True when it came from the pool rather than a fresh connect.
    pub reused: bool,
    idle_since: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {0} timed out")]
    Timeout(SocketAddr),
    #[error("connect to {0} failed: {1}")]
    Io(SocketAddr, #[source] io::Error),
    #[error("TLS handshake with {0} failed: {1}")]
    Tls(SocketAddr, String),
}

thread_local! {
    static IDLE: RefCell<FastMap<(SocketAddr, usize), Vec<PooledConn>>> = RefCell::new(FastMap::default());
}

/// The transport identity of connections made with `tls` (see [`PooledConn`]).
pub fn transport_id(tls: Option<&Arc<ClientTls>>) -> usize {
    tls.map_or(0, |t| Arc::as_ptr(t) as usize)
}

/// Takes an idle connection to `addr` over `transport` that is still open, if this
/// worker has one.
pub fn checkout(addr: SocketAddr, transport: usize) -> Option<PooledConn> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(&(addr, transport))?;
        while let Some(mut conn) = list.pop() {
            if !conn.host.is_removed()
                && conn.idle_since.elapsed() < MAX_IDLE_TIME
                && still_open(&conn.stream)
            {
                conn.requests += 1;
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    })
}

/// Gives a connection back after a clean exchange (a connection to a host that left
/// its cluster is closed instead).
pub fn checkin(mut conn: PooledConn) {
    if conn.host.is_removed() {
        return;
    }
    conn.idle_since = Instant::now();
    let key = (conn.host.addr, conn.transport);
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE_PER_HOST {
            list.push(conn);
        }
    });
}

/// How often each worker sweeps its idle connections.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Closes this worker's idle connections that are no use any more: to hosts that left
/// their cluster, idle past [`MAX_IDLE_TIME`], or closed by the upstream. Workers call
/// it every [`SWEEP_INTERVAL`], so such sockets do not linger until the next request.
pub fn sweep() {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        for list in idle.values_mut() {
            list.retain(|c| {
                !c.host.is_removed()
                    && c.idle_since.elapsed() < MAX_IDLE_TIME
                    && still_open(&c.stream)
            });
        }
        idle.retain(|_, list| !list.is_empty());
    });
}

/// Closes every idle connection of this worker (graceful stop).
pub fn clear() {
    IDLE.with(|idle| idle.borrow_mut().clear());
}

/// A pooled connection on which the server sent nothing and did not close: the
/// usual way a stale keep-alive connection shows is a readable EOF.
fn still_open(stream: &Stream) -> bool {
    let mut probe = [0u8; 1];
    // On a TLS connection the byte read is a record's (a close_notify, most likely):
    // either way the connection is not reused.
    matches!(stream.tcp().try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// How to speak to an upstream: TLS with this context (for an HTTP/2 pool or not,
/// which picks the ALPN offer), or plain TCP.
#[derive(Clone, Copy)]
pub struct Transport<'a> {
    pub tls: Option<&'a Arc<ClientTls>>,
    pub h2: bool,
}

impl Transport<'_> {
    pub const PLAIN: Transport<'static> = Transport {
        tls: None,
        h2: false,
    };
}

/// Opens a new connection to `host` within `timeout` (TLS handshake included),
/// holding `permit` (the cluster's connection breaker unit) for its life.
pub async fn connect(
    host: &Arc<Host>,
    timeout: Duration,
    permit: Option<OwnedPermit>,
    transport: Transport<'_>,
) -> Result<PooledConn, ConnectError> {
    let addr = host.addr;
    host.stats.cx_total.fetch_add(1, Ordering::Relaxed);
    let started = tokio::time::Instant::now();
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        failed => {
            host.stats.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
            return Err(match failed {
                Ok(Err(e)) => ConnectError::Io(addr, e),
                _ => ConnectError::Timeout(addr),
            });
        }
    };
    // Heads and small bodies go out in one write; waiting for ACKs only adds latency.
    let _ = tcp.set_nodelay(true);
    let stream = match transport.tls {
        None => Stream::Plain(tcp),
        Some(tls) => {
            let name = tls.server_name(&host.hostname, addr.ip());
            let handshake = tls.connector(transport.h2).connect(name, tcp);
            match tokio::time::timeout_at(started + timeout, handshake).await {
                Ok(Ok(s)) => Stream::Client(Box::new(s)),
                failed => {
                    host.stats.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
                    let reason = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_string(),
                    };
                    tracing::warn!(upstream = %addr, error = %reason, "upstream TLS handshake failed");
                    return Err(ConnectError::Tls(addr, reason));
                }
            }
        }
    };
    Ok(PooledConn {
        local: stream.local_addr().ok().map(Into::into),
        stream,
        transport: transport_id(transport.tls),
        host: host.clone(),
        _permit: permit,
        _active: ActiveConnection::new(host),
        requests: 1,
        reused: false,
        idle_since: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(flavor = "current_thread")]
    async fn reuses_open_connections_and_drops_closed_ones() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let host = test_host(addr);
        let conn = connect(&host, Duration::from_secs(1), None, Transport::PLAIN)
            .await
            .unwrap();
        let (mut server_side, _) = listener.accept().await.unwrap();
        checkin(conn);
        let again = checkout(addr, 0).expect("open connection is reused");
        assert_eq!(again.requests, 2);
        assert!(again.reused);
        checkin(again);
        server_side.shutdown().await.unwrap();
        drop(server_side);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            checkout(addr, 0).is_none(),
            "closed connection must not be reused"
        );
    }

    fn test_host(addr: SocketAddr) -> Arc<Host> {
        Arc::new(Host::new(addr, "", 1, Default::default()))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connections_to_removed_hosts_are_not_pooled() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let host = test_host(addr);
        let conn = connect(&host, Duration::from_secs(1), None, Transport::PLAIN)
            .await
            .unwrap();
        let _server_side = listener.accept().await.unwrap();
        checkin(conn);
        host.mark_removed();
        assert!(checkout(addr, 0).is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connect_failure_is_reported() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let host = test_host(addr);
        assert!(matches!(
            connect(&host, Duration::from_secs(1), None, Transport::PLAIN).await,
            Err(ConnectError::Io(..))
        ));
        assert_eq!(host.stats.cx_connect_fail.load(Ordering::Relaxed), 1);
    }
}
