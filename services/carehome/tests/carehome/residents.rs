//! Residents over gRPC: admission with consent, consent changes, moving out, validation,
//! erasure by deleting the key, and the GDPR export.

use samskab_proto::carehome::v1 as pb;
use servicekit::ErrorCode;
use testkit::TestDb;
use tonic::Code;

use crate::harness::*;

async fn a_home(app: &mut App) -> pb::CareHome {
    let c = chapter(app).await;
    carehome(app, &c.chapter_id).await
}

fn command(resident_id: &str) -> pb::ResidentCommandRequest {
    pb::ResidentCommandRequest { context: cx(&key()), resident_id: resident_id.into() }
}

pub async fn a_resident_is_admitted_with_consent_and_can_move_out(db: TestDb) {
    let mut app = spawn_app(db).await;
    let home = a_home(&mut app).await;
    let r = resident(&mut app, &home.carehome_id, "Karen Blixen").await;
    assert_eq!((r.display_name.as_str(), r.notes.as_str()), ("Karen Blixen", "Loves the harbour; uses a walker"));
    assert_eq!(
        (r.status.as_str(), r.erased, r.version, r.chapter_id.as_str()),
        ("living_here", false, 2, home.chapter_id.as_str())
    );
    let c = r.consent.clone().unwrap();
    assert_eq!(
        (c.given_by.as_str(), c.given_at.as_str(), c.scope),
        ("relative", "2027-01-05T09:00:00Z", vec!["rides".to_string()])
    );

    let newer = pb::Consent {
        given_by: "guardian".into(),
        given_at: "2027-02-01T12:00:00Z".into(),
        scope: vec!["rides".into(), "stories".into()],
    };
    let req = pb::RecordConsentRequest {
        context: cx(&key()),
        resident_id: r.resident_id.clone(),
        consent: Some(newer.clone()),
    };
    let recorded = app.client.record_consent(req).await.unwrap().into_inner();
    assert_eq!(recorded.consent, Some(newer));

    let withdrawn = app.client.withdraw_consent(command(&r.resident_id)).await.unwrap().into_inner();
    assert_eq!((withdrawn.consent, withdrawn.version), (None, 4));
    let again = app.client.withdraw_consent(command(&r.resident_id)).await;
    assert_refused(again, Code::Aborted, ErrorCode::IllegalTransition);

    let moved = app.client.move_out_resident(command(&r.resident_id)).await.unwrap().into_inner();
    assert_eq!((moved.status.as_str(), moved.display_name.as_str()), ("moved_out", "Karen Blixen"));
    let req =
        pb::RecordConsentRequest { context: cx(&key()), resident_id: r.resident_id.clone(), consent: Some(consent()) };
    assert_refused(app.client.record_consent(req).await, Code::Aborted, ErrorCode::IllegalTransition);
    assert_refused(
        app.client.move_out_resident(command(&r.resident_id)).await,
        Code::Aborted,
        ErrorCode::IllegalTransition,
    );

    let got = app.client.get_resident(pb::IdRequest { id: r.resident_id.clone() }).await.unwrap().into_inner();
    assert_eq!(got, moved);
    let listed = testkit::eventually("the moved-out resident in the list", testkit::DEFAULT_TIMEOUT, || {
        let (mut client, parent) = (app.client.clone(), home.carehome_id.clone());
        async move {
            let list =
                client.list_residents(pb::ListRequest { parent_id: parent, ..Default::default() }).await.unwrap();
            list.into_inner().residents.into_iter().find(|x| x.status == "moved_out")
        }
    })
    .await;
    assert_eq!(listed, moved, "lists open personal fields too");
}

pub async fn resident_fields_are_validated(db: TestDb) {
    let mut app = spawn_app(db).await;
    let home = a_home(&mut app).await;
    let admit = |consent: Option<pb::Consent>, name: &str| pb::AdmitResidentRequest {
        context: cx(&key()),
        carehome_id: home.carehome_id.clone(),
        display_name: name.into(),
        notes: String::new(),
        consent,
    };
    let bad_by = pb::Consent { given_by: "neighbour".into(), ..consent() };
    assert_invalid(app.client.admit_resident(admit(Some(bad_by), "Karen")).await, "/consent/given_by");
    let bad_at = pb::Consent { given_at: "last tuesday".into(), ..consent() };
    assert_invalid(app.client.admit_resident(admit(Some(bad_at), "Karen")).await, "/consent/given_at");
    let no_scope = pb::Consent { scope: vec![], ..consent() };
    assert_invalid(app.client.admit_resident(admit(Some(no_scope), "Karen")).await, "/consent/scope");
    assert_invalid(app.client.admit_resident(admit(None, "Karen")).await, "/consent");
    assert_invalid(app.client.admit_resident(admit(Some(consent()), " ")).await, "/display_name");

    let r = resident(&mut app, &home.carehome_id, "Karen").await;
    let odd = pb::Consent { scope: vec!["selfies".into()], ..consent() };
    let req = pb::RecordConsentRequest { context: cx(&key()), resident_id: r.resident_id, consent: Some(odd) };
    assert_invalid(app.client.record_consent(req).await, "/scope/0");
}

/// GetResidents (a list of rides naming its riders): each resident as GetResident shows
/// it, erased ones without their names, unknown ids left out, duplicates once, in the order
/// asked; a bad id or too many ids refused by field.
pub async fn several_residents_are_read_at_once_as_each_alone(db: TestDb) {
    let mut app = spawn_app(db).await;
    let home = a_home(&mut app).await;
    let a = resident(&mut app, &home.carehome_id, "Karen Blixen").await;
    let b = resident(&mut app, &home.carehome_id, "H. C. Andersen").await;
    let gone = resident(&mut app, &home.carehome_id, "Søren Kierkegaard").await;
    app.client.erase_resident(command(&gone.resident_id)).await.unwrap();
    let unknown = "0190a000-0000-7000-8000-000000000001".to_string();
    let ids =
        vec![b.resident_id.clone(), unknown, gone.resident_id.clone(), a.resident_id.clone(), b.resident_id.clone()];
    let many = app.client.get_residents(pb::IdsRequest { ids }).await.unwrap().into_inner();
    let mut alone = Vec::new();
    for id in [&b.resident_id, &gone.resident_id, &a.resident_id] {
        alone.push(app.client.get_resident(pb::IdRequest { id: id.clone() }).await.unwrap().into_inner());
    }
    assert_eq!(many.residents, alone);
    assert_eq!(
        many.residents.iter().map(|r| (r.display_name.as_str(), r.erased)).collect::<Vec<_>>(),
        [("H. C. Andersen", false), ("", true), ("Karen Blixen", false)]
    );
    assert!(app.client.get_residents(pb::IdsRequest { ids: vec![] }).await.unwrap().into_inner().residents.is_empty());
    let bad = pb::IdsRequest { ids: vec![a.resident_id.clone(), "karen".into()] };
    assert_invalid(app.client.get_residents(bad).await, "/ids/1");
    let too_many = pb::IdsRequest { ids: vec![a.resident_id.clone(); 201] };
    assert_invalid(app.client.get_residents(too_many).await, "/ids");
}

pub async fn erasure_deletes_the_key_and_is_harmless_twice(db: TestDb) {
    let mut app = spawn_app(db).await;
    let home = a_home(&mut app).await;
    let r = resident(&mut app, &home.carehome_id, "Søren Kierkegaard").await;
    let subject = format!("resident:{}", r.resident_id);
    assert!(app.keys.has_key(&subject).await.unwrap());

    let mut stale = command(&r.resident_id);
    stale.context = cx_at(&key(), 9);
    assert_refused(app.client.erase_resident(stale).await, Code::FailedPrecondition, ErrorCode::PreconditionFailed);
    assert!(app.keys.has_key(&subject).await.unwrap(), "a refused erasure keeps the key");

    let erased = app.client.erase_resident(command(&r.resident_id)).await.unwrap().into_inner();
    assert!(app.keys.is_erased(&subject).await.unwrap(), "the key is gone before the answer");
    assert_eq!(
        (erased.erased, erased.status.as_str(), erased.display_name.as_str(), erased.notes.as_str()),
        (true, "erased", "", "")
    );
    let twice = app.client.erase_resident(command(&r.resident_id)).await.unwrap().into_inner();
    assert_eq!(twice, erased, "erasing twice is harmless");
    let stream = format!("resident-{}", r.resident_id);
    assert_eq!(stream_types(&app, &stream).await, ["ResidentAdmitted", "ResidentConsentRecorded", "ResidentErased"]);

    let got = app.client.get_resident(pb::IdRequest { id: r.resident_id.clone() }).await.unwrap().into_inner();
    assert_eq!((got.erased, got.display_name.as_str()), (true, ""));
    let export = app.client.export_resident(pb::IdRequest { id: r.resident_id.clone() }).await.unwrap().into_inner();
    assert!(!export.json.contains("Søren") && !export.json.contains("sealed:"), "{}", export.json);
    let req =
        pb::RecordConsentRequest { context: cx(&key()), resident_id: r.resident_id.clone(), consent: Some(consent()) };
    assert_refused(app.client.record_consent(req).await, Code::Aborted, ErrorCode::IllegalTransition);
    let listed = testkit::eventually("the erased resident in the list", testkit::DEFAULT_TIMEOUT, || {
        let (mut client, parent) = (app.client.clone(), home.carehome_id.clone());
        async move {
            let list =
                client.list_residents(pb::ListRequest { parent_id: parent, ..Default::default() }).await.unwrap();
            list.into_inner().residents.into_iter().find(|x| x.status == "erased")
        }
    })
    .await;
    assert_eq!((listed.erased, listed.display_name.as_str()), (true, ""));
}

pub async fn an_export_holds_everything_about_the_resident(db: TestDb) {
    let mut app = spawn_app(db).await;
    let home = a_home(&mut app).await;
    let r = resident(&mut app, &home.carehome_id, "Karen Blixen").await;
    app.client.withdraw_consent(command(&r.resident_id)).await.unwrap();
    let export = app.client.export_resident(pb::IdRequest { id: r.resident_id.clone() }).await.unwrap().into_inner();
    let doc: serde_json::Value = serde_json::from_str(&export.json).unwrap();
    assert_eq!(doc["resident"]["display_name"], "Karen Blixen");
    assert_eq!(doc["resident"]["notes"], "Loves the harbour; uses a walker");
    assert_eq!(doc["resident"]["consent"], serde_json::Value::Null);
    let types: Vec<&str> = doc["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ResidentAdmitted", "ResidentConsentRecorded", "ResidentConsentWithdrawn"]);
    assert_eq!(doc["events"][0]["data"]["personal"]["display_name"], "Karen Blixen");
    assert_eq!(doc["events"][1]["data"]["given_by"], "relative");
    assert_eq!(doc["events"][0]["actor"]["role"], "chapter_admin");
    assert!(!export.json.contains("sealed:"));
}
