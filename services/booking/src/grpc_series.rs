//! The gRPC face of ride series: requests checked field by field (every violation named by
//! its JSON pointer), the plan and cancellation run through [`crate::scheduling`], and the
//! series' proto form with every date through its horizon.

use std::collections::HashMap;

use domain::events::Recurrence;
use domain::types::{self, CancellationReason, Invalid, RideKind, Weekday};
use samskab_proto::booking::v1 as pb;
use samskab_proto::time::{from_proto, to_proto};
use servicekit::{CommandCtx, ServiceError, ServiceResult};
use uuid::Uuid;

use crate::Booking;
use crate::commands::series::{CancelSeries, PlanSeries};
use crate::scheduling::OccurrenceView;
use crate::series::{MAX_COUNT, MAX_INTERVAL_WEEKS, Outcome, RideSeries, series_stream};

/// Longest ride accepted (as for single rides).
const MAX_MINUTES: u32 = 12 * 60;

fn parse_recurrence(r: Option<&pb::Recurrence>, bad: &mut Vec<Invalid>) -> Option<Recurrence> {
    let Some(r) = r else {
        bad.push(Invalid::new("/recurrence", "is required"));
        return None;
    };
    let mut weekdays: Vec<Weekday> = Vec::new();
    for (i, w) in r.weekdays.iter().enumerate() {
        match types::parse_enum::<Weekday>(&format!("/recurrence/weekdays/{i}"), w) {
            Ok(d) if !weekdays.contains(&d) => weekdays.push(d),
            Ok(_) => bad.push(Invalid::new(format!("/recurrence/weekdays/{i}"), "is listed twice")),
            Err(e) => bad.push(e),
        }
    }
    if r.weekdays.is_empty() {
        bad.push(Invalid::new("/recurrence/weekdays", "name at least one weekday"));
    }
    let interval_weeks = r.interval_weeks.unwrap_or(1);
    if interval_weeks == 0 || interval_weeks > MAX_INTERVAL_WEEKS {
        bad.push(Invalid::new("/recurrence/interval_weeks", format!("must be 1 to {MAX_INTERVAL_WEEKS}")));
    }
    let until = if r.until.is_empty() {
        None
    } else {
        types::parse_date("/recurrence/until", &r.until).map_err(|e| bad.push(e)).ok()
    };
    if let Some(c) = r.count
        && (c == 0 || c > MAX_COUNT)
    {
        bad.push(Invalid::new("/recurrence/count", format!("must be 1 to {MAX_COUNT}")));
    }
    Some(Recurrence { weekdays, interval_weeks, until, count: r.count })
}

/// The plan a request asks for, every field checked (the decider checks what needs the
/// facts: the start's local weekday, `until` against the start's local date).
pub fn parse_plan(ctx: &CommandCtx, r: &pb::PlanRideSeriesRequest) -> Result<PlanSeries, ServiceError> {
    let mut bad = Vec::new();
    let bike_id = types::parse_id("/bike_id", &r.bike_id).map_err(|e| bad.push(e)).ok();
    let pilot_id = types::parse_id("/pilot_id", &r.pilot_id).map_err(|e| bad.push(e)).ok();
    let start = r.start.as_ref().and_then(from_proto);
    if start.is_none() {
        bad.push(Invalid::new("/start", "must be an RFC 3339 time"));
    }
    if r.duration_minutes == 0 || r.duration_minutes > MAX_MINUTES {
        bad.push(Invalid::new("/duration_minutes", format!("must be 1 to {MAX_MINUTES} minutes")));
    }
    let mut resident_ids = Vec::new();
    for (i, v) in r.resident_ids.iter().enumerate() {
        match types::parse_id(&format!("/resident_ids/{i}"), v) {
            Ok(id) if resident_ids.contains(&id) => {
                bad.push(Invalid::new(format!("/resident_ids/{i}"), "is listed twice"))
            }
            Ok(id) => resident_ids.push(id),
            Err(e) => bad.push(e),
        }
    }
    let kind = if r.kind.is_empty() {
        Some(RideKind::Pleasure)
    } else {
        types::parse_enum::<RideKind>("/kind", &r.kind).map_err(|e| bad.push(e)).ok()
    };
    if kind == Some(RideKind::Functional) {
        bad.push(Invalid::new(
            "/kind",
            "a series books pleasure or event rides (functional rides are booked one by one)",
        ));
    }
    let trip_minutes = match kind {
        Some(RideKind::Event) => {
            let t = if r.trip_minutes == 0 { 30 } else { r.trip_minutes };
            if t < 5 || t > r.duration_minutes {
                bad.push(Invalid::new("/trip_minutes", "must be at least 5 and at most the ride's length"));
            }
            Some(t)
        }
        _ => None,
    };
    let recurrence = parse_recurrence(r.recurrence.as_ref(), &mut bad);
    if !bad.is_empty() {
        return Err(ServiceError::Invalid(bad));
    }
    let missing = || ServiceError::Internal("a checked field was missing".into());
    Ok(PlanSeries {
        ride_series_id: ctx.new_object_id("ride-series"),
        bike_id: bike_id.ok_or_else(missing)?,
        pilot_id: pilot_id.ok_or_else(missing)?,
        start: start.ok_or_else(missing)?,
        duration_minutes: r.duration_minutes,
        resident_ids,
        kind: kind.ok_or_else(missing)?,
        trip_minutes,
        recurrence: recurrence.ok_or_else(missing)?,
        actor_role: ctx.actor.role.clone(),
    })
}

impl Booking {
    /// Parses and seals a cancellation (its note under the series).
    pub async fn parse_cancel_series(
        &self,
        ctx: &CommandCtx,
        r: &pb::CancelRideSeriesRequest,
    ) -> ServiceResult<(Uuid, CancelSeries, Option<String>)> {
        let mut bad = Vec::new();
        let id = types::parse_id("/ride_series_id", &r.ride_series_id).map_err(|e| bad.push(e)).ok();
        let reason = types::parse_enum::<CancellationReason>("/reason", &r.reason).map_err(|e| bad.push(e)).ok();
        let from =
            if r.from.is_empty() { None } else { types::parse_date("/from", &r.from).map_err(|e| bad.push(e)).ok() };
        let note = if r.note.trim().is_empty() {
            None
        } else {
            types::parse_label("/note", &r.note, 2000).map_err(|e| bad.push(e)).ok()
        };
        let (Some(id), Some(reason), true) = (id, reason, bad.is_empty()) else {
            return Err(ServiceError::Invalid(bad));
        };
        let sealed = match &note {
            Some(text) => {
                self.series(id).await?;
                Some(self.keys.seal(&series_stream(id), "cancel_note", text).await.map_err(ServiceError::from)?)
            }
            None => None,
        };
        Ok((id, CancelSeries { from, reason, by_role: ctx.actor.role.clone(), note: sealed }, note))
    }

    /// The proto form of a series, its dates' rides read from their streams (`fresh`) or
    /// from the rides read model (lists).
    pub async fn series_proto(&self, s: &RideSeries, version: u64, fresh: bool) -> ServiceResult<pb::RideSeries> {
        let statuses = if fresh { self.series_ride_statuses(s).await? } else { self.listed_statuses(s).await? };
        let (occurrences, booked_through) = self.occurrences(s, &statuses).await?;
        let p = &s.plan;
        let today = domain::localtime::local_date(s.zone(), servicekit::clock::now());
        let status = match (&s.cancellation, s.last_date()) {
            (Some(_), _) => "cancelled",
            (None, Some(last)) if last < today => "ended",
            _ => "active",
        };
        let c = s.cancellation.as_ref();
        Ok(pb::RideSeries {
            ride_series_id: p.ride_series_id.to_string(),
            chapter_id: p.chapter_id.to_string(),
            carehome_id: p.carehome_id.to_string(),
            bike_id: p.bike_id.to_string(),
            pilot_id: p.pilot_id.to_string(),
            start: Some(to_proto(p.start)),
            duration_minutes: p.duration_minutes,
            resident_ids: p.riders.iter().map(Uuid::to_string).collect(),
            kind: p.kind.to_string(),
            trip_minutes: p.trip_minutes.unwrap_or(0),
            recurrence: Some(pb::Recurrence {
                weekdays: p.recurrence.weekdays.iter().map(|w| w.to_string()).collect(),
                interval_weeks: Some(p.recurrence.interval_weeks),
                until: p.recurrence.until.map(|u| u.to_string()).unwrap_or_default(),
                count: p.recurrence.count,
            }),
            local_time: p.local_time.to_string(),
            timezone: p.timezone.clone(),
            status: status.into(),
            cancelled_from: c.map(|c| c.from.to_string()).unwrap_or_default(),
            cancel_reason: c.map(|c| c.reason.to_string()).unwrap_or_default(),
            cancelled_by_role: c.map(|c| c.by_role.clone()).unwrap_or_default(),
            occurrences: occurrences.into_iter().map(occurrence_proto).collect(),
            booked_through: booked_through.map(|d| d.to_string()).unwrap_or_default(),
            version,
            planned_at: Some(to_proto(p.planned_at)),
        })
    }

    /// The status of a series' rides from the rides read model (one query per series).
    async fn listed_statuses(&self, s: &RideSeries) -> ServiceResult<HashMap<Uuid, String>> {
        let rows: Vec<(String, String)> = self
            .store
            .fetch_rows(
                "SELECT ride_id, status FROM booking_rides WHERE bike_id = $1 AND start_at >= $2",
                &[s.plan.bike_id.into(), eventlog::Arg::Int(s.plan.start.timestamp_micros() - 86_400_000_000)],
            )
            .await?;
        let mine: std::collections::HashSet<Uuid> = s
            .dates
            .values()
            .filter_map(|o| match o {
                Outcome::Booked(r) => Some(*r),
                Outcome::Skipped { .. } => None,
            })
            .collect();
        Ok(rows
            .into_iter()
            .filter_map(|(id, status)| id.parse::<Uuid>().ok().filter(|i| mine.contains(i)).map(|i| (i, status)))
            .collect())
    }
}

fn occurrence_proto(o: OccurrenceView) -> pb::Occurrence {
    let (ride_id, problem) = match &o.outcome {
        Some(Outcome::Booked(r)) => (r.to_string(), None),
        Some(Outcome::Skipped { code, conflict_with }) => (
            String::new(),
            Some(pb::OccurrenceProblem {
                code: code.clone(),
                conflict_with: conflict_with.map(|c| c.to_string()).unwrap_or_default(),
            }),
        ),
        None => (String::new(), None),
    };
    pb::Occurrence {
        date: o.date.to_string(),
        start: Some(to_proto(o.start)),
        ride_id,
        status: o.status.unwrap_or_default(),
        problem,
    }
}
