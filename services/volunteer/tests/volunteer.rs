//! The volunteer service over real gRPC sockets, on SQLite and on PostgreSQL.

use std::time::Duration;

use eventlog::EventStore;
use futures_util::StreamExt;
use keystore::{KeyStore, MasterKey};
use samskab_proto::common::v1::{self as common, event_feed_client::EventFeedClient};
use samskab_proto::volunteer::v1::{self as pb, volunteer_service_client::VolunteerServiceClient};
use servicekit::server::Spawned;
use servicekit::{ErrorCode, RemoteError};
use testkit::TestDb;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;
use volunteer::{SERVICE_NAMES, VolunteerServer};

struct App {
    client: VolunteerServiceClient<Channel>,
    feed: EventFeedClient<Channel>,
    store: EventStore,
    _server: Spawned,
    _db: TestDb,
}

async fn spawn_app(db: TestDb) -> App {
    let store = EventStore::connect(&db.url).await.unwrap();
    let keys = KeyStore::connect(&store, MasterKey::generate()).await.unwrap();
    let server = VolunteerServer::start(store.clone(), keys).await.unwrap();
    let spawned =
        servicekit::server::spawn("127.0.0.1:0".parse().unwrap(), server.routes(), SERVICE_NAMES).await.unwrap();
    let channel = servicekit::client::channel(&spawned.url()).unwrap();
    App {
        client: VolunteerServiceClient::new(channel.clone()),
        feed: EventFeedClient::new(channel),
        store,
        _server: spawned,
        _db: db,
    }
}

testkit::both_backends!(setup = spawn_app; worker_threads = 2;
    registering_seals_personal_fields_and_reads_them_back,
    bad_input_names_the_field_and_writes_nothing,
    qualifying_again_renews,
    status_changes_follow_the_life_cycle,
    a_retried_registration_finds_the_original_pilot,
    if_match_refuses_a_stale_version,
    erasure_hides_the_pilot_for_good,
    pilots_are_listed_by_chapter_in_pages,
    the_feed_carries_public_payloads_only,
    concurrent_status_changes_stay_consistent,
    availability_is_validated_and_stored,
    export_holds_everything_decrypted,
);

fn ctx(key: &str) -> Option<common::CommandContext> {
    Some(common::CommandContext {
        idempotency_key: key.into(),
        actor: Some(common::Actor { id: "u-admin".into(), role: "chapter_admin".into() }),
        correlation_id: String::new(),
        expected_version: 0,
    })
}

fn key() -> String {
    Uuid::new_v4().to_string()
}

async fn register(app: &mut App, chapter: Uuid, name: &str) -> pb::Pilot {
    app.client
        .register_pilot(pb::RegisterPilotRequest {
            context: ctx(&key()),
            chapter_id: chapter.to_string(),
            display_name: name.into(),
            email: format!("{}@example.org", Uuid::new_v4().simple()),
            phone: "+45 12 34 56 78".into(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn cmd(pilot: &pb::Pilot) -> pb::PilotCommandRequest {
    pb::PilotCommandRequest { context: ctx(&key()), pilot_id: pilot.pilot_id.clone() }
}

async fn event_count(store: &EventStore) -> i64 {
    store.fetch_i64("SELECT count(*) FROM eventlog_events", &[]).await.unwrap().unwrap_or(0)
}

async fn registering_seals_personal_fields_and_reads_them_back(mut app: App) {
    let chapter = Uuid::now_v7();
    let p = register(&mut app, chapter, "Ærø Østergård").await;
    assert_eq!(p.display_name, "Ærø Østergård");
    assert_eq!(p.status, "active");
    assert_eq!(p.chapter_id, chapter.to_string());
    assert_eq!(p.version, 1);
    let got = app.client.get_pilot(pb::GetPilotRequest { pilot_id: p.pilot_id.clone() }).await.unwrap().into_inner();
    assert_eq!(got, p);
    let stored = app.store.read_whole_stream(&format!("pilot-{}", p.pilot_id)).await.unwrap();
    assert!(!stored[0].payload.get().contains("Østergård"), "the log holds ciphertext only");
    assert!(!stored[0].payload.get().contains(&p.email));
    assert_eq!(stored[0].metadata.tenant, Some(chapter));
    assert_eq!(stored[0].metadata.actor.as_ref().unwrap().id, "u-admin");
}

async fn bad_input_names_the_field_and_writes_nothing(mut app: App) {
    let before = event_count(&app.store).await;
    let cases = [
        ("not-a-uuid", "Name", "a@b.dk", "", "/chapter_id"),
        (&Uuid::now_v7().to_string()[..], "   ", "a@b.dk", "", "/display_name"),
        (&Uuid::now_v7().to_string()[..], "Name", "not-an-email", "", "/email"),
        (&Uuid::now_v7().to_string()[..], "Name", "", "call me", "/phone"),
    ];
    for (chapter, name, email, phone, field) in cases {
        let err = app
            .client
            .register_pilot(pb::RegisterPilotRequest {
                context: ctx(&key()),
                chapter_id: chapter.into(),
                display_name: name.into(),
                email: email.into(),
                phone: phone.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        let r = RemoteError::from_status(&err);
        assert_eq!(r.code, ErrorCode::Validation);
        assert_eq!(r.fields[0].field, field);
    }
    let err = app
        .client
        .suspend_pilot(pb::PilotCommandRequest { context: ctx(&key()), pilot_id: Uuid::now_v7().to_string() })
        .await;
    assert_eq!(err.unwrap_err().code(), Code::NotFound);
    let err =
        app.client.suspend_pilot(pb::PilotCommandRequest { context: None, pilot_id: Uuid::now_v7().to_string() }).await;
    assert_eq!(RemoteError::from_status(&err.unwrap_err()).fields[0].field, "/context/actor");
    assert_eq!(event_count(&app.store).await, before);
}

async fn qualifying_again_renews(mut app: App) {
    let p = register(&mut app, Uuid::now_v7(), "Pilot").await;
    let q = |until: &str, t: &str| pb::QualifyPilotRequest {
        context: ctx(&key()),
        pilot_id: p.pilot_id.clone(),
        qualification: Some(pb::Qualification {
            bike_type: t.into(),
            qualified_on: "2027-01-10".into(),
            valid_until: until.into(),
            ..Default::default()
        }),
    };
    let a = app.client.qualify_pilot(q("2027-12-31", "")).await.unwrap().into_inner();
    assert_eq!(a.qualifications[0].bike_type, "trishaw", "the type defaults to trishaw");
    let b = app.client.qualify_pilot(q("2028-12-31", "trishaw")).await.unwrap().into_inner();
    assert_eq!(b.qualifications.len(), 1);
    assert_eq!(b.qualifications[0].valid_until, "2028-12-31");
    let c = app.client.qualify_pilot(q("2028-06-30", "wheelchair")).await.unwrap().into_inner();
    assert_eq!(c.qualifications.len(), 2);
    let types: Vec<String> = app
        .store
        .read_whole_stream(&format!("pilot-{}", p.pilot_id))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["PilotRegistered", "PilotQualified", "PilotQualificationRenewed", "PilotQualified"]);
    let err = app.client.qualify_pilot(q("2026-01-01", "trishaw")).await.unwrap_err();
    assert_eq!(RemoteError::from_status(&err).fields[0].field, "/valid_until");
    let err = app.client.qualify_pilot(q("31-12-2027", "trishaw")).await.unwrap_err();
    assert_eq!(RemoteError::from_status(&err).fields[0].field, "/valid_until");
}

async fn status_changes_follow_the_life_cycle(mut app: App) {
    let p = register(&mut app, Uuid::now_v7(), "Pilot").await;
    let err = app.client.reinstate_pilot(cmd(&p)).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(RemoteError::from_status(&err).code, ErrorCode::IllegalTransition);
    assert_eq!(app.client.suspend_pilot(cmd(&p)).await.unwrap().into_inner().status, "suspended");
    assert_eq!(app.client.reinstate_pilot(cmd(&p)).await.unwrap().into_inner().status, "active");
    assert_eq!(app.client.retire_pilot(cmd(&p)).await.unwrap().into_inner().status, "retired");
    let err = app.client.suspend_pilot(cmd(&p)).await.unwrap_err();
    assert_eq!(RemoteError::from_status(&err).code, ErrorCode::IllegalTransition);
}

async fn a_retried_registration_finds_the_original_pilot(mut app: App) {
    let chapter = Uuid::now_v7();
    let req = pb::RegisterPilotRequest {
        context: ctx("same-key"),
        chapter_id: chapter.to_string(),
        display_name: "Pilot".into(),
        email: String::new(),
        phone: String::new(),
    };
    let a = app.client.register_pilot(req.clone()).await.unwrap().into_inner();
    let b = app.client.register_pilot(req.clone()).await.unwrap().into_inner();
    assert_eq!(a.pilot_id, b.pilot_id);
    let s = cmd(&a);
    let s1 = app.client.suspend_pilot(s.clone()).await.unwrap().into_inner();
    let s2 = app.client.suspend_pilot(s).await.unwrap().into_inner();
    assert_eq!(s1.version, s2.version, "a retried suspension is not a second one (and not an illegal transition)");
    assert_eq!(app.store.stream_version(&format!("pilot-{}", a.pilot_id)).await.unwrap(), 2);
}

async fn if_match_refuses_a_stale_version(mut app: App) {
    let p = register(&mut app, Uuid::now_v7(), "Pilot").await;
    let mut stale = cmd(&p);
    stale.context.as_mut().unwrap().expected_version = 7;
    let err = app.client.suspend_pilot(stale).await.unwrap_err();
    let r = RemoteError::from_status(&err);
    assert_eq!(r.code, ErrorCode::PreconditionFailed);
    assert_eq!(r.metadata["current_version"], "1");
    let mut fresh = cmd(&p);
    fresh.context.as_mut().unwrap().expected_version = 1;
    assert_eq!(app.client.suspend_pilot(fresh).await.unwrap().into_inner().version, 2);
}

async fn erasure_hides_the_pilot_for_good(mut app: App) {
    let p = register(&mut app, Uuid::now_v7(), "Ærø Østergård").await;
    let erased = app.client.erase_pilot(cmd(&p)).await.unwrap().into_inner();
    assert!(erased.erased);
    assert_eq!(erased.display_name, "");
    assert_eq!(erased.email, "");
    let got = app.client.get_pilot(pb::GetPilotRequest { pilot_id: p.pilot_id.clone() }).await.unwrap().into_inner();
    assert_eq!((got.status.as_str(), got.display_name.as_str()), ("erased", ""));
    let again = app.client.erase_pilot(cmd(&p)).await.unwrap().into_inner();
    assert_eq!(again.version, erased.version, "erasing twice writes nothing");
    let err = app.client.suspend_pilot(cmd(&p)).await.unwrap_err();
    assert_eq!(RemoteError::from_status(&err).code, ErrorCode::IllegalTransition);
    let export = app.client.export_pilot(pb::ExportPilotRequest { pilot_id: p.pilot_id }).await.unwrap().into_inner();
    assert!(!export.json.contains("Østergård"));
}

async fn pilots_are_listed_by_chapter_in_pages(mut app: App) {
    let chapter = Uuid::now_v7();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(register(&mut app, chapter, &format!("Pilot {i}")).await.pilot_id);
    }
    register(&mut app, Uuid::now_v7(), "Other chapter").await;
    ids.sort();
    let list =
        |cursor: String| pb::ListPilotsRequest { chapter_id: chapter.to_string(), limit: 2, cursor, on: String::new() };
    // The list is a read model: wait until it holds all five pilots (a first page alone
    // may be full while the last pilots are still on their way).
    testkit::eventually("the five pilots in the list", testkit::DEFAULT_TIMEOUT, || async {
        let all = pb::ListPilotsRequest {
            chapter_id: chapter.to_string(),
            limit: 500,
            cursor: String::new(),
            on: String::new(),
        };
        let listed = app.client.clone().list_pilots(all).await.unwrap().into_inner().pilots.len();
        if listed == ids.len() { Ok(()) } else { Err(format!("{listed} listed")) }
    })
    .await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app.client.list_pilots(list(cursor)).await.unwrap().into_inner();
        seen.extend(page.pilots.iter().map(|p| p.pilot_id.clone()));
        assert!(page.pilots.iter().all(|p| p.display_name.starts_with("Pilot")));
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    assert_eq!(seen, ids);
    let err = app.client.list_pilots(pb::ListPilotsRequest {
        chapter_id: chapter.to_string(),
        limit: 501,
        cursor: String::new(),
        on: String::new(),
    });
    assert_eq!(RemoteError::from_status(&err.await.unwrap_err()).fields[0].field, "/limit");
}

async fn the_feed_carries_public_payloads_only(mut app: App) {
    let p = register(&mut app, Uuid::now_v7(), "Ærø Østergård").await;
    app.client.suspend_pilot(cmd(&p)).await.unwrap();
    let mut stream = app.feed.subscribe(common::SubscribeRequest::default()).await.unwrap().into_inner();
    let mut got = Vec::new();
    while got.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
        got.push(e);
    }
    assert_eq!(got[0].event_type, "PilotRegistered");
    assert_eq!(got[1].event_type, "PilotSuspended");
    for e in &got {
        assert!(!e.data_json.contains("sealed:"), "{}", e.data_json);
        assert!(!e.data_json.contains("Østergård"));
        assert_eq!(e.tenant, p.chapter_id);
    }
    let data: serde_json::Value = serde_json::from_str(&got[0].data_json).unwrap();
    assert_eq!(data["pilot_id"], p.pilot_id);
    // Resuming after the first event's cursor yields the second.
    let page = app.feed.read_events(common::ReadEventsRequest {
        after: got[0].cursor.clone(),
        limit: 10,
        ..Default::default()
    });
    assert_eq!(page.await.unwrap().into_inner().events[0].event_id, got[1].event_id);
}

async fn concurrent_status_changes_stay_consistent(mut app: App) {
    let p = register(&mut app, Uuid::now_v7(), "Pilot").await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut client = app.client.clone();
        let req = cmd(&p);
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 { client.suspend_pilot(req).await } else { client.reinstate_pilot(req).await }
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(RemoteError::from_status(&e).code, ErrorCode::IllegalTransition, "{e:?}"),
        }
    }
    let events = app.store.read_whole_stream(&format!("pilot-{}", p.pilot_id)).await.unwrap();
    assert_eq!(events.len(), 1 + ok, "every accepted change is exactly one event");
    // Suspensions and reinstatements alternate, starting from active.
    for (i, e) in events.iter().skip(1).enumerate() {
        assert_eq!(e.event_type, if i % 2 == 0 { "PilotSuspended" } else { "PilotReinstated" });
    }
}

async fn availability_is_validated_and_stored(mut app: App) {
    let p = register(&mut app, Uuid::now_v7(), "Pilot").await;
    let home = Uuid::now_v7().to_string();
    let req = |from: &str, to: &str| pb::DeclareAvailabilityRequest {
        context: ctx(&key()),
        pilot_id: p.pilot_id.clone(),
        availability: Some(pb::Availability {
            weekly: vec![pb::WeeklyWindow { weekday: "tuesday".into(), from: from.into(), to: to.into() }],
            carehome_ids: vec![home.clone()],
        }),
    };
    let got = app.client.declare_availability(req("09:00", "12:30")).await.unwrap().into_inner();
    let a = got.availability.unwrap();
    assert_eq!(a.weekly[0].to, "12:30");
    assert_eq!(a.carehome_ids, vec![home.clone()]);
    let err = app.client.declare_availability(req("13:00", "12:00")).await.unwrap_err();
    assert_eq!(RemoteError::from_status(&err).fields[0].field, "/weekly/0/to");
    let err = app.client.declare_availability(req("9", "12:00")).await.unwrap_err();
    assert_eq!(RemoteError::from_status(&err).fields[0].field, "/weekly/0/from");
}

async fn export_holds_everything_decrypted(mut app: App) {
    let p = register(&mut app, Uuid::now_v7(), "Ærø Østergård").await;
    app.client.suspend_pilot(cmd(&p)).await.unwrap();
    let export =
        app.client.export_pilot(pb::ExportPilotRequest { pilot_id: p.pilot_id.clone() }).await.unwrap().into_inner();
    let v: serde_json::Value = serde_json::from_str(&export.json).unwrap();
    assert_eq!(v["display_name"], "Ærø Østergård");
    assert_eq!(v["email"], p.email);
    assert_eq!(v["events"][0]["data"]["personal"]["display_name"], "Ærø Østergård");
    assert_eq!(v["events"][1]["type"], "PilotSuspended");
}
