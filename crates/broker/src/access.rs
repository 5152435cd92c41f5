//! Authorization: who may SUBSCRIBE to or SEND to which destination. A pluggable
//! [`Authorizer`], and [`AclAuthorizer`], an ordered rule list built from plain data (an
//! `[[acl]]` table in a configuration file maps onto [`AclRule`] field by field).
//!
//! Checks happen when a SUBSCRIBE or SEND arrives (a session caches SEND decisions per
//! destination), never per delivery. With no authorizer installed every destination is open,
//! as before authorization existed, at no cost.

use std::fmt;

use crate::auth::Principal;
use crate::destination::{Pattern, is_separator};

/// What a client wants to do with a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// SUBSCRIBE (the destination as the client wrote it, wildcards included; a user
    /// destination as `/user/queue/x`).
    Subscribe,
    /// SEND, to a broker destination (`/topic/...`, `/queue/...`, `/user/{name}/...`) or an
    /// application destination (`/app/...`): rules tell them apart by their patterns.
    Send,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 2] = [Action::Subscribe, Action::Send];

    /// Parses `subscribe` or `send`.
    pub fn parse(value: &str) -> Option<Action> {
        match value {
            "subscribe" => Some(Action::Subscribe),
            "send" => Some(Action::Send),
            _ => None,
        }
    }

    /// `subscribe` or `send`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Subscribe => "subscribe",
            Action::Send => "send",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whom an [`AclRule`] is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Who {
    /// The principal with this name (a login).
    User(String),
    /// Principals carrying this group ([`Principal::groups`]).
    Group(String),
    /// Every authenticated session (one with a principal).
    Authenticated,
    /// Sessions without a principal.
    Anonymous,
    /// Everyone.
    Anyone,
}

impl Who {
    /// Parses the configuration form: `user:NAME`, `group:NAME`, `authenticated`, `anonymous`,
    /// `anyone` (or `*`). `None` for anything else (a bare name is refused, so a login called
    /// `anonymous` cannot be mistaken for the keyword).
    pub fn parse(value: &str) -> Option<Who> {
        if let Some(name) = value.strip_prefix("user:") {
            return (!name.is_empty()).then(|| Who::User(name.to_owned()));
        }
        if let Some(name) = value.strip_prefix("group:") {
            return (!name.is_empty()).then(|| Who::Group(name.to_owned()));
        }
        match value {
            "authenticated" => Some(Who::Authenticated),
            "anonymous" => Some(Who::Anonymous),
            "anyone" | "*" => Some(Who::Anyone),
            _ => None,
        }
    }

    /// Whether this rule subject covers `principal` (`None`: anonymous).
    pub fn applies_to(&self, principal: Option<&Principal>) -> bool {
        match (self, principal) {
            (Who::Anyone, _) => true,
            (Who::Anonymous, p) => p.is_none(),
            (Who::Authenticated, p) => p.is_some(),
            (Who::User(name), Some(p)) => p.name() == name,
            (Who::Group(g), Some(p)) => p.groups().iter().any(|x| x == g),
            (_, None) => false,
        }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::User(n) => write!(f, "user:{n}"),
            Who::Group(g) => write!(f, "group:{g}"),
            Who::Authenticated => f.write_str("authenticated"),
            Who::Anonymous => f.write_str("anonymous"),
            Who::Anyone => f.write_str("anyone"),
        }
    }
}

/// One access rule: `who` may (`allow: true`) or may not (`allow: false`) perform `actions` on
/// `destinations`. Destinations use the subscription wildcard syntax (`*` one segment, `**`
/// any number, segments split on `/` and `.`), e.g. `/topic/public/**`, `/app/chat.*`,
/// `/user/*/queue/support`. A segment that is exactly `{username}` stands for the session's
/// principal name (RabbitMQ's topic-permission variable), e.g. `/queue/inbox.{username}`; such
/// a pattern matches nothing for an anonymous session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclRule {
    /// Whom the rule is about.
    pub who: Who,
    /// Destination patterns (at least one).
    pub destinations: Vec<String>,
    /// Actions (at least one).
    pub actions: Vec<Action>,
    /// Allow or deny.
    pub allow: bool,
}

/// A destination permission a principal carries itself, e.g. from a token's claims
/// (Centrifugo-style channel claims): `actions` on `destinations` (patterns as in
/// [`AclRule`]). [`AclAuthorizer`] checks a principal's grants before its rules: a grant only
/// ever allows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Grant {
    /// Actions granted.
    pub actions: Vec<Action>,
    /// Destination patterns granted.
    pub destinations: Vec<String>,
}

/// What an [`Authorizer`] decides about.
#[derive(Clone, Copy, Debug)]
pub struct AccessRequest<'a> {
    /// The session's principal (`None`: anonymous).
    pub principal: Option<&'a Principal>,
    /// The action.
    pub action: Action,
    /// The destination as the client wrote it (`/user/queue/x` for a user-destination
    /// SUBSCRIBE, `/user/bob/queue/x` for a SEND to bob, `/app/chat` for an application
    /// destination; a SEND to an application destination that a mapping rewrites is checked
    /// for the mapped destination too).
    pub destination: &'a str,
    /// For a wildcard topic subscription, its compiled pattern: the subscription is allowed
    /// only if everything it can match is.
    pub pattern: Option<&'a Pattern>,
}

/// Decides whether a session may SUBSCRIBE to or SEND to a destination. Called on the
/// session's task when the frame arrives (SEND decisions are cached per session and
/// destination until the session re-authenticates): keep it fast and free of IO. A denied
/// frame gets `ERROR message:Access denied: <action> <destination>` and the session closes.
///
/// User destinations are private whatever an authorizer says: a SUBSCRIBE to `/user/...`
/// always means the subscriber's own destinations.
pub trait Authorizer: Send + Sync + 'static {
    /// `true` to allow.
    fn authorize(&self, request: &AccessRequest<'_>) -> bool;
}

/// Why an ACL could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclError {
    /// Index of the offending rule.
    pub rule: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "acl rule {}: {}", self.rule + 1, self.reason)
    }
}

impl std::error::Error for AclError {}

/// The placeholder segment for the principal's name in ACL patterns.
pub const USERNAME_PLACEHOLDER: &str = "{username}";

#[derive(Debug)]
struct CompiledRule {
    who: Who,
    patterns: Vec<Pattern>,
    /// Whether a pattern has a `{username}` segment (then it is expanded per request).
    per_user: bool,
    actions: Vec<Action>,
    allow: bool,
}

impl CompiledRule {
    /// Whether the rule decides `request` (see [`decides`]), with `{username}` expanded.
    fn decides(&self, request: &AccessRequest<'_>, parts: &[&str]) -> bool {
        if !self.per_user {
            return decides(&self.patterns, parts, request.pattern, self.allow);
        }
        let name = request.principal.map(Principal::name);
        let expanded: Vec<Pattern> = self
            .patterns
            .iter()
            .filter_map(
                |p| match (p.substitute(USERNAME_PLACEHOLDER, name.unwrap_or("")), name) {
                    (Some(_), None) => None,
                    (Some(e), Some(_)) => Some(e),
                    (None, _) => Some(p.clone()),
                },
            )
            .collect();
        decides(&expanded, parts, request.pattern, self.allow)
    }
}

/// An ordered list of [`AclRule`]s: the first rule whose `who` and `actions` cover the request
/// and whose destinations match decides; if none does, `default_allow` does (`true` keeps the
/// behaviour of a broker without rules). A principal's [`Grant`]s are checked first.
///
/// A wildcard subscription (`/topic/**`) is allowed by an allow rule only if the rule covers
/// everything it can match, and denied by a deny rule that could match any of it; so
/// `deny /topic/secret/**` also refuses a SUBSCRIBE to `/topic/**`.
///
/// ```
/// use switchboard_broker::{AccessRequest, AclAuthorizer, AclRule, Action, Authorizer, Principal, Who};
///
/// let acl = AclAuthorizer::new(
///     vec![
///         AclRule { who: Who::Group("admins".into()), destinations: vec!["/**".into()],
///                   actions: Action::ALL.to_vec(), allow: true },
///         AclRule { who: Who::Anyone, destinations: vec!["/topic/public/**".into()],
///                   actions: vec![Action::Subscribe], allow: true },
///         AclRule { who: Who::Authenticated, destinations: vec!["/app/**".into()],
///                   actions: vec![Action::Send], allow: true },
///     ],
///     false, // everything else is denied
/// )
/// .unwrap();
/// let alice = Principal::new("alice");
/// let ask = |p: Option<&Principal>, action, destination| {
///     acl.authorize(&AccessRequest { principal: p, action, destination, pattern: None })
/// };
/// assert!(ask(Some(&alice), Action::Send, "/app/chat"));
/// assert!(!ask(None, Action::Send, "/app/chat"));
/// assert!(ask(None, Action::Subscribe, "/topic/public/news"));
/// assert!(!ask(Some(&alice), Action::Send, "/topic/public/news"));
/// ```
#[derive(Debug)]
pub struct AclAuthorizer {
    rules: Vec<CompiledRule>,
    default_allow: bool,
}

impl AclAuthorizer {
    /// Compiles `rules`. Fails on a rule without destinations or actions, or with an empty
    /// destination pattern.
    pub fn new(rules: Vec<AclRule>, default_allow: bool) -> Result<AclAuthorizer, AclError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, r) in rules.into_iter().enumerate() {
            let err = |reason: &str| AclError {
                rule: i,
                reason: reason.to_owned(),
            };
            if r.destinations.is_empty() {
                return Err(err("no destinations"));
            }
            if r.actions.is_empty() {
                return Err(err("no actions"));
            }
            if r.destinations.iter().any(|d| d.is_empty()) {
                return Err(err("an empty destination pattern"));
            }
            let patterns: Vec<Pattern> =
                r.destinations.iter().map(|d| Pattern::compile(d)).collect();
            let per_user = patterns
                .iter()
                .any(|p| p.substitute(USERNAME_PLACEHOLDER, "").is_some());
            compiled.push(CompiledRule {
                who: r.who,
                patterns,
                per_user,
                actions: r.actions,
                allow: r.allow,
            });
        }
        Ok(AclAuthorizer {
            rules: compiled,
            default_allow,
        })
    }

    /// The decision when no rule matches.
    pub fn default_allow(&self) -> bool {
        self.default_allow
    }
}

/// Whether one of `patterns` decides `request` in the rule's direction (`allow`): for a
/// literal destination, a pattern that matches it; for a wildcard subscription, one that
/// covers it (allow) or overlaps it (deny).
fn decides(patterns: &[Pattern], parts: &[&str], pattern: Option<&Pattern>, allow: bool) -> bool {
    match pattern {
        None => patterns.iter().any(|p| p.matches_segments(parts)),
        Some(sub) if allow => patterns.iter().any(|p| p.covers(sub)),
        Some(sub) => patterns.iter().any(|p| p.overlaps(sub)),
    }
}

impl Authorizer for AclAuthorizer {
    fn authorize(&self, request: &AccessRequest<'_>) -> bool {
        if let Some(p) = request.principal
            && p.grants_allow(request.action, request.destination, request.pattern)
        {
            return true;
        }
        let parts: Vec<&str> = request.destination.split(is_separator).collect();
        for rule in &self.rules {
            if rule.actions.contains(&request.action)
                && rule.who.applies_to(request.principal)
                && rule.decides(request, &parts)
            {
                return rule.allow;
            }
        }
        self.default_allow
    }
}

/// A principal's compiled grants (see [`Principal::with_grants`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CompiledGrant {
    actions: Vec<Action>,
    patterns: Vec<Pattern>,
}

impl CompiledGrant {
    pub(crate) fn new(g: &Grant) -> CompiledGrant {
        CompiledGrant {
            actions: g.actions.clone(),
            patterns: g
                .destinations
                .iter()
                .filter(|d| !d.is_empty())
                .map(|d| Pattern::compile(d))
                .collect(),
        }
    }

    pub(crate) fn allows(
        &self,
        action: Action,
        destination: &str,
        pattern: Option<&Pattern>,
    ) -> bool {
        if !self.actions.contains(&action) {
            return false;
        }
        let parts: Vec<&str> = destination.split(is_separator).collect();
        decides(&self.patterns, &parts, pattern, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(who: &str, dests: &[&str], actions: &[Action], allow: bool) -> AclRule {
        AclRule {
            who: Who::parse(who).expect("who"),
            destinations: dests.iter().map(|d| d.to_string()).collect(),
            actions: actions.to_vec(),
            allow,
        }
    }

    fn ask(acl: &AclAuthorizer, p: Option<&Principal>, action: Action, dest: &str) -> bool {
        let pattern = Pattern::parse(dest);
        acl.authorize(&AccessRequest {
            principal: p,
            action,
            destination: dest,
            pattern: pattern.as_ref(),
        })
    }

    #[test]
    fn who_parses_the_configuration_forms() {
        assert_eq!(Who::parse("user:alice"), Some(Who::User("alice".into())));
        assert_eq!(Who::parse("group:ops"), Some(Who::Group("ops".into())));
        assert_eq!(Who::parse("authenticated"), Some(Who::Authenticated));
        assert_eq!(Who::parse("anonymous"), Some(Who::Anonymous));
        assert_eq!(Who::parse("*"), Some(Who::Anyone));
        assert_eq!(Who::parse("alice"), None);
        assert_eq!(Who::parse("user:"), None);
        assert_eq!(Action::parse("send"), Some(Action::Send));
        assert_eq!(Action::parse("publish"), None);
    }

    #[test]
    fn first_match_wins_then_the_default() {
        let acl = AclAuthorizer::new(
            vec![
                rule("user:mallory", &["/**"], &Action::ALL, false),
                rule("anyone", &["/topic/**"], &[Action::Subscribe], true),
            ],
            false,
        )
        .unwrap();
        let alice = Principal::new("alice");
        let mallory = Principal::new("mallory");
        assert!(ask(&acl, Some(&alice), Action::Subscribe, "/topic/a"));
        assert!(!ask(&acl, Some(&mallory), Action::Subscribe, "/topic/a"));
        assert!(!ask(&acl, Some(&alice), Action::Send, "/topic/a"));
        let open = AclAuthorizer::new(
            vec![rule("anonymous", &["/queue/**"], &[Action::Send], false)],
            true,
        )
        .unwrap();
        assert!(ask(&open, Some(&alice), Action::Send, "/queue/a"));
        assert!(!ask(&open, None, Action::Send, "/queue/a"));
        assert!(ask(&open, None, Action::Send, "/topic/a"));
    }

    #[test]
    fn groups_and_grants() {
        let acl = AclAuthorizer::new(
            vec![rule(
                "group:ops",
                &["/queue/ops.*"],
                &[Action::Send, Action::Subscribe],
                true,
            )],
            false,
        )
        .unwrap();
        let ops = Principal::new("bob").with_groups(["staff", "ops"]);
        let staff = Principal::new("carol").with_groups(["staff"]);
        assert!(ask(&acl, Some(&ops), Action::Send, "/queue/ops.alerts"));
        assert!(!ask(&acl, Some(&staff), Action::Send, "/queue/ops.alerts"));
        let granted = Principal::new("dave").with_grants([Grant {
            actions: vec![Action::Subscribe],
            destinations: vec!["/topic/room.42".into(), "/topic/dave/**".into()],
        }]);
        assert!(ask(
            &acl,
            Some(&granted),
            Action::Subscribe,
            "/topic/room.42"
        ));
        assert!(ask(
            &acl,
            Some(&granted),
            Action::Subscribe,
            "/topic/dave/*"
        ));
        assert!(!ask(&acl, Some(&granted), Action::Send, "/topic/room.42"));
        assert!(!ask(
            &acl,
            Some(&granted),
            Action::Subscribe,
            "/topic/room.43"
        ));
        assert!(!ask(&acl, Some(&granted), Action::Subscribe, "/topic/**"));
    }

    #[test]
    fn wildcard_subscriptions_need_full_cover_and_no_overlapping_deny() {
        let acl = AclAuthorizer::new(
            vec![
                rule("anyone", &["/topic/secret/**"], &[Action::Subscribe], false),
                rule("anyone", &["/topic/public/**"], &[Action::Subscribe], true),
            ],
            true,
        )
        .unwrap();
        assert!(!ask(&acl, None, Action::Subscribe, "/topic/**"));
        assert!(!ask(&acl, None, Action::Subscribe, "/topic/*/x"));
        assert!(ask(&acl, None, Action::Subscribe, "/topic/public/*"));
        assert!(ask(&acl, None, Action::Subscribe, "/topic/other/*"));
        let closed = AclAuthorizer::new(
            vec![rule(
                "anyone",
                &["/topic/public/**"],
                &[Action::Subscribe],
                true,
            )],
            false,
        )
        .unwrap();
        assert!(!ask(&closed, None, Action::Subscribe, "/topic/*"));
        assert!(ask(&closed, None, Action::Subscribe, "/topic/public/**"));
    }

    #[test]
    fn username_placeholder_stands_for_the_principal() {
        let acl = AclAuthorizer::new(
            vec![rule(
                "authenticated",
                &["/queue/inbox.{username}", "/topic/{username}/**"],
                &Action::ALL,
                true,
            )],
            false,
        )
        .unwrap();
        let alice = Principal::new("alice");
        let dotted = Principal::new("john.doe");
        let star = Principal::new("*");
        assert!(ask(
            &acl,
            Some(&alice),
            Action::Subscribe,
            "/queue/inbox.alice"
        ));
        assert!(!ask(
            &acl,
            Some(&alice),
            Action::Subscribe,
            "/queue/inbox.bob"
        ));
        assert!(ask(
            &acl,
            Some(&alice),
            Action::Subscribe,
            "/topic/alice/**"
        ));
        assert!(!ask(&acl, Some(&alice), Action::Subscribe, "/topic/*/x"));
        assert!(ask(
            &acl,
            Some(&dotted),
            Action::Send,
            "/queue/inbox.john.doe"
        ));
        // A name is a literal, never a wildcard.
        assert!(!ask(&acl, Some(&star), Action::Send, "/queue/inbox.bob"));
        // (A SEND names its destination literally: `*` is then just a segment.)
        assert!(acl.authorize(&AccessRequest {
            principal: Some(&star),
            action: Action::Send,
            destination: "/queue/inbox.*",
            pattern: None,
        }));
        let anyone = AclAuthorizer::new(
            vec![rule(
                "anyone",
                &["/queue/inbox.{username}"],
                &Action::ALL,
                true,
            )],
            false,
        )
        .unwrap();
        assert!(!ask(&anyone, None, Action::Send, "/queue/inbox."));
        assert!(!ask(&anyone, None, Action::Send, "/queue/inbox.{username}"));
    }

    #[test]
    fn invalid_rules_are_refused() {
        let e =
            AclAuthorizer::new(vec![rule("anyone", &[], &[Action::Send], true)], true).unwrap_err();
        assert_eq!(e.rule, 0);
        assert!(AclAuthorizer::new(vec![rule("anyone", &["/a"], &[], true)], true).is_err());
        assert!(
            AclAuthorizer::new(vec![rule("anyone", &[""], &[Action::Send], true)], true).is_err()
        );
    }
}
