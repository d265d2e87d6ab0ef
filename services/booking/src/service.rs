//! The booking service's core: loading rides and facts, and writing a ride's events
//! together with the schedule streams it holds or releases in one atomic multi-stream
//! append, decided again from fresh state whenever another booking wins a race.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::DomainEvent;
use domain::events::{BookingEvent, SlotHeld};
use eventlog::{AppendResult, Error as LogError, EventStore, ExpectedVersion, NewEvent, StreamAppend};
use keystore::KeyStore;
use servicekit::aggregate::{self, Loaded};
use servicekit::{CommandCtx, ErrorCode, ServiceError, ServiceResult};
use uuid::Uuid;

use crate::facts::{self, BikeFact, CareHomeFact, ChapterFact, PilotFact, ResidentFact, kind};
use crate::rides::Ride;
use crate::rules::Facts;
use crate::schedule::DaySchedule;

/// The service's state: its store and key store.
#[derive(Clone)]
pub struct Booking {
    pub(crate) store: EventStore,
    pub(crate) keys: KeyStore,
}

/// The stream of a ride.
pub fn ride_stream(ride_id: Uuid) -> String {
    format!("ride-{ride_id}")
}

/// The key subject of a ride's free text (story, notes, addresses).
pub fn ride_subject(ride_id: Uuid) -> String {
    format!("ride:{ride_id}")
}

/// How many times a write is decided again after losing a race on a schedule stream.
const ATTEMPTS: usize = 16;

/// One attempt's write: events per stream (ride and request streams with their expected
/// versions), intervals to hold and rides to release on schedule streams.
#[derive(Debug, Default)]
pub struct Plan {
    /// Aggregate streams: (stream, expected version, events).
    pub streams: Vec<(String, ExpectedVersion, Vec<BookingEvent>)>,
    /// Intervals to hold: (schedule stream, ride, start, end).
    pub hold: Vec<(String, Uuid, DateTime<Utc>, DateTime<Utc>)>,
    /// Releases: (schedule stream, ride).
    pub release: Vec<(String, Uuid)>,
    /// The chapter the events belong to.
    pub tenant: Option<Uuid>,
}

/// What an attempt concluded.
pub enum Attempt<T> {
    /// Write this plan, then answer `T`.
    Write(Plan, T),
    /// Nothing to write (a retry of a command that already landed, or a no-op).
    Done(T),
}

fn conflict_code(stream: &str) -> (ErrorCode, &'static str) {
    if stream.starts_with("bikeday-") {
        (ErrorCode::BikeTaken, "the trishaw is taken in that slot (turnaround included)")
    } else if stream.starts_with("pilotday-") {
        (ErrorCode::PilotBusy, "the pilot rides elsewhere in that slot")
    } else {
        (ErrorCode::ResidentBusy, "a rider is on another ride in that slot")
    }
}

impl Booking {
    /// The service over a store and a key store.
    pub fn new(store: EventStore, keys: KeyStore) -> Self {
        Booking { store, keys }
    }

    /// A ride from its stream (the write model: reflects every acknowledged write).
    pub async fn load_ride(&self, ride_id: Uuid) -> ServiceResult<Loaded<Ride>> {
        let (loaded, _) = aggregate::load::<Ride>(&self.store, &ride_stream(ride_id)).await?;
        if loaded.state.is_none() {
            return Err(ServiceError::NotFound("ride".into()));
        }
        Ok(loaded)
    }

    /// Whether a command's first event is already in a stream (a retry).
    pub async fn already_done(&self, ctx: &CommandCtx, stream: &str) -> ServiceResult<bool> {
        let first = ctx.event_id(stream, 0);
        Ok(self.store.read_whole_stream(stream).await?.iter().any(|e| e.id == first))
    }

    async fn fact<T: serde::de::DeserializeOwned>(&self, k: &'static str, id: Uuid, what: &str) -> ServiceResult<T> {
        facts::get(&self.store, k, id).await?.ok_or_else(|| ServiceError::NotFound(what.into()))
    }

    /// The facts a booking of `bike` by `pilot` is decided on.
    pub async fn facts(&self, bike_id: Uuid, pilot_id: Uuid) -> ServiceResult<Facts> {
        let bike: BikeFact = self.fact(kind::BIKE, bike_id, "trishaw").await?;
        let home: CareHomeFact = self.fact(kind::CAREHOME, bike.carehome_id, "care home").await?;
        let chapter: ChapterFact = self.fact(kind::CHAPTER, home.chapter_id, "chapter").await?;
        let pilot: PilotFact = self.fact(kind::PILOT, pilot_id, "pilot").await?;
        Ok(Facts { chapter, home, bike, pilot })
    }

    /// Residents' facts (absent ones as `None`).
    pub async fn residents(&self, ids: &[Uuid]) -> ServiceResult<Vec<(Uuid, Option<ResidentFact>)>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push((*id, facts::get(&self.store, kind::RESIDENT, *id).await?));
        }
        Ok(out)
    }

    /// Runs `attempt` until its plan commits: each attempt decides on fresh state; a lost
    /// race on a schedule or aggregate stream makes it decide again.
    pub async fn write<T, F, Fut>(&self, ctx: &CommandCtx, attempt: F) -> ServiceResult<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = ServiceResult<Attempt<T>>>,
    {
        for _ in 0..ATTEMPTS {
            let (plan, answer) = match attempt().await? {
                Attempt::Done(t) => return Ok(t),
                Attempt::Write(plan, t) => (plan, t),
            };
            match self.commit(ctx, plan).await {
                Ok(_) => return Ok(answer),
                Err(Retry::Again) => continue,
                Err(Retry::Fail(e)) => return Err(e),
            }
        }
        Err(ServiceError::Unavailable("the schedule is changing too fast; try again".into()))
    }

    /// Checks the plan's holds against the schedule streams and appends everything in one
    /// multi-stream append with the versions read.
    async fn commit(&self, ctx: &CommandCtx, plan: Plan) -> Result<AppendResult, Retry> {
        let mut schedule_streams: BTreeMap<String, Vec<BookingEvent>> = BTreeMap::new();
        let releasing: Vec<Uuid> = plan.release.iter().map(|(_, r)| *r).collect();
        let mut read: BTreeMap<String, DaySchedule> = BTreeMap::new();
        for (stream, _) in plan.release.iter() {
            read.entry(stream.clone()).or_default();
        }
        for (stream, ..) in plan.hold.iter() {
            read.entry(stream.clone()).or_default();
        }
        for (stream, schedule) in read.iter_mut() {
            let events = self.store.read_whole_stream(stream).await.map_err(|e| Retry::Fail(e.into()))?;
            let decoded: Vec<(BookingEvent, u64)> = events
                .iter()
                .filter_map(|e| {
                    BookingEvent::from_stored(&e.event_type, e.payload.get()).ok().flatten().map(|b| (b, e.version))
                })
                .collect();
            *schedule = DaySchedule::fold(decoded.iter().map(|(b, v)| (b, *v)));
        }
        for (stream, ride_id, start, end) in &plan.hold {
            let schedule = &read[stream];
            let mut except: Vec<Uuid> = releasing.clone();
            except.push(*ride_id);
            // The other holds of this very plan (the two legs of a round trip) count too.
            let ours = plan
                .hold
                .iter()
                .filter(|(s, r, ..)| s == stream && r != ride_id)
                .find(|(_, _, s2, e2)| s2 < end && start < e2)
                .map(|(_, r, ..)| *r);
            if let Some(other) = schedule.overlapping(*start, *end, &except).or(ours) {
                let (code, message) = conflict_code(stream);
                return Err(Retry::Fail(ServiceError::conflict(code, message, Some(other))));
            }
            schedule_streams
                .entry(stream.clone())
                .or_default()
                .push(SlotHeld { ride_id: *ride_id, start: *start, end: *end }.into());
        }
        for (stream, ride_id) in &plan.release {
            if read[stream].held.contains_key(ride_id) {
                schedule_streams
                    .entry(stream.clone())
                    .or_default()
                    .insert(0, domain::events::SlotReleased { ride_id: *ride_id }.into());
            }
        }
        let mut appends = Vec::new();
        for (stream, expected, events) in plan.streams {
            appends.push(self.stream_append(ctx, &stream, expected, &events, plan.tenant).map_err(Retry::Fail)?);
        }
        for (stream, events) in schedule_streams {
            let v = read[&stream].version;
            let expected = if v == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(v) };
            appends.push(self.stream_append(ctx, &stream, expected, &events, plan.tenant).map_err(Retry::Fail)?);
        }
        match self.store.append(appends).await {
            Ok(r) => Ok(r),
            // A lost race, or a twin of this very command (same key) that committed first:
            // deciding again finds out which.
            Err(LogError::WrongExpectedVersion { .. }) | Err(LogError::IdempotencyClash { .. }) => Err(Retry::Again),
            Err(e) => Err(Retry::Fail(e.into())),
        }
    }

    fn stream_append(
        &self,
        ctx: &CommandCtx,
        stream: &str,
        expected: ExpectedVersion,
        events: &[BookingEvent],
        tenant: Option<Uuid>,
    ) -> ServiceResult<StreamAppend> {
        let new = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                NewEvent::with_id(ctx.event_id(stream, i as u32), e.event_type(), &e.to_json())
                    .map(|n| n.metadata(ctx.metadata(tenant)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StreamAppend::new(stream, expected, new))
    }
}

/// Why a commit did not go through.
enum Retry {
    /// Another writer changed a stream: decide again.
    Again,
    /// Refused for good.
    Fail(ServiceError),
}

/// The expected version of an aggregate stream read at `version`.
pub fn expect(version: u64) -> ExpectedVersion {
    if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) }
}
