//! The ride aggregate: its state folded from `ride-<id>`, and the life-cycle decisions that
//! need nothing but that state (confirm, start, check in, complete, no-show, cancel).
//! `pending_confirmation → booked → started → completed`; `cancelled` and `no_show` from
//! any state before `completed`; anything else is `illegal-transition`. Pure.

use chrono::{DateTime, Duration, Utc};
use domain::events::*;
use domain::types::{CancellationReason, RideKind, RideStatus, Sealed};
use serde::{Deserialize, Serialize};
use servicekit::{Aggregate, ErrorCode, ServiceError};
use uuid::Uuid;

use crate::schedule::{self, Holder};

/// A rider on the roster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rider {
    /// The resident.
    pub resident_id: Uuid,
    /// Checked in.
    pub checked_in: bool,
}

/// How a ride was cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cancellation {
    /// Reason code.
    pub reason: CancellationReason,
    /// Role of who cancelled.
    pub by_role: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Sealed note.
    pub note: Option<Sealed>,
    /// The event that caused a cascade.
    pub caused_by: Option<Uuid>,
}

/// A ride as its stream tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ride {
    /// Id.
    pub ride_id: Uuid,
    /// Kind.
    pub kind: RideKind,
    /// Status.
    pub status: RideStatus,
    /// Chapter.
    pub chapter_id: Uuid,
    /// Care home.
    pub carehome_id: Uuid,
    /// Trishaw.
    pub bike_id: Uuid,
    /// Pilot.
    pub pilot_id: Uuid,
    /// Start.
    pub start: DateTime<Utc>,
    /// Length.
    pub duration_minutes: u32,
    /// Trishaw turnaround held after the ride.
    pub turnaround_minutes: u32,
    /// Roster.
    pub riders: Vec<Rider>,
    /// Event rides: minutes per trip.
    pub trip_minutes: Option<u32>,
    /// Functional rides: where.
    pub route: Option<FunctionalRoute>,
    /// The request it fulfils.
    pub ride_request_id: Option<Uuid>,
    /// Cancellation.
    pub cancellation: Option<Cancellation>,
    /// Started.
    pub started_at: Option<DateTime<Utc>>,
    /// Ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Kilometres.
    pub distance_km: Option<f64>,
    /// Condition of the trishaw afterwards.
    pub bike_condition: Option<String>,
    /// Sealed story.
    pub story: Option<Sealed>,
    /// When it was booked.
    pub booked_at: DateTime<Utc>,
}

impl Ride {
    /// When the slot ends.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::minutes(i64::from(self.duration_minutes))
    }

    /// Whether the ride still holds its slots.
    pub fn holds_slots(&self) -> bool {
        !matches!(self.status, RideStatus::Cancelled)
    }

    /// The schedule streams the ride holds, with the interval it holds on each.
    pub fn holds(&self) -> Vec<(String, DateTime<Utc>, DateTime<Utc>)> {
        let mut holders = vec![Holder::Bike(self.bike_id), Holder::Pilot(self.pilot_id)];
        holders.extend(self.riders.iter().map(|r| Holder::Resident(r.resident_id)));
        holds_of(&holders, self.start, self.duration_minutes, self.turnaround_minutes)
    }

    /// Whether `resident` is on the roster.
    pub fn has_rider(&self, resident: Uuid) -> bool {
        self.riders.iter().any(|r| r.resident_id == resident)
    }

    /// The most riders the ride can take: `seats`, or for an event block `seats` per trip.
    pub fn capacity(kind: RideKind, seats: u32, duration_minutes: u32, trip_minutes: Option<u32>) -> u32 {
        match kind {
            RideKind::Event => seats * (duration_minutes / trip_minutes.unwrap_or(duration_minutes).max(1)).max(1),
            _ => seats,
        }
    }
}

/// The schedule streams and intervals for holders of one slot.
pub fn holds_of(
    holders: &[Holder],
    start: DateTime<Utc>,
    duration_minutes: u32,
    turnaround_minutes: u32,
) -> Vec<(String, DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    for h in holders {
        let (s, e) = schedule::held_interval(*h, start, duration_minutes, turnaround_minutes);
        for day in schedule::days(s, e) {
            out.push((h.stream(day), s, e));
        }
    }
    out
}

impl Aggregate for Ride {
    type Event = BookingEvent;

    fn apply(state: Option<Self>, event: &BookingEvent) -> Option<Self> {
        use BookingEvent as E;
        if let E::RideBooked(b) = event {
            return Some(Ride {
                ride_id: b.ride_id,
                kind: b.kind,
                status: b.status,
                chapter_id: b.chapter_id,
                carehome_id: b.carehome_id,
                bike_id: b.bike_id,
                pilot_id: b.pilot_id,
                start: b.start,
                duration_minutes: b.duration_minutes,
                turnaround_minutes: b.turnaround_minutes,
                riders: b.riders.iter().map(|r| Rider { resident_id: *r, checked_in: false }).collect(),
                trip_minutes: b.trip_minutes,
                route: b.route.clone(),
                ride_request_id: b.ride_request_id,
                cancellation: None,
                started_at: None,
                ended_at: None,
                distance_km: None,
                bike_condition: None,
                story: None,
                booked_at: b.booked_at.unwrap_or(b.start),
            });
        }
        let mut r = state?;
        match event {
            E::RideConfirmed(_) => r.status = RideStatus::Booked,
            E::RiderAddedToRoster(a) => r.riders.push(Rider { resident_id: a.resident_id, checked_in: false }),
            E::RiderRemovedFromRoster(a) => r.riders.retain(|x| x.resident_id != a.resident_id),
            E::RideRescheduled(s) => {
                r.start = s.start;
                r.duration_minutes = s.duration_minutes;
            }
            E::RideCancelled(c) => {
                r.status = RideStatus::Cancelled;
                r.cancellation = Some(Cancellation {
                    reason: c.reason,
                    by_role: c.by_role.clone(),
                    at: c.at.unwrap_or(r.start),
                    note: c.note.clone(),
                    caused_by: c.caused_by,
                });
            }
            E::RideStarted(s) => {
                r.status = RideStatus::Started;
                r.started_at = Some(s.at);
            }
            E::RiderCheckedIn(c) => {
                if let Some(x) = r.riders.iter_mut().find(|x| x.resident_id == c.resident_id) {
                    x.checked_in = true;
                }
            }
            E::RideCompleted(c) => {
                r.status = RideStatus::Completed;
                r.ended_at = Some(c.ended_at);
                r.distance_km = Some(c.distance_km);
                r.bike_condition = c.bike_condition.clone();
                r.story = c.story.clone();
            }
            E::RideMarkedNoShow(_) => r.status = RideStatus::NoShow,
            _ => {}
        }
        Some(r)
    }

    fn tenant(&self) -> Option<Uuid> {
        Some(self.chapter_id)
    }
}

/// The refusal of a transition the life cycle does not allow.
pub fn illegal(ride: &Ride, action: &str) -> ServiceError {
    ServiceError::conflict(ErrorCode::IllegalTransition, format!("a {} ride cannot be {action}", ride.status), None)
}

/// `pending_confirmation → booked`.
pub fn confirm(ride: &Ride) -> Result<Vec<BookingEvent>, ServiceError> {
    match ride.status {
        RideStatus::PendingConfirmation => Ok(vec![RideConfirmed { ride_id: ride.ride_id }.into()]),
        _ => Err(illegal(ride, "confirmed")),
    }
}

/// `booked → started`.
pub fn start(ride: &Ride, now: DateTime<Utc>) -> Result<Vec<BookingEvent>, ServiceError> {
    match ride.status {
        RideStatus::Booked => Ok(vec![RideStarted { ride_id: ride.ride_id, at: now }.into()]),
        _ => Err(illegal(ride, "started")),
    }
}

/// Checks a rider in (a second check-in changes nothing).
pub fn check_in(ride: &Ride, resident: Uuid) -> Result<Vec<BookingEvent>, ServiceError> {
    if !matches!(ride.status, RideStatus::Booked | RideStatus::Started) {
        return Err(illegal(ride, "checked in to"));
    }
    match ride.riders.iter().find(|r| r.resident_id == resident) {
        None => Err(ServiceError::NotFound("rider on this ride's roster".into())),
        Some(r) if r.checked_in => Ok(vec![]),
        Some(_) => Ok(vec![RiderCheckedIn { ride_id: ride.ride_id, resident_id: resident }.into()]),
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
    /// Sealed story.
    pub story: Option<Sealed>,
}

/// `started → completed`.
pub fn complete(ride: &Ride, c: Completion) -> Result<Vec<BookingEvent>, ServiceError> {
    if ride.status != RideStatus::Started {
        return Err(illegal(ride, "completed"));
    }
    if ride.started_at.is_some_and(|s| c.ended_at < s) {
        return Err(ServiceError::invalid("/ended_at", "must not be before the ride started"));
    }
    Ok(vec![
        RideCompleted {
            ride_id: ride.ride_id,
            ended_at: c.ended_at,
            distance_km: c.distance_km,
            bike_condition: c.bike_condition,
            story: c.story,
        }
        .into(),
    ])
}

/// Any state before `completed` → `no_show`.
pub fn no_show(ride: &Ride) -> Result<Vec<BookingEvent>, ServiceError> {
    if !ride.status.is_active() {
        return Err(illegal(ride, "marked no-show"));
    }
    Ok(vec![RideMarkedNoShow { ride_id: ride.ride_id }.into()])
}

/// Any state before `completed` → `cancelled`, releasing every slot the ride holds.
pub fn cancel(
    ride: &Ride,
    reason: CancellationReason,
    by_role: &str,
    note: Option<Sealed>,
    caused_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Vec<(String, BookingEvent)>, ServiceError> {
    if !ride.status.is_active() {
        return Err(illegal(ride, "cancelled"));
    }
    let mut out = vec![(
        format!("ride-{}", ride.ride_id),
        RideCancelled { ride_id: ride.ride_id, reason, by_role: by_role.into(), note, caused_by, at: Some(now) }.into(),
    )];
    out.extend(release(ride));
    Ok(out)
}

/// `SlotReleased` on every schedule stream the ride holds.
pub fn release(ride: &Ride) -> Vec<(String, BookingEvent)> {
    ride.holds().into_iter().map(|(stream, _, _)| (stream, SlotReleased { ride_id: ride.ride_id }.into())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn booked(status: RideStatus) -> Ride {
        let e = BookingEvent::RideBooked(RideBooked {
            ride_id: Uuid::from_u128(1),
            kind: RideKind::Pleasure,
            status,
            chapter_id: Uuid::from_u128(2),
            carehome_id: Uuid::from_u128(3),
            bike_id: Uuid::from_u128(4),
            pilot_id: Uuid::from_u128(5),
            start: t("2027-05-03T10:00:00Z"),
            duration_minutes: 60,
            turnaround_minutes: 15,
            riders: vec![Uuid::from_u128(6)],
            trip_minutes: None,
            route: None,
            ride_request_id: None,
            booked_at: Some(t("2027-05-01T10:00:00Z")),
        });
        Ride::apply(None, &e).unwrap()
    }

    fn after(ride: Ride, events: Vec<BookingEvent>) -> Ride {
        events.iter().try_fold(ride, |s, e| Ride::apply(Some(s), e)).unwrap()
    }

    #[test]
    fn the_life_cycle_runs_forward_only() {
        let r = booked(RideStatus::PendingConfirmation);
        assert_eq!(start(&r, t("2027-05-03T10:00:00Z")).unwrap_err().code(), ErrorCode::IllegalTransition);
        let r = after(r.clone(), confirm(&r).unwrap());
        assert_eq!(r.status, RideStatus::Booked);
        assert_eq!(confirm(&r).unwrap_err().code(), ErrorCode::IllegalTransition);
        let r = after(r.clone(), start(&r, t("2027-05-03T10:02:00Z")).unwrap());
        let done =
            Completion { ended_at: t("2027-05-03T10:55:00Z"), distance_km: 7.5, bike_condition: None, story: None };
        let r = after(r.clone(), complete(&r, done.clone()).unwrap());
        assert_eq!(r.status, RideStatus::Completed);
        assert_eq!(complete(&r, done).unwrap_err().code(), ErrorCode::IllegalTransition);
        assert_eq!(no_show(&r).unwrap_err().code(), ErrorCode::IllegalTransition);
        let err = cancel(&r, CancellationReason::Rider, "pilot", None, None, t("2027-05-03T11:00:00Z")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::IllegalTransition);
    }

    #[test]
    fn cancelling_releases_every_slot_and_stays_final() {
        let r = booked(RideStatus::Booked);
        let events =
            cancel(&r, CancellationReason::Weather, "chapter_admin", None, None, t("2027-05-02T08:00:00Z")).unwrap();
        // ride stream + bike day + pilot day + one resident day
        assert_eq!(events.len(), 4);
        assert!(events[1..].iter().all(|(_, e)| matches!(e, BookingEvent::SlotReleased(_))));
        let r = after(r, events.into_iter().map(|(_, e)| e).collect());
        assert_eq!(r.status, RideStatus::Cancelled);
        assert_eq!(r.cancellation.as_ref().unwrap().reason, CancellationReason::Weather);
        let again = cancel(&r, CancellationReason::Weather, "x", None, None, t("2027-05-02T08:00:00Z"));
        assert_eq!(again.unwrap_err().code(), ErrorCode::IllegalTransition);
    }

    #[test]
    fn no_show_is_reachable_before_completion() {
        for s in [RideStatus::PendingConfirmation, RideStatus::Booked, RideStatus::Started] {
            assert!(no_show(&booked(s)).is_ok());
        }
    }

    #[test]
    fn check_in_needs_a_rider_on_the_roster_once() {
        let r = booked(RideStatus::Booked);
        assert!(matches!(check_in(&r, Uuid::from_u128(99)), Err(ServiceError::NotFound(_))));
        let r = after(r.clone(), check_in(&r, Uuid::from_u128(6)).unwrap());
        assert!(r.riders[0].checked_in);
        assert!(check_in(&r, Uuid::from_u128(6)).unwrap().is_empty());
    }

    #[test]
    fn completion_cannot_end_before_the_start() {
        let r = booked(RideStatus::Booked);
        let r = after(r.clone(), start(&r, t("2027-05-03T10:00:00Z")).unwrap());
        let early =
            Completion { ended_at: t("2027-05-03T09:00:00Z"), distance_km: 1.0, bike_condition: None, story: None };
        assert!(matches!(complete(&r, early), Err(ServiceError::Invalid(_))));
    }

    #[test]
    fn a_ride_holds_its_trishaw_with_turnaround() {
        let r = booked(RideStatus::Booked);
        let holds = r.holds();
        assert_eq!(holds.len(), 3);
        assert!(holds[0].0.starts_with("bikeday-"));
        assert_eq!(holds[0].2, t("2027-05-03T11:15:00Z"));
        assert_eq!(holds[1].2, t("2027-05-03T11:00:00Z"));
        assert_eq!(Ride::capacity(RideKind::Event, 2, 120, Some(30)), 8);
        assert_eq!(Ride::capacity(RideKind::Pleasure, 2, 120, None), 2);
    }
}
