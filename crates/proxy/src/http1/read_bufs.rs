//! A worker's spare read buffers. An HTTP/1 connection holds no buffer while it
//! idles between requests (so that idle connections stay small); a request takes
//! one for its head, and one for the upstream's response, and gives them back when
//! done. Kept per worker thread, so a request costs no malloc and free of 8 KiB
//! each, and no lock.

use bytes::BytesMut;
use std::cell::RefCell;

/// A buffer's size: enough for a typical head in one read.
pub const SIZE: usize = super::io::READ_CHUNK;

/// Spare buffers a worker keeps at most (512 KiB at SIZE).
const MAX_SPARE: usize = 64;

/// A buffer that grew for a large head or body is not kept past this.
const MAX_KEPT_CAPACITY: usize = 4 * SIZE;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty read buffer with room for SIZE bytes: a spare one when there is one.
pub fn take() -> BytesMut {
    let spare = SPARE.try_with(|s| s.borrow_mut().pop()).ok().flatten();
    spare.unwrap_or_else(|| BytesMut::with_capacity(SIZE))
}

/// Gives a buffer back (its bytes are dropped). It is kept when nothing else
/// shares its memory any more (a split-off head or body chunk still alive would),
/// so that it holds SIZE bytes again without allocating, and when there is room.
pub fn give_back(mut buf: BytesMut) {
    buf.clear();
    if buf.capacity() > MAX_KEPT_CAPACITY || !buf.try_reclaim(SIZE) {
        return;
    }
    let _ = SPARE.try_with(|s| {
        let mut spare = s.borrow_mut();
        if spare.len() < MAX_SPARE {
            spare.push(buf);
        }
    });
}

/// Reads into `buf`, taking a spare buffer first when it has none (TLS, whose
/// idle wait must read to see a request).
pub async fn read_into_spare<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    if buf.capacity() == 0 {
        *buf = take();
    }
    super::io::read_some(stream, buf, SIZE).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request's buffer with its head split off, as the parser leaves it.
    fn after_a_head() -> (BytesMut, bytes::Bytes) {
        let mut buf = take();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\nleftover");
        let head = buf.split_to(18).freeze();
        (buf, head)
    }

    #[test]
    fn a_buffer_still_shared_is_not_kept() {
        let (buf, head) = after_a_head();
        give_back(buf);
        // The head still holds that memory: this is another buffer.
        assert_ne!(take().as_ptr(), head.as_ptr());
    }

    #[test]
    fn a_buffer_comes_back_empty_and_whole() {
        let (buf, head) = after_a_head();
        let start = head.as_ptr();
        drop(head);
        give_back(buf);
        let again = take();
        assert!(again.is_empty());
        assert!(again.capacity() >= SIZE);
        assert_eq!(again.as_ptr(), start, "the same memory, from its start");
    }

    #[test]
    fn large_buffers_and_a_full_pool_are_not_kept() {
        let spare = || SPARE.with(|s| s.borrow().len());
        let before = spare();
        // (Not checked by address: the allocator may hand the freed memory to
        // the next buffer.)
        give_back(BytesMut::with_capacity(MAX_KEPT_CAPACITY + 1));
        assert_eq!(spare(), before, "a large buffer is not kept");
        for _ in 0..MAX_SPARE + 10 {
            give_back(BytesMut::with_capacity(SIZE));
        }
        assert_eq!(spare(), MAX_SPARE);
    }
}
