//! Given, when, then: staff grants, invitations and API keys.

use chrono::Utc;
use domain::access::{self, Invitation};
use domain::events::{ChapterSettings, InvitationIssued};

use super::*;

fn chapter(admins: Vec<(Uuid, Uuid)>) -> Chapter {
    Chapter {
        chapter_id: Uuid::from_u128(1),
        name: "Aarhus".into(),
        timezone: "Europe/Copenhagen".into(),
        settings: ChapterSettings {
            lead_time_minutes: 60,
            default_turnaround_minutes: 15,
            reminder_lead_minutes: vec![],
            ..Default::default()
        },
        admins,
    }
}

fn invitation(role: &str) -> StaffInvitation {
    let now = Utc::now();
    StaffInvitation(Invitation::issued(&InvitationIssued {
        invitation_id: Uuid::from_u128(9),
        role: role.into(),
        chapter_id: Some(Uuid::from_u128(1)),
        carehome_id: None,
        pilot_id: None,
        code_sha256: access::hash_secret(b"s"),
        issued_at: now,
        expires_at: now + chrono::Duration::hours(1),
        issued_by: "issuer".into(),
    }))
}

#[test]
fn redeeming_a_chapter_admin_invitation_appoints_on_the_chapter_stream() {
    let me = Uuid::from_u128(100);
    let scope = Scope::Chapter(Some(chapter(vec![])));
    let (d, grant) = redeem(Some(&invitation("chapter_admin")), &scope, true, me, Utc::now()).unwrap();
    assert_eq!(grant, access::grant_id("chapter_admin", Some(Uuid::from_u128(1)), me));
    assert!(matches!(d.of(&chapters::stream(Uuid::from_u128(1))).next(),
        Some(CareHomeEvent::ChapterAdminAppointed(e)) if e.person_id == me && e.granted_by == "issuer"));
    assert!(matches!(d.of(&invitation_stream(Uuid::from_u128(9))).next(), Some(CareHomeEvent::InvitationRedeemed(_))));
    // A person who already holds the role: only the redemption is written, with that grant.
    let held = Scope::Chapter(Some(chapter(vec![(me, Uuid::from_u128(77))])));
    let (d, grant) = redeem(Some(&invitation("chapter_admin")), &held, true, me, Utc::now()).unwrap();
    assert_eq!(grant, Uuid::from_u128(77));
    assert_eq!(d.streams(), vec![invitation_stream(Uuid::from_u128(9)).as_str()]);
    // The target gone: expired.
    let gone = redeem(Some(&invitation("chapter_admin")), &Scope::Chapter(None), true, me, Utc::now());
    assert_eq!(gone.unwrap_err().code(), ErrorCode::InvitationExpired);
}

#[test]
fn a_chapters_last_admin_stays_unless_an_admin_removes_it() {
    let (a, b) = (Uuid::from_u128(100), Uuid::from_u128(101));
    let (ga, gb) = (Uuid::from_u128(200), Uuid::from_u128(201));
    let one = Scope::Chapter(Some(chapter(vec![(a, ga)])));
    assert_eq!(revoke(&one, a, ga, false, false).unwrap_err().code(), ErrorCode::LastAdmin);
    assert!(!revoke(&one, a, ga, true, false).unwrap().is_empty(), "an admin may");
    let two = Scope::Chapter(Some(chapter(vec![(a, ga), (b, gb)])));
    assert!(matches!(revoke(&two, a, ga, false, false).unwrap().of(&chapters::stream(Uuid::from_u128(1))).next(),
        Some(CareHomeEvent::ChapterAdminRemoved(e)) if e.role_grant_id == ga));
    // A grant not held (revoked before): nothing.
    assert!(revoke(&two, a, gb, false, false).unwrap().is_empty());
    // The network's last admin stays, whoever asks.
    let admins = Scope::Network(Some(Admins { admins: vec![(a, ga)] }));
    assert_eq!(revoke(&admins, a, ga, true, false).unwrap_err().code(), ErrorCode::LastAdmin);
    // The person's erasure removes it all the same.
    assert!(!revoke(&admins, a, ga, true, true).unwrap().is_empty());
}

#[test]
fn api_keys_are_revoked_once() {
    let now = Utc::now();
    let issued = ApiKeyIssued {
        api_key_id: Uuid::from_u128(5),
        name: "municipality".into(),
        chapter_id: None,
        key_sha256: access::hash_secret(b"k"),
        issued_at: now,
        expires_at: Some(now + chrono::Duration::hours(1)),
        issued_by: "x".into(),
    };
    let d = issue_api_key(Some(&chapter(vec![])), false, issued.clone()).unwrap();
    let stream = api_key_stream(Uuid::from_u128(5));
    let Some(CareHomeEvent::ApiKeyIssued(e)) = d.of(&stream).next() else { panic!() };
    assert_eq!(e.chapter_id, Some(Uuid::from_u128(1)));
    assert_eq!(issue_api_key(None, false, issued.clone()).unwrap_err().code(), ErrorCode::NotFound);
    let key = ApiKey::apply(None, &CareHomeEvent::ApiKeyIssued(issued)).unwrap();
    assert_eq!(key.status(now), "active");
    assert_eq!(key.status(now + chrono::Duration::hours(2)), "expired");
    let revoked = ApiKey::apply(Some(key.clone()), &revoke_api_key(Some(&key)).unwrap()[0]).unwrap();
    assert_eq!(revoked.status(now), "revoked");
    assert!(revoke_api_key(Some(&revoked)).unwrap().is_empty());
}
