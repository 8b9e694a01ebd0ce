//! MOSN's `tcp_proxy`: pick a cluster by the connection's source and destination,
//! connect to one of its hosts, and copy bytes both ways, half-closes included.

use crate::access_log::{flags, AccessLogs, Entry};
use mosn_config::filters::{CidrRange, TcpProxyConfig};
use mosn_config::validate::parse_port_range;
use mosn_observe::ListenerStats;
use mosn_tls::Stream;
use mosn_upstream::breaker::try_acquire_owned;
use mosn_upstream::{connect, Cluster, ClusterManager, LbContext, Transport, UpstreamTls};
use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// An IP prefix.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cidr {
    addr: IpAddr,
    len: u32,
}

impl Cidr {
    pub(crate) fn new(addr: IpAddr, len: u32) -> Cidr {
        Cidr { addr, len }
    }

    fn parse(c: &CidrRange) -> Option<Cidr> {
        c.address.parse().ok().map(|addr| Cidr {
            addr,
            len: c.length,
        })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.len),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.len),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u32) -> bool {
    let full = (bits / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

#[derive(Debug)]
struct TcpRoute {
    cluster: String,
    sources: Vec<Cidr>,
    destinations: Vec<Cidr>,
    source_ports: Option<(u16, u16)>,
    destination_ports: Option<(u16, u16)>,
}

impl TcpRoute {
    fn matches(&self, peer: SocketAddr, local: SocketAddr) -> bool {
        let in_list = |list: &[Cidr], ip| list.is_empty() || list.iter().any(|c| c.contains(ip));
        let in_range = |r: Option<(u16, u16)>, p| r.is_none_or(|(lo, hi)| (lo..=hi).contains(&p));
        in_list(&self.sources, peer.ip())
            && in_list(&self.destinations, local.ip())
            && in_range(self.source_ports, peer.port())
            && in_range(self.destination_ports, local.port())
    }
}

/// A listener running `tcp_proxy`.
#[derive(Debug)]
pub struct TcpProxyListener {
    routes: Vec<TcpRoute>,
    /// The filter's own cluster; clusters are looked up by name per connection, since
    /// they can be replaced at runtime.
    default_cluster: String,
    clusters: Arc<ClusterManager>,
    idle_timeout: Option<Duration>,
    /// One line per connection, when it ends.
    pub access_logs: AccessLogs,
}

impl TcpProxyListener {
    pub fn new(cfg: &TcpProxyConfig, clusters: Arc<ClusterManager>) -> Self {
        let routes = cfg
            .routes
            .iter()
            .map(|r| TcpRoute {
                cluster: r.cluster.clone(),
                sources: r.source_addrs.iter().filter_map(Cidr::parse).collect(),
                destinations: r.destination_addrs.iter().filter_map(Cidr::parse).collect(),
                source_ports: parse_port_range(&r.source_port),
                destination_ports: parse_port_range(&r.destination_port),
            })
            .collect();
        TcpProxyListener {
            routes,
            default_cluster: cfg.cluster.clone(),
            clusters,
            idle_timeout: cfg.idle_timeout.map(|d| d.0).filter(|d| !d.is_zero()),
            access_logs: AccessLogs::default(),
        }
    }

    /// The first route whose addresses match wins; else the filter's own cluster.
    fn cluster_for(&self, peer: SocketAddr, local: SocketAddr) -> Option<Arc<Cluster>> {
        let name = self
            .routes
            .iter()
            .find(|r| r.matches(peer, local))
            .map(|r| r.cluster.as_str())
            .unwrap_or(&self.default_cluster);
        self.clusters.get(name)
    }
}

/// Proxies the connection; `prefix` holds bytes already read from the client (by
/// protocol detection) that go upstream first. Its access log line is written when
/// it ends.
pub async fn serve(
    down: Stream,
    accepted: crate::Accepted,
    l: &TcpProxyListener,
    stats: &ListenerStats,
    prefix: &[u8],
) {
    let mut log = l
        .access_logs
        .entry("TCP", || (accepted.local.into(), accepted.peer.into()));
    proxy(down, accepted, l, stats, prefix, log.as_deref_mut()).await;
    if let Some(e) = log {
        l.access_logs.log(&e, |_| None);
    }
}

async fn proxy(
    down: Stream,
    accepted: crate::Accepted,
    l: &TcpProxyListener,
    stats: &ListenerStats,
    prefix: &[u8],
    mut log: Option<&mut Entry>,
) {
    let mut note = |f: &dyn Fn(&mut Entry)| {
        if let Some(e) = log.as_deref_mut() {
            f(e);
        }
    };
    let (peer, local) = (accepted.peer, accepted.local);
    let Some(cluster) = l.cluster_for(peer, local) else {
        stats.no_route.inc();
        note(&|e| e.flags |= flags::NO_ROUTE);
        tracing::debug!(%peer, "tcp_proxy: no cluster matches; closing");
        return;
    };
    let Some(host) = cluster.choose_host(&LbContext {
        original_dst: Some(local),
        ..Default::default()
    }) else {
        stats.no_healthy_upstream.inc();
        note(&|e| e.flags |= flags::NO_HEALTHY_UPSTREAM);
        return;
    };
    note(&|e| e.upstream(&host, &cluster.name));
    let Some(permit) = try_acquire_owned(&cluster.breakers.connections) else {
        stats.upstream_overflow.inc();
        cluster.stats.upstream_connection_overflow.inc();
        note(&|e| e.flags |= flags::OVERFLOW);
        return;
    };
    cluster.stats.upstream_connection_total.inc();
    let tls = match &cluster.tls {
        UpstreamTls::Off => None,
        UpstreamTls::On(tls) => Some(tls),
        UpstreamTls::Failed(_) => {
            stats.upstream_connect_failure.inc();
            note(&|e| e.flags |= flags::CONNECT_FAILURE);
            return;
        }
    };
    let transport = Transport { tls, h2: false };
    let mut up = match connect(&host, cluster.connect_timeout, Some(permit), transport).await {
        Ok(conn) => conn.stream,
        Err(e) => {
            stats.upstream_connect_failure.inc();
            cluster.stats.upstream_connection_connect_fail.inc();
            note(&|e| e.flags |= flags::CONNECT_FAILURE);
            tracing::debug!(%peer, error = %e, "tcp_proxy: upstream connect failed");
            return;
        }
    };
    let upstream_local = up.local_addr().ok().map(Into::into);
    note(&|e| e.upstream_local = upstream_local);
    if !prefix.is_empty() && up.write_all(prefix).await.is_err() {
        return;
    }
    let mut down = down;
    let (bytes_in, bytes_out) = relay(&mut down, &mut up, l.idle_timeout).await;
    let bytes_in = bytes_in + prefix.len() as u64;
    stats.downstream_bytes_read_total.add(bytes_in);
    stats.downstream_bytes_write_total.add(bytes_out);
    note(&|e| {
        e.bytes_received = bytes_in;
        e.bytes_sent = bytes_out;
    });
}

/// Copies both ways until both directions ended (each EOF is passed on as a
/// half-close), an error, or `idle` passes without a byte. Returns bytes (in, out).
pub(crate) async fn relay(
    down: &mut Stream,
    up: &mut Stream,
    idle: Option<Duration>,
) -> (u64, u64) {
    if let (Stream::Plain(down), Stream::Plain(up)) = (&mut *down, &mut *up) {
        // Plain sockets split into halves without a lock.
        let (dr, dw) = down.split();
        let (ur, uw) = up.split();
        return copy_both(dr, dw, ur, uw, idle).await;
    }
    let (dr, dw) = tokio::io::split(down);
    let (ur, uw) = tokio::io::split(up);
    copy_both(dr, dw, ur, uw, idle).await
}

async fn copy_both<DR, DW, UR, UW>(
    dr: DR,
    dw: DW,
    ur: UR,
    uw: UW,
    idle: Option<Duration>,
) -> (u64, u64)
where
    DR: AsyncRead + Unpin,
    DW: AsyncWrite + Unpin,
    UR: AsyncRead + Unpin,
    UW: AsyncWrite + Unpin,
{
    let last_activity = Cell::new(Instant::now());
    let copy = async { tokio::join!(pump(dr, uw, &last_activity), pump(ur, dw, &last_activity)) };
    match idle {
        None => copy.await,
        Some(idle) => {
            tokio::pin!(copy);
            loop {
                let deadline = last_activity.get() + idle;
                tokio::select! {
                    totals = &mut copy => break totals,
                    _ = tokio::time::sleep_until(deadline.into()) => {
                        if last_activity.get().elapsed() >= idle {
                            break (0, 0);
                        }
                    }
                }
            }
        }
    }
}

async fn pump<R, W>(mut from: R, mut to: W, activity: &Cell<Instant>) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        activity.set(Instant::now());
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        total += n as u64;
    }
    let _ = to.shutdown().await;
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let c = Cidr {
            addr: "10.1.0.0".parse().unwrap(),
            len: 16,
        };
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        let odd = Cidr {
            addr: "192.168.1.128".parse().unwrap(),
            len: 25,
        };
        assert!(odd.contains("192.168.1.200".parse().unwrap()));
        assert!(!odd.contains("192.168.1.100".parse().unwrap()));
        let all = Cidr {
            addr: "0.0.0.0".parse().unwrap(),
            len: 0,
        };
        assert!(all.contains("8.8.8.8".parse().unwrap()));
    }
}
