//! Distributed tracing for mosn-rs, from MOSN's `tracing` config: SkyWalking and
//! OpenTelemetry.
//!
//! # Use
//! [`Tracer::from_config`] once at start (None: tracing is off). Per downstream
//! request: [`Tracer::start`]; if it returns a span, remove the headers
//! [`Span::owned_headers`] names from the upstream request and add
//! [`Span::upstream_headers`] (once per upstream attempt); at the end
//! [`Span::finish`]. If `start` returns None the request is not traced and its context
//! headers go upstream untouched.
//!
//! # Sampling
//! An incoming context's decision is honoured: sampled in, traced whatever
//! `sample_rate` says; not sampled in (sw8 sample flag `0`, traceparent flags without
//! bit 0), not traced. Without a (valid) incoming context, `sample_rate` decides.
//!
//! # SkyWalking (v3)
//! Reads `sw8`; a malformed one is ignored and a new trace begins. One segment per
//! request: an Entry span (id 0; operation name = the request path without query;
//! peer = the downstream address; layer Http; component 5003, the id SkyWalking's
//! `component-libraries.yml` registers for MOSN; tags `http.method`, `url`,
//! `status_code` as MOSN writes them, plus `mosn.*` ones; a CrossProcess reference
//! when `sw8` came in) and, when an upstream was tried, an Exit span (id 1, parent 0,
//! peer = the upstream). The `sw8` sent upstream names our segment, span 1, our
//! service and instance, our endpoint and the peer. `sw8-correlation` and `sw8-x` are
//! passed through untouched. Segments go to `TraceSegmentReportService/collect`
//! (client streaming, one call per batch); the instance is announced with
//! `ManagementService/reportInstanceProperties` and kept alive with `keepAlive` every
//! 20 s. `authentication` travels as gRPC metadata `authentication`. The `log`
//! reporter (MOSN's default) writes segments to the log instead.
//!
//! # OpenTelemetry
//! Reads W3C `traceparent` (an invalid one is ignored with its `tracestate`) and
//! carries `tracestate` through. One SERVER span per request, named
//! `<protocol> <method> <path>` as MOSN names it, with the HTTP semantic-convention
//! attributes (`http.request.method`, `url.path`, `url.query`,
//! `http.response.status_code`, `server.address`, `server.port`,
//! `network.peer.address`, `network.peer.port`, `network.protocol.version`,
//! `error.type`) and `mosn.listener`, `mosn.route`, `mosn.upstream.cluster`,
//! `mosn.upstream.host`, `mosn.response_flags`, `mosn.bytes_received`,
//! `mosn.bytes_sent`; status ERROR on error. The `traceparent` sent upstream is
//! `00-<trace>-<our span>-01`. Spans go to `TraceService/Export` (OTLP/gRPC) with
//! resource `service.name` (+ MOSN's `config_map`); `console` writes them to the log.
//!
//! A request is an error when its status is 5xx, when there was no response (status
//! 0), or when it has response flags.
//!
//! # Export
//! `start`, `upstream_headers` and `finish` take no lock; ids come from the
//! per-thread `fastrand` generator and stay integers until a header or an export
//! needs their text. A sampled span keeps its own text (incoming context, upstream
//! peer) in one buffer, allocated at `start`. `finish` encodes the span from it and
//! the request's facts (`SpanEnd`, read in place), field by field (the bytes prost
//! would write for the same message, without building it; attribute keys are
//! encoded at compile time), into a buffer of the thread that finished
//! it; the buffer goes to the exporter as one chunk when it holds enough spans, at
//! the thread's next [`flush_local`] (the proxy's workers call it every 50 ms), or
//! when the thread ends. So no record crosses threads and the exporter does no work
//! per span. The exporter's queue is bounded in spans (`max_queue_spans`): a chunk
//! that does not fit is dropped and its spans counted. A thread named
//! `trace-export`, with its own current-thread tokio runtime, takes what is queued
//! every 20 ms (so a queued chunk wakes no thread), gathers chunks into batches
//! (`batch_size` spans, or what came within `flush_interval`), frames them (an
//! OTLP request's envelope; SkyWalking's stream of segments) and sends the bytes
//! with tonic as they are. The log reporters decode them back to log each span.
//! When the collector is down, a batch is retried (up to 3 tries) with jittered
//! exponential back-off (200 ms to 30 s); while it waits the queue fills and then
//! drops, so memory stays bounded and the proxy is never slowed. A collector that
//! is down at start is fine: the connection is lazy.

mod export;
mod ids;
mod local;
mod otel;
mod record;
mod skywalking;
mod stats;
mod sw8;
mod traceparent;

use export::wire::Wire;
use local::Chunk;
use mosn_config::tracing::{DriverSettings, TracingConfig, TracingSettings};
pub use mosn_observe::addr_text::TextedAddr;
use record::{Ctx, Field, Finished, OtelCtx, SkyCtx, Texts};
use stats::Stats;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

pub use local::flush_local;
pub use stats::TraceStats;

/// The component id SkyWalking registers for MOSN (`component-libraries.yml`).
pub const SKYWALKING_COMPONENT_ID: i32 = 5003;

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("bad tracing config: {0}")]
    Config(String),
    #[error("cannot read the collector CA file {path}: {source}")]
    CaFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no PEM certificate in the collector CA file {0}")]
    NoCertificate(String),
    #[error("bad collector address {uri}: {source}")]
    Collector {
        uri: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("bad gRPC metadata {0:?}")]
    Metadata(String),
    #[error("cannot start the trace exporter: {0}")]
    Exporter(#[source] std::io::Error),
}

/// The tracer: shared by every worker (`Arc`), owns the exporter thread, which stops
/// (after a short best-effort flush) when the tracer is dropped.
pub struct Tracer {
    inner: Arc<Inner>,
    control: mpsc::UnboundedSender<export::Control>,
}

/// What spans share with the tracer.
struct Inner {
    /// Chunks of encoded spans for the exporter, which polls them (so handing one
    /// over wakes no thread). Unbounded as a channel: `queued` bounds it.
    queue: std::sync::mpsc::Sender<Chunk>,
    /// Spans handed over and not yet taken by the exporter.
    queued: Arc<AtomicUsize>,
    /// `max_queue_spans`.
    max_queue: usize,
    /// Spans a thread buffers before it hands them over.
    chunk_spans: usize,
    stats: Arc<Stats>,
    sample_rate: f64,
    kind: Kind,
}

enum Kind {
    SkyWalking {
        service: String,
        instance: String,
        /// Base64 of the service and instance names, as sw8 carries them.
        service_b64: String,
        instance_b64: String,
    },
    Otel,
}

impl Inner {
    /// Writes a finished span as its driver exports it.
    fn encode(&self, w: &mut Wire, span: &Finished) {
        match &self.kind {
            Kind::SkyWalking {
                service, instance, ..
            } => skywalking::encode_segment(w, span, service, instance),
            Kind::Otel => otel::encode_span(w, span),
        }
    }

    /// Queues a chunk for the exporter, or drops it (counted) when the queue is
    /// full. An empty queue takes any chunk, so that a queue smaller than a chunk
    /// still passes spans.
    fn enqueue(&self, chunk: Chunk) {
        let n = chunk.spans;
        let before = self.queued.fetch_add(n, Ordering::Relaxed);
        let fits = before == 0 || before + n <= self.max_queue;
        if !fits || self.queue.send(chunk).is_err() {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            self.stats.add_dropped(n);
        }
    }
}

/// Spans a thread buffers before handing them over: a few per chunk for a small
/// queue (so that it is shared fairly between threads), at most a batch.
fn chunk_spans(settings: &TracingSettings) -> usize {
    (settings.max_queue_spans / 8)
        .clamp(1, 128)
        .min(settings.batch_size.max(1))
}

impl Tracer {
    /// None when tracing is disabled or the driver is one we do not run.
    pub fn from_config(cfg: &TracingConfig) -> Result<Option<Arc<Tracer>>, TraceError> {
        let settings = cfg.settings().map_err(|issues| {
            TraceError::Config(
                issues
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        match settings {
            Some(settings) => Tracer::new(&settings).map(Some),
            None => Ok(None),
        }
    }

    /// A tracer for checked settings; starts the exporter thread.
    pub fn new(settings: &TracingSettings) -> Result<Arc<Tracer>, TraceError> {
        let plan = export::Plan::new(settings)?;
        let kind = match &settings.driver {
            DriverSettings::SkyWalking(_) => Kind::SkyWalking {
                service: plan.service().to_string(),
                instance: plan.instance().to_string(),
                service_b64: sw8::encode(plan.service()),
                instance_b64: sw8::encode(plan.instance()),
            },
            DriverSettings::OpenTelemetry(_) => Kind::Otel,
        };
        let (queue, chunks) = std::sync::mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let (control, control_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        export::spawn(
            plan,
            settings,
            export::Queue {
                chunks,
                queued: queued.clone(),
            },
            control_rx,
            stats.clone(),
        )?;
        Ok(Arc::new(Tracer {
            inner: Arc::new(Inner {
                queue,
                queued,
                max_queue: settings.max_queue_spans.max(1),
                chunk_spans: chunk_spans(settings),
                stats,
                sample_rate: settings.sample_rate,
                kind,
            }),
            control,
        }))
    }

    /// Starts a span for one downstream request. `header` looks up a request header by
    /// lower-case name; it is also asked for `:path` (the request target), which
    /// SkyWalking sends upstream as our endpoint, so answer it for HTTP/1 too. None
    /// when not sampled (incoming context says not sampled, or the `sample_rate` dice
    /// said no): the caller then passes any context headers through untouched.
    pub fn start<'h>(&self, header: &dyn Fn(&str) -> Option<&'h [u8]>) -> Option<Span> {
        self.start_at(header, SystemTime::now())
    }

    /// [`Tracer::start`] for a request that began at `at` (the proxy has the time
    /// already: the span reads no clock).
    pub fn start_at<'h>(
        &self,
        header: &dyn Fn(&str) -> Option<&'h [u8]>,
        at: SystemTime,
    ) -> Option<Span> {
        let inner = &self.inner;
        // A span's text fields share one buffer, allocated once the span is
        // sampled and has text (or an incoming sw8 needs somewhere to be decoded).
        let mut text = Texts::default();
        let ctx = match &inner.kind {
            Kind::SkyWalking { .. } => {
                let incoming = header("sw8");
                // The buffer is sized once: for the incoming sw8 and for the path,
                // which it holds twice (our endpoint now, the request's at finish).
                let endpoint = match incoming {
                    Some(value) => {
                        let endpoint = endpoint_of(header);
                        text.reserve(value.len() + 2 * endpoint.len());
                        Some(endpoint)
                    }
                    None => None,
                };
                let parent = incoming.and_then(|v| text.set_sw8_parent(v));
                if !self.sampled(parent.map(|p| p.sampled)) {
                    return None;
                }
                let endpoint = endpoint.unwrap_or_else(|| endpoint_of(header));
                text.reserve(2 * endpoint.len());
                text.set(Field::Endpoint, endpoint);
                Ctx::SkyWalking(SkyCtx {
                    new_trace_id: parent.is_none().then(ids::id128),
                    segment_id: ids::id128(),
                    parent_span_id: parent.map(|p| p.span_id),
                })
            }
            Kind::Otel => {
                let parent = header("traceparent").and_then(traceparent::parse);
                if !self.sampled(parent.map(|p| p.sampled())) {
                    return None;
                }
                // W3C: a tracestate without a valid traceparent is discarded.
                let tracestate = parent
                    .and_then(|_| header("tracestate"))
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .map(str::trim)
                    .unwrap_or("");
                // Most requests carry none: their span then allocates no text
                // (the peer is kept as an address).
                if !tracestate.is_empty() {
                    text.reserve(tracestate.len());
                    text.set(Field::TraceState, tracestate);
                }
                Ctx::Otel(OtelCtx {
                    trace_id: parent.map_or_else(ids::id128, |p| p.trace_id),
                    span_id: ids::id64(),
                    parent_span_id: parent.map(|p| p.parent_id),
                })
            }
        };
        inner.stats.add_started();
        Some(Span {
            inner: inner.clone(),
            start_ns: unix_nanos_of(at),
            exit_start_ns: None,
            exit_addr: None,
            ctx,
            text,
        })
    }

    /// The sampling decision: an incoming one wins, else the dice.
    fn sampled(&self, incoming: Option<bool>) -> bool {
        let yes = match incoming {
            Some(decision) => decision,
            None => {
                let rate = self.inner.sample_rate;
                rate >= 1.0 || fastrand::f64() < rate
            }
        };
        if !yes {
            self.inner.stats.add_not_sampled();
        }
        yes
    }

    /// Spans started, not sampled, exported, dropped (queue full), export failures.
    pub fn stats(&self) -> TraceStats {
        self.inner.stats.snapshot()
    }

    /// Exports every span handed over so far (the calling thread's own buffered
    /// spans included; other threads' go at their next [`flush_local`]), waiting at
    /// most `timeout`; true when all were sent (or there were none). Blocks the
    /// calling thread: for shutdown.
    pub fn flush_blocking(&self, timeout: Duration) -> bool {
        flush_local();
        let (reply, done) = std::sync::mpsc::sync_channel(1);
        if self.control.send(export::Control::Flush(reply)).is_err() {
            return false;
        }
        done.recv_timeout(timeout).unwrap_or(false)
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        // The exporter flushes what it has (briefly) and ends; spans still open then
        // are dropped at their finish.
        let _ = self.control.send(export::Control::Shutdown);
    }
}

/// One traced request. A span dropped without `finish` is not exported.
pub struct Span {
    inner: Arc<Inner>,
    start_ns: u64,
    /// See `Finished::exit_start_ns` and `Finished::exit_addr`.
    exit_start_ns: Option<u64>,
    exit_addr: Option<SocketAddr>,
    ctx: Ctx,
    text: Texts,
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Span")
            .field("ctx", &self.ctx)
            .field("start_ns", &self.start_ns)
            .finish_non_exhaustive()
    }
}

impl Span {
    /// Lower-case names of request headers this driver owns (SkyWalking: `sw8`;
    /// OpenTelemetry: `traceparent`, `tracestate`): the caller removes them from the
    /// upstream request and adds `upstream_headers()` instead.
    pub fn owned_headers(&self) -> &'static [&'static str] {
        match self.ctx {
            Ctx::SkyWalking(_) => &["sw8"],
            Ctx::Otel(_) => &["traceparent", "tracestate"],
        }
    }

    /// The context headers to send upstream, with this proxy's span as the parent.
    /// `peer` is the upstream address the request goes to (SkyWalking's
    /// addressUsedAtClient and exit-span peer). Called once per upstream attempt; the
    /// last one wins for the exit span.
    pub fn upstream_headers(&mut self, peer: SocketAddr) -> UpstreamHeaders {
        match self.ctx {
            // sw8 carries the peer's text.
            Ctx::SkyWalking(_) => {
                self.exit_addr = None;
                self.text.set_with(Field::Peer, |buf| {
                    mosn_observe::addr_text::write_socket_addr(buf, peer)
                });
            }
            // Only an export may need its text: made then, if at all.
            Ctx::Otel(_) => self.exit_addr = Some(peer),
        }
        self.context_headers()
    }

    /// [`Span::upstream_headers`] for a peer known by its text (a name, say).
    pub fn upstream_headers_named(&mut self, peer: &str) -> UpstreamHeaders {
        self.exit_addr = None;
        self.text.set(Field::Peer, peer);
        self.context_headers()
    }

    /// The context headers of a try to the peer just set.
    fn context_headers(&mut self) -> UpstreamHeaders {
        self.exit_start_ns = Some(match self.ctx {
            Ctx::SkyWalking(_) => unix_nanos(),
            // OTLP has no exit span, so its start is never read: spare the clock.
            Ctx::Otel(_) => self.start_ns,
        });
        let peer = self.text.get(Field::Peer);
        let mut out = UpstreamHeaders::default();
        match (&self.ctx, &self.inner.kind) {
            (
                Ctx::SkyWalking(ctx),
                Kind::SkyWalking {
                    service_b64,
                    instance_b64,
                    ..
                },
            ) => {
                let new_trace_id = ctx.new_trace_id.map(ids::hex128);
                let trace_id = match &new_trace_id {
                    Some(hex) => hex.as_bytes(),
                    None => self.text.get(Field::TraceId).as_bytes(),
                };
                out.push("sw8", |v| {
                    sw8::write(
                        v,
                        trace_id,
                        ids::hex128(ctx.segment_id).as_bytes(),
                        skywalking::EXIT_SPAN_ID,
                        service_b64,
                        instance_b64,
                        self.text.get(Field::Endpoint),
                        peer,
                    )
                });
            }
            (Ctx::Otel(ctx), _) => {
                out.traceparent = Some(traceparent::encode(ctx.trace_id, ctx.span_id));
                if let Some(state) = self.text.opt(Field::TraceState) {
                    out.push("tracestate", |v| v.extend_from_slice(state.as_bytes()));
                }
            }
            // A span is made by its tracer's driver, so the kinds always agree.
            (Ctx::SkyWalking(_), Kind::Otel) => {}
        }
        out
    }

    /// Ends the span and encodes it into this thread's buffer for export (never
    /// blocks: when the queue is full the thread's chunk is dropped and counted).
    pub fn finish<'e>(self, end: &'e SpanEnd<'e>) {
        let (record, inner) = self.into_record(end);
        local::push(&inner, &record);
    }

    /// The span's record for the encoders, with its tracer's side.
    fn into_record<'e>(self, end: &'e SpanEnd<'e>) -> (Finished<'e>, Arc<Inner>) {
        let Span {
            inner,
            start_ns,
            exit_start_ns,
            exit_addr,
            ctx,
            text,
        } = self;
        let end_ns = match end.duration {
            Some(d) => start_ns.saturating_add(d.as_nanos() as u64),
            None => unix_nanos().max(start_ns),
        };
        let record = Finished {
            ctx,
            text,
            start_ns,
            end_ns,
            exit_start_ns,
            exit_addr,
            end,
        };
        (record, inner)
    }
}

/// What the proxy knows about a request when it ends.
#[derive(Debug, Clone)]
pub struct SpanEnd<'a> {
    pub method: &'a str,
    /// Path and query, as the request had them.
    pub path: &'a str,
    pub authority: &'a str,
    /// "HTTP/1.1", "HTTP/2".
    pub protocol: &'static str,
    pub listener: &'a str,
    pub route: Option<&'a str>,
    pub cluster: Option<&'a str>,
    /// The host that answered, with its text (made once per host).
    pub upstream_host: Option<TextedAddr>,
    /// 0: no response.
    pub status: u16,
    /// Envoy/MOSN flags text ("UF,UT"), "" when none.
    pub response_flags: &'a str,
    /// The client, with its text (made once per connection).
    pub downstream_remote: TextedAddr,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// The request's duration, when the caller measured it (else the span ends
    /// now).
    pub duration: Option<Duration>,
}

/// The context headers one upstream try carries: at most three. OpenTelemetry's
/// `traceparent`, of fixed size, is kept inline; the others' values (`tracestate`,
/// SkyWalking's `sw8`) share one buffer, allocated only when there is one.
#[derive(Debug, Default)]
pub struct UpstreamHeaders {
    traceparent: Option<[u8; traceparent::LEN]>,
    values: Vec<u8>,
    /// Name, and where its value ends in `values`.
    headers: [(&'static str, usize); 2],
    len: usize,
}

impl UpstreamHeaders {
    fn push(&mut self, name: &'static str, value: impl FnOnce(&mut Vec<u8>)) {
        if self.len == self.headers.len() {
            return;
        }
        value(&mut self.values);
        self.headers[self.len] = (name, self.values.len());
        self.len += 1;
    }

    /// Name and value of each header (values are visible ASCII).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &[u8])> {
        let traceparent = self
            .traceparent
            .as_ref()
            .map(|v| ("traceparent", v.as_slice()));
        let mut start = 0;
        let others = self.headers[..self.len].iter().map(move |&(name, end)| {
            let value = self.values.get(start..end).unwrap_or_default();
            start = end;
            (name, value)
        });
        traceparent.into_iter().chain(others)
    }
}

/// The request path without its query, from the `:path` header ("" without one).
fn endpoint_of<'h>(header: &dyn Fn(&str) -> Option<&'h [u8]>) -> &'h str {
    header(":path")
        .and_then(|p| std::str::from_utf8(p).ok())
        .map(record::path_only)
        .unwrap_or("")
}

fn unix_nanos() -> u64 {
    unix_nanos_of(SystemTime::now())
}

fn unix_nanos_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests;
