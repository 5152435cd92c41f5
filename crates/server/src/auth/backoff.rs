//! The per-address back-off after failed logins: after `max_failures` failures from one IP
//! address within `window`, CONNECTs from it are refused without looking at their credentials
//! for `delay`, doubling with each further failure up to `max_delay`. The table is bounded
//! (`max_addresses`; the entry whose last failure is oldest is evicted first), so a flood of
//! addresses costs bounded memory. Time is a parameter, so the rules are tested without sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Backoff as BackoffConfig;

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Failures counted in the current window.
    failures: u32,
    window_start: Instant,
    last_failure: Instant,
    /// Refused until then (credentials not checked).
    blocked_until: Option<Instant>,
    /// The refusal period the next failure past the threshold gets.
    next_delay: Duration,
}

/// The failed-login table.
#[derive(Debug)]
pub(crate) struct LoginBackoff {
    config: BackoffConfig,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

impl LoginBackoff {
    pub(crate) fn new(config: BackoffConfig) -> LoginBackoff {
        LoginBackoff {
            config,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a CONNECT from `ip` is refused now without checking its credentials.
    pub(crate) fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        if !self.config.enabled {
            return false;
        }
        let Ok(table) = self.table.lock() else {
            return false;
        };
        table
            .get(&ip)
            .and_then(|e| e.blocked_until)
            .is_some_and(|t| now < t)
    }

    /// Records a failed login from `ip` (a refused CONNECT, whether blocked or checked).
    pub(crate) fn failure(&self, ip: IpAddr, now: Instant) {
        if !self.config.enabled {
            return;
        }
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        let window = Duration::from_millis(self.config.window_ms);
        let first_delay = Duration::from_millis(self.config.delay_ms);
        let max_delay = Duration::from_millis(self.config.max_delay_ms);
        if !table.contains_key(&ip) && table.len() >= self.config.max_addresses.max(1) {
            // Full: forget addresses quiet for a window, else evict the stalest (an O(n)
            // scan, only when the table is full).
            table.retain(|_, e| {
                e.blocked_until.is_some_and(|t| now < t)
                    || now.duration_since(e.last_failure) <= window
            });
        }
        if !table.contains_key(&ip)
            && table.len() >= self.config.max_addresses.max(1)
            && let Some(stalest) = table
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| *k)
        {
            table.remove(&stalest);
        }
        let e = table.entry(ip).or_insert(Entry {
            failures: 0,
            window_start: now,
            last_failure: now,
            blocked_until: None,
            next_delay: first_delay,
        });
        let blocked = e.blocked_until.is_some_and(|t| now < t);
        if !blocked && now.duration_since(e.last_failure) > window {
            // Quiet for a whole window: start over, delay included.
            e.failures = 0;
            e.window_start = now;
            e.blocked_until = None;
            e.next_delay = first_delay;
        } else if e.blocked_until.is_none() && now.duration_since(e.window_start) > window {
            // A fresh window for an address that was never blocked.
            e.failures = 0;
            e.window_start = now;
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        if e.failures > self.config.max_failures || blocked {
            let delay = e.next_delay.min(max_delay);
            e.blocked_until = Some(now + delay);
            e.next_delay = (delay * 2).min(max_delay);
        }
    }

    /// Records a successful login from `ip`: its record is forgotten.
    pub(crate) fn success(&self, ip: IpAddr) {
        if let Ok(mut table) = self.table.lock() {
            table.remove(&ip);
        }
    }

    /// Addresses tracked now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.lock().map(|t| t.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BackoffConfig {
        BackoffConfig {
            max_failures: 3,
            window_ms: 10_000,
            delay_ms: 1_000,
            max_delay_ms: 4_000,
            max_addresses: 2,
            ..BackoffConfig::default()
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn blocks_after_max_failures_and_the_delay_grows_to_its_cap() {
        let b = LoginBackoff::new(cfg());
        let t0 = Instant::now();
        for i in 0..3 {
            b.failure(ip(1), t0 + Duration::from_millis(i));
            assert!(!b.is_blocked(ip(1), t0 + Duration::from_millis(i)));
        }
        b.failure(ip(1), t0 + Duration::from_millis(10));
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(b.is_blocked(ip(1), at(10)));
        assert!(b.is_blocked(ip(1), at(1_009)));
        assert!(!b.is_blocked(ip(1), at(1_010)));
        assert!(
            !b.is_blocked(ip(2), at(10)),
            "other addresses are not affected"
        );
        // The next failure after the block blocks for twice as long, then 4 s (the cap), 4 s.
        b.failure(ip(1), at(1_100));
        assert!(b.is_blocked(ip(1), at(3_099)));
        assert!(!b.is_blocked(ip(1), at(3_100)));
        b.failure(ip(1), at(3_200));
        assert!(b.is_blocked(ip(1), at(7_199)));
        assert!(!b.is_blocked(ip(1), at(7_200)));
        b.failure(ip(1), at(7_300));
        assert!(b.is_blocked(ip(1), at(11_299)));
        assert!(!b.is_blocked(ip(1), at(11_300)));
        // A success forgets the address.
        b.success(ip(1));
        b.failure(ip(1), at(11_400));
        assert!(!b.is_blocked(ip(1), at(11_400)));
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_block() {
        let b = LoginBackoff::new(cfg());
        let t0 = Instant::now();
        for i in 0..10u64 {
            let t = t0 + Duration::from_millis(i * 6_000);
            b.failure(ip(1), t);
            assert!(!b.is_blocked(ip(1), t), "failure {i}");
        }
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_stalest() {
        let b = LoginBackoff::new(cfg());
        let t0 = Instant::now();
        for n in 1..=50u8 {
            b.failure(ip(n), t0 + Duration::from_millis(u64::from(n)));
            assert!(b.len() <= 2);
        }
        assert_eq!(b.len(), 2);
        // Quiet entries are forgotten first when the table is full.
        b.failure(ip(99), t0 + Duration::from_secs(60));
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn disabled_never_blocks() {
        let b = LoginBackoff::new(BackoffConfig {
            enabled: false,
            ..cfg()
        });
        let t0 = Instant::now();
        for _ in 0..100 {
            b.failure(ip(1), t0);
        }
        assert!(!b.is_blocked(ip(1), t0));
    }
}
