//! Chapters: every command against every state it can meet.

use super::*;

fn fields(e: DomainError) -> Vec<String> {
    match e {
        DomainError::Invalid(v) => v.into_iter().map(|i| i.field).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn registered() -> Chapter {
    let cmd = RegisterChapter::parse(Uuid::nil(), "Lyngby-Taarbæk", "Europe/Copenhagen", None).unwrap();
    let events = register(None, &cmd).unwrap();
    events.iter().fold(None, Chapter::apply).unwrap()
}

#[test]
fn registering_a_chapter_records_it_with_default_settings() {
    let c = registered();
    assert_eq!(c.name, "Lyngby-Taarbæk");
    assert_eq!(c.timezone, "Europe/Copenhagen");
    assert_eq!(c.settings, ChapterSettings::default());
    assert_eq!(c.tenant(), Some(Uuid::nil()));
}

#[test]
fn registering_twice_is_an_illegal_transition() {
    let c = registered();
    let cmd = RegisterChapter::parse(Uuid::nil(), "Again", "Europe/Oslo", None).unwrap();
    assert_eq!(register(Some(&c), &cmd).unwrap_err().code(), ErrorCode::IllegalTransition);
}

#[test]
fn a_chapter_needs_a_name_and_an_iana_zone() {
    let e = RegisterChapter::parse(Uuid::nil(), " ", "CET+1", None).unwrap_err();
    assert_eq!(fields(e), ["/name", "/timezone"]);
}

#[test]
fn settings_are_bounded_and_name_their_fields() {
    let reminders = [60, 10_081, 1, 2, 3, 4];
    let input = SettingsInput {
        lead_time_minutes: 10_081,
        default_turnaround_minutes: 241,
        reminder_lead_minutes: &reminders,
        ride_season: ("2027-09-30", "2027-04-01"),
        record_window_days: Some(91),
        series_horizon_days: Some(6),
        offer_fanout: Some(51),
    };
    let e = RegisterChapter::parse(Uuid::nil(), "A", "Europe/Copenhagen", Some(&input)).unwrap_err();
    assert_eq!(
        fields(e),
        [
            "/settings/lead_time_minutes",
            "/settings/default_turnaround_minutes",
            "/settings/reminder_lead_minutes",
            "/settings/reminder_lead_minutes/1",
            "/settings/ride_season/ends",
            "/settings/record_window_days",
            "/settings/series_horizon_days",
            "/settings/offer_fanout",
        ]
    );
    let half = SettingsInput { ride_season: ("2027-04-01", ""), ..Default::default() };
    assert_eq!(parse_settings("", &half).unwrap_err()[0].field, "/ride_season/ends");
    let bad_date = SettingsInput { ride_season: ("1 April", "2027-10-01"), ..Default::default() };
    assert_eq!(parse_settings("", &bad_date).unwrap_err()[0].field, "/ride_season/starts");
}

#[test]
fn settings_at_their_limits_are_accepted() {
    let reminders = [10_080, 1440, 60, 30, 0];
    let input = SettingsInput {
        lead_time_minutes: 10_080,
        default_turnaround_minutes: 240,
        reminder_lead_minutes: &reminders,
        ride_season: ("2027-04-01", "2027-10-01"),
        record_window_days: Some(90),
        series_horizon_days: Some(7),
        offer_fanout: Some(50),
    };
    let s = parse_settings("/settings", &input).unwrap();
    assert_eq!(s.reminder_lead_minutes, reminders);
    assert_eq!((s.record_window_days, s.series_horizon_days, s.offer_fanout), (90, 7, 50));
    assert_eq!(s.ride_season.unwrap().to, NaiveDate::from_ymd_opt(2027, 10, 1).unwrap());
    let zero = parse_settings("", &SettingsInput::default()).unwrap();
    assert_eq!((zero.lead_time_minutes, zero.ride_season), (0, None));
    assert_eq!((zero.record_window_days, zero.series_horizon_days, zero.offer_fanout), (14, 56, 5), "defaults");
}

#[test]
fn changing_settings_replaces_them() {
    let c = registered();
    let reminders = [120];
    let s = parse_settings(
        "",
        &SettingsInput {
            lead_time_minutes: 30,
            default_turnaround_minutes: 10,
            reminder_lead_minutes: &reminders,
            ride_season: ("", ""),
            ..Default::default()
        },
    )
    .unwrap();
    let events = change_settings(Some(&c), &s).unwrap();
    assert!(matches!(&events[..], [CareHomeEvent::ChapterSettingsChanged(e)] if e.settings == s));
    let after = events.iter().fold(Some(c), Chapter::apply).unwrap();
    assert_eq!(after.settings, s);
    assert_eq!(after.name, "Lyngby-Taarbæk");
}

#[test]
fn unchanged_settings_write_nothing() {
    let c = registered();
    assert!(change_settings(Some(&c), &c.settings.clone()).unwrap().is_empty());
}

#[test]
fn settings_of_an_unknown_chapter_are_not_found() {
    assert_eq!(change_settings(None, &ChapterSettings::default()).unwrap_err().code(), ErrorCode::NotFound);
}

#[test]
fn other_events_leave_a_chapter_alone() {
    let c = registered();
    let e = CareHomeEvent::from(domain::events::BikeReturnedToService { bike_id: Uuid::nil() });
    assert_eq!(Chapter::apply(Some(c.clone()), &e), Some(c));
    assert_eq!(Chapter::apply(None, &e), None);
}
