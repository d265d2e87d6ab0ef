//! A ride series: the plan (trishaw, pilot, riders, local wall-clock time, weekdays every
//! N weeks, until a date or for a count of dates) folded from its stream, the dates it
//! recurs on, and what became of each date booked so far (a ride, or the rule it broke).
//! Pure: the zone's rules decide each date's instant, nothing reads the clock.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use domain::Aggregate;
use domain::events::{BookingEvent, Recurrence, RideSeriesPlanned};
use domain::localtime;
use domain::types::{CancellationReason, Weekday};
use uuid::Uuid;

/// The stream of a series.
pub fn series_stream(id: Uuid) -> String {
    format!("rideseries-{id}")
}

/// The most dates a series may have (`count`).
pub const MAX_COUNT: u32 = 260;
/// The furthest `until` may lie after the first date, in months (two years).
pub const MAX_SPAN_MONTHS: u32 = 24;
/// The most weeks between two rounds of a series.
pub const MAX_INTERVAL_WEEKS: u32 = 52;

/// The ride of one date: derived from (series, local date), so every process, and a retry
/// of an interrupted create, names the same ride.
pub fn occurrence_id(series: Uuid, date: NaiveDate) -> Uuid {
    Uuid::new_v5(&series, date.format("%Y-%m-%d").to_string().as_bytes())
}

/// What became of a date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Booked as this ride (whatever happened to the ride since).
    Booked(Uuid),
    /// Not booked: the rule it broke, and the ride it would have overlapped.
    Skipped {
        /// The error code.
        code: String,
        /// The other ride.
        conflict_with: Option<Uuid>,
    },
}

/// The cancellation of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesCancellation {
    /// The first local date cancelled.
    pub from: NaiveDate,
    /// Why.
    pub reason: CancellationReason,
    /// The role of who cancelled (`system`: stopped at a retired trishaw or pilot).
    pub by_role: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A series as its stream tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct RideSeries {
    /// The plan.
    pub plan: RideSeriesPlanned,
    /// Each date booked or skipped so far.
    pub dates: BTreeMap<NaiveDate, Outcome>,
    /// Cancelled (or stopped) from a date on.
    pub cancellation: Option<SeriesCancellation>,
}

impl Aggregate for RideSeries {
    type Event = BookingEvent;

    fn apply(state: Option<Self>, event: &BookingEvent) -> Option<Self> {
        use BookingEvent as E;
        if let E::RideSeriesPlanned(p) = event {
            return Some(RideSeries { plan: p.clone(), dates: BTreeMap::new(), cancellation: None });
        }
        let mut s = state?;
        match event {
            E::RideSeriesOccurrenceBooked(b) => {
                s.dates.insert(b.date, Outcome::Booked(b.ride_id));
            }
            E::RideSeriesOccurrenceSkipped(k) => {
                s.dates.insert(k.date, Outcome::Skipped { code: k.code.clone(), conflict_with: k.conflict_with });
            }
            E::RideSeriesCancelled(c) => {
                // A later cancellation from an earlier date moves the start back.
                let from = s.cancellation.as_ref().map_or(c.from, |old| old.from.min(c.from));
                s.cancellation =
                    Some(SeriesCancellation { from, reason: c.reason, by_role: c.by_role.clone(), at: c.at });
            }
            _ => {}
        }
        Some(s)
    }

    fn tenant(&self) -> Option<Uuid> {
        Some(self.plan.chapter_id)
    }
}

impl RideSeries {
    /// The zone its wall-clock time is kept in.
    pub fn zone(&self) -> Tz {
        self.plan.timezone.parse().unwrap_or(chrono_tz::UTC)
    }

    /// The instant a date's occurrence starts: the plan's local time on that date (a time
    /// inside a spring-forward gap moves past it; an autumn time that occurs twice is the
    /// first of the two).
    pub fn start_on(&self, date: NaiveDate) -> DateTime<Utc> {
        localtime::instant(self.zone(), date, self.plan.local_time, false)
    }

    /// Every date of the series up to `through` (inclusive), in order.
    pub fn dates_through(&self, through: NaiveDate) -> Vec<NaiveDate> {
        let first = localtime::local_date(self.zone(), self.plan.start);
        dates(first, &self.plan.recurrence, through)
    }

    /// Whether `date` is one of the series' dates.
    pub fn recurs_on(&self, date: NaiveDate) -> bool {
        self.dates_through(date).last() == Some(&date)
    }

    /// The series' last date, if it has one (`until`, or the `count`-th date).
    pub fn last_date(&self) -> Option<NaiveDate> {
        let first = localtime::local_date(self.zone(), self.plan.start);
        last_date(first, &self.plan.recurrence)
    }

    /// Whether a date is cancelled.
    pub fn cancelled_on(&self, date: NaiveDate) -> bool {
        self.cancellation.as_ref().is_some_and(|c| date >= c.from)
    }

    /// The dates still to book up to `through`: not yet booked or skipped, not cancelled.
    pub fn due_through(&self, through: NaiveDate) -> Vec<NaiveDate> {
        self.dates_through(through)
            .into_iter()
            .filter(|d| !self.dates.contains_key(d) && !self.cancelled_on(*d))
            .collect()
    }

    /// The rides booked for dates from `from` on (to cancel them with the series).
    pub fn booked_from(&self, from: NaiveDate) -> Vec<(NaiveDate, Uuid)> {
        self.dates
            .range(from..)
            .filter_map(|(d, o)| match o {
                Outcome::Booked(r) => Some((*d, *r)),
                Outcome::Skipped { .. } => None,
            })
            .collect()
    }
}

/// The dates of a recurrence from its first date up to `through`: every `interval_weeks`
/// weeks (counted from the first date's week, Monday to Sunday), on its weekdays, until
/// `until` or for `count` dates.
pub fn dates(first: NaiveDate, r: &Recurrence, through: NaiveDate) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let through = match r.until {
        Some(u) => through.min(u),
        None => through,
    };
    let count = r.count.map_or(usize::MAX, |c| c as usize);
    let interval = i64::from(r.interval_weeks.max(1));
    let week_start = first - Duration::days(i64::from(first.weekday().num_days_from_monday()));
    let mut week = 0i64;
    while out.len() < count {
        let monday = week_start + Duration::weeks(week * interval);
        if monday > through {
            break;
        }
        for offset in 0..7 {
            let day = monday + Duration::days(offset);
            if day < first || day > through || out.len() >= count {
                continue;
            }
            if r.weekdays.contains(&Weekday::from(day.weekday())) {
                out.push(day);
            }
        }
        week += 1;
    }
    out
}

/// The last date of a bounded recurrence.
pub fn last_date(first: NaiveDate, r: &Recurrence) -> Option<NaiveDate> {
    match (r.until, r.count) {
        (None, None) => None,
        (until, _) => {
            let through =
                until.unwrap_or_else(|| first + Duration::weeks(i64::from(MAX_COUNT) * i64::from(MAX_INTERVAL_WEEKS)));
            dates(first, r, through).last().copied().or(Some(first))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn every(weekdays: &[Weekday], interval_weeks: u32, until: Option<&str>, count: Option<u32>) -> Recurrence {
        Recurrence { weekdays: weekdays.to_vec(), interval_weeks, until: until.map(d), count }
    }

    #[test]
    fn twelve_tuesdays_by_count() {
        let r = every(&[Weekday::Tuesday], 1, None, Some(12));
        let got = dates(d("2027-09-14"), &r, d("2030-01-01"));
        assert_eq!(got.len(), 12);
        assert_eq!(got[0], d("2027-09-14"));
        assert_eq!(got[11], d("2027-11-30"));
        assert!(got.windows(2).all(|w| w[1] - w[0] == Duration::weeks(1)));
        assert_eq!(last_date(d("2027-09-14"), &r), Some(d("2027-11-30")));
    }

    #[test]
    fn every_other_week_on_two_days_until_a_date() {
        // First date a Thursday: that week's Tuesday is before it and not a date.
        let r = every(&[Weekday::Tuesday, Weekday::Thursday], 2, Some("2027-10-07"), None);
        let got = dates(d("2027-09-09"), &r, d("2028-01-01"));
        assert_eq!(got, vec![d("2027-09-09"), d("2027-09-21"), d("2027-09-23"), d("2027-10-05"), d("2027-10-07")]);
        assert_eq!(last_date(d("2027-09-09"), &r), Some(d("2027-10-07")));
        // Through a date before the end: only up to it.
        assert_eq!(dates(d("2027-09-09"), &r, d("2027-09-22")).len(), 2);
    }

    #[test]
    fn unbounded_has_no_last_date() {
        let r = every(&[Weekday::Monday], 1, None, None);
        assert_eq!(last_date(d("2027-01-04"), &r), None);
        assert_eq!(dates(d("2027-01-04"), &r, d("2027-02-01")).len(), 5);
    }

    #[test]
    fn ids_derive_from_series_and_date() {
        let s = Uuid::from_u128(7);
        assert_eq!(occurrence_id(s, d("2027-01-04")), occurrence_id(s, d("2027-01-04")));
        assert_ne!(occurrence_id(s, d("2027-01-04")), occurrence_id(s, d("2027-01-11")));
        assert_ne!(occurrence_id(s, d("2027-01-04")), occurrence_id(Uuid::from_u128(8), d("2027-01-04")));
    }
}
