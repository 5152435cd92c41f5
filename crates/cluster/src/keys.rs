//! Redis key and channel names. Every key of one queue carries the same hash tag
//! (`{q:/queue/x}`), so a queue's stream and its notification channel live in one hash slot of a
//! Redis Cluster and a script may touch them together.

/// Names under one prefix (default `sb`).
#[derive(Clone, Debug)]
pub(crate) struct Names {
    prefix: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_owned(),
        }
    }

    /// The channel of a topic or user destination's routing key.
    pub(crate) fn topic(&self, key: &str) -> String {
        format!("{}:t:{key}", self.prefix)
    }

    /// Prefix of [`topic`](Self::topic) channels.
    pub(crate) fn topic_prefix(&self) -> String {
        format!("{}:t:", self.prefix)
    }

    /// The classic Pub/Sub channel wildcard subscribers listen on in Redis Cluster mode.
    pub(crate) fn wild(&self, key: &str) -> String {
        format!("{}:w:{key}", self.prefix)
    }

    /// Prefix of [`wild`](Self::wild) channels.
    pub(crate) fn wild_prefix(&self) -> String {
        format!("{}:w:", self.prefix)
    }

    /// The stream of a queue.
    pub(crate) fn stream(&self, queue: &str) -> String {
        format!("{}:{{q:{queue}}}:s", self.prefix)
    }

    /// The channel telling nodes that a queue has new entries (same hash slot as its stream).
    pub(crate) fn notify(&self, queue: &str) -> String {
        format!("{}:{{q:{queue}}}:n", self.prefix)
    }

    /// The queue a [`notify`](Self::notify) channel belongs to.
    pub(crate) fn queue_of_notify<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{q:")?
            .strip_suffix("}:n")
    }

    /// A node's liveness key.
    pub(crate) fn node(&self, id: &str) -> String {
        format!("{}:node:{id}", self.prefix)
    }

    /// The sorted set of wildcard prefixes some node listens to (Redis Cluster mode), member
    /// `node|prefix`, score its expiry (ms since the epoch).
    pub(crate) fn wildcards(&self) -> String {
        format!("{}:wild", self.prefix)
    }

    /// The user registry: a sorted set per user, member = node id, score = expiry (ms).
    pub(crate) fn user(&self, name: &str) -> String {
        format!("{}:user:{name}", self.prefix)
    }
}

/// The consumer group every node reads queues with.
pub(crate) const GROUP: &str = "sb";

/// The literal part of a wildcard subscription before its first wildcard segment, without the
/// separator that ends it: every destination the pattern matches starts with it
/// (`/topic/a/**` → `/topic/a`, which also matches `/topic/a` itself).
pub(crate) fn literal_prefix(pattern: &str) -> &str {
    let mut start = 0;
    for (i, c) in pattern.char_indices() {
        if c == '/' || c == '.' {
            if is_wild(&pattern[start..i]) {
                return trim_sep(&pattern[..start]);
            }
            start = i + 1;
        }
    }
    if is_wild(&pattern[start..]) {
        trim_sep(&pattern[..start])
    } else {
        pattern
    }
}

fn is_wild(seg: &str) -> bool {
    seg == "*" || seg == "**"
}

fn trim_sep(s: &str) -> &str {
    s.strip_suffix(['/', '.']).unwrap_or(s)
}

/// A Redis glob matching every channel `channel_prefix + p + anything`, with the glob
/// characters of `p` escaped.
pub(crate) fn glob(channel_prefix: &str, p: &str) -> String {
    let mut g = String::with_capacity(channel_prefix.len() + p.len() + 4);
    for c in channel_prefix.chars().chain(p.chars()) {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            g.push('\\');
        }
        g.push(c);
    }
    g.push('*');
    g
}

/// The prefixes of `all` that no other of them starts with: subscribing to these globs receives
/// each message at most once.
pub(crate) fn minimal_prefixes<'a>(all: impl Iterator<Item = &'a str> + Clone) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in all.clone() {
        let covered = all.clone().any(|q| q != p && p.starts_with(q));
        if !covered && !out.iter().any(|o| o == p) {
            out.push(p.to_owned());
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_patterns() {
        assert_eq!(literal_prefix("/topic/a/**"), "/topic/a");
        assert_eq!(literal_prefix("/topic/**"), "/topic");
        assert_eq!(literal_prefix("/topic/a.*.c"), "/topic/a");
        assert_eq!(literal_prefix("/topic/*/x"), "/topic");
        assert_eq!(literal_prefix("/topic/a*/*"), "/topic/a*");
    }

    #[test]
    fn globs_escape_and_minimal_sets() {
        assert_eq!(glob("sb:t:", "/topic/a*"), "sb:t:/topic/a\\**");
        let v = ["/topic/a", "/topic/a/b", "/topic/b", "/topic/a"];
        assert_eq!(
            minimal_prefixes(v.iter().copied()),
            vec!["/topic/a".to_owned(), "/topic/b".to_owned()]
        );
    }

    #[test]
    fn queue_names_share_a_hash_tag() {
        let n = Names::new("sb");
        assert_eq!(n.stream("/queue/x"), "sb:{q:/queue/x}:s");
        assert_eq!(n.queue_of_notify(&n.notify("/queue/x")), Some("/queue/x"));
        assert_eq!(n.queue_of_notify("sb:t:/queue/x"), None);
    }
}
