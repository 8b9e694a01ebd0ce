//! `Upgrade` (WebSocket and the like): the request goes upstream with its Upgrade and
//! Connection fields; only when the upstream answers 101 does the connection become a
//! two-way byte tunnel. Any other answer is relayed as a normal response and the
//! connection stays HTTP (so a server that ignores the upgrade cannot smuggle a tunnel,
//! the CVE-2024-23326 class). `Upgrade: h2c` is never passed on.

use super::exchange::take_connection;
use super::headers::{self, RouterView, UpstreamRequest};
use super::io::{read_some, write_all, READ_CHUNK};
use super::local_reply::LocalReply;
use super::reply::{reply, write_down};
use super::response::send_response;
use super::{Downstream, Next};
use crate::shutdown::Shutdown;
use bytes::BytesMut;
use mosn_config::DEFAULT_ROUTE_TIMEOUT;
use mosn_protocol::http1::{parse_response, BodyFraming, RequestHead};
use mosn_router::{ClusterAction, Route};
use mosn_upstream::outlier::{self, Outcome as OutlierOutcome};
use mosn_upstream::{ActiveRequest, Cluster, Host};
use std::sync::Arc;
use tokio::time::Instant;

/// The protocol a request asks to upgrade to, when it is one the proxy tunnels: the
/// request says `Connection: upgrade`, has no body, and does not ask for h2c.
pub(super) fn requested(head: &RequestHead, framing: BodyFraming) -> Option<Vec<u8>> {
    if !head.info.connection_upgrade || framing.has_body() {
        return None;
    }
    let protocol = head.header("upgrade")?;
    if protocol.is_empty() || protocol.len() >= 3 && protocol[..3].eq_ignore_ascii_case(b"h2c") {
        return None;
    }
    Some(protocol.to_vec())
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn forward(
    conn: &mut Downstream<'_>,
    head: &RequestHead,
    route: &Route,
    action: &ClusterAction,
    cluster: &Cluster,
    host: &Arc<Host>,
    protocol: &[u8],
    shutdown: &Shutdown,
) -> Next {
    let _active = ActiveRequest::new(host);
    cluster.stats.upstream_request_total.inc();
    let mut up = match take_connection(cluster, host).await {
        Ok(up) => up,
        Err(local) => {
            if local == LocalReply::ConnectFailure {
                outlier::report(host, OutlierOutcome::LocalOriginFailure);
            }
            return reply(conn, local, true, head).await;
        }
    };
    let view = RouterView(head, conn.peer);
    let hostname = (!host.hostname.is_empty()).then_some(host.hostname.as_str());
    let target = action.rewrite_path(head.path_and_query());
    let mut head_out = Vec::with_capacity(head.buf.len() + 128);
    headers::write_upstream_request(
        &mut head_out,
        head,
        &UpstreamRequest {
            target: target.as_deref(),
            host: action.host_rewrite.host(&view, hostname),
            remove: &route.headers.request_remove,
            add: &route.headers.request_add,
            forwarded_for: conn
                .listener
                .options
                .add_x_forwarded_for
                .then_some(conn.peer_ip.as_str()),
            drop_expect: false,
            fallback_host: &host.authority,
            upgrade: Some(protocol),
            xfcc: conn.client_cert.action(conn.listener.xfcc),
            trace: None,
        },
    );
    let limit = conn.listener.options.body_timeout.0;
    if write_all(&mut up.stream, &head_out, limit).await.is_err() {
        return reply(conn, LocalReply::UpstreamReset, true, head).await;
    }
    let timeout = match action.timeout {
        None => DEFAULT_ROUTE_TIMEOUT,
        Some(d) if d.is_zero() => std::time::Duration::from_secs(24 * 3600),
        Some(d) => d,
    };
    let deadline = Instant::now() + timeout;
    let mut ubuf = BytesMut::with_capacity(READ_CHUNK);
    let resp = loop {
        match parse_response(&mut ubuf, &conn.listener.upstream_limits) {
            Ok(Some(r)) if r.status == 101 || r.status >= 200 => break r,
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(_) => return reply(conn, LocalReply::UpstreamProtocolError, true, head).await,
        }
        match tokio::time::timeout_at(deadline, read_some(&mut up.stream, &mut ubuf, READ_CHUNK))
            .await
        {
            Err(_) => {
                outlier::report(host, OutlierOutcome::LocalOriginFailure);
                return reply(conn, LocalReply::UpstreamTimeout, true, head).await;
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                outlier::report(host, OutlierOutcome::LocalOriginFailure);
                return reply(conn, LocalReply::UpstreamReset, true, head).await;
            }
            Ok(Ok(_)) => {}
        }
    };
    outlier::report(host, OutlierOutcome::Success(resp.status));
    if resp.status != 101 {
        // No switch: an ordinary response, and the connection stays HTTP.
        return send_response(conn, up, (resp, ubuf), head, route, cluster, shutdown).await;
    }
    cluster.stats.response(101);
    conn.responded(101);
    let mut out = Vec::with_capacity(resp.buf.len() + 64);
    headers::write_switching(&mut out, &resp, protocol);
    out.extend_from_slice(&ubuf);
    if write_down(conn, &out).await.is_err() {
        return Next::Close;
    }
    tunnel(conn, &mut up.stream, action).await
}

/// `CONNECT host:port`: tunnelled to the cluster of the route it matches. CONNECT's
/// target has no path, so only routes without a path condition can match it (for
/// example `"match": {"headers": [{"name": ":method", "value": "CONNECT"}]}`): a
/// proxy never becomes an open tunnel by a `prefix: "/"` route. No route: 404.
pub(super) async fn connect(
    conn: &mut Downstream<'_>,
    head: &RequestHead,
    table: &mosn_router::RouteTable,
) -> Next {
    let view = RouterView(head, conn.peer);
    let Some(route) = table.route(&view) else {
        return reply(conn, LocalReply::NoRoute, true, head).await;
    };
    let mosn_router::RouteAction::Cluster(action) = &route.action else {
        return reply(
            conn,
            LocalReply::BadRequest(405, "CONNECT needs a cluster route"),
            true,
            head,
        )
        .await;
    };
    let Some(choice) = action.pick_cluster(&view, fastrand::u64(..)) else {
        // cluster_header with no usable value: no cluster (503, as Envoy).
        return reply(conn, LocalReply::NoHealthyUpstream, true, head).await;
    };
    let Some(cluster) = conn.listener.clusters.get(choice.name) else {
        return reply(conn, LocalReply::NoHealthyUpstream, true, head).await;
    };
    let Some(host) = cluster.choose_host(&mosn_upstream::LbContext::default()) else {
        return reply(conn, LocalReply::NoHealthyUpstream, true, head).await;
    };
    let _active = ActiveRequest::new(&host);
    cluster.stats.upstream_request_total.inc();
    let mut up = match super::exchange::open_connection(&cluster, &host, false).await {
        Ok(up) => up,
        Err(local) => return reply(conn, local, true, head).await,
    };
    conn.responded(200);
    if write_down(conn, b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return Next::Close;
    }
    tunnel(conn, &mut up.stream, action).await
}

/// Turns the connection into a byte tunnel to `up` until either side ends or it idles
/// (the route's `idle_timeout`, else the listener's idle timeout). Client bytes read past
/// the request head go first: they belong to the tunnelled protocol.
async fn tunnel(
    conn: &mut Downstream<'_>,
    up: &mut mosn_tls::Stream,
    action: &ClusterAction,
) -> Next {
    let limit = conn.listener.options.body_timeout.0;
    if !conn.buf.is_empty() {
        let early = conn.buf.split();
        if write_all(up, &early, limit).await.is_err() {
            return Next::Close;
        }
    }
    let idle = action
        .idle_timeout
        .filter(|d| !d.is_zero())
        .unwrap_or(conn.listener.idle_timeout);
    let (bytes_in, bytes_out) = crate::tcp::relay(&mut conn.stream, up, Some(idle)).await;
    conn.read_bytes(bytes_in);
    conn.wrote_bytes(bytes_out);
    Next::Close
}
