//! Destinations: kinds, routes, and Ant-style topic wildcards.
//!
//! Segments are separated by `/` **or** `.` (so Spring-style `/topic/a/b` and RabbitMQ-style
//! `/topic/a.b` both work). In a subscription to a topic, a segment that is exactly `*` matches one
//! segment and a segment that is exactly `**` matches any number of segments (zero included);
//! `a*` is a literal. Wildcards only mean something in subscriptions to topics; a SEND names one
//! topic literally. Separators are not interchangeable when matching literally: `/topic/a.b` and
//! `/topic/a/b` are different topics, but both match `/topic/a/*`.

use bytestring::ByteString;

/// What a destination is, for routing and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DestinationKind {
    /// Fan-out to every matching subscription (`/topic/...` and anything unprefixed).
    Topic,
    /// Competing consumers, messages kept while nobody takes them (`/queue/...`).
    Queue,
    /// A user destination (`/user/...`), fan-out to that user's sessions.
    User,
    /// An application destination (`/app...`), handled by code, never subscribed to.
    App,
}

impl DestinationKind {
    /// Every kind, in a fixed order (used to index counters).
    pub const ALL: [DestinationKind; 4] = [
        DestinationKind::Topic,
        DestinationKind::Queue,
        DestinationKind::User,
        DestinationKind::App,
    ];

    /// Lower-case name, for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::Topic => "topic",
            DestinationKind::Queue => "queue",
            DestinationKind::User => "user",
            DestinationKind::App => "app",
        }
    }

    /// Position in [`DestinationKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How a backend routes a message or a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// Fan-out (topics and user destinations).
    FanOut,
    /// Competing consumers (queues).
    Queue,
}

/// A routing key: what a backend matches subscriptions and messages on.
///
/// For user destinations the key is `/user/{name}/{rest}` while the MESSAGE shows `/user/{rest}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// Fan-out or queue.
    pub kind: RouteKind,
    /// The destination kind (for metrics).
    pub destination_kind: DestinationKind,
    /// The key, e.g. `/topic/prices` or `/user/alice/queue/replies`.
    pub key: ByteString,
}

/// One segment of a compiled subscription pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Segment {
    Literal(String),
    One,
    Any,
}

/// A compiled topic wildcard pattern (see the module docs for the syntax).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    segments: Vec<Segment>,
}

pub(crate) fn is_separator(c: char) -> bool {
    c == '/' || c == '.'
}

impl Pattern {
    /// Compiles `pattern`; `None` if it has no wildcard segment (then it is a literal destination).
    pub fn parse(pattern: &str) -> Option<Pattern> {
        let mut wild = false;
        let segments = pattern
            .split(is_separator)
            .map(|s| match s {
                "*" => {
                    wild = true;
                    Segment::One
                }
                "**" => {
                    wild = true;
                    Segment::Any
                }
                lit => Segment::Literal(lit.to_owned()),
            })
            .collect();
        wild.then_some(Pattern { segments })
    }

    /// Compiles `pattern` whether or not it has a wildcard segment (a literal pattern matches
    /// only itself).
    pub fn compile(pattern: &str) -> Pattern {
        let segments = pattern
            .split(is_separator)
            .map(|s| match s {
                "*" => Segment::One,
                "**" => Segment::Any,
                lit => Segment::Literal(lit.to_owned()),
            })
            .collect();
        Pattern { segments }
    }

    /// This pattern with every segment that is exactly `placeholder` replaced by the segments
    /// of `value` (split like a destination), as literals: a `*` in `value` matches only `*`.
    /// `None` if the pattern has no such segment.
    pub(crate) fn substitute(&self, placeholder: &str, value: &str) -> Option<Pattern> {
        let is_it = |s: &Segment| matches!(s, Segment::Literal(l) if l == placeholder);
        if !self.segments.iter().any(is_it) {
            return None;
        }
        let mut segments = Vec::with_capacity(self.segments.len() + 2);
        for s in &self.segments {
            if is_it(s) {
                segments.extend(
                    value
                        .split(is_separator)
                        .map(|v| Segment::Literal(v.to_owned())),
                );
            } else {
                segments.push(s.clone());
            }
        }
        Some(Pattern { segments })
    }

    /// Whether the pattern has a wildcard segment.
    pub fn is_wildcard(&self) -> bool {
        self.segments
            .iter()
            .any(|s| !matches!(s, Segment::Literal(_)))
    }

    /// Whether every destination `other` matches, this pattern matches too (`other` is a
    /// subscription pattern). Conservative: it may answer `false` for exotic pairs that are in
    /// fact contained (e.g. `**/*` covering `*/**`), never `true` wrongly.
    pub fn covers(&self, other: &Pattern) -> bool {
        let (r, s) = (&self.segments, &other.segments);
        let mut memo = vec![None; (r.len() + 1) * (s.len() + 1)];
        covers_at(r, s, 0, 0, &mut memo)
    }

    /// Whether some destination matches both this pattern and `other`.
    pub fn overlaps(&self, other: &Pattern) -> bool {
        let (r, s) = (&self.segments, &other.segments);
        let mut memo = vec![None; (r.len() + 1) * (s.len() + 1)];
        overlaps_at(r, s, 0, 0, &mut memo)
    }

    /// Whether `destination` matches.
    pub fn matches(&self, destination: &str) -> bool {
        let parts: Vec<&str> = destination.split(is_separator).collect();
        self.matches_segments(&parts)
    }

    /// Whether the pre-split `destination` segments match (split with `/` and `.`).
    pub fn matches_segments(&self, parts: &[&str]) -> bool {
        // Classic glob matching over segments: `**` is the star, `*` the single wildcard.
        let pat = &self.segments;
        let (mut p, mut d) = (0usize, 0usize);
        let mut backtrack: Option<(usize, usize)> = None;
        while d < parts.len() {
            match pat.get(p) {
                Some(Segment::Any) => {
                    backtrack = Some((p, d));
                    p += 1;
                    continue;
                }
                Some(Segment::One) => {
                    p += 1;
                    d += 1;
                    continue;
                }
                Some(Segment::Literal(l)) if l == parts[d] => {
                    p += 1;
                    d += 1;
                    continue;
                }
                _ => {}
            }
            match backtrack {
                Some((bp, bd)) => {
                    p = bp + 1;
                    d = bd + 1;
                    backtrack = Some((bp, bd + 1));
                }
                None => return false,
            }
        }
        pat[p..].iter().all(|s| *s == Segment::Any)
    }
}

fn covers_at(r: &[Segment], s: &[Segment], i: usize, j: usize, memo: &mut [Option<bool>]) -> bool {
    let slot = i * (s.len() + 1) + j;
    if let Some(v) = memo[slot] {
        return v;
    }
    let v = match r.get(i) {
        None => j == s.len(),
        // `**` absorbs any of the other pattern's segments, `**` included.
        Some(Segment::Any) => {
            covers_at(r, s, i + 1, j, memo) || (j < s.len() && covers_at(r, s, i, j + 1, memo))
        }
        Some(Segment::One) => {
            matches!(s.get(j), Some(Segment::Literal(_) | Segment::One))
                && covers_at(r, s, i + 1, j + 1, memo)
        }
        Some(Segment::Literal(l)) => {
            matches!(s.get(j), Some(Segment::Literal(x)) if x == l)
                && covers_at(r, s, i + 1, j + 1, memo)
        }
    };
    memo[slot] = Some(v);
    v
}

fn overlaps_at(
    r: &[Segment],
    s: &[Segment],
    i: usize,
    j: usize,
    memo: &mut [Option<bool>],
) -> bool {
    let slot = i * (s.len() + 1) + j;
    if let Some(v) = memo[slot] {
        return v;
    }
    let v = match (r.get(i), s.get(j)) {
        (None, None) => true,
        (Some(Segment::Any), _) => {
            overlaps_at(r, s, i + 1, j, memo) || (j < s.len() && overlaps_at(r, s, i, j + 1, memo))
        }
        (_, Some(Segment::Any)) => {
            overlaps_at(r, s, i, j + 1, memo) || (i < r.len() && overlaps_at(r, s, i + 1, j, memo))
        }
        (Some(a), Some(b)) => {
            let compatible = match (a, b) {
                (Segment::Literal(x), Segment::Literal(y)) => x == y,
                _ => true,
            };
            compatible && overlaps_at(r, s, i + 1, j + 1, memo)
        }
        _ => false,
    };
    memo[slot] = Some(v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, d: &str) -> bool {
        Pattern::parse(p).expect("wildcard").matches(d)
    }

    #[test]
    fn literal_is_not_a_pattern() {
        assert!(Pattern::parse("/topic/a/b").is_none());
        assert!(Pattern::parse("/topic/a*").is_none());
    }

    #[test]
    fn single_segment() {
        assert!(m("/topic/*", "/topic/a"));
        assert!(!m("/topic/*", "/topic/a/b"));
        assert!(!m("/topic/*", "/topic"));
        assert!(m("/topic/*/x", "/topic/a/x"));
        assert!(m("/topic/*.x", "/topic/a.x"));
        assert!(m("/topic/*", "/topic/"));
        assert!(!m("/topic/*/x", "/topic/a/y"));
    }

    #[test]
    fn any_segments() {
        assert!(m("/topic/**", "/topic/a"));
        assert!(m("/topic/**", "/topic/a/b/c"));
        assert!(m("/topic/**", "/topic"));
        assert!(m("/topic/a/**/z", "/topic/a/z"));
        assert!(m("/topic/a/**/z", "/topic/a/b/c/z"));
        assert!(!m("/topic/a/**/z", "/topic/a/b/c/y"));
        assert!(m("/topic/**/b/*", "/topic/x/b/y/b/z"));
        assert!(!m("/topic/**", "/queue/a"));
    }

    #[test]
    fn compiled_literals_match_only_themselves() {
        let p = Pattern::compile("/queue/a");
        assert!(!p.is_wildcard());
        assert!(p.matches("/queue/a"));
        assert!(!p.matches("/queue/b"));
        assert!(Pattern::compile("/queue/*").is_wildcard());
    }

    #[test]
    fn covers_and_overlaps() {
        let c = |r: &str, s: &str| Pattern::compile(r).covers(&Pattern::compile(s));
        let o = |r: &str, s: &str| Pattern::compile(r).overlaps(&Pattern::compile(s));
        assert!(c("/topic/**", "/topic/**"));
        assert!(c("/topic/**", "/topic/a/*"));
        assert!(c("/topic/*/b", "/topic/*/b"));
        assert!(c("/topic/a/**", "/topic/a/b/**"));
        assert!(!c("/topic/a/**", "/topic/**"));
        assert!(!c("/topic/*", "/topic/**"));
        assert!(!c("/topic/a", "/topic/*"));
        assert!(c("/topic/*", "/topic/a"));
        assert!(o("/topic/secret/**", "/topic/**"));
        assert!(o("/topic/*/x", "/topic/a/*"));
        assert!(!o("/topic/a/*", "/topic/b/*"));
        assert!(!o("/topic/a", "/topic/a/**/b"));
        assert!(o("/topic/a/**", "/topic/*"));
        assert!(!o("/queue/**", "/topic/**"));
    }

    #[test]
    fn dots_and_slashes_both_separate() {
        assert!(m("/topic/stocks.*", "/topic/stocks.nyse"));
        assert!(m("/topic/stocks/*", "/topic/stocks.nyse"));
        assert!(m("/topic/stocks.**", "/topic/stocks/a.b"));
    }
}
