//! Running commands on trishaws and residents, whose events do not name their chapter:
//! the same loop as `servicekit::aggregate::execute` (load, decide, append at the stream's
//! version, retry after a lost race, find a retried command's outcome), but the tenant of
//! the new events is the chapter the caller looked up from the care home.

use domain::DomainEvent;
use eventlog::{Error as LogError, EventStore, ExpectedVersion, NewEvent, StreamAppend};
use servicekit::aggregate::load;
use servicekit::{Aggregate, CommandCtx, Loaded, ServiceError, ServiceResult};
use uuid::Uuid;

/// How many times a command is decided again after losing a race. Higher than
/// servicekit's: a trishaw's status can flip under many concurrent callers, and each lost
/// race is decided again against the new state (usually ending as an illegal transition).
const ATTEMPTS: usize = 32;

/// Runs a command on `stream`, writing its events with `chapter` as their tenant.
pub async fn execute_in_chapter<A, F>(
    store: &EventStore,
    ctx: &CommandCtx,
    stream: &str,
    chapter: Uuid,
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
        let new: Vec<NewEvent> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                NewEvent::with_id(ctx.event_id(stream, i as u32), e.event_type(), &e.to_json())
                    .map(|n| n.metadata(ctx.metadata(Some(chapter))))
            })
            .collect::<Result<_, _>>()?;
        let expected =
            if loaded.version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(loaded.version) };
        match store.append_to(StreamAppend::new(stream, expected, new)).await {
            Ok(r) => return Ok(Loaded { state, version: r.stream_version(stream).unwrap_or(loaded.version) }),
            Err(LogError::WrongExpectedVersion { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ServiceError::Unavailable(format!("{stream} is changing too fast; try again")))
}
