//! Ride series as pure deciders: planning one, booking one date of it (a ride under every
//! booking rule, or the rule it broke recorded once), cancelling it from a date (its rides
//! from then on cancelled in the same append) and stopping it at a retired trishaw or pilot.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use domain::events::{
    BookingEvent, Recurrence, RideSeriesCancelled, RideSeriesOccurrenceBooked, RideSeriesOccurrenceSkipped,
    RideSeriesPlanned,
};
use domain::localtime;
use domain::types::{
    BikeStatus, CancellationReason, ConsentScope, LocalTime, PilotStatus, ResidentStatus, RideKind, RideStatus, Sealed,
    Weekday,
};
use domain::{Decision, DomainError};
use uuid::Uuid;

use super::booking::{self as book_cmd, BookInput, BookRide};
use super::rides::{self as rides_cmd, RideInput};
use crate::facts::ResidentFact;
use crate::rules::{self, FactParts};
use crate::series::{MAX_SPAN_MONTHS, RideSeries, occurrence_id, series_stream};

/// A series to plan (validated field by field before: weekdays, interval, count).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSeries {
    /// The new series' id.
    pub ride_series_id: Uuid,
    /// Trishaw.
    pub bike_id: Uuid,
    /// Pilot.
    pub pilot_id: Uuid,
    /// The first occurrence.
    pub start: DateTime<Utc>,
    /// Length.
    pub duration_minutes: u32,
    /// Roster.
    pub resident_ids: Vec<Uuid>,
    /// Kind (`pleasure` or `event`).
    pub kind: RideKind,
    /// Event rides: minutes per trip.
    pub trip_minutes: Option<u32>,
    /// How it recurs.
    pub recurrence: Recurrence,
    /// Who plans it.
    pub actor_role: String,
}

/// What planning decides on.
#[derive(Debug, Clone, Default)]
pub struct PlanInput {
    /// Trishaw, care home, chapter, pilot.
    pub facts: FactParts,
    /// The roster's residents.
    pub riders: Vec<(Uuid, Option<ResidentFact>)>,
    /// Residents named in requests the planning pilot claimed at the care home.
    pub named: Vec<Uuid>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// Plans a series: `RideSeriesPlanned`, its local time and zone taken from the first
/// occurrence in the care home's zone. Its dates are booked one by one afterwards.
pub fn plan(input: &PlanInput, cmd: &PlanSeries) -> Result<Decision<BookingEvent>, DomainError> {
    let f = input.facts.facts()?;
    if f.pilot.chapter_id != f.home.chapter_id {
        return Err(DomainError::NotFound("pilot".into()));
    }
    rules::check_pilot_seats(&f.home, &cmd.actor_role, &cmd.resident_ids, &input.named)?;
    rules::check_riders(&f.home, &f.bike, cmd.kind, cmd.duration_minutes, cmd.trip_minutes, &input.riders)?;
    let tz = f.timezone();
    let local = cmd.start.with_timezone(&tz);
    let first = local.date_naive();
    if !cmd.recurrence.weekdays.contains(&Weekday::from(first.weekday())) {
        return Err(DomainError::invalid(
            "/recurrence/weekdays",
            format!("the start falls on a {} in {tz}: it must be one of the weekdays", Weekday::from(first.weekday())),
        ));
    }
    if let Some(until) = cmd.recurrence.until {
        if until < first {
            return Err(DomainError::invalid("/recurrence/until", "must not be before the start's date"));
        }
        if first.checked_add_months(chrono::Months::new(MAX_SPAN_MONTHS)).is_none_or(|last| until > last) {
            return Err(DomainError::invalid("/recurrence/until", "must be at most two years after the start"));
        }
    }
    let minutes = local.time().signed_duration_since(chrono::NaiveTime::MIN).num_minutes();
    let local_time = LocalTime::from_minutes(minutes as u32).ok_or_else(|| DomainError::invalid("/start", "bad"))?;
    let planned = RideSeriesPlanned {
        ride_series_id: cmd.ride_series_id,
        chapter_id: f.home.chapter_id,
        carehome_id: f.home.carehome_id,
        bike_id: cmd.bike_id,
        pilot_id: cmd.pilot_id,
        start: localtime::instant(tz, first, local_time, false),
        local_time,
        timezone: tz.name().to_owned(),
        duration_minutes: cmd.duration_minutes,
        riders: cmd.resident_ids.clone(),
        kind: cmd.kind,
        trip_minutes: cmd.trip_minutes,
        recurrence: cmd.recurrence.clone(),
        planned_by_role: cmd.actor_role.clone(),
        planned_at: input.now,
    };
    Ok(Decision::on(series_stream(cmd.ride_series_id), vec![planned.into()], Some(f.home.chapter_id)))
}

/// What booking one date decides on: the series and the booking's input for that date.
#[derive(Debug, Clone, Default)]
pub struct OccurrenceInput {
    /// The series (`None`: no such series).
    pub series: Option<RideSeries>,
    /// The plan's riders as booking now knows them.
    pub riders: Vec<(Uuid, Option<ResidentFact>)>,
    /// The booking's facts, riders and schedules.
    pub book: BookInput,
}

/// The booking of a date of the series (its ride id derived from series and date; a
/// pilot's plan books as the pilot, so the care home's confirmation applies). Its roster is
/// the plan's riders who still live at the care home with consent to ride: a resident who
/// moved out, withdrew consent or was erased leaves the series' future rosters as it
/// leaves every future roster (invariant 7); `riders` are the plan's riders' facts.
pub fn occurrence_booking(s: &RideSeries, date: NaiveDate, riders: &[(Uuid, Option<ResidentFact>)]) -> BookRide {
    let still = |id: &Uuid| {
        riders.iter().any(|(r, f)| {
            r == id
                && f.as_ref().is_some_and(|f| {
                    f.carehome_id == s.plan.carehome_id
                        && f.status == ResidentStatus::LivingHere
                        && f.consent.contains(&ConsentScope::Rides)
                })
        })
    };
    let ride_id = occurrence_id(s.plan.ride_series_id, date);
    BookRide {
        ride_id,
        return_id: ride_id,
        bike_id: s.plan.bike_id,
        pilot_id: s.plan.pilot_id,
        start: s.start_on(date),
        duration_minutes: s.plan.duration_minutes,
        resident_ids: s.plan.riders.iter().copied().filter(still).collect(),
        kind: s.plan.kind,
        trip_minutes: s.plan.trip_minutes,
        route: None,
        ride_request_id: None,
        // The riders' rule for pilots was checked when the series was planned.
        actor_role: s.plan.planned_by_role.clone(),
        ride_series_id: Some(s.plan.ride_series_id),
    }
}

/// Books one date of a series: the ride and `RideSeriesOccurrenceBooked`, or, when a rule
/// refuses it, `RideSeriesOccurrenceSkipped` with the rule's code (not retried). A date
/// already booked or skipped, cancelled, or not of the series is nothing to do. A retired
/// trishaw or pilot stops the series from that date.
pub fn occurrence(input: &OccurrenceInput, date: NaiveDate) -> Result<Decision<BookingEvent>, DomainError> {
    let s = input.series.as_ref().ok_or_else(|| DomainError::NotFound("ride series".into()))?;
    if s.dates.contains_key(&date) || s.cancelled_on(date) || !s.recurs_on(date) {
        return Ok(Decision::nothing());
    }
    let facts = &input.book.facts;
    if facts.bike.as_ref().is_some_and(|b| b.status == BikeStatus::Retired) {
        return Ok(stop(s, date, CancellationReason::Equipment, None, input.book.now));
    }
    if facts.pilot.as_ref().is_some_and(|p| matches!(p.status, PilotStatus::Retired | PilotStatus::Erased)) {
        return Ok(stop(s, date, CancellationReason::Volunteer, None, input.book.now));
    }
    let series = series_stream(s.plan.ride_series_id);
    let cmd = occurrence_booking(s, date, &input.riders);
    match book_cmd::book(&input.book, &cmd) {
        Ok(mut d) => {
            let booked =
                RideSeriesOccurrenceBooked { ride_series_id: s.plan.ride_series_id, date, ride_id: cmd.ride_id };
            d.push(series, booked);
            Ok(d)
        }
        Err(DomainError::PreconditionFailed { current_version }) => {
            Err(DomainError::PreconditionFailed { current_version })
        }
        Err(e) => {
            let conflict_with = match &e {
                DomainError::Conflict { conflict_with, .. } => *conflict_with,
                _ => None,
            };
            let skipped = RideSeriesOccurrenceSkipped {
                ride_series_id: s.plan.ride_series_id,
                date,
                code: e.code().as_str().to_owned(),
                conflict_with,
            };
            Ok(Decision::on(series, vec![skipped.into()], Some(s.plan.chapter_id)))
        }
    }
}

/// The series stops from `from` (the system's doing: its trishaw or pilot retired); the
/// rides already booked are cancelled by the retirement's own cascade.
pub fn stop(
    s: &RideSeries,
    from: NaiveDate,
    reason: CancellationReason,
    caused_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> Decision<BookingEvent> {
    if s.cancellation.as_ref().is_some_and(|c| c.from <= from) {
        return Decision::nothing();
    }
    let stopped = RideSeriesCancelled {
        ride_series_id: s.plan.ride_series_id,
        from,
        reason,
        by_role: "system".into(),
        note: None,
        caused_by,
        at: now,
        rides: Vec::new(),
    };
    Decision::on(series_stream(s.plan.ride_series_id), vec![stopped.into()], Some(s.plan.chapter_id))
}

/// A series cancelled from a date.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelSeries {
    /// The first local date (default: today in the series' zone).
    pub from: Option<NaiveDate>,
    /// Why.
    pub reason: CancellationReason,
    /// The role of who cancels.
    pub by_role: String,
    /// A note, sealed under the series.
    pub note: Option<Sealed>,
}

/// What a cancellation decides on: the series and each ride it booked from the date on.
#[derive(Debug, Clone, Default)]
pub struct CancelInput {
    /// The series.
    pub series: Option<RideSeries>,
    /// The rides of its dates from `from`, each with the schedules it would release.
    pub rides: Vec<RideInput>,
    /// The cancellation's note sealed under each of those rides (shown with the ride).
    pub notes: std::collections::BTreeMap<Uuid, Sealed>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// The first date a cancellation takes.
pub fn cancel_from(s: &RideSeries, c: &CancelSeries, now: DateTime<Utc>) -> NaiveDate {
    c.from.unwrap_or_else(|| localtime::local_date(s.zone(), now))
}

/// Cancels a series from a date: `RideSeriesCancelled` and, in the same append, every
/// pending or booked ride of its dates from then on (started and finished rides are left
/// alone); no date from then on is booked again. Cancelling again from the same or a later
/// date, with nothing left to cancel, is nothing.
pub fn cancel(input: &CancelInput, c: &CancelSeries) -> Result<Decision<BookingEvent>, DomainError> {
    let s = input.series.as_ref().ok_or_else(|| DomainError::NotFound("ride series".into()))?;
    let from = cancel_from(s, c, input.now);
    let mut d = Decision::in_tenant(Some(s.plan.chapter_id));
    let mut rides = Vec::new();
    for ri in &input.rides {
        let Some(ride) = &ri.ride else { continue };
        if !matches!(ride.status, RideStatus::PendingConfirmation | RideStatus::Booked) {
            continue;
        }
        let ride_cancel = rides_cmd::Cancel {
            reason: c.reason,
            by_role: c.by_role.clone(),
            note: input.notes.get(&ride.ride_id).cloned(),
            caused_by: None,
        };
        d.extend(rides_cmd::cancel(ri, &ride_cancel)?);
        rides.push(ride.ride_id);
    }
    if rides.is_empty() && s.cancellation.as_ref().is_some_and(|old| old.from <= from) {
        return Ok(Decision::nothing());
    }
    let cancelled = RideSeriesCancelled {
        ride_series_id: s.plan.ride_series_id,
        from,
        reason: c.reason,
        by_role: c.by_role.clone(),
        note: c.note.clone(),
        caused_by: None,
        at: input.now,
        rides,
    };
    d.events.insert(0, (series_stream(s.plan.ride_series_id), cancelled.into()));
    Ok(d)
}
