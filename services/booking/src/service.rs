//! The booking service's commands as I/O around their deciders ([`crate::commands`]): what
//! each command loads (the ride or request stream, the schedule streams of the slots it
//! holds or releases, the facts it names), run through the one executor
//! (`servicekit::executor`), and the answers read back from the streams.

use std::collections::BTreeMap;

use domain::events::BookingEvent;
use domain::{Aggregate, Decision, DomainError};
use eventlog::EventStore;
use keystore::KeyStore;
use servicekit::aggregate;
use servicekit::executor::{self, Loader};
use servicekit::{CommandCtx, ServiceResult};
use uuid::Uuid;

use crate::commands::booking::{self as book_cmd, BookInput, BookRide, Claim, ClaimInput};
use crate::commands::record::{self as record_cmd, RecordInput, RecordRide};
use crate::commands::requests::{self as request_cmd, NewRequest, RequestInput};
use crate::commands::rides::{self as rides_cmd, RideInput};
use crate::commands::schedule::{Schedules, streams_of};
use crate::facts::{self, BikeFact, CareHomeFact, ChapterFact, PilotFact, ResidentFact, kind};
use crate::requests::{RideRequest, request_stream};
use crate::rides::Ride;
use crate::rules::FactParts;
use crate::schedule::DaySchedule;

pub use crate::rides::{ride_stream, ride_subject};

/// The service's state: its store and key store.
#[derive(Clone)]
pub struct Booking {
    pub(crate) store: EventStore,
    pub(crate) keys: KeyStore,
}

/// The rides a booking created (the return leg of a round trip second).
#[derive(Debug, Clone)]
pub struct Booked {
    /// The ride.
    pub ride: (Ride, u64),
    /// The return leg.
    pub return_ride: Option<(Ride, u64)>,
}

/// What a command on an existing ride reads beyond the ride's own stream.
#[derive(Debug, Clone, Default)]
pub struct Reads {
    /// Schedule streams (of the slots it holds or releases).
    pub streams: Vec<String>,
    /// The booking facts of the ride's trishaw and pilot.
    pub facts: bool,
    /// Residents' facts.
    pub riders: Vec<Uuid>,
    /// The residents named in the request the ride fulfils, if its pilot claimed it.
    pub named: bool,
    /// What a promotion from the waitlist decides on: the waiting residents' facts and
    /// schedule streams, the booking facts, and the other rides they wait for that
    /// overlap this one (with those rides' places on the streams).
    pub waitlist: bool,
}

/// The schedule streams, folded.
pub(crate) async fn schedules(l: &mut Loader, streams: &[String]) -> ServiceResult<Schedules> {
    l.read_all_of(streams).await?;
    let mut out = BTreeMap::new();
    for stream in streams {
        let events = l.events::<BookingEvent>(stream).await?;
        out.insert(stream.clone(), DaySchedule::fold(events.iter().map(|(e, v)| (e, *v))));
    }
    Ok(Schedules(out))
}

/// Reads and folds a schedule stream unless it was read already.
async fn read_schedule(l: &mut Loader, schedules: &mut Schedules, stream: &str) -> ServiceResult<()> {
    if let std::collections::btree_map::Entry::Vacant(slot) = schedules.0.entry(stream.to_owned()) {
        let events = l.events::<BookingEvent>(stream).await?;
        slot.insert(DaySchedule::fold(events.iter().map(|(e, v)| (e, *v))));
    }
    Ok(())
}

/// What a promotion from `ride`'s waitlist reads: the booking facts, each waiting
/// resident's facts and schedule streams at the ride's slot, and the other rides they
/// wait for that overlap it, with those rides' places on the residents' streams.
async fn waitlist_input(l: &mut Loader, ride: &Ride, input: &mut RideInput) -> ServiceResult<()> {
    if input.facts.bike.is_none() {
        input.facts = fact_parts(l.store(), ride.bike_id, ride.pilot_id).await?;
    }
    let known: Vec<Uuid> = input.riders.iter().map(|(id, _)| *id).collect();
    let missing: Vec<Uuid> = ride.waitlist.iter().copied().filter(|w| !known.contains(w)).collect();
    input.riders.extend(residents(l.store(), &missing).await?);
    let mut streams: Vec<String> = Vec::new();
    for w in &ride.waitlist {
        streams.extend(rides_cmd::rider_holds(ride, *w).into_iter().map(|h| h.stream));
    }
    let mut others: Vec<Uuid> = Vec::new();
    for stream in &streams {
        read_schedule(l, &mut input.schedules, stream).await?;
        let schedule = &input.schedules.0[stream];
        for (other, (s, e)) in &schedule.waiting {
            if *other != ride.ride_id && *s < ride.end() && ride.start < *e && !others.contains(other) {
                others.push(*other);
            }
        }
    }
    for other in others {
        let Some(o) = l.fold::<Ride>(&ride_stream(other)).await? else { continue };
        for w in ride.waitlist.iter().filter(|w| o.waitlist.contains(w)) {
            for h in rides_cmd::rider_holds(&o, *w) {
                read_schedule(l, &mut input.schedules, &h.stream).await?;
            }
        }
        input.others.push(o);
    }
    Ok(())
}

/// The facts of a booking of `bike` by `pilot`, each as found (one statement).
pub(crate) async fn fact_parts(store: &EventStore, bike_id: Uuid, pilot_id: Uuid) -> ServiceResult<FactParts> {
    Ok(facts::booking_facts(store, bike_id, pilot_id).await?)
}

/// Residents' facts (absent ones as `None`).
pub(crate) async fn residents(store: &EventStore, ids: &[Uuid]) -> ServiceResult<Vec<(Uuid, Option<ResidentFact>)>> {
    Ok(facts::residents(store, ids).await?)
}

/// Whether a booking is a pilot seating residents itself where the care home does not
/// let pilots choose (the only case that needs the pilot's claimed requests).
fn pilot_seats(cmd: &BookRide, home: &CareHomeFact) -> bool {
    cmd.actor_role == "pilot"
        && cmd.ride_request_id.is_none()
        && !cmd.resident_ids.is_empty()
        && !home.pilots_choose_riders
}

/// The residents named in requests `pilot` claimed at `home` whose window has not passed
/// (from the read model: a claim and its ride are one append, so a request claimed a
/// moment ago has its riders on that ride already).
pub(crate) async fn claimed_residents(
    store: &EventStore,
    home: Uuid,
    pilot: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> ServiceResult<Vec<Uuid>> {
    let docs = store
        .fetch_texts(
            "SELECT doc FROM booking_ride_requests WHERE carehome_id = $1 AND status = 'claimed' AND window_to >= $2",
            &[home.into(), eventlog::Arg::Int(now.timestamp_micros())],
        )
        .await?;
    let mut out = Vec::new();
    for doc in docs {
        let d: crate::readmodel::RequestDoc = serde_json::from_str(&doc).map_err(eventlog::Error::Payload)?;
        if d.request.pilot_id == Some(pilot) {
            out.extend(d.request.resident_ids);
        }
    }
    Ok(out)
}

/// The input of a booking: facts, riders, and the schedules of the slots its rides would
/// hold (read only when the rules let it get that far: the decider refuses before).
pub(crate) async fn book_input(l: &mut Loader, cmd: &BookRide) -> ServiceResult<BookInput> {
    let facts = fact_parts(l.store(), cmd.bike_id, cmd.pilot_id).await?;
    let riders = residents(l.store(), &cmd.resident_ids).await?;
    let named = match &facts.home {
        Some(h) if pilot_seats(cmd, h) => claimed_residents(l.store(), h.carehome_id, cmd.pilot_id, l.now()).await?,
        _ => Vec::new(),
    };
    let mut input = BookInput { facts, riders, schedules: Schedules::default(), named, now: l.now() };
    if let Ok(f) = input.facts.facts()
        && let Ok(legs) = book_cmd::legs(&f, &input.riders, cmd, input.now)
    {
        input.schedules = schedules(l, &streams_of(&book_cmd::holds(&legs), &[])).await?;
    }
    Ok(input)
}

impl Booking {
    /// The service over a store and a key store.
    pub fn new(store: EventStore, keys: KeyStore) -> Self {
        Booking { store, keys }
    }

    /// A ride that exists, with its version, from its stream (the write model: reflects
    /// every acknowledged write).
    pub async fn ride(&self, ride_id: Uuid) -> ServiceResult<(Ride, u64)> {
        let (ride, version) = aggregate::load_existing::<Ride>(&self.store, &ride_stream(ride_id), "ride").await?;
        Ok((ride, version))
    }

    /// Residents' facts (absent ones as `None`).
    pub async fn residents(&self, ids: &[Uuid]) -> ServiceResult<Vec<(Uuid, Option<ResidentFact>)>> {
        residents(&self.store, ids).await
    }

    /// Books a ride; a retry of the same command returns the same ride.
    pub async fn book(&self, ctx: &CommandCtx, cmd: &BookRide) -> ServiceResult<Booked> {
        let load = |mut l: Loader| async move {
            let input = book_input(&mut l, cmd).await?;
            Ok((l, input))
        };
        let done = executor::run(&self.store, ctx, &ride_stream(cmd.ride_id), load, |i| book_cmd::book(i, cmd)).await?;
        let round_trip = cmd.route.as_ref().is_some_and(|r| r.return_leg.is_some());
        let return_id = round_trip.then_some(cmd.return_id);
        if done.replayed {
            return self.booked(cmd.ride_id, return_id).await;
        }
        // The rides as the append left them, from the events it wrote to their new streams
        // (no read of them again: a statement fewer per leg). Only a stream the append
        // began is folded from nothing.
        let appended = |id: Uuid| -> Option<(Ride, u64)> {
            let stream = ride_stream(id);
            let version = done.version(&stream);
            if version != done.decision.of(&stream).count() as u64 {
                return None;
            }
            let ride = done.decision.of(&stream).fold(None, Ride::apply)?;
            Some((ride, version))
        };
        match appended(cmd.ride_id) {
            Some(ride) => Ok(Booked { ride, return_ride: return_id.and_then(appended) }),
            None => self.booked(cmd.ride_id, return_id).await,
        }
    }

    async fn booked(&self, ride_id: Uuid, return_id: Option<Uuid>) -> ServiceResult<Booked> {
        let ride = self.ride(ride_id).await?;
        let return_ride = match return_id {
            Some(id) => self.ride(id).await.ok(),
            None => None,
        };
        Ok(Booked { ride, return_ride })
    }

    /// Records a ride after the fact, checked against the facts of its own time; a retry
    /// of the same command returns the same ride.
    pub async fn record(&self, ctx: &CommandCtx, cmd: &RecordRide) -> ServiceResult<(Ride, u64)> {
        let load = |mut l: Loader| async move {
            let store = l.store().clone();
            let t = cmd.started_at;
            let bike: Option<BikeFact> = facts::get_at(&store, kind::BIKE, cmd.bike_id, t).await?;
            let (home, home_now) = match &bike {
                Some(b) => (
                    facts::get_at::<CareHomeFact>(&store, kind::CAREHOME, b.carehome_id, t).await?,
                    facts::get::<CareHomeFact>(&store, kind::CAREHOME, b.carehome_id).await?,
                ),
                None => (None, None),
            };
            let chapter: Option<ChapterFact> = match &home {
                Some(h) => facts::get(&store, kind::CHAPTER, h.chapter_id).await?,
                None => None,
            };
            let pilot: Option<PilotFact> = facts::get_at(&store, kind::PILOT, cmd.pilot_id, t).await?;
            let pilot_now: Option<PilotFact> = facts::get(&store, kind::PILOT, cmd.pilot_id).await?;
            // Each rider as they were then (residence), with the consent in force then
            // (from its `given_at` until withdrawn, whenever it was recorded).
            let mut riders = Vec::with_capacity(cmd.resident_ids.len());
            for id in &cmd.resident_ids {
                let then = facts::get_at::<ResidentFact>(&store, kind::RESIDENT, *id, t).await?;
                let now: Option<ResidentFact> = facts::get(&store, kind::RESIDENT, *id).await?;
                let then = then.map(|mut r| {
                    if let Some(n) = &now {
                        r.consent = n.consent_at(t);
                    }
                    r
                });
                riders.push((*id, then));
            }
            let named = match &home_now {
                Some(h) if cmd.actor_role == "pilot" && !h.pilots_choose_riders && !cmd.resident_ids.is_empty() => {
                    claimed_residents(&store, h.carehome_id, cmd.pilot_id, l.now()).await?
                }
                _ => Vec::new(),
            };
            let schedules = schedules(&mut l, &streams_of(&record_cmd::holds(cmd), &[])).await?;
            let input =
                RecordInput { bike, home, home_now, chapter, pilot, pilot_now, riders, named, schedules, now: l.now() };
            Ok((l, input))
        };
        executor::run(&self.store, ctx, &ride_stream(cmd.ride_id), load, |i| record_cmd::record(i, cmd)).await?;
        self.ride(cmd.ride_id).await
    }

    /// The record window of a ride's chapter, in days.
    pub async fn record_window(&self, chapter: Uuid) -> ServiceResult<u32> {
        let c: Option<ChapterFact> = facts::get(&self.store, kind::CHAPTER, chapter).await?;
        Ok(c.map_or_else(domain::events::ChapterSettings::default_record_window_days, |c| {
            c.settings.record_window_days
        }))
    }

    /// A pilot claims a request: the ride is booked and the request marked claimed in one append.
    pub async fn claim(&self, ctx: &CommandCtx, c: &Claim) -> ServiceResult<((RideRequest, u64), Booked)> {
        let stream = request_stream(c.ride_request_id);
        let load = |mut l: Loader| {
            let stream = stream.clone();
            async move {
                let request = l.fold::<RideRequest>(&stream).await?;
                let book = match &request {
                    Some(r) => book_input(&mut l, &book_cmd::claim_booking(r, c)).await?,
                    None => BookInput::default(),
                };
                Ok((l, ClaimInput { request, book }))
            }
        };
        executor::run(&self.store, ctx, &stream, load, |i| book_cmd::claim(i, c)).await?;
        Ok((self.load_request(c.ride_request_id).await?, self.booked(c.ride_id, None).await?))
    }

    /// Runs a decision on an existing ride: loads the ride, then what `reads` names for it.
    pub async fn on_ride<R, D>(&self, ctx: &CommandCtx, ride_id: Uuid, reads: R, decide: D) -> ServiceResult<()>
    where
        R: Fn(&Ride) -> Reads,
        D: Fn(&RideInput) -> Result<Decision<BookingEvent>, DomainError>,
    {
        let stream = ride_stream(ride_id);
        let load = |mut l: Loader| {
            let (stream, reads) = (stream.clone(), &reads);
            async move {
                let mut input =
                    RideInput { ride: l.fold::<Ride>(&stream).await?, now: l.now(), ..RideInput::default() };
                if let Some(ride) = input.ride.clone() {
                    let want = reads(&ride);
                    input.schedules = schedules(&mut l, &want.streams).await?;
                    if want.facts {
                        input.facts = fact_parts(l.store(), ride.bike_id, ride.pilot_id).await?;
                    }
                    input.riders = residents(l.store(), &want.riders).await?;
                    if want.waitlist && !ride.waitlist.is_empty() {
                        waitlist_input(&mut l, &ride, &mut input).await?;
                    }
                    if want.named
                        && let Some(id) = ride.ride_request_id
                        && let Some(req) = l.fold::<RideRequest>(&request_stream(id)).await?
                        && req.pilot_id == Some(ride.pilot_id)
                    {
                        input.named = req.resident_ids;
                    }
                }
                Ok((l, input))
            }
        };
        executor::run(&self.store, ctx, &stream, load, decide).await?;
        Ok(())
    }

    /// Loads a ride request.
    pub async fn load_request(&self, id: Uuid) -> ServiceResult<(RideRequest, u64)> {
        aggregate::load_existing::<RideRequest>(&self.store, &request_stream(id), "ride request").await
    }

    /// Runs a decision on a ride request (new or existing).
    async fn on_request<D>(&self, ctx: &CommandCtx, id: Uuid, new: Option<&NewRequest>, decide: D) -> ServiceResult<()>
    where
        D: Fn(&RequestInput) -> Result<Decision<BookingEvent>, DomainError>,
    {
        let stream = request_stream(id);
        let load = |mut l: Loader| {
            let stream = stream.clone();
            async move {
                let mut input =
                    RequestInput { request: l.fold::<RideRequest>(&stream).await?, now: l.now(), ..Default::default() };
                if let Some(n) = new {
                    input.home = facts::get(l.store(), kind::CAREHOME, n.carehome_id).await?;
                    input.riders = residents(l.store(), &n.resident_ids).await?;
                }
                Ok((l, input))
            }
        };
        executor::run(&self.store, ctx, &stream, load, decide).await?;
        Ok(())
    }

    /// Records a care home's request (its note already sealed).
    pub async fn request_ride(&self, ctx: &CommandCtx, r: &NewRequest) -> ServiceResult<(RideRequest, u64)> {
        self.on_request(ctx, r.ride_request_id, Some(r), |i| request_cmd::request(i, r)).await?;
        // The first round at once (the sweep would make it within a minute otherwise).
        if let Err(e) = self.offer_round(r.ride_request_id, 0).await {
            tracing::warn!(request = %r.ride_request_id, error = %e, "offering a new ride request failed; the sweep retries");
        }
        self.load_request(r.ride_request_id).await
    }

    /// The care home withdraws an open request.
    pub async fn withdraw(&self, ctx: &CommandCtx, id: Uuid) -> ServiceResult<(RideRequest, u64)> {
        self.on_request(ctx, id, None, request_cmd::withdraw).await?;
        self.load_request(id).await
    }

    /// Marks an open request whose window has passed as expired.
    pub async fn expire(&self, ctx: &CommandCtx, id: Uuid) -> ServiceResult<(RideRequest, u64)> {
        self.on_request(ctx, id, None, request_cmd::expire).await?;
        self.load_request(id).await
    }
}

impl Booking {
    /// Puts a resident on a ride's roster under the booking rules.
    pub async fn add_rider(&self, ctx: &CommandCtx, ride_id: Uuid, resident: Uuid) -> ServiceResult<()> {
        let pilot = ctx.actor.role == "pilot";
        let reads = |r: &Ride| Reads {
            streams: streams_of(&rides_cmd::rider_holds(r, resident), &[]),
            facts: true,
            riders: r.riders.iter().map(|x| x.resident_id).chain([resident]).collect(),
            named: pilot,
            ..Reads::default()
        };
        self.on_ride(ctx, ride_id, reads, |i| rides_cmd::add_rider(i, resident, &ctx.actor.role)).await
    }

    /// Takes a resident off a ride's roster (`cause`: `removed`, `consent_withdrawn`, ...).
    pub async fn remove_rider(
        &self,
        ctx: &CommandCtx,
        ride_id: Uuid,
        resident: Uuid,
        cause: &str,
    ) -> ServiceResult<()> {
        let reads = |r: &Ride| Reads {
            streams: streams_of(&rides_cmd::rider_holds(r, resident), &[]),
            waitlist: true,
            ..Reads::default()
        };
        self.on_ride(ctx, ride_id, reads, |i| rides_cmd::remove_rider(i, resident, cause)).await
    }

    /// Puts a resident last on a full ride's waitlist.
    pub async fn join_waitlist(&self, ctx: &CommandCtx, ride_id: Uuid, resident: Uuid) -> ServiceResult<()> {
        let reads = |r: &Ride| Reads {
            streams: streams_of(&rides_cmd::rider_holds(r, resident), &[]),
            facts: true,
            riders: vec![resident],
            ..Reads::default()
        };
        self.on_ride(ctx, ride_id, reads, |i| rides_cmd::join_waitlist(i, resident)).await
    }

    /// Takes a resident off a ride's waitlist (`cause`: `removed`, `moved_out`, ...).
    pub async fn leave_waitlist(
        &self,
        ctx: &CommandCtx,
        ride_id: Uuid,
        resident: Uuid,
        cause: &str,
    ) -> ServiceResult<()> {
        let reads =
            |r: &Ride| Reads { streams: streams_of(&rides_cmd::rider_holds(r, resident), &[]), ..Reads::default() };
        self.on_ride(ctx, ride_id, reads, |i| rides_cmd::leave_waitlist(i, resident, cause)).await
    }

    /// Cancels a ride, releasing every slot it holds.
    pub async fn cancel(&self, ctx: &CommandCtx, ride_id: Uuid, c: &rides_cmd::Cancel) -> ServiceResult<()> {
        let reads = |r: &Ride| Reads { streams: streams_of(&[], &rides_cmd::releases_of(r)), ..Reads::default() };
        self.on_ride(ctx, ride_id, reads, |i| rides_cmd::cancel(i, c)).await
    }

    /// Moves a ride to another slot under the booking rules.
    pub async fn reschedule(
        &self,
        ctx: &CommandCtx,
        ride_id: Uuid,
        start: chrono::DateTime<chrono::Utc>,
        duration_minutes: u32,
    ) -> ServiceResult<()> {
        let reads = |r: &Ride| Reads {
            streams: {
                let mut moved = rides_cmd::moved_holds(r, start, duration_minutes);
                moved.extend(rides_cmd::moved_waits(r, start, duration_minutes));
                streams_of(&moved, &rides_cmd::releases_of(r))
            },
            facts: true,
            riders: if r.kind == domain::types::RideKind::Event {
                r.riders.iter().map(|x| x.resident_id).collect()
            } else {
                Vec::new()
            },
            ..Reads::default()
        };
        self.on_ride(ctx, ride_id, reads, |i| rides_cmd::reschedule(i, start, duration_minutes)).await
    }
}
