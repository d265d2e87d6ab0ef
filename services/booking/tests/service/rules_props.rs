//! Property tests of booking's slot rules (`rules::check_slot`) against an oracle computed
//! independently in the care home's local time: any start and any duration is decided
//! without panicking; a slot inside the ride hours of one local day (09:00-17:00 in
//! Copenhagen, daylight saving included), within the qualification and past the lead time
//! is accepted; every other slot is refused with the rule that names why.
//!
//! Deterministic (fixed seed); `PROPTEST_CASES` sets the count (2048 by default); the long
//! form: `PROPTEST_CASES=100000 cargo nextest run -p samskab-booking --test service rules_props::`.

use std::collections::BTreeMap;

use booking::facts::{BikeFact, CareHomeFact, ChapterFact, PilotFact};
use booking::rules::{Facts, Slot, check_slot};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use domain::events::ChapterSettings;
use domain::types::{BikeStatus, PilotStatus, RideHours, Weekday};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed};
use servicekit::ErrorCode;
use uuid::Uuid;

const CPH: chrono_tz::Tz = chrono_tz::Europe::Copenhagen;

fn config() -> Config {
    Config {
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x5a_4d_53_4b_41_42),
        // Cheap cases: more than proptest's 256 unless PROPTEST_CASES says otherwise.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2048),
        ..Config::default()
    }
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn facts(lead_minutes: u32) -> Facts {
    let chapter = Uuid::from_u128(1);
    let home = Uuid::from_u128(2);
    let mut q = BTreeMap::new();
    q.insert("trishaw".to_owned(), (date("2027-01-01"), date("2027-12-31")));
    Facts {
        chapter: ChapterFact {
            chapter_id: chapter,
            timezone: "Europe/Copenhagen".into(),
            settings: ChapterSettings { lead_time_minutes: lead_minutes, ..ChapterSettings::default() },
        },
        home: CareHomeFact {
            carehome_id: home,
            chapter_id: chapter,
            timezone: None,
            ride_hours: Weekday::ALL
                .iter()
                .map(|w| RideHours { weekday: *w, opens: "09:00".parse().unwrap(), closes: "17:00".parse().unwrap() })
                .collect(),
            turnaround_minutes: 15,
            requires_confirmation: false,
            pilots_choose_riders: false,
            closures: vec![],
        },
        bike: BikeFact {
            bike_id: Uuid::from_u128(3),
            carehome_id: home,
            bike_type: "trishaw".into(),
            seats: 2,
            status: BikeStatus::InService,
        },
        pilot: PilotFact {
            pilot_id: Uuid::from_u128(4),
            chapter_id: chapter,
            status: PilotStatus::Active,
            qualifications: q,
            qualified: vec![],
            weekly: vec![],
            carehome_ids: vec![],
            availability_version: 0,
        },
    }
}

/// Instants from 2026 to 2028 at minute resolution.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let base = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().to_utc();
    (0i64..(2 * 366 * 24 * 60)).prop_map(move |m| base + Duration::minutes(m))
}

/// What the rules should say, worked out in local time.
fn oracle(start: DateTime<Utc>, minutes: u32, now: DateTime<Utc>, lead: u32) -> Result<(), ErrorCode> {
    let end = start + Duration::minutes(i64::from(minutes));
    let (ls, le) = (start.with_timezone(&CPH), (end - Duration::microseconds(1)).with_timezone(&CPH));
    if ls.date_naive() < date("2027-01-01") || le.date_naive() > date("2027-12-31") {
        return Err(ErrorCode::NotQualified);
    }
    if start < now + Duration::minutes(i64::from(lead)) {
        return Err(ErrorCode::LeadTime);
    }
    let opens = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
    let closes = NaiveTime::from_hms_opt(17, 0, 0).unwrap();
    let end_local = end.with_timezone(&CPH);
    let same_day = end_local.date_naive() == ls.date_naive();
    if same_day && ls.time() >= opens && end_local.time() <= closes { Ok(()) } else { Err(ErrorCode::OutsideRideHours) }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_slot_is_decided_as_local_time_says(
        start in instant(), minutes in prop_oneof![4 => 1u32..600, 1 => any::<u32>()],
        now in instant(), lead in 0u32..3000,
    ) {
        // Durations beyond a day are decided by the rules too (the API bounds them first).
        let got = check_slot(&facts(lead), &Slot { start, duration_minutes: minutes }, now).map_err(|e| e.code());
        if minutes <= 24 * 60 {
            prop_assert_eq!(got, oracle(start, minutes, now, lead), "start {} for {} min", start, minutes);
        } else {
            prop_assert!(got.is_err(), "a slot of {} minutes was accepted", minutes);
        }
    }

    #[test]
    fn slots_inside_the_hours_are_accepted(day in 0i64..365, from in 0i64..(8 * 60), len in 1i64..(8 * 60)) {
        let len = len.min(8 * 60 - from);
        prop_assume!(len > 0);
        let local = date("2027-01-01") + Duration::days(day);
        let start = local.and_hms_opt(9, 0, 0).unwrap().and_local_timezone(CPH).single().unwrap().to_utc()
            + Duration::minutes(from);
        let now = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().to_utc();
        prop_assert_eq!(check_slot(&facts(60), &Slot { start, duration_minutes: len as u32 }, now).map_err(|e| e.code()), Ok(()));
    }
}
