//! The ride aggregate: its state folded from `ride-<id>` and the schedule streams it holds.
//! The decisions on it are in [`crate::commands::rides`]. Pure.

use chrono::{DateTime, Duration, Utc};
use domain::Aggregate;
use domain::events::*;
use domain::types::{CancellationReason, RideKind, RideStatus, Sealed};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::schedule::{self, Holder};

/// The stream of a ride.
pub fn ride_stream(ride_id: Uuid) -> String {
    format!("ride-{ride_id}")
}

/// The key subject of a ride's free text (story, notes, addresses).
pub fn ride_subject(ride_id: Uuid) -> String {
    format!("ride:{ride_id}")
}

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
    /// Riders on the roster who did not come (they count in no figure).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<Uuid>,
    /// Recorded after the fact, without a booking.
    #[serde(default)]
    pub recorded: bool,
    /// Of a no-show: who did not come (`riders` or `pilot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_show_by: Option<String>,
    /// Sealed notes of its record and corrections, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Sealed>,
    /// An occurrence of a ride series: the series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ride_series_id: Option<Uuid>,
    /// Residents waiting for a seat, first in line first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waitlist: Vec<Uuid>,
}

/// The length of an actual interval in whole minutes, rounded up (a recorded ride's slot
/// and trishaw time).
pub fn actual_length(start: DateTime<Utc>, end: DateTime<Utc>) -> u32 {
    let seconds = (end - start).num_seconds().max(0);
    u32::try_from((seconds + 59) / 60).unwrap_or(u32::MAX)
}

impl Ride {
    /// How long before its slot a start counts as when the ride began (the bound of a
    /// reported start).
    pub const EARLIEST_START: Duration = Duration::minutes(60);

    /// When the ride counts as having started for periods and months: its actual start
    /// once completed, its scheduled start otherwise (api.md, *What really happened*). A
    /// start pressed more than [`Self::EARLIEST_START`] before the slot (which a reported
    /// start cannot be) is not taken as when the ride began: the slot's start is.
    pub fn counted_start(&self) -> DateTime<Utc> {
        match (self.status, self.started_at) {
            (RideStatus::Completed, Some(s)) if self.recorded || s >= self.start - Self::EARLIEST_START => s,
            _ => self.start,
        }
    }

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

    /// The schedule streams the ride's waiting residents have their place on
    /// ([`domain::events::SlotAwaited`]), with the ride's interval.
    pub fn waits(&self) -> Vec<(String, DateTime<Utc>, DateTime<Utc>)> {
        let holders: Vec<Holder> = self.waitlist.iter().map(|w| Holder::Resident(*w)).collect();
        holds_of(&holders, self.start, self.duration_minutes, 0)
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
                absent: Vec::new(),
                recorded: false,
                no_show_by: None,
                notes: Vec::new(),
                ride_series_id: b.ride_series_id,
                waitlist: Vec::new(),
            });
        }
        if let E::RideRecorded(e) = event {
            return Some(Ride {
                ride_id: e.ride_id,
                kind: e.kind,
                status: RideStatus::Completed,
                chapter_id: e.chapter_id,
                carehome_id: e.carehome_id,
                bike_id: e.bike_id,
                pilot_id: e.pilot_id,
                start: e.started_at,
                duration_minutes: actual_length(e.started_at, e.ended_at),
                turnaround_minutes: 0,
                riders: e.riders.iter().map(|r| Rider { resident_id: *r, checked_in: true }).collect(),
                trip_minutes: None,
                route: None,
                ride_request_id: None,
                cancellation: None,
                started_at: Some(e.started_at),
                ended_at: Some(e.ended_at),
                distance_km: Some(e.distance_km),
                bike_condition: e.bike_condition.clone(),
                story: e.story.clone(),
                booked_at: e.started_at,
                absent: e.absent.clone(),
                recorded: true,
                no_show_by: None,
                notes: e.note.iter().cloned().collect(),
                ride_series_id: None,
                waitlist: Vec::new(),
            });
        }
        let mut r = state?;
        match event {
            E::RideConfirmed(_) => r.status = RideStatus::Booked,
            E::RiderAddedToRoster(a) => {
                r.waitlist.retain(|w| *w != a.resident_id);
                r.riders.push(Rider { resident_id: a.resident_id, checked_in: false });
            }
            E::RiderPromotedFromWaitlist(a) => {
                r.waitlist.retain(|w| *w != a.resident_id);
                r.riders.push(Rider { resident_id: a.resident_id, checked_in: false });
            }
            E::ResidentWaitlisted(w) if !r.waitlist.contains(&w.resident_id) => r.waitlist.push(w.resident_id),
            E::ResidentLeftWaitlist(w) => r.waitlist.retain(|x| *x != w.resident_id),
            E::RiderRemovedFromRoster(a) => r.riders.retain(|x| x.resident_id != a.resident_id),
            E::RideRescheduled(s) => {
                r.start = s.start;
                r.duration_minutes = s.duration_minutes;
            }
            E::RideCancelled(c) => {
                // A cancelled ride drops its waitlist (the places are released with it).
                r.waitlist.clear();
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
                r.absent.clone_from(&c.absent);
            }
            E::RideMarkedNoShow(n) => {
                r.status = RideStatus::NoShow;
                r.no_show_by = Some(n.by.clone());
            }
            E::RideCorrected(c) => {
                if let Some(s) = c.started_at {
                    r.started_at = Some(s);
                    if r.recorded {
                        r.start = s;
                    }
                }
                if let Some(e) = c.ended_at {
                    r.ended_at = Some(e);
                }
                if r.recorded
                    && let (Some(s), Some(e)) = (r.started_at, r.ended_at)
                {
                    r.duration_minutes = actual_length(s, e);
                }
                if let Some(d) = c.distance_km {
                    r.distance_km = Some(d);
                }
                if let Some(a) = &c.absent {
                    r.absent.clone_from(a);
                }
                if let Some(n) = &c.note {
                    r.notes.push(n.clone());
                }
            }
            _ => {}
        }
        Some(r)
    }

    fn tenant(&self) -> Option<Uuid> {
        Some(self.chapter_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn a_ride_holds_its_trishaw_with_turnaround() {
        let e = BookingEvent::RideBooked(RideBooked {
            ride_id: Uuid::from_u128(1),
            kind: RideKind::Pleasure,
            status: RideStatus::Booked,
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
            ride_series_id: None,
        });
        let r = Ride::apply(None, &e).unwrap();
        let holds = r.holds();
        assert_eq!(holds.len(), 3);
        assert!(holds[0].0.starts_with("bikeday-"));
        assert_eq!(holds[0].2, t("2027-05-03T11:15:00Z"));
        assert_eq!(holds[1].2, t("2027-05-03T11:00:00Z"));
        assert_eq!(Ride::capacity(RideKind::Event, 2, 120, Some(30)), 8);
        assert_eq!(Ride::capacity(RideKind::Pleasure, 2, 120, None), 2);
    }
}
