//! SkyWalking: one segment per request, reported to the OAP over gRPC (or to the log).

pub(crate) mod proto;

use crate::export::grpc::{Destination, GrpcTarget};
use crate::record::{Ctx, Field, Finished};
use crate::{ids, TraceError, SKYWALKING_COMPONENT_ID};
use mosn_config::tracing::{Reporter, SkyWalkingSettings};
use proto::{kv, KeyStringValuePair, Log, RefType, SegmentObject, SegmentReference, SpanLayer};
use proto::{SpanObject, SpanType};
use std::time::Duration;
use tokio::time::Instant;

pub(crate) const ENTRY_SPAN_ID: i32 = 0;
pub(crate) const EXIT_SPAN_ID: i32 = 1;
/// How often the instance says it is alive (the OAP drops silent instances).
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// Keep-alives between two reports of the instance's properties: an OAP that
/// restarted forgets them, so they are sent again now and then (about every 3 min).
const PROPERTIES_EVERY: u32 = 10;
/// MOSN's error log text on spans of failed requests.
const ERROR_LOG: &str = "Errors on upstream service";

/// The SkyWalking destination, prepared at start.
pub(crate) struct Plan {
    pub service: String,
    pub instance: String,
    grpc: Option<GrpcTarget>,
}

impl Plan {
    pub fn new(settings: &SkyWalkingSettings) -> Result<Self, TraceError> {
        let grpc = match &settings.reporter {
            Reporter::Grpc(collector) => {
                let metadata: Vec<(String, String)> = settings
                    .authentication
                    .iter()
                    .map(|token| ("authentication".to_string(), token.clone()))
                    .collect();
                Some(GrpcTarget::new(collector, &metadata)?)
            }
            Reporter::Log => None,
        };
        Ok(Plan {
            service: settings.service_name.clone(),
            instance: settings
                .service_instance
                .clone()
                .unwrap_or_else(default_instance),
            grpc,
        })
    }
}

/// `<32 hex>@<hostname>`, unique per process start as go2sky's `<uuid>@<ip>` is.
fn default_instance() -> String {
    format!("{}@{}", ids::hex128(ids::id128()), hostname())
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

pub(crate) struct Sink {
    service: String,
    instance: String,
    to: Destination,
    /// Keep-alives until the properties are reported again (0: at the next upkeep).
    properties_in: u32,
    next_keep_alive: Instant,
}

impl Sink {
    /// Runs inside the exporter's runtime (the gRPC channel needs one).
    pub fn new(plan: Plan) -> Self {
        Sink {
            to: Destination::new(plan.grpc.as_ref()),
            service: plan.service,
            instance: plan.instance,
            properties_in: 0,
            next_keep_alive: Instant::now(),
        }
    }

    pub fn target(&self) -> &str {
        &self.to.name
    }

    pub async fn export(&mut self, batch: &[Finished]) -> Result<usize, tonic::Status> {
        let segments: Vec<SegmentObject> = batch
            .iter()
            .filter_map(|f| segment(f, &self.service, &self.instance))
            .collect();
        match &mut self.to.client {
            Some(client) => {
                let _: proto::Commands = client
                    .client_streaming(proto::COLLECT_PATH, segments)
                    .await?;
            }
            None => {
                for s in &segments {
                    tracing::info!(target: "mosn_trace::skywalking", "segment {s:?}");
                }
            }
        }
        Ok(0)
    }

    pub fn next_upkeep(&self) -> Option<Instant> {
        self.to.client.as_ref().map(|_| self.next_keep_alive)
    }

    /// Announces the instance (at start, until the OAP takes it, and now and then
    /// after) and pings it.
    pub async fn upkeep(&mut self) {
        self.next_keep_alive = Instant::now() + KEEP_ALIVE_INTERVAL;
        let Some(client) = &mut self.to.client else {
            return;
        };
        if self.properties_in == 0 {
            let properties = proto::InstanceProperties {
                service: self.service.clone(),
                service_instance: self.instance.clone(),
                properties: instance_properties(),
                layer: String::new(),
            };
            let sent: Result<proto::Commands, _> = client
                .unary(proto::REPORT_PROPERTIES_PATH, properties)
                .await;
            match sent {
                Ok(_) => self.properties_in = PROPERTIES_EVERY,
                Err(e) => {
                    tracing::debug!(target: "mosn_trace", "SkyWalking reportInstanceProperties: {e}");
                    return;
                }
            }
        }
        let ping = proto::InstancePingPkg {
            service: self.service.clone(),
            service_instance: self.instance.clone(),
            layer: String::new(),
        };
        let pinged: Result<proto::Commands, _> = client.unary(proto::KEEP_ALIVE_PATH, ping).await;
        self.properties_in = self.properties_in.saturating_sub(1);
        if let Err(e) = pinged {
            tracing::debug!(target: "mosn_trace", "SkyWalking keepAlive: {e}");
        }
    }
}

/// What the OAP shows about the instance (the keys go2sky sends).
fn instance_properties() -> Vec<KeyStringValuePair> {
    vec![
        kv("language", "rust"),
        kv("OS Name", std::env::consts::OS),
        kv("hostname", hostname()),
        kv("Process No.", std::process::id().to_string()),
        kv("mosn-rs", env!("CARGO_PKG_VERSION")),
    ]
}

fn millis(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

/// The segment of one request.
pub(crate) fn segment(f: &Finished, service: &str, instance: &str) -> Option<SegmentObject> {
    let Ctx::SkyWalking(ctx) = &f.ctx else {
        return None;
    };
    let operation = f.path_only().to_string();
    let is_error = f.is_error();
    let url = format!(
        "{}{}",
        f.text.get(Field::Authority),
        f.text.get(Field::Path)
    );
    let method = f.text.get(Field::Method);
    let status = (f.status != 0).then(|| f.status.to_string());
    let error_logs = || {
        if is_error {
            vec![Log {
                time: millis(f.end_ns),
                data: vec![
                    kv("event", "error"),
                    kv("error.kind", f.error_kind()),
                    kv("message", ERROR_LOG),
                ],
            }]
        } else {
            Vec::new()
        }
    };

    let mut tags = vec![kv("http.method", method), kv("url", url.clone())];
    if let Some(code) = &status {
        tags.push(kv("status_code", code.clone()));
    }
    tags.push(kv("mosn.protocol", f.protocol));
    tags.push(kv("mosn.listener", f.text.get(Field::Listener)));
    for (key, field) in [
        ("mosn.route", Field::Route),
        ("mosn.cluster", Field::Cluster),
        ("mosn.response_flags", Field::Flags),
    ] {
        if let Some(value) = f.text.opt(field) {
            tags.push(kv(key, value));
        }
    }
    let refs = ctx
        .parent
        .iter()
        .map(|p| SegmentReference {
            ref_type: RefType::CrossProcess as i32,
            trace_id: p.trace_id.clone(),
            parent_trace_segment_id: p.segment_id.clone(),
            parent_span_id: p.span_id,
            parent_service: p.service.clone(),
            parent_service_instance: p.instance.clone(),
            parent_endpoint: p.endpoint.clone(),
            network_address_used_at_peer: p.address.clone(),
        })
        .collect();
    // What the entry and exit spans share.
    let http_span = SpanObject {
        end_time: millis(f.end_ns),
        span_layer: SpanLayer::Http as i32,
        component_id: SKYWALKING_COMPONENT_ID,
        is_error,
        logs: error_logs(),
        ..SpanObject::default()
    };
    let mut spans = vec![SpanObject {
        span_id: ENTRY_SPAN_ID,
        parent_span_id: -1,
        start_time: millis(f.start_ns),
        refs,
        operation_name: operation.clone(),
        peer: f.downstream_remote.to_string(),
        span_type: SpanType::Entry as i32,
        tags,
        ..http_span.clone()
    }];
    if let Some(peer) = f
        .exit
        .as_ref()
        .map(|e| e.peer.clone())
        .or_else(|| f.upstream())
    {
        let mut tags = vec![kv("http.method", method), kv("url", url)];
        if let Some(code) = status {
            tags.push(kv("status_code", code));
        }
        spans.push(SpanObject {
            span_id: EXIT_SPAN_ID,
            parent_span_id: ENTRY_SPAN_ID,
            start_time: millis(f.exit.as_ref().map_or(f.start_ns, |e| e.start_ns)),
            operation_name: operation,
            peer,
            span_type: SpanType::Exit as i32,
            tags,
            ..http_span
        });
    }
    Some(SegmentObject {
        trace_id: ctx.trace_id.clone(),
        trace_segment_id: ctx.segment_id.clone(),
        spans,
        service: service.to_string(),
        service_instance: instance.to_string(),
        is_size_limited: false,
    })
}
