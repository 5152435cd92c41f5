//! The broker: configuration, backend, authenticator, application handlers, counters; and the
//! factory of sessions.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use bytestring::ByteString;
use switchboard_stomp::{Headers, Version};

use crate::access::Authorizer;
use crate::app::{AppContext, AppError, AppHandler, AppMessage, FnHandler};
use crate::auth::{AllowAll, Authenticator, Principal};
use crate::backend::{Backend, BackendError, Publication, PublishOutcome};
use crate::config::BrokerConfig;
use crate::destination::{DestinationKind, Pattern, Route, RouteKind};
use crate::error::{ErrorKind, StompError};
use crate::memory::MemoryBackend;
use crate::message::{Message, itoa};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::outbox::OutboundSignal;
use crate::session::Session;

/// Per-connection options the transport knows (e.g. from the WebSocket subprotocol).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// Restrict the versions this session may negotiate (`v12.stomp` → `[V1_2]`). `None`: the
    /// broker's configured versions.
    pub versions: Option<Vec<Version>>,
}

/// Builds a [`Broker`] with a custom backend, authenticator or application handlers.
pub struct BrokerBuilder {
    config: BrokerConfig,
    backend: Option<Arc<dyn Backend>>,
    authenticator: Option<Arc<dyn Authenticator>>,
    authorizer: Option<Arc<dyn Authorizer>>,
    handlers: Vec<(String, Arc<dyn AppHandler>)>,
}

impl fmt::Debug for BrokerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerBuilder")
            .field("config", &self.config)
            .field(
                "handlers",
                &self.handlers.iter().map(|h| &h.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl BrokerBuilder {
    /// Uses `backend` instead of a [`MemoryBackend`].
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Sets the prefix of generated `message-id`s ([`BrokerConfig::message_id_prefix`]): a
    /// clustered backend gives each node its own, so ids are unique cluster-wide.
    pub fn message_id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.message_id_prefix = prefix.into();
        self
    }

    /// Uses `authenticator` instead of [`AllowAll`].
    pub fn authenticator(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    /// Checks every SUBSCRIBE and SEND with `authorizer` (e.g. an
    /// [`AclAuthorizer`](crate::AclAuthorizer)). Without one, every destination is open.
    pub fn authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Routes SENDs to `destination` (an application destination such as `/app/chat`) and to
    /// anything below it (`/app/chat/...`) to `handler`. The longest registered prefix wins;
    /// destinations with no handler fall back to the config's `app_mappings`.
    pub fn handler<F>(self, destination: &str, handler: F) -> Self
    where
        F: Fn(&AppMessage<'_>, &mut AppContext<'_>) -> Result<(), AppError> + Send + Sync + 'static,
    {
        self.app_handler(destination, Arc::new(FnHandler(handler)))
    }

    /// Like [`handler`](Self::handler), for a type implementing [`AppHandler`].
    pub fn app_handler(mut self, destination: &str, handler: Arc<dyn AppHandler>) -> Self {
        self.handlers.push((destination.to_owned(), handler));
        self
    }

    /// Builds the broker.
    pub fn build(self) -> Broker {
        let mut handlers = self.handlers;
        handlers.sort_by_key(|h| std::cmp::Reverse(h.0.len()));
        let backend = self
            .backend
            .unwrap_or_else(|| Arc::new(MemoryBackend::with_config(&self.config)));
        Broker {
            inner: Arc::new(BrokerInner {
                config: self.config,
                backend,
                authenticator: self.authenticator.unwrap_or_else(|| Arc::new(AllowAll)),
                authorizer: self.authorizer,
                handlers,
                metrics: Metrics::default(),
                sessions: Mutex::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
                next_session: AtomicU64::new(1),
                next_message: AtomicU64::new(1),
            }),
        }
    }
}

/// A STOMP broker: create one, share it (`Clone` is an `Arc` bump), open a [`Session`] per
/// connection.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<BrokerInner>,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Default for Broker {
    fn default() -> Self {
        Broker::new(BrokerConfig::default())
    }
}

impl Broker {
    /// A broker with the in-memory backend, allow-all authentication and no handlers.
    pub fn new(config: BrokerConfig) -> Broker {
        Broker::builder(config).build()
    }

    /// A builder, to set a backend, an authenticator or application handlers.
    pub fn builder(config: BrokerConfig) -> BrokerBuilder {
        BrokerBuilder {
            config,
            backend: None,
            authenticator: None,
            authorizer: None,
            handlers: Vec::new(),
        }
    }

    /// Opens a session for a new connection. Over `max_connections`, the session starts closing
    /// with an ERROR (drain it like any other).
    pub fn open_session(&self, now: Instant) -> Session {
        self.open_session_with(SessionOptions::default(), now)
    }

    /// [`open_session`](Self::open_session) with per-connection options.
    pub fn open_session_with(&self, options: SessionOptions, now: Instant) -> Session {
        Session::open(self.inner.clone(), options, now)
    }

    /// Publishes a message from outside any session (a timer, an HTTP endpoint, a handler's
    /// background task). Application destinations are routed like a SEND.
    pub fn publish(
        &self,
        destination: &str,
        headers: &Headers,
        body: Bytes,
    ) -> Result<PublishOutcome, PublishError> {
        self.inner
            .publish_routed(destination, headers, body, true)
            .map_err(|e| PublishError {
                kind: e.kind,
                message: e.message,
                detail: e.detail,
            })
    }

    /// Counts a failed authentication the transport decided itself (e.g. a bad bearer token on
    /// the WebSocket upgrade), in `MetricsSnapshot::auth_failures` beside the CONNECTs the
    /// authenticator refused.
    pub fn record_auth_failure(&self) {
        self.inner.metrics.auth_failure();
    }

    /// A snapshot of the counters and backend gauges.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot(self.inner.backend.stats())
    }

    /// Starts a graceful shutdown: every session delivers what is already queued for it, then
    /// sends `ERROR message:Server shutting down` and closes. Sessions opened afterwards are
    /// refused the same way.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        let signals: Vec<OutboundSignal> = self
            .inner
            .sessions
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        for s in signals {
            s.notify();
        }
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// The configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }
}

/// Why [`Broker::publish`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishError {
    /// The kind.
    pub kind: ErrorKind,
    /// Short text.
    pub message: String,
    /// Details.
    pub detail: String,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.message, self.detail)
    }
}

impl std::error::Error for PublishError {}

/// Where a SEND goes.
pub(crate) enum SendTarget {
    App,
    Route { route: Route, shown_as: ByteString },
}

pub(crate) struct BrokerInner {
    pub(crate) config: BrokerConfig,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) authorizer: Option<Arc<dyn Authorizer>>,
    handlers: Vec<(String, Arc<dyn AppHandler>)>,
    pub(crate) metrics: Metrics,
    pub(crate) sessions: Mutex<HashMap<u64, OutboundSignal>>,
    pub(crate) shutting_down: AtomicBool,
    next_session: AtomicU64,
    next_message: AtomicU64,
}

fn has_prefix(dest: &str, prefix: &str) -> bool {
    // `/app` matches `/app` and `/app/...`; `/topic/` matches `/topic/...`.
    match dest.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

impl BrokerInner {
    pub(crate) fn next_session_number(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    fn next_message_id(&self) -> ByteString {
        let n = self.next_message.fetch_add(1, Ordering::Relaxed);
        let mut s = String::with_capacity(self.config.message_id_prefix.len() + 20);
        s.push_str(&self.config.message_id_prefix);
        s.push_str(itoa(n).as_str());
        ByteString::from(s)
    }

    /// Classifies a SEND destination.
    pub(crate) fn resolve_send(&self, dest: &str) -> Result<SendTarget, StompError> {
        self.resolve_send_shared(dest, None)
    }

    /// [`resolve_send`](Self::resolve_send), reusing the frame's shared copy of `dest` (no
    /// allocation for the routing key).
    pub(crate) fn resolve_send_shared(
        &self,
        dest: &str,
        shared: Option<&ByteString>,
    ) -> Result<SendTarget, StompError> {
        let owned = || match shared {
            Some(b) => b.clone(),
            None => ByteString::from(dest.to_owned()),
        };
        let p = &self.config.prefixes;
        if dest.is_empty() {
            return Err(StompError::new(
                ErrorKind::InvalidDestination,
                "the destination is empty",
            ));
        }
        if has_prefix(dest, &p.app) {
            return Ok(SendTarget::App);
        }
        if let Some(rest) = dest.strip_prefix(p.user.as_str()) {
            // /user/{name}/{tail} → routed on the full name, shown as /user/{tail}.
            return match rest.split_once('/') {
                Some((name, tail)) if !name.is_empty() && !tail.is_empty() => {
                    Ok(SendTarget::Route {
                        route: Route {
                            kind: RouteKind::FanOut,
                            destination_kind: DestinationKind::User,
                            key: owned(),
                        },
                        shown_as: ByteString::from(format!("{}{tail}", p.user)),
                    })
                }
                _ => Err(StompError::new(
                    ErrorKind::InvalidDestination,
                    format!(
                        "send to user destinations as {}{{user}}/{{destination}}",
                        p.user
                    ),
                )),
            };
        }
        let (kind, dkind) = if has_prefix(dest, &p.queue) {
            (RouteKind::Queue, DestinationKind::Queue)
        } else {
            (RouteKind::FanOut, DestinationKind::Topic)
        };
        let key = owned();
        Ok(SendTarget::Route {
            route: Route {
                kind,
                destination_kind: dkind,
                key: key.clone(),
            },
            shown_as: key,
        })
    }

    /// Classifies a SUBSCRIBE destination for a session whose user name is `user`.
    pub(crate) fn resolve_subscribe(
        &self,
        dest: &str,
        user: &str,
    ) -> Result<(Route, Option<Pattern>), StompError> {
        let p = &self.config.prefixes;
        if dest.is_empty() {
            return Err(StompError::new(
                ErrorKind::InvalidDestination,
                "the destination is empty",
            ));
        }
        if has_prefix(dest, &p.app) {
            return Err(StompError::new(
                ErrorKind::InvalidDestination,
                format!("cannot subscribe to application destination {dest}"),
            ));
        }
        if let Some(tail) = dest.strip_prefix(p.user.as_str()) {
            if tail.is_empty() {
                return Err(StompError::new(
                    ErrorKind::InvalidDestination,
                    "empty user destination",
                ));
            }
            return Ok((
                Route {
                    kind: RouteKind::FanOut,
                    destination_kind: DestinationKind::User,
                    key: ByteString::from(format!("{}{user}/{tail}", p.user)),
                },
                None,
            ));
        }
        let key = ByteString::from(dest.to_owned());
        if has_prefix(dest, &p.queue) {
            return Ok((
                Route {
                    kind: RouteKind::Queue,
                    destination_kind: DestinationKind::Queue,
                    key,
                },
                None,
            ));
        }
        let pattern = if has_prefix(dest, &p.topic) {
            Pattern::parse(dest)
        } else {
            None
        };
        Ok((
            Route {
                kind: RouteKind::FanOut,
                destination_kind: DestinationKind::Topic,
                key,
            },
            pattern,
        ))
    }

    /// Where a SEND to `dest` is routed, without handlers: application destinations only with
    /// `allow_app`, through the config's `app_mappings`.
    fn route_for(&self, dest: &str, allow_app: bool) -> Result<(Route, ByteString), StompError> {
        match self.resolve_send(dest)? {
            SendTarget::Route { route, shown_as } => Ok((route, shown_as)),
            SendTarget::App if allow_app => self.map_app(dest),
            SendTarget::App => Err(StompError::new(
                ErrorKind::InvalidDestination,
                format!("handlers cannot publish to application destination {dest}"),
            )),
        }
    }

    /// Publishes to a non-application destination (or, with `allow_app`, through the config's
    /// application mappings — never handlers).
    pub(crate) fn publish_routed(
        &self,
        dest: &str,
        headers: &Headers,
        body: Bytes,
        allow_app: bool,
    ) -> Result<PublishOutcome, StompError> {
        let (route, shown_as) = self.route_for(dest, allow_app)?;
        self.publish_route(&route, shown_as, headers, body)
    }

    /// Like [`publish_routed`](Self::publish_routed), but adds the message to `staged` (a
    /// transaction being committed) instead of publishing it.
    pub(crate) fn stage_routed(
        &self,
        dest: &str,
        headers: &Headers,
        body: Bytes,
        allow_app: bool,
        staged: &mut Vec<Publication>,
    ) -> Result<(), StompError> {
        let (route, shown_as) = self.route_for(dest, allow_app)?;
        self.stage_route(route, shown_as, headers, body, staged);
        Ok(())
    }

    pub(crate) fn stage_route(
        &self,
        route: Route,
        shown_as: ByteString,
        headers: &Headers,
        body: Bytes,
        staged: &mut Vec<Publication>,
    ) {
        let message = Arc::new(Message::new(
            self.next_message_id(),
            shown_as,
            route.destination_kind,
            headers,
            body,
        ));
        staged.push(Publication { route, message });
    }

    pub(crate) fn publish_route(
        &self,
        route: &Route,
        shown_as: ByteString,
        headers: &Headers,
        body: Bytes,
    ) -> Result<PublishOutcome, StompError> {
        let message = Arc::new(Message::new(
            self.next_message_id(),
            shown_as,
            route.destination_kind,
            headers,
            body,
        ));
        self.metrics.message_in(route.destination_kind);
        match self.backend.publish(route, message) {
            Ok(outcome) => {
                self.metrics.dropped(outcome.dropped);
                Ok(outcome)
            }
            Err(e) => Err(backend_error(e)),
        }
    }

    /// Publishes a committed transaction's messages all-or-nothing.
    pub(crate) fn publish_all(&self, batch: &[Publication]) -> Result<(), StompError> {
        if batch.is_empty() {
            return Ok(());
        }
        let outcomes = self.backend.publish_all(batch).map_err(backend_error)?;
        for p in batch {
            self.metrics.message_in(p.route.destination_kind);
        }
        self.metrics
            .dropped(outcomes.iter().map(|o| o.dropped).sum::<usize>());
        Ok(())
    }

    /// Rewrites an application destination with the first matching `app_mappings` entry.
    fn map_app(&self, dest: &str) -> Result<(Route, ByteString), StompError> {
        for m in &self.config.app_mappings {
            if let Some(rest) = dest.strip_prefix(m.from.as_str()) {
                let target = format!("{}{rest}", m.to);
                return match self.resolve_send(&target)? {
                    SendTarget::Route { route, shown_as } => Ok((route, shown_as)),
                    SendTarget::App => Err(StompError::new(
                        ErrorKind::InvalidDestination,
                        format!("{dest} maps to application destination {target}"),
                    )),
                };
            }
        }
        Err(StompError::new(
            ErrorKind::InvalidDestination,
            format!("no handler for application destination {dest}"),
        ))
    }

    /// The destination a SEND to application destination `dest` is rewritten to, when no
    /// handler takes it and a mapping does (checked by authorization like the SEND itself).
    pub(crate) fn mapped_destination(&self, dest: &str) -> Option<ByteString> {
        if self.find_handler(dest).is_some() {
            return None;
        }
        self.map_app(dest).ok().map(|(route, _)| route.key)
    }

    fn find_handler(&self, dest: &str) -> Option<&(String, Arc<dyn AppHandler>)> {
        self.handlers
            .iter()
            .find(|(prefix, _)| has_prefix(dest, prefix) || dest == prefix)
    }

    /// Checks that a SEND to application destination `dest` can be routed (a handler or a
    /// mapping), for a SEND entering a transaction.
    pub(crate) fn check_app(&self, dest: &str) -> Result<(), StompError> {
        if self.find_handler(dest).is_some() {
            Ok(())
        } else {
            self.map_app(dest).map(|_| ())
        }
    }

    /// A SEND to an application destination: the longest matching handler, else the mappings.
    /// With `staged` (a transaction being committed), what it publishes is added there instead.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_app(
        &self,
        dest: &str,
        headers: &Headers,
        body: Bytes,
        session_id: &str,
        principal: Option<&Principal>,
        user: &str,
        staged: Option<&mut Vec<Publication>>,
    ) -> Result<(), StompError> {
        self.metrics.message_in(DestinationKind::App);
        match self.find_handler(dest) {
            Some((prefix, handler)) => {
                let message = AppMessage {
                    destination: dest,
                    path: &dest[prefix.len()..],
                    headers,
                    body: &body,
                    session_id,
                    principal,
                };
                let mut ctx = AppContext {
                    broker: self,
                    user,
                    staged,
                };
                handler.handle(&message, &mut ctx).map_err(|e| {
                    StompError::new(ErrorKind::Application, e.detail).with_message(e.message)
                })
            }
            None => {
                let (route, shown_as) = self.map_app(dest)?;
                match staged {
                    Some(staged) => {
                        self.stage_route(route, shown_as, headers, body, staged);
                        Ok(())
                    }
                    None => self
                        .publish_route(&route, shown_as, headers, body)
                        .map(|_| ()),
                }
            }
        }
    }
}

pub(crate) fn backend_error(e: BackendError) -> StompError {
    let kind = match e {
        BackendError::QueueFull { .. } => ErrorKind::QueueFull,
        _ => ErrorKind::Backend,
    };
    StompError::new(kind, e.to_string())
}
