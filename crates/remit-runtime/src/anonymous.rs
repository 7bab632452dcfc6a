//! Requests from callers who are not authenticated: counted, summarized
//! and rate-limited, never recorded one receipt each.
//!
//! Anyone who can reach the port can send a request without credentials.
//! Writing a signed, synced receipt for each would let them grow the
//! append-only log (and spend a disk sync) at line rate. So a refusal
//! before authentication is a Prometheus counter by reason code
//! (`remit_unauthenticated_refusals_total{reason}`) plus, once per
//! [`SUMMARY_EVERY`] when any happened, one `deny` receipt that counts them
//! by reason ([`Refusals::summary`]): the log still shows that it
//! happened and how much, at a bounded cost.
//!
//! Each peer address also has a token bucket ([`Limits`]): every
//! unauthenticated refusal takes a token, and while a peer's bucket is
//! empty its requests are answered 429 with `Retry-After` before any work
//! (authenticated callers never take tokens, so a flood from one address
//! does not lock out an agent that holds a valid remit elsewhere).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often a summary receipt is written (when anything was refused).
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Peers remembered at most; past this, full buckets are forgotten first.
const MAX_PEERS: usize = 100_000;

/// The per-peer token bucket for unauthenticated refusals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Refusals a peer may draw at once (the bucket's size).
    pub burst: u32,
    /// Tokens a peer gets back per second.
    pub per_second: f64,
}

impl Default for Limits {
    /// 60 at once, then one a second: far above what a misconfigured
    /// client retrying with backoff sends, far below a flood.
    fn default() -> Self {
        Limits {
            burst: 60,
            per_second: 1.0,
        }
    }
}

impl Limits {
    /// The defaults, overridden by `REMIT_UNAUTH_BURST` (a whole number
    /// of requests) and `REMIT_UNAUTH_PER_SEC` (tokens back per second, a
    /// positive number); a value that does not parse stops the start.
    pub fn from_env() -> Result<Self, LimitsError> {
        let mut limits = Limits::default();
        let read = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let bad = |name: &str, value: &str| {
            LimitsError(format!(
                "{name}={value:?} is not valid: REMIT_UNAUTH_BURST is a whole number >= 1, REMIT_UNAUTH_PER_SEC a number > 0"
            ))
        };
        if let Some(v) = read("REMIT_UNAUTH_BURST") {
            limits.burst = v
                .parse()
                .ok()
                .filter(|b| *b >= 1)
                .ok_or_else(|| bad("REMIT_UNAUTH_BURST", &v))?;
        }
        if let Some(v) = read("REMIT_UNAUTH_PER_SEC") {
            limits.per_second = v
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r > 0.0)
                .ok_or_else(|| bad("REMIT_UNAUTH_PER_SEC", &v))?;
        }
        Ok(limits)
    }
}

/// A limit in the environment is not usable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LimitsError(String);

/// The reason code a refusing handler attaches to its 401 response (an
/// extension), so the counters name why without reading the body.
#[derive(Debug, Clone, Copy)]
pub struct RefusalReason(pub &'static str);

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Unauthenticated refusals: per-peer buckets and counts since the last
/// summary.
#[derive(Debug, Default)]
pub struct Refusals {
    limits: Limits,
    peers: Mutex<HashMap<IpAddr, Bucket>>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl Refusals {
    /// Refusals limited as `limits` say.
    pub fn new(limits: Limits) -> Self {
        Refusals {
            limits,
            ..Refusals::default()
        }
    }

    /// `None` when `peer` may be served; otherwise how long until it may.
    pub fn blocked(&self, peer: IpAddr, now: Instant) -> Option<Duration> {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = peers.get_mut(&peer)?;
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            return None;
        }
        let wait = (1.0 - bucket.tokens) / self.limits.per_second.max(f64::MIN_POSITIVE);
        Some(Duration::from_secs_f64(wait.clamp(1.0, 3600.0)))
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens =
            (bucket.tokens + elapsed * self.limits.per_second).min(f64::from(self.limits.burst));
        bucket.at = now;
    }

    /// Counts one refusal of `peer` for `reason` and takes a token.
    pub fn refused(&self, peer: Option<IpAddr>, reason: &'static str, now: Instant) {
        crate::metrics::unauthenticated(reason);
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(reason)
            .or_default() += 1;
        let Some(peer) = peer else { return };
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if peers.len() >= MAX_PEERS && !peers.contains_key(&peer) {
            let burst = f64::from(self.limits.burst);
            peers.retain(|_, b| b.tokens < burst);
            if peers.len() >= MAX_PEERS {
                peers.clear();
            }
        }
        let bucket = peers.entry(peer).or_insert(Bucket {
            tokens: f64::from(self.limits.burst),
            at: now,
        });
        self.refill(bucket, now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }

    /// The counts since the last summary, by reason, and resets them;
    /// `None` when there were none.
    pub fn summary(&self) -> Option<BTreeMap<&'static str, u64>> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut *counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_blocked_after_its_burst_and_served_again_after_refill() {
        let r = Refusals::new(Limits {
            burst: 3,
            per_second: 1.0,
        });
        let peer: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let t0 = Instant::now();
        assert!(r.blocked(peer, t0).is_none());
        for _ in 0..3 {
            r.refused(Some(peer), "invalid_token", t0);
        }
        let wait = r.blocked(peer, t0).unwrap();
        assert_eq!(wait.as_secs(), 1);
        assert!(r.blocked(other, t0).is_none());
        assert!(r.blocked(peer, t0 + Duration::from_secs(2)).is_none());
        let summary = r.summary().unwrap();
        assert_eq!(summary["invalid_token"], 3);
        assert!(r.summary().is_none());
    }
}
