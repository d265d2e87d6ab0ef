//! What deciders work with: an aggregate folded from its events ([`Aggregate`]), and what
//! a decider concludes ([`Decision`]): the events to append, per stream, in order. A
//! decider is a plain function `decide(input, command) -> Result<Decision, DomainError>`:
//! no I/O, no clock, no keys; servicekit's executor loads its input and appends its output.

use uuid::Uuid;

use crate::events::DomainEvent;

/// An aggregate folded from its own stream.
pub trait Aggregate: Sized + Clone + Send + Sync {
    /// Its events.
    type Event: DomainEvent + Send + Sync;

    /// The state after `event` (`None` before the first event).
    fn apply(state: Option<Self>, event: &Self::Event) -> Option<Self>;

    /// The tenant (chapter) its events belong to.
    fn tenant(&self) -> Option<Uuid>;

    /// Folds events from nothing.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Option<Self>
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(None, Self::apply)
    }
}

/// The events a command writes, per stream in the order the decider named them, and the
/// chapter they belong to. Every stream is appended at the version the command read it
/// (a stream it did not read must be new).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<E> {
    /// (stream, event), in order; a stream's events keep their relative order.
    pub events: Vec<(String, E)>,
    /// The chapter (tenant) of the events.
    pub tenant: Option<Uuid>,
}

impl<E> Default for Decision<E> {
    fn default() -> Self {
        Decision { events: Vec::new(), tenant: None }
    }
}

impl<E> Decision<E> {
    /// Nothing to write (a no-op, or a retry of a command that already landed).
    pub fn nothing() -> Self {
        Decision::default()
    }

    /// An empty decision for events of `tenant`.
    pub fn in_tenant(tenant: Option<Uuid>) -> Self {
        Decision { events: Vec::new(), tenant }
    }

    /// `events` on one stream.
    pub fn on(stream: impl Into<String>, events: Vec<E>, tenant: Option<Uuid>) -> Self {
        let stream = stream.into();
        Decision { events: events.into_iter().map(|e| (stream.clone(), e)).collect(), tenant }
    }

    /// Adds an event on `stream`.
    pub fn push(&mut self, stream: impl Into<String>, event: impl Into<E>) {
        self.events.push((stream.into(), event.into()));
    }

    /// Adds another decision's events after this one's.
    pub fn extend(&mut self, other: Decision<E>) {
        self.events.extend(other.events);
        self.tenant = self.tenant.or(other.tenant);
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events of one stream, in order.
    pub fn of<'a>(&'a self, stream: &'a str) -> impl Iterator<Item = &'a E> + 'a {
        self.events.iter().filter(move |(s, _)| s == stream).map(|(_, e)| e)
    }

    /// The streams written, each once, in first-appearance order.
    pub fn streams(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (s, _) in &self.events {
            if !out.contains(&s.as_str()) {
                out.push(s);
            }
        }
        out
    }
}

/// What no decider's source may name: I/O, keys, the clock, the transport.
pub const IMPURE: &[&str] = &[
    "async ",
    ".await",
    "EventStore",
    "KeyStore",
    "keystore",
    "eventlog",
    "clock::",
    "Utc::now",
    "tokio",
    "servicekit",
    "tonic",
];

/// The words of [`IMPURE`] that a decider's source names (each service's purity test).
pub fn impure_words(source: &str) -> Vec<&'static str> {
    IMPURE.iter().copied().filter(|w| source.contains(w)).collect()
}
