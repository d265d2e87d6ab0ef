//! Trishaws: every command against every status.

use super::*;

fn fields(e: DomainError) -> Vec<String> {
    match e {
        DomainError::Invalid(v) => v.into_iter().map(|i| i.field).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn fold(state: Option<Bike>, events: &[CareHomeEvent]) -> Bike {
    events.iter().fold(state, Bike::apply).unwrap()
}

fn in_service() -> Bike {
    let cmd = CommissionBike::parse(Uuid::from_u128(7), Uuid::from_u128(1), "Rosa", "", 2).unwrap();
    fold(None, &commission(None, &cmd).unwrap())
}

fn out_of_service() -> Bike {
    let b = in_service();
    let events = take_out_of_service(Some(&b), &change("flat tyre", "2027-05-01")).unwrap();
    fold(Some(b), &events)
}

fn retired() -> Bike {
    let b = in_service();
    let events = retire(Some(&b), &change("", "")).unwrap();
    fold(Some(b), &events)
}

fn change(reason: &str, expected_back: &str) -> ServiceChange {
    ServiceChange::parse(reason, expected_back, false).unwrap()
}

fn types(events: &[CareHomeEvent]) -> Vec<&'static str> {
    use domain::DomainEvent;
    events.iter().map(|e| e.event_type()).collect()
}

#[test]
fn a_commissioned_trishaw_is_in_service_with_the_default_type() {
    let b = in_service();
    assert_eq!((b.status, b.bike_type.as_str(), b.seats), (BikeStatus::InService, "trishaw", 2));
    assert_eq!(b.tenant(), None, "bike events carry no chapter; the runner supplies it");
    let w = CommissionBike::parse(Uuid::nil(), Uuid::nil(), "Ole", " wheelchair ", 1).unwrap();
    assert_eq!(w.bike_type, "wheelchair");
}

#[test]
fn commissioning_checks_name_type_and_seats() {
    let e = CommissionBike::parse(Uuid::nil(), Uuid::nil(), "", &"x".repeat(51), 3).unwrap_err();
    assert_eq!(fields(e), ["/name", "/bike_type", "/seats"]);
    assert_eq!(fields(CommissionBike::parse(Uuid::nil(), Uuid::nil(), "A", "", 0).unwrap_err()), ["/seats"]);
}

#[test]
fn commissioning_twice_is_an_illegal_transition() {
    let b = in_service();
    let cmd = CommissionBike::parse(b.bike_id, b.carehome_id, "Rosa", "", 2).unwrap();
    assert_eq!(commission(Some(&b), &cmd).unwrap_err().code(), ErrorCode::IllegalTransition);
}

#[test]
fn taking_out_of_service_needs_a_reason_and_keeps_the_expected_return() {
    let b = out_of_service();
    assert_eq!(b.status, BikeStatus::OutOfService);
    assert_eq!(b.reason.as_deref(), Some("flat tyre"));
    assert_eq!(b.expected_back, "2027-05-01".parse().ok());
    assert_eq!(fields(ServiceChange::parse(" ", "", true).unwrap_err()), ["/reason"]);
    assert_eq!(fields(ServiceChange::parse("x", "May", true).unwrap_err()), ["/expected_back"]);
    let e = take_out_of_service(Some(&in_service()), &change("", "")).unwrap_err();
    assert_eq!(fields(e), ["/reason"]);
}

#[test]
fn only_a_trishaw_in_service_can_be_taken_out_of_service() {
    for b in [out_of_service(), retired()] {
        let e = take_out_of_service(Some(&b), &change("x", "")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::IllegalTransition, "{:?}", b.status);
    }
}

#[test]
fn returning_with_a_note_records_the_repair_first() {
    let b = out_of_service();
    let events = return_to_service(Some(&b), &change("new tube", "")).unwrap();
    assert_eq!(types(&events), ["BikeRepaired", "BikeReturnedToService"]);
    assert!(matches!(&events[0], CareHomeEvent::BikeRepaired(r) if r.note == "new tube"));
    let after = fold(Some(b), &events);
    assert_eq!((after.status, after.reason, after.expected_back), (BikeStatus::InService, None, None));
}

#[test]
fn returning_without_a_note_only_returns_it() {
    let b = out_of_service();
    assert_eq!(types(&return_to_service(Some(&b), &change("", "")).unwrap()), ["BikeReturnedToService"]);
}

#[test]
fn only_a_trishaw_out_of_service_can_be_returned() {
    for b in [in_service(), retired()] {
        let e = return_to_service(Some(&b), &change("", "")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::IllegalTransition, "{:?}", b.status);
    }
}

#[test]
fn retiring_is_final_from_in_or_out_of_service() {
    for b in [in_service(), out_of_service()] {
        let events = retire(Some(&b), &change("frame cracked", "")).unwrap();
        assert_eq!(types(&events), ["BikeRetired"]);
        let after = fold(Some(b), &events);
        assert_eq!((after.status, after.reason.as_deref()), (BikeStatus::Retired, Some("frame cracked")));
    }
    assert_eq!(retire(Some(&retired()), &change("", "")).unwrap_err().code(), ErrorCode::IllegalTransition);
}

#[test]
fn a_grounding_issue_takes_a_trishaw_in_service_out_of_service() {
    let b = in_service();
    let events = report_issue(Some(&b), &ReportIssue::parse("brake squeaks badly", true).unwrap()).unwrap();
    assert_eq!(types(&events), ["BikeIssueReported", "BikeTakenOutOfService"]);
    let after = fold(Some(b), &events);
    assert_eq!((after.status, after.reason.as_deref()), (BikeStatus::OutOfService, Some("brake squeaks badly")));
}

#[test]
fn other_issues_are_only_reported() {
    let b = in_service();
    let events = report_issue(Some(&b), &ReportIssue::parse("bell missing", false).unwrap()).unwrap();
    assert_eq!(types(&events), ["BikeIssueReported"]);
    assert_eq!(fold(Some(b), &events).status, BikeStatus::InService);
    let grounded = report_issue(Some(&out_of_service()), &ReportIssue::parse("chain", true).unwrap()).unwrap();
    assert_eq!(types(&grounded), ["BikeIssueReported"], "already out of service");
}

#[test]
fn issues_need_a_description_and_a_trishaw_not_retired() {
    assert_eq!(fields(ReportIssue::parse("  ", true).unwrap_err()), ["/description"]);
    let e = report_issue(Some(&retired()), &ReportIssue::parse("rust", false).unwrap()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::IllegalTransition);
}

#[test]
fn commands_on_an_unknown_trishaw_are_not_found() {
    let issue = ReportIssue::parse("x", false).unwrap();
    assert_eq!(report_issue(None, &issue).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(take_out_of_service(None, &change("x", "")).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(return_to_service(None, &change("", "")).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(retire(None, &change("", "")).unwrap_err().code(), ErrorCode::NotFound);
}

#[test]
fn a_correction_records_only_what_changed_and_a_move_changes_the_home() {
    let b = in_service();
    let c = parse_correction(Some("Rosa"), Some("tandem"), Some(1)).unwrap();
    let events = correct(Some(&b), &c).unwrap();
    assert_eq!(types(&events), ["BikeDetailsCorrected"]);
    assert!(
        matches!(&events[0], CareHomeEvent::BikeDetailsCorrected(e) if e.name.is_none() && e.seats == Some(1)),
        "the unchanged name is left out: {events:?}"
    );
    let b = fold(Some(b), &events);
    assert_eq!((b.bike_type.as_str(), b.seats), ("tandem", 1));
    assert!(correct(Some(&b), &c).unwrap().is_empty(), "the same again writes nothing");
    assert_eq!(fields(parse_correction(Some(" "), None, Some(3)).unwrap_err()), ["/name", "/seats"]);
    let home = Uuid::from_u128(2);
    let moved = fold(Some(b.clone()), &move_to(Some(&b), home).unwrap());
    assert_eq!(moved.carehome_id, home);
    assert!(move_to(Some(&moved), home).unwrap().is_empty(), "already there");
    let r = retired();
    assert_eq!(correct(Some(&r), &c).unwrap_err().code(), ErrorCode::IllegalTransition);
    assert_eq!(move_to(Some(&r), home).unwrap_err().code(), ErrorCode::IllegalTransition);
}
