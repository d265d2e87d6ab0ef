//! Schedule streams: the invariants "no trishaw, pilot or resident in two overlapping
//! rides" are enforced by optimistic concurrency on one stream per trishaw, pilot or
//! resident and UTC day (`bikeday-<id>-<yyyymmdd>`, ...). A booking reads the streams its
//! interval touches, checks for overlaps, and appends `SlotHeld` to each with the version
//! it read: of two overlapping bookings racing each other, one append fails and is decided
//! again on fresh state. Pure: the I/O lives in the command handlers.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::events::BookingEvent;
use uuid::Uuid;

/// Whose schedule a stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Holder {
    /// A trishaw (intervals include the care home's turnaround after each ride).
    Bike(Uuid),
    /// A pilot.
    Pilot(Uuid),
    /// A resident.
    Resident(Uuid),
}

impl Holder {
    fn prefix(self) -> (&'static str, Uuid) {
        match self {
            Holder::Bike(id) => ("bikeday", id),
            Holder::Pilot(id) => ("pilotday", id),
            Holder::Resident(id) => ("residentday", id),
        }
    }

    /// The schedule stream of this holder on one UTC day.
    pub fn stream(self, day: NaiveDate) -> String {
        let (p, id) = self.prefix();
        format!("{p}-{id}-{}", day.format("%Y%m%d"))
    }
}

/// The UTC days an interval touches.
pub fn days(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut d = start.date_naive();
    let last = (end - Duration::microseconds(1)).date_naive().max(d);
    while d <= last {
        out.push(d);
        d = d.succ_opt().expect("date in range");
    }
    out
}

/// The interval a ride holds on a holder's schedule: its slot, plus the turnaround on a trishaw.
pub fn held_interval(
    holder: Holder,
    start: DateTime<Utc>,
    duration_minutes: u32,
    turnaround_minutes: u32,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = start + Duration::minutes(i64::from(duration_minutes));
    match holder {
        Holder::Bike(_) => (start, end + Duration::minutes(i64::from(turnaround_minutes))),
        _ => (start, end),
    }
}

/// The intervals held on one schedule stream, by ride.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaySchedule {
    /// Ride → held interval.
    pub held: BTreeMap<Uuid, (DateTime<Utc>, DateTime<Utc>)>,
    /// Ride → its interval, for rides the holder waits for (not holds: nothing overlaps them).
    pub waiting: BTreeMap<Uuid, (DateTime<Utc>, DateTime<Utc>)>,
    /// The stream's version.
    pub version: u64,
}

impl DaySchedule {
    /// Folds a schedule stream's events.
    pub fn fold<'a>(events: impl IntoIterator<Item = (&'a BookingEvent, u64)>) -> Self {
        let mut s = DaySchedule::default();
        for (e, version) in events {
            match e {
                BookingEvent::SlotHeld(h) => {
                    s.waiting.remove(&h.ride_id);
                    s.held.insert(h.ride_id, (h.start, h.end));
                }
                BookingEvent::SlotReleased(r) => {
                    s.held.remove(&r.ride_id);
                    s.waiting.remove(&r.ride_id);
                }
                BookingEvent::SlotAwaited(w) => {
                    s.waiting.insert(w.ride_id, (w.start, w.end));
                }
                _ => {}
            }
            s.version = version;
        }
        s
    }

    /// A ride (other than `except`) whose held interval overlaps [start, end).
    pub fn overlapping(&self, start: DateTime<Utc>, end: DateTime<Utc>, except: &[Uuid]) -> Option<Uuid> {
        self.held.iter().find(|(ride, (s, e))| !except.contains(ride) && *s < end && start < *e).map(|(ride, _)| *ride)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::events::{SlotHeld, SlotReleased};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn intervals_touch_every_utc_day_they_cover() {
        assert_eq!(days(t("2027-05-03T10:00:00Z"), t("2027-05-03T11:00:00Z")).len(), 1);
        assert_eq!(days(t("2027-05-03T23:30:00Z"), t("2027-05-04T00:15:00Z")).len(), 2);
        assert_eq!(days(t("2027-05-03T23:00:00Z"), t("2027-05-04T00:00:00Z")).len(), 1, "end is exclusive");
    }

    #[test]
    fn a_trishaw_holds_its_turnaround_and_people_do_not() {
        let s = t("2027-05-03T10:00:00Z");
        let bike = held_interval(Holder::Bike(Uuid::nil()), s, 60, 15);
        assert_eq!(bike.1, t("2027-05-03T11:15:00Z"));
        let pilot = held_interval(Holder::Pilot(Uuid::nil()), s, 60, 15);
        assert_eq!(pilot.1, t("2027-05-03T11:00:00Z"));
    }

    #[test]
    fn overlaps_are_found_and_released_slots_forgotten() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let held = BookingEvent::SlotHeld(SlotHeld {
            ride_id: a,
            start: t("2027-05-03T10:00:00Z"),
            end: t("2027-05-03T11:15:00Z"),
        });
        let s = DaySchedule::fold([(&held, 1)]);
        assert_eq!(s.overlapping(t("2027-05-03T11:00:00Z"), t("2027-05-03T12:00:00Z"), &[]), Some(a));
        assert_eq!(s.overlapping(t("2027-05-03T11:15:00Z"), t("2027-05-03T12:00:00Z"), &[]), None, "adjacent is fine");
        assert_eq!(s.overlapping(t("2027-05-03T09:00:00Z"), t("2027-05-03T10:00:00Z"), &[]), None);
        assert_eq!(
            s.overlapping(t("2027-05-03T10:30:00Z"), t("2027-05-03T10:45:00Z"), &[a]),
            None,
            "a ride never conflicts with itself"
        );
        let released = BookingEvent::SlotReleased(SlotReleased { ride_id: a });
        let other = BookingEvent::SlotHeld(SlotHeld {
            ride_id: b,
            start: t("2027-05-03T12:00:00Z"),
            end: t("2027-05-03T13:00:00Z"),
        });
        let s = DaySchedule::fold([(&held, 1), (&released, 2), (&other, 3)]);
        assert_eq!(s.version, 3);
        assert_eq!(s.held.len(), 1);
    }

    #[test]
    fn streams_are_named_by_holder_and_day() {
        let d = NaiveDate::from_ymd_opt(2027, 3, 28).unwrap();
        assert_eq!(Holder::Pilot(Uuid::nil()).stream(d), format!("pilotday-{}-20270328", Uuid::nil()));
    }
}
