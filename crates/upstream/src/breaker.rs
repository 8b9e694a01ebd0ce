//! Circuit breakers: cluster-wide caps on connections, pending requests, requests and
//! retries (MOSN's `circuit_breakers` thresholds). Shared by all workers as atomics;
//! a request over a cap is refused at once, never queued.

use mosn_config::CircuitBreakerThresholds;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Envoy's defaults, used when a cluster sets no thresholds.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 1024;
pub const DEFAULT_MAX_PENDING_REQUESTS: u64 = 1024;
pub const DEFAULT_MAX_REQUESTS: u64 = 1024;
pub const DEFAULT_MAX_RETRIES: u64 = 3;

/// One capped resource. `max == 0` means no limit.
#[derive(Debug)]
pub struct Resource {
    max: u64,
    current: AtomicU64,
    pub overflows: AtomicU64,
}

impl Resource {
    fn new(max: u64) -> Self {
        Resource {
            max,
            current: AtomicU64::new(0),
            overflows: AtomicU64::new(0),
        }
    }

    /// Takes one unit, or None (and an overflow is counted) when the cap is reached.
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        let before = self.current.fetch_add(1, Ordering::AcqRel);
        if self.max != 0 && before >= self.max {
            self.current.fetch_sub(1, Ordering::AcqRel);
            self.overflows.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Permit(self))
    }

    pub fn current(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }

    /// Gives back a unit taken by a permit that was forgotten.
    pub(crate) fn release(&self) {
        self.current.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn max(&self) -> u64 {
        self.max
    }
}

/// A held unit of a resource, given back on drop.
#[derive(Debug)]
pub struct Permit<'a>(&'a Resource);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A unit held by something that outlives a borrow (a pooled connection).
#[derive(Debug)]
pub struct OwnedPermit(Arc<Resource>);

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes one unit of a shared resource for as long as the permit lives.
pub fn try_acquire_owned(resource: &Arc<Resource>) -> Option<OwnedPermit> {
    let permit = resource.try_acquire()?;
    std::mem::forget(permit);
    Some(OwnedPermit(resource.clone()))
}

/// The four breakers of a cluster.
#[derive(Debug)]
pub struct CircuitBreakers {
    /// Shared with pooled connections, which hold their unit until they close.
    pub connections: Arc<Resource>,
    pub pending_requests: Resource,
    pub requests: Resource,
    pub retries: Resource,
}

impl CircuitBreakers {
    pub fn from_config(thresholds: &[CircuitBreakerThresholds]) -> Self {
        let t = thresholds.first().cloned().unwrap_or_default();
        let pick = |v: Option<u32>, default| v.map(u64::from).unwrap_or(default);
        CircuitBreakers {
            connections: Arc::new(Resource::new(pick(
                t.max_connections,
                DEFAULT_MAX_CONNECTIONS,
            ))),
            pending_requests: Resource::new(pick(
                t.max_pending_requests,
                DEFAULT_MAX_PENDING_REQUESTS,
            )),
            requests: Resource::new(pick(t.max_requests, DEFAULT_MAX_REQUESTS)),
            retries: Resource::new(pick(t.max_retries, DEFAULT_MAX_RETRIES)),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let r = |r: &Resource| serde_json::json!({"max": r.max, "current": r.current(), "overflows": r.overflows.load(Ordering::Relaxed)});
        serde_json::json!({
            "connections": r(&self.connections),
            "pending_requests": r(&self.pending_requests),
            "requests": r(&self.requests),
            "retries": r(&self.retries),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_releases() {
        let r = Resource::new(2);
        let a = r.try_acquire().unwrap();
        let _b = r.try_acquire().unwrap();
        assert!(r.try_acquire().is_none());
        assert_eq!(r.overflows.load(Ordering::Relaxed), 1);
        drop(a);
        assert!(r.try_acquire().is_some());
    }

    #[test]
    fn zero_means_unlimited_and_absent_means_envoy_defaults() {
        let explicit = CircuitBreakers::from_config(&[CircuitBreakerThresholds {
            max_requests: Some(0),
            ..Default::default()
        }]);
        let permits: Vec<_> = (0..5000)
            .filter_map(|_| explicit.requests.try_acquire())
            .collect();
        assert_eq!(permits.len(), 5000);
        let defaults = CircuitBreakers::from_config(&[]);
        assert_eq!(defaults.requests.max(), 1024);
        assert_eq!(defaults.retries.max(), 3);
    }
}
