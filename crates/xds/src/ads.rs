//! The ADS client: one gRPC stream to the xDS server carrying every resource type,
//! in the state-of-the-world (`StreamAggregatedResources`) or the delta
//! (`DeltaAggregatedResources`) variant.
//!
//! The client keeps, per type, the resources it last accepted. A response is merged
//! into a copy of that set and handed whole to the [`Handler`]; the handler converts
//! and applies it, or refuses it with a reason. Accepted: the copy becomes the set
//! and the response is ACKed. Refused: the set stays and the response is NACKed with
//! the reason as `error_detail` (the running config does not change).
//!
//! Order, as Envoy warms: clusters (CDS) are asked for first; listeners (LDS) once
//! the first CDS answer was handled, so routes find their clusters; endpoints (EDS),
//! route configurations (RDS) and secrets (SDS) by name, as the handler asks for
//! them after each update. A broken stream is opened again after a jittered,
//! growing pause; the last accepted config keeps serving meanwhile.

use crate::status::XdsStatus;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// Every type, in the order a new stream asks for them.
pub const TYPES: [&str; 5] = [CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET];

/// Types whose resources come all at once (no names asked for).
fn is_wildcard(type_url: &str) -> bool {
    type_url == CLUSTER || type_url == LISTENER
}

/// Short names, for logs and the admin page.
pub fn type_name(type_url: &str) -> &'static str {
    match type_url {
        CLUSTER => "cds",
        ENDPOINT => "eds",
        LISTENER => "lds",
        ROUTE => "rds",
        SECRET => "sds",
        _ => "unknown",
    }
}

/// One resource as the client holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub version: String,
    pub body: Any,
}

/// The resources of one type, by name.
pub type ResourceSet = BTreeMap<String, Resource>;

/// Converts and applies what the xDS server sends.
pub trait Handler: Send {
    /// `resources` is the whole set of `type_url` the update would leave. Err: the
    /// update is refused whole, with this reason (the NACK's error_detail).
    fn update(&mut self, type_url: &str, resources: &ResourceSet) -> Result<(), String>;

    /// The names of a by-name type (EDS, RDS, SDS) the accepted config needs.
    fn wanted(&self, type_url: &str) -> BTreeSet<String>;
}

/// How to reach the xDS server and who we are.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://host:port` (or `https://`).
    pub uri: String,
    pub tls: Option<tonic::transport::ClientTlsConfig>,
    pub node: Node,
    pub delta: bool,
    pub connect_timeout: Duration,
}

/// Back-off between stream attempts: 250 ms doubling to 30 s, with jitter.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A stream that lived this long resets the back-off.
const HEALTHY_STREAM: Duration = Duration::from_secs(30);

/// Runs the client for ever: streams, and opens them again when they end.
pub async fn run<H: Handler>(config: ClientConfig, mut handler: H, status: Arc<XdsStatus>) {
    let mut state = ClientState::default();
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = tokio::time::Instant::now();
        let ended = match connect(&config).await {
            Ok(channel) => {
                status.connected(true);
                let r = if config.delta {
                    delta_stream(channel, &config, &mut handler, &mut state, &status).await
                } else {
                    sotw_stream(channel, &config, &mut handler, &mut state, &status).await
                };
                status.connected(false);
                r
            }
            Err(e) => Err(e),
        };
        if let Err(e) = ended {
            status.stream_error(&e);
            tracing::warn!(server = %config.uri, error = %e, "xDS stream ended");
        }
        if started.elapsed() >= HEALTHY_STREAM {
            backoff = BACKOFF_MIN;
        }
        // Full jitter on a growing ceiling: many sidecars do not reconnect in step.
        let pause = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
        tokio::time::sleep(pause).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn connect(config: &ClientConfig) -> Result<Channel, String> {
    let mut endpoint = Endpoint::from_shared(config.uri.clone())
        .map_err(|e| format!("bad xDS server address {}: {e}", config.uri))?
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    if let Some(tls) = &config.tls {
        endpoint = endpoint
            .tls_config(tls.clone())
            .map_err(|e| format!("xDS TLS: {e}"))?;
    }
    endpoint.connect().await.map_err(|e| {
        // tonic's "transport error" says little: the causes underneath say why.
        let mut text = format!("connect to {}: {e}", config.uri);
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    })
}

/// What the client knows across streams.
#[derive(Default)]
struct ClientState {
    /// Accepted resources per type.
    sets: BTreeMap<&'static str, ResourceSet>,
    /// SotW: the version last accepted per type.
    versions: BTreeMap<&'static str, String>,
}

fn static_type(type_url: &str) -> Option<&'static str> {
    TYPES.iter().copied().find(|t| *t == type_url)
}

/// What a stream asked for per type: the names, and whether it asked at all.
#[derive(Default)]
struct Subscriptions {
    asked: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Subscriptions {
    /// The names to ask for now, when they differ from what was asked (None: no
    /// change). LDS waits for the first CDS answer.
    fn due(
        &self,
        type_url: &'static str,
        handler: &dyn HandlerNames,
        cds_done: bool,
    ) -> Option<BTreeSet<String>> {
        if type_url == LISTENER && !cds_done {
            return None;
        }
        let want = if is_wildcard(type_url) {
            BTreeSet::new()
        } else {
            handler.names(type_url)
        };
        match self.asked.get(type_url) {
            Some(asked) if *asked == want => None,
            // A by-name type nobody needs is not asked for until it is needed.
            None if !is_wildcard(type_url) && want.is_empty() => None,
            _ => Some(want),
        }
    }
}

/// The handler's wanted names, object-safe (the stream functions are generic).
trait HandlerNames {
    fn names(&self, type_url: &str) -> BTreeSet<String>;
}

impl<H: Handler> HandlerNames for H {
    fn names(&self, type_url: &str) -> BTreeSet<String> {
        self.wanted(type_url)
    }
}

/// Records how an update ended; the NACK's error_detail when it was refused.
fn outcome(
    status: &XdsStatus,
    t: &'static str,
    version: &str,
    result: &Result<(), String>,
) -> Option<RpcStatus> {
    match result {
        Ok(()) => {
            status.accepted(t, version);
            None
        }
        Err(reason) => {
            status.rejected(t, version, reason);
            tracing::warn!(type_url = t, version, %reason, "xDS update refused (NACK)");
            Some(nack_status(reason))
        }
    }
}

fn nack_status(message: &str) -> RpcStatus {
    // google.rpc.Code INVALID_ARGUMENT, as Envoy sends for a rejected config.
    RpcStatus {
        code: 3,
        message: message.to_string(),
        details: Vec::new(),
    }
}

/// Applies a merged set through the handler; on success it becomes the set.
fn offer<H: Handler>(
    handler: &mut H,
    state: &mut ClientState,
    type_url: &'static str,
    merged: ResourceSet,
) -> Result<(), String> {
    handler.update(type_url, &merged)?;
    state.sets.insert(type_url, merged);
    Ok(())
}

async fn sotw_stream<H: Handler>(
    channel: Channel,
    config: &ClientConfig,
    handler: &mut H,
    state: &mut ClientState,
    status: &XdsStatus,
) -> Result<(), String> {
    let (tx, rx) = mpsc::unbounded_channel::<DiscoveryRequest>();
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let mut subs = Subscriptions::default();
    let mut nonces: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut first = true;
    let mut cds_done = false;
    // The first requests go into the channel before the call, so they travel with it.
    let ask = |subs: &mut Subscriptions,
               handler: &H,
               state: &ClientState,
               nonces: &BTreeMap<&'static str, String>,
               cds_done: bool,
               first: &mut bool| {
        for t in TYPES {
            if let Some(names) = subs.due(t, handler, cds_done) {
                let request = DiscoveryRequest {
                    version_info: state.versions.get(t).cloned().unwrap_or_default(),
                    node: first.then(|| config.node.clone()),
                    resource_names: names.iter().cloned().collect(),
                    type_url: t.to_string(),
                    response_nonce: nonces.get(t).cloned().unwrap_or_default(),
                    ..Default::default()
                };
                *first = false;
                let _ = tx.send(request);
                subs.asked.insert(t, names);
            }
        }
    };
    ask(&mut subs, handler, state, &nonces, cds_done, &mut first);
    let mut responses = client
        .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await
        .map_err(|e| format!("StreamAggregatedResources: {e}"))?
        .into_inner();
    while let Some(response) = responses.next().await {
        let response: DiscoveryResponse = response.map_err(|e| format!("stream: {e}"))?;
        let Some(t) = static_type(&response.type_url) else {
            tracing::debug!(type_url = %response.type_url, "xDS: a type we did not ask for, ignored");
            continue;
        };
        nonces.insert(t, response.nonce.clone());
        let mut merged = if is_wildcard(t) {
            ResourceSet::new()
        } else {
            // By-name types: the response holds the names it covers; others stay.
            let asked = subs.asked.get(t).cloned().unwrap_or_default();
            state
                .sets
                .get(t)
                .map(|s| {
                    s.iter()
                        .filter(|(n, _)| asked.contains(*n))
                        .map(|(n, r)| (n.clone(), r.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut bad = None;
        for any in response.resources {
            match resource_name(t, &any) {
                Ok(name) => {
                    merged.insert(
                        name,
                        Resource {
                            version: response.version_info.clone(),
                            body: any,
                        },
                    );
                }
                Err(e) => bad = Some(e),
            }
        }
        let result = match bad {
            Some(e) => Err(e),
            None => offer(handler, state, t, merged),
        };
        if result.is_ok() {
            state.versions.insert(t, response.version_info.clone());
        }
        let error_detail = outcome(status, t, &response.version_info, &result);
        let ack = DiscoveryRequest {
            version_info: state.versions.get(t).cloned().unwrap_or_default(),
            node: None,
            resource_names: subs
                .asked
                .get(t)
                .map(|n| n.iter().cloned().collect())
                .unwrap_or_default(),
            type_url: t.to_string(),
            response_nonce: response.nonce.clone(),
            error_detail,
            ..Default::default()
        };
        tx.send(ack)
            .map_err(|_| "request channel closed".to_string())?;
        if t == CLUSTER {
            cds_done = true;
        }
        ask(&mut subs, handler, state, &nonces, cds_done, &mut first);
    }
    Err("the server closed the stream".into())
}

async fn delta_stream<H: Handler>(
    channel: Channel,
    config: &ClientConfig,
    handler: &mut H,
    state: &mut ClientState,
    status: &XdsStatus,
) -> Result<(), String> {
    let (tx, rx) = mpsc::unbounded_channel::<DeltaDiscoveryRequest>();
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let mut subs = Subscriptions::default();
    let mut first = true;
    let mut cds_done = false;
    let ask = |subs: &mut Subscriptions,
               handler: &H,
               state: &ClientState,
               cds_done: bool,
               first: &mut bool| {
        for t in TYPES {
            let Some(names) = subs.due(t, handler, cds_done) else {
                continue;
            };
            let before = subs.asked.get(t).cloned();
            let (subscribe, unsubscribe) = match &before {
                // A new stream: wildcard types subscribe to everything ("*"); what
                // this client holds is told so the server sends only what changed.
                None => {
                    let names: Vec<String> = if is_wildcard(t) {
                        vec!["*".to_string()]
                    } else {
                        names.iter().cloned().collect()
                    };
                    (names, Vec::new())
                }
                Some(prev) => (
                    names.difference(prev).cloned().collect(),
                    prev.difference(&names).cloned().collect(),
                ),
            };
            let initial_resource_versions = if before.is_none() {
                state
                    .sets
                    .get(t)
                    .map(|s| {
                        s.iter()
                            .map(|(n, r)| (n.clone(), r.version.clone()))
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                Default::default()
            };
            let request = DeltaDiscoveryRequest {
                node: first.then(|| config.node.clone()),
                type_url: t.to_string(),
                resource_names_subscribe: subscribe,
                resource_names_unsubscribe: unsubscribe,
                initial_resource_versions,
                ..Default::default()
            };
            *first = false;
            let _ = tx.send(request);
            subs.asked.insert(t, names);
        }
    };
    ask(&mut subs, handler, state, cds_done, &mut first);
    let mut responses = client
        .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await
        .map_err(|e| format!("DeltaAggregatedResources: {e}"))?
        .into_inner();
    while let Some(response) = responses.next().await {
        let response: DeltaDiscoveryResponse = response.map_err(|e| format!("stream: {e}"))?;
        let Some(t) = static_type(&response.type_url) else {
            continue;
        };
        let mut merged = state.sets.get(t).cloned().unwrap_or_default();
        for name in &response.removed_resources {
            merged.remove(name);
        }
        let mut bad = None;
        for r in response.resources {
            let Some(body) = r.resource else {
                bad = Some(format!("resource {:?} has no body", r.name));
                continue;
            };
            let name = if r.name.is_empty() {
                match resource_name(t, &body) {
                    Ok(n) => n,
                    Err(e) => {
                        bad = Some(e);
                        continue;
                    }
                }
            } else {
                r.name
            };
            merged.insert(
                name,
                Resource {
                    version: r.version,
                    body,
                },
            );
        }
        let version = response.system_version_info.clone();
        let result = match bad {
            Some(e) => Err(e),
            None => offer(handler, state, t, merged),
        };
        let error_detail = outcome(status, t, &version, &result);
        let ack = DeltaDiscoveryRequest {
            type_url: t.to_string(),
            response_nonce: response.nonce.clone(),
            error_detail,
            ..Default::default()
        };
        tx.send(ack)
            .map_err(|_| "request channel closed".to_string())?;
        if t == CLUSTER {
            cds_done = true;
        }
        ask(&mut subs, handler, state, cds_done, &mut first);
    }
    Err("the server closed the stream".into())
}

/// The name of a resource from its body (SotW responses carry no names).
fn resource_name(type_url: &str, any: &Any) -> Result<String, String> {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
    use prost::Message;
    if any.type_url != type_url {
        return Err(format!(
            "a {} response holds a {} resource",
            type_name(type_url),
            any.type_url
        ));
    }
    let bytes = any.value.as_slice();
    let bad = |e: prost::DecodeError| format!("undecodable {} resource: {e}", type_name(type_url));
    let name = match type_url {
        CLUSTER => Cluster::decode(bytes).map_err(bad)?.name,
        ENDPOINT => {
            ClusterLoadAssignment::decode(bytes)
                .map_err(bad)?
                .cluster_name
        }
        LISTENER => Listener::decode(bytes).map_err(bad)?.name,
        ROUTE => RouteConfiguration::decode(bytes).map_err(bad)?.name,
        SECRET => Secret::decode(bytes).map_err(bad)?.name,
        _ => return Err(format!("unknown type {type_url}")),
    };
    if name.is_empty() {
        return Err(format!("a {} resource without a name", type_name(type_url)));
    }
    Ok(name)
}
