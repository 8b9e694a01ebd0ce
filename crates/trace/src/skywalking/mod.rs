//! SkyWalking: one segment per request, reported to the OAP over gRPC (or to the log).

pub(crate) mod proto;

use crate::export::grpc::{Destination, Encoded, GrpcTarget};
use crate::export::wire::{attr_key, split_messages, Size, Wire};
use crate::local::Chunk;
use crate::record::{non_empty, Ctx, Field, Finished, Upstream};
use crate::{ids, TraceError, SKYWALKING_COMPONENT_ID};
use mosn_config::tracing::{Reporter, SkyWalkingSettings};
use prost::Message;
use proto::{kv, KeyStringValuePair, RefType, SpanLayer, SpanType};
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
    format!("{}@{}", ids::hex128(ids::id128()).as_str(), hostname())
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

    /// Sends a batch: its segments as one `collect` stream.
    pub async fn export(&mut self, batch: &[Chunk]) -> Result<usize, tonic::Status> {
        let segments: Vec<Encoded> = batch
            .iter()
            .flat_map(|c| split_messages(&c.bytes, &c.starts))
            .map(Encoded::Whole)
            .collect();
        match &mut self.to.client {
            Some(client) => {
                let _: proto::Commands = client.send_encoded(proto::COLLECT_PATH, segments).await?;
            }
            None => {
                // The log reporter: not the fast path, so it reads each segment back
                // to log it as the message it is.
                for segment in segments {
                    let s = proto::SegmentObject::decode(segment.to_bytes())
                        .map_err(|e| tonic::Status::internal(e.to_string()))?;
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

// Field numbers of the SkyWalking messages written here (see proto.rs).
const SPANS: u32 = 3;
const REFS: u32 = 5;
const TAGS: u32 = 12;
const LOGS: u32 = 13;
const LOG_DATA: u32 = 2;

/// Encodes the `SegmentObject` of one request as a message of its own (each is one
/// message of the `collect` stream).
pub(crate) fn encode_segment(w: &mut Wire, f: &Finished, service: &str, instance: &str) {
    let Ctx::SkyWalking(ctx) = &f.ctx else {
        return;
    };
    w.begin_message();
    let new_trace_id = ctx.new_trace_id.map(ids::hex128);
    // Strings, written from bytes: the hex digits need no UTF-8 check.
    match &new_trace_id {
        Some(hex) => w.bytes_field(1, hex.as_bytes()),
        None => w.string(1, &[f.text.get(Field::TraceId)]),
    }
    w.bytes_field(2, ids::hex128(ctx.segment_id).as_bytes());

    let mut digits = itoa::Buffer::new();
    let status = (f.end.status != 0).then(|| digits.format(f.end.status));
    let mut kind_digits = itoa::Buffer::new();
    let error_kind = f.is_error().then(|| f.error_kind(&mut kind_digits));
    // What the entry and exit spans share.
    let shared = Shared {
        operation: f.path_only(),
        method: f.end.method,
        authority: f.end.authority,
        target: f.end.path,
        status,
        error_kind,
        end_ms: millis(f.end_ns),
    };

    let entry = w.begin(SPANS, Size::Medium);
    w.int32(1, ENTRY_SPAN_ID);
    w.int32(2, -1);
    w.varint(3, millis(f.start_ns) as u64);
    w.varint(4, shared.end_ms as u64);
    if let Some(parent_span_id) = ctx.parent_span_id {
        let r = w.begin(REFS, Size::Medium);
        w.varint(1, RefType::CrossProcess as u64);
        w.string(2, &[f.text.get(Field::TraceId)]);
        w.string(3, &[f.text.get(Field::ParentSegment)]);
        w.int32(4, parent_span_id);
        w.string(5, &[f.text.get(Field::ParentService)]);
        w.string(6, &[f.text.get(Field::ParentInstance)]);
        w.string(7, &[f.text.get(Field::ParentEndpoint)]);
        w.string(8, &[f.text.get(Field::ParentAddress)]);
        w.end(r);
    }
    w.string(6, &[shared.operation]);
    let peer = w.begin(7, Size::Small);
    w.texted_addr(&f.end.downstream_remote);
    w.end_string(peer);
    w.varint(8, SpanType::Entry as u64);
    shared.encode_http_fields(w);
    shared.encode_tags(w);
    w.key_value(TAGS, attr_key!("mosn.protocol"), f.end.protocol.as_bytes());
    w.key_value(TAGS, attr_key!("mosn.listener"), f.end.listener.as_bytes());
    if let Some(route) = non_empty(f.end.route) {
        w.key_value(TAGS, attr_key!("mosn.route"), route.as_bytes());
    }
    if let Some(cluster) = non_empty(f.end.cluster) {
        w.key_value(TAGS, attr_key!("mosn.cluster"), cluster.as_bytes());
    }
    if !f.end.response_flags.is_empty() {
        let flags = f.end.response_flags.as_bytes();
        w.key_value(TAGS, attr_key!("mosn.response_flags"), flags);
    }
    shared.encode_logs(w);
    w.end(entry);

    // The exit span: to the last peer tried, else to the host that answered.
    let exit_peer = f.exit_peer().or_else(|| f.upstream());
    if let Some(peer) = exit_peer {
        let exit = w.begin(SPANS, Size::Medium);
        w.int32(1, EXIT_SPAN_ID);
        w.int32(2, ENTRY_SPAN_ID);
        w.varint(3, millis(f.exit_start_ns.unwrap_or(f.start_ns)) as u64);
        w.varint(4, shared.end_ms as u64);
        w.string(6, &[shared.operation]);
        let at = w.begin(7, Size::Small);
        match peer {
            Upstream::Host(host) => w.texted_addr(&host),
            Upstream::Peer(peer) => w.raw(peer.as_bytes()),
        }
        w.end_string(at);
        w.varint(8, SpanType::Exit as u64);
        shared.encode_http_fields(w);
        shared.encode_tags(w);
        shared.encode_logs(w);
        w.end(exit);
    }
    w.string(4, &[service]);
    w.string(5, &[instance]);
    // is_size_limited (6) is false: left out.
}

/// What a segment's entry and exit spans have in common.
struct Shared<'a> {
    operation: &'a str,
    method: &'a str,
    authority: &'a str,
    target: &'a str,
    status: Option<&'a str>,
    /// Some when the request is an error.
    error_kind: Option<&'a str>,
    end_ms: i64,
}

impl Shared<'_> {
    /// span_layer, component_id, is_error (fields 9 to 11).
    fn encode_http_fields(&self, w: &mut Wire) {
        w.varint(9, SpanLayer::Http as u64);
        w.int32(10, SKYWALKING_COMPONENT_ID);
        w.bool(11, self.error_kind.is_some());
    }

    /// The tags both spans have, as MOSN writes them.
    fn encode_tags(&self, w: &mut Wire) {
        w.key_value(TAGS, attr_key!("http.method"), self.method.as_bytes());
        let url = w.begin(TAGS, Size::Small);
        w.string(1, &["url"]);
        w.string(2, &[self.authority, self.target]);
        w.end(url);
        if let Some(code) = self.status {
            w.key_value(TAGS, attr_key!("status_code"), code.as_bytes());
        }
    }

    /// MOSN's error log, on spans of failed requests.
    fn encode_logs(&self, w: &mut Wire) {
        if let Some(kind) = self.error_kind {
            let log = w.begin(LOGS, Size::Small);
            w.varint(1, self.end_ms as u64);
            w.key_value(LOG_DATA, attr_key!("event"), b"error");
            w.key_value(LOG_DATA, attr_key!("error.kind"), kind.as_bytes());
            w.key_value(LOG_DATA, attr_key!("message"), ERROR_LOG.as_bytes());
            w.end(log);
        }
    }
}
