//! Each thread's finished spans, encoded on the thread that finished them into a
//! buffer of its own and handed to the exporter a chunk at a time: no record
//! crosses threads, only a copy of a chunk's bytes (the buffer stays with its
//! thread: see [`Wire`]), and the exporter does no work per span (it frames
//! chunks and sends them). A chunk goes when it holds `Inner::chunk_spans` spans
//! or `CHUNK_BYTES`, or at the thread's next [`flush_local`] (the proxy's workers
//! call it every 50 ms), or when the thread ends.

use crate::export::wire::Wire;
use crate::record::Finished;
use crate::Inner;
use bytes::Bytes;
use std::cell::RefCell;
use std::sync::Arc;

/// A buffer is handed over once it holds this many bytes (~100 spans).
const CHUNK_BYTES: usize = 32 * 1024;
/// Room beyond `CHUNK_BYTES` for the span that fills a chunk (most are under 1 KiB).
const CHUNK_SLACK: usize = 4 * 1024;

/// Encoded spans on their way to the exporter.
pub(crate) struct Chunk {
    /// OpenTelemetry: `Span`s, each a field of a `ScopeSpans`. SkyWalking:
    /// `SegmentObject`s, one message each, starting at `starts`.
    pub bytes: Bytes,
    pub starts: Vec<usize>,
    pub spans: usize,
}

/// A thread's spans not yet handed over, for one tracer.
#[derive(Default)]
struct Local {
    /// The tracer the buffered spans belong to; None while the buffer is empty (so
    /// a thread keeps no tracer alive between chunks).
    owner: Option<Arc<Inner>>,
    wire: Wire,
    spans: usize,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

impl Local {
    fn hand_over(&mut self) {
        let Some(owner) = self.owner.take() else {
            return;
        };
        let spans = std::mem::take(&mut self.spans);
        let (bytes, starts) = self.wire.take_all();
        owner.enqueue(Chunk {
            bytes,
            starts,
            spans,
        });
    }
}

impl Drop for Local {
    /// A thread that ends hands over what it has.
    fn drop(&mut self) {
        self.hand_over();
    }
}

/// Encodes a finished span into this thread's buffer for its tracer.
pub(crate) fn push(inner: &Arc<Inner>, span: &Finished) {
    let pushed = LOCAL.try_with(|local| {
        let Ok(mut local) = local.try_borrow_mut() else {
            return false;
        };
        // A thread serves one tracer at a time; spans of another (a tracer
        // replaced, or tests with several) first send the buffered ones on.
        if local
            .owner
            .as_ref()
            .is_some_and(|owner| !Arc::ptr_eq(owner, inner))
        {
            local.hand_over();
        }
        if local.owner.is_none() {
            local.owner = Some(inner.clone());
            // Room for a whole chunk and the span that tops it: a busy thread's
            // chunks fill up, and growing to it would copy the spans at each doubling.
            // (Allocated once: the buffer is kept from chunk to chunk.)
            local.wire.begin_batch_with_room(CHUNK_BYTES + CHUNK_SLACK);
        }
        inner.encode(&mut local.wire, span);
        local.spans += 1;
        if local.spans >= inner.chunk_spans || local.wire.len() >= CHUNK_BYTES {
            local.hand_over();
        }
        true
    });
    // Only while the thread is being torn down (its buffer is gone) or re-entered.
    if pushed != Ok(true) {
        inner.stats.add_dropped(1);
    }
}

/// Hands this thread's buffered spans to the exporter. The proxy's workers call it
/// every 50 ms; any other thread that finishes spans should too (or its last
/// spans wait for its next ones, or its end).
pub fn flush_local() {
    let _ = LOCAL.try_with(|local| {
        if let Ok(mut local) = local.try_borrow_mut() {
            local.hand_over();
        }
    });
}
