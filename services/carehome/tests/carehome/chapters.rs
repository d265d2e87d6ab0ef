//! Chapters over gRPC, plus the refusals every kind of object shares (unknown and
//! malformed ids) and the server's health.

use samskab_proto::carehome::v1 as pb;
use servicekit::ErrorCode;
use testkit::TestDb;
use tonic::Code;

use crate::harness::*;

pub async fn a_chapter_is_registered_read_back_and_counts_its_care_homes_and_trishaws(db: TestDb) {
    let mut app = spawn_app(db).await;
    let c = chapter(&mut app).await;
    assert_eq!((c.name.as_str(), c.timezone.as_str(), c.version), ("Lyngby-Taarbæk", "Europe/Copenhagen", 1));
    let s = c.settings.clone().unwrap();
    assert_eq!((s.lead_time_minutes, s.default_turnaround_minutes), (60, 15), "default settings");
    let got = app.client.get_chapter(pb::IdRequest { id: c.chapter_id.clone() }).await.unwrap().into_inner();
    assert_eq!(got, c);

    let home = carehome(&mut app, &c.chapter_id).await;
    bike(&mut app, &home.carehome_id).await;
    let retired = bike(&mut app, &home.carehome_id).await;
    let req = pb::BikeServiceRequest { context: cx(&key()), bike_id: retired.bike_id, ..Default::default() };
    app.client.retire_bike(req).await.unwrap();
    let id = c.chapter_id.clone();
    let counted =
        testkit::eventually("the chapter to count its care home and trishaw", testkit::DEFAULT_TIMEOUT, || {
            let (mut client, id) = (app.client.clone(), id.clone());
            async move {
                let c = client.get_chapter(pb::IdRequest { id }).await.unwrap().into_inner();
                (c.carehome_count == 1 && c.bike_count == 1).then_some(c)
            }
        })
        .await;
    assert_eq!(counted.version, 1, "counting does not change the chapter");
}

pub async fn chapter_settings_change_and_bad_settings_name_their_fields(db: TestDb) {
    let mut app = spawn_app(db).await;
    let c = chapter(&mut app).await;
    let settings = pb::ChapterSettings {
        lead_time_minutes: 120,
        default_turnaround_minutes: 20,
        reminder_lead_minutes: vec![1440, 120],
        ride_season: Some(pb::RideSeason { starts: "2027-04-01".into(), ends: "2027-10-01".into() }),
        record_window_days: Some(30),
        series_horizon_days: None,
        offer_fanout: Some(8),
    };
    let req = pb::ChangeChapterSettingsRequest {
        context: cx(&key()),
        chapter_id: c.chapter_id.clone(),
        settings: Some(settings.clone()),
    };
    let changed = app.client.change_chapter_settings(req).await.unwrap().into_inner();
    // A setting left out keeps its value (the default 56 here).
    let settings = pb::ChapterSettings { series_horizon_days: Some(56), ..settings };
    assert_eq!((changed.settings, changed.version), (Some(settings.clone()), 2));
    let kept = pb::ChapterSettings { record_window_days: None, offer_fanout: None, ..settings.clone() };
    let req = pb::ChangeChapterSettingsRequest {
        context: cx(&key()),
        chapter_id: c.chapter_id.clone(),
        settings: Some(kept),
    };
    let again = app.client.change_chapter_settings(req).await.unwrap().into_inner();
    assert_eq!((again.settings, again.version), (Some(settings.clone()), 2), "nothing changed: nothing written");
    for (field, bad) in [("/record_window_days", 91), ("/offer_fanout", 0)] {
        let mut out = settings.clone();
        if field == "/offer_fanout" {
            out.offer_fanout = Some(bad);
        } else {
            out.record_window_days = Some(bad);
        }
        let req = pb::ChangeChapterSettingsRequest {
            context: cx(&key()),
            chapter_id: c.chapter_id.clone(),
            settings: Some(out),
        };
        assert_invalid(app.client.change_chapter_settings(req).await, field);
    }

    let too_long = pb::ChapterSettings { lead_time_minutes: 10_081, ..settings.clone() };
    let req = pb::ChangeChapterSettingsRequest {
        context: cx(&key()),
        chapter_id: c.chapter_id.clone(),
        settings: Some(too_long.clone()),
    };
    assert_invalid(app.client.change_chapter_settings(req).await, "/lead_time_minutes");
    let req = pb::RegisterChapterRequest {
        context: cx(&key()),
        name: "Gentofte".into(),
        timezone: "Europe/Copenhagen".into(),
        settings: Some(too_long),
    };
    assert_invalid(app.client.register_chapter(req).await, "/settings/lead_time_minutes");
    let req = pb::RegisterChapterRequest {
        context: cx(&key()),
        name: "Gentofte".into(),
        timezone: "Copenhagen".into(),
        settings: None,
    };
    assert_invalid(app.client.register_chapter(req).await, "/timezone");
    let five = pb::ChapterSettings { reminder_lead_minutes: vec![1, 2, 3, 4, 5, 6], ..settings };
    let req = pb::ChangeChapterSettingsRequest {
        context: cx(&key()),
        chapter_id: c.chapter_id.clone(),
        settings: Some(five),
    };
    assert_invalid(app.client.change_chapter_settings(req).await, "/reminder_lead_minutes");
    let req =
        pb::ChangeChapterSettingsRequest { context: cx(&key()), chapter_id: c.chapter_id.clone(), settings: None };
    assert_invalid(app.client.change_chapter_settings(req).await, "");
    let req = pb::RegisterChapterRequest { context: None, name: "X".into(), timezone: "UTC".into(), settings: None };
    assert_invalid(app.client.register_chapter(req).await, "/context/actor");
}

pub async fn unknown_and_malformed_ids_are_refused(db: TestDb) {
    let mut app = spawn_app(db).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let id = || pb::IdRequest { id: unknown.clone() };
    assert_refused(app.client.get_chapter(id()).await, Code::NotFound, ErrorCode::NotFound);
    assert_refused(app.client.get_care_home(id()).await, Code::NotFound, ErrorCode::NotFound);
    assert_refused(app.client.get_bike(id()).await, Code::NotFound, ErrorCode::NotFound);
    assert_refused(app.client.get_resident(id()).await, Code::NotFound, ErrorCode::NotFound);
    assert_refused(app.client.get_maintenance_log(id()).await, Code::NotFound, ErrorCode::NotFound);
    assert_refused(app.client.export_resident(id()).await, Code::NotFound, ErrorCode::NotFound);
    let list = pb::ListRequest { parent_id: unknown.clone(), ..Default::default() };
    assert_refused(app.client.list_bikes(list.clone()).await, Code::NotFound, ErrorCode::NotFound);
    assert_refused(app.client.list_care_homes(list).await, Code::NotFound, ErrorCode::NotFound);

    let req = pb::BikeServiceRequest {
        context: cx(&key()),
        bike_id: unknown.clone(),
        reason: "x".into(),
        ..Default::default()
    };
    assert_refused(app.client.take_bike_out_of_service(req).await, Code::NotFound, ErrorCode::NotFound);
    let req = pb::ResidentCommandRequest { context: cx(&key()), resident_id: unknown.clone() };
    assert_refused(app.client.erase_resident(req).await, Code::NotFound, ErrorCode::NotFound);
    let req = pb::ChangeChapterSettingsRequest {
        context: cx(&key()),
        chapter_id: unknown.clone(),
        settings: Some(Default::default()),
    };
    assert_refused(app.client.change_chapter_settings(req).await, Code::NotFound, ErrorCode::NotFound);
    let mut req = carehome_request(&unknown);
    assert_refused(app.client.register_care_home(req.clone()).await, Code::NotFound, ErrorCode::NotFound);

    req.chapter_id = "chapter-1".into();
    assert_invalid(app.client.register_care_home(req).await, "/chapter_id");
    assert_invalid(app.client.get_bike(pb::IdRequest { id: "42".into() }).await, "/id");
    let log = app.store.read_all(eventlog::Cursor::START, &eventlog::Filter::all(), 10).await.unwrap();
    assert!(log.events.is_empty(), "refused requests wrote nothing");
}

pub async fn the_server_reports_itself_healthy(db: TestDb) {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let app = spawn_app(db).await;
    let mut health = HealthClient::new(app.channel.clone());
    for service in carehome::SERVICE_NAMES {
        let req = HealthCheckRequest { service: service.to_string() };
        let status = health.check(req).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }
}
