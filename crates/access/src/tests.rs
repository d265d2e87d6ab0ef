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
        &[('a', Action::Administer)],
        &[
            ("admin", "RPa"),
            ("chapter admin", "RPa"),
            ("foreign admin", "-"),
            ("coordinator", "-"),
            ("sibling coordinator", "-"),
            ("pilot", "RP"),
            ("suspended pilot", "RP"),
            ("peer pilot", "-"),
            ("foreign pilot", "-"),
            ("integrator", "-"),
            ("network integrator", "-"),
        ],
    );
}

#[test]
fn care_homes_and_trishaws_are_known_to_the_chapter() {
    let actions = [('m', Action::Manage), ('h', Action::ReadReach), ('s', Action::ReadStats)];
    let table = [
        ("admin", "RPmhs"),
        ("chapter admin", "RPmhs"),
        ("foreign admin", "-"),
        ("coordinator", "RPmhs"),
        ("sibling coordinator", "RP"),
        ("pilot", "RP"),
        ("suspended pilot", "RP"),
        ("peer pilot", "RP"),
        ("foreign pilot", "-"),
        ("integrator", "RPs"),
        ("network integrator", "RPs"),
    ];
    check(Object::CareHome { id: HOME, chapter: CH }, &actions, &table);
    // A trishaw: the same, except that reach is a care home's report.
    let bike: Vec<(&str, String)> = table.iter().map(|(n, t)| (*n, t.replace('h', ""))).collect();
    let bike: Vec<(&str, &str)> = bike.iter().map(|(n, t)| (*n, t.as_str())).collect();
    check(Object::Bike { carehome: HOME, chapter: CH }, &actions, &bike);
}

#[test]
fn chapters_reports_and_audit() {
    let actions =
        [('a', Action::Administer), ('r', Action::ReadReports), ('u', Action::ReadAudit), ('s', Action::ReadStats)];
    check(
        Object::Chapter(CH),
        &actions,
        &[
            ("admin", "RParus"),
            ("chapter admin", "RParus"),
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
        &[('s', Action::ReadStats)],
        &[
            ("admin", "RPs"),
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
