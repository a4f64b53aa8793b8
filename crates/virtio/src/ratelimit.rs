//! Rate-limited warnings for what a guest can trigger at will (a broken
//! queue per reset, a bad register write): one line per call site a few
//! times per period, then a count of what was left out, so a hostile or
//! buggy guest cannot flood the host's log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Lines allowed per call site and period.
const BURST: u64 = 5;
/// The period, in seconds.
const PERIOD_SECS: u64 = 10;

/// The state of one call site.
pub(crate) struct RateLimit {
    /// The period the counts are for (seconds since the first use / PERIOD).
    period: AtomicU64,
    /// Lines asked for in that period.
    count: AtomicU64,
}

fn now_period() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_secs() / PERIOD_SECS
}

impl RateLimit {
    pub(crate) const fn new() -> Self {
        RateLimit {
            period: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Whether to log now, and how many lines of the last period were left
    /// out (reported once, with the first line of a new period).
    pub(crate) fn check(&self) -> Option<u64> {
        let now = now_period();
        let was = self.period.swap(now, Ordering::Relaxed);
        let mut suppressed = 0;
        if was != now {
            suppressed = self.count.swap(0, Ordering::Relaxed).saturating_sub(BURST);
        }
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        (n < BURST).then_some(suppressed)
    }
}

/// `tracing::warn!` at most a few times per period per call site.
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::ratelimit::RateLimit = $crate::ratelimit::RateLimit::new();
        if let Some(suppressed) = LIMIT.check() {
            if suppressed > 0 {
                tracing::warn!(suppressed, $($arg)+);
            } else {
                tracing::warn!($($arg)+);
            }
        }
    }};
}
pub(crate) use warn_limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_silence() {
        let limit = RateLimit::new();
        let allowed = (0..100).filter(|_| limit.check().is_some()).count();
        assert_eq!(allowed as u64, BURST);
    }
}
