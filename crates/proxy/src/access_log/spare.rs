//! A worker's spare request records. A logged or traced request needs its
//! [`Entry`] boxed (it outlives the stack frames that fill it in, and a
//! connection that logs nothing should not carry one inline); reusing the boxes
//! of finished requests spares every such request a malloc and a free of a few
//! hundred bytes. Kept per thread: no lock, and a box goes back to the thread
//! that took it.

use super::Entry;
use mosn_observe::addr_text::TextedAddr;
use std::cell::RefCell;
use std::time::{Instant, SystemTime};

/// Spare boxes a thread keeps at most: enough for a worker's requests in flight
/// at once on a busy moment, small next to its connections' buffers.
const MAX_SPARE: usize = 64;

thread_local! {
    // Boxes, not entries: the point is to keep their allocations for reuse.
    #[allow(clippy::vec_box)]
    static SPARE: RefCell<Vec<Box<Entry>>> = const { RefCell::new(Vec::new()) };
}

impl Entry {
    /// [`Entry::new`], boxed: in a spare box of this thread when it has one.
    pub fn boxed(protocol: &'static str, local: TextedAddr, remote: TextedAddr) -> Box<Entry> {
        let (started, start) = Entry::now();
        Entry::boxed_at(protocol, local, remote, started, start)
    }

    /// [`Entry::started_at`], boxed: in a spare box of this thread when it has one.
    pub fn boxed_at(
        protocol: &'static str,
        local: TextedAddr,
        remote: TextedAddr,
        started: Instant,
        start: SystemTime,
    ) -> Box<Entry> {
        match SPARE.try_with(|s| s.borrow_mut().pop()).ok().flatten() {
            Some(mut spare) => {
                spare.restart(protocol, local, remote, started, start);
                spare
            }
            None => Box::new(Entry::started_at(protocol, local, remote, started, start)),
        }
    }

    /// A spare entry made fresh where it lies, field by field: cheaper than
    /// building a new one and moving its few hundred bytes in, with the drop of
    /// the old one. Every field is named (no `..`), so that a field added to
    /// `Entry` cannot keep the previous request's value unnoticed.
    fn restart(
        &mut self,
        protocol: &'static str,
        local: TextedAddr,
        remote: TextedAddr,
        started: Instant,
        start: SystemTime,
    ) {
        let Entry {
            start: start_at,
            started: started_at,
            ended,
            request_received,
            response_received,
            bytes_sent,
            bytes_received,
            protocol: protocol_at,
            response_code,
            flags,
            upstream_host,
            upstream_local,
            upstream_cluster,
            downstream_local,
            downstream_remote,
            response_headers,
            request_headers,
            span,
        } = self;
        *start_at = start;
        *started_at = started;
        *ended = None;
        *request_received = None;
        *response_received = None;
        *bytes_sent = 0;
        *bytes_received = 0;
        *protocol_at = protocol;
        *response_code = 0;
        *flags = 0;
        *upstream_host = None;
        *upstream_local = None;
        *downstream_local = local;
        *downstream_remote = remote;
        // Emptied by `give_back` already; cleared again so that this stays true
        // whatever gave the box back.
        *upstream_cluster = None;
        response_headers.clear();
        request_headers.clear();
        *span = None;
    }

    /// Gives a finished request's box back for [`Entry::boxed_at`]. What it still
    /// holds is dropped now, so that a spare box keeps nothing alive (a cluster
    /// name, a span, header copies).
    pub fn give_back(mut self: Box<Entry>) {
        self.upstream_cluster = None;
        self.span = None;
        self.response_headers = Vec::new();
        self.request_headers = Vec::new();
        let _ = SPARE.try_with(|s| {
            let mut spare = s.borrow_mut();
            if spare.len() < MAX_SPARE {
                spare.push(self);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn addr(port: u16) -> TextedAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], port)).into()
    }

    fn boxed(port: u16) -> Box<Entry> {
        Entry::boxed_at(
            "HTTP1",
            addr(80),
            addr(port),
            Instant::now(),
            SystemTime::now(),
        )
    }

    fn spare_count() -> usize {
        SPARE.with(|s| s.borrow().len())
    }

    #[test]
    fn a_box_given_back_is_reused_as_a_fresh_entry() {
        let mut first = boxed(1000);
        first.response_code = 503;
        first.flags = 4;
        first.bytes_sent = 7;
        first.bytes_received = 9;
        first.request_received = Some(std::time::Duration::from_millis(1));
        first.response_received = Some(std::time::Duration::from_millis(2));
        first.upstream_host = Some(addr(8080));
        first.upstream_local = Some(addr(40000));
        first.upstream_cluster = Some(Arc::from("c"));
        first
            .response_headers
            .push((Arc::from("x"), b"v".to_vec().into_boxed_slice()));
        first
            .request_headers
            .push((Arc::from("y"), b"w".to_vec().into_boxed_slice()));
        first.end();
        let at: *const Entry = &*first;
        first.give_back();
        let second = Entry::boxed("HTTP2", addr(81), addr(2000));
        assert_eq!(&*second as *const Entry, at, "the spare box is reused");
        // Nothing of the first request shows through.
        assert_eq!(second.protocol, "HTTP2");
        assert!(second.ended.is_none());
        assert!(second.request_received.is_none());
        assert!(second.response_received.is_none());
        assert_eq!(second.response_code, 0);
        assert_eq!(second.flags, 0);
        assert_eq!(second.bytes_sent, 0);
        assert_eq!(second.bytes_received, 0);
        assert!(second.upstream_host.is_none());
        assert!(second.upstream_local.is_none());
        assert!(second.upstream_cluster.is_none());
        assert!(second.response_headers.is_empty());
        assert!(second.request_headers.is_empty());
        assert!(second.span.is_none());
        assert_eq!(second.downstream_local, addr(81));
        assert_eq!(second.downstream_remote, addr(2000));
    }

    #[test]
    fn a_spare_box_holds_nothing_of_its_request() {
        let name: Arc<str> = Arc::from("cluster");
        let mut e = boxed(1000);
        e.upstream_cluster = Some(name.clone());
        e.give_back();
        // The spare box no longer counts as a holder of the cluster's name.
        assert_eq!(Arc::strong_count(&name), 1);
        drop(boxed(1001));
    }

    #[test]
    fn at_most_max_spare_boxes_are_kept() {
        let many: Vec<_> = (0..MAX_SPARE as u16 + 10).map(boxed).collect();
        for e in many {
            e.give_back();
        }
        assert_eq!(spare_count(), MAX_SPARE);
    }
}
