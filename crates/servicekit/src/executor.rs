//! The one command executor of every service: load what the command names (streams, whose
//! versions it records, and facts from read models), decide with a pure function, append
//! every stream written at the version it was read, all in one atomic append; on a version
//! conflict, load everything again and decide again (bounded, then `unavailable`).
//!
//! A command's event ids derive from its idempotency key ([`CommandCtx::event_id`]): the
//! `n`-th event it writes on a stream is always the same id. A retried command whose first
//! event is already on its primary stream is answered as a replay, without deciding again.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use domain::{Aggregate, Decision, DomainError, DomainEvent};
use eventlog::{Error as LogError, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StreamAppend};

use crate::{CommandCtx, ServiceError, ServiceResult, clock};

/// How many times a command is decided again after losing a race: an object can change
/// under many concurrent callers, and each lost race is decided on the new state (often
/// ending as a conflict or an illegal transition, which is the answer).
pub const ATTEMPTS: usize = 32;

/// What a loader reads through: streams (recorded with their versions, read once per
/// attempt) and the store for facts and read models (not versioned).
pub struct Loader {
    store: EventStore,
    read: BTreeMap<String, Vec<RecordedEvent>>,
    now: DateTime<Utc>,
}

impl Loader {
    fn new(store: EventStore) -> Self {
        Loader { store, read: BTreeMap::new(), now: clock::now() }
    }

    /// A loader outside any command, for reads (queries, answers after a command).
    pub fn detached(store: EventStore) -> Self {
        Loader::new(store)
    }

    /// The store, for facts and read models.
    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// The time this attempt decides at (from the one clock).
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// A stream's stored events (read once per attempt; its version is recorded).
    pub async fn read(&mut self, stream: &str) -> ServiceResult<&[RecordedEvent]> {
        if !self.read.contains_key(stream) {
            let events = self.store.read_whole_stream(stream).await?;
            self.read.insert(stream.to_owned(), events);
        }
        Ok(self.read.get(stream).map(Vec::as_slice).unwrap_or_default())
    }

    /// Reads the streams not read yet, all in one statement (recording their versions as
    /// [`Loader::read`] does): for a decision that needs several short streams.
    pub async fn read_all_of(&mut self, streams: &[String]) -> ServiceResult<()> {
        let missing: Vec<&str> = streams.iter().map(String::as_str).filter(|s| !self.read.contains_key(*s)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut found = self.store.read_streams(&missing).await?;
        for stream in missing {
            let events = found.remove(stream).unwrap_or_default();
            self.read.insert(stream.to_owned(), events);
        }
        Ok(())
    }

    /// Reads `stream` again at its next use: for a decision that must see it as it is after
    /// another stream it was read before (stream reads are not one snapshot).
    pub fn read_again(&mut self, stream: &str) {
        self.read.remove(stream);
    }

    /// A stream's events decoded, each with its version (unknown types skipped).
    pub async fn events<E: DomainEvent>(&mut self, stream: &str) -> ServiceResult<Vec<(E, u64)>> {
        let mut out = Vec::new();
        for e in self.read(stream).await? {
            match E::from_stored(&e.event_type, e.payload.get()) {
                Ok(Some(ev)) => out.push((ev, e.version)),
                Ok(None) => {}
                Err(err) => return Err(ServiceError::Internal(format!("{stream} v{}: {err}", e.version))),
            }
        }
        Ok(out)
    }

    /// An aggregate folded from its stream (`None`: no stream).
    pub async fn fold<A: Aggregate>(&mut self, stream: &str) -> ServiceResult<Option<A>> {
        let events = self.events::<A::Event>(stream).await?;
        Ok(events.iter().fold(None, |s, (e, _)| A::apply(s, e)))
    }

    /// The version a stream was read at (0: empty, or not read).
    pub fn version(&self, stream: &str) -> u64 {
        self.read.get(stream).and_then(|e| e.last()).map_or(0, |e| e.version)
    }

    /// Whether a stream read by this loader holds the event `id`.
    pub(crate) fn holds(&self, stream: &str, id: uuid::Uuid) -> bool {
        self.read.get(stream).is_some_and(|events| events.iter().any(|e| e.id == id))
    }
}

/// What running a command did.
#[derive(Debug)]
pub struct Executed<In, E> {
    /// The command had landed before (a retry with the same key): nothing was decided.
    pub replayed: bool,
    /// What the last attempt loaded (`None` on a replay).
    pub input: Option<In>,
    /// The events appended (empty on a replay or a no-op).
    pub decision: Decision<E>,
    /// Every stream's version after the command (as read, or as appended).
    pub versions: BTreeMap<String, u64>,
}

impl<In, E> Executed<In, E> {
    /// A stream's version after the command (0: none).
    pub fn version(&self, stream: &str) -> u64 {
        self.versions.get(stream).copied().unwrap_or(0)
    }
}

/// Runs a command. `primary` is the stream of the object the command targets: a retry is
/// recognised there, and the caller's If-Match is checked against its version (when it
/// exists). `load`
/// reads everything the decision needs through the [`Loader`] it is given and returns it
/// with the input; `decide` is pure.
pub async fn run<E, In, L, Fut, D>(
    store: &EventStore,
    ctx: &CommandCtx,
    primary: &str,
    load: L,
    decide: D,
) -> ServiceResult<Executed<In, E>>
where
    E: DomainEvent,
    L: Fn(Loader) -> Fut,
    Fut: Future<Output = ServiceResult<(Loader, In)>>,
    D: Fn(&In) -> Result<Decision<E>, DomainError>,
{
    let first = ctx.event_id(primary, 0);
    for _ in 0..ATTEMPTS {
        let mut loader = Loader::new(store.clone());
        loader.read(primary).await?;
        if loader.holds(primary, first) {
            let versions = BTreeMap::from([(primary.to_owned(), loader.version(primary))]);
            return Ok(Executed { replayed: true, input: None, decision: Decision::nothing(), versions });
        }
        let (loader, input) = load(loader).await?;
        // If-Match names a version of an object that exists; of one that does not, the
        // decider answers `not-found`.
        match loader.version(primary) {
            0 => {}
            v => ctx.check_version(v)?,
        }
        let decision = decide(&input)?;
        let mut versions: BTreeMap<String, u64> = loader.read.keys().map(|s| (s.clone(), loader.version(s))).collect();
        if decision.is_empty() {
            return Ok(Executed { replayed: false, input: Some(input), decision, versions });
        }
        let appends = appends(ctx, &loader, &decision)?;
        match store.append(appends).await {
            Ok(r) => {
                for stream in decision.streams() {
                    if let Some(v) = r.stream_version(stream) {
                        versions.insert(stream.to_owned(), v);
                    }
                }
                return Ok(Executed { replayed: false, input: Some(input), decision, versions });
            }
            // A lost race, or a twin of this command (same key) that committed first:
            // deciding again on fresh state finds out which.
            Err(LogError::WrongExpectedVersion { .. }) | Err(LogError::IdempotencyClash { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ServiceError::Unavailable(format!("{primary} is changing too fast; try again")))
}

/// One append per stream written, at the version it was read (a stream not read must be
/// new), with ids derived from the command's key and its time from the clock.
fn appends<E: DomainEvent>(ctx: &CommandCtx, loader: &Loader, d: &Decision<E>) -> ServiceResult<Vec<StreamAppend>> {
    let metadata = ctx.metadata(d.tenant);
    let mut out = Vec::new();
    for stream in d.streams() {
        let new = d
            .of(stream)
            .enumerate()
            .map(|(i, e)| {
                NewEvent::with_id(ctx.event_id(stream, i as u32), e.event_type(), &e.to_json())
                    .map(|n| n.metadata(metadata.clone()).occurred_at(loader.now))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let expected = match loader.version(stream) {
            0 => ExpectedVersion::NoStream,
            v => ExpectedVersion::Exact(v),
        };
        out.push(StreamAppend::new(stream, expected, new));
    }
    Ok(out)
}
