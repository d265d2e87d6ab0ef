//! A ride recorded after the fact (api.md, *What really happened*): it happened without a
//! booking and is completed from the start. It is checked against the facts of its own
//! time, as booking's fact history has them (the trishaw's status and home, the pilot's
//! status and qualification, each rider's residence and consent), and on its actual times
//! (no turnaround) against the other rides of its trishaw, pilot and riders, holding their
//! schedule streams like a booking. Ride hours and lead time do not apply. Pure.

use chrono::{DateTime, Duration, Utc};
use domain::events::{BookingEvent, RideRecorded};
use domain::localtime;
use domain::types::{BikeStatus, PilotStatus, RideKind, Sealed};
use domain::{Decision, DomainError, ErrorCode};
use uuid::Uuid;

use super::rides::{check_absent, check_actual};
use super::schedule::{Hold, Schedules, schedule_events};
use crate::facts::{BikeFact, CareHomeFact, ChapterFact, PilotFact, ResidentFact};
use crate::rides::{actual_length, holds_of, ride_stream};
use crate::rules;
use crate::schedule::Holder;

/// A ride to record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRide {
    /// The new ride's id.
    pub ride_id: Uuid,
    /// Trishaw.
    pub bike_id: Uuid,
    /// Pilot.
    pub pilot_id: Uuid,
    /// Actual start.
    pub started_at: DateTime<Utc>,
    /// Actual end.
    pub ended_at: DateTime<Utc>,
    /// Kilometres.
    pub distance_km: f64,
    /// Riders (absent ones included).
    pub resident_ids: Vec<Uuid>,
    /// Riders who did not come.
    pub absent: Vec<Uuid>,
    /// `pleasure` or `event`.
    pub kind: RideKind,
    /// Story, sealed.
    pub story: Option<Sealed>,
    /// Condition label.
    pub bike_condition: Option<String>,
    /// Note, sealed.
    pub note: Option<Sealed>,
    /// The role of who records (a pilot, within the chapter's record window).
    pub actor_role: String,
}

/// What a record decides on: facts as they stood at its start, the chapter's settings
/// now, the residents named in requests the pilot claimed, the schedules it would hold.
#[derive(Debug, Clone, Default)]
pub struct RecordInput {
    /// The trishaw then.
    pub bike: Option<BikeFact>,
    /// Its care home then.
    pub home: Option<CareHomeFact>,
    /// Its care home now (whose riders'-names rule applies to the pilot recording).
    pub home_now: Option<CareHomeFact>,
    /// The chapter now (the record window).
    pub chapter: Option<ChapterFact>,
    /// The pilot then.
    pub pilot: Option<PilotFact>,
    /// The pilot now (every qualification ever recorded: one counts from `qualified_on`
    /// to `valid_until`, whenever it was recorded).
    pub pilot_now: Option<PilotFact>,
    /// The riders then.
    pub riders: Vec<(Uuid, Option<ResidentFact>)>,
    /// Residents named in requests the pilot claimed.
    pub named: Vec<Uuid>,
    /// The schedule streams of its holds.
    pub schedules: Schedules,
    /// Now.
    pub now: DateTime<Utc>,
}

/// The holds of a recorded ride: its actual interval, without turnaround.
pub fn holds(cmd: &RecordRide) -> Vec<Hold> {
    let mut holders = vec![Holder::Bike(cmd.bike_id), Holder::Pilot(cmd.pilot_id)];
    holders.extend(cmd.resident_ids.iter().map(|r| Holder::Resident(*r)));
    Hold::of(cmd.ride_id, holds_of(&holders, cmd.started_at, actual_length(cmd.started_at, cmd.ended_at), 0))
}

/// Whether a pilot's qualifications cover `bike_type` on every local day of the ride.
fn qualified(pilot: &PilotFact, bike_type: &str, tz: chrono_tz::Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    let (first, last) = (localtime::local_date(tz, from), localtime::local_date(tz, to - Duration::microseconds(1)));
    pilot.qualified_for(bike_type, first, last)
}

/// Decides a record.
pub fn record(input: &RecordInput, cmd: &RecordRide) -> Result<Decision<BookingEvent>, DomainError> {
    check_actual(cmd.started_at, cmd.ended_at, input.now)?;
    let missing = |what: &str| DomainError::NotFound(what.into());
    let bike = input.bike.as_ref().ok_or_else(|| missing("trishaw"))?;
    let home = input.home.as_ref().ok_or_else(|| missing("care home"))?;
    let chapter = input.chapter.as_ref().ok_or_else(|| missing("chapter"))?;
    let pilot = input.pilot.as_ref().ok_or_else(|| missing("pilot"))?;
    if pilot.chapter_id != home.chapter_id {
        return Err(missing("pilot"));
    }
    let window = i64::from(chapter.settings.record_window_days);
    if cmd.actor_role == "pilot" && input.now - cmd.started_at > Duration::days(window) {
        return Err(DomainError::rule(
            ErrorCode::OutsideRecordWindow,
            format!("a pilot records rides of the last {window} days only; ask a coordinator"),
        ));
    }
    rules::check_pilot_seats(
        input.home_now.as_ref().unwrap_or(home),
        &cmd.actor_role,
        &cmd.resident_ids,
        &input.named,
    )?;
    if bike.status != BikeStatus::InService {
        return Err(DomainError::rule(ErrorCode::BikeOutOfService, format!("the trishaw was {} then", bike.status)));
    }
    match pilot.status {
        PilotStatus::Active => {}
        PilotStatus::Suspended => {
            return Err(DomainError::rule(ErrorCode::PilotSuspended, "the pilot was suspended then"));
        }
        s => return Err(DomainError::rule(ErrorCode::NotQualified, format!("the pilot was {s} then"))),
    }
    let tz = rules::zone(home, chapter);
    if !qualified(input.pilot_now.as_ref().unwrap_or(pilot), &bike.bike_type, tz, cmd.started_at, cmd.ended_at) {
        return Err(DomainError::rule(
            ErrorCode::NotQualified,
            format!("the pilot was not qualified for a {} then", bike.bike_type),
        ));
    }
    let minutes = actual_length(cmd.started_at, cmd.ended_at);
    rules::check_riders(home, bike, cmd.kind, minutes, None, &input.riders)?;
    if cmd.story.is_some() {
        rules::check_story_consent(&input.riders)?;
    }
    let absent = check_absent(&cmd.resident_ids, &cmd.absent, "/absent_resident_ids")?;
    let recorded = RideRecorded {
        ride_id: cmd.ride_id,
        kind: cmd.kind,
        chapter_id: home.chapter_id,
        carehome_id: home.carehome_id,
        bike_id: cmd.bike_id,
        pilot_id: cmd.pilot_id,
        started_at: cmd.started_at,
        ended_at: cmd.ended_at,
        distance_km: cmd.distance_km,
        riders: cmd.resident_ids.clone(),
        absent,
        bike_condition: cmd.bike_condition.clone(),
        story: cmd.story.clone(),
        note: cmd.note.clone(),
    };
    let mut d = Decision::on(ride_stream(cmd.ride_id), vec![recorded.into()], Some(home.chapter_id));
    for (stream, e) in schedule_events(&input.schedules, &holds(cmd), &[])? {
        d.push(stream, e);
    }
    Ok(d)
}
