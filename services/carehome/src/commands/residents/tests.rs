//! Residents: every command against every status.

use domain::DomainEvent;

use super::*;

fn field_list(v: Vec<Invalid>) -> Vec<String> {
    v.into_iter().map(|i| i.field).collect()
}

fn scope(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn consent(given_by: &str) -> Consent {
    let s = scope(&["rides"]);
    parse_consent("/consent", Some(ConsentInput { given_by, given_at: "2027-01-05T10:00:00+01:00", scope: &s }))
        .unwrap()
}

fn fold(state: Option<Resident>, events: &[CareHomeEvent]) -> Resident {
    events.iter().fold(state, Resident::apply).unwrap()
}

fn living() -> Resident {
    let cmd = AdmitResident {
        resident_id: Uuid::from_u128(3),
        carehome_id: Uuid::from_u128(1),
        personal: Sealed("sealed:v1:AAAA".into()),
        consent: consent("relative"),
    };
    fold(None, &admit(None, &cmd).unwrap())
}

fn moved_out() -> Resident {
    let r = living();
    let events = move_out(Some(&r)).unwrap();
    fold(Some(r), &events)
}

fn erased() -> Resident {
    let r = living();
    let events = erase(Some(&r)).unwrap();
    fold(Some(r), &events)
}

#[test]
fn admission_records_the_resident_and_their_consent() {
    let r = living();
    assert_eq!(r.status, ResidentStatus::LivingHere);
    let c = r.consent.unwrap();
    assert_eq!((c.given_by, c.scope), (GivenBy::Relative, vec![ConsentScope::Rides]));
    assert_eq!(c.given_at.to_rfc3339(), "2027-01-05T09:00:00+00:00", "stored in UTC");
    assert_eq!(r.personal.unwrap().0, "sealed:v1:AAAA");
}

#[test]
fn admitting_twice_is_an_illegal_transition() {
    let r = living();
    let cmd = AdmitResident {
        resident_id: r.resident_id,
        carehome_id: r.carehome_id,
        personal: Sealed("sealed:v1:BBBB".into()),
        consent: consent("resident"),
    };
    assert_eq!(admit(Some(&r), &cmd).unwrap_err().code(), ErrorCode::IllegalTransition);
}

#[test]
fn consent_is_validated_field_by_field() {
    let s = scope(&["rides", "selfies"]);
    let e = parse_consent("/consent", Some(ConsentInput { given_by: "neighbour", given_at: "yesterday", scope: &s }));
    assert_eq!(field_list(e.unwrap_err()), ["/consent/given_by", "/consent/given_at", "/consent/scope/1"]);
    let empty: Vec<String> = vec![];
    let e =
        parse_consent("", Some(ConsentInput { given_by: "guardian", given_at: "2027-01-05T10:00:00Z", scope: &empty }));
    assert_eq!(field_list(e.unwrap_err()), ["/scope"]);
    assert_eq!(field_list(parse_consent("/consent", None).unwrap_err()), ["/consent"]);
}

#[test]
fn consent_scope_is_kept_without_duplicates() {
    let s = scope(&["stories", "rides", "stories"]);
    let c = parse_consent("", Some(ConsentInput { given_by: "resident", given_at: "2027-01-05T10:00:00Z", scope: &s }));
    assert_eq!(c.unwrap().scope, [ConsentScope::Stories, ConsentScope::Rides]);
}

#[test]
fn personal_fields_need_a_name_and_bounded_notes() {
    let p = parse_personal(" Karen Blixen ", "").unwrap();
    assert_eq!((p.display_name.as_str(), p.notes), ("Karen Blixen", None));
    let e = parse_personal("", &"n".repeat(NOTES_MAX + 1)).unwrap_err();
    assert_eq!(field_list(e), ["/display_name", "/notes"]);
}

#[test]
fn recording_consent_replaces_it_and_the_same_consent_writes_nothing() {
    let r = living();
    let newer = consent("guardian");
    let events = record_consent(Some(&r), &newer).unwrap();
    assert_eq!(events[0].event_type(), "ResidentConsentRecorded");
    let after = fold(Some(r), &events);
    assert_eq!(after.consent.as_ref(), Some(&newer));
    assert!(record_consent(Some(&after), &newer).unwrap().is_empty());
}

#[test]
fn withdrawing_consent_needs_consent_on_record() {
    let r = living();
    let events = withdraw_consent(Some(&r)).unwrap();
    assert_eq!(events[0].event_type(), "ResidentConsentWithdrawn");
    let after = fold(Some(r), &events);
    assert_eq!(after.consent, None);
    assert_eq!(withdraw_consent(Some(&after)).unwrap_err().code(), ErrorCode::IllegalTransition);
    let again = record_consent(Some(&after), &consent("resident")).unwrap();
    assert!(fold(Some(after), &again).consent.is_some(), "consent can be given again");
}

#[test]
fn moving_out_ends_the_residency() {
    let r = moved_out();
    assert_eq!(r.status, ResidentStatus::MovedOut);
}

#[test]
fn a_resident_who_moved_out_or_was_erased_takes_no_more_commands() {
    for r in [moved_out(), erased()] {
        let status = r.status;
        assert_eq!(record_consent(Some(&r), &consent("resident")).unwrap_err().code(), ErrorCode::IllegalTransition);
        assert_eq!(withdraw_consent(Some(&r)).unwrap_err().code(), ErrorCode::IllegalTransition, "{status:?}");
        assert_eq!(move_out(Some(&r)).unwrap_err().code(), ErrorCode::IllegalTransition, "{status:?}");
    }
}

#[test]
fn erasure_forgets_the_sealed_fields_and_is_harmless_twice() {
    let r = erased();
    assert_eq!((r.status, r.personal.clone(), r.consent.clone()), (ResidentStatus::Erased, None, None));
    assert!(erase(Some(&r)).unwrap().is_empty());
    let gone = moved_out();
    assert_eq!(erase(Some(&gone)).unwrap()[0].event_type(), "ResidentErased", "a former resident can be erased");
}

#[test]
fn commands_on_an_unknown_resident_are_not_found() {
    assert_eq!(record_consent(None, &consent("resident")).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(withdraw_consent(None).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(move_out(None).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(erase(None).unwrap_err().code(), ErrorCode::NotFound);
}
