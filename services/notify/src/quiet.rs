//! Quiet hours: SMS and push are held while a person's quiet hours last (the inbox and
//! e-mail never are). `from > to` wraps midnight; the hours are wall-clock times in the
//! person's zone, so a night across a change of the clocks is an hour shorter or longer.
//! A held notice goes out when the quiet hours end, or at once when what it is about starts
//! before then (a reminder of a 06:30 ride is no use at 07:00).

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::people::QuietHours;

/// Until when a notice due now is held by `quiet` in `zone`: `None` when it goes now.
/// `starts` is the start of what the notice is about (a ride), if anything.
pub fn held_until(
    quiet: &QuietHours,
    zone: Tz,
    now: DateTime<Utc>,
    starts: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let from = NaiveTime::parse_from_str(&quiet.from, "%H:%M").ok()?;
    let to = NaiveTime::parse_from_str(&quiet.to, "%H:%M").ok()?;
    if from == to {
        return None;
    }
    let local = now.with_timezone(&zone).naive_local();
    let t = local.time();
    let quiet_now = if from < to { from <= t && t < to } else { t >= from || t < to };
    if !quiet_now {
        return None;
    }
    let day = if t < to { local.date() } else { local.date() + Duration::days(1) };
    let end = in_zone(zone, day.and_time(to));
    match starts {
        Some(s) if s <= end => None,
        _ => Some(end),
    }
}

/// A wall-clock time in `zone`: the earlier of two (the clocks went back), or, in the hour
/// the clocks skip, the same time an hour later.
fn in_zone(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => t.to_utc(),
        LocalResult::Ambiguous(a, _) => a.to_utc(),
        LocalResult::None => zone
            .from_local_datetime(&(local + Duration::hours(1)))
            .earliest()
            .map_or_else(|| local.and_utc(), |t| t.to_utc()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn night() -> QuietHours {
        QuietHours { from: "22:00".into(), to: "07:00".into(), timezone: "Europe/Copenhagen".into() }
    }

    const CPH: Tz = chrono_tz::Europe::Copenhagen;

    #[test]
    fn a_notice_at_23_waits_until_07_unless_its_ride_starts_before() {
        // 23:00 in Copenhagen (summer: +02:00) is 21:00 UTC; 07:00 next morning is 05:00 UTC.
        assert_eq!(held_until(&night(), CPH, t("2027-09-06T21:00:00Z"), None), Some(t("2027-09-07T05:00:00Z")));
        // Its ride at 06:30 local (04:30 UTC): at once.
        assert_eq!(held_until(&night(), CPH, t("2027-09-06T21:00:00Z"), Some(t("2027-09-07T04:30:00Z"))), None);
        // A ride at 10:00: held.
        let later = Some(t("2027-09-07T08:00:00Z"));
        assert_eq!(held_until(&night(), CPH, t("2027-09-06T21:00:00Z"), later), Some(t("2027-09-07T05:00:00Z")));
        // After midnight, before 07:00: the same morning.
        assert_eq!(held_until(&night(), CPH, t("2027-09-07T01:00:00Z"), None), Some(t("2027-09-07T05:00:00Z")));
        // 07:00 and 21:59 are not quiet; 22:00 is.
        assert_eq!(held_until(&night(), CPH, t("2027-09-07T05:00:00Z"), None), None);
        assert_eq!(held_until(&night(), CPH, t("2027-09-06T19:59:00Z"), None), None);
        assert!(held_until(&night(), CPH, t("2027-09-06T20:00:00Z"), None).is_some());
    }

    #[test]
    fn nights_across_a_change_of_the_clocks_end_at_07_local() {
        // 2027-03-28: 02:00 becomes 03:00. 23:00 on the 27th (+01:00) is 22:00 UTC; 07:00
        // on the 28th is +02:00, 05:00 UTC: an eight-hour night.
        assert_eq!(held_until(&night(), CPH, t("2027-03-27T22:00:00Z"), None), Some(t("2027-03-28T05:00:00Z")));
        // 2027-10-31: 03:00 becomes 02:00. 23:00 on the 30th (+02:00) is 21:00 UTC; 07:00
        // on the 31st is +01:00, 06:00 UTC: a ten-hour night.
        assert_eq!(held_until(&night(), CPH, t("2027-10-30T21:00:00Z"), None), Some(t("2027-10-31T06:00:00Z")));
        // Quiet hours ending in the hour the clocks skip end an hour later on the wall.
        let skip = QuietHours { from: "01:00".into(), to: "02:30".into(), timezone: String::new() };
        assert_eq!(held_until(&skip, CPH, t("2027-03-28T00:30:00Z"), None), Some(t("2027-03-28T01:30:00Z")));
    }

    #[test]
    fn daytime_quiet_hours_do_not_wrap() {
        let siesta = QuietHours { from: "13:00".into(), to: "15:00".into(), timezone: String::new() };
        assert_eq!(held_until(&siesta, CPH, t("2027-09-06T11:30:00Z"), None), Some(t("2027-09-06T13:00:00Z")));
        assert_eq!(held_until(&siesta, CPH, t("2027-09-06T13:00:00Z"), None), None);
        assert_eq!(held_until(&siesta, CPH, t("2027-09-06T10:59:00Z"), None), None);
    }
}
