//! Booking a ride (all three kinds; a functional round trip as two linked legs),
//! rescheduling it, and changing its roster: each decided from the facts booking has
//! seen and written with the schedule streams it holds.

use chrono::{DateTime, Duration, Utc};
use domain::events::{
    BookingEvent, FunctionalRoute, RideBooked, RideRescheduled, RiderAddedToRoster, RiderRemovedFromRoster,
};
use domain::types::{RideKind, RideStatus};
use servicekit::{CommandCtx, ServiceError, ServiceResult};
use uuid::Uuid;

use crate::rides::{Ride, holds_of, illegal};
use crate::rules::{self, Slot};
use crate::schedule::Holder;
use crate::service::{Attempt, Booking, Plan, expect, ride_stream, ride_subject};

/// A request to book.
#[derive(Debug, Clone, PartialEq)]
pub struct BookRide {
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
    /// Functional rides: addresses in clear (sealed before they are stored).
    pub functional: Option<Functional>,
    /// The request it fulfils.
    pub ride_request_id: Option<Uuid>,
}

/// A functional ride's route.
#[derive(Debug, Clone, PartialEq)]
pub struct Functional {
    /// Pickup address.
    pub pickup: String,
    /// Drop-off address.
    pub dropoff: String,
    /// Book a return leg.
    pub round_trip: bool,
    /// Start of the return leg (default: end + max(turnaround, 60 min)).
    pub return_start: Option<DateTime<Utc>>,
}

/// The rides a booking created (the return leg of a round trip second).
#[derive(Debug, Clone)]
pub struct Booked {
    /// The ride.
    pub ride: (Ride, u64),
    /// The return leg.
    pub return_ride: Option<(Ride, u64)>,
}

impl Booking {
    /// Books a ride; a retry of the same command returns the same ride.
    pub async fn book(
        &self,
        ctx: &CommandCtx,
        req: BookRide,
        extra: Vec<(String, eventlog::ExpectedVersion, Vec<BookingEvent>)>,
    ) -> ServiceResult<Booked> {
        let ride_id = ctx.new_object_id("ride");
        let return_id = ctx.new_object_id("ride-return");
        if self.already_done(ctx, &ride_stream(ride_id)).await? {
            return self
                .booked(ride_id, req.functional.as_ref().is_some_and(|f| f.round_trip).then_some(return_id))
                .await;
        }
        let now = Utc::now();
        let facts = self.facts(req.bike_id, req.pilot_id).await?;
        let slot = Slot { start: req.start, duration_minutes: req.duration_minutes };
        rules::check_slot(&facts, &slot, now)?;
        let riders = self.residents(&req.resident_ids).await?;
        rules::check_riders(&facts.home, &facts.bike, req.kind, req.duration_minutes, req.trip_minutes, &riders)?;
        let status = if facts.home.requires_confirmation && ctx.actor.role == "pilot" {
            RideStatus::PendingConfirmation
        } else {
            RideStatus::Booked
        };
        let turnaround = facts.home.turnaround_minutes;
        let booked = |ride_id: Uuid, start: DateTime<Utc>, route: Option<FunctionalRoute>| RideBooked {
            ride_id,
            kind: req.kind,
            status,
            chapter_id: facts.home.chapter_id,
            carehome_id: facts.home.carehome_id,
            bike_id: req.bike_id,
            pilot_id: req.pilot_id,
            start,
            duration_minutes: req.duration_minutes,
            turnaround_minutes: turnaround,
            riders: req.resident_ids.clone(),
            trip_minutes: req.trip_minutes,
            route,
            ride_request_id: req.ride_request_id,
            booked_at: Some(now),
        };
        let mut legs = Vec::new();
        match &req.functional {
            None => legs.push(booked(ride_id, req.start, None)),
            Some(f) => {
                let seal = |subject: Uuid, field: &'static str, text: String| {
                    let keys = self.keys.clone();
                    async move { keys.seal(&ride_subject(subject), field, &text).await }
                };
                let internal = ServiceError::from;
                let linked = f.round_trip.then_some(return_id);
                let out = FunctionalRoute {
                    pickup: seal(ride_id, "pickup", f.pickup.clone()).await.map_err(internal)?,
                    dropoff: seal(ride_id, "dropoff", f.dropoff.clone()).await.map_err(internal)?,
                    leg: "outbound".into(),
                    linked_ride_id: linked,
                };
                legs.push(booked(ride_id, req.start, Some(out)));
                if f.round_trip {
                    let back_start =
                        f.return_start.unwrap_or_else(|| slot.end() + Duration::minutes(i64::from(turnaround.max(60))));
                    let back_slot = Slot { start: back_start, duration_minutes: req.duration_minutes };
                    if back_start < slot.end() {
                        return Err(ServiceError::invalid("/return_start", "must not be before the outbound leg ends"));
                    }
                    rules::check_slot(&facts, &back_slot, now)?;
                    let back = FunctionalRoute {
                        pickup: seal(return_id, "pickup", f.dropoff.clone()).await.map_err(internal)?,
                        dropoff: seal(return_id, "dropoff", f.pickup.clone()).await.map_err(internal)?,
                        leg: "return".into(),
                        linked_ride_id: Some(ride_id),
                    };
                    legs.push(booked(return_id, back_start, Some(back)));
                }
            }
        }
        let tenant = Some(facts.home.chapter_id);
        let created: Vec<Uuid> = legs.iter().map(|l| l.ride_id).collect();
        self.write(ctx, || async {
            if self.already_done(ctx, &ride_stream(ride_id)).await? {
                return Ok(Attempt::Done(()));
            }
            let mut plan = Plan { tenant, ..Plan::default() };
            for leg in &legs {
                let mut holders = vec![Holder::Bike(leg.bike_id), Holder::Pilot(leg.pilot_id)];
                holders.extend(leg.riders.iter().map(|r| Holder::Resident(*r)));
                for (stream, s, e) in holds_of(&holders, leg.start, leg.duration_minutes, leg.turnaround_minutes) {
                    plan.hold.push((stream, leg.ride_id, s, e));
                }
                plan.streams.push((
                    ride_stream(leg.ride_id),
                    eventlog::ExpectedVersion::NoStream,
                    vec![leg.clone().into()],
                ));
            }
            plan.streams.extend(extra.iter().cloned());
            Ok(Attempt::Write(plan, ()))
        })
        .await?;
        self.booked(created[0], created.get(1).copied()).await
    }

    async fn booked(&self, ride_id: Uuid, return_id: Option<Uuid>) -> ServiceResult<Booked> {
        let main = self.load_ride(ride_id).await?;
        let ride = (main.state.expect("loaded"), main.version);
        let return_ride = match return_id {
            Some(id) => self.load_ride(id).await.ok().map(|l| (l.state.expect("loaded"), l.version)),
            None => None,
        };
        Ok(Booked { ride, return_ride })
    }

    /// Moves a ride to another slot under the booking rules.
    pub async fn reschedule(
        &self,
        ctx: &CommandCtx,
        ride_id: Uuid,
        start: DateTime<Utc>,
        duration_minutes: u32,
    ) -> ServiceResult<()> {
        self.write(ctx, || async {
            let stream = ride_stream(ride_id);
            if self.already_done(ctx, &stream).await? {
                return Ok(Attempt::Done(()));
            }
            let loaded = self.load_ride(ride_id).await?;
            ctx.check_version(loaded.version)?;
            let ride = loaded.state.expect("loaded");
            if !matches!(ride.status, RideStatus::PendingConfirmation | RideStatus::Booked) {
                return Err(illegal(&ride, "rescheduled"));
            }
            let facts = self.facts(ride.bike_id, ride.pilot_id).await?;
            rules::check_slot(&facts, &Slot { start, duration_minutes }, Utc::now())?;
            if ride.kind == RideKind::Event {
                let riders = self.residents(&ride.riders.iter().map(|r| r.resident_id).collect::<Vec<_>>()).await?;
                rules::check_riders(&facts.home, &facts.bike, ride.kind, duration_minutes, ride.trip_minutes, &riders)?;
            }
            let mut moved = ride.clone();
            moved.start = start;
            moved.duration_minutes = duration_minutes;
            let mut plan = Plan { tenant: Some(ride.chapter_id), ..Plan::default() };
            plan.release = ride.holds().into_iter().map(|(s, ..)| (s, ride_id)).collect();
            plan.hold = moved.holds().into_iter().map(|(s, a, b)| (s, ride_id, a, b)).collect();
            plan.streams.push((
                stream,
                expect(loaded.version),
                vec![RideRescheduled { ride_id, start, duration_minutes }.into()],
            ));
            Ok(Attempt::Write(plan, ()))
        })
        .await
    }

    /// Puts a resident on a ride's roster under the booking rules.
    pub async fn add_rider(&self, ctx: &CommandCtx, ride_id: Uuid, resident_id: Uuid) -> ServiceResult<()> {
        self.write(ctx, || async {
            let stream = ride_stream(ride_id);
            if self.already_done(ctx, &stream).await? {
                return Ok(Attempt::Done(()));
            }
            let loaded = self.load_ride(ride_id).await?;
            ctx.check_version(loaded.version)?;
            let ride = loaded.state.expect("loaded");
            if !matches!(ride.status, RideStatus::PendingConfirmation | RideStatus::Booked) {
                return Err(illegal(&ride, "given riders"));
            }
            if ride.has_rider(resident_id) {
                return Ok(Attempt::Done(()));
            }
            let facts = self.facts(ride.bike_id, ride.pilot_id).await?;
            let mut ids: Vec<Uuid> = ride.riders.iter().map(|r| r.resident_id).collect();
            ids.push(resident_id);
            let riders = self.residents(&ids).await?;
            rules::check_riders(
                &facts.home,
                &facts.bike,
                ride.kind,
                ride.duration_minutes,
                ride.trip_minutes,
                &riders,
            )?;
            let mut plan = Plan { tenant: Some(ride.chapter_id), ..Plan::default() };
            plan.hold = holds_of(&[Holder::Resident(resident_id)], ride.start, ride.duration_minutes, 0)
                .into_iter()
                .map(|(s, a, b)| (s, ride_id, a, b))
                .collect();
            plan.streams.push((
                stream,
                expect(loaded.version),
                vec![RiderAddedToRoster { ride_id, resident_id }.into()],
            ));
            Ok(Attempt::Write(plan, ()))
        })
        .await
    }

    /// Takes a resident off a ride's roster (`cause`: `removed`, `consent_withdrawn`, ...).
    pub async fn remove_rider(
        &self,
        ctx: &CommandCtx,
        ride_id: Uuid,
        resident_id: Uuid,
        cause: &str,
    ) -> ServiceResult<()> {
        self.write(ctx, || async {
            let stream = ride_stream(ride_id);
            if self.already_done(ctx, &stream).await? {
                return Ok(Attempt::Done(()));
            }
            let loaded = self.load_ride(ride_id).await?;
            ctx.check_version(loaded.version)?;
            let ride = loaded.state.expect("loaded");
            if !ride.has_rider(resident_id) {
                return Err(ServiceError::NotFound("rider on this ride's roster".into()));
            }
            if !matches!(ride.status, RideStatus::PendingConfirmation | RideStatus::Booked) {
                return Err(illegal(&ride, "changed"));
            }
            let mut plan = Plan { tenant: Some(ride.chapter_id), ..Plan::default() };
            plan.release = holds_of(&[Holder::Resident(resident_id)], ride.start, ride.duration_minutes, 0)
                .into_iter()
                .map(|(s, ..)| (s, ride_id))
                .collect();
            let e = RiderRemovedFromRoster { ride_id, resident_id, cause: cause.into() };
            plan.streams.push((stream, expect(loaded.version), vec![e.into()]));
            Ok(Attempt::Write(plan, ()))
        })
        .await
    }

    /// Runs a life-cycle decision that touches only the ride's stream (and, for
    /// cancellation, releases its slots).
    pub async fn transition(
        &self,
        ctx: &CommandCtx,
        ride_id: Uuid,
        decide: impl Fn(&Ride) -> ServiceResult<Vec<(String, BookingEvent)>>,
    ) -> ServiceResult<()> {
        self.write(ctx, || async {
            let stream = ride_stream(ride_id);
            if self.already_done(ctx, &stream).await? {
                return Ok(Attempt::Done(()));
            }
            let loaded = self.load_ride(ride_id).await?;
            ctx.check_version(loaded.version)?;
            let ride = loaded.state.expect("loaded");
            let events = decide(&ride)?;
            if events.is_empty() {
                return Ok(Attempt::Done(()));
            }
            let mut plan = Plan { tenant: Some(ride.chapter_id), ..Plan::default() };
            let mut own = Vec::new();
            for (s, e) in events {
                match e {
                    BookingEvent::SlotReleased(r) => plan.release.push((s, r.ride_id)),
                    other if s == stream => own.push(other),
                    _ => return Err(ServiceError::Internal(format!("unexpected stream {s}"))),
                }
            }
            plan.streams.push((stream, expect(loaded.version), own));
            Ok(Attempt::Write(plan, ()))
        })
        .await
    }
}

/// Wraps events of the ride's own stream for [`Booking::transition`].
pub fn on_ride(ride: &Ride, events: Vec<BookingEvent>) -> Vec<(String, BookingEvent)> {
    events.into_iter().map(|e| (ride_stream(ride.ride_id), e)).collect()
}
