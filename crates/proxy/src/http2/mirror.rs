//! Request mirroring for HTTP/2 streams: a copy of a request (with a held body) goes
//! to another cluster over the listener's upstream protocol; its response is read for
//! the stats and dropped. It runs as its own task on this worker, so it never delays
//! or fails the original.

use super::h1_upstream::request_head;
use super::pool;
use super::stream::append_forwarded_for;
use crate::http1::exchange::take_connection;
use crate::http1::io::{read_some, write_all};
use crate::http1::HttpListener;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request};
use mosn_config::filters::ProxyProtocol;
use mosn_protocol::http1::{parse_response, HeadLimits};
use mosn_router::ClusterAction;
use mosn_upstream::{Cluster, Host, LbContext};
use std::sync::Arc;
use std::time::Duration;

/// How long a mirrored request may take in all.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(10);

/// Who sent the request: the copy carries the same X-Forwarded-For and
/// X-Forwarded-Client-Cert as the original.
pub(crate) struct From<'a> {
    pub peer: std::net::IpAddr,
    pub xfcc: crate::xfcc::Action<'a>,
}

/// What the copy carries.
struct Copy {
    method: http::Method,
    authority: String,
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
}

/// Sends a copy of the request to `cluster`. The authority gets Envoy's `-shadow`
/// suffix so the mirror can tell copies apart; the path is the route's rewrite.
pub(crate) fn spawn(
    from: From<'_>,
    listener: &HttpListener,
    action: &ClusterAction,
    parts: &http::request::Parts,
    body: Bytes,
    cluster: &str,
) {
    let Some(cluster) = listener.clusters.get(cluster) else {
        return;
    };
    let original = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let path_and_query = match action.rewrite_path(original.as_bytes()) {
        Some(p) => String::from_utf8_lossy(&p).into_owned(),
        None => original.to_string(),
    };
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
        })
        .unwrap_or("");
    let mut headers = parts.headers.clone();
    headers.remove(http::header::HOST);
    if listener.options.add_x_forwarded_for {
        append_forwarded_for(&mut headers, from.peer);
    }
    crate::xfcc::apply(&mut headers, from.xfcc);
    let copy = Copy {
        method: parts.method.clone(),
        authority: format!("{authority}-shadow"),
        path_and_query,
        headers,
        body,
    };
    let h1 = listener.upstream_for(&cluster) == Some(ProxyProtocol::Http1);
    let http2 = listener.http2.clone();
    let limits = listener.upstream_limits;
    tokio::task::spawn_local(async move {
        let run = async {
            let host = cluster.choose_host(&LbContext::default())?;
            cluster.stats.upstream_request_total.inc();
            let status = if h1 {
                send_h1(&cluster, &host, &copy, &limits).await?
            } else {
                send_h2(&cluster, &host, &copy, &http2).await?
            };
            cluster.stats.response(status);
            Some(())
        };
        let _ = tokio::time::timeout(MIRROR_TIMEOUT, run).await;
    });
}

async fn send_h1(
    cluster: &Cluster,
    host: &Arc<Host>,
    copy: &Copy,
    limits: &HeadLimits,
) -> Option<u16> {
    let mut up = take_connection(cluster, host).await.ok()?;
    let mut out = request_head(
        copy.method.as_str(),
        &copy.path_and_query,
        &copy.authority,
        &copy.headers,
        false,
    );
    out.extend_from_slice(&copy.body);
    write_all(&mut up.stream, &out, MIRROR_TIMEOUT).await.ok()?;
    // The connection is dropped after the head rather than pooled: no body to read.
    let mut buf = BytesMut::new();
    loop {
        if let Ok(Some(resp)) = parse_response(&mut buf, limits) {
            return Some(resp.status);
        }
        if read_some(&mut up.stream, &mut buf, 8192).await.ok()? == 0 {
            return None;
        }
    }
}

async fn send_h2(
    cluster: &Cluster,
    host: &Arc<Host>,
    copy: &Copy,
    options: &mosn_config::filters::Http2Options,
) -> Option<u16> {
    let (mut sender, _slot) = pool::sender(cluster, host, options).await.ok()?;
    let mut request = Request::builder()
        .method(copy.method.clone())
        .uri(format!("http://{}{}", copy.authority, copy.path_and_query))
        .version(http::Version::HTTP_2);
    *request.headers_mut()? = copy.headers.clone();
    let request = request.body(()).ok()?;
    let end = copy.body.is_empty();
    let (response, mut send) = sender.send_request(request, end).ok()?;
    if !end {
        super::body::send_all(&mut send, copy.body.clone(), true)
            .await
            .ok()?;
    }
    Some(response.await.ok()?.status().as_u16())
}
