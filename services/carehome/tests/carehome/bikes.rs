//! Trishaws over gRPC: the life cycle and its maintenance log, illegal transitions,
//! idempotent retries, If-Match, and concurrent status changes on one trishaw.

use samskab_proto::carehome::v1 as pb;
use servicekit::ErrorCode;
use testkit::TestDb;
use tonic::Code;

use crate::harness::*;

fn change(key: &str, bike_id: &str, reason: &str) -> pb::BikeServiceRequest {
    pb::BikeServiceRequest {
        context: cx(key),
        bike_id: bike_id.into(),
        reason: reason.into(),
        expected_back: String::new(),
    }
}

async fn a_bike(app: &mut App) -> pb::Bike {
    let c = chapter(app).await;
    let home = carehome(app, &c.chapter_id).await;
    bike(app, &home.carehome_id).await
}

pub async fn a_trishaw_goes_through_its_life_cycle_and_keeps_a_maintenance_log(db: TestDb) {
    let mut app = spawn_app(db).await;
    let b = a_bike(&mut app).await;
    assert_eq!((b.bike_type.as_str(), b.seats, b.status.as_str(), b.version), ("trishaw", 2, "in_service", 1));

    let req = pb::ReportBikeIssueRequest {
        context: cx(&key()),
        bike_id: b.bike_id.clone(),
        description: "bell missing".into(),
        grounding: false,
    };
    let after = app.client.report_bike_issue(req).await.unwrap().into_inner();
    assert_eq!((after.status.as_str(), after.version), ("in_service", 2));
    let req = pb::ReportBikeIssueRequest {
        context: cx(&key()),
        bike_id: b.bike_id.clone(),
        description: "brake cable frayed".into(),
        grounding: true,
    };
    let grounded = app.client.report_bike_issue(req).await.unwrap().into_inner();
    assert_eq!(
        (grounded.status.as_str(), grounded.out_of_service_reason.as_str()),
        ("out_of_service", "brake cable frayed")
    );
    let back = app.client.return_bike_to_service(change(&key(), &b.bike_id, "new brake cable")).await.unwrap();
    assert_eq!(back.into_inner().status, "in_service");

    let mut out = change(&key(), &b.bike_id, "flat tyre");
    out.expected_back = "2027-05-01".into();
    let out = app.client.take_bike_out_of_service(out).await.unwrap().into_inner();
    assert_eq!((out.status.as_str(), out.expected_back.as_str()), ("out_of_service", "2027-05-01"));
    app.client.return_bike_to_service(change(&key(), &b.bike_id, "")).await.unwrap();
    let retired = app.client.retire_bike(change(&key(), &b.bike_id, "frame cracked")).await.unwrap().into_inner();
    assert_eq!(retired.status, "retired");
    let got = app.client.get_bike(pb::IdRequest { id: b.bike_id.clone() }).await.unwrap().into_inner();
    assert_eq!(got, retired);

    let log = app.client.get_maintenance_log(pb::IdRequest { id: b.bike_id.clone() }).await.unwrap().into_inner();
    let kinds: Vec<&str> = log.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "commissioned",
            "issue_reported",
            "issue_reported",
            "taken_out_of_service",
            "repaired",
            "returned_to_service",
            "taken_out_of_service",
            "returned_to_service",
            "retired"
        ]
    );
    assert!(log.entries[2].grounding && log.entries[2].description == "brake cable frayed");
    assert_eq!(log.entries[4].description, "new brake cable");
    assert_eq!(log.entries[6].expected_back, "2027-05-01");
    assert_eq!(log.entries[8].reason, "frame cracked");
    assert!(log.entries.iter().all(|e| e.actor_role == "chapter_admin" && e.at.ends_with('Z')));
}

/// Free text about trishaws and closures is sealed: readable through the calls, never in
/// clear in the log, and left out of the feed's public payload.
pub async fn free_text_about_trishaws_and_closures_is_sealed(db: TestDb) {
    let mut app = spawn_app(db).await;
    let c = chapter(&mut app).await;
    let home = carehome(&mut app, &c.chapter_id).await;
    let b = bike(&mut app, &home.carehome_id).await;
    let phrase = "Jens broke it on Dyrehavebakken";
    let req = pb::ReportBikeIssueRequest {
        context: cx(&key()),
        bike_id: b.bike_id.clone(),
        description: format!("{phrase} (issue)"),
        grounding: true,
    };
    let grounded = app.client.report_bike_issue(req).await.unwrap().into_inner();
    assert_eq!(grounded.out_of_service_reason, format!("{phrase} (issue)"));
    app.client.return_bike_to_service(change(&key(), &b.bike_id, &format!("{phrase} (repair)"))).await.unwrap();
    app.client.take_bike_out_of_service(change(&key(), &b.bike_id, &format!("{phrase} (out)"))).await.unwrap();
    let close = pb::CloseCareHomeRequest {
        context: cx(&key()),
        carehome_id: home.carehome_id.clone(),
        closure: Some(pb::Closure {
            from: "2027-07-01".into(),
            to: "2027-07-03".into(),
            reason: format!("{phrase} (closed)"),
            ..Default::default()
        }),
    };
    let closed = app.client.close_care_home(close).await.unwrap().into_inner();
    assert_eq!(closed.closures[0].reason, format!("{phrase} (closed)"));
    // The list is a projection: it may lag the writes by a moment.
    let out = format!("{phrase} (out)");
    testkit::eventually("the list to show the trishaw out of service", testkit::DEFAULT_TIMEOUT, || async {
        let mut client = app.client.clone();
        let listed = client.list_bikes(pb::ListRequest {
            parent_id: home.carehome_id.clone(),
            limit: 10,
            cursor: String::new(),
        });
        listed.await.unwrap().into_inner().bikes.first().is_some_and(|b| b.out_of_service_reason == out)
    })
    .await;
    let log = app.client.get_maintenance_log(pb::IdRequest { id: b.bike_id.clone() }).await.unwrap().into_inner();
    let texts: Vec<String> = log.entries.iter().flat_map(|e| [e.description.clone(), e.reason.clone()]).collect();
    for what in ["issue", "repair", "out"] {
        assert!(texts.contains(&format!("{phrase} ({what})")), "{what}: {texts:?}");
    }
    // The log holds no clear text, the feed not even the ciphertext.
    let payloads = app.store.fetch_texts("SELECT CAST(payload AS TEXT) FROM eventlog_events", &[]).await.unwrap();
    assert!(payloads.iter().filter(|p| p.contains("sealed:v1:")).count() >= 4, "the texts are there, sealed");
    assert!(!payloads.iter().any(|p| p.contains("Jens") || p.contains("Dyrehavebakken")), "clear text in the log");
    let page = app
        .feed
        .read_events(samskab_proto::common::v1::ReadEventsRequest { limit: 1000, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let closure = page.events.iter().find(|e| e.event_type == "CareHomeClosed").expect("the closure in the feed");
    assert!(closure.data_json.contains("2027-07-01") && !closure.data_json.contains("reason"), "{}", closure.data_json);
    assert!(page.events.iter().all(|e| !e.data_json.contains("Jens") && !e.data_json.contains("sealed:v1:")));
}

pub async fn illegal_trishaw_transitions_are_aborted(db: TestDb) {
    let mut app = spawn_app(db).await;
    let b = a_bike(&mut app).await;
    let id = b.bike_id.as_str();
    let illegal = (Code::Aborted, ErrorCode::IllegalTransition);
    let r = app.client.return_bike_to_service(change(&key(), id, "")).await;
    assert_refused(r, illegal.0, illegal.1);
    assert_invalid(app.client.take_bike_out_of_service(change(&key(), id, " ")).await, "/reason");
    app.client.take_bike_out_of_service(change(&key(), id, "flat tyre")).await.unwrap();
    let r = app.client.take_bike_out_of_service(change(&key(), id, "again")).await;
    assert_refused(r, illegal.0, illegal.1);
    app.client.retire_bike(change(&key(), id, "")).await.unwrap();
    for r in [
        app.client.retire_bike(change(&key(), id, "")).await,
        app.client.return_bike_to_service(change(&key(), id, "")).await,
        app.client.take_bike_out_of_service(change(&key(), id, "x")).await,
    ] {
        assert_refused(r, illegal.0, illegal.1);
    }
    let req = pb::ReportBikeIssueRequest {
        context: cx(&key()),
        bike_id: id.into(),
        description: "rust".into(),
        grounding: false,
    };
    assert_refused(app.client.report_bike_issue(req).await, illegal.0, illegal.1);

    let home = b.carehome_id.clone();
    for seats in [0, 3] {
        let req = pb::CommissionBikeRequest {
            context: cx(&key()),
            carehome_id: home.clone(),
            name: "Ole".into(),
            bike_type: String::new(),
            seats,
        };
        assert_invalid(app.client.commission_bike(req).await, "/seats");
    }
}

pub async fn a_retried_command_finds_its_original_outcome(db: TestDb) {
    let mut app = spawn_app(db).await;
    let b = a_bike(&mut app).await;
    let k = key();
    let req = pb::CommissionBikeRequest {
        context: cx(&k),
        carehome_id: b.carehome_id.clone(),
        name: "Viggo".into(),
        bike_type: "wheelchair".into(),
        seats: 1,
    };
    let first = app.client.commission_bike(req.clone()).await.unwrap().into_inner();
    let again = app.client.commission_bike(req).await.unwrap().into_inner();
    assert_eq!(first, again, "the same key names the same trishaw");
    assert_eq!(stream_types(&app, &format!("bike-{}", first.bike_id)).await, ["BikeCommissioned"]);

    let k = key();
    let out = app.client.take_bike_out_of_service(change(&k, &first.bike_id, "puncture")).await.unwrap().into_inner();
    let out_again = app.client.take_bike_out_of_service(change(&k, &first.bike_id, "puncture")).await.unwrap();
    assert_eq!(out, out_again.into_inner(), "a retry is not an illegal transition");
    assert_eq!(
        stream_types(&app, &format!("bike-{}", first.bike_id)).await,
        ["BikeCommissioned", "BikeTakenOutOfService"]
    );
}

pub async fn if_match_refuses_a_stale_version(db: TestDb) {
    let mut app = spawn_app(db).await;
    let b = a_bike(&mut app).await;
    let mut stale = change(&key(), &b.bike_id, "flat tyre");
    stale.context = cx_at(&key(), 7);
    let (code, e) = refused(app.client.take_bike_out_of_service(stale).await);
    assert_eq!((code, e.code), (Code::FailedPrecondition, ErrorCode::PreconditionFailed));
    assert_eq!(e.metadata.get("current_version").map(String::as_str), Some("1"));
    let mut current = change(&key(), &b.bike_id, "flat tyre");
    current.context = cx_at(&key(), 1);
    let out = app.client.take_bike_out_of_service(current).await.unwrap().into_inner();
    assert_eq!(out.version, 2);

    let c = app.client.get_care_home(pb::IdRequest { id: b.carehome_id.clone() }).await.unwrap().into_inner();
    let req = pb::ChangeRideHoursRequest {
        context: cx_at(&key(), c.version + 1),
        carehome_id: c.carehome_id,
        ride_hours: vec![],
    };
    assert_refused(app.client.change_ride_hours(req).await, Code::FailedPrecondition, ErrorCode::PreconditionFailed);
}

pub async fn concurrent_status_changes_on_one_trishaw_stay_consistent(db: TestDb) {
    let mut app = spawn_app(db).await;
    let b = a_bike(&mut app).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (mut client, id) = (app.client.clone(), b.bike_id.clone());
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                client.take_bike_out_of_service(change(&key(), &id, "checked")).await
            } else {
                client.return_bike_to_service(change(&key(), &id, "")).await
            }
        }));
    }
    let mut succeeded = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => succeeded += 1,
            Err(s) => {
                let e = servicekit::RemoteError::from_status(&s);
                assert_eq!(e.code, ErrorCode::IllegalTransition, "{e:?}");
            }
        }
    }
    assert!(succeeded >= 1, "the first command of its kind to arrive succeeds");
    let types = stream_types(&app, &format!("bike-{}", b.bike_id)).await;
    assert_eq!(types.len(), 1 + succeeded, "one event per successful call");
    for (i, t) in types.iter().enumerate().skip(1) {
        let expected = if i % 2 == 1 { "BikeTakenOutOfService" } else { "BikeReturnedToService" };
        assert_eq!(t, expected, "status changes alternate: {types:?}");
    }
    let last = app.client.get_bike(pb::IdRequest { id: b.bike_id }).await.unwrap().into_inner();
    let expected = if types.len() % 2 == 0 { "out_of_service" } else { "in_service" };
    assert_eq!((last.status.as_str(), last.version as usize), (expected, types.len()));
}

/// Events an older release wrote with free text in clear (appended here as it did) are
/// found without a key, sealed in place under the trishaw's or care home's key with one
/// audit entry, and then read like new ones: the calls open the text, the log holds none of
/// it, and nothing is left to seal.
pub async fn clear_free_text_of_an_older_release_is_resealed_in_place(db: TestDb) {
    use domain::events::{BikeRetired, CareHomeClosed, CareHomeEvent, DomainEvent};
    use eventlog::{ExpectedVersion, NewEvent, StreamAppend};
    let mut app = spawn_app(db).await;
    let c = chapter(&mut app).await;
    let home = carehome(&mut app, &c.chapter_id).await;
    let b = bike(&mut app, &home.carehome_id).await;
    let (bike_id, home_id) = (b.bike_id.parse().unwrap(), home.carehome_id.parse().unwrap());
    let phrase = "Fru Madsen's grandson rode it into the fjord";
    let old = |stream: String, e: CareHomeEvent| {
        let mut new = NewEvent::new(e.event_type(), &e.to_json()).unwrap();
        new.metadata.tenant = Some(c.chapter_id.parse().unwrap());
        StreamAppend::new(stream, ExpectedVersion::Any, vec![new])
    };
    let dates = domain::types::DateRange {
        from: chrono::NaiveDate::from_ymd_opt(2027, 8, 1).unwrap(),
        to: chrono::NaiveDate::from_ymd_opt(2027, 8, 3).unwrap(),
    };
    app.store
        .append(vec![
            old(
                carehome::bikes::stream(bike_id),
                BikeRetired { bike_id, reason: format!("{phrase} (retired)") }.into(),
            ),
            old(
                carehome::carehomes::stream(home_id),
                CareHomeClosed { carehome_id: home_id, dates, reason: format!("{phrase} (closed)") }.into(),
            ),
        ])
        .await
        .unwrap();
    let clear = || async {
        let payloads = app.store.fetch_texts("SELECT CAST(payload AS TEXT) FROM eventlog_events", &[]).await.unwrap();
        payloads.iter().filter(|p| p.contains("Fru Madsen")).count()
    };
    assert_eq!(clear().await, 2, "written in clear, as the older release did");

    let found = carehome::reseal::pending(&app.store).await.unwrap();
    assert_eq!(found.iter().map(|f| f.field()).collect::<Vec<_>>(), vec!["reason", "reason"]);
    let entry = carehome::reseal::reseal(&app.store, &app.keys, found).await.unwrap();
    assert!(entry.is_some());
    assert_eq!(clear().await, 0, "no clear text left in the log");
    let entries = app.store.rewrites().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].event_count, 2);
    assert!(carehome::reseal::pending(&app.store).await.unwrap().is_empty(), "nothing left to seal");
    assert_eq!(carehome::reseal::reseal(&app.store, &app.keys, vec![]).await.unwrap(), None);

    let got = app.client.get_bike(pb::IdRequest { id: b.bike_id.clone() }).await.unwrap().into_inner();
    assert_eq!(got.out_of_service_reason, format!("{phrase} (retired)"));
    let got = app.client.get_care_home(pb::IdRequest { id: home.carehome_id.clone() }).await.unwrap().into_inner();
    assert_eq!(got.closures.iter().map(|c| c.reason.as_str()).collect::<Vec<_>>(), vec![format!("{phrase} (closed)")]);
    let page = app
        .feed
        .read_events(samskab_proto::common::v1::ReadEventsRequest { limit: 1000, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(page.events.iter().all(|e| !e.data_json.contains("Fru Madsen") && !e.data_json.contains("sealed:v1:")));
}
