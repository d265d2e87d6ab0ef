//! Commands on one aggregate's stream, through the executor ([`crate::executor`]): load and
//! fold the stream, decide on the state with a pure function, append at the version read.

use domain::{Decision, DomainError};
use eventlog::EventStore;
use uuid::Uuid;

use crate::executor::{self, Loader};
use crate::{CommandCtx, ServiceError, ServiceResult};

pub use domain::Aggregate;

/// A folded aggregate and its stream's version.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    /// The state (`None`: no stream).
    pub state: Option<A>,
    /// The stream's version.
    pub version: u64,
}

/// Reads and folds a stream.
pub async fn load<A: Aggregate>(store: &EventStore, stream: &str) -> ServiceResult<Loaded<A>> {
    let mut loader = executor::Loader::detached(store.clone());
    let state = loader.fold::<A>(stream).await?;
    Ok(Loaded { state, version: loader.version(stream) })
}

/// Runs a command on one aggregate: `decide` sees the current state and returns the events
/// to append (none: nothing to do). Returns the state after the command. The events'
/// tenant is the aggregate's own.
pub async fn execute<A, F>(store: &EventStore, ctx: &CommandCtx, stream: &str, decide: F) -> ServiceResult<Loaded<A>>
where
    A: Aggregate,
    F: Fn(Option<&A>) -> Result<Vec<A::Event>, DomainError>,
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
    F: Fn(Option<&A>) -> Result<Vec<A::Event>, DomainError>,
{
    let fold = |mut l: Loader| async move {
        let state = l.fold::<A>(stream).await?;
        Ok((l, state))
    };
    let done = executor::run(store, ctx, stream, fold, |state: &Option<A>| {
        let events = decide(state.as_ref())?;
        let after = events.iter().fold(state.clone(), |s, e| A::apply(s, e));
        let tenant = tenant.or_else(|| after.as_ref().and_then(A::tenant));
        Ok(Decision::on(stream, events, tenant))
    })
    .await?;
    let version = done.version(stream);
    match done.input {
        None => load::<A>(store, stream).await,
        Some(state) => {
            let state = done.decision.of(stream).fold(state, |s, e| A::apply(s, e));
            Ok(Loaded { state, version })
        }
    }
}

/// Loads an aggregate that must exist.
pub async fn load_existing<A: Aggregate>(store: &EventStore, stream: &str, what: &str) -> ServiceResult<(A, u64)> {
    let loaded = load::<A>(store, stream).await?;
    loaded.state.map(|s| (s, loaded.version)).ok_or_else(|| ServiceError::NotFound(what.into()))
}

/// Whether a command's first event is already on `stream`: the command is a retry (for
/// handlers that must not repeat a side effect, such as sealing or erasing a key, before
/// the executor would recognise it).
pub async fn landed(store: &EventStore, ctx: &CommandCtx, stream: &str) -> ServiceResult<bool> {
    let mut loader = Loader::detached(store.clone());
    loader.read(stream).await?;
    Ok(loader.holds(stream, ctx.event_id(stream, 0)))
}
