//! Coordinators: assigning and removing against every state they can meet, and which
//! user ids are accepted.

use domain::{Aggregate, DomainError, ErrorCode};
use uuid::Uuid;

use super::*;
use crate::carehomes::{RegisterCareHome, RegisterCareHomeInput, register};

fn registered() -> CareHome {
    let input = RegisterCareHomeInput {
        name: "Solgården",
        address: "Strandvejen 1, 2800 Lyngby",
        ride_hours: vec![("monday", "09:00", "12:00")],
        turnaround_minutes: 15,
        ..Default::default()
    };
    let cmd = RegisterCareHome::parse(Uuid::from_u128(1), Uuid::from_u128(2), input).unwrap();
    register(None, &cmd).unwrap().iter().fold(None, CareHome::apply).unwrap()
}

fn after(home: CareHome, events: &[CareHomeEvent]) -> CareHome {
    events.iter().fold(Some(home), CareHome::apply).unwrap()
}

fn rejected_field(r: Result<String, DomainError>) -> String {
    match r {
        Err(DomainError::Invalid(v)) => v.into_iter().map(|i| i.field).collect::<Vec<_>>().join(","),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn a_new_care_home_has_no_coordinators() {
    assert!(registered().coordinator_ids.is_empty());
}

#[test]
fn coordinators_are_kept_in_order_of_assignment() {
    let mut home = registered();
    for user in ["user-b", "user-a", "user-c"] {
        let events = assign(Some(&home), user).unwrap();
        assert!(matches!(&events[..], [CareHomeEvent::CoordinatorAssigned(e)]
            if e.user_id == user && e.carehome_id == home.carehome_id));
        home = after(home, &events);
    }
    assert_eq!(home.coordinator_ids, ["user-b", "user-a", "user-c"]);
}

#[test]
fn assigning_someone_already_assigned_writes_nothing() {
    let home = registered();
    let home = after(home.clone(), &assign(Some(&home), "user-a").unwrap());
    assert!(assign(Some(&home), "user-a").unwrap().is_empty());
    assert_eq!(home.coordinator_ids, ["user-a"]);
}

#[test]
fn removing_takes_one_out_and_reassigning_puts_them_last() {
    let mut home = registered();
    for user in ["user-a", "user-b"] {
        home = after(home.clone(), &assign(Some(&home), user).unwrap());
    }
    let events = remove(Some(&home), "user-a").unwrap();
    assert!(matches!(&events[..], [CareHomeEvent::CoordinatorRemoved(e)] if e.user_id == "user-a"));
    let home = after(home, &events);
    assert_eq!(home.coordinator_ids, ["user-b"]);
    let home = after(home.clone(), &assign(Some(&home), "user-a").unwrap());
    assert_eq!(home.coordinator_ids, ["user-b", "user-a"]);
}

#[test]
fn removing_someone_not_assigned_writes_nothing() {
    let home = registered();
    assert!(remove(Some(&home), "user-a").unwrap().is_empty());
    let home = after(home.clone(), &assign(Some(&home), "user-a").unwrap());
    assert!(remove(Some(&home), "User-A").unwrap().is_empty(), "ids are compared exactly");
}

#[test]
fn a_missing_care_home_is_not_found() {
    assert_eq!(assign(None, "user-a").unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(remove(None, "user-a").unwrap_err().code(), ErrorCode::NotFound);
}

#[test]
fn folding_the_same_event_twice_keeps_one_entry() {
    let home = registered();
    let events = assign(Some(&home), "user-a").unwrap();
    let twice = [events.clone(), events].concat();
    assert_eq!(after(home, &twice).coordinator_ids, ["user-a"]);
}

#[test]
fn user_ids_are_printable_without_whitespace_and_at_most_128_characters() {
    for ok in ["a", "auth0|5f7c8ec7c33c6c004bbafe82", "bruger-Ærø", &"x".repeat(USER_ID_MAX), &"ø".repeat(USER_ID_MAX)]
    {
        assert_eq!(parse_user_id(ok).unwrap(), ok);
    }
    for bad in [
        "",
        " ",
        " user-a",
        "user-a ",
        "user a",
        "user\ta",
        "user\u{0}a",
        "user\u{a0}a",
        "user\u{200b}a",
        "user\u{202e}a",
    ] {
        assert_eq!(rejected_field(parse_user_id(bad)), "/user_id", "{bad:?}");
    }
    assert_eq!(rejected_field(parse_user_id(&"x".repeat(USER_ID_MAX + 1))), "/user_id");
}
