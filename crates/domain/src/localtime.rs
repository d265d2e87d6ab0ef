//! Local-time rules evaluated in a care home's zone: ride hours on a given date (daylight
//! saving days included), closures, and the local date of an instant.

use chrono::{DateTime, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::types::{DateRange, LocalTime, RideHours, Weekday};

/// The UTC instant of a local clock time on a local date. A time that does not exist
/// (skipped by a spring-forward change) maps to the first instant after the gap; a time
/// that exists twice (autumn) maps to the earlier one for openings and the later one for
/// closings, so a window always covers every instant the clock shows inside it.
pub fn instant(tz: Tz, date: NaiveDate, time: LocalTime, closing: bool) -> DateTime<Utc> {
    let day_start = |d: NaiveDate| -> DateTime<Utc> {
        // Local midnight can itself fall in a gap in a few zones: walk forward.
        (0..=180)
            .find_map(|m| {
                match tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?.checked_add_signed(chrono::Duration::minutes(m))?)
                {
                    LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
                    LocalResult::None => None,
                }
            })
            .unwrap_or_else(|| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight")))
    };
    let Some(naive) = time.naive() else {
        // 24:00: the start of the next day.
        return day_start(date.succ_opt().unwrap_or(date));
    };
    let local = date.and_time(naive);
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(early, late) => if closing { late } else { early }.with_timezone(&Utc),
        LocalResult::None => {
            // In a gap: the first minute after it.
            (1..=180)
                .find_map(|m| match tz.from_local_datetime(&(local + chrono::Duration::minutes(m))) {
                    LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
                    LocalResult::None => None,
                })
                .unwrap_or_else(|| Utc.from_utc_datetime(&local))
        }
    }
}

/// The local date of an instant.
pub fn local_date(tz: Tz, t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// The UTC bounds of a local date: [its first instant, the next day's first instant).
pub fn local_day(tz: Tz, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let midnight = LocalTime::from_minutes(0).expect("midnight");
    let end = LocalTime::from_minutes(1440).expect("end of day");
    (instant(tz, date, midnight, false), instant(tz, date, end, true))
}

/// The ride-hour windows of one local date, as UTC intervals.
pub fn windows_on(tz: Tz, date: NaiveDate, hours: &[RideHours]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let weekday = Weekday::from(chrono::Datelike::weekday(&date));
    let mut w: Vec<_> = hours
        .iter()
        .filter(|h| h.weekday == weekday)
        .map(|h| (instant(tz, date, h.opens, false), instant(tz, date, h.closes, true)))
        .filter(|(a, b)| a < b)
        .collect();
    w.sort();
    w
}

/// Whether the slot [start, end) lies inside one ride-hour window of its local date and on
/// no closed date.
pub fn slot_allowed(
    tz: Tz,
    hours: &[RideHours],
    closures: &[DateRange],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> bool {
    let date = local_date(tz, start);
    if closures.iter().any(|c| c.contains(date)) {
        return false;
    }
    windows_on(tz, date, hours).iter().any(|(open, close)| *open <= start && end <= *close)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(weekday: Weekday, opens: &str, closes: &str) -> RideHours {
        RideHours { weekday, opens: opens.parse().unwrap(), closes: closes.parse().unwrap() }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    const CPH: Tz = chrono_tz::Europe::Copenhagen;

    #[test]
    fn ride_hours_follow_summer_time_in_copenhagen() {
        // 2027-03-28 is a Sunday: clocks go from 02:00 to 03:00.
        let h = [hours(Weekday::Sunday, "09:00", "17:00")];
        let date = NaiveDate::from_ymd_opt(2027, 3, 28).unwrap();
        let w = windows_on(CPH, date, &h);
        assert_eq!(w, vec![(utc("2027-03-28T07:00:00Z"), utc("2027-03-28T15:00:00Z"))]);
        // The Sunday before is still winter time.
        let w = windows_on(CPH, NaiveDate::from_ymd_opt(2027, 3, 21).unwrap(), &h);
        assert_eq!(w, vec![(utc("2027-03-21T08:00:00Z"), utc("2027-03-21T16:00:00Z"))]);
        assert!(slot_allowed(CPH, &h, &[], utc("2027-03-28T07:00:00Z"), utc("2027-03-28T08:00:00Z")));
        assert!(!slot_allowed(CPH, &h, &[], utc("2027-03-28T06:30:00Z"), utc("2027-03-28T07:30:00Z")));
        assert!(!slot_allowed(CPH, &h, &[], utc("2027-03-28T14:30:00Z"), utc("2027-03-28T15:30:00Z")));
    }

    #[test]
    fn an_opening_inside_the_spring_gap_starts_after_it() {
        let h = [hours(Weekday::Sunday, "02:30", "04:00")];
        let w = windows_on(CPH, NaiveDate::from_ymd_opt(2027, 3, 28).unwrap(), &h);
        // 02:30 does not exist; the window starts at 03:00 CEST = 01:00Z and ends 04:00 CEST = 02:00Z.
        assert_eq!(w, vec![(utc("2027-03-28T01:00:00Z"), utc("2027-03-28T02:00:00Z"))]);
    }

    #[test]
    fn the_repeated_autumn_hour_is_inside_a_window_that_spans_it() {
        // 2027-10-31: 03:00 CEST becomes 02:00 CET; 02:00-03:00 happens twice.
        let h = [hours(Weekday::Sunday, "02:00", "03:00")];
        let w = windows_on(CPH, NaiveDate::from_ymd_opt(2027, 10, 31).unwrap(), &h);
        assert_eq!(w, vec![(utc("2027-10-31T00:00:00Z"), utc("2027-10-31T02:00:00Z"))]);
        let (start, end) = local_day(CPH, NaiveDate::from_ymd_opt(2027, 10, 31).unwrap());
        assert_eq!(end - start, chrono::Duration::hours(25));
    }

    #[test]
    fn closures_and_other_weekdays_refuse_a_slot() {
        let h = [hours(Weekday::Monday, "09:00", "17:00")];
        let monday = utc("2027-05-03T08:00:00Z");
        assert!(slot_allowed(CPH, &h, &[], monday, monday + chrono::Duration::hours(1)));
        let closed = DateRange {
            from: NaiveDate::from_ymd_opt(2027, 5, 3).unwrap(),
            to: NaiveDate::from_ymd_opt(2027, 5, 4).unwrap(),
        };
        assert!(!slot_allowed(CPH, &h, &[closed], monday, monday + chrono::Duration::hours(1)));
        let tuesday = monday + chrono::Duration::days(1);
        assert!(!slot_allowed(CPH, &h, &[], tuesday, tuesday + chrono::Duration::hours(1)));
    }

    #[test]
    fn end_of_day_closing_is_the_next_local_midnight() {
        let h = [hours(Weekday::Monday, "20:00", "24:00")];
        let w = windows_on(CPH, NaiveDate::from_ymd_opt(2027, 5, 3).unwrap(), &h);
        assert_eq!(w[0].1, utc("2027-05-03T22:00:00Z"));
    }
}
