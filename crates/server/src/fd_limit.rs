//! The open-file limit: how many connections the process can hold.
//!
//! Every connection is a file descriptor, so the soft `RLIMIT_NOFILE` caps connections long
//! before memory does (a default soft limit of 1024 is common). At start the binary raises the
//! soft limit to the hard limit ([`raise`]), and the default `limits.max_connections` is derived
//! from the limit in force ([`default_max_connections`]): the limit minus headroom for the
//! listeners, the runtime's own descriptors and files the server opens (certificates, client
//! library files), so that the connection limit, not `EMFILE` in the accept loop, is what a
//! client over the limit meets.

/// What [`raise`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit before.
    pub before: u64,
    /// The soft limit now.
    pub after: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Descriptors kept out of `max_connections`: at least this many.
const HEADROOM_MIN: u64 = 256;
/// ... or this fraction of the limit (1/32), whichever is more.
const HEADROOM_SHIFT: u32 = 5;
/// The default when the limit cannot be read (not Unix).
const FALLBACK_MAX_CONNECTIONS: usize = 10_000;

/// Raises the soft open-file limit to the hard limit. Returns `None` where there is no such
/// limit (not Unix) or it cannot be read; the limits as they are if raising failed.
pub fn raise() -> Option<NofileLimit> {
    let (before, hard) = current()?;
    if before >= hard {
        return Some(NofileLimit {
            before,
            after: before,
            hard,
        });
    }
    let after = match rlimit::Resource::NOFILE.set(hard, hard) {
        Ok(()) => current().map_or(before, |(soft, _)| soft),
        Err(_) => before,
    };
    Some(NofileLimit {
        before,
        after,
        hard,
    })
}

/// The soft and hard open-file limits.
fn current() -> Option<(u64, u64)> {
    if !rlimit::Resource::NOFILE.is_supported() {
        return None;
    }
    rlimit::Resource::NOFILE.get().ok()
}

/// `max_connections` for an open-file limit of `nofile`: the limit minus
/// `max(256, nofile / 32)`, at least 1.
pub fn max_connections_for(nofile: u64) -> usize {
    let headroom = HEADROOM_MIN.max(nofile >> HEADROOM_SHIFT);
    let n = nofile.saturating_sub(headroom).max(1);
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The smallest default listen backlog.
const BACKLOG_MIN: u32 = 1024;
/// The largest listen backlog Linux takes (`somaxconn` is an unsigned 16-bit value up to 5.4).
const BACKLOG_MAX: u32 = 65_535;

/// The listen backlog for `somaxconn`, the kernel's cap on every listen queue: that cap itself
/// (asking for more is truncated to it, asking for less wastes what the system allows), within
/// [1024, 65535]. A short queue is what makes a burst of connects stall: the kernel drops the
/// SYNs that find it full and those clients retry a second later (10,001 clients at once on
/// the 2-core development machine: 2,476 waited with 1024, none with 4096).
pub fn backlog_for(somaxconn: Option<u32>) -> u32 {
    somaxconn
        .unwrap_or(BACKLOG_MIN)
        .clamp(BACKLOG_MIN, BACKLOG_MAX)
}

/// The default `listeners.backlog`: [`backlog_for`] the running kernel's
/// `net.core.somaxconn` (`/proc/sys/net/core/somaxconn`; 4096 on Linux 5.4 and later), 1024
/// where it cannot be read.
pub fn default_backlog() -> u32 {
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    backlog_for(somaxconn)
}

/// The default `limits.max_connections`: derived from the soft open-file limit in force now
/// ([`max_connections_for`]), or 10 000 where there is none.
pub fn default_max_connections() -> usize {
    match current() {
        // RLIM_INFINITY reads as u64::MAX: keep a finite, still generous default.
        Some((soft, _)) if soft < u64::from(u32::MAX) => max_connections_for(soft),
        Some(_) => max_connections_for(u64::from(u32::MAX)),
        None => FALLBACK_MAX_CONNECTIONS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_is_at_least_256_and_grows_with_the_limit() {
        assert_eq!(max_connections_for(1024), 768);
        assert_eq!(max_connections_for(20_000), 20_000 - 625);
        assert_eq!(max_connections_for(1 << 20), (1 << 20) - (1 << 15));
        assert_eq!(max_connections_for(100), 1);
    }

    #[test]
    fn the_backlog_is_somaxconn_within_bounds() {
        assert_eq!(backlog_for(Some(4096)), 4096);
        assert_eq!(backlog_for(Some(128)), 1024);
        assert_eq!(backlog_for(None), 1024);
        assert_eq!(backlog_for(Some(1 << 20)), 65_535);
        assert!(default_backlog() >= 1024);
    }

    #[cfg(unix)]
    #[test]
    fn the_default_follows_the_soft_limit() {
        let (soft, hard) = current().expect("Unix has RLIMIT_NOFILE");
        assert!(soft <= hard);
        if soft < u64::from(u32::MAX) {
            assert_eq!(default_max_connections(), max_connections_for(soft));
        }
        let r = raise().expect("readable");
        assert_eq!(r.after, r.hard, "{r:?}");
    }
}
