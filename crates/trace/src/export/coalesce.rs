//! The collector connection's writes, gathered and sent together. h2 sends a big
//! DATA frame (16 KiB, the usual peer's limit) and flushes before it takes the
//! next, so a batch of 512 spans (~200 KiB) went out in ~16 `writev` calls
//! (strace of the exporter), each a TCP segment of its own that may wake the
//! collector. Here the bytes are copied into one buffer, and a flush that follows
//! writes is put off, waking the task: h2 flushes at the end of every poll of
//! its connection, so the woken task's next poll, which finds nothing new to
//! write, flushes with no write before it, and that flush sends everything. The
//! frames of one poll go out in one `write`.
//!
//! Bounded: past `HIGH_WATER` buffered bytes a write sends what is buffered
//! first, so a sender that finds new frames at every poll waits at most that
//! many bytes. A read, and `poll_shutdown`, send what is buffered first.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Buffered bytes past which a write sends what is buffered first (a batch of
/// 512 OTLP spans fits).
const HIGH_WATER: usize = 256 * 1024;

/// A stream whose writes are gathered (see the module's comment).
pub(crate) struct Coalesced<S> {
    inner: S,
    buf: Vec<u8>,
    /// How much of `buf` the stream has taken.
    sent: usize,
    /// Bytes were written since the last flush.
    wrote: bool,
}

impl<S> Coalesced<S> {
    pub fn new(inner: S) -> Self {
        Coalesced {
            inner,
            buf: Vec::new(),
            sent: 0,
            wrote: false,
        }
    }
}

impl<S: AsyncWrite + Unpin> Coalesced<S> {
    /// Sends everything buffered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes: drains first when they would pass
    /// `HIGH_WATER`.
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<()>> {
        if self.buf.len() + len > HIGH_WATER {
            std::task::ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesced<S> {
    /// Sends what is buffered first: a reader waits for an answer to it (a TLS
    /// handshake flushes only after it writes, then reads).
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.buf.is_empty() {
            // A socket that takes no more now wakes the task when it does; the
            // read goes on meanwhile.
            if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.poll_room(cx, data.len()))?;
        if data.len() > HIGH_WATER {
            // Too big to gather (the buffer is empty now): straight through.
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        this.buf.extend_from_slice(data);
        this.wrote = true;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let len: usize = slices.iter().map(|s| s.len()).sum();
        std::task::ready!(this.poll_room(cx, len))?;
        if len > HIGH_WATER {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, slices);
        }
        for s in slices {
            this.buf.extend_from_slice(s);
        }
        this.wrote = true;
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.wrote {
            // More frames may follow in this poll: send them all at the next
            // (the buffer is under HIGH_WATER: writes drain past it).
            this.wrote = false;
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Counts wake-ups (the task's re-polls).
    #[derive(Default)]
    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A sink that counts its writes.
    #[derive(Default)]
    struct Recorder {
        bytes: Vec<u8>,
        writes: usize,
        flushes: usize,
        shut: bool,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes += 1;
            self.bytes.extend_from_slice(data);
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushes += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.shut = true;
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncRead for Recorder {
        /// The peer answers only once something reached it.
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.bytes.is_empty() {
                return Poll::Pending;
            }
            buf.put_slice(b"hello back");
            Poll::Ready(Ok(()))
        }
    }

    fn frame(i: u8, len: usize) -> Vec<u8> {
        vec![i; len]
    }

    #[test]
    fn the_frames_of_one_poll_go_out_in_one_write_at_the_next() {
        let wakes = Arc::new(CountWakes::default());
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut c = Coalesced::new(Recorder::default());
        let mut want = Vec::new();
        // One poll of h2: a frame, a flush, as for each 16 KiB DATA frame.
        for i in 0..13 {
            let f = frame(i, 16 * 1024 + 9);
            let header = &f[..9];
            let payload = &f[9..];
            let slices = [io::IoSlice::new(header), io::IoSlice::new(payload)];
            let n = Pin::new(&mut c).poll_write_vectored(&mut cx, &slices);
            assert!(matches!(n, Poll::Ready(Ok(n)) if n == f.len()));
            assert!(Pin::new(&mut c).poll_flush(&mut cx).is_ready());
            want.extend_from_slice(&f);
        }
        // Every flush followed a write: each was put off, waking the task.
        assert_eq!(wakes.0.load(Ordering::Relaxed), 13);
        assert_eq!(c.inner.writes, 0);
        // The next poll: a flush with nothing written before it sends it all.
        assert!(Pin::new(&mut c).poll_flush(&mut cx).is_ready());
        assert_eq!(c.inner.bytes, want, "every byte, in order");
        assert_eq!((c.inner.writes, c.inner.flushes), (1, 1));
        assert!(c.buf.is_empty());
    }

    #[test]
    fn a_poll_of_frames_then_an_idle_poll_is_one_write() {
        let wakes = Arc::new(CountWakes::default());
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut c = Coalesced::new(Recorder::default());
        // h2 writes all pending frames, then flushes once per poll when its
        // codec has room (small frames): put off, then sent by the idle poll.
        for i in 0..50 {
            let f = frame(i, 100);
            assert!(Pin::new(&mut c).poll_write(&mut cx, &f).is_ready());
        }
        assert!(Pin::new(&mut c).poll_flush(&mut cx).is_ready());
        assert_eq!(c.inner.writes, 0);
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        assert!(Pin::new(&mut c).poll_flush(&mut cx).is_ready());
        assert_eq!(c.inner.writes, 1);
        assert_eq!(c.inner.bytes.len(), 5000);
        assert_eq!(c.inner.flushes, 1);
    }

    #[test]
    fn buffered_bytes_stay_under_the_high_water_mark() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut c = Coalesced::new(Recorder::default());
        let f = frame(7, 100 * 1024);
        for _ in 0..5 {
            assert!(Pin::new(&mut c).poll_write(&mut cx, &f).is_ready());
            assert!(c.buf.len() <= HIGH_WATER);
        }
        assert_eq!(c.inner.bytes.len() + c.buf.len(), 5 * f.len());
        // Bigger than the mark: straight through, after what was buffered.
        let big = frame(8, HIGH_WATER + 1);
        assert!(Pin::new(&mut c).poll_write(&mut cx, &big).is_ready());
        assert!(c.buf.is_empty());
        assert_eq!(c.inner.bytes.len(), 5 * f.len() + big.len());
        assert_eq!(&c.inner.bytes[5 * f.len()..], &big[..]);
    }

    #[test]
    fn a_read_sends_what_is_buffered_first() {
        // As a TLS handshake does: write, flush once, then read the answer.
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut c = Coalesced::new(Recorder::default());
        assert!(Pin::new(&mut c)
            .poll_write(&mut cx, b"client hello")
            .is_ready());
        assert!(Pin::new(&mut c).poll_flush(&mut cx).is_ready());
        assert!(c.inner.bytes.is_empty(), "the flush was put off");
        let mut space = [0u8; 16];
        let mut buf = ReadBuf::new(&mut space);
        let read = Pin::new(&mut c).poll_read(&mut cx, &mut buf);
        assert!(matches!(read, Poll::Ready(Ok(()))));
        assert_eq!(buf.filled(), b"hello back");
        assert_eq!(c.inner.bytes, b"client hello");
    }

    #[test]
    fn shutdown_sends_what_is_buffered_first() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut c = Coalesced::new(Recorder::default());
        assert!(Pin::new(&mut c).poll_write(&mut cx, b"goaway").is_ready());
        assert!(Pin::new(&mut c).poll_shutdown(&mut cx).is_ready());
        assert_eq!(c.inner.bytes, b"goaway");
        assert!(c.inner.shut);
    }

    /// Over a real socket: what goes in comes out, reads pass through.
    #[tokio::test]
    async fn a_tcp_stream_carries_the_bytes_both_ways() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = vec![0u8; 300_000];
            s.read_exact(&mut got).await.unwrap();
            s.write_all(&got[..10]).await.unwrap();
            got
        });
        let mut c = Coalesced::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let sent: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        for piece in sent.chunks(16 * 1024) {
            c.write_all(piece).await.unwrap();
            poll_fn(|cx| Pin::new(&mut c).poll_flush(cx)).await.unwrap();
        }
        c.flush().await.unwrap();
        let mut back = [0u8; 10];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(back, sent[..10]);
        assert_eq!(echo.await.unwrap(), sent);
    }
}
