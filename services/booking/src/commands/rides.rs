//! Decisions on an existing ride: the life cycle (`pending_confirmation → booked → started
//! → completed`; `cancelled` and `no_show` from any state before `completed`; anything else
//! is `illegal-transition`), check-in, rescheduling and roster changes under the booking
//! rules. Pure: the input is loaded by the executor, the output is events.

use chrono::{DateTime, Utc};
use domain::events::*;
use domain::types::{CancellationReason, RideKind, RideStatus, Sealed};
use domain::{Decision, DomainError, ErrorCode};
use uuid::Uuid;

use super::schedule::{Hold, Schedules, await_events, schedule_events};
use crate::facts::ResidentFact;
use crate::rides::{Ride, holds_of, ride_stream};
use crate::rules::{self, FactParts, Facts, Slot};
use crate::schedule::Holder;

/// What a command on an existing ride decides on.
#[derive(Debug, Clone, Default)]
pub struct RideInput {
    /// The ride (`None`: no such ride).
    pub ride: Option<Ride>,
    /// The schedule streams the command touches.
    pub schedules: Schedules,
    /// The booking facts of the ride's trishaw and pilot (commands under the booking rules).
    pub facts: FactParts,
    /// Riders' facts (roster changes, event rides, stories).
    pub riders: Vec<(Uuid, Option<ResidentFact>)>,
    /// Residents named in the ride request the ride's pilot claimed for it (roster
    /// changes of a claimed ride).
    pub named: Vec<Uuid>,
    /// Other rides the ride's waiting residents wait for (a promotion takes them off the
    /// overlapping ones).
    pub others: Vec<Ride>,
    /// Now.
    pub now: DateTime<Utc>,
}

impl RideInput {
    fn ride(&self) -> Result<&Ride, DomainError> {
        self.ride.as_ref().ok_or_else(|| DomainError::NotFound("ride".into()))
    }

    fn facts(&self) -> Result<Facts, DomainError> {
        self.facts.facts()
    }
}

/// The refusal of a transition the life cycle does not allow.
pub fn illegal(ride: &Ride, action: &str) -> DomainError {
    DomainError::conflict(ErrorCode::IllegalTransition, format!("a {} ride cannot be {action}", ride.status), None)
}

fn on_ride(ride: &Ride, events: Vec<BookingEvent>) -> Decision<BookingEvent> {
    Decision::on(ride_stream(ride.ride_id), events, Some(ride.chapter_id))
}

fn bookable(ride: &Ride, action: &str) -> Result<(), DomainError> {
    match ride.status {
        RideStatus::PendingConfirmation | RideStatus::Booked => Ok(()),
        _ => Err(illegal(ride, action)),
    }
}

/// `pending_confirmation → booked`.
pub fn confirm(input: &RideInput) -> Result<Decision<BookingEvent>, DomainError> {
    let ride = input.ride()?;
    match ride.status {
        RideStatus::PendingConfirmation => Ok(on_ride(ride, vec![RideConfirmed { ride_id: ride.ride_id }.into()])),
        _ => Err(illegal(ride, "confirmed")),
    }
}

/// How early before its slot a ride may say it started, in minutes.
pub const EARLIEST_START_MINUTES: i64 = 60;
/// How far past now a reported start may be (clocks differ), in minutes.
pub const CLOCK_SKEW_MINUTES: i64 = 5;

/// `booked → started`: now, or at `started_at` as the pilot's app reports it (an app that
/// was offline), which must be no earlier than [`EARLIEST_START_MINUTES`] before the slot
/// and no later than now plus [`CLOCK_SKEW_MINUTES`]. (Started now, a ride may start
/// whenever it is booked: the bounds are for a time the app reports.)
pub fn start(input: &RideInput, started_at: Option<DateTime<Utc>>) -> Result<Decision<BookingEvent>, DomainError> {
    let ride = input.ride()?;
    if ride.status != RideStatus::Booked {
        return Err(illegal(ride, "started"));
    }
    let Some(at) = started_at else {
        return Ok(on_ride(ride, vec![RideStarted { ride_id: ride.ride_id, at: input.now }.into()]));
    };
    if at < ride.start - chrono::Duration::minutes(EARLIEST_START_MINUTES) {
        return Err(DomainError::invalid(
            "/started_at",
            format!("must be no earlier than {EARLIEST_START_MINUTES} minutes before the ride's slot"),
        ));
    }
    if at > input.now + chrono::Duration::minutes(CLOCK_SKEW_MINUTES) {
        return Err(DomainError::invalid("/started_at", "must not be in the future"));
    }
    Ok(on_ride(ride, vec![RideStarted { ride_id: ride.ride_id, at }.into()]))
}

/// Checks absent riders: each on the roster (422 `not-on-roster`), not every rider (422:
/// that is a no-show by the riders). No duplicates.
pub fn check_absent(riders: &[Uuid], absent: &[Uuid], field: &str) -> Result<Vec<Uuid>, DomainError> {
    let mut out: Vec<Uuid> = Vec::new();
    for (i, a) in absent.iter().enumerate() {
        if !riders.contains(a) {
            return Err(DomainError::Rule {
                code: ErrorCode::NotOnRoster,
                message: format!("{field}/{i}: resident {a} is not on the ride's roster"),
            });
        }
        if !out.contains(a) {
            out.push(*a);
        }
    }
    if !riders.is_empty() && out.len() == riders.len() {
        return Err(DomainError::rule(
            ErrorCode::AllRidersAbsent,
            "every rider was absent: mark the ride a no-show by the riders instead",
        ));
    }
    Ok(out)
}

/// Checks a rider in (a second check-in changes nothing).
pub fn check_in(input: &RideInput, resident: Uuid) -> Result<Decision<BookingEvent>, DomainError> {
    let ride = input.ride()?;
    if !matches!(ride.status, RideStatus::Booked | RideStatus::Started) {
        return Err(illegal(ride, "checked in to"));
    }
    match ride.riders.iter().find(|r| r.resident_id == resident) {
        None => Err(DomainError::NotFound("rider on this ride's roster".into())),
        Some(r) if r.checked_in => Ok(Decision::nothing()),
        Some(_) => Ok(on_ride(ride, vec![RiderCheckedIn { ride_id: ride.ride_id, resident_id: resident }.into()])),
    }
}

/// The logged end of a ride.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Actual end.
    pub ended_at: DateTime<Utc>,
    /// Kilometres.
    pub distance_km: f64,
    /// Condition label.
    pub bike_condition: Option<String>,
    /// The story, sealed (only with every rider's consent to stories).
    pub story: Option<Sealed>,
    /// Riders who did not come (the whole set).
    pub absent: Vec<Uuid>,
}

/// `started → completed`. A story needs every rider's consent to stories (`riders`).
pub fn complete(input: &RideInput, c: &Completion) -> Result<Decision<BookingEvent>, DomainError> {
    let ride = input.ride()?;
    if c.story.is_some() {
        rules::check_story_consent(&input.riders)?;
    }
    if ride.status != RideStatus::Started {
        return Err(illegal(ride, "completed"));
    }
    if ride.started_at.is_some_and(|s| c.ended_at < s) {
        return Err(DomainError::invalid("/ended_at", "must not be before the ride started"));
    }
    let riders: Vec<Uuid> = ride.riders.iter().map(|r| r.resident_id).collect();
    let absent = check_absent(&riders, &c.absent, "/absent_resident_ids")?;
    let done = RideCompleted {
        ride_id: ride.ride_id,
        ended_at: c.ended_at,
        distance_km: c.distance_km,
        bike_condition: c.bike_condition.clone(),
        story: c.story.clone(),
        absent,
    };
    Ok(on_ride(ride, vec![done.into()]))
}

/// Any state before `completed` → `no_show`; `by` is `riders` or `pilot` (who may say
/// `pilot` is the gateway's to check).
pub fn no_show(input: &RideInput, by: &str) -> Result<Decision<BookingEvent>, DomainError> {
    let ride = input.ride()?;
    if !matches!(by, "riders" | "pilot") {
        return Err(DomainError::invalid("/by", "must be riders or pilot"));
    }
    if !ride.status.is_active() {
        return Err(illegal(ride, "marked no-show"));
    }
    Ok(on_ride(ride, vec![RideMarkedNoShow { ride_id: ride.ride_id, by: by.to_owned() }.into()]))
}

/// A correction of a completed ride (fields left out keep their value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Correction {
    /// Actual start.
    pub started_at: Option<DateTime<Utc>>,
    /// Actual end.
    pub ended_at: Option<DateTime<Utc>>,
    /// Kilometres.
    pub distance_km: Option<f64>,
    /// The whole set of absent riders (`[]` clears it).
    pub absent: Option<Vec<Uuid>>,
    /// A note, sealed.
    pub note: Option<Sealed>,
}

/// The longest ride, in hours.
pub const MAX_RIDE_HOURS: i64 = 24;

/// Checks an actual interval: the end after the start, at most [`MAX_RIDE_HOURS`], and
/// neither in the future.
pub fn check_actual(started_at: DateTime<Utc>, ended_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), DomainError> {
    let skew = chrono::Duration::minutes(CLOCK_SKEW_MINUTES);
    if started_at > now + skew {
        return Err(DomainError::invalid("/started_at", "must not be in the future"));
    }
    if ended_at <= started_at {
        return Err(DomainError::invalid("/ended_at", "must be after started_at"));
    }
    if ended_at - started_at > chrono::Duration::hours(MAX_RIDE_HOURS) {
        return Err(DomainError::invalid("/ended_at", format!("a ride lasts at most {MAX_RIDE_HOURS} hours")));
    }
    if ended_at > now + skew {
        return Err(DomainError::invalid("/ended_at", "must not be in the future"));
    }
    Ok(())
}

/// Corrects a completed ride. A recorded ride's corrected times move the slots it holds
/// (its actual times, checked like a record's: no overlap); a booked ride keeps holding
/// its slot. Nothing changed: nothing written.
pub fn correct(input: &RideInput, c: &Correction) -> Result<Decision<BookingEvent>, DomainError> {
    let ride = input.ride()?;
    if ride.status != RideStatus::Completed {
        return Err(illegal(ride, "corrected (only a completed ride is)"));
    }
    let started = c.started_at.or(ride.started_at).unwrap_or(ride.start);
    let ended = c.ended_at.or(ride.ended_at).unwrap_or(ride.end());
    if c.started_at.is_some() || c.ended_at.is_some() {
        check_actual(started, ended, input.now)?;
    }
    if c.distance_km.is_some_and(|d| !valid_distance(d)) {
        return Err(DomainError::invalid("/distance_km", "must be from 0 to 500"));
    }
    let riders: Vec<Uuid> = ride.riders.iter().map(|r| r.resident_id).collect();
    let absent = c.absent.as_ref().map(|a| check_absent(&riders, a, "/absent_resident_ids")).transpose()?;
    let changed = RideCorrected {
        ride_id: ride.ride_id,
        started_at: c.started_at.filter(|s| Some(*s) != ride.started_at),
        ended_at: c.ended_at.filter(|e| Some(*e) != ride.ended_at),
        distance_km: c.distance_km.filter(|d| Some(*d) != ride.distance_km),
        absent: absent.filter(|a| *a != ride.absent),
        note: c.note.clone(),
    };
    if changed == (RideCorrected { ride_id: ride.ride_id, ..Default::default() }) {
        return Ok(Decision::nothing());
    }
    let times = Correction { started_at: changed.started_at, ended_at: changed.ended_at, ..Correction::default() };
    let moved = corrected_holds(ride, &times);
    let mut d = on_ride(ride, vec![changed.into()]);
    if let Some(holds) = moved {
        for (stream, e) in schedule_events(&input.schedules, &holds, &releases_of(ride))? {
            d.push(stream, e);
        }
    }
    Ok(d)
}

/// The holds a correction moves a recorded ride to (its corrected actual interval, without
/// turnaround); `None` when it moves none (a booked ride keeps its slot; no new times).
pub fn corrected_holds(ride: &Ride, c: &Correction) -> Option<Vec<Hold>> {
    if !ride.recorded || (c.started_at.is_none() && c.ended_at.is_none()) {
        return None;
    }
    let started = c.started_at.or(ride.started_at).unwrap_or(ride.start);
    let ended = c.ended_at.or(ride.ended_at).unwrap_or(ride.end());
    let mut after = ride.clone();
    after.start = started;
    after.duration_minutes = crate::rides::actual_length(started, ended);
    Some(Hold::of(ride.ride_id, after.holds()))
}

/// Whether a logged distance is plausible: 0 to 500 km (not NaN).
pub fn valid_distance(km: f64) -> bool {
    (0.0..=500.0).contains(&km)
}

/// Cancelling a ride.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancel {
    /// Why.
    pub reason: CancellationReason,
    /// The role of who cancels (`system` for cascades).
    pub by_role: String,
    /// A note, sealed.
    pub note: Option<Sealed>,
    /// The event that caused a cascade.
    pub caused_by: Option<Uuid>,
}

/// Any state before `completed` → `cancelled`, releasing every slot the ride holds.
pub fn cancel(input: &RideInput, c: &Cancel) -> Result<Decision<BookingEvent>, DomainError> {
    let ride = input.ride()?;
    if !ride.status.is_active() {
        return Err(illegal(ride, "cancelled"));
    }
    let cancelled = RideCancelled {
        ride_id: ride.ride_id,
        reason: c.reason,
        by_role: c.by_role.clone(),
        note: c.note.clone(),
        caused_by: c.caused_by,
        at: Some(input.now),
    };
    let mut d = on_ride(ride, vec![cancelled.into()]);
    let releases = releases_of(ride);
    for (stream, e) in schedule_events(&input.schedules, &[], &releases)? {
        d.push(stream, e);
    }
    Ok(d)
}

/// Every schedule stream the ride holds or is waited for on, to release.
pub fn releases_of(ride: &Ride) -> Vec<(String, Uuid)> {
    ride.holds().into_iter().chain(ride.waits()).map(|(s, ..)| (s, ride.ride_id)).collect()
}

/// The places of a ride's waiting residents at another slot (a reschedule moves them).
pub fn moved_waits(ride: &Ride, start: DateTime<Utc>, duration_minutes: u32) -> Vec<Hold> {
    let mut moved = ride.clone();
    moved.start = start;
    moved.duration_minutes = duration_minutes;
    Hold::of(ride.ride_id, moved.waits())
}

/// The holds of a ride moved to another slot.
pub fn moved_holds(ride: &Ride, start: DateTime<Utc>, duration_minutes: u32) -> Vec<Hold> {
    let mut moved = ride.clone();
    moved.start = start;
    moved.duration_minutes = duration_minutes;
    Hold::of(ride.ride_id, moved.holds())
}

/// Moves a booked or pending ride to another slot under the booking rules.
pub fn reschedule(
    input: &RideInput,
    start: DateTime<Utc>,
    duration_minutes: u32,
) -> Result<Decision<BookingEvent>, DomainError> {
    let ride = input.ride()?;
    bookable(ride, "rescheduled")?;
    let facts = input.facts()?;
    rules::check_slot(&facts, &Slot { start, duration_minutes }, input.now)?;
    if ride.kind == RideKind::Event {
        rules::check_riders(&facts.home, &facts.bike, ride.kind, duration_minutes, ride.trip_minutes, &input.riders)?;
    }
    let mut d = on_ride(ride, vec![RideRescheduled { ride_id: ride.ride_id, start, duration_minutes }.into()]);
    let schedule = schedule_events(&input.schedules, &moved_holds(ride, start, duration_minutes), &releases_of(ride))?;
    let waits = await_events(&moved_waits(ride, start, duration_minutes));
    for (stream, e) in schedule.into_iter().chain(waits) {
        d.push(stream, e);
    }
    Ok(d)
}

/// The holds of a resident added to a ride's roster.
pub fn rider_holds(ride: &Ride, resident: Uuid) -> Vec<Hold> {
    Hold::of(ride.ride_id, holds_of(&[Holder::Resident(resident)], ride.start, ride.duration_minutes, 0))
}

/// Puts a resident on a ride's roster under the booking rules (`riders`: the roster
/// after); `actor_role` is who asks (a pilot seats only whom it may).
pub fn add_rider(input: &RideInput, resident: Uuid, actor_role: &str) -> Result<Decision<BookingEvent>, DomainError> {
    let ride = input.ride()?;
    bookable(ride, "given riders")?;
    let facts = input.facts()?;
    rules::check_pilot_seats(&facts.home, actor_role, &[resident], &input.named)?;
    if ride.has_rider(resident) {
        return Ok(Decision::nothing());
    }
    rules::check_riders(&facts.home, &facts.bike, ride.kind, ride.duration_minutes, ride.trip_minutes, &input.riders)?;
    let mut d = on_ride(ride, vec![RiderAddedToRoster { ride_id: ride.ride_id, resident_id: resident }.into()]);
    for (stream, e) in schedule_events(&input.schedules, &rider_holds(ride, resident), &[])? {
        d.push(stream, e);
    }
    Ok(d)
}

/// Takes a resident off a ride's roster (`cause`: `removed`, `consent_withdrawn`, ...).
pub fn remove_rider(input: &RideInput, resident: Uuid, cause: &str) -> Result<Decision<BookingEvent>, DomainError> {
    let ride = input.ride()?;
    if !ride.has_rider(resident) {
        return Err(DomainError::NotFound("rider on this ride's roster".into()));
    }
    bookable(ride, "changed")?;
    let removed = RiderRemovedFromRoster { ride_id: ride.ride_id, resident_id: resident, cause: cause.into() };
    let mut d = on_ride(ride, vec![removed.into()]);
    let releases: Vec<(String, Uuid)> =
        rider_holds(ride, resident).into_iter().map(|h| (h.stream, h.ride_id)).collect();
    for (stream, e) in schedule_events(&input.schedules, &[], &releases)? {
        d.push(stream, e);
    }
    let mut after = ride.clone();
    after.riders.retain(|r| r.resident_id != resident);
    promote(input, &after, &mut d)?;
    Ok(d)
}

/// The most residents one ride's waitlist holds.
pub const MAX_WAITLIST: usize = 20;

/// Whether a ride's kind takes a waitlist (`pleasure` and `functional`; an event ride's
/// riders come and go per trip).
pub fn takes_waitlist(kind: RideKind) -> bool {
    matches!(kind, RideKind::Pleasure | RideKind::Functional)
}

/// Whether `resident` may not ride `ride` because they hold an overlapping ride.
fn busy(schedules: &Schedules, ride: &Ride, resident: Uuid) -> Option<Uuid> {
    rider_holds(ride, resident)
        .iter()
        .find_map(|h| schedules.0.get(&h.stream).and_then(|s| s.overlapping(h.start, h.end, &[ride.ride_id])))
}

/// Puts a resident last on a full ride's waitlist: a pending or booked `pleasure` or
/// `functional` ride (a free seat: 409 `seat-free`), a resident who lives at the home with
/// consent to ride (the booking rules) and rides nothing overlapping (409 `resident-busy`).
/// Waiting already: nothing written.
pub fn join_waitlist(input: &RideInput, resident: Uuid) -> Result<Decision<BookingEvent>, DomainError> {
    let ride = input.ride()?;
    bookable(ride, "waited for")?;
    if !takes_waitlist(ride.kind) {
        return Err(illegal(ride, "waited for (an event ride takes no waitlist)"));
    }
    if ride.waitlist.contains(&resident) {
        return Ok(Decision::nothing());
    }
    if ride.has_rider(resident) {
        return Err(DomainError::invalid("/resident_id", "is on the ride's roster already"));
    }
    let facts = input.facts()?;
    let capacity = Ride::capacity(ride.kind, facts.bike.seats, ride.duration_minutes, ride.trip_minutes);
    if (ride.riders.len() as u32) < capacity {
        return Err(DomainError::conflict(
            ErrorCode::SeatFree,
            "the ride has a free seat: put the resident on the roster",
            None,
        ));
    }
    if ride.waitlist.len() >= MAX_WAITLIST {
        return Err(DomainError::rule(
            ErrorCode::LimitReached,
            format!("a ride's waitlist holds at most {MAX_WAITLIST} residents"),
        ));
    }
    let fact = input.riders.iter().find(|(id, _)| *id == resident).cloned().unwrap_or((resident, None));
    rules::check_riders(&facts.home, &facts.bike, ride.kind, ride.duration_minutes, ride.trip_minutes, &[fact])?;
    if let Some(other) = busy(&input.schedules, ride, resident) {
        return Err(DomainError::conflict(
            ErrorCode::ResidentBusy,
            "the resident is on another ride in that slot",
            Some(other),
        ));
    }
    let mut d = on_ride(ride, vec![ResidentWaitlisted { ride_id: ride.ride_id, resident_id: resident }.into()]);
    for (stream, e) in await_events(&rider_holds(ride, resident)) {
        d.push(stream, e);
    }
    Ok(d)
}

/// The events of `resident` leaving `ride`'s waitlist, releasing their places (on the
/// streams read).
fn leave_events(schedules: &Schedules, ride: &Ride, resident: Uuid, cause: &str) -> Vec<(String, BookingEvent)> {
    let left = ResidentLeftWaitlist { ride_id: ride.ride_id, resident_id: resident, cause: cause.into() };
    let mut out = vec![(ride_stream(ride.ride_id), left.into())];
    for h in rider_holds(ride, resident) {
        if schedules.0.get(&h.stream).is_some_and(|s| s.waiting.contains_key(&ride.ride_id)) {
            out.push((h.stream, SlotReleased { ride_id: ride.ride_id }.into()));
        }
    }
    out
}

/// Takes a resident off a ride's waitlist (`cause`: `removed`, `moved_out`, ...).
pub fn leave_waitlist(input: &RideInput, resident: Uuid, cause: &str) -> Result<Decision<BookingEvent>, DomainError> {
    let ride = input.ride()?;
    if !ride.waitlist.contains(&resident) {
        return Err(DomainError::NotFound("resident on this ride's waitlist".into()));
    }
    let mut d = Decision::in_tenant(Some(ride.chapter_id));
    for (stream, e) in leave_events(&input.schedules, ride, resident, cause) {
        d.push(stream, e);
    }
    Ok(d)
}

/// Seats waiting residents, first in line first, while `after` (the ride once the
/// decision's own change is applied) has a free seat: each under the booking rules (lives
/// at the home, consents to ride, rides nothing overlapping; who may not is passed over
/// and keeps their place). A promoted resident leaves every other waitlist whose ride
/// overlaps this one (`input.others`), in the same decision.
pub fn promote(input: &RideInput, after: &Ride, d: &mut Decision<BookingEvent>) -> Result<(), DomainError> {
    if after.waitlist.is_empty() || !takes_waitlist(after.kind) || !after.status.is_active() {
        return Ok(());
    }
    if !matches!(after.status, RideStatus::PendingConfirmation | RideStatus::Booked) {
        return Ok(());
    }
    let Ok(facts) = input.facts() else {
        return Ok(());
    };
    let capacity = Ride::capacity(after.kind, facts.bike.seats, after.duration_minutes, after.trip_minutes);
    let mut seated = after.riders.len() as u32;
    let mut skipped = Vec::new();
    for &w in &after.waitlist {
        if seated >= capacity {
            break;
        }
        let fact = input.riders.iter().find(|(id, _)| *id == w).cloned().unwrap_or((w, None));
        let may = rules::check_riders(&facts.home, &facts.bike, after.kind, after.duration_minutes, None, &[fact])
            .is_ok()
            && busy(&input.schedules, after, w).is_none();
        if !may {
            skipped.push(w);
            continue;
        }
        let promoted = RiderPromotedFromWaitlist { ride_id: after.ride_id, resident_id: w, skipped: skipped.clone() };
        d.push(ride_stream(after.ride_id), BookingEvent::from(promoted));
        for (stream, e) in schedule_events(&input.schedules, &rider_holds(after, w), &[])? {
            d.push(stream, e);
        }
        for other in &input.others {
            let overlaps = other.start < after.end() && after.start < other.end();
            if other.ride_id != after.ride_id
                && overlaps
                && other.waitlist.contains(&w)
                && matches!(other.status, RideStatus::PendingConfirmation | RideStatus::Booked)
            {
                for (stream, e) in leave_events(&input.schedules, other, w, "promoted_elsewhere") {
                    d.push(stream, e);
                }
            }
        }
        seated += 1;
    }
    Ok(())
}
