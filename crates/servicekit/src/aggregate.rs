//! Running a command against an event-sourced aggregate: load its stream, fold it, decide,
//! append with the stream's version as the expectation, and retry from the top when
//! another writer got there first. A retried command (same idempotency key) finds its
//! first event already in the stream and returns the state instead of deciding again.

use domain::DomainEvent;
use eventlog::{Error as LogError, EventStore, ExpectedVersion, NewEvent, StreamAppend};
use uuid::Uuid;

use crate::{CommandCtx, ServiceError, ServiceResult};

/// An aggregate folded from its own stream.
pub trait Aggregate: Sized + Clone + Send + Sync {
    /// Its events.
    type Event: DomainEvent + Send + Sync;

    /// The state after `event` (`None` before the first event).
    fn apply(state: Option<Self>, event: &Self::Event) -> Option<Self>;

    /// The tenant (chapter) its events belong to.
    fn tenant(&self) -> Option<Uuid>;
}

/// A folded aggregate and its stream's version.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    /// The state (`None`: no stream).
    pub state: Option<A>,
    /// The stream's version.
    pub version: u64,
}

/// Reads and folds a stream.
pub async fn load<A: Aggregate>(store: &EventStore, stream: &str) -> ServiceResult<(Loaded<A>, Vec<Uuid>)> {
    let events = store.read_whole_stream(stream).await?;
    let mut state = None;
    let mut ids = Vec::with_capacity(events.len());
    for e in &events {
        ids.push(e.id);
        match A::Event::from_stored(&e.event_type, e.payload.get()) {
            Ok(Some(ev)) => state = A::apply(state, &ev),
            Ok(None) => {}
            Err(err) => return Err(ServiceError::Internal(format!("{stream} v{}: {err}", e.version))),
        }
    }
    Ok((Loaded { state, version: events.last().map_or(0, |e| e.version) }, ids))
}

/// How many times a command is decided again after losing a race: an object can change
/// under many concurrent callers, and each lost race is decided again against the new
/// state (often ending as an illegal transition).
const ATTEMPTS: usize = 32;

/// Runs a command: `decide` sees the current state and returns the events to append
/// (none: nothing to do). Returns the state after the command. The events' tenant is the
/// aggregate's own.
pub async fn execute<A, F>(store: &EventStore, ctx: &CommandCtx, stream: &str, decide: F) -> ServiceResult<Loaded<A>>
where
    A: Aggregate,
    F: Fn(Option<&A>) -> ServiceResult<Vec<A::Event>>,
{
    execute_in(store, ctx, stream, None, decide).await
}

/// Like [`execute`], for aggregates whose events do not name their chapter: `tenant` is
/// the chapter the caller looked up.
pub async fn execute_in<A, F>(
    store: &EventStore,
    ctx: &CommandCtx,
    stream: &str,
    tenant: Option<Uuid>,
    decide: F,
) -> ServiceResult<Loaded<A>>
where
    A: Aggregate,
    F: Fn(Option<&A>) -> ServiceResult<Vec<A::Event>>,
{
    let first_id = ctx.event_id(stream, 0);
    for _ in 0..ATTEMPTS {
        let (loaded, ids) = load::<A>(store, stream).await?;
        if ids.contains(&first_id) {
            return Ok(loaded);
        }
        ctx.check_version(loaded.version)?;
        let events = decide(loaded.state.as_ref())?;
        if events.is_empty() {
            return Ok(loaded);
        }
        let state = events.iter().fold(loaded.state.clone(), A::apply);
        let tenant = tenant.or_else(|| state.as_ref().and_then(A::tenant));
        let new: Vec<NewEvent> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                NewEvent::with_id(ctx.event_id(stream, i as u32), e.event_type(), &e.to_json())
                    .map(|n| n.metadata(ctx.metadata(tenant)))
            })
            .collect::<Result<_, _>>()?;
        let expected =
            if loaded.version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(loaded.version) };
        match store.append_to(StreamAppend::new(stream, expected, new)).await {
            Ok(r) => return Ok(Loaded { state, version: r.stream_version(stream).unwrap_or(loaded.version) }),
            // A lost race, or a twin of this command (same key) that committed first:
            // deciding again finds out which.
            Err(LogError::WrongExpectedVersion { .. }) | Err(LogError::IdempotencyClash { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ServiceError::Unavailable(format!("{stream} is changing too fast; try again")))
}
