//! A long history of past rides, generated for rebuild and cold-start benchmarks
//! (`samskab generate-history`; `samskab-load --history` runs it). Run it while booking is
//! stopped, on a store whose facts already hold a world (chapters, care homes, trishaws,
//! residents with consent, active pilots, as the feeds delivered them).
//!
//! The rides are written in booking's own stream layout, with booking's own stream names
//! and events: `RideBooked` on the ride's stream with `SlotHeld` on each trishaw, pilot and
//! resident day it holds (`rides::holds_of`), booked two weeks ahead; then on the day
//! `RideStarted`, `RiderCheckedIn` and `RideCompleted`, or `RideCancelled` (rider reason)
//! with `SlotReleased`, or `RideMarkedNoShow`. Events are interleaved in time order and
//! appended in large multi-stream transactions. The rides do not go through the command
//! handlers (a million events would take hours there): every trishaw rides in every slot
//! of every day, with a pilot and residents free in that slot, so no rule is broken.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use domain::DomainEvent;
use domain::events::{
    BookingEvent, RideBooked, RideCancelled, RideCompleted, RideMarkedNoShow, RideStarted, RiderCheckedIn, SlotHeld,
    SlotReleased,
};
use domain::types::{BikeStatus, CancellationReason, ConsentScope, PilotStatus, ResidentStatus, RideKind, RideStatus};
use eventlog::{Actor, EventStore, ExpectedVersion, Metadata, NewEvent, StreamAppend};
use serde::Serialize;
use uuid::Uuid;

use crate::facts::{self, BikeFact, CareHomeFact, ChapterFact, PilotFact, ResidentFact};
use crate::rides::holds_of;
use crate::schedule::Holder;
use crate::service::ride_stream;

/// Length of every generated ride.
const RIDE_MINUTES: u32 = 60;
/// The first slot of a day (UTC); slots follow each other until 22:00.
const FIRST_SLOT_HOUR: u32 = 6;
/// Minutes of a day the slots fit in (06:00-22:00).
const DAY_MINUTES: u32 = 16 * 60;
/// At most this many slots a day.
const MAX_SLOTS: u32 = 12;
/// Days between a booking and its ride.
const LEAD_DAYS: i64 = 14;
/// Events per append (one transaction).
const APPEND_EVENTS: usize = 4_000;

/// Errors generating a history.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] eventlog::Error),
    /// Booking's facts hold no chapter it could book rides in.
    #[error(
        "booking knows no chapter with an active pilot and a care home with a trishaw in service and a resident \
         consenting to rides: build a world first (register them over REST while Samskab runs)"
    )]
    NoWorld,
}

/// What was generated in one chapter: the figures its stats must show after a rebuild.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Completed rides (trips).
    pub trips: u64,
    /// Riders carried on them (two riders on one trip are two rides).
    pub rides: u64,
    /// Rides marked no-show.
    pub no_shows: u64,
    /// Rides cancelled for the rider's reason.
    pub cancelled_rider: u64,
}

/// A generated history.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Generated {
    /// Events appended to booking's log.
    pub events: u64,
    /// Days of rides.
    pub days: u64,
    /// Counts by chapter.
    pub chapters: BTreeMap<Uuid, Counts>,
}

/// A care home as the generator uses it.
struct Home {
    id: Uuid,
    bikes: Vec<Uuid>,
    residents: Vec<Uuid>,
    /// Riders per trishaw: two when every trishaw seats two and there are residents enough.
    seats_each: usize,
    turnaround: u32,
}

/// A chapter with the care homes and pilots rides can be booked with.
struct Chapter {
    id: Uuid,
    homes: Vec<Home>,
    pilots: Vec<Uuid>,
}

/// The world booking knows, from its facts: bookable trishaws, residents and pilots only.
async fn world(store: &EventStore) -> Result<Vec<Chapter>, Error> {
    let mut out = Vec::new();
    for c in facts::all::<ChapterFact>(store, facts::kind::CHAPTER).await? {
        let pilots: Vec<Uuid> = facts::children::<PilotFact>(store, facts::kind::PILOT, c.chapter_id)
            .await?
            .into_iter()
            .filter(|p| p.status == PilotStatus::Active)
            .map(|p| p.pilot_id)
            .collect();
        let mut homes = Vec::new();
        for h in facts::children::<CareHomeFact>(store, facts::kind::CAREHOME, c.chapter_id).await? {
            let bikes: Vec<BikeFact> = facts::children::<BikeFact>(store, facts::kind::BIKE, h.carehome_id)
                .await?
                .into_iter()
                .filter(|b| b.status == BikeStatus::InService && b.seats >= 1)
                .collect();
            let residents: Vec<Uuid> = facts::children::<ResidentFact>(store, facts::kind::RESIDENT, h.carehome_id)
                .await?
                .into_iter()
                .filter(|r| r.status == ResidentStatus::LivingHere && r.consent.contains(&ConsentScope::Rides))
                .map(|r| r.resident_id)
                .collect();
            if bikes.is_empty() || residents.is_empty() {
                continue;
            }
            let two = bikes.iter().all(|b| b.seats >= 2) && residents.len() >= 2 * bikes.len();
            homes.push(Home {
                id: h.carehome_id,
                bikes: bikes.iter().map(|b| b.bike_id).collect(),
                residents,
                seats_each: if two { 2 } else { 1 },
                turnaround: h.turnaround_minutes,
            });
        }
        if !pilots.is_empty() && !homes.is_empty() {
            out.push(Chapter { id: c.chapter_id, homes, pilots });
        }
    }
    if out.is_empty() {
        return Err(Error::NoWorld);
    }
    Ok(out)
}

/// A small, fast, seeded random generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// What happened to a generated ride.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Completed,
    Cancelled,
    NoShow,
}

struct PastRide {
    id: Uuid,
    chapter: Uuid,
    home: Uuid,
    bike: Uuid,
    pilot: Uuid,
    riders: Vec<Uuid>,
    start: DateTime<Utc>,
    turnaround: u32,
    fate: Fate,
    distance_km: f64,
}

impl PastRide {
    fn holders(&self) -> Vec<Holder> {
        let mut h = vec![Holder::Bike(self.bike), Holder::Pilot(self.pilot)];
        h.extend(self.riders.iter().map(|&x| Holder::Resident(x)));
        h
    }

    /// The schedule streams it holds, with the held intervals (booking's own layout).
    fn holds(&self) -> Vec<(String, DateTime<Utc>, DateTime<Utc>)> {
        holds_of(&self.holders(), self.start, RIDE_MINUTES, self.turnaround)
    }
}

/// The slots of a day: far enough apart for every care home's turnaround.
fn slots(world: &[Chapter]) -> (u32, u32) {
    let turnaround = world.iter().flat_map(|c| &c.homes).map(|h| h.turnaround).max().unwrap_or(0);
    let step = RIDE_MINUTES + turnaround;
    let n = (DAY_MINUTES.saturating_sub(RIDE_MINUTES) / step + 1).clamp(1, MAX_SLOTS);
    (n, step)
}

/// The rides of one day: every trishaw in every slot, with a pilot of its chapter and
/// riders of its care home, none of them in two rides of a slot.
fn rides_of_day(world: &[Chapter], day: NaiveDate, index: u64, rng: &mut Rng) -> Vec<PastRide> {
    let mut out = Vec::new();
    let (n_slots, step) = slots(world);
    let first = Utc.from_utc_datetime(&day.and_time(NaiveTime::from_hms_opt(FIRST_SLOT_HOUR, 0, 0).expect("06:00")));
    for slot in 0..n_slots as usize {
        let start = first + Duration::minutes(slot as i64 * i64::from(step));
        let turn = index as usize + slot;
        for chapter in world {
            let pilots = &chapter.pilots;
            let mut next_pilot = turn;
            let mut used = 0;
            for home in &chapter.homes {
                let seats_each = home.seats_each;
                for (b, &bike) in home.bikes.iter().enumerate() {
                    // One ride per pilot and per resident in a slot.
                    if used == pilots.len() || (b + 1) * seats_each > home.residents.len() {
                        break;
                    }
                    let pilot = pilots[next_pilot % pilots.len()];
                    next_pilot += 1;
                    used += 1;
                    let n = home.residents.len();
                    let riders = (0..seats_each).map(|s| home.residents[(b * seats_each + s + turn) % n]).collect();
                    let fate = match rng.below(100) {
                        0..=84 => Fate::Completed,
                        85..=94 => Fate::Cancelled,
                        _ => Fate::NoShow,
                    };
                    out.push(PastRide {
                        id: Uuid::now_v7(),
                        chapter: chapter.id,
                        home: home.id,
                        bike,
                        pilot,
                        riders,
                        start,
                        turnaround: home.turnaround,
                        fate,
                        distance_km: 2.0 + rng.below(80) as f64 / 10.0,
                    });
                }
            }
        }
    }
    out
}

fn meta(chapter: Uuid, pilot: Uuid) -> Metadata {
    Metadata {
        tenant: Some(chapter),
        actor: Some(Actor { id: format!("pilot-{}", &pilot.simple().to_string()[..8]), role: "pilot".to_owned() }),
        correlation_id: Some(Uuid::now_v7()),
        causation_id: None,
        traceparent: None,
    }
}

fn event(e: impl Into<BookingEvent>, m: &Metadata, at: DateTime<Utc>) -> Result<NewEvent, Error> {
    let e: BookingEvent = e.into();
    Ok(NewEvent::new(e.event_type(), &e.to_json())?.metadata(m.clone()).occurred_at(at))
}

/// The events of booking a ride (its stream, then its holds).
fn booking_events(r: &PastRide, out: &mut Vec<(String, NewEvent)>) -> Result<(), Error> {
    let booked_at = r.start - Duration::days(LEAD_DAYS);
    let m = meta(r.chapter, r.pilot);
    let booked = RideBooked {
        ride_id: r.id,
        kind: RideKind::Pleasure,
        status: RideStatus::Booked,
        chapter_id: r.chapter,
        carehome_id: r.home,
        bike_id: r.bike,
        pilot_id: r.pilot,
        start: r.start,
        duration_minutes: RIDE_MINUTES,
        turnaround_minutes: r.turnaround,
        riders: r.riders.clone(),
        trip_minutes: None,
        route: None,
        ride_request_id: None,
        booked_at: Some(booked_at),
        ride_series_id: None,
    };
    out.push((ride_stream(r.id), event(booked, &m, booked_at)?));
    for (stream, start, end) in r.holds() {
        out.push((stream, event(SlotHeld { ride_id: r.id, start, end }, &m, booked_at)?));
    }
    Ok(())
}

/// The events of the ride's day.
fn day_events(r: &PastRide, out: &mut Vec<(String, NewEvent)>) -> Result<(), Error> {
    let stream = ride_stream(r.id);
    let m = meta(r.chapter, r.pilot);
    match r.fate {
        Fate::Completed => {
            out.push((stream.clone(), event(RideStarted { ride_id: r.id, at: r.start }, &m, r.start)?));
            for &resident in &r.riders {
                out.push((
                    stream.clone(),
                    event(RiderCheckedIn { ride_id: r.id, resident_id: resident }, &m, r.start)?,
                ));
            }
            let ended = r.start + Duration::minutes(i64::from(RIDE_MINUTES) - 5);
            let done = RideCompleted {
                ride_id: r.id,
                ended_at: ended,
                distance_km: r.distance_km,
                bike_condition: Some("ok".into()),
                story: None,
                absent: Vec::new(),
            };
            out.push((stream, event(done, &m, ended)?));
        }
        Fate::Cancelled => {
            let at = r.start - Duration::hours(3);
            let cancelled = RideCancelled {
                ride_id: r.id,
                reason: CancellationReason::Rider,
                by_role: "pilot".into(),
                note: None,
                caused_by: None,
                at: Some(at),
            };
            out.push((stream, event(cancelled, &m, at)?));
            for (s, _, _) in r.holds() {
                out.push((s, event(SlotReleased { ride_id: r.id }, &m, at)?));
            }
        }
        Fate::NoShow => {
            out.push((stream, event(RideMarkedNoShow { ride_id: r.id, by: RideMarkedNoShow::riders() }, &m, r.start)?));
        }
    }
    Ok(())
}

/// Appends events in one transaction, each stream's events together and in order.
async fn flush(store: &EventStore, pending: Vec<(String, NewEvent)>) -> Result<(), Error> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut order: Vec<String> = Vec::new();
    let mut by_stream: BTreeMap<String, Vec<NewEvent>> = BTreeMap::new();
    for (s, e) in pending {
        let v = by_stream.entry(s.clone()).or_default();
        if v.is_empty() {
            order.push(s);
        }
        v.push(e);
    }
    let appends = order
        .into_iter()
        .map(|s| {
            let events = by_stream.remove(&s).unwrap_or_default();
            StreamAppend::new(s, ExpectedVersion::Any, events)
        })
        .collect();
    store.append(appends).await?;
    Ok(())
}

/// Appends `target` events (or a few more: whole days) of past rides, ending yesterday, to
/// booking's log; `progress` gets the events written so far. The same seed and world give
/// the same rides (ids and times of day aside).
pub async fn generate(store: &EventStore, target: u64, seed: u64, progress: impl Fn(u64)) -> Result<Generated, Error> {
    let world = world(store).await?;
    let mut rng = Rng::new(seed);
    let today = Utc::now().date_naive();
    let per_day = rides_of_day(&world, today, 0, &mut Rng::new(seed)).len().max(1);
    // About 7 events per completed one-rider ride; days go back far enough to reach target.
    let mut days = (target as usize).div_ceil(per_day * 6).max(1) as i64;
    let mut generated = Generated::default();
    let mut pending: Vec<(String, NewEvent)> = Vec::new();
    let mut queue: VecDeque<Vec<PastRide>> = VecDeque::new();
    let mut day = 0i64;
    // Day d's rides are booked on day d - LEAD_DAYS and happen on day d; events are written
    // in that time order. The last LEAD_DAYS days of bookings keep the loop going.
    while day < days + LEAD_DAYS {
        if day < days {
            let date = today - Duration::days(days + 1) + Duration::days(day);
            let rides = rides_of_day(&world, date, day as u64, &mut rng);
            for r in &rides {
                booking_events(r, &mut pending)?;
            }
            queue.push_back(rides);
        }
        if day >= LEAD_DAYS
            && let Some(rides) = queue.pop_front()
        {
            for r in &rides {
                day_events(r, &mut pending)?;
                let c = generated.chapters.entry(r.chapter).or_default();
                match r.fate {
                    Fate::Completed => {
                        c.trips += 1;
                        c.rides += r.riders.len() as u64;
                    }
                    Fate::Cancelled => c.cancelled_rider += 1,
                    Fate::NoShow => c.no_shows += 1,
                }
            }
        }
        while pending.len() >= APPEND_EVENTS {
            let chunk: Vec<_> = pending.drain(..APPEND_EVENTS).collect();
            generated.events += chunk.len() as u64;
            flush(store, chunk).await?;
        }
        day += 1;
        // Stop adding days once the target is reached (the queued days still complete).
        if day < days && generated.events + pending.len() as u64 >= target {
            days = day;
        }
        if day % 20 == 0 {
            progress(generated.events);
        }
    }
    generated.events += pending.len() as u64;
    flush(store, pending).await?;
    progress(generated.events);
    generated.days = days as u64;
    Ok(generated)
}
