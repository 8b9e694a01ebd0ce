//! A route's retry policy carried out: which failed tries may be tried again, within
//! Envoy's retry budget and the cluster's retry breaker, after a jittered back-off.
//! Shared by every forwarding engine (HTTP/1.1 and HTTP/2 downstreams).

use crate::http1::local_reply::LocalReply;
use mosn_router::RetryPolicy;
use mosn_upstream::breaker::Permit;
use mosn_upstream::Cluster;
use std::time::Duration;
use tokio::time::Instant;

/// A request body up to this size is held in memory when the route retries or
/// mirrors, so it can be sent again; a larger one streams and is never retried.
pub(crate) const REPLAY_BODY_MAX: u64 = 64 * 1024;
/// Envoy's retry budget: retries in flight may be at most this share of the cluster's
/// active requests ...
const RETRY_BUDGET_PERCENT: u64 = 20;
/// ... but at least this many.
const RETRY_BUDGET_MIN: u64 = 3;

/// Methods that may be sent twice (RFC 9110 §9.2.2); others are retried only when
/// they never reached an upstream (connect failure, refused stream).
pub(crate) fn is_idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"PUT" | b"DELETE" | b"TRACE"
    )
}

/// How a try ended, when it did not end with a response relayed to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryFailure {
    /// No connection could be made.
    Connect,
    /// The upstream refused the stream unprocessed (HTTP/2 REFUSED_STREAM, or above a
    /// GOAWAY's last stream id): nothing of the request was acted on.
    Refused,
    /// The upstream failed before a response head (reset, closed, write error).
    Reset { stale_pooled: bool },
    /// The per-try timeout passed.
    PerTryTimeout,
    /// The whole route timeout passed.
    RouteTimeout,
    /// A response whose status the policy retries; it was dropped.
    Status(u16),
}

impl TryFailure {
    /// What the client gets when no retry follows.
    pub(crate) fn local_reply(self) -> LocalReply {
        match self {
            TryFailure::Connect => LocalReply::ConnectFailure,
            // Not the host's fault, and an answer the client may retry.
            TryFailure::Refused => LocalReply::NoHealthyUpstream,
            TryFailure::Reset { .. } => LocalReply::UpstreamReset,
            TryFailure::PerTryTimeout | TryFailure::RouteTimeout => LocalReply::UpstreamTimeout,
            // Out of retries on a retriable status: Envoy returns that response; it was
            // dropped, so answer as a gateway error.
            TryFailure::Status(_) => LocalReply::UpstreamReset,
        }
    }
}

/// One request's retries: the policy, how many were done, and the retry in flight.
pub(crate) struct Retries<'c> {
    policy: Option<&'c RetryPolicy>,
    cluster: &'c Cluster,
    idempotent: bool,
    done: u32,
    /// Held for its Drop: the permit counts the retry in flight until its try ends.
    in_flight: Option<Permit<'c>>,
}

impl<'c> Retries<'c> {
    pub(crate) fn new(
        policy: Option<&'c RetryPolicy>,
        cluster: &'c Cluster,
        method: &[u8],
    ) -> Self {
        Retries {
            policy,
            cluster,
            idempotent: is_idempotent(method),
            done: 0,
            in_flight: None,
        }
    }

    /// The policy, when a response with a retriable status may be held back from the
    /// client: only when a retry can really follow (else the upstream's own answer is
    /// relayed).
    pub(crate) fn status_retry(&self, resendable: bool) -> Option<&'c RetryPolicy> {
        self.policy.filter(|p| {
            resendable
                && self.idempotent
                && self.done < p.num_retries
                && budget_has_room(self.cluster)
        })
    }

    /// The try of the current retry ended: it no longer counts as in flight.
    pub(crate) fn try_ended(&mut self) {
        self.in_flight = None;
    }

    /// After a failed try: the wait before the next one, or None when the failure
    /// stands. `resendable`: the request can be sent again as it was (its body held or
    /// absent). `intact`: nothing of a streamed body was taken yet (so a try the
    /// upstream never saw can be made again). `granted`: the permit a status retry
    /// already took.
    pub(crate) fn next(
        &mut self,
        failure: TryFailure,
        resendable: bool,
        intact: bool,
        granted: Option<Permit<'c>>,
        deadline: Option<Instant>,
    ) -> Option<Duration> {
        self.in_flight = None;
        let policy = self.policy?;
        // A connect failure or a refused stream consumed nothing of the request;
        // anything later may have consumed a body that only a held copy sends again.
        let untouched = intact && matches!(failure, TryFailure::Connect | TryFailure::Refused);
        let retryable = (resendable || untouched)
            && self.done < policy.num_retries
            && match failure {
                TryFailure::Connect => policy.retry_on_connect_failure(),
                TryFailure::Refused => policy.retry_on_refused_stream(),
                TryFailure::Reset { .. } => self.idempotent && policy.retry_on_reset(),
                TryFailure::PerTryTimeout => self.idempotent && policy.retry_on_per_try_timeout(),
                TryFailure::Status(status) => self.idempotent && policy.retry_on_status(status),
                TryFailure::RouteTimeout => false,
            };
        let permit = match granted {
            Some(permit) => permit,
            None if retryable => match permit(self.cluster) {
                Some(p) => p,
                None => {
                    self.cluster.stats.upstream_request_retry_overflow.inc();
                    return None;
                }
            },
            None => return None,
        };
        self.in_flight = Some(permit);
        self.done += 1;
        self.cluster.stats.upstream_request_retry.inc();
        let delay = policy.back_off.delay(self.done - 1, fastrand::u64(..));
        Some(deadline.map_or(delay, |d| {
            delay.min(d.saturating_duration_since(Instant::now()))
        }))
    }
}

/// The deadline of one try: the route's, shortened by the policy's per-try timeout.
pub(crate) fn try_deadline(
    policy: Option<&RetryPolicy>,
    route_deadline: Option<Instant>,
) -> Option<Instant> {
    let per_try = policy
        .and_then(|p| p.per_try_timeout)
        .map(|t| Instant::now() + t);
    match (route_deadline, per_try) {
        (Some(d), Some(p)) => Some(d.min(p)),
        (d, p) => d.or(p),
    }
}

/// Retries in flight may be at most 20% of the cluster's active requests (at least 3),
/// Envoy's retry budget, and within the cluster's max_retries breaker.
fn budget_has_room(cluster: &Cluster) -> bool {
    let active = cluster.stats.upstream_request_active.get().max(0) as u64;
    let budget = (active * RETRY_BUDGET_PERCENT / 100).max(RETRY_BUDGET_MIN);
    let retries = &cluster.breakers.retries;
    retries.current() < budget && (retries.max() == 0 || retries.current() < retries.max())
}

/// A retry permit, when the budget and the breaker allow one.
pub(crate) fn permit(cluster: &Cluster) -> Option<Permit<'_>> {
    if !budget_has_room(cluster) {
        cluster
            .breakers
            .retries
            .overflows
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return None;
    }
    cluster.breakers.retries.try_acquire()
}
