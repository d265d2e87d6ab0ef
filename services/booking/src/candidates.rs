//! The candidates for a ride request (`GET /v1/ride-requests/{id}/candidates`, and the
//! offers made of them): pilots of the chapter who could ride it, with the intervals in
//! which they could, best placed first. One pure function over what a loader read
//! ([`CandidateInput`]); the I/O lives in [`crate::offers`].
//!
//! A pilot is a candidate when active (not suspended, retired or erased); qualified, on
//! every local day of the window, for the type of one of the home's trishaws in service;
//! having chosen this home or none; and free for the ride: their declared weekly
//! availability (in the home's local time, daylight saving respected) ∩ the window ∩ the
//! home's ride hours (closed days and days out of season have none), from the chapter's
//! lead time on, minus their own pending, booked and started rides widened by the home's
//! turnaround on both sides, leaves an interval of at least the ride's length.
//! Ranked by fewest completed rides in the last 30 days, ties by pilot id.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use domain::localtime;
use domain::types::{BikeStatus, PilotStatus, RideHours};
use uuid::Uuid;

use crate::availability::free_intervals;
use crate::facts::{BikeFact, CareHomeFact, ChapterFact, PilotFact};
use crate::requests::RideRequest;
use crate::rules;

/// An interval (UTC), `end` exclusive.
pub type Interval = (DateTime<Utc>, DateTime<Utc>);

/// What the candidates of one request are computed from.
#[derive(Debug, Clone)]
pub struct CandidateInput {
    /// The request.
    pub request: RideRequest,
    /// Its care home.
    pub home: CareHomeFact,
    /// Its chapter.
    pub chapter: ChapterFact,
    /// The home's trishaws.
    pub bikes: Vec<BikeFact>,
    /// The chapter's pilots.
    pub pilots: Vec<PilotFact>,
    /// Each pilot's pending, booked and started rides around the window (start, end).
    pub rides: HashMap<Uuid, Vec<Interval>>,
    /// Each pilot's completed rides that started in the 30 days before `now`.
    pub completed: HashMap<Uuid, u32>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// One candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The pilot.
    pub pilot_id: Uuid,
    /// The maximal intervals in which the ride fits, each at least its length.
    pub free: Vec<Interval>,
    /// Completed rides in the last 30 days.
    pub rides_last_30_days: u32,
}

/// How far back completed rides count for the ranking.
pub const RECENT_DAYS: i64 = 30;

/// The intersection of two sets of intervals (each in any order), sorted.
pub fn intersect(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let mut out: Vec<Interval> = a
        .iter()
        .flat_map(|(s1, e1)| b.iter().map(move |(s2, e2)| ((*s1).max(*s2), (*e1).min(*e2))))
        .filter(|(s, e)| s < e)
        .collect();
    out.sort();
    out
}

/// The request's candidates, best placed first.
pub fn candidates(i: &CandidateInput) -> Vec<Candidate> {
    let r = &i.request;
    let tz = rules::zone(&i.home, &i.chapter);
    let window = [(r.window_from, r.window_to)];
    let first = localtime::local_date(tz, r.window_from);
    let last = localtime::local_date(tz, r.window_to - Duration::microseconds(1)).max(first);
    let mut days = Vec::new();
    let mut d = first;
    while d <= last {
        days.push(d);
        match d.succ_opt() {
            Some(n) => d = n,
            None => break,
        }
    }
    // The home's ride hours inside the window, closed days and days out of season left out.
    let open_days: Vec<_> = days
        .iter()
        .copied()
        .filter(|d| {
            !i.home.closures.iter().any(|c| c.contains(*d))
                && i.chapter.settings.ride_season.as_ref().is_none_or(|s| s.contains(*d))
        })
        .collect();
    let hours: Vec<Interval> =
        open_days.iter().flat_map(|d| localtime::windows_on(tz, *d, &i.home.ride_hours)).collect();
    let hours = intersect(&hours, &window);
    let types: BTreeSet<&str> = i
        .bikes
        .iter()
        .filter(|b| b.status == BikeStatus::InService && b.carehome_id == i.home.carehome_id)
        .map(|b| b.bike_type.as_str())
        .collect();
    let not_before = i.now + Duration::minutes(i64::from(i.chapter.settings.lead_time_minutes));
    let turnaround = Duration::minutes(i64::from(i.home.turnaround_minutes));
    let length = Duration::minutes(i64::from(r.duration_minutes));
    let mut out: Vec<Candidate> = i
        .pilots
        .iter()
        .filter(|p| p.status == PilotStatus::Active && p.chapter_id == r.chapter_id)
        .filter(|p| p.carehome_ids.is_empty() || p.carehome_ids.contains(&i.home.carehome_id))
        .filter(|p| types.iter().any(|t| p.qualified_for(t, first, last)))
        .filter_map(|p| {
            let weekly: Vec<RideHours> =
                p.weekly.iter().map(|w| RideHours { weekday: w.weekday, opens: w.from, closes: w.to }).collect();
            let declared: Vec<Interval> =
                open_days.iter().flat_map(|d| localtime::windows_on(tz, *d, &weekly)).collect();
            let windows = intersect(&declared, &hours);
            let busy: Vec<Interval> = i
                .rides
                .get(&p.pilot_id)
                .map(|rides| rides.iter().map(|(s, e)| (*s - turnaround, *e + turnaround)).collect())
                .unwrap_or_default();
            let free = free_intervals(&windows, &busy, not_before, length);
            (!free.is_empty()).then(|| Candidate {
                pilot_id: p.pilot_id,
                free,
                rides_last_30_days: i.completed.get(&p.pilot_id).copied().unwrap_or(0),
            })
        })
        .collect();
    out.sort_by_key(|c| (c.rides_last_30_days, c.pilot_id));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::NaiveDate;
    use domain::events::ChapterSettings;
    use domain::types::{DateRange, LocalTime, RideKind, RideRequestStatus, Weekday, WeeklyWindow};

    use super::*;

    const CHAPTER: Uuid = Uuid::from_u128(0xC);
    const HOME: Uuid = Uuid::from_u128(0x40);
    const OTHER_HOME: Uuid = Uuid::from_u128(0x41);

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn lt(s: &str) -> LocalTime {
        s.parse().unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn pilot(n: u128) -> PilotFact {
        let mut q = BTreeMap::new();
        q.insert("duo".to_owned(), (day("2026-01-01"), day("2028-01-01")));
        PilotFact {
            pilot_id: Uuid::from_u128(n),
            chapter_id: CHAPTER,
            status: PilotStatus::Active,
            qualifications: q,
            qualified: vec![],
            // Mondays 09:00-13:00 local.
            weekly: vec![WeeklyWindow { weekday: Weekday::Monday, from: lt("09:00"), to: lt("13:00") }],
            carehome_ids: vec![],
            availability_version: 0,
        }
    }

    /// A request for 60 min on Monday 2027-05-03 between 08:00 and 16:00 Copenhagen time
    /// (06:00-14:00 UTC), at a home riding 10:00-15:00 local with 15 min turnaround.
    fn input() -> CandidateInput {
        let hours = vec![RideHours { weekday: Weekday::Monday, opens: lt("10:00"), closes: lt("15:00") }];
        CandidateInput {
            request: RideRequest {
                ride_request_id: Uuid::from_u128(0x99),
                carehome_id: HOME,
                chapter_id: CHAPTER,
                resident_ids: vec![],
                window_from: t("2027-05-03T06:00:00Z"),
                window_to: t("2027-05-03T14:00:00Z"),
                duration_minutes: 60,
                kind: RideKind::Pleasure,
                note: None,
                status: RideRequestStatus::Open,
                ride_id: None,
                pilot_id: None,
                offered: vec![],
                offer_rounds: 0,
            },
            home: CareHomeFact {
                carehome_id: HOME,
                chapter_id: CHAPTER,
                timezone: None,
                ride_hours: hours,
                turnaround_minutes: 15,
                requires_confirmation: false,
                pilots_choose_riders: false,
                closures: vec![],
            },
            chapter: ChapterFact {
                chapter_id: CHAPTER,
                timezone: "Europe/Copenhagen".into(),
                settings: ChapterSettings::default(),
            },
            bikes: vec![
                BikeFact {
                    bike_id: Uuid::from_u128(0xB1),
                    carehome_id: HOME,
                    bike_type: "duo".into(),
                    seats: 2,
                    status: BikeStatus::InService,
                },
                BikeFact {
                    bike_id: Uuid::from_u128(0xB2),
                    carehome_id: HOME,
                    bike_type: "wheelchair".into(),
                    seats: 1,
                    status: BikeStatus::OutOfService,
                },
            ],
            pilots: vec![],
            rides: HashMap::new(),
            completed: HashMap::new(),
            now: t("2027-04-20T08:00:00Z"),
        }
    }

    fn ids(c: &[Candidate]) -> Vec<u128> {
        c.iter().map(|c| c.pilot_id.as_u128()).collect()
    }

    #[test]
    fn a_table_of_pilots_gives_the_exact_ranking_and_free_intervals() {
        let mut i = input();
        // 1: plain: free 10:00-13:00 local = 08:00-11:00 UTC.
        let p1 = pilot(1);
        // 2: qualified only for the out-of-service wheelchair bike: not a candidate.
        let mut p2 = pilot(2);
        p2.qualifications = BTreeMap::from([("wheelchair".to_owned(), (day("2026-01-01"), day("2028-01-01")))]);
        // 3: qualification runs out before the window: not a candidate.
        let mut p3 = pilot(3);
        p3.qualifications.insert("duo".into(), (day("2026-01-01"), day("2027-05-02")));
        // 4: suspended.
        let mut p4 = pilot(4);
        p4.status = PilotStatus::Suspended;
        // 5: chose another home only.
        let mut p5 = pilot(5);
        p5.carehome_ids = vec![OTHER_HOME];
        // 6: chose this home (and another); three completed rides lately.
        let mut p6 = pilot(6);
        p6.carehome_ids = vec![OTHER_HOME, HOME];
        i.completed.insert(p6.pilot_id, 3);
        // 7: available on Tuesdays only.
        let mut p7 = pilot(7);
        p7.weekly = vec![WeeklyWindow { weekday: Weekday::Tuesday, from: lt("09:00"), to: lt("13:00") }];
        // 8: a ride 11:00-11:30 local (09:00-09:30 UTC) elsewhere: with 15 min turnaround
        // on both sides 08:45-09:45 UTC is taken; 08:00-08:45 is too short, 09:45-11:00 fits.
        let p8 = pilot(8);
        i.rides.insert(p8.pilot_id, vec![(t("2027-05-03T09:00:00Z"), t("2027-05-03T09:30:00Z"))]);
        // 9: a ride eats everything but 50 minutes: not a candidate.
        let p9 = pilot(9);
        i.rides.insert(p9.pilot_id, vec![(t("2027-05-03T08:00:00Z"), t("2027-05-03T09:55:00Z"))]);
        // 10: one completed ride lately; available 12:30-18:00 local: 12:30-15:00 local.
        let mut p10 = pilot(10);
        p10.weekly = vec![WeeklyWindow { weekday: Weekday::Monday, from: lt("12:30"), to: lt("18:00") }];
        i.completed.insert(p10.pilot_id, 1);
        // 11: retired; 12: erased; 13: another chapter.
        let mut p11 = pilot(11);
        p11.status = PilotStatus::Retired;
        let mut p12 = pilot(12);
        p12.status = PilotStatus::Erased;
        let mut p13 = pilot(13);
        p13.chapter_id = Uuid::from_u128(0xF);
        // 14: declared nothing.
        let mut p14 = pilot(14);
        p14.weekly = vec![];
        i.pilots = vec![p14, p13, p12, p11, p10, p9, p8, p7, p6, p5, p4, p3, p2, p1];

        let c = candidates(&i);
        assert_eq!(ids(&c), vec![1, 8, 10, 6]);
        assert_eq!(c[0].free, vec![(t("2027-05-03T08:00:00Z"), t("2027-05-03T11:00:00Z"))]);
        assert_eq!(c[1].free, vec![(t("2027-05-03T09:45:00Z"), t("2027-05-03T11:00:00Z"))]);
        assert_eq!(c[2].free, vec![(t("2027-05-03T10:30:00Z"), t("2027-05-03T13:00:00Z"))]);
        assert_eq!((c[2].rides_last_30_days, c[3].rides_last_30_days), (1, 3));
    }

    #[test]
    fn the_window_closures_and_lead_time_cut_free_time() {
        let mut i = input();
        i.pilots = vec![pilot(1)];
        // The window ends at 11:30 local: 10:00-11:30 local.
        i.request.window_to = t("2027-05-03T09:30:00Z");
        assert_eq!(candidates(&i)[0].free, vec![(t("2027-05-03T08:00:00Z"), t("2027-05-03T09:30:00Z"))]);
        // A 2 h ride does not fit.
        i.request.duration_minutes = 120;
        assert!(candidates(&i).is_empty());
        i.request.duration_minutes = 60;
        // Now 09:00 local with 60 min lead: from 10:00 local, all of it; now 10:15 local:
        // from 11:15 local, 15 minutes left.
        i.chapter.settings.lead_time_minutes = 60;
        i.now = t("2027-05-03T07:00:00Z");
        assert_eq!(candidates(&i)[0].free, vec![(t("2027-05-03T08:00:00Z"), t("2027-05-03T09:30:00Z"))]);
        i.now = t("2027-05-03T08:15:00Z");
        assert!(candidates(&i).is_empty());
        i.now = t("2027-04-20T08:00:00Z");
        // A closed day has no ride hours.
        i.home.closures = vec![DateRange { from: day("2027-05-03"), to: day("2027-05-04") }];
        assert!(candidates(&i).is_empty());
    }

    #[test]
    fn local_time_follows_daylight_saving() {
        // Monday 2027-03-29, the day after the change to summer time (+02:00): 10:00-13:00
        // local is 08:00-11:00 UTC; a week earlier (+01:00) it was 09:00-12:00 UTC.
        let mut i = input();
        i.pilots = vec![pilot(1)];
        i.now = t("2027-03-01T08:00:00Z");
        i.request.window_from = t("2027-03-22T00:00:00Z");
        i.request.window_to = t("2027-03-30T00:00:00Z");
        let c = candidates(&i);
        assert_eq!(
            c[0].free,
            vec![
                (t("2027-03-22T09:00:00Z"), t("2027-03-22T12:00:00Z")),
                (t("2027-03-29T08:00:00Z"), t("2027-03-29T11:00:00Z")),
            ]
        );
    }

    #[test]
    fn intersections() {
        let a = [(t("2027-05-03T08:00:00Z"), t("2027-05-03T12:00:00Z"))];
        let b = [
            (t("2027-05-03T07:00:00Z"), t("2027-05-03T09:00:00Z")),
            (t("2027-05-03T10:00:00Z"), t("2027-05-03T13:00:00Z")),
        ];
        assert_eq!(
            intersect(&a, &b),
            vec![
                (t("2027-05-03T08:00:00Z"), t("2027-05-03T09:00:00Z")),
                (t("2027-05-03T10:00:00Z"), t("2027-05-03T12:00:00Z")),
            ]
        );
    }
}
