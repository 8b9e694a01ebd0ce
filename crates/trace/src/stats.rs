//! Counters of the tracer: relaxed atomics, bumped on the proxy's threads and the
//! exporter's.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of the tracer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceStats {
    /// Spans started (sampled requests).
    pub started: u64,
    /// Requests not traced: the incoming context or the sample rate said no.
    pub not_sampled: u64,
    /// Spans the collector accepted (or the log reporter wrote).
    pub exported: u64,
    /// Spans dropped because the export queue was full.
    pub dropped: u64,
    /// Export calls that failed (each is retried up to 3 times).
    pub export_failures: u64,
    /// Spans lost to failed exports (after the retries) or rejected by the collector.
    pub failed_spans: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    started: AtomicU64,
    not_sampled: AtomicU64,
    exported: AtomicU64,
    dropped: AtomicU64,
    export_failures: AtomicU64,
    failed_spans: AtomicU64,
}

impl Stats {
    pub fn add_started(&self) {
        self.started.fetch_add(1, Relaxed);
    }
    pub fn add_not_sampled(&self) {
        self.not_sampled.fetch_add(1, Relaxed);
    }
    pub fn add_dropped(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Relaxed);
    }
    pub fn add_exported(&self, n: usize) {
        self.exported.fetch_add(n as u64, Relaxed);
    }
    pub fn add_export_failure(&self) {
        self.export_failures.fetch_add(1, Relaxed);
    }
    pub fn add_failed_spans(&self, n: usize) {
        self.failed_spans.fetch_add(n as u64, Relaxed);
    }

    pub fn snapshot(&self) -> TraceStats {
        TraceStats {
            started: self.started.load(Relaxed),
            not_sampled: self.not_sampled.load(Relaxed),
            exported: self.exported.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            export_failures: self.export_failures.load(Relaxed),
            failed_spans: self.failed_spans.load(Relaxed),
        }
    }
}
