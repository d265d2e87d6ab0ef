//! The rules table by table: each row is a caller, each column what it may do to one object.

use super::*;

const CH: Uuid = Uuid::from_u128(1);
const OTHER_CH: Uuid = Uuid::from_u128(2);
const HOME: Uuid = Uuid::from_u128(10);
const SIBLING: Uuid = Uuid::from_u128(11);
const PILOT: Uuid = Uuid::from_u128(20);
const PEER: Uuid = Uuid::from_u128(21);

fn who(name: &str) -> Caller {
    let (role, chapter, suspended) = match name {
        "admin" => (Role::Admin, None, false),
        "chapter admin" => (Role::ChapterAdmin(CH), Some(CH), false),
        "foreign admin" => (Role::ChapterAdmin(OTHER_CH), Some(OTHER_CH), false),
        "coordinator" => (Role::Coordinator(HOME), Some(CH), false),
        "sibling coordinator" => (Role::Coordinator(SIBLING), Some(CH), false),
        "pilot" => (Role::Pilot(PILOT), Some(CH), false),
        "suspended pilot" => (Role::Pilot(PILOT), Some(CH), true),
        "peer pilot" => (Role::Pilot(PEER), Some(CH), false),
        "foreign pilot" => (Role::Pilot(Uuid::from_u128(99)), Some(OTHER_CH), false),
        "integrator" => (Role::Integrator(Some(CH)), Some(CH), false),
        "network integrator" => (Role::Integrator(None), None, false),
        other => panic!("no caller {other}"),
    };
    Caller { role, chapter, suspended }
}

const CALLERS: [&str; 11] = [
    "admin",
    "chapter admin",
    "foreign admin",
    "coordinator",
    "sibling coordinator",
    "pilot",
    "suspended pilot",
    "peer pilot",
    "foreign pilot",
    "integrator",
    "network integrator",
];

/// Checks one object: `table` names, per caller, a string of `R` (may read), `P` (sees
/// personal) and the letters of `actions` it may do; `-` for nothing.
fn check(object: Object, actions: &[(char, Action)], table: &[(&str, &str)]) {
    assert_eq!(table.len(), CALLERS.len(), "every caller has a row");
    for (name, expected) in table {
        let c = who(name);
        let mut got = String::new();
        if may_read(&c, &object) {
            got.push('R');
        }
        if sees_personal(&c, &object) {
            got.push('P');
        }
        for (letter, action) in actions {
            if may(&c, *action, &object) {
                got.push(*letter);
            }
        }
        if got.is_empty() {
            got.push('-');
        }
        assert_eq!(&got, expected, "{name} on {object:?}");
    }
}

#[test]
fn rides() {
    let ride = Object::Ride { chapter: CH, carehome: HOME, pilot: PILOT };
    let actions = [('b', Action::Book), ('c', Action::ChangeRide), ('f', Action::ConfirmRide), ('r', Action::RunRide)];
    check(
        ride,
        &actions,
        &[
            ("admin", "RPbcfr"),
            ("chapter admin", "RPbcfr"),
            ("foreign admin", "-"),
            ("coordinator", "RPbcf"),
            ("sibling coordinator", "-"),
            ("pilot", "RPbcr"),
            ("suspended pilot", "RPcr"),
            ("peer pilot", "-"),
            ("foreign pilot", "-"),
            ("integrator", "-"),
            ("network integrator", "-"),
        ],
    );
}

#[test]
fn ride_requests() {
    let request = Object::RideRequest { chapter: CH, carehome: HOME };
    let actions = [('q', Action::RequestRide), ('c', Action::ClaimRequest)];
    check(
        request,
        &actions,
        &[
            ("admin", "RPq"),
            ("chapter admin", "RPq"),
            ("foreign admin", "-"),
            ("coordinator", "RPq"),
            ("sibling coordinator", "-"),
            ("pilot", "Rc"),
            ("suspended pilot", "R"),
            ("peer pilot", "Rc"),
            ("foreign pilot", "-"),
            ("integrator", "-"),
            ("network integrator", "-"),
        ],
    );
}

#[test]
fn residents_are_known_to_their_home_and_admins_only() {
    let resident = Object::Resident { carehome: HOME, chapter: CH };
    check(
        resident,
        &[('m', Action::Manage)],
        &[
            ("admin", "RPm"),
            ("chapter admin", "RPm"),
            ("foreign admin", "-"),
            ("coordinator", "RPm"),
            ("sibling coordinator", "-"),
            ("pilot", "-"),
            ("suspended pilot", "-"),
            ("peer pilot", "-"),
            ("foreign pilot", "-"),
            ("integrator", "-"),
            ("network integrator", "-"),
        ],
    );
}

#[test]
fn pilots_are_known_to_themselves_and_admins() {
    let pilot = Object::Pilot { id: PILOT, chapter: CH };
    check(
        pilot,
        &[('a', Action::Administer), ('k', Action::ReadCalendar), ('K', Action::ManageCalendar)],
        &[
            ("admin", "RPakK"),
            ("chapter admin", "RPakK"),
            ("foreign admin", "-"),
            ("coordinator", "-"),
            ("sibling coordinator", "-"),
            ("pilot", "RPkK"),
            ("suspended pilot", "RPkK"),
            ("peer pilot", "-"),
            ("foreign pilot", "-"),
            // A chapter's integrator reads the calendar without knowing the pilot's record.
            ("integrator", "k"),
            ("network integrator", "k"),
        ],
    );
}

#[test]
fn care_homes_and_trishaws_are_known_to_the_chapter() {
    let actions = [
        ('m', Action::Manage),
        ('h', Action::ReadReach),
        ('s', Action::ReadStats),
        ('v', Action::ReadAvailability),
        ('i', Action::ReportIssue),
        ('k', Action::ReadCalendar),
        ('K', Action::ManageCalendar),
    ];
    check(
        Object::CareHome { id: HOME, chapter: CH },
        &actions,
        &[
            ("admin", "RPmhsvkK"),
            ("chapter admin", "RPmhsvkK"),
            ("foreign admin", "-"),
            ("coordinator", "RPmhsvkK"),
            ("sibling coordinator", "RP"),
            ("pilot", "RPv"),
            ("suspended pilot", "RPv"),
            ("peer pilot", "RPv"),
            ("foreign pilot", "-"),
            ("integrator", "RPsk"),
            ("network integrator", "RPsk"),
        ],
    );
    // A trishaw: run by its home; any pilot of the chapter may report an issue.
    check(
        Object::Bike { carehome: HOME, chapter: CH },
        &actions,
        &[
            ("admin", "RPmsi"),
            ("chapter admin", "RPmsi"),
            ("foreign admin", "-"),
            ("coordinator", "RPmsi"),
            ("sibling coordinator", "RP"),
            ("pilot", "RPi"),
            ("suspended pilot", "RPi"),
            ("peer pilot", "RPi"),
            ("foreign pilot", "-"),
            ("integrator", "RPs"),
            ("network integrator", "RPs"),
        ],
    );
}

#[test]
fn chapters_reports_and_audit() {
    let actions = [
        ('a', Action::Administer),
        ('r', Action::ReadReports),
        ('u', Action::ReadAudit),
        ('s', Action::ReadStats),
        ('h', Action::ReadReach),
    ];
    check(
        Object::Chapter(CH),
        &actions,
        &[
            ("admin", "RParush"),
            ("chapter admin", "RParush"),
            ("foreign admin", "-"),
            ("coordinator", "RP"),
            ("sibling coordinator", "RP"),
            ("pilot", "RP"),
            ("suspended pilot", "RP"),
            ("peer pilot", "RP"),
            ("foreign pilot", "-"),
            ("integrator", "RPs"),
            ("network integrator", "RPs"),
        ],
    );
}

#[test]
fn the_network() {
    check(
        Object::Network,
        &[('s', Action::ReadStats), ('a', Action::Administer)],
        &[
            ("admin", "RPsa"),
            ("chapter admin", "-"),
            ("foreign admin", "-"),
            ("coordinator", "-"),
            ("sibling coordinator", "-"),
            ("pilot", "-"),
            ("suspended pilot", "-"),
            ("peer pilot", "-"),
            ("foreign pilot", "-"),
            ("integrator", "-"),
            ("network integrator", "RPs"),
        ],
    );
}

#[test]
fn no_action_leaks_across_object_kinds() {
    // Ride actions ask about a ride; asked about anything else they refuse, even for admin.
    let admin = who("admin");
    for o in [Object::Chapter(CH), Object::CareHome { id: HOME, chapter: CH }, Object::Network] {
        for a in [Action::Book, Action::ChangeRide, Action::ConfirmRide, Action::RunRide, Action::ClaimRequest] {
            assert!(!may(&admin, a, &o), "{a:?} on {o:?}");
        }
    }
}

#[test]
fn ride_lists_narrow_to_the_callers_scope() {
    let home = Some((HOME, CH));
    let mine = ListScope { chapter: None, carehome: None, pilot: Some(PILOT) };
    let cases: [(&str, ListFilter, Result<ListScope, Refusal>); 12] = [
        ("pilot", ListFilter::default(), Ok(mine)),
        ("pilot", ListFilter { pilot: Some(PEER), ..ListFilter::default() }, Err(Refusal::NotFound)),
        (
            "pilot",
            ListFilter { carehome: home, ..ListFilter::default() },
            Ok(ListScope { carehome: Some(HOME), ..mine }),
        ),
        ("coordinator", ListFilter::default(), Ok(ListScope { carehome: Some(HOME), ..ListScope::default() })),
        ("sibling coordinator", ListFilter { carehome: home, ..ListFilter::default() }, Err(Refusal::Forbidden(None))),
        ("coordinator", ListFilter { chapter: Some(OTHER_CH), ..ListFilter::default() }, Err(Refusal::NotFound)),
        ("chapter admin", ListFilter::default(), Ok(ListScope { chapter: Some(CH), ..ListScope::default() })),
        (
            "chapter admin",
            ListFilter { pilot: Some(PEER), ..ListFilter::default() },
            Ok(ListScope { chapter: Some(CH), pilot: Some(PEER), ..ListScope::default() }),
        ),
        ("foreign admin", ListFilter { carehome: home, ..ListFilter::default() }, Err(Refusal::NotFound)),
        ("admin", ListFilter::default(), Ok(ListScope::default())),
        ("integrator", ListFilter::default(), Err(Refusal::Forbidden(None))),
        (
            "network integrator",
            ListFilter { chapter: Some(CH), ..ListFilter::default() },
            Err(Refusal::Forbidden(None)),
        ),
    ];
    for (name, filter, expected) in cases {
        assert_eq!(ride_list(&who(name), &filter), expected, "{name} listing rides with {filter:?}");
    }
}

#[test]
fn request_lists_narrow_to_the_callers_scope() {
    let home = Some((HOME, CH));
    let chapter = ListScope { chapter: Some(CH), ..ListScope::default() };
    let cases: [(&str, ListFilter, Result<ListScope, Refusal>); 9] = [
        ("pilot", ListFilter::default(), Ok(chapter)),
        (
            "pilot",
            ListFilter { carehome: home, ..ListFilter::default() },
            Ok(ListScope { carehome: Some(HOME), ..chapter }),
        ),
        ("suspended pilot", ListFilter::default(), Ok(chapter)),
        ("coordinator", ListFilter::default(), Ok(ListScope { carehome: Some(HOME), ..ListScope::default() })),
        ("sibling coordinator", ListFilter { carehome: home, ..ListFilter::default() }, Err(Refusal::Forbidden(None))),
        ("chapter admin", ListFilter::default(), Ok(chapter)),
        ("foreign pilot", ListFilter { chapter: Some(CH), ..ListFilter::default() }, Err(Refusal::NotFound)),
        ("admin", ListFilter::default(), Ok(ListScope::default())),
        ("integrator", ListFilter::default(), Err(Refusal::Forbidden(None))),
    ];
    for (name, filter, expected) in cases {
        assert_eq!(request_list(&who(name), &filter), expected, "{name} listing requests with {filter:?}");
    }
}

#[test]
fn stats_narrow_to_the_callers_scope() {
    let bike = Uuid::from_u128(30);
    let at_home = StatsFilter { carehome: Some((HOME, CH)), ..StatsFilter::default() };
    let sibling = StatsFilter { carehome: Some((SIBLING, CH)), ..StatsFilter::default() };
    let sibling_bike = StatsFilter { bike: Some((bike, SIBLING, CH)), ..StatsFilter::default() };
    let foreign_pilot = StatsFilter { pilot: Some((PILOT, OTHER_CH)), ..StatsFilter::default() };
    let chapter = ListScope { chapter: Some(CH), ..ListScope::default() };
    let home = ListScope { carehome: Some(HOME), ..ListScope::default() };
    let cases: [(&str, StatsFilter, Result<ListScope, Refusal>); 10] = [
        ("admin", StatsFilter::default(), Ok(ListScope::default())),
        ("network integrator", at_home, Ok(home)),
        ("chapter admin", StatsFilter::default(), Ok(chapter)),
        ("integrator", at_home, Ok(ListScope { carehome: Some(HOME), ..chapter })),
        ("integrator", foreign_pilot, Err(Refusal::NotFound)),
        ("foreign admin", at_home, Err(Refusal::NotFound)),
        ("coordinator", StatsFilter::default(), Ok(home)),
        (
            "coordinator",
            sibling,
            Err(Refusal::Forbidden(Some("a coordinator reads the stats of its own care home only"))),
        ),
        (
            "coordinator",
            sibling_bike,
            Err(Refusal::Forbidden(Some("a coordinator reads the stats of its own care home only"))),
        ),
        ("pilot", StatsFilter::default(), Err(Refusal::Forbidden(Some("pilots do not read stats")))),
    ];
    for (name, filter, expected) in cases {
        assert_eq!(stats_scope(&who(name), &filter), expected, "{name} reading stats with {filter:?}");
    }
}
