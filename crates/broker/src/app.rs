//! Application destinations: Rust handlers for SENDs to `/app...` (like Spring's `@MessageMapping`).

use std::fmt;

use bytes::Bytes;
use switchboard_stomp::Headers;

use crate::auth::Principal;
use crate::backend::{Publication, PublishOutcome};
use crate::broker::BrokerInner;

/// A SEND to an application destination, as a handler sees it.
#[derive(Debug)]
pub struct AppMessage<'a> {
    /// The full destination, e.g. `/app/chat`.
    pub destination: &'a str,
    /// The part after the handler's registered prefix, e.g. `` or `/room1`.
    pub path: &'a str,
    /// Every header of the SEND.
    pub headers: &'a Headers,
    /// The body.
    pub body: &'a Bytes,
    /// The sender's session id.
    pub session_id: &'a str,
    /// The sender's principal, if authenticated.
    pub principal: Option<&'a Principal>,
}

/// What a handler can do: publish anywhere, or reply to the sender.
pub struct AppContext<'a> {
    pub(crate) broker: &'a BrokerInner,
    pub(crate) user: &'a str,
    /// Set while a transaction commits: publishes are collected here and applied with the rest
    /// of the transaction, all-or-nothing.
    pub(crate) staged: Option<&'a mut Vec<Publication>>,
}

impl fmt::Debug for AppContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppContext")
            .field("user", &self.user)
            .field("in_transaction", &self.staged.is_some())
            .finish()
    }
}

/// A handler's refusal: the sender gets ERROR with `message` and `detail` as body, then is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppError {
    /// ERROR `message` header.
    pub message: String,
    /// ERROR body.
    pub detail: String,
}

impl AppError {
    /// An error with a short message and a longer detail.
    pub fn new(message: impl Into<String>, detail: impl Into<String>) -> AppError {
        AppError {
            message: message.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.message, self.detail)
    }
}

impl std::error::Error for AppError {}

impl AppContext<'_> {
    /// Publishes to `destination` (a topic, queue or `/user/{name}/...` destination; not an
    /// application destination). `headers` are passed on like a SEND's.
    ///
    /// When the SEND that reached the handler was part of a transaction, the handler runs at
    /// COMMIT and what it publishes joins the transaction: it is applied together with the
    /// transaction's other SENDs, or not at all. The outcome is then the default one (nothing
    /// delivered yet) — see [`in_transaction`](Self::in_transaction).
    pub fn publish(
        &mut self,
        destination: &str,
        headers: &Headers,
        body: Bytes,
    ) -> Result<PublishOutcome, AppError> {
        let result = match self.staged.as_deref_mut() {
            Some(staged) => self
                .broker
                .stage_routed(destination, headers, body, false, staged)
                .map(|()| PublishOutcome::default()),
            None => self
                .broker
                .publish_routed(destination, headers, body, false),
        };
        result.map_err(|e| AppError::new(e.message, e.detail))
    }

    /// Whether the handler runs as part of a transaction's COMMIT (its publishes are applied
    /// with the transaction, all-or-nothing, after it returns).
    pub fn in_transaction(&self) -> bool {
        self.staged.is_some()
    }

    /// Sends to the sender's user destination: `destination` `/queue/x` (or `/user/queue/x`)
    /// reaches every session of the sender's principal subscribed to `/user/queue/x`. An
    /// anonymous sender's principal name is its session id, so the reply reaches only it.
    pub fn reply(
        &mut self,
        destination: &str,
        headers: &Headers,
        body: Bytes,
    ) -> Result<PublishOutcome, AppError> {
        let user_prefix = &self.broker.config.prefixes.user;
        let tail = destination
            .strip_prefix(user_prefix.as_str())
            .or_else(|| destination.strip_prefix('/'))
            .unwrap_or(destination);
        let full = format!("{user_prefix}{}/{tail}", self.user);
        self.publish(&full, headers, body)
    }

    /// The name user destinations use for the sender (principal name, or session id if anonymous).
    pub fn user(&self) -> &str {
        self.user
    }
}

/// Handles SENDs to an application destination. Runs on the sender's session task, inside
/// `Session::handle_frame`: keep it quick (hand long work to your own task and publish later via
/// [`Broker::publish`](crate::Broker::publish)).
pub trait AppHandler: Send + Sync + 'static {
    /// Handles one message.
    fn handle(&self, message: &AppMessage<'_>, ctx: &mut AppContext<'_>) -> Result<(), AppError>;
}

pub(crate) struct FnHandler<F>(pub(crate) F);

impl<F> AppHandler for FnHandler<F>
where
    F: Fn(&AppMessage<'_>, &mut AppContext<'_>) -> Result<(), AppError> + Send + Sync + 'static,
{
    fn handle(&self, message: &AppMessage<'_>, ctx: &mut AppContext<'_>) -> Result<(), AppError> {
        (self.0)(message, ctx)
    }
}
