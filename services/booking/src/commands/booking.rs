//! Booking a ride (all three kinds; a functional round trip as two linked legs), and a
//! pilot claiming a care home's ride request, which books the ride under the same rules in
//! the same decision. Pure: facts, riders and schedules are loaded for it; personal fields
//! arrive sealed and ids arrive chosen.

use chrono::{DateTime, Duration, Utc};
use domain::events::{BookingEvent, FunctionalRoute, RideBooked, RideRequestClaimed};
use domain::types::{RideKind, RideRequestStatus, RideStatus, Sealed};
use domain::{Decision, DomainError};
use uuid::Uuid;

use super::requests::illegal as illegal_request;
use super::schedule::{Hold, Schedules, schedule_events};
use crate::facts::ResidentFact;
use crate::requests::{RideRequest, request_stream};
use crate::rides::{holds_of, ride_stream};
use crate::rules::{self, FactParts, Facts, Slot};
use crate::schedule::Holder;

/// A ride to book.
#[derive(Debug, Clone, PartialEq)]
pub struct BookRide {
    /// The new ride's id.
    pub ride_id: Uuid,
    /// The return leg's id (a functional round trip).
    pub return_id: Uuid,
    /// Trishaw.
    pub bike_id: Uuid,
    /// Pilot.
    pub pilot_id: Uuid,
    /// Start.
    pub start: DateTime<Utc>,
    /// Length.
    pub duration_minutes: u32,
    /// Roster.
    pub resident_ids: Vec<Uuid>,
    /// Kind.
    pub kind: RideKind,
    /// Event rides: minutes per trip.
    pub trip_minutes: Option<u32>,
    /// Functional rides: the route, sealed.
    pub route: Option<SealedRoute>,
    /// The request it fulfils.
    pub ride_request_id: Option<Uuid>,
    /// The role of who books (a pilot's booking may need the care home's confirmation).
    pub actor_role: String,
    /// An occurrence of a ride series: the series.
    pub ride_series_id: Option<Uuid>,
}

/// A functional ride's addresses, sealed under each leg's ride.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedRoute {
    /// Pickup (outbound).
    pub pickup: Sealed,
    /// Drop-off (outbound).
    pub dropoff: Sealed,
    /// The return leg of a round trip.
    pub return_leg: Option<ReturnLeg>,
}

/// The return leg of a functional round trip.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnLeg {
    /// Pickup (the outbound drop-off), sealed under the return ride.
    pub pickup: Sealed,
    /// Drop-off (the outbound pickup), sealed under the return ride.
    pub dropoff: Sealed,
    /// Its start (default: end + max(turnaround, 60 min)).
    pub start: Option<DateTime<Utc>>,
}

/// What a booking decides on.
#[derive(Debug, Clone, Default)]
pub struct BookInput {
    /// Trishaw, care home, chapter, pilot.
    pub facts: FactParts,
    /// The roster's residents.
    pub riders: Vec<(Uuid, Option<ResidentFact>)>,
    /// The schedule streams of the rides' holds.
    pub schedules: Schedules,
    /// Residents named in ride requests the booking pilot claimed at the care home (loaded
    /// for a pilot's own booking only).
    pub named: Vec<Uuid>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// The rides a booking creates (the return leg second), after the slot and roster rules.
pub fn legs(
    f: &Facts,
    riders: &[(Uuid, Option<ResidentFact>)],
    cmd: &BookRide,
    now: DateTime<Utc>,
) -> Result<Vec<RideBooked>, DomainError> {
    let slot = Slot { start: cmd.start, duration_minutes: cmd.duration_minutes };
    rules::check_slot(f, &slot, now)?;
    rules::check_riders(&f.home, &f.bike, cmd.kind, cmd.duration_minutes, cmd.trip_minutes, riders)?;
    let status = if f.home.requires_confirmation && cmd.actor_role == "pilot" {
        RideStatus::PendingConfirmation
    } else {
        RideStatus::Booked
    };
    let turnaround = f.home.turnaround_minutes;
    let booked = |ride_id: Uuid, start: DateTime<Utc>, route: Option<FunctionalRoute>| RideBooked {
        ride_id,
        kind: cmd.kind,
        status,
        chapter_id: f.home.chapter_id,
        carehome_id: f.home.carehome_id,
        bike_id: cmd.bike_id,
        pilot_id: cmd.pilot_id,
        start,
        duration_minutes: cmd.duration_minutes,
        turnaround_minutes: turnaround,
        riders: cmd.resident_ids.clone(),
        trip_minutes: cmd.trip_minutes,
        route,
        ride_request_id: cmd.ride_request_id,
        booked_at: Some(now),
        ride_series_id: cmd.ride_series_id,
    };
    let Some(route) = &cmd.route else { return Ok(vec![booked(cmd.ride_id, cmd.start, None)]) };
    let outbound = FunctionalRoute {
        pickup: route.pickup.clone(),
        dropoff: route.dropoff.clone(),
        leg: "outbound".into(),
        linked_ride_id: route.return_leg.as_ref().map(|_| cmd.return_id),
    };
    let mut out = vec![booked(cmd.ride_id, cmd.start, Some(outbound))];
    if let Some(back) = &route.return_leg {
        let back_start = back.start.unwrap_or_else(|| slot.end() + Duration::minutes(i64::from(turnaround.max(60))));
        if back_start < slot.end() {
            return Err(DomainError::invalid("/return_start", "must not be before the outbound leg ends"));
        }
        rules::check_slot(f, &Slot { start: back_start, duration_minutes: cmd.duration_minutes }, now)?;
        let route = FunctionalRoute {
            pickup: back.pickup.clone(),
            dropoff: back.dropoff.clone(),
            leg: "return".into(),
            linked_ride_id: Some(cmd.ride_id),
        };
        out.push(booked(cmd.return_id, back_start, Some(route)));
    }
    Ok(out)
}

/// The slots the new rides hold: trishaw (with turnaround), pilot and each rider.
pub fn holds(legs: &[RideBooked]) -> Vec<Hold> {
    let mut out = Vec::new();
    for leg in legs {
        let mut holders = vec![Holder::Bike(leg.bike_id), Holder::Pilot(leg.pilot_id)];
        holders.extend(leg.riders.iter().map(|r| Holder::Resident(*r)));
        out.extend(Hold::of(leg.ride_id, holds_of(&holders, leg.start, leg.duration_minutes, leg.turnaround_minutes)));
    }
    out
}

/// Books a ride: `RideBooked` on each new ride's stream and `SlotHeld` on every schedule
/// stream it holds, or the first rule or conflict that refuses it.
pub fn book(input: &BookInput, cmd: &BookRide) -> Result<Decision<BookingEvent>, DomainError> {
    let f = input.facts.facts()?;
    // A claim seats the request's residents; any other booking by a pilot is checked.
    if cmd.ride_request_id.is_none() {
        rules::check_pilot_seats(&f.home, &cmd.actor_role, &cmd.resident_ids, &input.named)?;
    }
    let legs = legs(&f, &input.riders, cmd, input.now)?;
    let mut d = Decision::in_tenant(Some(f.home.chapter_id));
    for leg in &legs {
        d.push(ride_stream(leg.ride_id), leg.clone());
    }
    for (stream, e) in schedule_events(&input.schedules, &holds(&legs), &[])? {
        d.push(stream, e);
    }
    Ok(d)
}

/// A pilot claims a ride request with a trishaw and a start inside its window.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The request.
    pub ride_request_id: Uuid,
    /// The new ride's id.
    pub ride_id: Uuid,
    /// Pilot.
    pub pilot_id: Uuid,
    /// Trishaw.
    pub bike_id: Uuid,
    /// Start.
    pub start: DateTime<Utc>,
    /// Who claims.
    pub actor_role: String,
}

/// What a claim decides on: the request and the booking's input.
#[derive(Debug, Clone, Default)]
pub struct ClaimInput {
    /// The request (`None`: no such request).
    pub request: Option<RideRequest>,
    /// The booking's facts, riders and schedules.
    pub book: BookInput,
}

/// The booking a claim makes of a request.
pub fn claim_booking(req: &RideRequest, c: &Claim) -> BookRide {
    BookRide {
        ride_id: c.ride_id,
        return_id: c.ride_id,
        bike_id: c.bike_id,
        pilot_id: c.pilot_id,
        start: c.start,
        duration_minutes: req.duration_minutes,
        resident_ids: req.resident_ids.clone(),
        kind: req.kind,
        trip_minutes: (req.kind == RideKind::Event).then_some(30),
        route: None,
        ride_request_id: Some(req.ride_request_id),
        actor_role: c.actor_role.clone(),
        ride_series_id: None,
    }
}

/// Claims an open request: the ride is booked and the request marked claimed in one
/// decision, so of two pilots claiming at once exactly one wins.
pub fn claim(input: &ClaimInput, c: &Claim) -> Result<Decision<BookingEvent>, DomainError> {
    let req = input.request.as_ref().ok_or_else(|| DomainError::NotFound("ride request".into()))?;
    if req.status != RideRequestStatus::Open {
        return Err(illegal_request(req, "claimed"));
    }
    let end = c.start + Duration::minutes(i64::from(req.duration_minutes));
    if c.start < req.window_from || end > req.window_to {
        return Err(DomainError::invalid("/start", "the ride must lie inside the request's window"));
    }
    let bike = input.book.facts.bike.as_ref().ok_or_else(|| DomainError::NotFound("trishaw".into()))?;
    if bike.carehome_id != req.carehome_id {
        return Err(DomainError::invalid("/bike_id", "the trishaw belongs to another care home"));
    }
    let mut d = book(&input.book, &claim_booking(req, c))?;
    let claimed = RideRequestClaimed { ride_request_id: c.ride_request_id, ride_id: c.ride_id, pilot_id: c.pilot_id };
    d.events.insert(1, (request_stream(c.ride_request_id), claimed.into()));
    Ok(d)
}
