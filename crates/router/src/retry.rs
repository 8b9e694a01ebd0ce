//! A route's retry policy: parsed and exposed; the proxy performs the retries.

use crate::error::{Location, RouterError};
use mosn_config as cfg;
use std::time::Duration;

/// The conditions a retry is allowed on (Envoy's `retry_on` names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RetryOn(u16);

impl RetryOn {
    /// `5xx`: any 5xx response, and no response at all (connect failure, reset,
    /// per-try timeout).
    pub const SERVER_ERROR: RetryOn = RetryOn(1);
    /// `gateway-error`: 502, 503, 504, and no response at all.
    pub const GATEWAY_ERROR: RetryOn = RetryOn(1 << 1);
    /// `reset`: the upstream reset or closed, or the per-try timeout passed, before a
    /// response head.
    pub const RESET: RetryOn = RetryOn(1 << 2);
    /// `connect-failure`: no connection could be made (connect timeout included).
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1 << 3);
    /// `retriable-4xx`: a 409 response.
    pub const RETRIABLE_4XX: RetryOn = RetryOn(1 << 4);
    /// `refused-stream`: an HTTP/2 REFUSED_STREAM.
    pub const REFUSED_STREAM: RetryOn = RetryOn(1 << 5);
    /// `retriable-status-codes`: a status listed in the policy's codes.
    pub const RETRIABLE_STATUS_CODES: RetryOn = RetryOn(1 << 6);

    pub const fn empty() -> RetryOn {
        RetryOn(0)
    }

    pub const fn union(self, other: RetryOn) -> RetryOn {
        RetryOn(self.0 | other.0)
    }

    /// Are all conditions of `other` set?
    pub const fn contains(self, other: RetryOn) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn intersects(self, other: RetryOn) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// One of Envoy's condition names.
    pub fn from_name(name: &str) -> Option<RetryOn> {
        Some(match name {
            "5xx" => RetryOn::SERVER_ERROR,
            "gateway-error" => RetryOn::GATEWAY_ERROR,
            "reset" => RetryOn::RESET,
            "connect-failure" => RetryOn::CONNECT_FAILURE,
            "retriable-4xx" => RetryOn::RETRIABLE_4XX,
            "refused-stream" => RetryOn::REFUSED_STREAM,
            "retriable-status-codes" => RetryOn::RETRIABLE_STATUS_CODES,
            _ => return None,
        })
    }
}

impl std::ops::BitOr for RetryOn {
    type Output = RetryOn;
    fn bitor(self, rhs: RetryOn) -> RetryOn {
        self.union(rhs)
    }
}

/// Envoy's jittered exponential back-off between retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBackOff {
    pub base_interval: Duration,
    pub max_interval: Duration,
}

impl RetryBackOff {
    /// Envoy's default base interval.
    pub const DEFAULT_BASE: Duration = Duration::from_millis(25);

    /// Defaults: base 25 ms, max ten times the base (Envoy's).
    pub fn new(base: Option<Duration>, max: Option<Duration>) -> RetryBackOff {
        let base_interval = base.unwrap_or(Self::DEFAULT_BASE);
        RetryBackOff {
            base_interval,
            max_interval: max.unwrap_or(base_interval.saturating_mul(10)),
        }
    }

    /// The wait before retry number `retry` (0 for the first): uniformly random in
    /// `[0, min(base * (2^(retry+1) - 1), max))`, as Envoy draws it. `random` is any
    /// uniformly distributed number.
    pub fn delay(&self, retry: u32, random: u64) -> Duration {
        let factor = 1u64
            .checked_shl(retry.saturating_add(1))
            .map_or(u64::MAX, |f| f - 1);
        let base = u64::try_from(self.base_interval.as_nanos()).unwrap_or(u64::MAX);
        let max = u64::try_from(self.max_interval.as_nanos()).unwrap_or(u64::MAX);
        let ceiling = base.saturating_mul(factor).min(max);
        if ceiling == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(random % ceiling)
    }
}

impl Default for RetryBackOff {
    fn default() -> Self {
        RetryBackOff::new(None, None)
    }
}

/// A route's retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retry_on: RetryOn,
    /// Retries after the first try (Envoy's default 1 when absent).
    pub num_retries: u32,
    /// Time for each try's response head; `None`: only the route timeout applies.
    pub per_try_timeout: Option<Duration>,
    /// For [`RetryOn::RETRIABLE_STATUS_CODES`]: MOSN's `status_codes` and Envoy's
    /// `retriable_status_codes`, ascending, without duplicates.
    pub retriable_status_codes: Box<[u16]>,
    pub back_off: RetryBackOff,
}

impl RetryPolicy {
    /// Envoy's `num_retries` default.
    pub const DEFAULT_NUM_RETRIES: u32 = 1;

    /// Does a response with this status call for a retry?
    pub fn retry_on_status(&self, status: u16) -> bool {
        let on = self.retry_on;
        (on.contains(RetryOn::SERVER_ERROR) && (500..=599).contains(&status))
            || (on.contains(RetryOn::GATEWAY_ERROR) && (502..=504).contains(&status))
            || (on.contains(RetryOn::RETRIABLE_4XX) && status == 409)
            || (on.contains(RetryOn::RETRIABLE_STATUS_CODES)
                && self.retriable_status_codes.binary_search(&status).is_ok())
    }

    /// Does a failure to connect call for a retry?
    pub fn retry_on_connect_failure(&self) -> bool {
        self.retry_on.intersects(
            RetryOn::CONNECT_FAILURE
                | RetryOn::RESET
                | RetryOn::SERVER_ERROR
                | RetryOn::GATEWAY_ERROR,
        )
    }

    /// Does a reset or close of the upstream before its response head call for a retry?
    pub fn retry_on_reset(&self) -> bool {
        self.retry_on
            .intersects(RetryOn::RESET | RetryOn::SERVER_ERROR | RetryOn::GATEWAY_ERROR)
    }

    /// Does the end of the per-try timeout call for a retry?
    pub fn retry_on_per_try_timeout(&self) -> bool {
        self.retry_on_reset()
    }

    /// Does an HTTP/2 REFUSED_STREAM call for a retry?
    pub fn retry_on_refused_stream(&self) -> bool {
        self.retry_on
            .intersects(RetryOn::REFUSED_STREAM | RetryOn::SERVER_ERROR)
    }

    pub(crate) fn build(r: &cfg::RetryPolicyConfig, at: &Location) -> Result<Self, RouterError> {
        let bad = |field: &str, reason: String| RouterError::BadField {
            at: at.boxed(),
            field: format!("route.retry_policy.{field}"),
            reason,
        };
        let mut codes = Vec::new();
        for (field, list) in [
            ("status_codes", &r.status_codes),
            ("retriable_status_codes", &r.retriable_status_codes),
        ] {
            for (i, &code) in list.iter().enumerate() {
                match u16::try_from(code) {
                    Ok(c) if (100..=599).contains(&c) => codes.push(c),
                    _ => {
                        return Err(bad(
                            &format!("{field}[{i}]"),
                            format!("{code} is not an HTTP status (100-599)"),
                        ))
                    }
                }
            }
        }
        codes.sort_unstable();
        codes.dedup();
        let retry_on = match &r.retry_on {
            // MOSN's bool: true retries 5xx (only the listed codes when there are
            // some), resets, per-try timeouts and connect failures; connect failures
            // are retried even when false.
            Some(cfg::RetryOnConfig::Bool(true)) if codes.is_empty() => {
                RetryOn::SERVER_ERROR | RetryOn::RESET | RetryOn::CONNECT_FAILURE
            }
            Some(cfg::RetryOnConfig::Bool(true)) => {
                RetryOn::RETRIABLE_STATUS_CODES | RetryOn::RESET | RetryOn::CONNECT_FAILURE
            }
            Some(cfg::RetryOnConfig::Bool(false)) | None => RetryOn::CONNECT_FAILURE,
            Some(cfg::RetryOnConfig::Conditions(list)) => {
                let mut on = RetryOn::empty();
                for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    on = on
                        | RetryOn::from_name(name).ok_or_else(|| {
                            bad(
                                "retry_on",
                                format!(
                                    "unknown retry condition {name:?} (one of {})",
                                    cfg::RETRY_ON_CONDITIONS.join(", ")
                                ),
                            )
                        })?;
                }
                on
            }
        };
        let per_try_timeout = match (r.retry_timeout, r.per_try_timeout) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "per_try_timeout",
                    "set retry_timeout or per_try_timeout, not both".into(),
                ))
            }
            (Some(d), None) | (None, Some(d)) => Some(d.0).filter(|d| !d.is_zero()),
            (None, None) => None,
        };
        let back_off = match &r.retry_back_off {
            None => RetryBackOff::default(),
            Some(b) => {
                let base = b.base_interval.map(|d| d.0);
                let max = b.max_interval.map(|d| d.0);
                if base.is_some_and(|d| d.is_zero()) {
                    return Err(bad(
                        "retry_back_off.base_interval",
                        "must be greater than 0".into(),
                    ));
                }
                if max.is_some_and(|d| d.is_zero()) {
                    return Err(bad(
                        "retry_back_off.max_interval",
                        "must be greater than 0".into(),
                    ));
                }
                let back_off = RetryBackOff::new(base, max);
                if back_off.max_interval < back_off.base_interval {
                    return Err(bad(
                        "retry_back_off.max_interval",
                        "must not be less than base_interval".into(),
                    ));
                }
                back_off
            }
        };
        Ok(RetryPolicy {
            retry_on,
            num_retries: r.num_retries.unwrap_or(Self::DEFAULT_NUM_RETRIES),
            per_try_timeout,
            retriable_status_codes: codes.into_boxed_slice(),
            back_off,
        })
    }
}
