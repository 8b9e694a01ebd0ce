//! The HTTP/2 proxy (h2c with prior knowledge, or detected by `Auto`): one task per
//! connection accepts streams; each stream is routed and forwarded on its own task,
//! to an HTTP/2 upstream (multiplexed, one connection per host and worker) or to an
//! HTTP/1.1 upstream (converted). Bodies flow under HTTP/2 flow control end to end:
//! the proxy gives window back to a sender only once it has passed the bytes on.
//!
//! Attack resistance (docs/http2.md): `h2` enforces the SETTINGS it advertises and
//! most of RFC 9113 §8's malformed-request rules; this module adds the rest of §8.3.1
//! (`:path`), the header count limit, its own budget of protocol-error resets and the
//! Rapid Reset rule (CVE-2023-44487), which watches the client's frames as they are
//! read ([`FrameWatch`], which also makes closing a connection linger so that the
//! client gets our GOAWAY).

pub(crate) mod body;
mod client_body;
mod forward;
mod grpc;
mod h1_upstream;
mod io;
pub(crate) mod mirror;
pub(crate) mod pool;
mod stream;
mod websocket;

use crate::http1::local_reply::LocalReply;
use crate::shutdown::Shutdown;
use crate::snapshot::{ListenerKind, ListenerRuntime};
use bytes::Bytes;
use h2::server::{Connection, SendResponse};
use h2::{Reason, RecvStream};
use http::Request;
use mosn_config::filters::Http2Options;
use std::cell::Cell;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

pub(crate) use h1_upstream::parse_trailers as h1_trailers;
pub use io::PrefixedIo;
pub(crate) use stream::{append_forwarded_for, apply as apply_header_ops, never_processed};

/// The largest flow-control window HTTP/2 allows (2^31 - 1).
const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Serves one HTTP/2 connection; `prefix` holds bytes already read by detection.
pub async fn serve(
    stream: mosn_tls::Stream,
    prefix: Bytes,
    accepted: crate::Accepted,
    runtime: Arc<ListenerRuntime>,
    mut shutdown: Shutdown,
) {
    let ListenerKind::Http(listener) = &runtime.kind else {
        return;
    };
    let stats = &runtime.stats;
    let o = &listener.http2;
    let stream_window = o.initial_stream_window_size.min(MAX_WINDOW);
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(o.max_concurrent_streams)
        .initial_window_size(stream_window)
        .initial_connection_window_size(o.initial_connection_window_size.min(MAX_WINDOW))
        .max_header_list_size(o.max_header_list_size)
        .max_send_buffer_size(stream_window as usize)
        .max_pending_accept_reset_streams(o.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(
            (o.max_local_error_reset_streams > 0).then_some(o.max_local_error_reset_streams),
        );
    if o.allow_connect {
        builder.enable_connect_protocol();
    }
    let rapid_reset = Rc::new(Cell::new(false));
    let client_cert = Rc::new(if stream.is_tls() {
        crate::xfcc::ClientCert::of(&stream, listener.xfcc, &listener.xfcc_details)
    } else {
        crate::xfcc::ClientCert::default()
    });
    let counted_prefix = prefix.len();
    let mut io = FrameWatch::new(
        PrefixedIo::new(prefix, stream),
        ResetTracker::new(o.rapid_reset_min_streams, o.rapid_reset_window.0),
        rapid_reset.clone(),
        runtime.stats.clone(),
    );
    io.counted_prefix = counted_prefix;
    let handshake = tokio::time::timeout(
        listener.options.request_head_timeout.0,
        builder.handshake::<_, Bytes>(io),
    );
    let mut conn = match handshake.await {
        Ok(Ok(conn)) => conn,
        _ => {
            stats.downstream_bad_request.inc();
            return;
        }
    };
    let peer = accepted.peer;
    let mut gate = Gate {
        runtime: &runtime,
        accepted,
        client_cert: client_cert.clone(),
        options: o,
        shutdown: shutdown.clone(),
        error_resets: 0,
        addr_texts: crate::AddrTexts::default(),
    };
    loop {
        tokio::select! {
            accepted = conn.accept() => match accepted {
                Some(Ok((request, respond))) => {
                    if gate.admit(request, respond) == Admitted::TooManyErrors {
                        tracing::debug!(%peer, "http2: too many malformed requests, closing");
                        return close_abruptly(conn).await;
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "http2 connection error");
                    return;
                }
                None => return,
            },
            // Set by FrameWatch, which wakes this task when it trips.
            _ = poll_fn(|_| if rapid_reset.get() { Poll::Ready(()) } else { Poll::Pending }) => {
                tracing::debug!(%peer, "http2: rapid reset (CVE-2023-44487), closing");
                stats.downstream_bad_request.inc();
                return close_abruptly(conn).await;
            }
            _ = shutdown.draining() => {
                // Finish open streams, refuse new ones, then close.
                conn.graceful_shutdown();
                while let Some(Ok((request, respond))) = conn.accept().await {
                    if gate.admit(request, respond) == Admitted::TooManyErrors {
                        return close_abruptly(conn).await;
                    }
                }
                return;
            }
        }
    }
}

/// Sends GOAWAY ENHANCE_YOUR_CALM and drives the connection until it is closed (for
/// two seconds at most: a client that does not read cannot hold it open).
async fn close_abruptly<T: AsyncRead + AsyncWrite + Unpin>(mut conn: Connection<T, Bytes>) {
    conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
    let _ = tokio::time::timeout(LINGER * 2, async {
        while let Some(Ok(_)) = conn.accept().await {}
    })
    .await;
}

/// What became of an accepted stream.
#[derive(PartialEq, Eq)]
enum Admitted {
    Yes,
    Refused,
    /// Refused, and the connection has used up its protocol-error budget.
    TooManyErrors,
}

/// Checks each accepted stream before it is routed: what `h2` lets through that
/// RFC 9113 §8 or the listener's limits do not.
struct Gate<'a> {
    runtime: &'a Arc<ListenerRuntime>,
    accepted: crate::Accepted,
    /// The client's certificate, for X-Forwarded-Client-Cert.
    client_cert: Rc<crate::xfcc::ClientCert>,
    options: &'a Http2Options,
    shutdown: Shutdown,
    /// Streams this connection had reset for its protocol errors.
    error_resets: usize,
    /// The connection's addresses with their texts, made at its first stream
    /// that logs or is traced.
    addr_texts: crate::AddrTexts,
}

impl Gate<'_> {
    fn admit(
        &mut self,
        request: Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
    ) -> Admitted {
        // A stream that is already reset (by the client, or by `h2` for a malformed
        // body such as DATA beyond its content-length) is not forwarded at all.
        if is_reset(&mut respond) {
            return Admitted::Refused;
        }
        let stats = &self.runtime.stats;
        if !valid_pseudo_headers(&request) {
            stats.downstream_bad_request.inc();
            // As `h2` counts its own: this many resets, then GOAWAY instead.
            let max = self.options.max_local_error_reset_streams;
            if max > 0 && self.error_resets >= max {
                return Admitted::TooManyErrors;
            }
            self.error_resets += 1;
            respond.send_reset(Reason::PROTOCOL_ERROR);
            return Admitted::Refused;
        }
        let ctx = stream::StreamContext::new(
            self.runtime.clone(),
            self.accepted,
            self.client_cert.clone(),
            &self.addr_texts,
        );
        // Header fields as the client sent them: every value, each cookie crumb.
        if request.headers().len() > self.options.max_headers {
            let grpc = grpc::is_grpc(request.headers());
            stream::local_reply(
                &ctx,
                &mut respond,
                LocalReply::BadRequest(431, "too many header fields"),
                grpc,
            );
            return Admitted::Refused;
        }
        // Streams run on this worker; each owns what it needs.
        tokio::task::spawn_local(stream::handle(ctx, request, respond, self.shutdown.clone()));
        Admitted::Yes
    }
}

/// Whether the stream is reset already; never waits.
fn is_reset(respond: &mut SendResponse<Bytes>) -> bool {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    thread_local! {
        static NOOP: Waker = Waker::from(Arc::new(Noop));
    }
    NOOP.with(|waker| {
        let mut cx = Context::from_waker(waker);
        respond.poll_reset(&mut cx).is_ready()
    })
}

/// RFC 9113 §8.3.1 on what `h2` leaves unchecked: `:path` is required (except for
/// CONNECT) and is an absolute path, or `*` for OPTIONS. (`h2` itself rejects a
/// missing `:method` or `:scheme`, duplicate or late pseudo-headers, `:status` in a
/// request, an empty `:path`, and a missing `:path` when `:authority` is present.)
fn valid_pseudo_headers(request: &Request<RecvStream>) -> bool {
    if request.method() == http::Method::CONNECT {
        return true;
    }
    let uri = request.uri();
    // An absent `:path` reads as "/" from `path_and_query()`, as "" from `path()`.
    if uri.path().is_empty() {
        return false;
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    path.starts_with('/') || (path == "*" && request.method() == http::Method::OPTIONS)
}

/// The connection preface a client sends before its first frame.
const PREFACE_LEN: usize = 24;
/// Frame types the Rapid Reset rule reads.
const FRAME_HEADERS: u8 = 0x1;
const FRAME_RST_STREAM: u8 = 0x3;
/// Streams remembered for the Rapid Reset rule, at most (those opened in the window).
const TRACKED_STREAMS_MAX: usize = 16 * 1024;

/// Reads the client's bytes for `h2` and watches the frame headers go by (see
/// [`FrameScanner`]). When the Rapid Reset rule trips, it sets `tripped`, wakes the
/// connection task and stops reading, so the attacker's remaining frames are never
/// processed. Its `poll_shutdown` lingers (see there).
struct FrameWatch<T> {
    inner: T,
    scanner: FrameScanner,
    tripped: Rc<Cell<bool>>,
    /// The client closed its side.
    eof: bool,
    /// Our side is shut down (FIN sent); lingering until `linger` fires.
    shut: bool,
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The listener's byte counters.
    stats: Arc<mosn_observe::ListenerStats>,
    /// Bytes at the start that protocol detection read (and counted) already.
    counted_prefix: usize,
}

/// How long a closing connection keeps draining what the client still sends.
const LINGER: Duration = Duration::from_secs(1);

impl<T> FrameWatch<T> {
    fn new(
        inner: T,
        tracker: ResetTracker,
        tripped: Rc<Cell<bool>>,
        stats: Arc<mosn_observe::ListenerStats>,
    ) -> Self {
        FrameWatch {
            stats,
            counted_prefix: 0,
            inner,
            scanner: FrameScanner::new(tracker),
            tripped,
            eof: false,
            shut: false,
            linger: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FrameWatch<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.tripped.get() {
            // The connection is being closed: read nothing more from this client.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let room = buf.remaining();
        let ready = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = ready {
            let this = &mut *self;
            let read = &buf.filled()[before..];
            let counted = this.counted_prefix.min(read.len());
            this.counted_prefix -= counted;
            this.stats
                .downstream_bytes_read_total
                .add((read.len() - counted) as u64);
            this.eof |= read.is_empty() && room > 0;
            if this.scanner.scan(read) {
                this.tripped.set(true);
                cx.waker().wake_by_ref();
            }
        }
        ready
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for FrameWatch<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.stats.downstream_bytes_write_total.add(n as u64);
        }
        written
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    /// `h2` shuts the connection down once its last frame (a GOAWAY, say) is written.
    /// After the FIN, this reads and drops whatever the client still sends until it
    /// closes too, for [`LINGER`] at most (a lingering close): closing a socket with
    /// unread bytes would send a TCP reset, and a reset can destroy the GOAWAY before
    /// the client has read it, typically from a client that is flooding us.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if !this.shut {
            match Pin::new(&mut this.inner).poll_shutdown(cx) {
                Poll::Ready(Ok(())) => this.shut = true,
                other => return other,
            }
        }
        if this.eof {
            return Poll::Ready(Ok(()));
        }
        let linger = this
            .linger
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER)));
        if linger.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        let mut scratch = [0u8; 4096];
        loop {
            let mut drain = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut drain) {
                Poll::Ready(Ok(())) if !drain.filled().is_empty() => continue,
                Poll::Ready(_) => {
                    this.eof = true;
                    return Poll::Ready(Ok(()));
                }
                // Tokio's cooperative budget ends a long drain with Pending too.
                Poll::Pending => return Poll::Pending,
            }
        }
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            self.stats.downstream_bytes_write_total.add(n as u64);
        }
        written
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Follows the frame headers in the bytes a client sends (9 bytes per frame; payloads
/// are skipped, never copied or decoded) for the Rapid Reset rule: a stream opens with
/// its first HEADERS frame, and a RST_STREAM soon after is a rapid reset.
struct FrameScanner {
    preface_left: usize,
    head: [u8; 9],
    head_len: usize,
    skip: usize,
    tracker: ResetTracker,
}

impl FrameScanner {
    fn new(tracker: ResetTracker) -> Self {
        FrameScanner {
            preface_left: PREFACE_LEN,
            head: [0; 9],
            head_len: 0,
            skip: 0,
            tracker,
        }
    }

    /// Feeds bytes read from the client; true when the Rapid Reset rule tripped.
    fn scan(&mut self, mut buf: &[u8]) -> bool {
        if !self.tracker.enabled() {
            return false;
        }
        let n = self.preface_left.min(buf.len());
        self.preface_left -= n;
        buf = &buf[n..];
        let mut now = None;
        while !buf.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(buf.len());
                self.skip -= n;
                buf = &buf[n..];
                continue;
            }
            let n = (9 - self.head_len).min(buf.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&buf[..n]);
            self.head_len += n;
            buf = &buf[n..];
            if self.head_len < 9 {
                break;
            }
            self.head_len = 0;
            let h = self.head;
            self.skip = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
            let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            match h[3] {
                FRAME_HEADERS => {
                    let now = *now.get_or_insert_with(Instant::now);
                    self.tracker.opened(id, now);
                }
                FRAME_RST_STREAM => {
                    let now = *now.get_or_insert_with(Instant::now);
                    if self.tracker.reset(id, now) {
                        return true;
                    }
                }
                _ => {}
            }
        }
        false
    }
}

/// The Rapid Reset rule's counts for one connection: streams the client opened, and
/// how many of them it reset within `window` of opening (each counted once).
struct ResetTracker {
    min_streams: usize,
    window: Duration,
    opened: usize,
    rapid: usize,
    last_id: u32,
    /// Streams opened within the window, oldest first (so by id too): id, when
    /// opened, and whether its reset was counted.
    recent: VecDeque<(u32, Instant, bool)>,
}

impl ResetTracker {
    fn new(min_streams: usize, window: Duration) -> Self {
        ResetTracker {
            min_streams,
            window,
            opened: 0,
            rapid: 0,
            last_id: 0,
            recent: VecDeque::new(),
        }
    }

    fn enabled(&self) -> bool {
        self.min_streams > 0
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some(&(_, at, _)) = self.recent.front() {
            if now.duration_since(at) < self.window {
                break;
            }
            self.recent.pop_front();
        }
    }

    /// A HEADERS frame: a new client stream when its id is above every earlier one.
    fn opened(&mut self, id: u32, now: Instant) {
        if id & 1 == 0 || id <= self.last_id {
            return; // trailers, or a frame `h2` rejects
        }
        self.last_id = id;
        self.opened += 1;
        self.forget_old(now);
        if self.recent.len() >= TRACKED_STREAMS_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back((id, now, false));
    }

    /// A RST_STREAM frame; true when the rule trips.
    fn reset(&mut self, id: u32, now: Instant) -> bool {
        self.forget_old(now);
        let Ok(i) = self.recent.binary_search_by_key(&id, |e| e.0) else {
            return false;
        };
        if self.recent[i].2 {
            return false;
        }
        self.recent[i].2 = true;
        self.rapid += 1;
        self.opened >= self.min_streams && self.rapid * 2 > self.opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, id: u32, payload: usize) -> Vec<u8> {
        let mut f = (payload as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, 0]);
        f.extend_from_slice(&id.to_be_bytes());
        f.extend(vec![0u8; payload]);
        f
    }

    fn watch(min: usize) -> FrameScanner {
        FrameScanner::new(ResetTracker::new(min, Duration::from_secs(1)))
    }

    #[test]
    fn rapid_resets_trip_once_half_of_enough_streams_reset() {
        let mut w = watch(10);
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(0x4, 0, 6)); // SETTINGS
        for i in 0..9u32 {
            bytes.extend(frame(FRAME_HEADERS, 2 * i + 1, 5));
            bytes.extend(frame(FRAME_RST_STREAM, 2 * i + 1, 4));
        }
        // Fed a byte at a time: frame headers split across reads.
        for b in &bytes {
            assert!(!w.scan(std::slice::from_ref(b)));
        }
        assert_eq!((w.tracker.opened, w.tracker.rapid), (9, 9));
        let mut tenth = frame(FRAME_HEADERS, 19, 5);
        tenth.extend(frame(FRAME_RST_STREAM, 19, 4));
        assert!(w.scan(&tenth));
    }

    #[test]
    fn resets_count_once_and_only_for_known_streams() {
        let mut w = watch(4);
        w.preface_left = 0;
        let mut bytes = Vec::new();
        for id in [1, 3, 5, 7] {
            bytes.extend(frame(FRAME_HEADERS, id, 3));
        }
        bytes.extend(frame(FRAME_HEADERS, 3, 3)); // trailers: not a new stream
        for id in [1, 1, 9] {
            bytes.extend(frame(FRAME_RST_STREAM, id, 4));
        }
        assert!(!w.scan(&bytes));
        assert_eq!((w.tracker.opened, w.tracker.rapid), (4, 1));
        assert!(!w.scan(&frame(FRAME_RST_STREAM, 3, 4)));
        assert!(w.scan(&frame(FRAME_RST_STREAM, 5, 4)));
    }

    #[test]
    fn late_resets_do_not_count() {
        let mut t = ResetTracker::new(1, Duration::from_secs(1));
        let start = Instant::now();
        t.opened(1, start);
        assert!(!t.reset(1, start + Duration::from_secs(2)));
        assert_eq!(t.rapid, 0);
    }
}
