//! The exporter thread: drains the span queue into batches and sends them, with
//! back-off when the collector fails. It runs on its own thread and current-thread
//! runtime so that a slow or absent collector never touches the proxy's workers.

mod backoff;
mod coalesce;
pub(crate) mod grpc;
pub(crate) mod wire;

use crate::local::Chunk;
use crate::stats::Stats;
use crate::{otel, skywalking, TraceError};
use backoff::Backoff;
use mosn_config::tracing::{DriverSettings, TracingSettings};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Tries per batch before its spans are given up.
const MAX_TRIES: u32 = 3;
/// How long the last flush at shutdown may take.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

/// Requests from the tracer to its exporter.
pub(crate) enum Control {
    /// Send everything queued now; answer whether it all went.
    Flush(std::sync::mpsc::SyncSender<bool>),
    /// Flush briefly and stop.
    Shutdown,
}

/// The exporter's destination, checked and prepared before its thread starts.
pub(crate) enum Plan {
    SkyWalking(skywalking::Plan),
    Otel(otel::Plan),
}

impl Plan {
    pub fn new(settings: &TracingSettings) -> Result<Self, TraceError> {
        Ok(match &settings.driver {
            DriverSettings::SkyWalking(s) => Plan::SkyWalking(skywalking::Plan::new(s)?),
            DriverSettings::OpenTelemetry(s) => Plan::Otel(otel::Plan::new(s)?),
        })
    }

    /// The service name spans are reported under.
    pub fn service(&self) -> &str {
        match self {
            Plan::SkyWalking(p) => &p.service,
            Plan::Otel(p) => &p.service,
        }
    }

    /// SkyWalking's service instance name ("" for OpenTelemetry).
    pub fn instance(&self) -> &str {
        match self {
            Plan::SkyWalking(p) => &p.instance,
            Plan::Otel(_) => "",
        }
    }
}

/// Where batches go, once inside the runtime.
enum Sink {
    SkyWalking(skywalking::Sink),
    Otel(otel::Sink),
}

impl Sink {
    fn new(plan: Plan) -> Self {
        match plan {
            Plan::SkyWalking(p) => Sink::SkyWalking(skywalking::Sink::new(p)),
            Plan::Otel(p) => Sink::Otel(otel::Sink::new(p)),
        }
    }

    /// Sends a batch; Ok holds how many spans the collector rejected.
    async fn export(&mut self, batch: &[Chunk]) -> Result<usize, tonic::Status> {
        match self {
            Sink::SkyWalking(s) => s.export(batch).await,
            Sink::Otel(s) => s.export(batch).await,
        }
    }

    /// When periodic upkeep (SkyWalking's keep-alive) is next due.
    fn next_upkeep(&self) -> Option<Instant> {
        match self {
            Sink::SkyWalking(s) => s.next_upkeep(),
            Sink::Otel(_) => None,
        }
    }

    async fn upkeep(&mut self) {
        if let Sink::SkyWalking(s) = self {
            s.upkeep().await;
        }
    }

    fn target(&self) -> &str {
        match self {
            Sink::SkyWalking(s) => s.target(),
            Sink::Otel(s) => s.target(),
        }
    }
}

/// The exporter's end of the span queue.
pub(crate) struct Queue {
    pub chunks: std::sync::mpsc::Receiver<Chunk>,
    /// Spans queued and not yet taken (the proxy's threads add, the exporter takes
    /// off).
    pub queued: Arc<AtomicUsize>,
}

/// Starts the exporter thread.
pub(crate) fn spawn(
    plan: Plan,
    settings: &TracingSettings,
    spans: Queue,
    control: mpsc::UnboundedReceiver<Control>,
    stats: Arc<Stats>,
) -> Result<(), TraceError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TraceError::Exporter)?;
    let batch_size = settings.batch_size;
    let flush_interval = settings.flush_interval;
    std::thread::Builder::new()
        .name("trace-export".into())
        .spawn(move || {
            runtime.block_on(async move {
                let exporter = Exporter {
                    sink: Sink::new(plan),
                    spans,
                    control,
                    stats,
                    batch: Vec::new(),
                    batch_spans: 0,
                    batch_size,
                    flush_interval,
                    due: None,
                    tries: 0,
                    retry_at: None,
                    backoff: Backoff::default(),
                    failing: false,
                };
                exporter.run().await;
            })
        })
        .map_err(TraceError::Exporter)?;
    Ok(())
}

/// How often the exporter takes what the proxy queued (the added export latency).
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

struct Exporter {
    sink: Sink,
    spans: Queue,
    control: mpsc::UnboundedReceiver<Control>,
    stats: Arc<Stats>,
    /// The current batch: chunks, and the spans they hold.
    batch: Vec<Chunk>,
    batch_spans: usize,
    /// Spans per batch (a batch may pass it by less than a chunk).
    batch_size: usize,
    flush_interval: Duration,
    /// When the current partial batch must go.
    due: Option<Instant>,
    /// Failed tries of the current batch.
    tries: u32,
    /// While backing off: when to try again.
    retry_at: Option<Instant>,
    backoff: Backoff,
    /// Whether the last export failed (logs only the changes).
    failing: bool,
}

impl Exporter {
    async fn run(mut self) {
        let mut drain = tokio::time::interval(DRAIN_INTERVAL);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let now = Instant::now();
            let waiting = self.retry_at.is_some_and(|t| t > now);
            if !waiting && self.batch_ready(now) {
                // After a full batch went, take what queued meanwhile at once: waiting
                // for the next drain tick would cap the export rate at one batch per
                // tick.
                if self.send_batch().await && !self.drain() {
                    let _ = tokio::time::timeout(SHUTDOWN_FLUSH, self.flush_all()).await;
                    return;
                }
                continue;
            }
            // Wake for the next deadline: the batch's, the retry's, or upkeep's.
            let wake = [
                if waiting { self.retry_at } else { self.due },
                self.sink.next_upkeep(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_secs(3600));
            // A full batch stops reading the queue: the queue then bounds memory and
            // its overflow is counted as dropped.
            let room = self.batch_spans < self.batch_size;
            tokio::select! {
                biased;
                control = self.control.recv() => match control {
                    Some(Control::Flush(reply)) => {
                        let ok = self.flush_all().await;
                        let _ = reply.send(ok);
                    }
                    Some(Control::Shutdown) | None => {
                        let _ = tokio::time::timeout(SHUTDOWN_FLUSH, self.flush_all()).await;
                        return;
                    }
                },
                // The queue is read every DRAIN_INTERVAL rather than awaited: a span
                // queued while the exporter waits on a timer wakes no thread, so the
                // proxy's workers pay a queue push per span, not a futex wake-up.
                _ = drain.tick(), if room => {
                    if !self.drain() {
                        let _ = tokio::time::timeout(SHUTDOWN_FLUSH, self.flush_all()).await;
                        return;
                    }
                }
                _ = tokio::time::sleep_until(wake) => {
                    if self.sink.next_upkeep().is_some_and(|t| t <= Instant::now()) {
                        self.sink.upkeep().await;
                    }
                }
            }
        }
    }

    /// Moves queued chunks into the batch (up to its size); false when every sender
    /// is gone (the tracer was dropped).
    fn drain(&mut self) -> bool {
        while self.batch_spans < self.batch_size {
            match self.spans.chunks.try_recv() {
                Ok(chunk) => {
                    self.spans.queued.fetch_sub(chunk.spans, Ordering::Relaxed);
                    self.push(chunk);
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return true,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    fn push(&mut self, chunk: Chunk) {
        if self.batch.is_empty() {
            self.due = Some(Instant::now() + self.flush_interval);
        }
        self.batch_spans += chunk.spans;
        self.batch.push(chunk);
    }

    fn batch_ready(&self, now: Instant) -> bool {
        !self.batch.is_empty()
            && (self.batch_spans >= self.batch_size || self.due.is_some_and(|d| d <= now))
    }

    fn clear_batch(&mut self) {
        self.batch.clear();
        self.batch_spans = 0;
        self.due = None;
        self.tries = 0;
    }

    /// Sends the current batch once; on failure keeps it for a retry (up to
    /// `MAX_TRIES`) and sets the back-off. True when it went.
    async fn send_batch(&mut self) -> bool {
        let result = self.sink.export(&self.batch).await;
        let n = self.batch_spans;
        match result {
            Ok(rejected) => {
                let rejected = rejected.min(n);
                self.stats.add_exported(n - rejected);
                self.stats.add_failed_spans(rejected);
                if rejected > 0 {
                    tracing::debug!(
                        target: "mosn_trace",
                        "collector {} rejected {rejected} of {n} spans",
                        self.sink.target()
                    );
                }
                self.clear_batch();
                self.retry_at = None;
                self.backoff.reset();
                if self.failing {
                    self.failing = false;
                    tracing::info!(
                        target: "mosn_trace",
                        "trace export to {} works again",
                        self.sink.target()
                    );
                }
                true
            }
            Err(status) => {
                self.stats.add_export_failure();
                self.tries += 1;
                if !grpc::retryable(&status) || self.tries >= MAX_TRIES {
                    self.stats.add_failed_spans(n);
                    self.clear_batch();
                }
                let delay = self.backoff.next_delay();
                self.retry_at = Some(Instant::now() + delay);
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(
                        target: "mosn_trace",
                        "trace export to {} failed: {} ({}); retrying with back-off, \
                         spans beyond the queue are dropped meanwhile",
                        self.sink.target(),
                        status.message(),
                        status.code()
                    );
                } else {
                    tracing::debug!(
                        target: "mosn_trace",
                        "trace export to {} failed again: {}; next try in {delay:?}",
                        self.sink.target(),
                        status.message()
                    );
                }
                false
            }
        }
    }

    /// Sends the batch and everything queued, ignoring the back-off. True when all of
    /// it went.
    async fn flush_all(&mut self) -> bool {
        loop {
            self.drain();
            if self.batch.is_empty() {
                return true;
            }
            // A batch that fails here is given up, and the flush ends: the rest would
            // most likely fail the same way.
            self.tries = MAX_TRIES - 1;
            if !self.send_batch().await {
                return false;
            }
        }
    }
}
