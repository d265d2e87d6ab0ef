//! Property tests of the domain's validation: every parser takes arbitrary input without
//! panicking, accepts every valid value (and gives it back unchanged), and refuses invalid
//! ones naming the field they came from. The local-time rules take any zone, date and
//! clock time without panicking and only ever allow a slot inside one of its windows.
//!
//! The case count is proptest's (`PROPTEST_CASES`, 2048 by default per property); the runs
//! are deterministic (a fixed seed, no failure persistence), so CI is reproducible. The long
//! form: `PROPTEST_CASES=100000 cargo nextest run -p samskab-domain --test validation_props`.

use chrono::{Datelike, NaiveDate};
use domain::localtime;
use domain::types::{
    self, BikeStatus, CancellationReason, ConsentScope, GivenBy, LocalTime, PilotStatus, RideHours, RideKind, Weekday,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed};

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

/// Strings that stress parsers: any unicode, control characters, digits and separators.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9:\\- ]{0,12}",
        "[\\x00-\\x1f\\u{7f}\\u{85}\\u{2028}a-z]{0,8}",
        "\\PC{0,300}",
        Just(String::new()),
    ]
}

fn field() -> impl Strategy<Value = String> {
    "/[a-z_]{1,12}(/[0-9])?"
}

fn any_tz() -> impl Strategy<Value = chrono_tz::Tz> {
    proptest::sample::select(chrono_tz::TZ_VARIANTS.to_vec())
}

fn any_date() -> impl Strategy<Value = NaiveDate> {
    // 1900..2200: every zone's history and far future.
    (-25567i64..83000).prop_map(|d| NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(d))
}

fn any_local_time() -> impl Strategy<Value = LocalTime> {
    (0u32..=1440).prop_map(|m| LocalTime::from_minutes(m).unwrap())
}

fn weekday_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(Weekday::ALL.to_vec()).prop_map(|w| w.as_str().to_owned()),
        1 => nasty(),
    ]
}

fn time_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u32..25, 0u32..60).prop_map(|(h, m)| format!("{h:02}:{m:02}")),
        1 => nasty(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn labels_never_panic_and_keep_exactly_the_trimmed_text(field in field(), value in nasty(), max in 0usize..400) {
        match types::parse_label(&field, &value, max) {
            Ok(v) => {
                prop_assert_eq!(&v, value.trim());
                prop_assert!(!v.is_empty() && v.chars().count() <= max);
                prop_assert!(!v.chars().any(char::is_control));
            }
            Err(e) => {
                prop_assert_eq!(&e.field, &field);
                let t = value.trim();
                prop_assert!(t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control));
            }
        }
    }

    #[test]
    fn printable_labels_within_bounds_are_accepted(value in "[A-Za-zÆØÅæøå0-9][A-Za-zÆØÅæøå0-9 ,.'-]{0,58}[a-zå]") {
        prop_assert_eq!(types::parse_label("/name", &value, 60), Ok(value.clone()));
    }

    #[test]
    fn ids_dates_and_zones_never_panic_and_name_their_field(field in field(), value in nasty()) {
        if let Err(e) = types::parse_id(&field, &value) { prop_assert_eq!(&e.field, &field) }
        if let Err(e) = types::parse_date(&field, &value) { prop_assert_eq!(&e.field, &field) }
        if let Err(e) = types::parse_timezone(&field, &value) { prop_assert_eq!(&e.field, &field) }
        for r in [
            types::parse_enum::<Weekday>(&field, &value).err(),
            types::parse_enum::<RideKind>(&field, &value).err(),
            types::parse_enum::<CancellationReason>(&field, &value).err(),
            types::parse_enum::<ConsentScope>(&field, &value).err(),
            types::parse_enum::<GivenBy>(&field, &value).err(),
            types::parse_enum::<BikeStatus>(&field, &value).err(),
            types::parse_enum::<PilotStatus>(&field, &value).err(),
        ].into_iter().flatten() {
            prop_assert_eq!(&r.field, &field);
            prop_assert!(r.message.starts_with("must be one of"), "{}", r.message);
        }
    }

    #[test]
    fn valid_ids_dates_and_zones_are_accepted(id in any::<u128>(), date in any_date(), tz in any_tz()) {
        let id = uuid::Uuid::from_u128(id);
        prop_assert_eq!(types::parse_id("/id", &id.to_string()), Ok(id));
        prop_assert_eq!(types::parse_date("/d", &date.format("%Y-%m-%d").to_string()), Ok(date));
        prop_assert_eq!(types::parse_timezone("/tz", tz.name()), Ok(tz));
    }

    #[test]
    fn local_times_accept_exactly_hh_mm_up_to_24_00(text in time_text()) {
        match text.parse::<LocalTime>() {
            Ok(t) => {
                prop_assert_eq!(t.to_string(), text.clone());
                prop_assert!(t.minutes() <= 1440);
            }
            Err(m) => {
                prop_assert!(m.contains("is not a local time"), "{}", m);
                let valid = text.len() == 5
                    && text.as_bytes()[2] == b':'
                    && text[..2].bytes().all(|b| b.is_ascii_digit())
                    && text[3..].bytes().all(|b| b.is_ascii_digit())
                    && {
                        let (h, m): (u32, u32) = (text[..2].parse().unwrap(), text[3..].parse().unwrap());
                        m < 60 && (h < 24 || (h == 24 && m == 0))
                    };
                prop_assert!(!valid, "{} is a valid time", text);
            }
        }
    }

    #[test]
    fn ride_hours_are_accepted_only_without_inversions_or_overlaps(
        rows in proptest::collection::vec((weekday_text(), time_text(), time_text()), 0..10)
    ) {
        let input: Vec<(&str, &str, &str)> = rows.iter().map(|(w, o, c)| (w.as_str(), o.as_str(), c.as_str())).collect();
        match types::parse_ride_hours("/ride_hours", input) {
            Ok(hours) => {
                prop_assert_eq!(hours.len(), rows.len());
                for (i, h) in hours.iter().enumerate() {
                    prop_assert!(h.opens < h.closes);
                    for other in &hours[..i] {
                        prop_assert!(!(other.weekday == h.weekday && other.opens < h.closes && h.opens < other.closes));
                    }
                }
            }
            Err(e) => {
                // The field is the offending row (or one of its members).
                let i: usize = e.field.strip_prefix("/ride_hours/").and_then(|r| r.split('/').next()).and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("not a row pointer: {}", e.field));
                prop_assert!(i < rows.len());
                let member = e.field.rsplit('/').next().unwrap();
                prop_assert!(["weekday", "opens", "closes"].contains(&member) || member == i.to_string(), "{}", e.field);
            }
        }
    }

    #[test]
    fn local_time_rules_take_any_zone_date_and_clock_time(
        tz in any_tz(), date in any_date(), opens in any_local_time(), closes in any_local_time(),
        offset in -2000i64..2000, minutes in 0i64..1500,
    ) {
        let (start_of_day, _) = localtime::local_day(tz, date);
        let _ = localtime::instant(tz, date, opens, false);
        let hours = [RideHours { weekday: Weekday::from(date.weekday()), opens, closes }];
        let windows = localtime::windows_on(tz, date, &hours);
        for (a, b) in &windows {
            prop_assert!(a < b);
        }
        let start = start_of_day + chrono::Duration::minutes(offset);
        let end = start + chrono::Duration::minutes(minutes);
        if localtime::slot_allowed(tz, &hours, &[], start, end) {
            let day = localtime::local_date(tz, start);
            let inside = localtime::windows_on(tz, day, &hours).iter().any(|(a, b)| *a <= start && end <= *b);
            prop_assert!(inside, "allowed outside every window");
        }
        // A closure of that local date refuses every slot on it.
        let day = localtime::local_date(tz, start);
        let closed = types::DateRange { from: day, to: day.succ_opt().unwrap_or(day) };
        if closed.from < closed.to {
            prop_assert!(!localtime::slot_allowed(tz, &hours, &[closed], start, end));
        }
    }
}
