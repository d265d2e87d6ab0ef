//! Care homes: every command against every state it can meet.

use chrono::NaiveDate;
use domain::types::Weekday;

use super::*;

fn fields(e: DomainError) -> Vec<String> {
    match e {
        DomainError::Invalid(v) => v.into_iter().map(|i| i.field).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn input<'a>() -> RegisterCareHomeInput<'a> {
    RegisterCareHomeInput {
        name: "Solgården",
        address: "Strandvejen 1, 2800 Lyngby",
        timezone: "",
        ride_hours: vec![("monday", "09:00", "12:00"), ("monday", "13:00", "17:00")],
        turnaround_minutes: 15,
        requires_confirmation: true,
        pilots_choose_riders: false,
    }
}

fn registered() -> CareHome {
    let cmd = RegisterCareHome::parse(Uuid::from_u128(1), Uuid::from_u128(2), input()).unwrap();
    register(None, &cmd).unwrap().iter().fold(None, CareHome::apply).unwrap()
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[test]
fn registering_a_care_home_records_its_rules() {
    let h = registered();
    assert_eq!(h.name, "Solgården");
    assert_eq!(h.timezone, None);
    assert_eq!(h.effective_timezone("Europe/Copenhagen"), "Europe/Copenhagen");
    assert_eq!(h.ride_hours.len(), 2);
    assert_eq!(h.ride_hours[1].weekday, Weekday::Monday);
    assert_eq!((h.turnaround_minutes, h.requires_confirmation), (15, true));
    assert_eq!(h.tenant(), Some(Uuid::from_u128(2)));
}

#[test]
fn a_care_home_may_have_its_own_zone_and_no_turnaround() {
    let i = RegisterCareHomeInput { timezone: "Atlantic/Faroe", turnaround_minutes: 0, ..input() };
    let cmd = RegisterCareHome::parse(Uuid::nil(), Uuid::nil(), i).unwrap();
    let h = register(None, &cmd).unwrap().iter().fold(None, CareHome::apply).unwrap();
    assert_eq!(h.effective_timezone("Europe/Copenhagen"), "Atlantic/Faroe");
    assert_eq!(h.turnaround_minutes, 0);
}

#[test]
fn registration_names_every_bad_field() {
    let i = RegisterCareHomeInput {
        name: "",
        address: " ",
        timezone: "Mars/Olympus",
        ride_hours: vec![("monday", "9:00", "12:00")],
        turnaround_minutes: 241,
        requires_confirmation: false,
        pilots_choose_riders: false,
    };
    let e = RegisterCareHome::parse(Uuid::nil(), Uuid::nil(), i).unwrap_err();
    assert_eq!(fields(e), ["/name", "/address", "/timezone", "/ride_hours/0/opens", "/turnaround_minutes"]);
}

#[test]
fn registering_twice_is_an_illegal_transition() {
    let h = registered();
    let cmd = RegisterCareHome::parse(Uuid::from_u128(1), Uuid::from_u128(2), input()).unwrap();
    assert_eq!(register(Some(&h), &cmd).unwrap_err().code(), ErrorCode::IllegalTransition);
}

#[test]
fn ride_hours_are_replaced_and_unchanged_hours_write_nothing() {
    let h = registered();
    let hours = parse_new_ride_hours(vec![("saturday", "10:00", "16:00")]).unwrap();
    let events = change_ride_hours(Some(&h), &hours).unwrap();
    let after = events.iter().fold(Some(h), CareHome::apply).unwrap();
    assert_eq!(after.ride_hours, hours);
    assert!(change_ride_hours(Some(&after), &hours).unwrap().is_empty());
    assert_eq!(change_ride_hours(None, &hours).unwrap_err().code(), ErrorCode::NotFound);
}

#[test]
fn overlapping_ride_hours_are_refused_with_their_row() {
    let e = parse_new_ride_hours(vec![("friday", "09:00", "12:00"), ("friday", "11:00", "13:00")]).unwrap_err();
    assert_eq!(fields(e), ["/ride_hours/1"]);
}

#[test]
fn a_closure_is_recorded_once() {
    let h = registered();
    let c = parse_closure("2027-03-01", "2027-03-08", "outbreak").unwrap();
    assert!(c.dates.contains(date("2027-03-07")) && !c.dates.contains(date("2027-03-08")));
    let events = close(Some(&h), &c).unwrap();
    assert!(matches!(&events[..], [CareHomeEvent::CareHomeClosed(e)] if e.reason == "outbreak"));
    let after = events.iter().fold(Some(h), CareHome::apply).unwrap();
    assert_eq!(after.closures, vec![c.clone()]);
    assert!(close(Some(&after), &c).unwrap().is_empty());
    let another = parse_closure("2027-03-01", "2027-03-09", "outbreak").unwrap();
    assert_eq!(close(Some(&after), &another).unwrap().len(), 1);
}

#[test]
fn a_closure_needs_an_ordered_range_and_a_reason() {
    assert_eq!(fields(parse_closure("2027-03-08", "2027-03-08", "x").unwrap_err()), ["/to"]);
    assert_eq!(fields(parse_closure("March", "2027-03-08", "").unwrap_err()), ["/from", "/reason"]);
    let c = parse_closure("2027-03-01", "2027-03-02", "x").unwrap();
    assert_eq!(close(None, &c).unwrap_err().code(), ErrorCode::NotFound);
}

#[test]
fn a_correction_records_only_what_changed_and_a_lifted_closure_opens_its_days() {
    let h = registered();
    let input = CorrectionInput {
        name: Some("Solgården Syd"),
        address: Some("Strandvejen 1, 2800 Lyngby"),
        turnaround_minutes: Some(20),
        ..Default::default()
    };
    let c = parse_correction(&input).unwrap();
    let events = correct(Some(&h), &c).unwrap();
    assert!(
        matches!(&events[..], [CareHomeEvent::CareHomeDetailsCorrected(e)]
            if e.name.as_deref() == Some("Solgården Syd") && e.address.is_none() && e.turnaround_minutes == Some(20)),
        "{events:?}"
    );
    let h = events.iter().fold(Some(h), CareHome::apply).unwrap();
    assert_eq!((h.name.as_str(), h.turnaround_minutes), ("Solgården Syd", 20));
    assert!(correct(Some(&h), &c).unwrap().is_empty(), "the same again writes nothing");
    let bad = CorrectionInput { name: Some(""), turnaround_minutes: Some(241), ..Default::default() };
    assert_eq!(fields(parse_correction(&bad).unwrap_err()), ["/name", "/turnaround_minutes"]);

    let closure = parse_closure("2027-03-01", "2027-03-08", "outbreak").unwrap();
    let h = close(Some(&h), &closure).unwrap().iter().fold(Some(h), CareHome::apply).unwrap();
    let id = Uuid::from_u128(9);
    let lifted = lift(Some(&h), id, closure.dates, true).unwrap();
    assert!(matches!(&lifted[..], [CareHomeEvent::ClosureLifted(e)] if e.closure_id == id));
    let h = lifted.iter().fold(Some(h), CareHome::apply).unwrap();
    assert!(h.closures.is_empty());
    assert!(lift(Some(&h), id, closure.dates, true).unwrap().is_empty(), "lifted already");
}
